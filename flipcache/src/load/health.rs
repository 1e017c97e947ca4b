//! Fail-open bookkeeping for the loader paths: whether Redis is in trouble for this cache, when
//! to try it again, and logging each outage once.
//!
//! When a loader path (`get_with` and friends, memoized functions) finds Redis unreachable or
//! too slow, the loader's value is returned anyway. The first such failure logs one `warn`;
//! later ones log at `debug` until Redis works again (an `info` says so). While degraded, one
//! loader call per [`PROBE_EVERY`] tries Redis, so an outage costs the others no timeouts.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;

/// While Redis is in trouble, how often one loader call of a cache tries it again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub(crate) fn now_ms() -> u64 {
    u64::try_from(base().elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn probe_ms() -> u64 {
    u64::try_from(PROBE_EVERY.as_millis()).unwrap_or(u64::MAX)
}

/// One cache's view of Redis's health, as its loader paths see it.
#[derive(Default)]
pub(crate) struct Health {
    /// Redis is in trouble (a warning was logged); set back, with an info, when it works.
    degraded: AtomicBool,
    /// While degraded: when (ms since `base()`) the next call may try Redis again.
    retry_at: AtomicU64,
    /// A value did not decode (warned once per cache).
    codec_warned: AtomicBool,
    /// Log lines name keys (`trace_keys`).
    keys: AtomicBool,
}

impl Health {
    /// Whether this call may use Redis: always when healthy; while degraded, one call per
    /// [`PROBE_EVERY`].
    #[inline]
    pub(crate) fn allowed(&self) -> bool {
        if !self.degraded.load(Ordering::Acquire) {
            return true;
        }
        let now = now_ms();
        let at = self.retry_at.load(Ordering::Acquire);
        now >= at
            && self
                .retry_at
                .compare_exchange(at, now + probe_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Makes the log lines name keys (`trace_keys`), or not (the default).
    pub(crate) fn show_keys(&self, on: bool) {
        self.keys.store(on, Ordering::Release);
    }

    /// Whether Redis is currently considered in trouble.
    #[cfg(test)]
    pub(crate) fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Redis answered.
    #[inline]
    pub(crate) fn healthy(&self, cache: &str) {
        if self.degraded.load(Ordering::Acquire) && self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!(
                cache,
                "Redis answers again; loads use the shared cache again"
            );
        }
    }

    /// Redis could not be reached when the cache was built (warned about then, once per
    /// outage): this outage's failures on loader paths log at debug; the next call still
    /// tries Redis.
    pub(crate) fn unreachable_at_start(&self) {
        self.retry_at.store(now_ms(), Ordering::Release);
        self.degraded.store(true, Ordering::Release);
    }

    /// Redis failed (or a value did not decode) on a loader path that goes on without it.
    pub(crate) fn trouble(&self, cache: &str, e: &Error) {
        let codec = matches!(e, Error::Decode { .. } | Error::Encode { .. });
        let e = e.chain_keys(self.keys.load(Ordering::Acquire));
        if codec {
            if !self.codec_warned.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    cache,
                    error = %e,
                    "a cached value could not be encoded or decoded; the loader ran instead \
                     (further such cases are logged at debug level)"
                );
            } else {
                tracing::debug!(cache, error = %e, "cached value skipped");
            }
            return;
        }
        self.retry_at
            .store(now_ms() + probe_ms(), Ordering::Release);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                cache,
                error = %e,
                "Redis is unavailable to loads; loaders run without the shared cache (results \
                 kept in process memory) until Redis answers again"
            );
        } else {
            tracing::debug!(cache, error = %e, "Redis still unavailable");
        }
    }
}
