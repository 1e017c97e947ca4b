//! The coherence protocol: which reads and writes may fill the L1, decided by epochs and
//! tickets, and the guard that ends every write (even a cancelled one).
//!
//! Rules, all enforced under the lock of the key's shard (see [`super::Local`]):
//! - Every key hashes to a *slot* of its shard. A slot has an `epoch` (bumped by every write
//!   that starts and by every invalidation) and a count of `pending` writes.
//! - A read takes a [`Ticket`] before it asks Redis; its result may fill the L1 only if no write
//!   was pending when the ticket was taken, the slot's epoch has not moved since, and the
//!   cache-wide `global` epoch (bumped by flushes: connection loss, `FLUSHDB`) has not moved.
//! - A write bumps the epoch and counts itself pending; when Redis acknowledges it, it fills the
//!   L1 only if no other write of its slot overlapped it: none was in flight when it started,
//!   none started since, none is in flight now. (Overlapping writes may reach Redis in either
//!   order, whatever order they started in.) Otherwise (or on failure) it removes the entry.
//!
//! A hit that raced an invalidation returns the value the key held just before it: the read
//! happened first, as it would have under a lock.
//!
//! Echoes (key-based tracking, which tracks without `NOLOOP`: see `tracking.rs`): Redis pushes
//! an invalidation back to this process for each of its own writes of a key it tracks. A write
//! that leaves a value in the L1 makes sure Redis sends exactly one such echo (its script reads
//! the key before and after writing it) and says so before it is sent ([`WriteGuard::expect_echo`]),
//! which also drops the key's entry. A push of a key with echoes expected is taken as one of
//! them: it neither moves the epoch nor drops anything. This is safe because pushes and replies
//! arrive in the order Redis ran the commands, and each echo comes right after its write (Redis
//! 7: after its reply; 6: before it). A push taken for an echo while the write is in flight
//! finds no entry (dropped) and no fill possible (the write is pending); once every such write
//! has its reply, a key still expecting an echo can only hear that echo next. A write whose
//! echo will not come (failed, cancelled, `NX` not applied, `GETEX` of a missing key) gives its
//! expectation back before it stops being pending; one that may still come (a timeout) is then
//! just an invalidation. Counting too few is never unsafe (an echo then drops the write's own
//! entry); counting too many would be, and cannot happen. Connection loss clears the counts.

use std::hash::Hash;
use std::time::Instant;

use super::Local;

/// Coherence slots per shard: keys sharing a slot share an epoch (a write of one stops fills
/// of the others: spurious, never unsafe).
const SLOTS: usize = 64;

/// A read's or write's claim on a slot, taken before Redis is asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(super) hash: u64,
    pub(super) global: u64,
    pub(super) epoch: u64,
    pub(super) clean: bool,
    /// For writes: this ticket holds its slot's pending count (one per slot per batch).
    pub(super) owner: bool,
}

