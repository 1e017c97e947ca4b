//! Events: what a cache tells the callback given to [`Builder::on_event`](crate::Builder::on_event),
//! delivered in order on a thread of the cache's own, off every lock and every hit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;

/// Something a cache did that its operator may want to know about, given to the callback of
/// [`Builder::on_event`](crate::Builder::on_event).
///
/// Keys are written as in Redis (`{name}:{key}`), like the keys of [`Error`](crate::Error).
///
/// ```
/// use flipcache::Event;
/// let e = Event::Invalidated { cache: "users".into(), key: "users:7".into() };
/// assert_eq!(e.cache(), "users");
/// assert_eq!(e.key(), Some("users:7"));
/// assert_eq!(e.to_string(), "cache `users`: `users:7` was invalidated");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Another client (Redis reported it: `CLIENT TRACKING`) or another cache of this process
    /// wrote or deleted the key: its L1 entry, if any, was dropped.
    Invalidated {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key.
        key: String,
    },
    /// The L1 dropped the entry to make room for another (it stays in Redis).
    Evicted {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key.
        key: String,
    },
    /// The whole L1 was emptied by something other than this cache's own `clear`: the
    /// connection was lost, a `FLUSHDB`/`FLUSHALL` was pushed, or another cache of the process
    /// whose name covers this one's ran `clear` (as counted by [`Stats::flushes`](crate::Stats)).
    Flushed {
        /// The cache's name.
        cache: Arc<str>,
    },
    /// A new connection to Redis serves this cache after the previous one was lost.
    Reconnected {
        /// The cache's name.
        cache: Arc<str>,
    },
    /// A stale value was served (`stale_for`, or a fail-safe value during an outage).
    StaleServed {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key.
        key: String,
    },
    /// A loader returned an error (nothing was cached).
    LoadFailed {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key being loaded.
        key: String,
    },
}

impl Event {
    /// The name of the cache the event happened in.
    ///
    /// ```
    /// let e = flipcache::Event::Flushed { cache: "c".into() };
    /// assert_eq!(e.cache(), "c");
    /// ```
    pub fn cache(&self) -> &str {
        match self {
            Event::Invalidated { cache, .. }
            | Event::Evicted { cache, .. }
            | Event::Flushed { cache }
            | Event::Reconnected { cache }
            | Event::StaleServed { cache, .. }
            | Event::LoadFailed { cache, .. } => cache,
        }
    }

    /// The Redis key (`{name}:{key}`) the event is about, if any.
    ///
    /// ```
    /// let e = flipcache::Event::Reconnected { cache: "c".into() };
    /// assert_eq!(e.key(), None);
    /// ```
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::Invalidated { key, .. }
            | Event::Evicted { key, .. }
            | Event::StaleServed { key, .. }
            | Event::LoadFailed { key, .. } => Some(key),
            Event::Flushed { .. } | Event::Reconnected { .. } => None,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.cache();
        match self {
            Event::Invalidated { key, .. } => write!(f, "cache `{cache}`: `{key}` was invalidated"),
            Event::Evicted { key, .. } => write!(f, "cache `{cache}`: `{key}` was evicted"),
            Event::Flushed { .. } => write!(f, "cache `{cache}`: the local cache was flushed"),
            Event::Reconnected { .. } => write!(f, "cache `{cache}`: reconnected to Redis"),
            Event::StaleServed { key, .. } => {
                write!(f, "cache `{cache}`: a stale value of `{key}` was served")
            }
            Event::LoadFailed { key, .. } => {
                write!(f, "cache `{cache}`: the loader failed for `{key}`")
            }
        }
    }
}

/// The callback of [`Builder::on_event`](crate::Builder::on_event).
pub(crate) type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// One cache's way to its listener: a queue drained by a thread that calls it.
#[derive(Clone)]
pub(crate) struct Events {
    tx: Option<mpsc::Sender<Event>>,
}

impl Events {
    /// Starts the delivery thread of `listener`; without one, events cost nothing.
    pub(crate) fn start(cache: &str, listener: Option<Listener>) -> Self {
        let Some(listener) = listener else {
            return Events { tx: None };
        };
        let (tx, rx) = mpsc::channel::<Event>();
        let name = cache.to_owned();
        let spawned = std::thread::Builder::new()
            .name("flipcache-events".into())
            .spawn(move || deliver(&name, &listener, rx));
        match spawned {
            Ok(_) => Events { tx: Some(tx) },
            Err(e) => {
                tracing::warn!(cache, error = %e, "cannot start the events thread; on_event is not called");
                Events { tx: None }
            }
        }
    }

    /// Whether anyone listens (so an event is worth making).
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues the event `make` makes, if anyone listens. Never blocks.
    #[inline]
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if let Some(tx) = &self.tx {
            // Fails only once the thread is gone (the listener is dropped with the cache).
            let _ = tx.send(make());
        }
    }
}

/// The delivery thread: calls `listener` with each event until the cache is dropped. A panic
/// is caught (and logged once), so it neither stops delivery nor reaches the cache.
fn deliver(cache: &str, listener: &Listener, rx: mpsc::Receiver<Event>) {
    let mut warned = false;
    for event in rx {
        let run = catch_unwind(AssertUnwindSafe(|| listener(&event)));
        if run.is_err() && !warned {
            warned = true;
            tracing::warn!(
                cache,
                event = %event,
                "the on_event callback panicked; the panic was caught (further panics are not \
                 logged)"
            );
        }
    }
}
