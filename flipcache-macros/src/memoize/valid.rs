//! Every misuse of `#[flipcache]` becomes a `syn::Error` spanned at the offending tokens; all
//! of them are reported together.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{
    Expr, ExprLit, ExprUnary, GenericParam, Lit, Type, TypeParamBound, UnOp, WherePredicate,
};

use super::Errors;
use super::ast::{Function, Output, Shape};
use super::attr::Options;

pub(crate) fn check(f: &Function<'_>, options: &Options, errors: &mut Errors) {
    signature(f, errors);
    arguments(f, errors);
    output(f, errors);
    values(options, errors);
    absence(f, options, errors);
    refreshing(f, options, errors);
}

/// `stale_for` and `eager_refresh` run the body again in the background, after the call has
/// returned: it must own everything it uses.
fn refreshing(f: &Function<'_>, options: &Options, errors: &mut Errors) {
    if options.stale_for.is_none() && options.eager_refresh.is_none() {
        return;
    }
    let name = if options.stale_for.is_some() {
        "stale_for"
    } else {
        "eager_refresh"
    };
    if let Some(r) = f.receiver {
        errors.push(syn::Error::new_spanned(
            r,
            format!(
                "`{name}` refreshes results in the background, after the call returns: it \
                 needs a function without `self` (its body must own what it uses)"
            ),
        ));
        return;
    }
    for a in &f.args {
        if let Some(b) = find_borrow(a.ty) {
            errors.push(syn::Error::new_spanned(
                b,
                format!(
                    "`{name}` refreshes results in the background, after the call returns: \
                     every argument must be owned (write `String` for `&str`)"
                ),
            ));
            return;
        }
    }
    tags(f, options, errors);
}

fn signature(f: &Function<'_>, errors: &mut Errors) {
    let sig = &f.item.sig;
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            "#[flipcache] cannot memoize a `const fn`: it may run at compile time, where there \
             is no cache",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            u,
            "#[flipcache] cannot memoize an `unsafe fn`: wrap the unsafe call in a safe function \
             and memoize that",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "#[flipcache] cannot memoize an `extern` function",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            "#[flipcache] cannot memoize a variadic function",
        ));
    }
    for param in &sig.generics.params {
        let what = match param {
            GenericParam::Lifetime(_) => continue,
            GenericParam::Type(_) => "type",
            GenericParam::Const(_) => "const",
        };
        errors.push(syn::Error::new_spanned(
            param,
            format!(
                "#[flipcache] cannot memoize a generic function (this {what} parameter): its \
                 cache holds one concrete type; memoize a non-generic function instead"
            ),
        ));
    }
    if let Some(w) = &sig.generics.where_clause {
        for p in &w.predicates {
            if !matches!(p, WherePredicate::Lifetime(_)) {
                errors.push(syn::Error::new_spanned(
                    p,
                    "#[flipcache] cannot memoize a generic function: remove this bound",
                ));
            }
        }
    }
}

fn arguments(f: &Function<'_>, errors: &mut Errors) {
    for arg in &f.args {
        if arg.ident.is_none() {
            errors.push(syn::Error::new_spanned(
                arg.pat,
                "#[flipcache] needs every argument to be a plain name (`x: T` or `mut x: T`), \
                 since the key is built from the arguments by name; take the whole value and \
                 destructure it in the body",
            ));
        }
        if let Some(t) = find_impl_trait(arg.ty) {
            errors.push(syn::Error::new_spanned(
                t,
                "#[flipcache] cannot memoize a function with an `impl Trait` argument: the key \
                 needs a concrete type; use one (for example `&str` instead of `impl AsRef<str>`)",
            ));
        }
    }
}

