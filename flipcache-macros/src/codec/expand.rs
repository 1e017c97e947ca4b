//! The model as tokens: `impl FlipCodec` (fingerprint, minimum length, encode, decode) and,
//! unless `no_value`, `impl FlipValue`. Runtime items are named through
//! `::flipcache::__private01`; calls to field codecs carry the field type's (or the `with`
//! path's) span, so a type error points at the field.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Generics, Ident, Type, TypePath, WhereClause, parse_quote};

use super::ast::{Field, Fields, Input, Style};
use super::schema;

pub fn expand(input: &Input<'_>) -> TokenStream {
    let original = input.original();
    let ident = &original.ident;
    let name = ident.to_string();
    let generics = &original.generics;
    let (impl_generics, ty_generics, _) = generics.split_for_impl();
    let bounds = Bounds::infer(input);
    let codec_where = bounds.where_clause(generics, None);

    let fingerprint = fingerprint(input, &bounds);
    let min_len = min_len(input);
    let encode = encode(input);
    let len_hint = len_hint(input);
    let decode = decode(input, &name);

    let codec = quote! {
        #[automatically_derived]
        impl #impl_generics ::flipcache::__private01::FlipCodec for #ident #ty_generics #codec_where {
            const FINGERPRINT: u64 = #fingerprint;
            const MIN_ENCODED_LEN: usize = #min_len;

            #[inline]
            fn encoded_len_hint(&self) -> usize {
                #len_hint
            }

            #[inline]
            fn encode(&self, __out: &mut ::flipcache::__private01::Vec<u8>) {
                #encode
            }

            #[inline]
            fn decode(
                __input: &mut ::flipcache::__private01::Reader<'_>,
            ) -> ::core::result::Result<Self, ::flipcache::__private01::DecodeError> {
                __input.nested(|__input| { #decode })
            }
        }
    };
    if input.attrs().no_value.is_some() {
        return codec;
    }

    // A generic type is a value only where it is `Clone + Send + Sync + 'static`; a concrete
    // type must be, and gets the compiler's usual error (pointing at the derive) if not.
    let value_bound = (!generics.params.is_empty()).then(|| -> syn::WherePredicate {
        parse_quote! {
            Self: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static
        }
    });
    let value_where = bounds.where_clause(generics, value_bound);
    quote! {
        #codec

        #[automatically_derived]
        impl #impl_generics ::flipcache::__private01::FlipValue for #ident #ty_generics #value_where {
            #[inline]
            fn encode_value(
                &self,
                __out: &mut ::flipcache::__private01::Vec<u8>,
            ) -> ::core::result::Result<(), ::flipcache::__private01::String> {
                ::flipcache::__private01::encode_value(self, __out)
            }

            fn decode_value(
                __bytes: &[u8],
            ) -> ::core::result::Result<Self, ::flipcache::__private01::String> {
                ::flipcache::__private01::decode_value::<Self>(__bytes, #name)
            }
        }
    }
}

/// The bounds the impls need, serde-style: `T: FlipCodec` for each type parameter used in a
/// field encoded by its own impl (not inside `PhantomData`), and `FieldType: Default` for
/// skipped fields whose type mentions a type parameter.
struct Bounds<'a> {
    codec: Vec<&'a Ident>,
    default: Vec<&'a Type>,
}

impl<'a> Bounds<'a> {
    fn infer(input: &Input<'a>) -> Self {
        let generics = &input.original().generics;
        let params: Vec<&'a Ident> = generics.type_params().map(|p| &p.ident).collect();
        let mut used = vec![false; params.len()];
        let mut default = Vec::new();
        for field in input.all_fields() {
            if field.uses_own_codec() {
                mark_params(field.ty, &params, &mut used);
            } else if field.attrs.skip.is_some() {
                let mut mentioned = vec![false; params.len()];
                mark_params(field.ty, &params, &mut mentioned);
                if mentioned.contains(&true) {
                    default.push(field.ty);
                }
            }
        }
        let codec = params
            .into_iter()
            .zip(used)
            .filter_map(|(p, used)| used.then_some(p))
            .collect();
        Bounds { codec, default }
    }

