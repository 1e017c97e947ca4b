//! A Redis-backed hybrid cache: a bounded in-process layer (the L1) in front of Redis (the L2,
//! shared by every process, with TTLs), so hot reads cost a hash lookup instead of a network
//! round trip. The Rust counterpart of the Python [FlipCache], with the same Redis layout
//! (`{name}:{key}`, text values), so Rust and Python services can share a cache.
//!
//! ```no_run
//! use flipcache::{et, FlipCache};
//!
//! fn main() -> flipcache::Result<()> {
//!     let cache: FlipCache<String, String> = FlipCache::new("my_cache")?;
//!     cache.set("my_key", "my_value")?;
//!     assert_eq!(cache.get("my_key")?, Some("my_value".to_string()));
//!     assert_eq!(cache.get("unknown")?, None);
//!
//!     let user_data = FlipCache::<String, serde_json::Value>::builder("user_data")
//!         .local_max(100)
//!         .expire_time(et::THREE_DAYS)
//!         .json()
//!         .build()?;
//!     user_data.set("some-uuid", serde_json::json!({"state": 1}))?;
//!     Ok(())
//! }
//! ```
//!
//! # Contents
//!
//! - [Eviction, expiration, thread safety](#eviction)
//! - [Cargo features](#cargo-features)
//! - [Observability](#observability): stats, metrics, spans, events, logs
//! - [Deployments and guarantees](#deployments-and-guarantees):
//!   [production set-ups: ACL, TLS, Sentinel, Cluster, failures](#production-set-ups-acl-tls-sentinel-cluster-failures),
//!   [how coherence works](#how-coherence-works) (the guarantees, and their limits)
//! - Memoization: the [`flipcache`](macro@flipcache) attribute, and its cache typed by the
//!   function's arguments, [`MemoCache`] ([`aio::MemoCache`]); value types: [`FlipValue`],
//!   [`FlipCodec`] (derive), [`Builder::json`], [`ValueCodec`]
//!
//! # Eviction
//!
//! The L1 holds at most `local_max` entries (default 100; 0 turns it off) and, with
//! `local_max_bytes`, at most so many bytes, each entry weighing its encoded length plus 64
//! bytes (or what your `weigher` says); both bounds hold at all times, whatever fills run
//! concurrently. When full it evicts by S3-FIFO (Yang et al., "FIFO queues are all you need for
//! cache eviction", SOSP 2023): new entries enter a small FIFO queue and move on to the main one
//! only if read again before they reach its end, so a scan (a report, a crawler walking every
//! id) churns the small queue and leaves the hot set alone; entries evicted too early are
//! remembered (by hash) and go straight to the main queue when they come back. Hits take no
//! lock and write no shared memory beyond a small per-entry counter, set only until it
//! saturates (the table is lock-free), so they scale across threads; fills, writes and
//! invalidations take the lock of one of several shards. An entry costs about 94 bytes for
//! `u64 -> u64` (`examples/l1_memory.rs`).
//!
//! # Expiration
//!
//! Every L1 entry carries the deadline of its Redis TTL (read with `PTTL` in the same round
//! trip as the value), so the L1 never serves a value after Redis has expired it.
//!
//! # Thread safety
//!
//! [`FlipCache`] is a cheap `Clone + Send + Sync` handle with a blocking API;
//! [`aio::FlipCache`] is the same cache with `async` verbs. Both fronts share one
//! implementation, one L1 per cache, and the process's connections: one RESP3 connection per
//! Redis endpoint, kept coherent with `CLIENT TRACKING` (see
//! [How coherence works](#how-coherence-works)).
//!
//! # Cargo features
//!
//! None is on by default; docs.rs shows every item with the feature it needs (the items of a
//! feature are linked on docs.rs, so that these docs build with any set of features).
//!
//! | feature | what it adds |
//! |---|---|
//! | `sentinel` | [`Builder::redis_sentinel`](https://docs.rs/flipcache/latest/flipcache/struct.Builder.html#method.redis_sentinel), [`Builder::redis_sentinel_node`](https://docs.rs/flipcache/latest/flipcache/struct.Builder.html#method.redis_sentinel_node) and [`SentinelService`](https://docs.rs/flipcache/latest/flipcache/struct.SentinelService.html) (for `#[flipcache(redis = ...)]`): the primary found through Redis Sentinel, followed across failovers |
//! | `cluster` | [`Builder::redis_cluster`](https://docs.rs/flipcache/latest/flipcache/struct.Builder.html#method.redis_cluster) and [`ClusterNodes`](https://docs.rs/flipcache/latest/flipcache/struct.ClusterNodes.html) (for `#[flipcache(redis = ...)]`): Redis Cluster, per-slot batches, tracking on every primary |
//! | `tls` | `rediss://` URLs and `redis::Client::build_with_tls` clients (rustls, ring provider) |
//! | `metrics` | counters, histograms and a gauge per cache through the `metrics` facade (see [Observability](#observability)) |
//! | `tracing-spans` | a `tracing` span per Redis round trip and per load (see [Observability](#observability)) |
//!
//! [FlipCache]: https://pypi.org/project/flipcache/
//!
#![doc = include_str!("observability.md")]
//!
//! # Deployments and guarantees
//!
//! What each deployment does, what a failure does, and exactly what the L1 promises (the same
//! text as the README's sections of these names).
//!
#![doc = include_str!("guarantees.md")]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod aio;
mod arg;
mod blocking_reads;
mod builder;
mod cache;
mod codec;
mod conn;
mod core;
mod endpoint;
mod error;
pub mod et;
mod event;
pub mod flipcodec;
pub mod front;
mod instrument;
mod key;
mod load;
mod local;
mod lock;
mod memo;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(all(test, feature = "shuttle"))]
mod model_checks;
mod outage;
mod read_conn;
mod remote;
mod runtime;
mod slot;
mod stats;
mod sync;
mod tags;
mod tracking;
mod value;