fn output(f: &Function<'_>, errors: &mut Errors) {
    let sig = &f.item.sig;
    let (ty, value) = match &f.output {
        Output::Nothing => {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                "#[flipcache] memoizes a function's return value, and this one returns nothing",
            ));
            return;
        }
        Output::Type { ty, value, .. } => (*ty, *value),
    };
    match ty {
        Type::Tuple(t) if t.elems.is_empty() => {
            errors.push(syn::Error::new_spanned(
                ty,
                "#[flipcache] memoizes a function's return value, and this one returns `()`",
            ));
            return;
        }
        Type::Never(_) => {
            errors.push(syn::Error::new_spanned(
                ty,
                "#[flipcache] memoizes a function's return value, and this one never returns",
            ));
            return;
        }
        _ => {}
    }
    if let Some(t) = find_impl_trait(ty) {
        errors.push(syn::Error::new_spanned(
            t,
            "#[flipcache] cannot memoize a function returning `impl Trait`: the cache needs a \
             concrete type",
        ));
    }
    if let Some(t) = find_borrow(value) {
        errors.push(syn::Error::new_spanned(
            t,
            "#[flipcache] needs an owned return value (`String`, not `&str`): cached values \
             outlive the call",
        ));
    }
    if let Some(t) = find_self(value) {
        errors.push(syn::Error::new_spanned(
            t,
            "#[flipcache] cannot name `Self` in the cached type (its cache is a `static`); write \
             the type's name instead",
        ));
    }
}

fn values(options: &Options, errors: &mut Errors) {
    if let Some(name) = &options.name {
        match literal(name) {
            Some(Lit::Str(s)) if s.value().is_empty() => {
                errors.push(syn::Error::new_spanned(s, "`name` must not be empty"));
            }
            Some(Lit::Str(_)) | None => {}
            Some(other) => errors.push(syn::Error::new_spanned(
                other,
                "`name` must be a string (for example `name = \"fib\"`)",
            )),
        }
    }
    if let Some(e) = &options.local_max {
        unsigned(e, "local_max", "local_max = 1_000", false, errors);
    }
    if let Some(e) = &options.local_max_bytes {
        unsigned(
            e,
            "local_max_bytes",
            "local_max_bytes = 1 << 20",
            false,
            errors,
        );
    }
    if let Some(e) = &options.timeout_ms {
        unsigned(e, "timeout_ms", "timeout_ms = 250", true, errors);
    }
    if let Some(e) = &options.expire_time {
        duration(e, "expire_time", "leave it out for no expiry", errors);
    }
    if let Some(e) = &options.cache_absent {
        duration(
            e,
            "cache_absent",
            "leave it out not to remember absence",
            errors,
        );
    }
    if let Some(e) = &options.expire_jitter {
        duration(e, "expire_jitter", "leave it out for no jitter", errors);
    }
    if let Some(e) = &options.stale_for {
        duration(e, "stale_for", "leave it out for no stale window", errors);
    }
    if let Some(e) = &options.distributed_lock {
        duration(
            e,
            "distributed_lock",
            "leave it out for one load per process",
            errors,
        );
    }
    if let Some(e) = &options.tracking
        && tracking_variant(e).is_none()
    {
        errors.push(syn::Error::new_spanned(
            e,
            "`tracking` must be \"keys\" (the default: Redis tells this process of writes to the \
             keys it read) or \"broadcast\" (of every write under the cache's name)",
        ));
    }
    if let Some((span, _)) = &options.refresh
        && options.expire_time.is_none()
    {
        errors.push(syn::Error::new(
            *span,
            "`refresh_expire_time_on_get` needs an `expire_time` to refresh",
        ));
    }
}

/// A duration option: a `Duration` expression, or a positive whole number of seconds.
fn duration(e: &Expr, name: &str, zero_hint: &str, errors: &mut Errors) {
    match literal(e) {
        None => {
            if negative(e) {
                errors.push(syn::Error::new_spanned(
                    e,
                    format!("`{name}` must be positive"),
                ));
            }
        }
        Some(Lit::Int(i)) if i.base10_digits().starts_with('-') => {
            errors.push(syn::Error::new_spanned(
                i,
                format!("`{name}` must be positive"),
            ));
        }
        Some(Lit::Int(i)) => match i.base10_parse::<u64>() {
            Ok(0) => errors.push(syn::Error::new_spanned(
                i,
                format!("`{name}` must be at least 1 second; {zero_hint}"),
            )),
            Ok(_) => {}
            Err(err) => errors.push(err),
        },
        Some(other) => errors.push(syn::Error::new_spanned(
            other,
            format!(
                "`{name}` must be a `Duration` (for example `et::ONE_HOUR`) or a whole \
                 number of seconds"
            ),
        )),
    }
}

