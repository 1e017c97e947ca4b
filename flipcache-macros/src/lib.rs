//! Procedural macros for [flipcache](https://docs.rs/flipcache): `#[derive(FlipCodec)]` and
//! `#[flipcache]` (memoization).
//!
//! Use them through the `flipcache` crate, which re-exports them next to the runtime items
//! the generated code calls. Runtime helpers are named through `::flipcache::__private01`
//! (versioned: the two crates are released together and `flipcache` pins this one with `=`),
//! never through the caller's imports; the public types in the signatures of generated items
//! (`FlipCache`, `aio::FlipCache`, `Result`) are named by their public paths.
//!
//! Each macro is a pipeline in its own directory:
//!
//! - `codec/` (`#[derive(FlipCodec)]`): `ast.rs` (syn input → a model of our concepts) →
//!   `attr.rs` (our attributes, parsed once) → `valid.rs` (every misuse becomes a `syn::Error`
//!   spanned at the offending tokens) → `expand.rs` (model → tokens, with `schema.rs` for the
//!   fingerprint). On invalid input, `fallback.rs` emits the errors plus a stub impl, so one
//!   mistake does not cascade into "`T: FlipCodec` is not satisfied" everywhere `T` is used.
//! - `memoize/` (`#[flipcache]`): `attr.rs` (the options) → `ast.rs` (the function) →
//!   `valid.rs` → `expand.rs`. On invalid input the function is re-emitted unchanged next to
//!   the errors (no fallback stub is needed: the function itself still exists), so the rest of
//!   the crate and IDE completion keep working.

#![forbid(unsafe_code)]

mod codec;
mod memoize;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `flipcache::FlipCodec` (a compact, versioned binary encoding) and
/// `flipcache::FlipValue` (so the type can be a cache value).
///
/// Attributes: `#[flipcodec(no_value)]` on the type; `#[flipcodec(skip)]` and
/// `#[flipcodec(with = path)]` on fields. See the `FlipCodec` trait docs in `flipcache`.
///
/// ```
/// use flipcache::{from_bytes, to_bytes, FlipCodec};
///
/// #[derive(FlipCodec, Clone, Debug, PartialEq)]
/// struct Point {
///     x: i32,
///     y: i32,
/// }
///
/// let p = Point { x: 1, y: -1 };
/// assert_eq!(to_bytes(&p), [2, 1]);
/// assert_eq!(from_bytes::<Point>(&[2, 1]).unwrap(), p);
/// ```
#[proc_macro_derive(FlipCodec, attributes(flipcodec))]
pub fn derive_flip_codec(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    codec::derive(&input).into()
}

/// Memoizes a function through a flipcache hybrid cache. Use it as `flipcache::flipcache`,
/// whose documentation lists the options, the key format and the generated companions.
#[proc_macro_attribute]
pub fn flipcache(args: TokenStream, input: TokenStream) -> TokenStream {
    memoize::flipcache(args.into(), input.into()).into()
}