pub use arg::Arg;
pub use builder::{
    Builder, ClosureStart, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FAIL_SAFE_THROTTLE, DEFAULT_LOCAL_MAX,
    DEFAULT_REDIS_URL, DEFAULT_TIMEOUT,
};
pub use cache::FlipCache;
pub use codec::{
    ClosureCodec, CodecChoice, CodecError, DefaultCodec, JsonCodec, MissingDecoder, MissingEncoder,
    ValueCodec,
};
pub use error::{Error, Result};
pub use event::Event;
pub use flipcache_macros::FlipCodec;
pub use flipcodec::{DecodeError, FlipCodec, Reader, from_bytes, to_bytes};
pub use key::FlipKey;
pub use load::{Load, LoadError, Loaded};
#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub use memo::ClusterNodes;
#[cfg(feature = "sentinel")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
pub use memo::SentinelService;
pub use memo::{MemoCache, MemoKey, write_escaped_key};
pub use stats::Stats;
pub use tracking::Tracking;
pub use value::FlipValue;

#[doc = include_str!("memoize.md")]
pub use flipcache_macros::flipcache;

/// The Redis client crate this cache is built on, for [`Builder::redis_client`].
pub use redis;

/// The README's Rust examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// What the macros' expansions (`#[derive(FlipCodec)]`, `#[flipcache]`) call; not a public API.
#[doc(hidden)]
pub mod __private01 {
    pub use crate::flipcodec::derive::{
        decode_value, encode_value, read_variant, unknown_variant, write_variant,
    };
    pub use crate::flipcodec::{DecodeError, Fingerprint, FlipCodec, Reader};
    pub use crate::load::Loaded;
    pub use crate::local::BareL1;
    pub use crate::memo::{
        Entry, Found, IntoRedis, IntoTtl, Memo, MemoKey, MemoOptions, OkEntry, OkOnly, OkSome,
        Shape, SomeOnly, Storable, Whole, default_codec, json_codec, write_alone, write_part,
    };
    pub use crate::value::FlipValue;
    pub use std::string::String;
    pub use std::vec::Vec;
}

#[cfg(test)]
mod tests {
    /// The crate docs show the README's deployment and coherence sections from
    /// `src/guarantees.md`; the two copies must not drift apart.
    #[test]
    fn guarantees_match_the_readme() {
        let readme = include_str!("../README.md");
        let guarantees = include_str!("guarantees.md");
        assert!(
            readme.contains(include_str!("observability.md")),
            "README.md's section \"Observability\" differs from flipcache/src/observability.md: \
             edit both the same way"
        );
        assert!(
            readme.contains(guarantees),
            "README.md's sections \"Production set-ups\" and \"How coherence works\" differ \
             from flipcache/src/guarantees.md: edit both the same way"
        );
    }
}
