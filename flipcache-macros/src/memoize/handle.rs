//! The typed cache handle (`<fn>_cache()` returns `::flipcache::MemoCache<A, V>`): which
//! arguments make up `A`, its type, and the two closures the runtime keeps as function
//! pointers: one writes the key of an `&A` exactly as a call does, the other formats the
//! `tags = [...]` of an `&A`.
//!
//! `A` holds the keyed arguments: all of them, or with `key = ...` those the key or the tags
//! name (an argument that only the body reads, a database handle say, stays out). One argument
//! is `A` itself, a reference `&T` being `T` (so `fn(name: &str)` gives `get("alice")`);
//! several are a tuple of owned forms (`&str` is `String`, `&[T]` is `Vec<T>`, another `&T` is
//! `T::Owned`), bound back to `&T` with `Borrow` inside the closures so the key expression sees
//! the types it was written for; an argument taken by value is bound to a reference and read
//! through `(*x)` in a key expression (see [`deref_args`]). Every lifetime left in `A` becomes
//! `'static` (`_cache()` has no lifetime to give it). When the key reads `self`, `A` is `str`:
//! the key's text.

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{Expr, Type};

use super::ast::{Arg, Function};
use super::attr::Options;

/// What `<fn>_cache()` needs to build the handle.
pub(crate) struct Handle {
    /// `A`.
    pub args_ty: TokenStream,
    /// `|args: &A, key: &mut String| { ... }`.
    pub key_fn: TokenStream,
    /// `|args: &A| -> Vec<String> { ... }`.
    pub tags_fn: TokenStream,
}

/// `tags`, when the function has `tags = [...]`, is the expression building them from the
/// arguments by name.
pub(crate) fn handle(
    f: &Function<'_>,
    o: &Options,
    key_reads_self: bool,
    tags: Option<&TokenStream>,
) -> Handle {
    let string = quote!(::flipcache::__private01::String);
    let vec = quote!(::flipcache::__private01::Vec);
    if key_reads_self {
        return Handle {
            args_ty: quote!(str),
            key_fn: quote! {
                |__flipcache_args: &str, __flipcache_key: &mut #string| {
                    __flipcache_key.push_str(__flipcache_args)
                }
            },
            tags_fn: quote!(|_: &str| -> #vec<#string> { #vec::new() }),
        };
    }
    let used: Vec<&Arg<'_>> = f
        .args
        .iter()
        .filter(|a| a.ident.is_some_and(|i| is_keyed(i, o)))
        .collect();
    let (args_ty, bindings) = match used.as_slice() {
        [] => (quote!(()), quote!(let _ = __flipcache_args;)),
        [one] => {
            let ty = statics(referent(one.ty).unwrap_or(one.ty));
            let name = one.ident;
            (ty, quote!(let #name = __flipcache_args;))
        }
        many => {
            let mut tys = Vec::new();
            let mut bindings = TokenStream::new();
            for (i, a) in many.iter().enumerate() {
                let index = syn::Index::from(i);
                let name = a.ident;
                match referent(a.ty) {
                    Some(inner) => {
                        let inner_ty = statics(inner);
                        tys.push(owned(inner, &inner_ty));
                        bindings.extend(quote! {
                            let #name: &#inner_ty =
                                ::core::borrow::Borrow::borrow(&__flipcache_args.#index);
                        });
                    }
                    None => {
                        tys.push(statics(a.ty));
                        bindings.extend(quote!(let #name = &__flipcache_args.#index;));
                    }
                }
            }
            (quote!((#(#tys,)*)), bindings)
        }
    };
    // The closures bind every argument as a reference; a key expression written for an
    // argument taken by value reads it through `(*x)`, a place of its own type.
    let by_value: Vec<&Ident> = used
        .iter()
        .filter(|a| referent(a.ty).is_none())
        .filter_map(|a| a.ident)
        .collect();
    let writer =
        super::expand::key_writer_of(f, o, false, &|e| deref_args(e.to_token_stream(), &by_value));
    let tags_body = match tags {
        Some(list) => quote!(#bindings #list),
        None => quote!(let _ = __flipcache_args; #vec::new()),
    };
    Handle {
        key_fn: quote! {
            |__flipcache_args: &#args_ty, __flipcache_key: &mut #string| { #bindings #writer }
        },
        tags_fn: quote!(|__flipcache_args: &#args_ty| -> #vec<#string> { #tags_body }),
        args_ty,
    }
}

/// Whether the key or the tags read the argument `name` (every argument without `key`).
fn is_keyed(name: &Ident, o: &Options) -> bool {
    let Some(key) = &o.key else {
        return true;
    };
    let in_tags = o
        .tags
        .as_ref()
        .and_then(super::valid::tag_literals)
        .is_some_and(|lits| lits.iter().any(|l| names(&l.value(), name)));
    in_tags || mentions(key, name)
}

/// Whether `e` names `name`: as an identifier, or as a `{name}` placeholder of a literal
/// (`format!("{a}+{b}")` captures by name).
fn mentions(e: &Expr, name: &Ident) -> bool {
    fn walk(tokens: TokenStream, name: &Ident) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(i) => &i == name,
            TokenTree::Group(g) => walk(g.stream(), name),
            TokenTree::Literal(l) => names(&l.to_string(), name),
            TokenTree::Punct(_) => false,
        })
    }
    walk(e.to_token_stream(), name)
}

/// Whether format text names `name` in a placeholder (`{name}`, `{name:?}`).
fn names(text: &str, name: &Ident) -> bool {
    let name = name.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    text.contains(&format!("{{{name}}}")) || text.contains(&format!("{{{name}:"))
}

/// `tokens` (a key expression) with each use of a variable in `names` (arguments taken by value,
/// bound to references in the handle's closures) written `(*x)`: a place of the argument's own
/// type, so the expression means what it means in the function (a valid key expression only
/// copies or borrows such an argument: the body still takes it). An identifier after `.` or
/// `::`, before `:` (a path, a field name), or naming a macro (`x!`) is not a variable and
/// stays.
fn deref_args(tokens: TokenStream, names: &[&Ident]) -> TokenStream {
    if names.is_empty() {
        return tokens;
    }
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Ident(ident) if names.contains(&ident) => {
                let prev = i.checked_sub(1).and_then(|p| tokens.get(p));
                let next = tokens.get(i + 1);
                let before_prev = i.checked_sub(2).and_then(|p| tokens.get(p));
                let after_dot = matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == '.');
                let after_path = matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == ':')
                    && matches!(before_prev, Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint);
                let before_colon = matches!(next, Some(TokenTree::Punct(p)) if p.as_char() == ':');
                let macro_name = matches!(next, Some(TokenTree::Punct(p)) if p.as_char() == '!' && p.spacing() == Spacing::Alone);
                if after_dot || after_path || before_colon || macro_name {
                    out.push(tt.clone());
                } else {
                    let span = ident.span();
                    let mut star = Punct::new('*', Spacing::Alone);
                    star.set_span(span);
                    let inner: TokenStream =
                        [TokenTree::Punct(star), TokenTree::Ident(ident.clone())]
                            .into_iter()
                            .collect();
                    let mut group = Group::new(Delimiter::Parenthesis, inner);
                    group.set_span(span);
                    out.push(TokenTree::Group(group));
                }
            }
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), deref_args(g.stream(), names));
                group.set_span(g.span());
                out.push(TokenTree::Group(group));
            }
            other => out.push(other.clone()),
        }
    }
    out.into_iter().collect()
}

/// `T` of `&T` or `&mut T`.
fn referent(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(p) => referent(&p.elem),
        Type::Group(g) => referent(&g.elem),
        Type::Reference(r) => Some(&r.elem),
        _ => None,
    }
}

