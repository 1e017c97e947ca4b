//! The call path of a load, for both fronts and the memo: join the key's flight; as its
//! leader, read Redis once, else run the loader and store its result; as a waiter, take the
//! leader's outcome.
//!
//! A load is started ([`Core::start_blocking`] or [`Core::start_async`]); if it needs the caller's
//! loader, the caller runs it itself and hands the result to [`Loading::finish`]. So a blocking
//! loader runs on the calling thread outside any executor (it may call other blocking caches
//! or memoized functions), an async one in the caller's task. The two starts differ only in how
//! they wait and read (a blocking leader reads on its thread's own pooled connection); every
//! decision between the steps is made by the shared helpers below, so both behave alike.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use super::flight::{Flight, Join, Landed, Lead, SharedError};
use super::lease::{Contest, Held};
use super::{Load, LoadError, Loaded};
use crate::core::{Core, Stored, Why};
use crate::error::{Error, Result};
use crate::instrument::LoadTimer;
use crate::key::FlipKey;
use crate::remote::fill::Seen;
use crate::runtime::block_on;
use crate::stats::Counters;

/// What a loader produced: a value (with its entry settings), absence, or its error.
pub(crate) type Produced<V, E> = std::result::Result<Option<Loaded<V>>, E>;

/// How a loader's error type is shared with the waiters of its flight.
pub(crate) trait Sharing: Sized {
    /// The error as the waiters see it; `None`: they run their own loader.
    fn share(&self) -> Option<SharedError>;
    /// A waiter's view of a shared error, if it has this type.
    fn accept(shared: SharedError) -> Option<Self>;
}

impl<E: Send + Sync + 'static> Sharing for Arc<E> {
    fn share(&self) -> Option<SharedError> {
        Some(self.clone())
    }
    fn accept(shared: SharedError) -> Option<Self> {
        shared.downcast::<E>().ok()
    }
}

impl Sharing for Infallible {
    fn share(&self) -> Option<SharedError> {
        match *self {}
    }
    fn accept(_: SharedError) -> Option<Self> {
        None
    }
}

/// A result that stays with the caller whose loader produced it (a memoized function's `Err`):
/// its waiters run their own loader.
pub(crate) struct Unshared;

impl Sharing for Unshared {
    fn share(&self) -> Option<SharedError> {
        None
    }
    fn accept(_: SharedError) -> Option<Self> {
        None
    }
}

/// What a load gives its caller.
pub(crate) enum Got<V, E> {
    /// A value: from the L1, Redis, the loader or another caller's load.
    Value(V),
    /// Absent: the loader returned none, or Redis remembers that it did.
    Absent,
    /// The loader failed.
    Failed(E),
    /// Redis failed before the loader ran (only when not failing open).
    Cache(Error),
    /// The loader ran but its outcome could not be stored (only when not failing open).
    Unstored(Option<V>, Error),
}

/// What one load asks for.
#[derive(Clone, Copy)]
pub(crate) struct Ask {
    /// Whether the caller accepts absence (reads the absence markers, shares `None`).
    pub(crate) absent: bool,
    /// Whether Redis trouble is ignored (the loader's value returned, kept locally).
    pub(crate) fail_open: bool,
}

/// What a waiter does with the leader's outcome.
enum Follow<V, E> {
    Done(Got<V, E>),
    /// Join again (the leader gave up).
    Again,
    /// Run the loader without waiting for anyone.
    Alone,
}

/// What the leader does after reading Redis.
enum Next<V> {
    Done(Got<V, Infallible>),
    Stale(V),
    Load,
    /// Redis answered and has nothing: load, under the key's lease when there is one.
    Contend,
}

