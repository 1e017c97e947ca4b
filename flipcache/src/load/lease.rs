//! One load per key across processes (`distributed_lock`): a lease in Redis, taken by the
//! leader of a key's flight when Redis has no value, so that a cold or expired hot key runs its
//! loader once in the fleet rather than once per process.
//!
//! The protocol, for a leader whose read found nothing:
//!
//! 1. `SET __flipcache__:lease:{name}:{key} <token> NX PX <lease>` and, in the same pipeline
//!    and after it, the read of the value again (`GET` + `PTTL`, the absence marker). The order
//!    matters: a holder writes the value *before* releasing the lease, so whoever takes a
//!    released lease then sees the value in the same round trip and does not load it again. (On
//!    a cluster the lease and the value may sit on different slots: the lease is taken first,
//!    the read follows, two round trips.)
//! 2. Lease taken: run the loader, write the value (the usual write path), then release the
//!    lease only if it still holds this token (a compare-and-delete script), in the background.
//!    A leader that is dropped (panic, cancellation) releases it too.
//! 3. Lease held elsewhere: wait, without polling, for the value's key to change. Every process
//!    already receives Redis's invalidation for it (the read above tracks the key in key-based
//!    mode; broadcast mode covers the prefix), so the invalidation push of the holder's write
//!    wakes the waiter, which reads the value in one round trip. The wait is bounded by what is
//!    left of the lease (read with `PTTL` in the same pipeline): past it (the holder died or
//!    hangs), the waiter tries to take the lease over. A slow poll (a tenth of the lease,
//!    between 20 ms and 1 s) catches what no push reports: a holder whose loader failed or
//!    found nothing, or a cache without tracking (`coherence(false)`).
//!
//! Redis unreachable at any step: the load goes on with the process's own single-flight
//! (fail-open); the lease never causes an error of its own. Background refreshes
//! (`stale_for`, `eager_refresh`) take the lease too, and leave the key to its holder when they
//! cannot: the holder's write reaches every L1 through tracking.
//!
//! A lease is for efficiency, not mutual exclusion: a holder paused past its lease (a GC-like
//! stall, a stopped VM) still writes when it wakes, and the value written last wins, under the
//! usual coherence rules.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::call::{Ask, Got};
use crate::core::{Core, Stored, Why};
use crate::key::FlipKey;
use crate::lock::lock;
use crate::remote::{self, LeaseOn, Remote};

/// The slow poll of a waiter: a tenth of the lease, within these bounds.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_secs(1);

/// A cache's lease settings and the waiters of its keys.
pub(crate) struct Leases {
    /// How long a lease lasts (the longest a holder may take before others take over).
    pub(crate) lease: Duration,
    /// How many [`Watch`]es are alive: invalidations skip the map when none is.
    waiting: AtomicUsize,
    /// The waiters of each key, by the key's suffix (the Redis key without `{name}:`).
    watched: std::sync::Mutex<HashMap<Box<[u8]>, Watched>>,
}

/// A watched key's notifier, and how many [`Watch`]es share it.
type Watched = (Arc<Notify>, usize);

impl Leases {
    pub(crate) fn new(lease: Duration) -> Self {
        Leases {
            lease,
            waiting: AtomicUsize::new(0),
            watched: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// How long a waiter sleeps at most between two looks at Redis.
    pub(crate) fn poll(&self) -> Duration {
        (self.lease / 10).clamp(POLL_MIN, POLL_MAX)
    }

    /// Starts watching the key whose suffix is `suffix`: its invalidations wake the watch.
    pub(crate) fn watch(self: &Arc<Self>, suffix: &[u8]) -> Watch {
        let notify = {
            let mut watched = lock(&self.watched);
            let entry = watched
                .entry(suffix.into())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Watch {
            leases: self.clone(),
            suffix: suffix.into(),
            notify,
        }
    }

    /// The key with this suffix changed in Redis (an invalidation).
    pub(crate) fn changed(&self, suffix: &[u8]) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some((notify, _)) = lock(&self.watched).get(suffix) {
            notify.notify_waiters();
        }
    }

    /// Anything may have changed (a flush, a lost connection): every waiter looks again.
    pub(crate) fn all_changed(&self) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        for (notify, _) in lock(&self.watched).values() {
            notify.notify_waiters();
        }
    }
}

/// A waiter's registration for the invalidations of one key; leaves when dropped.
pub(crate) struct Watch {
    leases: Arc<Leases>,
    suffix: Box<[u8]>,
    notify: Arc<Notify>,
}

impl Watch {
    /// A future that completes at the next invalidation of the key after this call (even if it
    /// is polled only later).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = lock(&self.leases.watched);
        if let Some(entry) = watched.get_mut(&self.suffix) {
            entry.1 -= 1;
            if entry.1 == 0 {
                watched.remove(&self.suffix);
            }
        }
        self.leases.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A lease to take: its key and this leader's token.
pub(crate) struct Claim {
    pub(crate) key: String,
    pub(crate) token: String,
    pub(crate) lease: Duration,
}

impl Claim {
    /// A claim on the lease of the value key `rkey`, with a fresh random token.
    pub(crate) fn new(rkey: &str, lease: Duration) -> Self {
        Claim {
            key: crate::key::lease_key(rkey),
            token: format!("{:032x}", fastrand::u128(..)),
            lease,
        }
    }

