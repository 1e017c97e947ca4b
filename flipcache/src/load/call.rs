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

use std::convert::Infallible;
use std::sync::Arc;

use std::future::Future;

use super::flight::{Join, Landed, Lead, SharedError};
use super::{Load, LoadError, Loaded};
use crate::core::{Core, Stored};
use crate::error::{Error, Result};
use crate::key::FlipKey;
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
    Load,
}

/// Where a load stands once the caller may have to run its loader.
pub(crate) enum Start<'a, K: FlipKey, V: Clone + Send + Sync + 'static, E> {
    /// Settled without the caller's loader (an L1 hit, Redis, another caller's load).
    Done(Got<V, E>),
    /// The caller runs its loader and hands the result to [`Loading::finish`].
    Load(Loading<'a, K, V>),
}

/// A load whose loader the caller runs now. Dropping it unfinished (the loader panicked, the
/// future was cancelled) hands the key over to a waiter.
pub(crate) struct Loading<'a, K: FlipKey, V: Clone + Send + Sync + 'static> {
    core: &'a Core<K, V>,
    /// `None`: the caller runs alone (its flight's leader did not share).
    lead: Option<Lead<'a, K, V>>,
    key: K,
    ask: Ask,
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Loading<'_, K, V> {
    /// Stores what the loader produced and lands the flight (async).
    pub(crate) async fn finish<E: Sharing>(self, produced: Produced<V, E>) -> Got<V, E> {
        let Loading {
            core,
            lead,
            key,
            ask,
        } = self;
        core.settle(lead, key, ask, produced).await
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
    pub(crate) fn start_blocking<E: Sharing>(&self, key: K, ask: Ask) -> Start<'_, K, V, E> {
        loop {
            match self.flights.join(&key) {
                Join::Follow(flight) => match self.follow(flight.wait(), ask) {
                    Follow::Done(got) => return Start::Done(got),
                    Follow::Again => {}
                    Follow::Alone => return self.loading(None, key, ask),
                },
                Join::Lead(lead) => {
                    if let Some(v) = self.local_hit(&key) {
                        lead.land(Landed::Value(v.clone()));
                        return Start::Done(Got::Value(v));
                    }
                    let read = self
                        .health
                        .allowed()
                        .then(|| self.read_blocking(&key, ask.absent));
                    return match self.judge(read, ask) {
                        Next::Done(got) => Start::Done(self.land_read(lead, got)),
                        Next::Load => self.loading(Some(lead), key, ask),
                    };
                }
            }
        }
    }

    /// [`Core::start_blocking`] for async callers.
    pub(crate) async fn start_async<E: Sharing>(&self, key: K, ask: Ask) -> Start<'_, K, V, E> {
        loop {
            match self.flights.join(&key) {
                Join::Follow(flight) => match self.follow(flight.wait_async().await, ask) {
                    Follow::Done(got) => return Start::Done(got),
                    Follow::Again => {}
                    Follow::Alone => return self.loading(None, key, ask),
                },
                Join::Lead(lead) => {
                    if let Some(v) = self.local_hit(&key) {
                        lead.land(Landed::Value(v.clone()));
                        return Start::Done(Got::Value(v));
                    }
                    let read = if self.health.allowed() {
                        Some(self.read(&key, ask.absent).await)
                    } else {
                        None
                    };
                    return match self.judge(read, ask) {
                        Next::Done(got) => Start::Done(self.land_read(lead, got)),
                        Next::Load => self.loading(Some(lead), key, ask),
                    };
                }
            }
        }
    }

