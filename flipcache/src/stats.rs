//! Counters: what a cache did, as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one cache's counters since it was built.
///
/// It serializes (serde) as a flat map of its fields, for a status endpoint or a log line.
/// With the `metrics` feature the same counts are also published through the `metrics`
/// facade (see the crate docs' "Observability" section).
///
/// ```no_run
/// # fn main() -> flipcache::Result<()> {
/// let cache: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("stats_doc")?;
/// cache.set(1, 2)?;
/// cache.get(&1)?;
/// let s = cache.stats();
/// println!("{} local hits, {} remote hits", s.local_hits, s.remote_hits);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups answered from the L1: a fresh value, a stale one (`stale_for`, served by the
    /// loader verbs and memoized functions) or a fail-safe copy (`fail_safe`, while Redis
    /// fails). A lookup is one key of one call: `get`, each key of `get_many`, the loader
    /// verbs, a memoized call. Each lookup counts in at most one of `local_hits`,
    /// `remote_hits`, `misses` (and `waits`).
    pub local_hits: u64,
    /// Lookups answered by Redis with a value the call returned (a stale one only by the
    /// loader verbs). The cache's own reads (the lease's second look at a key, a refresh's
    /// read) count nothing.
    pub remote_hits: u64,
    /// Lookups that read Redis and found no value the call could return: nothing, a
    /// remembered absence, or a stale value (`get` reads it as absent). The loader verbs then
    /// load. An undecodable value read as absent counts in `decode_errors` instead.
    pub misses: u64,
    /// L1 entries dropped because Redis reported their key written by someone else (another
    /// process, another client). A push of a key the L1 does not hold, and the echo of this
    /// process's own write, count nothing; a `FLUSHDB` counts in `flushes`.
    pub invalidations: u64,
    /// Times the whole L1 was emptied by something other than this cache's own calls: its
    /// connection was lost, a `FLUSHDB`/`FLUSHALL` was pushed, or another cache of this process
    /// whose name covers this one's ran `clear`. This cache's own `clear` is not counted.
    pub flushes: u64,
    /// Calls that returned an `Err`, a fallible loader's own error (`LoadError::Loader`)
    /// included; by kind in `flipcache_errors_total`. A failure the cache handled counts none:
    /// a fail-safe copy served instead, a Redis error a loader verb or memoized function loaded
    /// through, a background refresh's.
    pub errors: u64,
    /// Loader runs (the loader verbs' and memoized functions' loaders), on a miss or in a
    /// background refresh that ran, and nothing else.
    pub loads: u64,
    /// Loader runs that failed: returned an `Err` (`try_get_with`'s loader, a memoized
    /// function returning `Result`). A panicking loader counts none (the panic goes on).
    pub load_errors: u64,
    /// Lookups answered by another caller's load of the same key (single flight): this
    /// caller's lookup counts here, not as a hit or a miss.
    pub waits: u64,
    /// Among the hits, values served stale: past their expire time within `stale_for`, or
    /// fail-safe copies (also in `fail_safe`).
    pub stale_served: u64,
    /// Background refreshes that ran (stale-while-revalidate, eager refresh): one left to
    /// another process's lease counts none.
    pub refreshes: u64,
    /// Among the local hits, fail-safe copies: values the L1 served while Redis failed
    /// (`fail_safe`).
    pub fail_safe: u64,
    /// L1 entries evicted to make room for others (not those invalidated or expired).
    pub evictions: u64,
    /// Values written to Redis by this cache (`set`, `set_many` items, loaders' results).
    pub sets: u64,
    /// Entries in the L1 when the snapshot was taken.
    pub local_entries: u64,
    /// What the L1 holds when the snapshot was taken, by the weights that `local_max_bytes`
    /// bounds: each entry's encoded length in Redis plus 64 bytes (about what the L1 spends on
    /// an entry besides the key and the value), or what the `weigher` says. So it reads as
    /// bytes only as far as those weights do. A value kept locally while Redis could not be
    /// reached weighs its 64 bytes only, unless a byte bound made the cache encode it.
    pub local_bytes: u64,
    /// Loaded values (and remembered absences) not stored because the key was written since
    /// the load read it: by a `set`, `delete`, `remove_by_tag` or `clear` of any flipcache
    /// process, or a `SET`/`DEL` by any other client. The caller still got the loaded value;
    /// the next read serves the newer one.
    pub fills_skipped: u64,
    /// Values read from Redis that did not decode (each read that found one): returned as
    /// `Error::Decode` (then counted in `errors` too), read as absent
    /// (`decode_errors_as_misses`, counted as neither a hit nor a miss), or overwritten by a
    /// loader.
    pub decode_errors: u64,
}

/// The counters behind [`Stats`] (the L1 counts its own hits, per thread). Each outcome is
/// counted in one place: hits where a value is served (`Core::local_hit`,
/// `Core::served_local`, `Core::fail_safe_value`, `Core::landed`), errors where a call returns
/// (`Core::returned`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) remote_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) fail_safe: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) fills_skipped: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    /// [`Counters::errors`] by kind ([`ErrorKind`]).
    pub(crate) error_kinds: [AtomicU64; ErrorKind::ALL.len()],
}

/// What went wrong, as the `kind` label of `flipcache_errors_total` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Redis,
    Timeout,
    Encode,
    Decode,
    LoadTimeout,
    /// A fallible loader's own error (`try_get_with`), returned to its caller.
    Loader,
}

impl ErrorKind {
    pub(crate) const ALL: [ErrorKind; 6] = [
        ErrorKind::Redis,
        ErrorKind::Timeout,
        ErrorKind::Encode,
        ErrorKind::Decode,
        ErrorKind::LoadTimeout,
        ErrorKind::Loader,
    ];

    /// The kind of `e`. A configuration error (only a build returns one) counts as `redis`:
    /// it is never returned by a call on a built cache.
    pub(crate) fn of(e: &crate::Error) -> Self {
        match e {
            crate::Error::Timeout { .. } => ErrorKind::Timeout,
            crate::Error::Encode { .. } => ErrorKind::Encode,
            crate::Error::Decode { .. } => ErrorKind::Decode,
            crate::Error::LoadTimeout { .. } => ErrorKind::LoadTimeout,
            _ => ErrorKind::Redis,
        }
    }

    /// The label value.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            ErrorKind::Redis => "redis",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Encode => "encode",
            ErrorKind::Decode => "decode",
            ErrorKind::LoadTimeout => "load_timeout",
            ErrorKind::Loader => "loader",
        }
    }
}

impl Counters {
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error of `kind` (in `errors` and by kind).
    pub(crate) fn error(&self, kind: ErrorKind) {
        Self::bump(&self.errors);
        Self::bump(&self.error_kinds[kind as usize]);
    }

    /// Errors of `kind` so far.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.error_kinds[kind as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self, local_hits: u64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            local_hits,
            remote_hits: get(&self.remote_hits),
            misses: get(&self.misses),
            invalidations: get(&self.invalidations),
            flushes: get(&self.flushes),
            errors: get(&self.errors),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            waits: get(&self.waits),
            stale_served: get(&self.stale_served),
            refreshes: get(&self.refreshes),
            fail_safe: get(&self.fail_safe),
            evictions: 0,
            sets: get(&self.sets),
            local_entries: 0,
            local_bytes: 0,
            fills_skipped: get(&self.fills_skipped),
            decode_errors: get(&self.decode_errors),
        }
    }
}
