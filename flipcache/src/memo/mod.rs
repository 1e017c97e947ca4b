//! Runtime support for `#[flipcache]` (reached through `flipcache::__private01`; not a public
//! API): one lazily built cache per memoized function, loaded through the crate's loader layer.
//!
//! - [`options`]: what the attribute configures, and where the cache connects;
//! - [`key`]: argument keys, stable across processes and builds;
//! - [`shape`]: which part of the return value is stored, and how;
//! - [`call`]: the call path (an L1 lookup, then a load with the body as the loader);
//! - [`handle`], [`handle_async`]: [`MemoCache`], the cache typed by the function's
//!   arguments (`<fn>_cache()`), public.
//!
//! Fail-open: the cache never breaks the function. When Redis cannot be reached, answers too
//! slowly, or holds a value that does not decode, the body runs and its result is returned
//! (and kept in the L1). The first such trouble logs one `warn`; later ones log at `debug`
//! until Redis works again (an `info` says so). While degraded, Redis is probed at most once
//! per [`PROBE_EVERY`](crate::load::PROBE_EVERY) per function, so an outage costs no timeouts
//! on the other calls.

pub(crate) mod call;
pub(crate) mod handle;
pub(crate) mod handle_async;
pub(crate) mod key;
pub(crate) mod options;
pub(crate) mod shape;

pub use call::{Found, Memo};
pub use handle::MemoCache;
pub use key::{MemoKey, write_alone, write_escaped_key, write_part};
#[cfg(feature = "cluster")]
pub use options::ClusterNodes;
#[cfg(feature = "sentinel")]
pub use options::SentinelService;
pub use options::{IntoRedis, IntoTtl, MemoOptions};
pub use shape::{
    Entry, OkEntry, OkOnly, OkSome, Shape, SomeOnly, Storable, Whole, default_codec, json_codec,
};
