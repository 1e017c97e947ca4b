//! Single-flight: concurrent misses of one key in one process run the loader once; the others
//! wait for the leader and share its outcome. Threads wait on a `Condvar`, tasks on a tokio
//! `Notify`. A leader that panics or is dropped (a cancelled future) marks its flight
//! abandoned on the way out, so its waiters wake up and one of them takes over.
//!
//! This is the only single-flight of the crate: the loader methods of both fronts and the
//! memoized functions all go through the [`Flights`] of their cache.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::error::Error;
use crate::remote::fill::Seen;
use crate::sync::{Condvar, Mutex, lock};

/// A loader error shared with the waiters of a flight (they downcast it to their own type).
pub(crate) type SharedError = Arc<dyn Any + Send + Sync>;

/// The in-flight loads of one cache, by key.
pub(crate) struct Flights<K, V> {
    map: Mutex<Option<HashMap<K, Arc<Flight<V>>>>>,
}

/// One load in flight.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    /// What the leader's read of the key noted, for a waiter that runs its own loader: its fill
    /// is checked against that read (older than its loader, so no write since is missed).
    seen: Mutex<Option<Seen>>,
    done: Condvar,
    notify: Notify,
}

/// How a flight ended, as its waiters see it.
#[derive(Clone)]
pub(crate) enum Landed<V> {
    /// The leader loaded or read a value: every waiter gets a clone.
    Value(V),
    /// The key is absent (the loader said so, or Redis remembers it): every waiter gets none.
    Absent,
    /// The loader failed with an error it shares (`try_get_with`); a waiter whose error type
    /// differs runs its own loader.
    Failed(SharedError),
    /// Redis failed and the cache does not fail open: every waiter gets the error.
    Cache(Error),
    /// The leader's result is not shared (a memoized function's `Err`): each waiter runs its
    /// own loader, without waiting for the others.
    RunYourself,
    /// The leader panicked or was cancelled: the waiters join again and one of them leads.
    Abandoned,
}

enum State<V> {
    Running,
    Landed(Landed<V>),
}

/// Either the caller leads the load of a key, or someone else already does.
pub(crate) enum Join<K: Hash + Eq, V> {
    Lead(Lead<K, V>),
    Follow(Arc<Flight<V>>),
}

/// The leader's claim on a key; dropping it unlanded abandons the flight. It owns what it
/// needs, so a load can move to a task or thread of its own.
pub(crate) struct Lead<K: Hash + Eq, V> {
    flights: Arc<Flights<K, V>>,
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K: Hash + Eq, V> Flights<K, V> {
    pub(crate) const fn new() -> Self {
        Self {
            map: Mutex::new(None),
        }
    }

    /// Leads the load of `key`, or follows the one already in flight.
    pub(crate) fn join(self: &Arc<Self>, key: &K) -> Join<K, V>
    where
        K: Clone,
    {
        let mut map = lock(&self.map);
        let map = map.get_or_insert_with(HashMap::new);
        if let Some(f) = map.get(key) {
            return Join::Follow(f.clone());
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            seen: Mutex::new(None),
            done: Condvar::new(),
            notify: Notify::new(),
        });
        map.insert(key.clone(), flight.clone());
        Join::Lead(Lead {
            flights: self.clone(),
            key: Some(key.clone()),
            flight,
        })
    }

    /// How many keys are in flight (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).as_ref().map_or(0, HashMap::len)
    }

    fn remove(&self, key: &K, flight: &Arc<Flight<V>>) {
        let mut map = lock(&self.map);
        if let Some(map) = map.as_mut()
            && map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight))
        {
            map.remove(key);
            if map.is_empty() && map.capacity() > 64 {
                map.shrink_to(16);
            }
        }
    }
}

impl<V> Flight<V> {
    /// What the leader's read noted, if it made one (see [`Lead::note`]).
    pub(crate) fn seen(&self) -> Option<Seen> {
        lock(&self.seen).clone()
    }

    fn land(&self, landed: Landed<V>) {
        *lock(&self.state) = State::Landed(landed);
        self.done.notify_all();
        self.notify.notify_waiters();
    }
}

impl<V: Clone> Flight<V> {
    fn landed(&self) -> Option<Landed<V>> {
        match &*lock(&self.state) {
            State::Running => None,
            State::Landed(l) => Some(l.clone()),
        }
    }

