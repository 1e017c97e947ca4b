//! Coherence: how Redis tracks for us ([`Tracking`]: the keys this process read, or every key
//! under its caches' prefixes), which caches live on a connection, which prefixes are tracked,
//! and routing of invalidations (pushes from Redis, and writes made by other caches of this
//! process) to every L1 they concern.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use redis::Value;

/// How Redis tells a process that a key it may hold in an L1 changed (`CLIENT TRACKING`).
///
/// - [`Tracking::Keys`] (the default): Redis remembers which keys each process read and tells
///   only those processes about a write. Redis CPU per write stays flat however many processes
///   use the cache, so it is the mode for fleets and write-heavy caches. The price is server
///   memory: a tracking table bounded by `tracking-table-max-keys` (when it is full Redis
///   invalidates keys it stops tracking, which only drops them from the L1s that hold them), and
///   each L1-filling write of this process runs in a small script that reads the key with
///   `PTTL` before and after, so Redis echoes it exactly once (the L1 expects that echo) and
///   tracks the written key for the writer too. `refresh(key)` drops the key from the L1.
/// - [`Tracking::Broadcast`]: every write under a cache's prefix (`{name}:`) is pushed to every
///   process that has the cache, held or not (`BCAST PREFIX`). No server memory per key, but
///   Redis spends CPU per write per process: measured, 50 processes make a `SET` cost Redis 15x
///   the CPU of no process at all. Fits a few processes, or a server whose memory is tight.
///
/// Caches of one process with different modes use different connections; the coherence
/// guarantees are the same in both modes (see the README).
///
/// ```no_run
/// # fn main() -> flipcache::Result<()> {
/// let cache = flipcache::FlipCache::<String, String>::builder("users")
///     .tracking(flipcache::Tracking::Broadcast)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tracking {
    /// Key-based tracking (Redis's default mode): only processes that read a key hear of its
    /// writes (reads of missing keys included).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("k").tracking(flipcache::Tracking::Keys);
    /// ```
    #[default]
    Keys,
    /// Broadcast tracking (`BCAST PREFIX {name}:`): every process with the cache hears of every
    /// write under its prefix.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .tracking(flipcache::Tracking::Broadcast);
    /// ```
    Broadcast,
}

/// The channel a RESP2 connection in Pub/Sub mode receives redirected invalidations on.
pub(crate) const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// What the registry needs from a cache: drop one key, or everything.
pub(crate) trait Sink: Send + Sync {
    /// Drops the entry whose Redis key is `{prefix}{suffix}` (another cache of this process
    /// wrote it).
    fn invalidate(&self, suffix: &[u8]);
    /// Redis pushed an invalidation of `{prefix}{suffix}`: an echo of this cache's own write
    /// when one is expected (see `local/coherence.rs`), else an invalidation, counted.
    fn pushed(&self, suffix: &[u8]);
    /// Drops every entry.
    fn flush(&self);
    /// The connection was lost: what the L1 holds may miss invalidations from now on (dropped,
    /// or kept unverified under fail-safe).
    fn disconnected(&self);
    /// A connection was (re)established: drops what the L1 kept while there was none (values
    /// loaded while Redis was unreachable), which no invalidation could have reached, and lets
    /// loads use Redis again at once.
    fn connected(self: Arc<Self>);
}

struct Member {
    id: u64,
    prefix: String,
    coherent: bool,
    sink: Weak<dyn Sink>,
}

/// The caches of one connection, and the prefixes tracked on it.
#[derive(Default)]
pub(crate) struct Registry {
    members: RwLock<Vec<Member>>,
    /// Prefixes registered on the current connection (a minimal, non-overlapping set).
    tracked: Mutex<Vec<String>>,
    next_id: AtomicU64,
    /// Set once the server refused `CLIENT TRACKING`: L1s are then bounded by TTLs only.
    unsupported: AtomicBool,
}

/// How a new prefix relates to what is tracked.
pub(crate) enum Coverage {
    /// Already covered by a tracked prefix.
    Covered,
    /// Disjoint from every tracked prefix: can be added to the live connection.
    Disjoint,
    /// A shorter prefix of tracked ones: Redis refuses overlaps, so tracking must be redone.
    Overlaps,
}

