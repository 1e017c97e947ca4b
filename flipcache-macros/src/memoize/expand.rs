//! The model → tokens: the memoized function, its companions (`_cache`, `_peek`, `_invalidate`,
//! `_prime`, `_uncached`) and the hidden accessor of its `static` cache. Runtime helpers are
//! named through `::flipcache::__private01`; the public types that appear in the companions'
//! signatures (`::flipcache::FlipCache`, `::flipcache::aio::FlipCache`, `::flipcache::Result`)
//! by their public paths, so rustdoc and error messages show them as users know them.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, FnArg, Ident, Lit, Meta, Pat};

use super::ast::{self, Function, Output, Shape};
use super::attr::Options;

/// Where an item's attributes go.
struct Attrs<'a> {
    /// `cfg`/`cfg_attr`: on every generated item.
    cfg: Vec<&'a Attribute>,
    /// `doc`: on the memoized function.
    doc: Vec<&'a Attribute>,
    /// Lint levels, as written: on `_uncached`, which holds the body.
    lints: Vec<&'a Attribute>,
    /// Lint levels with `expect` turned into `allow`: on the other items, which share the
    /// signature (an `expect` there could go unfulfilled).
    lints_allow: Vec<Attribute>,
    /// Everything else (`inline`, `must_use`, `tracing::instrument`, ...): on the memoized
    /// function.
    other: Vec<&'a Attribute>,
}

fn split_attrs(attrs: &[Attribute]) -> Attrs<'_> {
    let mut out = Attrs {
        cfg: Vec::new(),
        doc: Vec::new(),
        lints: Vec::new(),
        lints_allow: Vec::new(),
        other: Vec::new(),
    };
    for a in attrs {
        let p = a.path();
        if p.is_ident("cfg") || p.is_ident("cfg_attr") {
            out.cfg.push(a);
        } else if p.is_ident("doc") {
            out.doc.push(a);
        } else if ["allow", "warn", "deny", "forbid", "expect"]
            .iter()
            .any(|l| p.is_ident(l))
        {
            out.lints.push(a);
            let mut allow = a.clone();
            if let Meta::List(l) = &mut allow.meta
                && l.path.is_ident("expect")
            {
                l.path = syn::parse_quote_spanned!(l.path.span()=> allow);
            }
            out.lints_allow.push(allow);
        } else {
            out.other.push(a);
        }
    }
    out
}

