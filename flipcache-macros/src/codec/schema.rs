//! The schema description a derived type's fingerprint hashes: `struct Shape{name:String,
//! dimensions:Vec<f64>}`, with field types printed from their tokens in one canonical
//! spacing (so the fingerprint does not depend on how a compiler version prints tokens).

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{GenericParam, Member};

use super::ast::{Fields, Input, Style};

pub fn describe(input: &Input<'_>) -> String {
    let original = input.original();
    let mut out = String::new();
    out.push_str(match input {
        Input::Struct(_) => "struct ",
        Input::Enum(_) => "enum ",
    });
    out.push_str(&original.ident.to_string());
    let params: Vec<String> = original
        .generics
        .params
        .iter()
        .map(|p| match p {
            GenericParam::Type(t) => t.ident.to_string(),
            GenericParam::Lifetime(l) => l.lifetime.to_string(),
            GenericParam::Const(c) => format!("const {}", c.ident),
        })
        .collect();
    if !params.is_empty() {
        out.push('<');
        out.push_str(&params.join(","));
        out.push('>');
    }
    match input {
        Input::Struct(s) => fields(&s.fields, &mut out),
        Input::Enum(e) => {
            out.push('{');
            for (i, v) in e.variants.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&v.ident.to_string());
                fields(&v.fields, &mut out);
            }
            out.push('}');
        }
    }
    out
}

fn fields(fields: &Fields<'_>, out: &mut String) {
    let (open, close) = match fields.style {
        Style::Named => ('{', '}'),
        Style::Tuple => ('(', ')'),
        Style::Unit => return,
    };
    out.push(open);
    for (i, field) in fields.list.iter().filter(|f| f.is_encoded()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Member::Named(name) = &field.member {
            out.push_str(&name.to_string());
            out.push(':');
        }
        canonical(field.ty.to_token_stream(), out);
        if let Some(with) = &field.attrs.with {
            out.push_str(" with ");
            canonical(with.path.to_token_stream(), out);
        }
    }
    out.push(close);
}

/// Prints tokens with no spacing except one space between two word-like tokens.
pub fn canonical(tokens: TokenStream, out: &mut String) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                push(out, open);
                canonical(g.stream(), out);
                push(out, close);
            }
            TokenTree::Ident(i) => push(out, &i.to_string()),
            TokenTree::Punct(p) => push(out, p.as_char().encode_utf8(&mut [0; 4])),
            TokenTree::Literal(l) => push(out, &l.to_string()),
        }
    }
}

fn push(out: &mut String, token: &str) {
    let wordy = |c: char| c.is_alphanumeric() || c == '_';
    if out.ends_with(wordy) && token.starts_with(wordy) {
        out.push(' ');
    }
    out.push_str(token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn canon(tokens: TokenStream) -> String {
        let mut out = String::new();
        canonical(tokens, &mut out);
        out
    }

    #[test]
    fn spacing_is_canonical() {
        assert_eq!(canon(quote!(Vec<f64>)), "Vec<f64>");
        assert_eq!(canon(quote!(&'a mut [u8; 4])), "&'a mut[u8;4]");
        assert_eq!(canon(quote!(dyn Fn(u8) -> u8)), "dyn Fn(u8)->u8");
        assert_eq!(
            canon(quote!(std::collections::HashMap<String, Vec<i64>>)),
            "std::collections::HashMap<String,Vec<i64>>"
        );
    }

    #[test]
    fn describes_fields_in_order_without_skipped_ones() {
        let input: syn::DeriveInput = syn::parse_quote! {
            struct Shape<T> {
                name: String,
                #[flipcodec(skip)]
                cache: Vec<u8>,
                dims: Vec<T>,
                #[flipcodec(with = my::codec)]
                at: Instant,
            }
        };
        let model = Input::from_syn(&input).unwrap();
        assert_eq!(
            describe(&model),
            "struct Shape<T>{name:String,dims:Vec<T>,at:Instant with my::codec}"
        );
        let input: syn::DeriveInput = syn::parse_quote! {
            enum E { A, B(u8, String), C { x: i64 } }
        };
        let model = Input::from_syn(&input).unwrap();
        assert_eq!(describe(&model), "enum E{A,B(u8,String),C{x:i64}}");
    }
}
