//! The attribute's options, parsed once: `#[flipcache(name = "fib", expire_time = ..., ...)]`.
//! Unknown, duplicate and misshapen options are reported here; what their values mean is
//! checked in `valid.rs`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Meta, Path, Token};

use super::Errors;

/// Every option the attribute takes.
pub(crate) const OPTIONS: &[&str] = &[
    "name",
    "expire_time",
    "local_max",
    "local_max_bytes",
    "refresh_expire_time_on_get",
    "json",
    "key",
    "redis",
    "timeout_ms",
    "in_impl",
    "cache_absent",
    "expire_jitter",
    "stale_for",
    "eager_refresh",
    "fail_safe",
    "trace_keys",
    "tags",
    "distributed_lock",
    "tracking",
];

/// The options as written; `None` where the runtime default applies.
#[derive(Default)]
pub(crate) struct Options {
    pub name: Option<Expr>,
    pub expire_time: Option<Expr>,
    pub local_max: Option<Expr>,
    pub local_max_bytes: Option<Expr>,
    /// `refresh_expire_time_on_get` alone means `= true`.
    pub refresh: Option<(Span, Expr)>,
    pub json: Option<Path>,
    pub key: Option<Expr>,
    pub redis: Option<Expr>,
    pub timeout_ms: Option<Expr>,
    pub in_impl: Option<Path>,
    pub cache_absent: Option<Expr>,
    pub expire_jitter: Option<Expr>,
    pub stale_for: Option<Expr>,
    pub eager_refresh: Option<Expr>,
    /// `fail_safe` alone means `= true`.
    pub fail_safe: Option<Expr>,
    /// `trace_keys` alone means `= true`.
    pub trace_keys: Option<Expr>,
    /// `tags = ["user:{id}", ...]`: format strings over the arguments.
    pub tags: Option<Expr>,
    /// `distributed_lock = lease`: one load per key across processes.
    pub distributed_lock: Option<Expr>,
    /// `tracking = "keys"` or `"broadcast"`: how Redis tells this process of writes.
    pub tracking: Option<Expr>,
}

fn set<T>(slot: &mut Option<T>, value: T, path: &Path, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(
            path,
            format!("duplicate option `{}`", name_of(path)),
        ));
    } else {
        *slot = Some(value);
    }
}

fn name_of(path: &Path) -> String {
    path.get_ident()
        .map_or_else(|| quote::quote!(#path).to_string(), ToString::to_string)
}

impl Options {
    /// Parses the attribute's arguments, reporting every mistake into `errors`.
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Options {
        let mut options = Options::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
            Ok(m) => m,
            Err(e) => {
                errors.push(e);
                return options;
            }
        };
        for meta in metas {
            let path = meta.path().clone();
            let name = name_of(&path);
            if !OPTIONS.contains(&name.as_str()) {
                errors.push(syn::Error::new_spanned(
                    &path,
                    format!(
                        "unknown option `{name}`; expected one of: {}",
                        OPTIONS.join(", ")
                    ),
                ));
                continue;
            }
            match (name.as_str(), meta) {
                ("json" | "in_impl", Meta::Path(_)) => {
                    let slot = if name == "json" {
                        &mut options.json
                    } else {
                        &mut options.in_impl
                    };
                    set(slot, path.clone(), &path, errors);
                }
                ("json" | "in_impl", other) => errors.push(syn::Error::new(
                    other.span(),
                    format!("`{name}` is a flag and takes no value: write `{name}` alone"),
                )),
                ("refresh_expire_time_on_get", Meta::Path(_)) => {
                    let yes: Expr = syn::parse_quote_spanned!(path.span()=> true);
                    set(&mut options.refresh, (path.span(), yes), &path, errors);
                }
                ("fail_safe", Meta::Path(_)) => {
                    let yes: Expr = syn::parse_quote_spanned!(path.span()=> true);
                    set(&mut options.fail_safe, yes, &path, errors);
                }
                ("trace_keys", Meta::Path(_)) => {
                    let yes: Expr = syn::parse_quote_spanned!(path.span()=> true);
                    set(&mut options.trace_keys, yes, &path, errors);
                }
                (_, Meta::NameValue(nv)) => {
                    let v = nv.value;
                    match name.as_str() {
                        "name" => set(&mut options.name, v, &path, errors),
                        "expire_time" => set(&mut options.expire_time, v, &path, errors),
                        "local_max" => set(&mut options.local_max, v, &path, errors),
                        "local_max_bytes" => set(&mut options.local_max_bytes, v, &path, errors),
                        "refresh_expire_time_on_get" => {
                            set(&mut options.refresh, (path.span(), v), &path, errors)
                        }
                        "key" => set(&mut options.key, v, &path, errors),
                        "redis" => set(&mut options.redis, v, &path, errors),
                        "timeout_ms" => set(&mut options.timeout_ms, v, &path, errors),
                        "cache_absent" => set(&mut options.cache_absent, v, &path, errors),
                        "expire_jitter" => set(&mut options.expire_jitter, v, &path, errors),
                        "stale_for" => set(&mut options.stale_for, v, &path, errors),
                        "eager_refresh" => set(&mut options.eager_refresh, v, &path, errors),
                        "fail_safe" => set(&mut options.fail_safe, v, &path, errors),
                        "trace_keys" => set(&mut options.trace_keys, v, &path, errors),
                        "tags" => set(&mut options.tags, v, &path, errors),
                        "distributed_lock" => set(&mut options.distributed_lock, v, &path, errors),
                        "tracking" => set(&mut options.tracking, v, &path, errors),
                        _ => errors.push(syn::Error::new_spanned(
                            &path,
                            format!("`{name}` takes no value"),
                        )),
                    }
                }
                (_, other) => errors.push(syn::Error::new(
                    other.span(),
                    format!("expected `{name} = ...`"),
                )),
            }
        }
        options
    }
}