/// The owned form of `inner` (the `T` of a `&T` argument), `inner_ty` being it with `'static`
/// lifetimes.
fn owned(inner: &Type, inner_ty: &TokenStream) -> TokenStream {
    match inner {
        Type::Paren(p) => owned(&p.elem, inner_ty),
        Type::Group(g) => owned(&g.elem, inner_ty),
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
            quote!(::flipcache::__private01::String)
        }
        Type::Slice(s) => {
            let elem = statics(&s.elem);
            quote!(::flipcache::__private01::Vec<#elem>)
        }
        _ => quote!(<#inner_ty as ::std::borrow::ToOwned>::Owned),
    }
}

/// `ty` with every lifetime `'static`, elided reference lifetimes included (`&[&str]` is
/// `[&'static str]`).
fn statics(ty: &Type) -> TokenStream {
    fn walk(tokens: TokenStream) -> TokenStream {
        let mut out = Vec::new();
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Punct(p) if p.as_char() == '\'' => {
                    // A lifetime: `'` then its name.
                    if let Some(TokenTree::Ident(_)) = iter.peek() {
                        iter.next();
                    }
                    out.extend(lifetime(p.span()));
                }
                TokenTree::Punct(p) if p.as_char() == '&' => {
                    let span = p.span();
                    out.push(TokenTree::Punct(Punct::new('&', Spacing::Alone)));
                    let named =
                        matches!(iter.peek(), Some(TokenTree::Punct(q)) if q.as_char() == '\'');
                    if !named {
                        out.extend(lifetime(span));
                    }
                }
                TokenTree::Group(g) => {
                    let mut group = Group::new(g.delimiter(), walk(g.stream()));
                    group.set_span(g.span());
                    out.push(TokenTree::Group(group));
                }
                other => out.push(other),
            }
        }
        out.into_iter().collect()
    }
    let tokens = walk(ty.to_token_stream());
    // A type with no lifetime left out comes back as it was written, spans and all.
    if tokens.to_string() == ty.to_token_stream().to_string() {
        return ty.to_token_stream();
    }
    tokens
}