/// Where a load stands once the caller may have to run its loader.
pub(crate) enum Start<K: FlipKey, V: Clone + Send + Sync + 'static, E> {
    /// Settled without the caller's loader (an L1 hit, Redis, another caller's load).
    Done(Got<V, E>),
    /// Redis had a stale value (`stale_for`): the caller serves it and refreshes the key in the
    /// background with its loader, if it can (its fill checked against that read).
    Stale(V, Option<Seen>),
    /// The caller runs its loader and hands the result to [`Loading::finish`].
    Load(Loading<K, V>),
}

/// A load whose loader the caller runs now. Dropping it unfinished (the loader panicked, the
/// future was cancelled) hands the key over to a waiter. It owns what it needs, so the load
/// can move to a task of its own (`load_hard_timeout`).
pub(crate) struct Loading<K: FlipKey, V: Clone + Send + Sync + 'static> {
    core: Arc<Core<K, V>>,
    /// `None`: the caller runs alone (its flight's leader did not share).
    lead: Option<Lead<K, V>>,
    key: K,
    ask: Ask,
    /// The key's lease in Redis, when this load holds it (`distributed_lock`).
    lease: Option<Held>,
    /// Measures the load (`instrument`).
    timer: LoadTimer,
    /// What the read before the loader noted: the fill stores only if nothing wrote the key
    /// since (`None`: no read was made, Redis being in trouble; the value is kept locally).
    seen: Option<Seen>,
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Loading<K, V> {
    /// Stores what the loader produced and lands the flight (async).
    pub(crate) async fn finish<E: Sharing>(self, produced: Produced<V, E>) -> Got<V, E> {
        let Loading {
            core,
            lead,
            key,
            ask,
            lease,
            timer,
            seen,
        } = self;
        core.loaded(&timer, &key, produced.is_ok());
        let got = timer
            .within(core.settle(lead, key, ask, produced, seen.as_ref()))
            .await;
        // Released once the value is written (its write is what wakes the other processes).
        drop(lease);
        got
    }

    /// Runs the (blocking) loader `f` inside this load's span.
    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        self.timer.within_blocking(f)
    }

    /// The loader's future `f`, inside this load's span.
    pub(crate) fn run_async<F: Future>(&self, f: F) -> impl Future<Output = F::Output> {
        self.timer.within(f)
    }

    /// [`Loading::finish`] from a blocking caller.
    pub(crate) fn finish_blocking<E: Sharing>(self, produced: Produced<V, E>) -> Got<V, E> {
        let rt = self.core.rt();
        block_on(rt, self.finish(produced))
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    /// Starts a load on the calling thread (the blocking front and sync memoized functions):
    /// waits on the key's flight, or leads it and reads Redis on the thread's own connection.
    pub(crate) fn start_blocking<E: Sharing>(self: &Arc<Self>, key: K, ask: Ask) -> Start<K, V, E> {
        loop {
            match self.flights.join(&key) {
                Join::Follow(flight) => match self.follow(self.wait_blocking(&flight, &key), ask) {
                    Follow::Done(got) => return Start::Done(got),
                    Follow::Again => {}
                    Follow::Alone => return self.loading(None, key, ask, None, flight.seen()),
                },
                Join::Lead(lead) => {
                    if let Some(v) = self.local_hit(&key) {
                        lead.land(Landed::Value(v.clone()));
                        return Start::Done(Got::Value(v));
                    }
                    let (read, seen) = noted(
                        self.health
                            .allowed()
                            .then(|| self.read_blocking(&key, ask.absent, Why::Load)),
                    );
                    lead.note(seen.as_ref());
                    return match self.judge(read, ask) {
                        Next::Done(got) => Start::Done(self.land_read(lead, got)),
                        Next::Stale(v) => {
                            self.stale_served(&key);
                            lead.land(Landed::Value(v.clone()));
                            Start::Stale(v, seen)
                        }
                        Next::Load => self.loading(Some(lead), key, ask, None, seen),
                        Next::Contend => {
                            let contest = block_on(self.rt(), self.contend_within(&key, ask));
                            self.contended(lead, key, ask, contest, seen)
                        }
                    };
                }
            }
        }
    }

    /// [`Core::start_blocking`] for async callers.
    pub(crate) async fn start_async<E: Sharing>(
        self: &Arc<Self>,
        key: K,
        ask: Ask,
    ) -> Start<K, V, E> {
        loop {
            match self.flights.join(&key) {
                Join::Follow(flight) => match self.follow(self.wait(&flight, &key).await, ask) {
                    Follow::Done(got) => return Start::Done(got),
                    Follow::Again => {}
                    Follow::Alone => return self.loading(None, key, ask, None, flight.seen()),
                },
                Join::Lead(lead) => {
                    if let Some(v) = self.local_hit(&key) {
                        lead.land(Landed::Value(v.clone()));
                        return Start::Done(Got::Value(v));
                    }
                    let (read, seen) = noted(if self.health.allowed() {
                        Some(self.read_seen(&key, ask.absent, Why::Load).await)
                    } else {
                        None
                    });
                    lead.note(seen.as_ref());
                    return match self.judge(read, ask) {
                        Next::Done(got) => Start::Done(self.land_read(lead, got)),
                        Next::Stale(v) => {
                            self.stale_served(&key);
                            lead.land(Landed::Value(v.clone()));
                            Start::Stale(v, seen)
                        }
                        Next::Load => self.loading(Some(lead), key, ask, None, seen),
                        Next::Contend => {
                            let contest = self.contend_within(&key, ask).await;
                            self.contended(lead, key, ask, contest, seen)
                        }
                    };
                }
            }
        }
    }

    fn loading<E>(
        self: &Arc<Self>,
        lead: Option<Lead<K, V>>,
        key: K,
        ask: Ask,
        lease: Option<Held>,
        seen: Option<Seen>,
    ) -> Start<K, V, E> {
        Counters::bump(&self.counters.loads);
        Start::Load(Loading {
            core: self.clone(),
            lead,
            timer: self.load_timer(&key),
            key,
            ask,
            lease,
            seen,
        })
    }

    /// [`Core::contend`] for a leader's miss, waiting on another process's lease for at most
    /// the `load_hard_timeout`.
    async fn contend_within(&self, key: &K, ask: Ask) -> Result<Contest<V>> {
        let contest = self.contend(key, ask, false);
        match self.hard_timeout {
            None => Ok(contest.await),
            Some(hard) => tokio::time::timeout(hard, contest)
                .await
                .map_err(|_| self.load_timed_out(key, hard)),
        }
    }

    /// The leader's next step once the lease was contended for.
    fn contended<E>(
        self: &Arc<Self>,
        lead: Lead<K, V>,
        key: K,
        ask: Ask,
        contest: Result<Contest<V>>,
        seen: Option<Seen>,
    ) -> Start<K, V, E> {
        let contest = match contest {
            Ok(contest) => contest,
            Err(timed_out) => {
                lead.land(Landed::Cache(timed_out.clone()));
                return Start::Done(Got::Cache(timed_out));
            }
        };
        match contest {
            // The fill is checked against the leader's first read: any write since then (the
            // lease's own read included) stops it.
            Contest::Hold(held) => self.loading(Some(lead), key, ask, Some(held), seen),
            Contest::Found(got) => {
                Counters::bump(&self.counters.waits);
                Start::Done(self.land_read(lead, got))
            }
            Contest::Busy | Contest::Alone => self.loading(Some(lead), key, ask, None, seen),
        }
    }

    /// Waits on another caller's load, for at most the `load_hard_timeout` (`Landed::Cache`
    /// with a timeout error past it).
    fn wait_blocking(&self, flight: &Flight<V>, key: &K) -> Landed<V> {
        match self.hard_timeout {
            None => flight.wait(),
            Some(hard) => flight
                .wait_for(hard)
                .unwrap_or_else(|| Landed::Cache(self.load_timed_out(key, hard))),
        }
    }

    /// [`Core::wait_blocking`] for async callers.
    async fn wait(&self, flight: &Flight<V>, key: &K) -> Landed<V> {
        match self.hard_timeout {
            None => flight.wait_async().await,
            Some(hard) => tokio::time::timeout(hard, flight.wait_async())
                .await
                .unwrap_or_else(|_| Landed::Cache(self.load_timed_out(key, hard))),
        }
    }

    fn load_timed_out(&self, key: &K, after: Duration) -> Error {
        Error::LoadTimeout {
            cache: self.name.clone(),
            key: self.rkey(key),
            after,
        }
    }

    /// A waiter's reading of the leader's outcome.
    fn follow<E: Sharing>(&self, landed: Landed<V>, ask: Ask) -> Follow<V, E> {
        let done = |got| {
            Counters::bump(&self.counters.waits);
            Follow::Done(got)
        };
        match landed {
            Landed::Value(v) => done(Got::Value(v)),
            Landed::Absent if ask.absent => done(Got::Absent),
            Landed::Cache(e) if !ask.fail_open || e.is_load_timeout() => done(Got::Cache(e)),
            Landed::Failed(shared) => match E::accept(shared) {
                Some(e) => done(Got::Failed(e)),
                None => Follow::Alone,
            },
            Landed::Absent | Landed::Cache(_) | Landed::RunYourself => Follow::Alone,
            Landed::Abandoned => Follow::Again,
        }
    }

    /// The leader's reading of Redis's answer (`None`: Redis was skipped, being in trouble).
    fn judge(&self, read: Option<Result<Stored<V>>>, ask: Ask) -> Next<V> {
        let Some(read) = read else {
            return Next::Load;
        };
        match read {
            Ok(Stored::Value(v, false)) => {
                self.health.healthy(&self.name);
                Next::Done(Got::Value(v))
            }
            Ok(Stored::Value(v, true)) => {
                self.health.healthy(&self.name);
                Counters::bump(&self.counters.stale_served);
                Next::Stale(v)
            }
            Ok(Stored::Absent) if ask.absent => {
                self.health.healthy(&self.name);
                Next::Done(Got::Absent)
            }
            Ok(Stored::Absent | Stored::Missing) => {
                self.health.healthy(&self.name);
                self.to_load()
            }
            // A value that no longer decodes (a deploy changed the type): load and overwrite.
            Err(e) if !e.is_remote() => {
                self.health.trouble(&self.name, &e);
                self.to_load()
            }
            Err(e) if ask.fail_open => {
                self.health.trouble(&self.name, &e);
                Next::Load
            }
            Err(e) => Next::Done(Got::Cache(e)),
        }
    }

    /// A load after Redis answered: under the key's lease when there is one.
    fn to_load(&self) -> Next<V> {
        match self.leases {
            Some(_) => Next::Contend,
            None => Next::Load,
        }
    }

    /// Lands the flight with what Redis said, and gives it to the leader.
    fn land_read<E>(&self, lead: Lead<K, V>, got: Got<V, Infallible>) -> Got<V, E> {
        match got {
            Got::Value(v) => {
                lead.land(Landed::Value(v.clone()));
                Got::Value(v)
            }
            Got::Absent => {
                lead.land(Landed::Absent);
                Got::Absent
            }
            Got::Cache(e) => {
                lead.land(Landed::Cache(e.clone()));
                Got::Cache(e)
            }
            Got::Unstored(v, e) => {
                lead.land(Landed::Cache(e.clone()));
                Got::Unstored(v, e)
            }
            Got::Failed(never) => match never {},
        }
    }

    /// Stores what the loader produced (Redis and the L1, or the L1 alone when failing open),
    /// lands the flight, and gives the outcome to the caller.
    async fn settle<E: Sharing>(
        &self,
        lead: Option<Lead<K, V>>,
        key: K,
        ask: Ask,
        produced: Produced<V, E>,
        seen: Option<&Seen>,
    ) -> Got<V, E> {
        let land = |landed: Landed<V>| {
            if let Some(lead) = lead {
                lead.land(landed);
            }
        };
        match produced {
            Err(e) => {
                Counters::bump(&self.counters.load_errors);
                land(e.share().map_or(Landed::RunYourself, Landed::Failed));
                Got::Failed(e)
            }
            Ok(None) => {
                let stored = match (self.absent_ttl(), seen) {
                    (Some(_), Some(seen)) if ask.absent && self.health.allowed() => {
                        Some(self.write_absent(&key, seen).await.map(drop))
                    }
                    _ => None,
                };
                match self.stored(stored, ask) {
                    Ok(()) => {
                        land(if ask.absent {
                            Landed::Absent
                        } else {
                            Landed::RunYourself
                        });
                        Got::Absent
                    }
                    Err(e) => {
                        land(Landed::Cache(e.clone()));
                        Got::Unstored(None, e)
                    }
                }
            }
            Ok(Some(loaded)) => {
                let Loaded { value, ttl, tags } = loaded;
                // Stored only if nothing wrote the key since the read (`Ok(false)`: skipped,
                // and the L1 left to what Redis holds); without a read, kept locally.
                let stored = match seen {
                    Some(seen) if self.health.allowed() => Some(
                        self.fill(key.clone(), value.clone(), ttl, &tags, seen)
                            .await,
                    ),
                    _ => None,
                };
                let kept = matches!(stored, Some(Ok(_)));
                match self.stored(stored.map(|r| r.map(drop)), ask) {
                    Ok(()) => {
                        if !kept {
                            self.put_local(key, value.clone(), ttl);
                        }
                        land(Landed::Value(value.clone()));
                        Got::Value(value)
                    }
                    Err(e) => {
                        land(Landed::Cache(e.clone()));
                        Got::Unstored(Some(value), e)
                    }
                }
            }
        }
    }

    /// After a store (`None`: skipped, Redis being in trouble): fine, or the error to return.
    fn stored(&self, stored: Option<Result<()>>, ask: Ask) -> Result<()> {
        match stored {
            None => Ok(()),
            Some(Ok(())) => {
                self.health.healthy(&self.name);
                Ok(())
            }
            Some(Err(e)) if ask.fail_open || !e.is_remote() => {
                self.health.trouble(&self.name, &e);
                Ok(())
            }
            Some(Err(e)) => Err(e),
        }
    }
}