pub(crate) fn expand(f: &Function<'_>, o: &Options) -> TokenStream {
    let (shape, value) = match &f.output {
        Output::Type { shape, value, .. } => (*shape, *value),
        // Rejected by `valid.rs`; emit the function unchanged.
        Output::Nothing => return f.item.to_token_stream(),
    };
    let item = f.item;
    let vis = &item.vis;
    let ident = f.ident();
    let base = ident.unraw();
    let uncached = format_ident!("{}_uncached", base, span = ident.span());
    let cache_fn = format_ident!("{}_cache", base, span = ident.span());
    let invalidate_fn = format_ident!("{}_invalidate", base, span = ident.span());
    let peek_fn = format_ident!("{}_peek", base, span = ident.span());
    let prime_fn = format_ident!("{}_prime", base, span = ident.span());
    let stats_fn = format_ident!("{}_stats", base, span = ident.span());
    let memo_fn = format_ident!("__flipcache_memo_{}", base);
    let in_impl = f.receiver.is_some() || f.mentions_self || o.in_impl.is_some();
    let path = if in_impl { quote!(Self::) } else { quote!() };
    let link = if in_impl {
        format!("[`{base}`](Self::{base})")
    } else {
        format!("[`{base}`]({base}())")
    };
    let Attrs {
        cfg,
        doc,
        lints,
        lints_allow,
        other,
    } = split_attrs(&item.attrs);
    let is_async = f.is_async();
    let shape = match shape {
        Shape::Whole => quote!(Whole),
        Shape::OkOnly => quote!(OkOnly),
        Shape::SomeOnly => quote!(SomeOnly),
        Shape::OkSome => quote!(OkSome),
        Shape::Entry => quote!(Entry),
        Shape::OkEntry => quote!(OkEntry),
    };
    let writer = key_writer(f, o);
    let key_closure = quote! {
        |__flipcache_key: &mut ::std::string::String| { #writer }
    };
    let lookup = match alone(f, o) {
        Some((e, span)) => quote_spanned!(span=> lookup_alone(&#e)),
        None => quote!(lookup(#key_closure)),
    };

    // ---- the memoized function -----------------------------------------------------------
    let mut sig = item.sig.clone();
    for input in &mut sig.inputs {
        match input {
            FnArg::Typed(pt) => {
                if let Pat::Ident(pi) = &mut *pt.pat {
                    pi.mutability = None;
                }
            }
            FnArg::Receiver(r) => {
                if r.reference.is_none() {
                    r.mutability = None;
                }
            }
        }
    }
    let mut call_args: Vec<TokenStream> = Vec::new();
    if f.receiver.is_some() {
        call_args.push(quote!(self));
    }
    for a in &f.args {
        if let Some(i) = a.ident {
            call_args.push(i.to_token_stream());
        }
    }
    let body_fn = if call_args.is_empty() {
        quote!(#path #uncached)
    } else {
        quote!(move || #path #uncached(#(#call_args),*))
    };
    let refreshing = o.stale_for.is_some() || o.eager_refresh.is_some();
    let tags = tag_list(o);
    // Tags are built only when the call may store: on a miss, or (refreshing) on a hit that
    // claimed the refresh.
    let (finish_async, finish_sync) = match (&tags, refreshing) {
        (_, true) => (quote!(finish_refreshing_async), quote!(finish_refreshing)),
        (Some(_), false) => (quote!(finish_async_tagged), quote!(finish_tagged)),
        (None, false) => (quote!(finish_async), quote!(finish)),
    };
    let (tag_arg, tags_on_miss) = match &tags {
        Some(list) => {
            let stores = if refreshing {
                quote!(may_load)
            } else {
                quote!(is_miss)
            };
            (
                quote!(__flipcache_tags,),
                quote! {
                    let __flipcache_tags: ::flipcache::__private01::Vec<::flipcache::__private01::String> =
                        if __flipcache_found.#stores() { #list } else { ::flipcache::__private01::Vec::new() };
                },
            )
        }
        None if refreshing => (quote!(::flipcache::__private01::Vec::new(),), quote!()),
        None => (quote!(), quote!()),
    };
    let (ready, finish) = if is_async {
        (
            quote!(__flipcache_memo.ready_async().await;),
            quote!(__flipcache_memo.#finish_async(
                __flipcache_found,
                ::flipcache::__private01::#shape,
                #tag_arg
                #body_fn,
            ).await),
        )
    } else {
        (
            quote!(__flipcache_memo.ready();),
            quote!(__flipcache_memo.#finish_sync(
                __flipcache_found,
                ::flipcache::__private01::#shape,
                #tag_arg
                #body_fn,
            )),
        )
    };
    let memoized = quote! {
        #(#cfg)*
        #(#doc)*
        #(#lints_allow)*
        #(#other)*
        #vis #sig {
            let __flipcache_memo = #path #memo_fn();
            #ready
            let __flipcache_found = __flipcache_memo.#lookup;
            #tags_on_miss
            #finish
        }
    };

    // ---- companions ----------------------------------------------------------------------
    let generics = &item.sig.generics;
    let where_clause = &generics.where_clause;
    let key_needs_self = o
        .key
        .as_ref()
        .is_some_and(|k| ast::uses_self_value(k.to_token_stream()));
    let receiver = if key_needs_self {
        quote!(&self,)
    } else {
        quote!()
    };
    let params: Vec<TokenStream> = f
        .args
        .iter()
        .filter_map(|a| {
            let i = a.ident?;
            let ty = a.ty;
            Some(quote!(#i: #ty))
        })
        .collect();
    let value_name = free_name(f, "value");
    let asyncness = is_async.then(|| quote!(async));
    let dot_await = is_async.then(|| quote!(.await));
    let handle = super::handle::handle(f, o, key_needs_self, tags.as_ref());
    let args_ty = &handle.args_ty;
    let (cache_ty, cache_call, invalidate_call, prime_call, peek_call) = if is_async {
        (
            quote!(::flipcache::aio::MemoCache<#args_ty, #value>),
            quote!(handle_async),
            quote!(invalidate_async),
            quote!(prime_async),
            quote!(peek_async),
        )
    } else {
        (
            quote!(::flipcache::MemoCache<#args_ty, #value>),
            quote!(handle),
            quote!(invalidate),
            quote!(prime),
            quote!(peek),
        )
    };
    let prime_value = match &tags {
        Some(list) => quote!(::flipcache::__private01::Loaded::new(#value_name).tags(#list)),
        None => quote!(#value_name),
    };
    let key_fn = &handle.key_fn;
    let tags_fn = &handle.tags_fn;
    let cache_doc = format!(
        "The cache behind {link}, typed by its arguments (built, and connected to Redis, on \
         first use): read, set or invalidate the result for given arguments, count or clear \
         them all. See `flipcache::MemoCache` for how the arguments make up its first type \
         parameter."
    );
    let invalidate_doc = format!(
        "Removes {link}'s memoized result for these arguments, from Redis and from every \
         process's local layer; says whether Redis had it."
    );
    let prime_doc = format!("Stores `{value_name}` as {link}'s result for these arguments.");
    let peek_doc = format!(
        "{link}'s stored result for these arguments, if any (from the local layer or Redis), \
         without running the body: the typed view of the cache, by the function's own \
         arguments."
    );
    let uncached_doc = format!("Runs {link}'s body, without the cache.");
    let stats_doc = format!(
        "{link}'s cache counters (hits, misses, loads, ...); all zero until its first call \
         builds the cache."
    );
    let companions = quote! {
        #[doc = #stats_doc]
        #(#cfg)*
        #(#lints_allow)*
        #[allow(dead_code)]
        #vis fn #stats_fn() -> ::flipcache::Stats {
            #path #memo_fn().stats()
        }

        #[doc = #cache_doc]
        #(#cfg)*
        #(#lints_allow)*
        #[allow(dead_code, unused_variables)]
        #vis #asyncness fn #cache_fn() -> ::flipcache::Result<#cache_ty> {
            #path #memo_fn().#cache_call(#key_fn, #tags_fn) #dot_await
        }

        #[doc = #invalidate_doc]
        #(#cfg)*
        #(#lints_allow)*
        #[allow(dead_code, unused_variables)]
        #vis #asyncness fn #invalidate_fn #generics (#receiver #(#params),*) -> ::flipcache::Result<bool>
        #where_clause
        {
            let __flipcache_memo = #path #memo_fn();
            __flipcache_memo.#invalidate_call(__flipcache_memo.key(#key_closure)) #dot_await
        }

        #[doc = #peek_doc]
        #(#cfg)*
        #(#lints_allow)*
        #[allow(dead_code, unused_variables)]
        #vis #asyncness fn #peek_fn #generics (#receiver #(#params),*) -> ::flipcache::Result<::core::option::Option<#value>>
        #where_clause
        {
            let __flipcache_memo = #path #memo_fn();
            __flipcache_memo.#peek_call(__flipcache_memo.key(#key_closure)) #dot_await
        }

        #[doc = #prime_doc]
        #(#cfg)*
        #(#lints_allow)*
        #[allow(dead_code, unused_variables)]
        #vis #asyncness fn #prime_fn #generics (#receiver #(#params,)* #value_name: #value) -> ::flipcache::Result<()>
        #where_clause
        {
            let __flipcache_memo = #path #memo_fn();
            __flipcache_memo.#prime_call(__flipcache_memo.key(#key_closure), #prime_value) #dot_await
        }
    };

    // ---- the body, uncached --------------------------------------------------------------
    let mut uncached_sig = item.sig.clone();
    uncached_sig.ident = uncached;
    let block = &item.block;
    let uncached_fn = quote! {
        #[doc = #uncached_doc]
        #(#cfg)*
        #(#lints)*
        #[allow(dead_code)]
        #vis #uncached_sig #block
    };

    // ---- the cache itself ----------------------------------------------------------------
    let name = match &o.name {
        Some(n) => n.to_token_stream(),
        None => {
            let s = base.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #s))
        }
    };
    let codec = if o.json.is_some() {
        quote_spanned!(value.span()=> ::flipcache::__private01::json_codec::<#value>())
    } else {
        quote_spanned!(value.span()=> ::flipcache::__private01::default_codec::<#value>())
    };
    let mut setters = Vec::new();
    if let Some(e) = &o.local_max {
        setters.push(quote!(.local_max(#e)));
    }
    if let Some(e) = &o.local_max_bytes {
        setters.push(quote!(.local_max_bytes(#e)));
    }
    if let Some(e) = &o.expire_time {
        setters.push(match e {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => quote!(.expire_secs(#i)),
            _ => quote!(.expire_time(#e)),
        });
    }
    if let Some((_, e)) = &o.refresh {
        setters.push(quote!(.refresh_expire_time_on_get(#e)));
    }
    if let Some(e) = &o.timeout_ms {
        setters.push(quote!(.timeout_ms(#e)));
    }
    if let Some(e) = &o.redis {
        setters.push(quote!(.redis(#e)));
    }
    if let Some(e) = &o.cache_absent {
        setters.push(quote!(.cache_absent(#e)));
    }
    if let Some(e) = &o.expire_jitter {
        setters.push(quote!(.expire_jitter(#e)));
    }
    if let Some(e) = &o.stale_for {
        setters.push(quote!(.stale_for(#e)));
    }
    if let Some(e) = &o.eager_refresh {
        setters.push(quote!(.eager_refresh(#e)));
    }
    if let Some(e) = &o.fail_safe {
        setters.push(quote!(.fail_safe(#e)));
    }
    if let Some(e) = &o.trace_keys {
        setters.push(quote!(.trace_keys(#e)));
    }
    if let Some(e) = &o.distributed_lock {
        setters.push(quote!(.distributed_lock(#e)));
    }
    if let Some(e) = &o.tracking
        && let Some(variant) = super::valid::tracking_variant(e)
    {
        let variant = format_ident!("{}", variant, span = e.span());
        setters.push(quote!(.tracking(::flipcache::Tracking::#variant)));
    }
    let accessor = quote! {
        #[doc(hidden)]
        #[inline]
        #(#cfg)*
        fn #memo_fn() -> &'static ::flipcache::__private01::Memo<#value> {
            static __FLIPCACHE_MEMO: ::flipcache::__private01::Memo<#value> =
                ::flipcache::__private01::Memo::new(|| {
                    ::flipcache::__private01::MemoOptions::new(#name, #codec) #(#setters)*
                });
            &__FLIPCACHE_MEMO
        }
    };

    quote! {
        #memoized
        #companions
        #uncached_fn
        #accessor
    }
}

/// The statements that write the key into `__flipcache_key`.
fn key_writer(f: &Function<'_>, o: &Options) -> TokenStream {
    key_writer_of(f, o, true, &|e| e.to_token_stream())
}

/// [`key_writer`]; the default key writes each argument `x` as `&x` when `borrow` is true, as
/// `&*x` otherwise, and a `key = ...` expression is written as `key_expr` gives it. The typed
/// handle's key function binds the arguments as references: it passes false (the same type
/// and span as in the call, so a type that is not `MemoKey` gets the call's error, reported
/// once) and a `key_expr` that dereferences the arguments taken by value.
pub(crate) fn key_writer_of(
    f: &Function<'_>,
    o: &Options,
    borrow: bool,
    key_expr: &dyn Fn(&Expr) -> TokenStream,
) -> TokenStream {
    let parts = |items: Vec<(TokenStream, proc_macro2::Span)>| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (e, span))| {
                let first = i == 0;
                quote_spanned!(span=> ::flipcache::__private01::write_part(__flipcache_key, #first, #e);)
            })
            .collect::<TokenStream>()
    };
    match &o.key {
        Some(Expr::Tuple(t)) if t.elems.len() >= 2 => parts(
            t.elems
                .iter()
                .map(|e| {
                    let tokens = key_expr(e);
                    (quote_spanned!(e.span()=> &(#tokens)), e.span())
                })
                .collect(),
        ),
        Some(e) => {
            let tokens = key_expr(e);
            quote_spanned!(e.span()=> ::flipcache::__private01::write_alone(__flipcache_key, &(#tokens));)
        }
        None => {
            let args: Vec<(TokenStream, proc_macro2::Span)> = f
                .args
                .iter()
                .filter_map(|a| {
                    let i = a.ident?;
                    let span = a.ty.span();
                    let e = if borrow {
                        quote_spanned!(span=> &#i)
                    } else {
                        quote_spanned!(span=> &*#i)
                    };
                    Some((e, span))
                })
                .collect();
            match args.len() {
                0 => quote!(let _ = __flipcache_key;),
                1 => {
                    let (e, span) = &args[0];
                    quote_spanned!(*span=> ::flipcache::__private01::write_alone(__flipcache_key, #e);)
                }
                _ => parts(args),
            }
        }
    }
}

/// The one value the key is made of, when it is one (a single argument, or a `key = ...`
/// that is not a tuple): looked up without a closure, and without copying when it is a string.
fn alone(f: &Function<'_>, o: &Options) -> Option<(TokenStream, proc_macro2::Span)> {
    match &o.key {
        Some(Expr::Tuple(t)) if t.elems.len() >= 2 => None,
        Some(e) => Some((quote!((#e)), e.span())),
        None => match f.args.as_slice() {
            [a] => Some((a.ident?.to_token_stream(), a.ty.span())),
            _ => None,
        },
    }
}

/// `want`, or `want_`, `want__`, ... : a parameter name no argument already uses.
fn free_name(f: &Function<'_>, want: &str) -> Ident {
    let mut name = want.to_owned();
    while f.args.iter().any(|a| a.ident.is_some_and(|i| i == &name)) {
        name.push('_');
    }
    Ident::new(&name, proc_macro2::Span::call_site())
}

/// `tags = ["user:{id}", ...]` as an expression building the tags (a `Vec<String>`): each
/// literal goes to `format!` unchanged, so its placeholders capture the arguments by name.
fn tag_list(o: &Options) -> Option<TokenStream> {
    let lits = super::valid::tag_literals(o.tags.as_ref()?)?;
    let items = lits
        .into_iter()
        .map(|lit| quote_spanned!(lit.span()=> ::std::format!(#lit)));
    Some(quote!(::flipcache::__private01::Vec::from([#(#items),*])))
}