fn lifetime(span: Span) -> [TokenTree; 2] {
    [
        TokenTree::Punct({
            let mut p = Punct::new('\'', Spacing::Joint);
            p.set_span(span);
            p
        }),
        TokenTree::Ident(format_ident!("static", span = span)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statics_of(ty: &str) -> String {
        statics(&syn::parse_str(ty).expect("a type")).to_string()
    }

    #[test]
    fn every_lifetime_becomes_static() {
        assert_eq!(statics_of("u64"), "u64");
        assert_eq!(statics_of("&str"), "& 'static str");
        assert_eq!(statics_of("&'a [&str]"), "& 'static [& 'static str]");
        assert_eq!(statics_of("Cow<'a, str>"), "Cow < 'static , str >");
        assert_eq!(statics_of("&&u8"), "& 'static & 'static u8");
    }

    /// `A` for a function under `#[flipcache(options)]`.
    fn args_of(options: TokenStream, item: TokenStream) -> String {
        let mut errors = super::super::Errors::default();
        let o = Options::parse(options, &mut errors);
        assert!(errors.0.is_none(), "valid options");
        let item: syn::ItemFn = syn::parse2(item).expect("a function");
        let f = Function::from_syn(&item);
        let reads_self = o
            .key
            .as_ref()
            .is_some_and(|k| super::super::ast::uses_self_value(k.to_token_stream()));
        handle(&f, &o, reads_self, None).args_ty.to_string()
    }

    #[test]
    fn the_handle_takes_the_keyed_arguments() {
        let string = ":: flipcache :: __private01 :: String";
        assert_eq!(
            args_of(
                quote!(),
                quote!(
                    fn f() -> u8 {
                        0
                    }
                )
            ),
            "()"
        );
        assert_eq!(
            args_of(
                quote!(),
                quote!(
                    fn f(n: u64) -> u8 {
                        0
                    }
                )
            ),
            "u64"
        );
        assert_eq!(
            args_of(
                quote!(),
                quote!(
                    fn f(s: &str) -> u8 {
                        0
                    }
                )
            ),
            "str"
        );
        assert_eq!(
            args_of(
                quote!(),
                quote!(
                    fn f(s: &str, mut n: u32) -> u8 {
                        0
                    }
                )
            ),
            format!("({string} , u32 ,)")
        );
        assert_eq!(
            args_of(
                quote!(),
                quote!(
                    fn f(v: &[&str], u: &User) -> u8 {
                        0
                    }
                )
            ),
            "(:: flipcache :: __private01 :: Vec < & 'static str > , \
             < User as :: std :: borrow :: ToOwned > :: Owned ,)"
        );
        assert_eq!(
            args_of(
                quote!(key = sku),
                quote!(
                    fn f(&self, db: &Db, sku: u32) -> u8 {
                        0
                    }
                )
            ),
            "u32"
        );
        assert_eq!(
            args_of(
                quote!(key = format!("{a}+{b}")),
                quote!(
                    fn f(a: u8, b: &str, verbose: bool) -> u8 {
                        0
                    }
                )
            ),
            format!("(u8 , {string} ,)")
        );
        assert_eq!(
            args_of(
                quote!(key = id, tags = ["org:{org}"]),
                quote!(
                    fn f(id: u64, org: &str, db: &Db) -> u8 {
                        0
                    }
                )
            ),
            format!("(u64 , {string} ,)")
        );
        assert_eq!(
            args_of(
                quote!(key = (self.region.as_str(), sku)),
                quote!(
                    fn f(&self, sku: u32) -> u8 {
                        0
                    }
                )
            ),
            "str"
        );
    }

    #[test]
    fn arguments_taken_by_value_are_dereferenced_in_the_key() {
        let n = format_ident!("n");
        let p = format_ident!("p");
        let names = [&n, &p];
        let rewrite = |e: TokenStream| deref_args(e, &names).to_string();
        assert_eq!(rewrite(quote!(i64::from(n) * 2)), "i64 :: from ((* n)) * 2");
        assert_eq!(rewrite(quote!(p.n + n)), "(* p) . n + (* n)");
        assert_eq!(rewrite(quote!(S { n: n })), "S { n : (* n) }");
        assert_eq!(rewrite(quote!(m::n(n))), "m :: n ((* n))");
        assert_eq!(rewrite(quote!(n!(x) != n)), "n ! (x) != (* n)");
        assert_eq!(
            rewrite(quote!(format!("{n}", n))),
            "format ! (\"{n}\" , (* n))"
        );
    }

    #[test]
    fn placeholders_and_identifiers_count_as_mentions() {
        let a = format_ident!("a");
        let e: Expr = syn::parse_quote!(format!("{a}+{b}"));
        assert!(mentions(&e, &a));
        let e: Expr = syn::parse_quote!(format!("{a:?}"));
        assert!(mentions(&e, &a));
        let e: Expr = syn::parse_quote!((x.a(), b));
        assert!(mentions(&e, &a));
        let e: Expr = syn::parse_quote!(b.len());
        assert!(!mentions(&e, &a));
    }
}
