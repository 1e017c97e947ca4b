//! Single-flight: concurrent misses of one key in one process run the body once; the others
//! wait for the leader and share its value. Threads wait on a `Condvar`, tasks on a tokio
//! `Notify`. A leader that panics or is dropped (a cancelled future) marks its flight
//! abandoned on the way out, so its waiters wake up and one of them takes over.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;

use crate::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The in-flight computations of one memoized function, by key.
pub(crate) struct Flights<V> {
    map: Mutex<Option<HashMap<String, Arc<Flight<V>>>>>,
}

/// One computation in flight.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    done: Condvar,
    notify: Notify,
}

enum State<V> {
    Running,
    /// The leader's result, cacheable: every waiter gets a clone.
    Value(V),
    /// The leader's result is not cached (`Err`, `None`): every waiter runs the body itself.
    Uncacheable,
    /// The leader panicked or was cancelled: one waiter takes over.
    Abandoned,
}

/// What a waiter learns when the leader is done.
pub(crate) enum Landed<V> {
    Value(V),
    RunYourself,
    TakeOver,
}

/// Either the caller leads the computation of a key, or someone else already does.
pub(crate) enum Join<'a, V> {
    Lead(Lead<'a, V>),
    Follow(Arc<Flight<V>>),
}

/// The leader's claim on a key; dropping it unfinished abandons the flight.
pub(crate) struct Lead<'a, V> {
    flights: &'a Flights<V>,
    key: String,
    flight: Arc<Flight<V>>,
    finished: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or map operation: a panic cannot
    // leave the data half-updated, so a poisoned lock is safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone> Flights<V> {
    pub(crate) const fn new() -> Self {
        Self {
            map: Mutex::new(None),
        }
    }

    /// Leads the computation of `key`, or follows the one already in flight.
    pub(crate) fn join(&self, key: &str) -> Join<'_, V> {
        let mut map = lock(&self.map);
        let map = map.get_or_insert_with(HashMap::new);
        if let Some(f) = map.get(key) {
            return Join::Follow(f.clone());
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            done: Condvar::new(),
            notify: Notify::new(),
        });
        map.insert(key.to_owned(), flight.clone());
        Join::Lead(Lead {
            flights: self,
            key: key.to_owned(),
            flight,
            finished: false,
        })
    }

    /// How many keys are in flight (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).as_ref().map_or(0, HashMap::len)
    }
}

impl<V> Flights<V> {
    fn remove(&self, key: &str, flight: &Arc<Flight<V>>) {
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
    fn land(&self, state: State<V>) {
        *lock(&self.state) = state;
        self.done.notify_all();
        self.notify.notify_waiters();
    }
}

impl<V: Clone> Flight<V> {
    fn landed(&self) -> Option<Landed<V>> {
        match &*lock(&self.state) {
            State::Running => None,
            State::Value(v) => Some(Landed::Value(v.clone())),
            State::Uncacheable => Some(Landed::RunYourself),
            State::Abandoned => Some(Landed::TakeOver),
        }
    }

    /// Blocks the thread until the leader is done.
    pub(crate) fn wait(&self) -> Landed<V> {
        let mut state = lock(&self.state);
        while matches!(*state, State::Running) {
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        self.landed().unwrap_or(Landed::TakeOver)
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

impl<V: Clone> Lead<'_, V> {
    /// Ends the flight: `Some(value)` is shared with every waiter, `None` tells them to run
    /// the body themselves.
    pub(crate) fn finish(mut self, value: Option<V>) {
        self.finished = true;
        self.flights.remove(&self.key, &self.flight);
        self.flight.land(match value {
            Some(v) => State::Value(v),
            None => State::Uncacheable,
        });
    }
}

impl<V> Drop for Lead<'_, V> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Panicked or cancelled: hand the key over to a waiter.
        self.flights.remove(&self.key, &self.flight);
        self.flight.land(State::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_per_key_and_waiters_share_its_value() {
        let flights: Arc<Flights<u32>> = Arc::new(Flights::new());
        let Join::Lead(lead) = flights.join("k") else {
            panic!("first caller must lead")
        };
        let Join::Follow(f) = flights.join("k") else {
            panic!("second caller must follow")
        };
        assert!(matches!(flights.join("other"), Join::Lead(_)));
        let waiter = std::thread::spawn(move || match f.wait() {
            Landed::Value(v) => v,
            _ => 0,
        });
        lead.finish(Some(7));
        assert_eq!(waiter.join().unwrap(), 7);
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn an_abandoned_flight_lets_a_waiter_take_over() {
        let flights: Flights<u32> = Flights::new();
        let Join::Lead(lead) = flights.join("k") else {
            panic!()
        };
        let Join::Follow(f) = flights.join("k") else {
            panic!()
        };
        drop(lead);
        assert!(matches!(f.wait(), Landed::TakeOver));
        assert!(matches!(flights.join("k"), Join::Lead(_)));
    }

    #[test]
    fn uncacheable_results_send_waiters_to_the_body() {
        let flights: Flights<u32> = Flights::new();
        let Join::Lead(lead) = flights.join("k") else {
            panic!()
        };
        let Join::Follow(f) = flights.join("k") else {
            panic!()
        };
        lead.finish(None);
        let landed = futures_executor::block_on(f.wait_async());
        assert!(matches!(landed, Landed::RunYourself));
    }
}