impl Registry {
    /// Adds a cache; returns its id.
    pub(crate) fn join(&self, prefix: String, coherent: bool, sink: Weak<dyn Sink>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut members = crate::lock::write(&self.members);
        members.retain(|m| m.sink.strong_count() > 0);
        members.push(Member {
            id,
            prefix,
            coherent,
            sink,
        });
        id
    }

    /// Removes a cache.
    pub(crate) fn leave(&self, id: u64) {
        let mut members = crate::lock::write(&self.members);
        members.retain(|m| m.id != id && m.sink.strong_count() > 0);
    }

    /// Prefixes of other caches nested strictly inside `prefix` (cache `p:q` inside `p`).
    pub(crate) fn nested_prefixes(&self, prefix: &str) -> Vec<String> {
        let members = crate::lock::read(&self.members);
        let mut out: Vec<String> = members
            .iter()
            .filter(|m| {
                m.prefix.len() > prefix.len()
                    && m.prefix.starts_with(prefix)
                    && m.sink.strong_count() > 0
            })
            .map(|m| m.prefix.clone())
            .collect();
        out.dedup();
        out
    }

    /// The smallest set of prefixes covering every coherent cache (Redis refuses overlapping
    /// prefixes on one client, and a shorter prefix covers the longer ones).
    pub(crate) fn wanted_prefixes(&self) -> Vec<String> {
        let members = crate::lock::read(&self.members);
        let mut all: Vec<&str> = members
            .iter()
            .filter(|m| m.coherent && m.sink.strong_count() > 0)
            .map(|m| m.prefix.as_str())
            .collect();
        all.sort_unstable();
        all.dedup();
        minimal(&all)
    }

    /// How `prefix` relates to the prefixes tracked now.
    pub(crate) fn coverage(&self, prefix: &str) -> Coverage {
        let tracked = crate::lock::lock(&self.tracked);
        if tracked.iter().any(|t| prefix.starts_with(t.as_str())) {
            Coverage::Covered
        } else if tracked.iter().any(|t| t.starts_with(prefix)) {
            Coverage::Overlaps
        } else {
            Coverage::Disjoint
        }
    }

    /// Records the prefixes now tracked on the current connection.
    pub(crate) fn set_tracked(&self, prefixes: Vec<String>) {
        *crate::lock::lock(&self.tracked) = prefixes;
    }

    /// Records one more tracked prefix.
    pub(crate) fn add_tracked(&self, prefix: String) {
        crate::lock::lock(&self.tracked).push(prefix);
    }

    /// Whether tracking is on for the current connection.
    pub(crate) fn tracking(&self) -> bool {
        !crate::lock::lock(&self.tracked).is_empty()
    }

    /// Marks tracking as refused by the server.
    pub(crate) fn mark_unsupported(&self) -> bool {
        !self.unsupported.swap(true, Ordering::AcqRel)
    }

    /// Whether the server refused tracking.
    pub(crate) fn unsupported(&self) -> bool {
        self.unsupported.load(Ordering::Acquire)
    }

    /// Handles a message on [`INVALIDATE_CHANNEL`] (`[channel, keys or nil]`), the form
    /// redirected invalidations take when their target is a RESP2 Pub/Sub connection; other
    /// channels are ignored. (A RESP3 target, like ours, gets them as `invalidate` pushes.)
    pub(crate) fn on_message(&self, data: &[Value]) {
        if let [Value::BulkString(channel), payload] = data
            && channel.as_slice() == INVALIDATE_CHANNEL
        {
            self.on_push(std::slice::from_ref(payload));
        }
    }

