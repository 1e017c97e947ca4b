//! Procedural macros for [flipcache](https://docs.rs/flipcache): `#[derive(FlipCodec)]` and
//! `#[flipcache]` (memoization).
//!
//! Use them through the `flipcache` crate, which re-exports them next to the runtime items
//! the generated code calls (always through `::flipcache::__private`, never through the
//! caller's imports).
//!
//! Each macro is a pipeline in its own directory: `ast.rs` (syn input → a model of our
//! concepts) → `attr.rs` (our attributes, parsed once) → `valid.rs` (every misuse becomes a
//! `syn::Error` spanned at the offending tokens) → `expand.rs` (model → tokens), with
//! `fallback.rs` emitting a stub impl when the input is invalid, so one mistake does not
//! cascade into many.

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
