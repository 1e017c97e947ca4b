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
//!
//! Redirected reads: the blocking front's read connections track what they read for the shared
//! connection (`CLIENT TRACKING ON REDIRECT`), and Redis pushes a write once per connection
//! that tracks the key, so a write of a key one of them read brings a second push (sent while
//! the write runs, before its reply). Such a read marks its key ([`Echoes::mark`]) when its
//! ticket still allows a fill: no push of its slot was heard and no write of it started since
//! before the read was sent, so Redis ran the read after every write whose push was already
//! heard, and the read connection tracks the key until the next write, whose push is still to
//! come. Any push of the key unmarks it (Redis then tracks it for nobody), and so does a flush;
//! a write consumes the mark and expects one push more. A marked key whose tracking ended with
//! a write not yet heard expects that write's push instead, which also precedes the next one.
//! The marks are bounded: forgetting one only counts too few. (A read connection is never
//! closed while its generation lasts; one that fails is a lost connection: a flush.)

use std::collections::HashSet;
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
/// flight or just acknowledged), and the keys a redirecting connection tracks for this
/// process (see [`Echoes::mark`]).
pub(super) struct Echoes<K> {
    expected: Vec<(K, u32)>,
    /// Keys read on a connection that tracks them for the shared one (`REDIRECT`), with no
    /// push of them heard since: a write of one is pushed for that connection too.
    redirected: HashSet<K, foldhash::fast::RandomState>,
}

impl<K> Default for Echoes<K> {
    fn default() -> Self {
        Echoes {
            expected: Vec::new(),
            redirected: HashSet::default(),
        }
    }
}

impl<K: Eq + Hash> Echoes<K> {
    /// One more write of `key` is about to be sent in the form Redis echoes: returns how many
    /// pushes of it to take for that write's (now expected): its echo, and one more when a
    /// redirecting connection tracks the key (the write invalidates that tracking too, which
    /// is then consumed).
    pub(super) fn expect(&mut self, key: &K) -> u32
    where
        K: Clone,
    {
        let n = 1 + u32::from(self.redirected.remove(key));
        match self.expected.iter_mut().find(|(k, _)| k == key) {
            Some((_, m)) => *m += n,
            None => self.expected.push((key.clone(), n)),
        }
        n
    }

    /// A push of `key` arrived: whether it is taken as an expected echo (one fewer expected).
    /// Either way Redis no longer tracks the key for any connection.
    pub(super) fn take<Q>(&mut self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.redirected.remove(key);
        self.give_back(key, 1) == 1
    }

    /// Up to `n` expected pushes of `key` will not come (their write failed, or did not change
    /// the key); returns how many were still expected.
    pub(super) fn give_back<Q>(&mut self, key: &Q, n: u32) -> u32
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(i) = self.expected.iter().position(|(k, _)| k.borrow() == key) else {
            return 0;
        };
        let taken = n.min(self.expected[i].1);
        self.expected[i].1 -= taken;
        if self.expected[i].1 == 0 {
            self.expected.swap_remove(i);
        }
        taken
    }

    /// A connection that tracks for the shared one (`REDIRECT`) read `key`, with no push of a
    /// key of its slot heard and no write of that slot started since before it was sent (the
    /// read's ticket still allows a fill), so Redis tracks `key` for it now and the next push
    /// of `key` includes one for it. At most `max` keys are remembered: past that they are
    /// forgotten (a write of a forgotten key then expects one push fewer than comes, which
    /// only drops its entry).
    pub(super) fn mark(&mut self, key: K, max: usize) {
        if self.redirected.len() >= max {
            self.redirected.clear();
        }
        self.redirected.insert(key);
    }

    /// Expects nothing any more (the connection was lost: its echoes with it, and what the
    /// connections redirecting to it tracked).
    pub(super) fn clear(&mut self) {
        self.expected.clear();
        self.redirected.clear();
    }

    /// Echoes expected, all keys together.
    #[cfg(test)]
    pub(super) fn pending(&self) -> u32 {
        self.expected.iter().map(|(_, n)| n).sum()
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
    /// Once sent in the form Redis echoes: the pushes expected of each key (see
    /// [`WriteGuard::expect_echo`]).
    echoes: Option<Vec<u32>>,
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
            echoes: None,
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
        if self.echoes.is_none() {
            self.echoes = Some(self.local.expect_echoes(&self.keys));
        }
    }

    /// The pushes expected of each key are not counted on any more: those of the keys `which`
    /// picks (by position). Done before the write stops being pending (see the module docs).
    fn give_back_echoes(&self, which: impl Fn(usize) -> bool) {
        if let Some(expected) = &self.echoes {
            for (i, (key, &n)) in self.keys.iter().zip(expected).enumerate() {
                if which(i) {
                    self.local.give_back_echoes(key, n);
                }
            }
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
        self.give_back_echoes(|i| outcomes.get(i).is_none_or(Option::is_none));
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
            // Not applied, or not known to be: its echoes are not counted on.
            self.give_back_echoes(|_| true);
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
    Read {
        local: &'a Local<K, V>,
        tickets: Vec<Ticket>,
        /// Made on a connection that tracks what it reads for the shared one (`REDIRECT`): a
        /// write of a key it read is pushed for it too (see [`Local::fill_read`]).
        redirected: bool,
    },
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
    /// order; `None`: missing), unless something moved since.
    pub(crate) fn fill(self, keys: &[K], found: Vec<Found<V>>) {
        match self {
            Fill::Read {
                local,
                tickets,
                redirected,
            } => {
                for ((key, ticket), found) in keys.iter().zip(tickets).zip(found) {
                    local.fill_read(key.clone(), found, ticket, redirected);
                }
            }
            Fill::Write(guard) => guard.finish_some(found),
        }
    }
}
