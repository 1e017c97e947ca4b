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
        }
    }

    /// Redis acknowledged the batch: `values` (one per key, in order, each with its encoded
    /// length, which weighs it) may fill the L1.
    pub(crate) fn finish(self, values: Vec<(V, usize)>, deadline: Option<Instant>) {
        let deadlines = vec![deadline; values.len()];
        self.finish_each(values, deadlines);
    }

    /// [`WriteGuard::finish`] with a deadline per key (writes with jitter).
    pub(crate) fn finish_each(mut self, values: Vec<(V, usize)>, deadlines: Vec<Option<Instant>>) {
        self.done = true;
        self.local.release(&self.tickets);
        for (((key, ticket), (value, len)), deadline) in self
            .keys
            .iter()
            .zip(&self.tickets)
            .zip(values)
            .zip(deadlines)
        {
            self.local
                .settle_sized(key, Some((value, deadline)), len, *ticket);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for WriteGuard<'_, K, V> {
    fn drop(&mut self) {
        if !self.done {
            self.local.release(&self.tickets);
            for (key, ticket) in self.keys.iter().zip(&self.tickets) {
                self.local.settle(key, None, *ticket);
            }
        }
    }
}