/// The loader methods of both fronts, over [`Core::start_blocking`] / [`Core::start_async`].
///
/// A load may outlive its call: a stale hit (`stale_for`) or a hit past the eager refresh point
/// is served at once while the key is refreshed in the background with the caller's loader.
/// That is why the fronts' loaders are `Send + 'static` (as `tokio::spawn`'s futures are).
impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    fn ask(&self, absent: bool) -> Ask {
        Ask {
            absent,
            fail_open: self.fail_open,
        }
    }

    /// A whole load from a blocking caller: an L1 hit (stale ones refreshed in the background),
    /// else [`Core::start_blocking`] and the loader on the caller's thread.
    #[inline]
    pub(crate) fn load_blocking<Q, E, F>(self: &Arc<Self>, key: &Q, ask: Ask, load: F) -> Got<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Sharing + Send + 'static,
        F: FnOnce() -> Produced<V, E> + Send + 'static,
    {
        if let Some((v, refresh)) = self.loader_hit(key) {
            if refresh {
                let flight = self.refresh_blocking(key.to_owned(), ask, load, None);
                return Got::Value(self.refreshed_blocking(&flight, v));
            }
            return Got::Value(v);
        }
        self.load_blocking_miss(key.to_owned(), ask, load)
    }

    #[inline(never)]
    fn load_blocking_miss<E, F>(self: &Arc<Self>, key: K, ask: Ask, load: F) -> Got<V, E>
    where
        E: Sharing + Send + 'static,
        F: FnOnce() -> Produced<V, E> + Send + 'static,
    {
        match self.start_blocking(key.clone(), ask) {
            Start::Done(got) => got,
            Start::Stale(v, seen) => {
                let flight = self.refresh_blocking(key, ask, load, seen);
                Got::Value(self.refreshed_blocking(&flight, v))
            }
            Start::Load(loading) => match self.hard_timeout {
                None => {
                    let produced = loading.run(load);
                    loading.finish_blocking(produced)
                }
                Some(hard) => {
                    // On the blocking pool, so the caller can stop waiting; a blocking loader
                    // cannot be interrupted: it runs to the end and its result is stored.
                    let task = self.rt().spawn_blocking(move || {
                        let produced = loading.run(load);
                        loading.finish_blocking(produced)
                    });
                    block_on(self.rt(), self.within(&key, hard, task))
                }
            },
        }
    }

    /// The outcome of a load moved to a task, if it lands within `hard`. A panic in the loader
    /// goes on in the caller, as if the loader had run there.
    async fn within<E>(
        &self,
        key: &K,
        hard: Duration,
        task: tokio::task::JoinHandle<Got<V, E>>,
    ) -> Got<V, E> {
        match tokio::time::timeout(hard, task).await {
            Ok(Ok(got)) => got,
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(_)) => Got::Cache(Error::Config {
                cache: self.name.clone(),
                message: "the runtime shut down during a load".into(),
            }),
            Err(_) => Got::Cache(self.load_timed_out(key, hard)),
        }
    }

    /// After starting a refresh: the refreshed value if it lands within the `load_timeout`,
    /// else (and at once without one) the stale `v`.
    pub(crate) fn refreshed_blocking(&self, flight: &Flight<V>, v: V) -> V {
        match self.soft_timeout.and_then(|soft| flight.wait_for(soft)) {
            Some(Landed::Value(new)) => new,
            _ => v,
        }
    }

    /// [`Core::refreshed_blocking`] for async callers.
    pub(crate) async fn refreshed(&self, flight: &Flight<V>, v: V) -> V {
        let Some(soft) = self.soft_timeout else {
            return v;
        };
        match tokio::time::timeout(soft, flight.wait_async()).await {
            Ok(Landed::Value(new)) => new,
            _ => v,
        }
    }

    /// Refreshes `key` with `load` on the runtime's blocking pool, unless a load of it is
    /// already in flight; gives the flight to wait on either way. Its fill is checked against
    /// `seen` (the read that found the value stale), or a read of its own made before the
    /// loader runs (a value served from the L1).
    pub(crate) fn refresh_blocking<E, F>(
        self: &Arc<Self>,
        key: K,
        ask: Ask,
        load: F,
        seen: Option<Seen>,
    ) -> Arc<Flight<V>>
    where
        E: Sharing + Send + 'static,
        F: FnOnce() -> Produced<V, E> + Send + 'static,
    {
        let lead = match self.flights.join(&key) {
            Join::Follow(flight) => return flight,
            Join::Lead(lead) => lead,
        };
        let flight = lead.flight();
        let core = self.clone();
        let timer = self.load_timer(&key);
        self.rt().spawn_blocking(move || {
            let rt = core.rt();
            let Some(lease) = block_on(rt, core.refresh_lease(&key, ask)) else {
                return;
            };
            // Counted once it runs (a refresh left to another process's lease loads nothing).
            core.refreshing();
            let seen = block_on(rt, core.refresh_read(&key, seen));
            let produced = timer.within_blocking(load);
            core.loaded(&timer, &key, produced.is_ok());
            block_on(
                rt,
                timer.within(core.settle(Some(lead), key, ask, produced, seen.as_ref())),
            );
            drop(lease);
        });
        flight
    }

    /// A whole load from async code; `load` is polled only if the loader is needed.
    #[inline]
    pub(crate) async fn load<Q, E, Fut>(self: &Arc<Self>, key: &Q, ask: Ask, load: Fut) -> Got<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Sharing + Send + 'static,
        Fut: Future<Output = Produced<V, E>> + Send + 'static,
    {
        if let Some((v, refresh)) = self.loader_hit(key) {
            if refresh {
                let flight = self.refresh_async(key.to_owned(), ask, load, None);
                return Got::Value(self.refreshed(&flight, v).await);
            }
            return Got::Value(v);
        }
        let key = key.to_owned();
        match self.start_async(key.clone(), ask).await {
            Start::Done(got) => got,
            Start::Stale(v, seen) => {
                let flight = self.refresh_async(key, ask, load, seen);
                Got::Value(self.refreshed(&flight, v).await)
            }
            Start::Load(loading) => match self.hard_timeout {
                None => {
                    let produced = loading.run_async(load).await;
                    loading.finish(produced).await
                }
                Some(hard) => {
                    // In a task of its own, so the caller can stop waiting while the load
                    // goes on (its result is stored).
                    let task = self.rt().spawn(async move {
                        let produced = loading.run_async(load).await;
                        loading.finish(produced).await
                    });
                    self.within(&key, hard, task).await
                }
            },
        }
    }

    /// Refreshes `key` with `load` in a task of its own, unless a load of it is in flight;
    /// gives the flight to wait on either way. Its fill is checked as
    /// [`Core::refresh_blocking`]'s.
    pub(crate) fn refresh_async<E, Fut>(
        self: &Arc<Self>,
        key: K,
        ask: Ask,
        load: Fut,
        seen: Option<Seen>,
    ) -> Arc<Flight<V>>
    where
        E: Sharing + Send + 'static,
        Fut: Future<Output = Produced<V, E>> + Send + 'static,
    {
        let lead = match self.flights.join(&key) {
            Join::Follow(flight) => return flight,
            Join::Lead(lead) => lead,
        };
        let flight = lead.flight();
        let core = self.clone();
        let timer = self.load_timer(&key);
        self.rt().spawn(async move {
            let Some(lease) = core.refresh_lease(&key, ask).await else {
                return;
            };
            core.refreshing();
            let seen = core.refresh_read(&key, seen).await;
            let produced = timer.within(load).await;
            core.loaded(&timer, &key, produced.is_ok());
            timer
                .within(core.settle(Some(lead), key, ask, produced, seen.as_ref()))
                .await;
            drop(lease);
        });
        flight
    }

    /// A background refresh that runs its loader: counted as a refresh and a load.
    fn refreshing(&self) {
        Counters::bump(&self.counters.refreshes);
        Counters::bump(&self.counters.loads);
    }

    /// What a refresh's fill is checked against: `seen` (the read that found the value stale),
    /// else a read made now, before its loader runs (a value served from the L1; `None`: Redis
    /// failed, and the refreshed value is kept locally).
    async fn refresh_read(&self, key: &K, seen: Option<Seen>) -> Option<Seen> {
        if seen.is_some() {
            return seen;
        }
        match self.snapshot(key).await {
            Ok(seen) => Some(seen),
            Err(e) => {
                tracing::debug!(cache = %self.name, error = %self.chain(&e), "a refresh could not read its key first");
                None
            }
        }
    }

    /// Whether a background refresh goes ahead, and under which lease: `None` when another
    /// process holds the key's lease (its write will reach this L1: the refresh is left to it,
    /// and dropping its flight unlanded sends any waiter back to read).
    async fn refresh_lease(&self, key: &K, ask: Ask) -> Option<Option<Held>> {
        if self.leases.is_none() {
            return Some(None);
        }
        match self.contend(key, ask, true).await {
            Contest::Hold(held) => Some(Some(held)),
            Contest::Busy => None,
            Contest::Found(_) | Contest::Alone => Some(None),
        }
    }

    #[inline]
    pub(crate) fn get_with_blocking<Q, T, F>(self: &Arc<Self>, key: &Q, load: F) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        F: FnOnce() -> T + Send + 'static,
    {
        let got = self.load_blocking(key, self.ask(false), move || {
            Ok::<_, Infallible>(Some(load().into_loaded()))
        });
        self.value_of(got)
    }

    pub(crate) async fn get_with<Q, T, Fut>(self: &Arc<Self>, key: &Q, load: Fut) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        Fut: Future<Output = T> + Send + 'static,
    {
        let got = self
            .load(key, self.ask(false), async move {
                Ok::<_, Infallible>(Some(load.await.into_loaded()))
            })
            .await;
        self.value_of(got)
    }

    #[inline]
    pub(crate) fn try_get_with_blocking<Q, T, E, F>(
        self: &Arc<Self>,
        key: &Q,
        load: F,
    ) -> std::result::Result<V, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        E: Send + Sync + 'static,
        F: FnOnce() -> std::result::Result<T, E> + Send + 'static,
    {
        let got = self.load_blocking(key, self.ask(false), move || {
            load().map(|t| Some(t.into_loaded())).map_err(Arc::new)
        });
        self.try_value_of(key, got)
    }

    pub(crate) async fn try_get_with<Q, T, E, Fut>(
        self: &Arc<Self>,
        key: &Q,
        load: Fut,
    ) -> std::result::Result<V, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        E: Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let got = self
            .load(key, self.ask(false), async move {
                load.await.map(|t| Some(t.into_loaded())).map_err(Arc::new)
            })
            .await;
        self.try_value_of(key, got)
    }

    #[inline]
    pub(crate) fn optionally_get_with_blocking<Q, T, F>(
        self: &Arc<Self>,
        key: &Q,
        load: F,
    ) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        F: FnOnce() -> Option<T> + Send + 'static,
    {
        let got = self.load_blocking(key, self.ask(true), move || {
            Ok::<_, Infallible>(load().map(Load::into_loaded))
        });
        self.option_of(got)
    }

    pub(crate) async fn optionally_get_with<Q, T, Fut>(
        self: &Arc<Self>,
        key: &Q,
        load: Fut,
    ) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let got = self
            .load(key, self.ask(true), async move {
                Ok::<_, Infallible>(load.await.map(Load::into_loaded))
            })
            .await;
        self.option_of(got)
    }

    fn option_of(&self, got: Got<V, Infallible>) -> Result<Option<V>> {
        match got {
            Got::Value(v) => Ok(Some(v)),
            Got::Absent => Ok(None),
            Got::Cache(e) | Got::Unstored(_, e) => Err(e),
            Got::Failed(never) => match never {},
        }
    }

    /// A load that asks for a value never settles as absent (its loader always gives one, and
    /// it neither reads markers nor takes another caller's absence): should it, this error.
    fn no_value(&self) -> Error {
        Error::Config {
            cache: self.name.clone(),
            message: "a load that needs a value settled as absent".into(),
        }
    }

    fn value_of(&self, got: Got<V, Infallible>) -> Result<V> {
        match self.option_of(got)? {
            Some(v) => Ok(v),
            None => Err(self.no_value()),
        }
    }

    fn try_value_of<Q, E>(
        &self,
        key: &Q,
        got: Got<V, Arc<E>>,
    ) -> std::result::Result<V, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match got {
            Got::Value(v) => Ok(v),
            Got::Failed(source) => Err(LoadError::Loader {
                cache: self.name.clone(),
                key: self.rkey(&key.to_owned()),
                source,
            }),
            Got::Cache(e) | Got::Unstored(_, e) => Err(LoadError::Cache(e)),
            Got::Absent => Err(LoadError::Cache(self.no_value())),
        }
    }
}

/// A leader's read split into what [`Core::judge`] reads and what the fill will check.
fn noted<V>(
    read: Option<(Result<Stored<V>>, Option<Seen>)>,
) -> (Option<Result<Stored<V>>>, Option<Seen>) {
    match read {
        None => (None, None),
        Some((stored, seen)) => (Some(stored), seen),
    }
}
