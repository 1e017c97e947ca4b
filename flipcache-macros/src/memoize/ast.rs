//! The memoized function as *our* concepts: its receiver, its keyed arguments, what it returns
//! and which part of that is cached. Built leniently: anything we cannot use is recorded so
//! `valid.rs` can point at it.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Receiver, ReturnType, Type};

/// A function under `#[flipcache]`.
pub(crate) struct Function<'a> {
    pub item: &'a ItemFn,
    pub receiver: Option<&'a Receiver>,
    pub args: Vec<Arg<'a>>,
    pub output: Output<'a>,
    /// The body or signature names `Self`: the function lives in an impl block.
    pub mentions_self: bool,
}

/// One argument besides the receiver.
pub(crate) struct Arg<'a> {
    pub pat: &'a Pat,
    pub ty: &'a Type,
    /// The argument's name; `None` for a pattern we cannot key on (`(a, b): (u8, u8)`, `_`).
    pub ident: Option<&'a Ident>,
}

/// What the function returns.
pub(crate) enum Output<'a> {
    /// No return type: nothing to memoize.
    Nothing,
    Type {
        ty: &'a Type,
        shape: Shape,
        /// The cached part: `T` of `Result<T, E>` or `Option<T>`, else the whole type.
        value: &'a Type,
    },
}

/// Which part of the return value is cached.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Whole,
    OkOnly,
    SomeOnly,
    /// `Result<Option<T>, E>`: `T` is cached on `Ok(Some)`.
    OkSome,
    /// `Loaded<T>`: `T` is cached, with the entry settings (TTL, tags) the body chose.
    Entry,
    /// `Result<Loaded<T>, E>`: as `Entry`, on `Ok`.
    OkEntry,
}

impl<'a> Function<'a> {
    pub(crate) fn from_syn(item: &'a ItemFn) -> Self {
        let mut receiver = None;
        let mut args = Vec::new();
        for input in &item.sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r),
                FnArg::Typed(pt) => args.push(Arg {
                    pat: &pt.pat,
                    ty: &pt.ty,
                    ident: plain_name(&pt.pat),
                }),
            }
        }
        let output = match &item.sig.output {
            ReturnType::Default => Output::Nothing,
            ReturnType::Type(_, ty) => {
                let (shape, value) = shape_of(ty);
                Output::Type { ty, shape, value }
            }
        };
        let mentions_self =
            names_self(item.sig.to_token_stream()) || names_self(item.block.to_token_stream());
        Function {
            item,
            receiver,
            args,
            output,
            mentions_self,
        }
    }

    pub(crate) fn ident(&self) -> &'a Ident {
        &self.item.sig.ident
    }

    pub(crate) fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }
}

/// `x` or `mut x`; nothing else can be keyed by name.
fn plain_name(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => strip(&p.elem),
        Type::Group(g) => strip(&g.elem),
        _ => ty,
    }
}

/// Reads the shape off the last path segment: `...Result<T, ...>` caches `T` on `Ok` (and
/// `Result<Option<T>, ...>` caches `T` on `Ok(Some)`), `...Option<T>` caches `T` on `Some`,
/// `...Loaded<T>` caches `T` with the TTL and tags it carries, anything else is cached whole.
fn shape_of(ty: &Type) -> (Shape, &Type) {
    if let Type::Path(p) = strip(ty)
        && p.qself.is_none()
        && let Some(last) = p.path.segments.last()
        && let PathArguments::AngleBracketed(a) = &last.arguments
        && let Some(GenericArgument::Type(first)) = a.args.first()
    {
        if last.ident == "Result" {
            match shape_of(first) {
                (Shape::SomeOnly, inner) => return (Shape::OkSome, inner),
                (Shape::Entry, inner) => return (Shape::OkEntry, inner),
                _ => return (Shape::OkOnly, first),
            }
        }
        if last.ident == "Option" && a.args.len() == 1 {
            return (Shape::SomeOnly, first);
        }
        if last.ident == "Loaded" && a.args.len() == 1 {
            return (Shape::Entry, first);
        }
    }
    (Shape::Whole, ty)
}

/// Whether `tokens` name `Self`, outside nested `impl`/`trait` blocks (whose `Self` is theirs).
pub(crate) fn names_self(tokens: TokenStream) -> bool {
    let mut skip_next_brace = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) if i == "Self" && !skip_next_brace => return true,
            TokenTree::Ident(i) if i == "impl" || i == "trait" => skip_next_brace = true,
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace && skip_next_brace => {
                skip_next_brace = false;
            }
            TokenTree::Group(g) if !skip_next_brace && names_self(g.stream()) => return true,
            TokenTree::Punct(p) if p.as_char() == ';' => skip_next_brace = false,
            _ => {}
        }
    }
    false
}

/// Whether `tokens` use `self` (a `key = ...` expression that reads the receiver).
pub(crate) fn uses_self_value(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "self",
        TokenTree::Group(g) => uses_self_value(g.stream()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn shapes_follow_the_last_segment() {
        let ty: Type = syn::parse_quote!(std::io::Result<u64>);
        assert!(matches!(shape_of(&ty), (Shape::OkOnly, _)));
        let ty: Type = syn::parse_quote!(Result<String, MyError>);
        let (shape, value) = shape_of(&ty);
        assert!(matches!(shape, Shape::OkOnly));
        assert_eq!(value.to_token_stream().to_string(), "String");
        let ty: Type = syn::parse_quote!(Option<Vec<u8>>);
        assert!(matches!(shape_of(&ty), (Shape::SomeOnly, _)));
        let ty: Type = syn::parse_quote!(Vec<Option<u8>>);
        assert!(matches!(shape_of(&ty), (Shape::Whole, _)));
    }

    #[test]
    fn self_is_found_outside_nested_impls_only() {
        assert!(names_self(quote!({ Self::other(x) })));
        assert!(names_self(quote!((x: Vec<Self>))));
        assert!(!names_self(quote!({
            struct A;
            impl A {
                fn new() -> Self {
                    A
                }
            }
            A::new()
        })));
        assert!(!names_self(quote!({ self_ish(x) })));
        assert!(uses_self_value(quote!((self.id, x))));
        assert!(!uses_self_value(quote!((id, x))));
    }
}