impl Ticket {
    /// A ticket that allows nothing (the L1 is off).
    pub(super) fn inert(hash: u64) -> Self {
        Ticket {
            hash,
            global: 0,
            epoch: 0,
            clean: false,
            owner: false,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    epoch: u64,
    pending: u32,
}

/// One shard's coherence state.
pub(super) struct Slots([Slot; SLOTS]);

/// Echoes still expected of this process's own writes, by key (few at a time: only writes in
/// flight or just acknowledged).
pub(super) struct Echoes<K>(Vec<(K, u32)>);

impl<K> Default for Echoes<K> {
    fn default() -> Self {
        Echoes(Vec::new())
    }
}

impl<K: Eq> Echoes<K> {
    /// One more echo of `key` is expected.
    pub(super) fn expect(&mut self, key: &K)
    where
        K: Clone,
    {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => self.0.push((key.clone(), 1)),
        }
    }

    /// A push of `key` arrived: whether it is taken as an expected echo (one fewer expected).
    pub(super) fn take<Q>(&mut self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(i) = self.0.iter().position(|(k, _)| k.borrow() == key) else {
            return false;
        };
        self.0[i].1 -= 1;
        if self.0[i].1 == 0 {
            self.0.swap_remove(i);
        }
        true
    }

    /// An expected echo of `key` will not come.
    pub(super) fn give_back(&mut self, key: &K) {
        let _ = self.take(key);
    }

    /// Expects nothing any more (the connection was lost: its echoes with it).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// Echoes expected, all keys together.
    #[cfg(test)]
    pub(super) fn pending(&self) -> u32 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

impl Default for Slots {
    fn default() -> Self {
        Slots([Slot::default(); SLOTS])
    }
}

impl Slots {
    /// The slot of the key hashing to `hash` (bits apart from those that pick the shard).
    #[inline]
    pub(super) fn index(hash: u64) -> usize {
        (hash >> 40) as usize % SLOTS
    }

    /// A read's ticket, `global` being the cache-wide epoch now.
    pub(super) fn read(&self, hash: u64, global: u64) -> Ticket {
        let slot = self.0[Self::index(hash)];
        Ticket {
            hash,
            global,
            epoch: slot.epoch,
            clean: slot.pending == 0,
            owner: false,
        }
    }

    /// Whether what `t` read or wrote may still fill, `global` being the cache-wide epoch now.
    pub(super) fn allows(&self, t: &Ticket, global: u64) -> bool {
        let slot = self.0[Self::index(t.hash)];
        t.clean && slot.pending == 0 && slot.epoch == t.epoch && global == t.global
    }

    /// Starts a write of slot `index`: its epoch moves and the write counts as pending.
    /// Returns the new epoch and whether no other write of the slot was in flight.
    pub(super) fn begin_write(&mut self, index: usize) -> (u64, bool) {
        let slot = &mut self.0[index];
        // A write that starts while another of its slot is in flight may reach Redis before or
        // after it (starting here and sending on the connection are not one step), so it is
        // not known to be the last one Redis applies: it never fills.
        let clean = slot.pending == 0;
        slot.pending += 1;
        slot.epoch += 1;
        (slot.epoch, clean)
    }

    /// Whether a write of the slot of `hash` is in flight.
    pub(super) fn pending(&self, hash: u64) -> bool {
        self.0[Self::index(hash)].pending > 0
    }

    /// A write of the slot of `hash` is no longer in flight.
    pub(super) fn end_write(&mut self, hash: u64) {
        let slot = &mut self.0[Self::index(hash)];
        slot.pending = slot.pending.saturating_sub(1);
    }

    /// An invalidation of a key of the slot of `hash`: reads in flight may not fill.
    pub(super) fn invalidate(&mut self, hash: u64) {
        self.0[Self::index(hash)].epoch += 1;
    }
}

/// A write (one key or a pipelined batch) in flight. Finishing it settles the L1; dropping it
/// unfinished (failure, or a cancelled future) removes every key it touched from the L1, since
/// its outcome in Redis is unknown.
pub(crate) struct WriteGuard<'a, K: Hash + Eq + Clone, V: Clone> {
    local: &'a Local<K, V>,
    keys: Vec<K>,
    tickets: Vec<Ticket>,
    done: bool,
    /// Whether an echo of each key is expected (see [`WriteGuard::expect_echo`]).
    echoes: bool,
}

impl<'a, K: Hash + Eq + Clone, V: Clone> WriteGuard<'a, K, V> {
    /// Starts the write of `keys` (later reads and older writes of them may no longer fill).
    pub(crate) fn begin(local: &'a Local<K, V>, keys: Vec<K>) -> Self {
        let tickets = local.begin_writes(keys.iter().map(|k| local.hash(k)));
        WriteGuard {
            local,
            keys,
            tickets,
            done: false,
            echoes: false,
        }
    }

    /// The write is about to be sent; `retrack`: in the form that has Redis track its keys
    /// for this connection (key-based tracking), which makes Redis echo it exactly once per key
    /// (see the module docs): expected from now on.
    pub(crate) fn sending(&mut self, retrack: bool) {
        if retrack {
            self.expect_echo();
        }
    }