    /// The claim as the lease command takes it.
    pub(crate) fn on(&self) -> LeaseOn<'_> {
        LeaseOn {
            key: &self.key,
            token: &self.token,
            lease: self.lease,
        }
    }
}

/// A lease this process holds. Released when dropped (after the value was written, or when
/// the load was abandoned), in the background: nobody waits for the release, since waiters
/// are woken by the value's write.
pub(crate) struct Held {
    remote: Arc<Remote>,
    rt: &'static Handle,
    timeout: Duration,
    claim: Claim,
}

impl Held {
    pub(crate) fn new(
        remote: Arc<Remote>,
        rt: &'static Handle,
        timeout: Duration,
        claim: Claim,
    ) -> Self {
        Held {
            remote,
            rt,
            timeout,
            claim,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let remote = self.remote.clone();
        let timeout = self.timeout;
        let key = std::mem::take(&mut self.claim.key);
        let token = std::mem::take(&mut self.claim.token);
        self.rt.spawn(async move {
            let released = remote
                .run(timeout, |c| remote::release_lease(c, &key, &token))
                .await;
            if released.is_err() {
                tracing::debug!("could not release a lease (it expires on its own)");
            }
        });
    }
}

/// What a leader's attempt at the lease came to.
pub(crate) enum Contest<V> {
    /// This process holds the lease: run the loader.
    Hold(Held),
    /// Redis has what the loader would give (another process's load landed meanwhile).
    Found(Got<V, Infallible>),
    /// Another process holds the lease: a background refresh leaves the key to it.
    Busy,
    /// Redis failed: load with this process's single-flight alone (fail-open).
    Alone,
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    /// Takes the lease of `key` for a load, or waits for its holder's value (see the module
    /// docs). A `refresh` never waits: it loads if it takes the lease, else leaves the key to
    /// the holder ([`Contest::Busy`]).
    pub(crate) async fn contend(&self, key: &K, ask: Ask, refresh: bool) -> Contest<V> {
        let Some(leases) = &self.leases else {
            return Contest::Alone;
        };
        let rkey = self.rkey(key);
        let watch = leases.watch(&rkey.as_bytes()[self.name.len() + 1..]);
        let claim = Claim::new(&rkey, leases.lease);
        loop {
            // Created before the round trip: a write that lands after it wakes this wait.
            let changed = watch.changed();
            let (taken, stored) = match self.read_leased(key, ask.absent, &claim).await {
                Ok(read) => read,
                Err(e) => {
                    self.health.trouble(&self.name, &e);
                    return Contest::Alone;
                }
            };
            self.health.healthy(&self.name);
            let held = |claim| Held::new(self.remote.clone(), self.rt(), self.timeout(), claim);
            if refresh {
                return match taken.acquired {
                    true => Contest::Hold(held(claim)),
                    false => Contest::Busy,
                };
            }
            let found = match stored {
                Ok(Stored::Value(v, stale)) if !(stale && taken.acquired) => Some(Got::Value(v)),
                Ok(Stored::Absent) if ask.absent => Some(Got::Absent),
                // Missing, stale with the lease taken, or a value that no longer decodes.
                _ => None,
            };
            match (found, taken.acquired) {
                (Some(got), acquired) => {
                    if acquired {
                        // Taken just after its holder released it: give it back.
                        drop(held(claim));
                    }
                    return Contest::Found(got);
                }
                (None, true) => return Contest::Hold(held(claim)),
                (None, false) => {}
            }
            let nap = taken
                .left
                .map_or(POLL_MIN, |left| left + Duration::from_millis(1))
                .min(leases.poll());
            if tokio::time::timeout(nap, changed).await.is_err() {
                // The lease ran out (or the slow poll): try to take it over.
                continue;
            }
            // The value's key changed: read it in one round trip.
            match self.read_seen(key, ask.absent, Why::Look).await.0 {
                Ok(Stored::Value(v, _)) => return Contest::Found(Got::Value(v)),
                Ok(Stored::Absent) if ask.absent => return Contest::Found(Got::Absent),
                Err(e) if e.is_remote() => {
                    self.health.trouble(&self.name, &e);
                    return Contest::Alone;
                }
                // Deleted, or not what this load wants: look at the lease again.
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_leave_the_map_when_dropped() {
        let leases = Arc::new(Leases::new(Duration::from_secs(1)));
        let a = leases.watch(b"1");
        let b = leases.watch(b"1");
        let c = leases.watch(b"2");
        assert_eq!(lock(&leases.watched).len(), 2);
        drop(a);
        assert_eq!(lock(&leases.watched).len(), 2);
        drop(b);
        drop(c);
        assert!(lock(&leases.watched).is_empty());
        assert_eq!(leases.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_change_wakes_a_watch_created_before_it() {
        let leases = Arc::new(Leases::new(Duration::from_secs(1)));
        let watch = leases.watch(b"k");
        let other = leases.watch(b"other");
        let changed = watch.changed();
        let unchanged = other.changed();
        leases.changed(b"k");
        futures_executor::block_on(changed);
        let mut unchanged = std::pin::pin!(unchanged);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(unchanged.as_mut().poll(&mut cx).is_pending());
        leases.all_changed();
        assert!(unchanged.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn the_poll_is_a_tenth_of_the_lease_within_bounds() {
        assert_eq!(
            Leases::new(Duration::from_secs(2)).poll(),
            Duration::from_millis(200)
        );
        assert_eq!(Leases::new(Duration::from_millis(50)).poll(), POLL_MIN);
        assert_eq!(Leases::new(Duration::from_secs(60)).poll(), POLL_MAX);
    }
}
