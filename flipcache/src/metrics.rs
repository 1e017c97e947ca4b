//! The `metrics` feature: one cache's counters, histograms and gauge through the `metrics`
//! facade, each labelled `cache` = the cache's name.
//!
//! Counters are published as deltas of the cache's [`Stats`] (on every `stats()` call, every
//! [`PUBLISH_EVERY`] from a background task, and when the cache is dropped), so an L1 hit
//! costs what it costs without the feature: a thread's own counter, no shared atomic and no
//! call into the recorder. The histograms are recorded as things happen (loads, Redis round
//! trips: neither is on the hit path).
//!
//! The handles are taken from the recorder installed when the cache is built: install the
//! exporter's recorder first.

use std::sync::{Mutex, OnceLock, Weak};
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use tokio::runtime::Handle;

use crate::stats::{ErrorKind, Stats};

/// How often a cache publishes its counters when nobody reads its stats.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The Redis commands `flipcache_redis_seconds` is labelled with (`command`); any other is
/// `other` (the last).
const COMMANDS: [&str; 15] = [
    "ping",
    "get",
    "mget",
    "set",
    "mset",
    "del",
    "exists",
    "pttl",
    "pexpire",
    "scan",
    "unlink",
    "set_absent",
    "tag",
    "lease",
    "other",
];

/// What a publication reads: the stats and the errors by kind.
pub(crate) type Reading = (Stats, [u64; ErrorKind::ALL.len()]);

/// One cache's metric handles and what it published so far.
pub(crate) struct Meter {
    local_hits: Counter,
    remote_hits: Counter,
    misses: Counter,
    loads: Counter,
    load_errors: Counter,
    waits: Counter,
    invalidations: Counter,
    evictions: Counter,
    flushes: Counter,
    stale_served: Counter,
    fills_skipped: Counter,
    refreshes: Counter,
    fail_safe: Counter,
    sets: Counter,
    decode_errors: Counter,
    errors: [Counter; ErrorKind::ALL.len()],
    local_entries: Gauge,
    local_bytes: Gauge,
    load_seconds: Histogram,
    /// By command, registered on first use (so an exporter shows no empty series).
    redis_seconds: [OnceLock<Histogram>; COMMANDS.len()],
    cache: String,
    published: Mutex<Reading>,
}

impl Meter {
    /// The handles of cache `name`, from the recorder installed now.
    pub(crate) fn new(name: &str) -> Self {
        let cache = name.to_owned();
        let c = |metric: &'static str| counter!(metric, "cache" => cache.clone());
        Meter {
            local_hits: counter!("flipcache_hits_total", "cache" => cache.clone(), "layer" => "local"),
            remote_hits: counter!("flipcache_hits_total", "cache" => cache.clone(), "layer" => "remote"),
            misses: c("flipcache_misses_total"),
            loads: c("flipcache_loads_total"),
            load_errors: c("flipcache_load_errors_total"),
            waits: c("flipcache_waits_total"),
            invalidations: c("flipcache_invalidations_total"),
            evictions: c("flipcache_evictions_total"),
            flushes: c("flipcache_flushes_total"),
            stale_served: c("flipcache_stale_served_total"),
            fills_skipped: c("flipcache_fills_skipped_total"),
            refreshes: c("flipcache_refreshes_total"),
            fail_safe: c("flipcache_fail_safe_total"),
            sets: c("flipcache_sets_total"),
            decode_errors: c("flipcache_decode_errors_total"),
            errors: ErrorKind::ALL.map(|k| {
                counter!("flipcache_errors_total", "cache" => cache.clone(), "kind" => k.label())
            }),
            local_entries: gauge!("flipcache_local_entries", "cache" => cache.clone()),
            local_bytes: gauge!("flipcache_local_bytes", "cache" => cache.clone()),
            load_seconds: histogram!("flipcache_load_seconds", "cache" => cache.clone()),
            redis_seconds: Default::default(),
            cache,
            published: Mutex::new(Reading::default()),
        }
    }

