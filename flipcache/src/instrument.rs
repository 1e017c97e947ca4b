//! What a cache reports besides its answers: its events ([`crate::event`]), its metrics
//! (`metrics` feature, [`crate::metrics`]) and its spans (`tracing-spans` feature), gathered in
//! one [`Observe`] per cache; and the two places everything is measured: a Redis round trip
//! ([`Core::round_trip`]) and a load ([`LoadTimer`]). Nothing here runs on an L1 hit.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
#[cfg(feature = "metrics")]
use std::time::Instant;

use redis::RedisError;

use crate::conn::Conn;
use crate::core::Core;
use crate::event::{Event, Events, Listener};
use crate::key::FlipKey;
use crate::remote::Failure;

/// One cache's events, metrics and outage memory.
pub(crate) struct Observe {
    pub(crate) events: Events,
    #[cfg(feature = "metrics")]
    pub(crate) meter: crate::metrics::Meter,
    /// The connection was lost since the last one was made (the next one is a reconnect).
    lost: AtomicBool,
}

impl Observe {
    pub(crate) fn new(name: &str, listener: Option<Listener>) -> Self {
        Observe {
            events: Events::start(name, listener),
            #[cfg(feature = "metrics")]
            meter: crate::metrics::Meter::new(name),
            lost: AtomicBool::new(false),
        }
    }

    /// The cache lost its connection.
    pub(crate) fn disconnected(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// The cache has a connection; an [`Event::Reconnected`] if it had lost one.
    pub(crate) fn connected(&self, cache: &std::sync::Arc<str>) {
        if self.lost.swap(false, Ordering::AcqRel) {
            self.events.emit(|| Event::Reconnected {
                cache: cache.clone(),
            });
        }
    }
}

/// A load from its start: its duration (`flipcache_load_seconds`) and its span.
pub(crate) struct LoadTimer {
    #[cfg(feature = "metrics")]
    start: Instant,
    #[cfg(feature = "tracing-spans")]
    span: tracing::Span,
}

impl LoadTimer {
    /// Runs `f` inside the load's span (`tracing-spans`), so the round trips it makes nest in it.
    #[inline]
    pub(crate) fn within<F: Future>(&self, f: F) -> impl Future<Output = F::Output> {
        #[cfg(feature = "tracing-spans")]
        {
            tracing::Instrument::instrument(f, self.span.clone())
        }
        #[cfg(not(feature = "tracing-spans"))]
        {
            f
        }
    }

    /// Runs `f` (a blocking loader) inside the load's span.
    #[inline]
    pub(crate) fn within_blocking<T>(&self, f: impl FnOnce() -> T) -> T {
        #[cfg(feature = "tracing-spans")]
        {
            self.span.in_scope(f)
        }
        #[cfg(not(feature = "tracing-spans"))]
        {
            f()
        }
    }

    /// How long the load has taken so far (zero without the `metrics` feature, which is the
    /// only reader).
    fn elapsed(&self) -> Duration {
        #[cfg(feature = "metrics")]
        {
            self.start.elapsed()
        }
        #[cfg(not(feature = "metrics"))]
        {
            Duration::ZERO
        }
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    /// Starts timing a load of `key`.
    #[inline]
    pub(crate) fn load_timer(&self, key: &K) -> LoadTimer {
        #[cfg(not(feature = "tracing-spans"))]
        let _ = key;
        LoadTimer {
            #[cfg(feature = "metrics")]
            start: Instant::now(),
            #[cfg(feature = "tracing-spans")]
            span: tracing::info_span!(
                "flipcache.load",
                cache = %self.name,
                key = self.trace_keys.then(|| self.rkey(key)).as_deref()
            ),
        }
    }

    /// The loader of a load `timer` measures has returned (`ok`: with a value or none, not an
    /// error, which is then reported as an [`Event::LoadFailed`]).
    pub(crate) fn loaded(&self, timer: &LoadTimer, key: &K, ok: bool) {
        let elapsed = timer.elapsed();
        #[cfg(feature = "metrics")]
        self.observe.meter.load_took(elapsed);
        #[cfg(not(feature = "metrics"))]
        let _ = elapsed;
        if !ok {
            self.observe.events.emit(|| Event::LoadFailed {
                cache: self.name.clone(),
                key: self.rkey(key),
            });
        }
    }

    /// Runs `op` on the shared connection within the cache's timeout: one Redis round trip of
    /// `command` (about `key`, if one), timed (`flipcache_redis_seconds`) and in a span.
    pub(crate) async fn round_trip<T, F, Fut>(
        &self,
        command: &'static str,
        key: Option<&str>,
        op: F,
    ) -> Result<T, Failure>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        #[cfg(feature = "metrics")]
        let start = Instant::now();
        let run = self.remote.run(self.timeout(), op);
        #[cfg(feature = "tracing-spans")]
        let run = tracing::Instrument::instrument(
            run,
            tracing::info_span!(
                "flipcache.redis",
                cache = %self.name,
                key = key.filter(|_| self.trace_keys),
                command
            ),
        );
        #[cfg(not(feature = "tracing-spans"))]
        let _ = key;
        #[cfg(not(any(feature = "tracing-spans", feature = "metrics")))]
        let _ = command;
        let out = run.await;
        #[cfg(feature = "metrics")]
        self.observe.meter.redis_took(command, start.elapsed());
        out
    }

    /// [`Core::round_trip`] on the calling thread's own connection (see
    /// `Remote::run_blocking`: with whether that connection tracks for the shared one);
    /// `None`: use the shared connection.
    pub(crate) fn round_trip_blocking<T>(
        &self,
        command: &'static str,
        key: Option<&str>,
        op: impl FnOnce(&mut crate::read_conn::ReadConn) -> Result<T, RedisError>,
    ) -> Option<(Result<T, Failure>, bool)> {
        #[cfg(feature = "metrics")]
        let start = Instant::now();
        let run = || self.remote.run_blocking(self.timeout(), op);
        #[cfg(feature = "tracing-spans")]
        let out = tracing::info_span!(
            "flipcache.redis",
            cache = %self.name,
            key = key.filter(|_| self.trace_keys),
            command
        )
        .in_scope(run);
        #[cfg(not(feature = "tracing-spans"))]
        let out = {
            let _ = key;
            run()
        };
        #[cfg(not(any(feature = "tracing-spans", feature = "metrics")))]
        let _ = command;
        #[cfg(feature = "metrics")]
        if out.is_some() {
            self.observe.meter.redis_took(command, start.elapsed());
        }
        out
    }
}