    /// Handles an `invalidate` push: `[array of keys]`, or `[nil]` after FLUSHDB/FLUSHALL.
    /// Keys Redis stops tracking because its tracking table is full (`tracking-table-max-keys`)
    /// arrive the same way, and are simply dropped from the L1s.
    pub(crate) fn on_push(&self, data: &[Value]) {
        match data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    if let Value::BulkString(k) = key {
                        self.route(k, None, true);
                    }
                }
            }
            Some(Value::BulkString(k)) => self.route(k, None, true),
            _ => self.flush_all(),
        }
    }

    /// A cache of this process wrote `key`: every *other* cache whose prefix matches drops it
    /// at once (with `NOLOOP`, broadcasting, Redis does not tell us about our own writes; with
    /// key-based tracking the echo may come later than the next read).
    pub(crate) fn local_write(&self, key: &[u8], writer: u64) {
        self.route(key, Some(writer), false);
    }

    /// A cache of this process emptied itself: every other cache with the same prefix, or one
    /// nested inside it, flushes too.
    pub(crate) fn local_clear(&self, prefix: &str, writer: u64) {
        for (sink, _) in self.live(|m| m.id != writer && m.prefix.starts_with(prefix)) {
            sink.flush();
        }
    }

    fn route(&self, key: &[u8], skip: Option<u64>, from_redis: bool) {
        for (sink, prefix_len) in
            self.live(|m| Some(m.id) != skip && key.starts_with(m.prefix.as_bytes()))
        {
            if from_redis {
                sink.pushed(&key[prefix_len..]);
            } else {
                sink.invalidate(&key[prefix_len..]);
            }
        }
    }

    /// Empties every L1 on this connection (connection lost, FLUSHDB, tracking redone).
    pub(crate) fn flush_all(&self) {
        for (sink, _) in self.live(|_| true) {
            sink.flush();
        }
    }

    /// See [`Sink::disconnected`].
    pub(crate) fn disconnected_all(&self) {
        for (sink, _) in self.live(|_| true) {
            sink.disconnected();
        }
    }

    /// See [`Sink::connected`].
    pub(crate) fn connected_all(&self) {
        for (sink, _) in self.live(|_| true) {
            sink.connected();
        }
    }

    /// The live caches that `pick` selects, with their prefix lengths. Collected under the
    /// lock and used after it is released: a handle upgraded here may turn out to be a cache's
    /// last one (its owner dropped it meanwhile), and dropping it makes the cache `leave`,
    /// which takes the lock for writing.
    fn live(&self, pick: impl Fn(&Member) -> bool) -> Vec<(Arc<dyn Sink>, usize)> {
        let members = crate::lock::read(&self.members);
        members
            .iter()
            .filter(|m| pick(m))
            .filter_map(|m| Some((m.sink.upgrade()?, m.prefix.len())))
            .collect()
    }
}

/// Keeps only prefixes not covered by a shorter one (input sorted).
fn minimal(sorted: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in sorted {
        if !out.iter().any(|kept| p.starts_with(kept.as_str())) {
            out.push((*p).to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache whose last handle is dropped (by another thread) while a push is being routed
    /// to it: the router ends up dropping it, and it leaves the registry from there.
    struct Leaving {
        registry: Arc<Registry>,
        id: Mutex<u64>,
        holder: Arc<Mutex<Option<Arc<dyn Sink>>>>,
    }

    impl Sink for Leaving {
        fn invalidate(&self, _: &[u8]) {}
        fn pushed(&self, _: &[u8]) {
            self.holder.lock().unwrap().take();
        }
        fn flush(&self) {}
        fn disconnected(&self) {}
        fn connected(self: Arc<Self>) {}
    }

    impl Drop for Leaving {
        fn drop(&mut self) {
            self.registry.leave(*self.id.lock().unwrap());
        }
    }

    #[test]
    fn a_cache_dropped_during_routing_leaves_without_a_deadlock() {
        let registry = Arc::new(Registry::default());
        let holder = Arc::new(Mutex::new(None));
        let sink = Arc::new(Leaving {
            registry: registry.clone(),
            id: Mutex::new(0),
            holder: holder.clone(),
        });
        let weak: Weak<dyn Sink> = Arc::downgrade(&(sink.clone() as Arc<dyn Sink>));
        *sink.id.lock().unwrap() = registry.join("p:".into(), true, weak);
        *holder.lock().unwrap() = Some(sink as Arc<dyn Sink>);
        let (done, finished) = std::sync::mpsc::channel();
        let r = registry.clone();
        std::thread::spawn(move || {
            r.on_push(&[Value::Array(vec![Value::BulkString(b"p:k".to_vec())])]);
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("routing a push to a cache dropped meanwhile deadlocked");
        assert!(holder.lock().unwrap().is_none());
        assert_eq!(registry.members.read().unwrap().len(), 0, "the cache left");
    }

    #[test]
    fn minimal_prefix_set_drops_covered_ones() {
        assert_eq!(minimal(&["p:", "p:q:", "pq:", "r:"]), ["p:", "pq:", "r:"]);
        assert_eq!(minimal(&[]), Vec::<String>::new());
    }
}
