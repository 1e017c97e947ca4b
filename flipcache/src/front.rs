//! Which cache a [`Builder`](crate::Builder)'s `build()` makes: its last type parameter.
//! [`FlipCache::builder`](crate::FlipCache::builder) gives a [`Blocking`] builder, and
//! [`aio::FlipCache::builder`](crate::aio::FlipCache::builder) an [`Async`] one, so that each
//! `build()` returns the front it was asked from.
//!
//! ```no_run
//! # async fn run() -> flipcache::Result<()> {
//! let blocking: flipcache::Builder<u64, u64> = flipcache::FlipCache::builder("a");
//! let sync_cache: flipcache::FlipCache<u64, u64> = blocking.build()?;
//! let asynchronous: flipcache::Builder<u64, u64, flipcache::DefaultCodec, flipcache::front::Async> =
//!     flipcache::aio::FlipCache::builder("b");
//! let async_cache: flipcache::aio::FlipCache<u64, u64> = asynchronous.build().await?;
//! # Ok(()) }
//! ```

/// A builder whose `build()` makes the blocking [`FlipCache`](crate::FlipCache) (the
/// default).
///
/// ```
/// let b: flipcache::Builder<u64, u64, flipcache::DefaultCodec, flipcache::front::Blocking> =
///     flipcache::FlipCache::builder("users");
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Blocking {}

/// A builder whose `build()` is async and makes the async
/// [`aio::FlipCache`](crate::aio::FlipCache).
///
/// ```
/// let b: flipcache::Builder<u64, u64, flipcache::DefaultCodec, flipcache::front::Async> =
///     flipcache::aio::FlipCache::builder("users");
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Async {}