/// `cache_absent` needs a return type that can say "not found".
fn absence(f: &Function<'_>, options: &Options, errors: &mut Errors) {
    let Some(e) = &options.cache_absent else {
        return;
    };
    if let Output::Type { shape, .. } = &f.output
        && matches!(shape, Shape::SomeOnly | Shape::OkSome)
    {
        return;
    }
    errors.push(syn::Error::new_spanned(
        e,
        "`cache_absent` needs a function returning `Option<T>` or `Result<Option<T>, E>` (its \
         `None` is what is remembered)",
    ));
}

/// The `flipcache::Tracking` variant a `tracking = "..."` option names, if it names one.
pub(crate) fn tracking_variant(e: &Expr) -> Option<&'static str> {
    match literal(e) {
        Some(Lit::Str(s)) => match s.value().as_str() {
            "keys" => Some("Keys"),
            "broadcast" => Some("Broadcast"),
            _ => None,
        },
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&Lit> {
    match e {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

fn negative(e: &Expr) -> bool {
    matches!(e, Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) if literal(expr).is_some())
}

/// An integer option: an integer literal (or a constant expression of the right type).
fn unsigned(e: &Expr, name: &str, example: &str, nonzero: bool, errors: &mut Errors) {
    if negative(e) {
        errors.push(syn::Error::new_spanned(
            e,
            format!("`{name}` must not be negative"),
        ));
        return;
    }
    match literal(e) {
        None => {}
        Some(Lit::Int(i)) if i.base10_digits().starts_with('-') => errors.push(
            syn::Error::new_spanned(i, format!("`{name}` must not be negative")),
        ),
        Some(Lit::Int(i)) => match i.base10_parse::<u64>() {
            Ok(0) if nonzero => errors.push(syn::Error::new_spanned(
                i,
                format!("`{name}` must be at least 1"),
            )),
            Ok(_) => {}
            Err(err) => errors.push(err),
        },
        Some(other) => errors.push(syn::Error::new_spanned(
            other,
            format!("`{name}` must be an integer (for example `{example}`)"),
        )),
    }
}

/// The first `impl Trait` in `ty`, if any.
fn find_impl_trait(ty: &Type) -> Option<&Type> {
    find(ty, &mut |t| matches!(t, Type::ImplTrait(_)))
}

/// The first reference or named lifetime in `ty`, if any.
fn find_borrow(ty: &Type) -> Option<TokenStream> {
    if let Some(t) = find(ty, &mut |t| matches!(t, Type::Reference(_))) {
        return Some(t.to_token_stream());
    }
    lifetime_in(ty)
}

/// The first `Self` in `ty`, if any.
fn find_self(ty: &Type) -> Option<&Type> {
    find(
        ty,
        &mut |t| matches!(t, Type::Path(p) if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self")),
    )
}

fn lifetime_in(ty: &Type) -> Option<TokenStream> {
    let mut found: Option<TokenStream> = None;
    find(ty, &mut |t| {
        if found.is_some() {
            return false;
        }
        match t {
            Type::Path(p) => {
                for seg in &p.path.segments {
                    if let syn::PathArguments::AngleBracketed(a) = &seg.arguments {
                        for arg in &a.args {
                            if let syn::GenericArgument::Lifetime(l) = arg {
                                found = Some(l.to_token_stream());
                                return true;
                            }
                        }
                    }
                }
                false
            }
            Type::TraitObject(o) => {
                for b in &o.bounds {
                    if let TypeParamBound::Lifetime(l) = b {
                        found = Some(l.to_token_stream());
                        return true;
                    }
                }
                false
            }
            _ => false,
        }
    });
    found
}

/// Depth-first search of `ty` and the types inside it.
fn find<'a>(ty: &'a Type, pred: &mut dyn FnMut(&'a Type) -> bool) -> Option<&'a Type> {
    if pred(ty) {
        return Some(ty);
    }
    let inner: Vec<&Type> = match ty {
        Type::Array(a) => vec![&a.elem],
        Type::Group(g) => vec![&g.elem],
        Type::Paren(p) => vec![&p.elem],
        Type::Ptr(p) => vec![&p.elem],
        Type::Reference(r) => vec![&r.elem],
        Type::Slice(s) => vec![&s.elem],
        Type::Tuple(t) => t.elems.iter().collect(),
        Type::Path(p) => {
            let mut v = Vec::new();
            if let Some(q) = &p.qself {
                v.push(&*q.ty);
            }
            for seg in &p.path.segments {
                match &seg.arguments {
                    syn::PathArguments::AngleBracketed(a) => {
                        for arg in &a.args {
                            if let syn::GenericArgument::Type(t) = arg {
                                v.push(t);
                            }
                        }
                    }
                    syn::PathArguments::Parenthesized(p) => {
                        v.extend(p.inputs.iter());
                        if let syn::ReturnType::Type(_, t) = &p.output {
                            v.push(t);
                        }
                    }
                    syn::PathArguments::None => {}
                }
            }
            v
        }
        _ => Vec::new(),
    };
    inner.into_iter().find_map(|t| find(t, pred))
}

/// `tags = ["user:{id}", ...]`: an array of string literals whose `{name}` placeholders each
/// name an argument.
fn tags(f: &Function<'_>, options: &Options, errors: &mut Errors) {
    let Some(e) = &options.tags else {
        return;
    };
    let Some(lits) = tag_literals(e) else {
        errors.push(syn::Error::new_spanned(
            e,
            "`tags` must be an array of string literals, for example \
             `tags = [\"user:{id}\", \"org:{org}\"]`",
        ));
        return;
    };
    let names: Vec<String> = f
        .args
        .iter()
        .filter_map(|a| a.ident.map(ToString::to_string))
        .collect();
    for lit in lits {
        for placeholder in placeholders(&lit.value()) {
            let name = placeholder.split(':').next().unwrap_or_default().trim();
            if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
                errors.push(syn::Error::new_spanned(
                    lit,
                    format!(
                        "a tag names the arguments it is made of: write `{{{}}}` with an \
                         argument's name instead of `{{{placeholder}}}`",
                        names.first().map_or("arg", String::as_str)
                    ),
                ));
            } else if !names.iter().any(|n| n == name) {
                let expected = if names.is_empty() {
                    "the function has no named arguments".to_owned()
                } else {
                    format!("expected one of: {}", names.join(", "))
                };
                errors.push(syn::Error::new_spanned(
                    lit,
                    format!("this tag names `{name}`, which is not an argument; {expected}"),
                ));
            }
        }
    }
}

/// The literals of `tags = [...]`, if it is an array of string literals.
pub(crate) fn tag_literals(e: &Expr) -> Option<Vec<&syn::LitStr>> {
    let Expr::Array(array) = e else {
        return None;
    };
    array
        .elems
        .iter()
        .map(|el| match literal(el) {
            Some(Lit::Str(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// The `{...}` placeholders of a format string (`{{` and `}}` are escapes).
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                out.push(inner);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tag_tests {
    use super::placeholders;

    #[test]
    fn placeholders_skip_escapes_and_keep_specs() {
        assert_eq!(placeholders("user:{id}"), ["id"]);
        assert_eq!(placeholders("{{x}} {a:?}-{b}"), ["a:?", "b"]);
        assert!(placeholders("plain").is_empty());
    }
}
