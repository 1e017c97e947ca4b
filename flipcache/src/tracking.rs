//! Coherence: which caches live on a connection, which key prefixes Redis tracks for us
//! (`CLIENT TRACKING ON BCAST PREFIX ... NOLOOP`), and routing of invalidations (pushes from
//! Redis, and writes made by other caches of this process) to every L1 they concern.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use redis::Value;

/// What the registry needs from a cache: drop one key, or everything.
pub(crate) trait Sink: Send + Sync {
    /// Drops the entry whose Redis key is `{prefix}{suffix}`.
    fn invalidate(&self, suffix: &[u8]);
    /// Drops every entry.
    fn flush(&self);
    /// Counts an invalidation received from Redis.
    fn count_invalidation(&self);
    /// A connection was (re)established: drops what the L1 kept while there was none (values
    /// loaded while Redis was unreachable), which no invalidation could have reached, and lets
    /// loads use Redis again at once.
    fn connected(&self);
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
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
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
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
        members.retain(|m| m.id != id && m.sink.strong_count() > 0);
    }

    /// Prefixes of other caches nested strictly inside `prefix` (cache `p:q` inside `p`).
    pub(crate) fn nested_prefixes(&self, prefix: &str) -> Vec<String> {
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
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
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
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
        let tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
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
        *self.tracked.lock().unwrap_or_else(|p| p.into_inner()) = prefixes;
    }

    /// Records one more tracked prefix.
    pub(crate) fn add_tracked(&self, prefix: String) {
        self.tracked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(prefix);
    }

    /// Marks tracking as refused by the server.
    pub(crate) fn mark_unsupported(&self) -> bool {
        !self.unsupported.swap(true, Ordering::AcqRel)
    }

    /// Whether the server refused tracking.
    pub(crate) fn unsupported(&self) -> bool {
        self.unsupported.load(Ordering::Acquire)
    }

    /// Handles an `invalidate` push: `[array of keys]`, or `[nil]` after FLUSHDB/FLUSHALL.
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
    /// (Redis does not tell us about our own writes: NOLOOP).
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
            sink.invalidate(&key[prefix_len..]);
            if from_redis {
                sink.count_invalidation();
            }
        }
    }

    /// Empties every L1 on this connection (connection lost, FLUSHDB, tracking redone).
    pub(crate) fn flush_all(&self) {
        for (sink, _) in self.live(|_| true) {
            sink.flush();
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
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
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
        fn invalidate(&self, _: &[u8]) {
            self.holder.lock().unwrap().take();
        }
        fn flush(&self) {}
        fn count_invalidation(&self) {}
        fn connected(&self) {}
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