    /// The write is about to be sent in a form that makes Redis echo it exactly once per key
    /// (see the module docs); the keys' entries are dropped. Later calls do nothing (a write
    /// is sent once).
    pub(crate) fn expect_echo(&mut self) {
        if !self.echoes {
            self.echoes = true;
            self.local.expect_echoes(&self.keys);
        }
    }

    /// Redis acknowledged the batch: `values` (one per key, in order, each with its encoded
    /// length, which weighs it) may fill the L1.
    pub(crate) fn finish(self, values: Vec<(V, usize)>, deadline: Option<Instant>) {
        let deadlines = vec![deadline; values.len()];
        self.finish_each(values, deadlines);
    }

    /// [`WriteGuard::finish`] with a deadline per key (writes with jitter).
    pub(crate) fn finish_each(self, values: Vec<(V, usize)>, deadlines: Vec<Option<Instant>>) {
        let outcomes = values
            .into_iter()
            .zip(deadlines)
            .map(|((v, len), d)| Some((v, len, d)))
            .collect();
        self.finish_some(outcomes);
    }

    /// Redis answered for each key: `Some((value, encoded length, deadline))` may fill the L1;
    /// `None` left the key unchanged in Redis (a `GETEX` of a missing key), so its echo is not
    /// expected any more, and its entry is dropped.
    pub(crate) fn finish_some(mut self, outcomes: Vec<Found<V>>) {
        self.done = true;
        if self.echoes {
            for (key, outcome) in self.keys.iter().zip(&outcomes) {
                if outcome.is_none() {
                    self.local.give_back_echo(key);
                }
            }
        }
        // Echoes given back before the write stops being pending (see the module docs).
        self.local.release(&self.tickets);
        for ((key, ticket), outcome) in self.keys.iter().zip(&self.tickets).zip(outcomes) {
            let outcome = outcome.map(|(v, len, d)| ((v, d), len));
            let len = outcome.as_ref().map_or(0, |o| o.1);
            self.local
                .settle_sized(key, outcome.map(|o| o.0), len, *ticket);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for WriteGuard<'_, K, V> {
    fn drop(&mut self) {
        if !self.done {
            if self.echoes {
                // Not applied, or not known to be: its echoes are not counted on (before the
                // release, see the module docs).
                for key in &self.keys {
                    self.local.give_back_echo(key);
                }
            }
            self.local.release(&self.tickets);
            for (key, ticket) in self.keys.iter().zip(&self.tickets) {
                self.local.settle(key, None, *ticket);
            }
        }
    }
}

/// What a read of one key found that may fill the L1: the value, its encoded length (which
/// weighs it) and its deadline. `None`: nothing to fill.
pub(crate) type Found<V> = Option<(V, usize, Option<Instant>)>;

/// How a read (one key or a batch) may fill the L1: under a read's [`Ticket`] per key, or, for
/// a read that changes its keys (`GETEX`, refresh-on-get), as a write whose echoes are
/// expected.
pub(crate) enum Fill<'a, K: Hash + Eq + Clone, V: Clone> {
    /// A plain read (`GET`, `PTTL`), a ticket per key.
    Read(&'a Local<K, V>, Vec<Ticket>),
    /// A read that writes (`GETEX`).
    Write(WriteGuard<'a, K, V>),
}

impl<K: Hash + Eq + Clone, V: Clone> Fill<'_, K, V> {
    /// The read is about to be sent; `retrack`: in the form that has Redis track its keys for
    /// this connection (key-based tracking), which makes a `GETEX` echo (expected from now on).
    pub(crate) fn sending(&mut self, retrack: bool) {
        if let Fill::Write(guard) = self {
            guard.sending(retrack);
        }
    }

    /// Fills the L1 with what the read found of each of `keys` (those it was made for, in
    /// order), unless something moved since.
    pub(crate) fn fill(self, keys: &[K], found: Vec<Found<V>>) {
        match self {
            Fill::Read(local, tickets) => {
                for ((key, ticket), found) in keys.iter().zip(tickets).zip(found) {
                    if let Some((value, len, deadline)) = found {
                        local.fill_sized(key.clone(), value, deadline, len, ticket);
                    }
                }
            }
            Fill::Write(guard) => guard.finish_some(found),
        }
    }
}