    fn where_clause(&self, generics: &Generics, extra: Option<syn::WherePredicate>) -> WhereClause {
        let mut clause = generics
            .where_clause
            .clone()
            .unwrap_or_else(|| WhereClause {
                where_token: Default::default(),
                predicates: Default::default(),
            });
        for param in &self.codec {
            clause
                .predicates
                .push(parse_quote!(#param: ::flipcache::__private01::FlipCodec));
        }
        for ty in &self.default {
            clause
                .predicates
                .push(parse_quote!(#ty: ::core::default::Default));
        }
        clause.predicates.extend(extra);
        clause
    }
}

fn mark_params(ty: &Type, params: &[&Ident], used: &mut [bool]) {
    struct Marker<'p, 'u> {
        params: &'p [&'p Ident],
        used: &'u mut [bool],
    }
    impl<'ast> Visit<'ast> for Marker<'_, '_> {
        fn visit_type_path(&mut self, ty: &'ast TypePath) {
            let path = &ty.path;
            if path
                .segments
                .last()
                .is_some_and(|s| s.ident == "PhantomData")
            {
                return;
            }
            if ty.qself.is_none()
                && let Some(first) = path.segments.first()
                && let Some(i) = self.params.iter().position(|p| **p == first.ident)
            {
                self.used[i] = true;
            }
            visit::visit_type_path(self, ty);
        }
    }
    Marker { params, used }.visit_type(ty);
}

/// `Fingerprint::new().str("<schema>")`, then the fingerprints of the bounded type
/// parameters and the values of const parameters, so each instantiation differs.
///
/// The fingerprints of the field types are mixed in too, so changing a nested derived type
/// (`inner: Inner`, `items: Vec<Inner>`) changes this one. A field whose type names this type
/// itself (`Box<Self>`, `Vec<Node>` inside `Node`) is described by its tokens only: evaluating its
/// fingerprint would recurse forever.
fn fingerprint(input: &Input<'_>, bounds: &Bounds<'_>) -> TokenStream {
    let description = schema::describe(input);
    let params = &bounds.codec;
    let consts = input.original().generics.const_params().map(|c| &c.ident);
    let own = &input.original().ident;
    let nested: Vec<&syn::Type> = fields_of(input)
        .filter(|f| f.uses_own_codec() && !names_type(f.ty, own))
        .map(|f| f.ty)
        .collect();
    quote! {
        ::flipcache::__private01::Fingerprint::new()
            .str(#description)
            #(.u64(<#params as ::flipcache::__private01::FlipCodec>::FINGERPRINT))*
            #(.u64(#consts as u64))*
            #(.u64(<#nested as ::flipcache::__private01::FlipCodec>::FINGERPRINT))*
            .finish()
    }
}

/// Every field of a struct, or of every variant of an enum, in order.
fn fields_of<'i>(
    input: &'i Input<'_>,
) -> Box<dyn Iterator<Item = &'i crate::codec::ast::Field<'i>> + 'i> {
    match input {
        Input::Struct(s) => Box::new(s.fields.list.iter()),
        Input::Enum(e) => Box::new(e.variants.iter().flat_map(|v| v.fields.list.iter())),
    }
}

/// Whether `ty` mentions `Self` or the type being derived.
fn names_type(ty: &syn::Type, own: &syn::Ident) -> bool {
    fn walk(tokens: proc_macro2::TokenStream, own: &syn::Ident) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => i == *own || i == "Self",
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), own),
            _ => false,
        })
    }
    walk(quote::ToTokens::to_token_stream(ty), own)
}

/// The sum of the fields' minimum lengths (for a struct), or 1 (an enum's variant index).
fn min_len(input: &Input<'_>) -> TokenStream {
    match input {
        Input::Struct(s) => {
            let tys = s
                .fields
                .list
                .iter()
                .filter(|f| f.uses_own_codec())
                .map(|f| f.ty);
            quote! {
                0usize #(.saturating_add(
                    <#tys as ::flipcache::__private01::FlipCodec>::MIN_ENCODED_LEN
                ))*
            }
        }
        Input::Enum(_) => quote!(1usize),
    }
}

/// The local a pattern binds field `i` to.
fn binding(i: usize) -> Ident {
    format_ident!("__f{}", i)
}