    /// Publishes what changed since the last publication; `read` runs under this meter's
    /// lock, so concurrent publications never count anything twice.
    pub(crate) fn publish(&self, read: impl FnOnce() -> Reading) {
        let mut last = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let (now, errors) = read();
        let (was, was_errors) = &*last;
        let add = |counter: &Counter, now: u64, was: u64| {
            if now > was {
                counter.increment(now - was);
            }
        };
        add(&self.local_hits, now.local_hits, was.local_hits);
        add(&self.remote_hits, now.remote_hits, was.remote_hits);
        add(&self.misses, now.misses, was.misses);
        add(&self.loads, now.loads, was.loads);
        add(&self.load_errors, now.load_errors, was.load_errors);
        add(&self.waits, now.waits, was.waits);
        add(&self.invalidations, now.invalidations, was.invalidations);
        add(&self.evictions, now.evictions, was.evictions);
        add(&self.flushes, now.flushes, was.flushes);
        add(&self.stale_served, now.stale_served, was.stale_served);
        add(&self.fills_skipped, now.fills_skipped, was.fills_skipped);
        add(&self.refreshes, now.refreshes, was.refreshes);
        add(&self.fail_safe, now.fail_safe, was.fail_safe);
        add(&self.sets, now.sets, was.sets);
        add(&self.decode_errors, now.decode_errors, was.decode_errors);
        for ((counter, now), was) in self.errors.iter().zip(errors).zip(was_errors) {
            add(counter, now, *was);
        }
        // Precision past 2^53 entries is not a concern.
        self.local_entries.set(now.local_entries as f64);
        self.local_bytes.set(now.local_bytes as f64);
        // Counters only grow: keep the largest reading (a racing, older one changes nothing).
        let keep = |now: u64, was: u64| now.max(was);
        let mut next = now;
        next.local_hits = keep(now.local_hits, was.local_hits);
        next.remote_hits = keep(now.remote_hits, was.remote_hits);
        next.misses = keep(now.misses, was.misses);
        next.loads = keep(now.loads, was.loads);
        next.load_errors = keep(now.load_errors, was.load_errors);
        next.waits = keep(now.waits, was.waits);
        next.invalidations = keep(now.invalidations, was.invalidations);
        next.evictions = keep(now.evictions, was.evictions);
        next.flushes = keep(now.flushes, was.flushes);
        next.stale_served = keep(now.stale_served, was.stale_served);
        next.fills_skipped = keep(now.fills_skipped, was.fills_skipped);
        next.refreshes = keep(now.refreshes, was.refreshes);
        next.fail_safe = keep(now.fail_safe, was.fail_safe);
        next.sets = keep(now.sets, was.sets);
        next.decode_errors = keep(now.decode_errors, was.decode_errors);
        let mut next_errors = errors;
        for (n, was) in next_errors.iter_mut().zip(was_errors) {
            *n = (*n).max(*was);
        }
        *last = (next, next_errors);
    }

    /// Records a load that took `elapsed`.
    pub(crate) fn load_took(&self, elapsed: Duration) {
        self.load_seconds.record(elapsed.as_secs_f64());
    }

    /// Records a Redis round trip of `command` that took `elapsed`.
    pub(crate) fn redis_took(&self, command: &'static str, elapsed: Duration) {
        let i = COMMANDS
            .iter()
            .position(|c| *c == command)
            .unwrap_or(COMMANDS.len() - 1);
        let h = self.redis_seconds[i].get_or_init(|| {
            histogram!("flipcache_redis_seconds", "cache" => self.cache.clone(), "command" => COMMANDS[i])
        });
        h.record(elapsed.as_secs_f64());
    }
}

/// What the background publisher needs of a cache.
pub(crate) trait Publish: Send + Sync {
    /// Publishes the cache's counters (see [`Meter::publish`]).
    fn publish(&self);
}

/// Publishes `cache`'s counters every [`PUBLISH_EVERY`] until it is dropped.
pub(crate) fn keep_publishing(rt: &Handle, cache: Weak<dyn Publish>) {
    rt.spawn(async move {
        loop {
            tokio::time::sleep(PUBLISH_EVERY).await;
            let Some(cache) = cache.upgrade() else { return };
            cache.publish();
        }
    });
}