    /// Blocks the thread until the leader is done.
    pub(crate) fn wait(&self) -> Landed<V> {
        let mut state = lock(&self.state);
        loop {
            if let State::Landed(l) = &*state {
                return l.clone();
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// [`Flight::wait`] for at most `limit`; `None` when the leader is not done by then.
    pub(crate) fn wait_for(&self, limit: std::time::Duration) -> Option<Landed<V>> {
        let deadline = std::time::Instant::now() + limit;
        let mut state = lock(&self.state);
        loop {
            if let State::Landed(l) = &*state {
                return Some(l.clone());
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits (asynchronously) until the leader is done.
    pub(crate) async fn wait_async(&self) -> Landed<V> {
        loop {
            let mut notified = pin!(self.notify.notified());
            // Registered before the state is read, so a landing in between is not missed.
            notified.as_mut().enable();
            if let Some(landed) = self.landed() {
                return landed;
            }
            notified.await;
        }
    }
}

impl<K: Hash + Eq, V> Lead<K, V> {
    /// The flight this leader leads (to wait on it after handing the lead to a task).
    pub(crate) fn flight(&self) -> Arc<Flight<V>> {
        self.flight.clone()
    }

    /// Keeps what the leader's read noted, for waiters that will run their own loader.
    pub(crate) fn note(&self, seen: Option<&Seen>) {
        if let Some(seen) = seen {
            *lock(&self.flight.seen) = Some(seen.clone());
        }
    }

    /// Ends the flight; every waiter sees `landed`.
    pub(crate) fn land(mut self, landed: Landed<V>) {
        if let Some(key) = self.key.take() {
            self.flights.remove(&key, &self.flight);
        }
        self.flight.land(landed);
    }
}

impl<K: Hash + Eq, V> Drop for Lead<K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Panicked or cancelled: hand the key over to a waiter.
            self.flights.remove(&key, &self.flight);
            self.flight.land(Landed::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn one_leader_per_key_and_waiters_share_its_value() {
        let flights: Arc<Flights<String, u32>> = Arc::new(Flights::new());
        let Join::Lead(lead) = flights.join(&key("k")) else {
            panic!("first caller must lead")
        };
        let Join::Follow(f) = flights.join(&key("k")) else {
            panic!("second caller must follow")
        };
        assert!(matches!(flights.join(&key("other")), Join::Lead(_)));
        let waiter = std::thread::spawn(move || match f.wait() {
            Landed::Value(v) => v,
            _ => 0,
        });
        lead.land(Landed::Value(7));
        assert_eq!(waiter.join().unwrap(), 7);
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn an_abandoned_flight_lets_a_waiter_take_over() {
        let flights: Arc<Flights<String, u32>> = Arc::new(Flights::new());
        let Join::Lead(lead) = flights.join(&key("k")) else {
            panic!()
        };
        let Join::Follow(f) = flights.join(&key("k")) else {
            panic!()
        };
        drop(lead);
        assert!(matches!(f.wait(), Landed::Abandoned));
        assert!(matches!(flights.join(&key("k")), Join::Lead(_)));
    }

    #[test]
    fn unshared_results_send_waiters_to_their_own_loader() {
        let flights: Arc<Flights<String, u32>> = Arc::new(Flights::new());
        let Join::Lead(lead) = flights.join(&key("k")) else {
            panic!()
        };
        let Join::Follow(f) = flights.join(&key("k")) else {
            panic!()
        };
        lead.land(Landed::RunYourself);
        let landed = futures_executor::block_on(f.wait_async());
        assert!(matches!(landed, Landed::RunYourself));
    }

    #[test]
    fn shared_errors_reach_waiters_of_the_same_type_only() {
        let flights: Arc<Flights<String, u32>> = Arc::new(Flights::new());
        let Join::Lead(lead) = flights.join(&key("k")) else {
            panic!()
        };
        let Join::Follow(f) = flights.join(&key("k")) else {
            panic!()
        };
        let e: Arc<String> = Arc::new("boom".into());
        lead.land(Landed::Failed(e));
        let Landed::Failed(shared) = f.wait() else {
            panic!("a shared error")
        };
        assert!(shared.clone().downcast::<u8>().is_err());
        assert_eq!(*shared.downcast::<String>().unwrap(), "boom");
    }
}