fn encode(input: &Input<'_>) -> TokenStream {
    match input {
        Input::Struct(s) => {
            let writes = s.fields.list.iter().filter(|f| f.is_encoded()).map(|f| {
                let member = &f.member;
                encode_field(f, quote!(&self.#member))
            });
            quote!(#(#writes)*)
        }
        Input::Enum(e) if e.variants.is_empty() => quote!(match *self {}),
        Input::Enum(e) => {
            let arms = e.variants.iter().enumerate().map(|(index, v)| {
                let index = index as u64;
                let variant = v.ident;
                let pattern = pattern(&v.fields);
                let writes = v
                    .fields
                    .list
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.is_encoded())
                    .map(|(i, f)| {
                        let bound = binding(i);
                        encode_field(f, quote!(#bound))
                    });
                quote! {
                    Self::#variant #pattern => {
                        ::flipcache::__private01::write_variant(__out, #index);
                        #(#writes)*
                    }
                }
            });
            quote! {
                match self {
                    #(#arms)*
                }
            }
        }
    }
}

/// The sum of the fields' `encoded_len_hint`s (plus a byte for an enum's variant index).
/// Fields encoded `with` a module count for nothing: the module has no hint.
fn len_hint(input: &Input<'_>) -> TokenStream {
    match input {
        Input::Struct(s) => {
            let hints = s
                .fields
                .list
                .iter()
                .filter(|f| f.uses_own_codec())
                .map(|f| {
                    let member = &f.member;
                    field_hint(f, quote!(&self.#member))
                });
            quote!(0usize #(.saturating_add(#hints))*)
        }
        Input::Enum(e) if e.variants.is_empty() => quote!(match *self {}),
        Input::Enum(e) => {
            let arms = e.variants.iter().map(|v| {
                let variant = v.ident;
                let pattern = pattern_where(&v.fields, |f| f.uses_own_codec());
                let hints = v
                    .fields
                    .list
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.uses_own_codec())
                    .map(|(i, f)| {
                        let bound = binding(i);
                        field_hint(f, quote!(#bound))
                    });
                quote!(Self::#variant #pattern => 1usize #(.saturating_add(#hints))*,)
            });
            quote! {
                match self {
                    #(#arms)*
                }
            }
        }
    }
}

/// One field's `encoded_len_hint`; `value` is a reference to it.
fn field_hint(field: &Field<'_>, value: TokenStream) -> TokenStream {
    let ty = field.ty;
    let f =
        quote_spanned!(ty.span()=> <#ty as ::flipcache::__private01::FlipCodec>::encoded_len_hint);
    quote!(#f(#value))
}

/// `{ a: __f0, b: _ }` or `(__f0, _)`: encoded fields bound, skipped ones ignored.
fn pattern(fields: &Fields<'_>) -> TokenStream {
    pattern_where(fields, |f| f.is_encoded())
}

/// [`pattern`], binding the fields for which `bind` holds.
fn pattern_where(fields: &Fields<'_>, bind: fn(&Field<'_>) -> bool) -> TokenStream {
    let parts = fields.list.iter().enumerate().map(|(i, f)| {
        let bound = if bind(f) {
            let b = binding(i);
            quote!(#b)
        } else {
            quote!(_)
        };
        match fields.style {
            Style::Named => {
                let member = &f.member;
                quote!(#member: #bound)
            }
            _ => bound,
        }
    });
    match fields.style {
        Style::Named => quote!({ #(#parts),* }),
        Style::Tuple => quote!(( #(#parts),* )),
        Style::Unit => quote!(),
    }
}

/// One field's write; `value` is a reference to it.
fn encode_field(field: &Field<'_>, value: TokenStream) -> TokenStream {
    let ty = field.ty;
    match &field.attrs.with {
        None => {
            let f =
                quote_spanned!(ty.span()=> <#ty as ::flipcache::__private01::FlipCodec>::encode);
            quote!(#f(#value, __out);)
        }
        Some(with) => {
            // Going through a typed fn pointer makes a misfit `encode` an error at the path.
            let path = &with.path;
            let f = quote_spanned! {path.span()=>
                let __encode: fn(&#ty, &mut ::flipcache::__private01::Vec<u8>) = #path::encode;
            };
            quote!({ #f __encode(#value, __out); })
        }
    }
}

fn decode(input: &Input<'_>, name: &str) -> TokenStream {
    match input {
        Input::Struct(s) => {
            let construct = construct(quote!(Self), &s.fields);
            quote!(::core::result::Result::Ok(#construct))
        }
        Input::Enum(e) => {
            let arms = e.variants.iter().enumerate().map(|(index, v)| {
                let index = index as u64;
                let variant = v.ident;
                let construct = construct(quote!(Self::#variant), &v.fields);
                quote!(#index => ::core::result::Result::Ok(#construct),)
            });
            quote! {
                match ::flipcache::__private01::read_variant(__input)? {
                    #(#arms)*
                    __index => ::core::result::Result::Err(
                        ::flipcache::__private01::unknown_variant(__input, #name, __index)
                    ),
                }
            }
        }
    }
}

/// `Path { a: <read>, b: <default> }`, `Path(<read>, ..)` or `Path`, reading fields in
/// declaration order.
fn construct(path: TokenStream, fields: &Fields<'_>) -> TokenStream {
    let values = fields.list.iter().map(|f| {
        let value = decode_field(f);
        match fields.style {
            Style::Named => {
                let member = &f.member;
                quote!(#member: #value)
            }
            _ => value,
        }
    });
    match fields.style {
        Style::Named => quote!(#path { #(#values),* }),
        Style::Tuple => quote!(#path( #(#values),* )),
        Style::Unit => path,
    }
}

fn decode_field(field: &Field<'_>) -> TokenStream {
    let ty = field.ty;
    if field.attrs.skip.is_some() {
        return quote_spanned!(ty.span()=> <#ty as ::core::default::Default>::default());
    }
    match &field.attrs.with {
        None => {
            let f =
                quote_spanned!(ty.span()=> <#ty as ::flipcache::__private01::FlipCodec>::decode);
            quote!(#f(__input)?)
        }
        Some(with) => {
            let path = &with.path;
            let f = quote_spanned! {path.span()=>
                let __decode: fn(
                    &mut ::flipcache::__private01::Reader<'_>,
                ) -> ::core::result::Result<#ty, ::flipcache::__private01::DecodeError> =
                    #path::decode;
            };
            quote!({ #f __decode(__input)? })
        }
    }
}