    fn loading<'a, E>(
        &'a self,
        lead: Option<Lead<'a, K, V>>,
        key: K,
        ask: Ask,
    ) -> Start<'a, K, V, E> {
        Counters::bump(&self.counters.loads);
        Start::Load(Loading {
            core: self,
            lead,
            key,
            ask,
        })
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
            Landed::Cache(e) if !ask.fail_open => done(Got::Cache(e)),
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
            Ok(Stored::Value(v)) => {
                self.health.healthy(&self.name);
                Next::Done(Got::Value(v))
            }
            Ok(Stored::Absent) if ask.absent => {
                self.health.healthy(&self.name);
                Next::Done(Got::Absent)
            }
            Ok(Stored::Absent | Stored::Missing) => {
                self.health.healthy(&self.name);
                Next::Load
            }
            // A value that no longer decodes (a deploy changed the type): load and overwrite.
            Err(e) if !e.is_remote() => {
                self.health.trouble(&self.name, &e);
                Next::Load
            }
            Err(e) if ask.fail_open => {
                self.health.trouble(&self.name, &e);
                Next::Load
            }
            Err(e) => Next::Done(Got::Cache(e)),
        }
    }

    /// Lands the flight with what Redis said, and gives it to the leader.
    fn land_read<E>(&self, lead: Lead<'_, K, V>, got: Got<V, Infallible>) -> Got<V, E> {
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
        lead: Option<Lead<'_, K, V>>,
        key: K,
        ask: Ask,
        produced: Produced<V, E>,
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
                let stored = match self.absent_ttl() {
                    Some(_) if ask.absent && self.health.allowed() => {
                        Some(self.write_absent(&key).await)
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
                let stored = if self.health.allowed() {
                    Some(
                        self.write_tagged(key.clone(), value.clone(), ttl, false, &tags)
                            .await
                            .map(drop),
                    )
                } else {
                    None
                };
                let kept = matches!(stored, Some(Ok(())));
                match self.stored(stored, ask) {
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
impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    fn ask(&self, absent: bool) -> Ask {
        Ask {
            absent,
            fail_open: self.fail_open,
        }
    }

    /// A whole load from a blocking caller, the loader run on its thread if needed.
    pub(crate) fn load_blocking<E: Sharing>(
        &self,
        key: K,
        ask: Ask,
        load: impl FnOnce() -> Produced<V, E>,
    ) -> Got<V, E> {
        match self.start_blocking(key, ask) {
            Start::Done(got) => got,
            Start::Load(loading) => {
                let produced = load();
                loading.finish_blocking(produced)
            }
        }
    }

    /// A whole load from async code; `load` is polled only if the loader is needed.
    pub(crate) async fn load<E: Sharing>(
        &self,
        key: K,
        ask: Ask,
        load: impl Future<Output = Produced<V, E>>,
    ) -> Got<V, E> {
        match self.start_async(key, ask).await {
            Start::Done(got) => got,
            Start::Load(loading) => {
                let produced = load.await;
                loading.finish(produced).await
            }
        }
    }

    pub(crate) fn get_with_blocking<T: Load<V>>(
        &self,
        key: K,
        load: impl FnOnce() -> T,
    ) -> Result<V> {
        let got = self.load_blocking(key, self.ask(false), || {
            Ok::<_, Infallible>(Some(load().into_loaded()))
        });
        self.value_of(got)
    }

    pub(crate) async fn get_with<T: Load<V>>(
        &self,
        key: K,
        load: impl Future<Output = T>,
    ) -> Result<V> {
        let got = self
            .load(key, self.ask(false), async {
                Ok::<_, Infallible>(Some(load.await.into_loaded()))
            })
            .await;
        self.value_of(got)
    }

    pub(crate) fn try_get_with_blocking<T: Load<V>, E: Send + Sync + 'static>(
        &self,
        key: K,
        load: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<V, LoadError<E>> {
        let rkey = self.rkey(&key);
        let got = self.load_blocking(key, self.ask(false), || {
            load().map(|t| Some(t.into_loaded())).map_err(Arc::new)
        });
        self.try_value_of(rkey, got)
    }

    pub(crate) async fn try_get_with<T: Load<V>, E: Send + Sync + 'static>(
        &self,
        key: K,
        load: impl Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<V, LoadError<E>> {
        let rkey = self.rkey(&key);
        let got = self
            .load(key, self.ask(false), async {
                load.await.map(|t| Some(t.into_loaded())).map_err(Arc::new)
            })
            .await;
        self.try_value_of(rkey, got)
    }

    pub(crate) fn optionally_get_with_blocking<T: Load<V>>(
        &self,
        key: K,
        load: impl FnOnce() -> Option<T>,
    ) -> Result<Option<V>> {
        let got = self.load_blocking(key, self.ask(true), || {
            Ok::<_, Infallible>(load().map(Load::into_loaded))
        });
        self.option_of(got)
    }

    pub(crate) async fn optionally_get_with<T: Load<V>>(
        &self,
        key: K,
        load: impl Future<Output = Option<T>>,
    ) -> Result<Option<V>> {
        let got = self
            .load(key, self.ask(true), async {
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

    fn value_of(&self, got: Got<V, Infallible>) -> Result<V> {
        match self.option_of(got)? {
            Some(v) => Ok(v),
            // A load that asks for a value never settles as absent (its loader always gives
            // one, and it neither reads markers nor takes another caller's absence).
            None => Err(Error::Config {
                cache: self.name.clone(),
                message: "a load that needs a value settled as absent".into(),
            }),
        }
    }

    fn try_value_of<E>(
        &self,
        rkey: String,
        got: Got<V, Arc<E>>,
    ) -> std::result::Result<V, LoadError<E>> {
        match got {
            Got::Value(v) => Ok(v),
            Got::Failed(source) => Err(LoadError::Loader {
                cache: self.name.clone(),
                key: rkey,
                source,
            }),
            Got::Cache(e) | Got::Unstored(_, e) => Err(LoadError::Cache(e)),
            Got::Absent => Err(LoadError::Cache(Error::Config {
                cache: self.name.clone(),
                message: "a load that needs a value settled as absent".into(),
            })),
        }
    }
}
