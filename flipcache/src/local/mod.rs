//! The L1: a bounded map of decoded values, each entry with a deadline, kept coherent with
//! Redis. One concern per file:
//! - [`storage`]: the lock-free table of entries, keyed by the key's hash, and their compact
//!   bookkeeping (deadline, weight, hit counter);
//! - [`policy`]: eviction, S3-FIFO (scan-resistant), one instance per shard;
//! - [`weight`]: the bounds (entries, bytes) and what an entry weighs;
//! - [`coherence`]: the epochs and tickets that stop a read or write from filling a value an
//!   invalidation or another write made stale, and the guard that ends every write.
//!
//! This file ties them together. Reads never write shared memory (beyond bumping an entry's
//! hit counter while it is below 3): entries live in a lock-free [`papaya::HashMap`], so hits
//! from many threads scale instead of queueing on a lock whose cache line bounces between
//! cores. Every *change* (fill, write, invalidation, eviction) happens under the lock of the
//! key's shard, which holds the shard's coherence slots and eviction queues, so changes are
//! serialised per shard.
//!
//! Bounds: the shards share one budget of `capacity` entries and one of `max_bytes` (atomic
//! counts) instead of a fixed slice each, so uneven hashing never evicts while the L1 as a whole
//! has room (a fixed split would turn a working set of exactly `local_max` keys into constant
//! misses). When a budget is spent, a new entry evicts from its own shard until it fits; if that
//! shard runs empty, the new entry is not kept. Neither bound is ever exceeded.

mod coherence;
mod policy;
mod storage;
mod weight;

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering};
use std::time::{Duration, Instant};

use papaya::Equivalent;
use thread_local::ThreadLocal;

use coherence::{Echoes, Slots};
pub(crate) use coherence::{Fill, Found, Ticket, WriteGuard};
use policy::S3Fifo;
use storage::{Clock, Entry, ID_LOW_BITS, Ids, Table};
pub(crate) use weight::{Limits, Weigher};

use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard, lock};

type Hasher = foldhash::fast::RandomState;

/// Below this many entries the L1 is one shard, so eviction is one policy over every entry.
const ONE_SHARD_BELOW: usize = 64;
/// Fewest entries per shard (on average) when the L1 is split.
const MIN_PER_SHARD: usize = 32;
const MAX_SHARDS: usize = 64;
/// Most table slots reserved up front, whatever the capacity (the table grows past this).
const PRESIZE_MAX: usize = 1 << 14;

/// One shard's write-side state: its coherence slots, the echoes its keys expect and its
/// eviction queues.
struct Shard<K> {
    slots: Slots,
    echoes: Echoes<K>,
    policy: S3Fifo,
}

impl<K> Default for Shard<K> {
    fn default() -> Self {
        Shard {
            slots: Slots::default(),
            echoes: Echoes::default(),
            policy: S3Fifo::default(),
        }
    }
}

#[repr(align(128))]
struct Padded<T>(T);

/// What a pushed invalidation did to the L1 ([`Local::hear`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// The echo of this process's own write, expected: nothing changed.
    Echo,
    /// Another client's write (or one not accounted for): the key's entry, if any, is gone
    /// (`dropped`: there was one), and reads in flight of it may not fill.
    Invalidated { dropped: bool },
}

/// What an L1 lookup found.
pub(crate) enum Lookup<V> {
    /// A live, fresh entry; `refresh` says the Redis TTL should be pushed out in the
    /// background (refresh-on-get), or, with [`Freshness`], that the entry is past its eager
    /// refresh point and this hit claimed its background refresh.
    Hit { value: V, refresh: bool },
    /// A live entry past its fresh lifetime (`stale_for`); `refresh` says this hit claimed its
    /// background refresh. Not counted as a hit.
    Stale { value: V, refresh: bool },
    /// Nothing usable.
    Miss,
}

/// When entries turn stale, and when a hit claims their background refresh (stale-while-
/// revalidate and eager refresh). Every entry's deadline is its Redis expiry; it is fresh until
/// `stale_for` before that.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Freshness {
    /// The end of an entry's life that is stale.
    pub(crate) stale_for: Duration,
    /// How long before going stale a hit claims an eager refresh.
    pub(crate) eager: Option<Duration>,
    /// After a claim, how long until another hit may claim again (a refresh that failed).
    pub(crate) retry: Duration,
}

/// The in-process layer of one cache.
pub(crate) struct Local<K, V> {
    table: Table<K, V>,
    shards: Box<[Padded<Mutex<Shard<K>>>]>,
    mask: u64,
    hasher: Hasher,
    global: AtomicU64,
    limits: Limits<K, V>,
    /// Most entries (`limits.max_entries`).
    capacity: usize,
    /// Entries held across all shards; never above `capacity`.
    len: AtomicUsize,
    /// Weight held across all shards; never above `limits.max_bytes`.
    bytes: AtomicUsize,
    /// With refresh-on-get: how often a key read only from the L1 has its Redis TTL renewed.
    refresh_every: Option<Duration>,
    /// With `stale_for` or eager refresh: when entries turn stale and get refreshed.
    freshness: Option<Freshness>,
    clock: Clock,
    /// Local hits, one counter per thread (written by that thread only, so a hit pays a plain
    /// load and store, and threads never share a counter's cache line).
    hits: ThreadLocal<Padded<StdAtomicU64>>,
    /// Stale values served (`Lookup::Stale`), counted the same way.
    stale_hits: ThreadLocal<Padded<StdAtomicU64>>,
    /// Entries evicted to make room (counted under the shard's lock, never on a hit).
    evictions: AtomicU64,
    /// Told the key of each evicted entry, under the shard's lock (it must not block).
    on_evict: Option<OnEvict<K>>,
}

/// What [`Local::on_evict`] calls.
pub(crate) type OnEvict<K> = Box<dyn Fn(&K) + Send + Sync>;

fn shard_count(capacity: usize) -> usize {
    if capacity < ONE_SHARD_BELOW {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(4, NonZeroUsize::get);
    let wanted = (cores * 4).next_power_of_two().min(MAX_SHARDS);
    let fit = capacity / MIN_PER_SHARD;
    // Largest power of two not above either bound.
    let n = wanted.min(fit).max(1);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

impl<T: Default> Default for Padded<T> {
    fn default() -> Self {
        Padded(T::default())
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Local<K, V> {
    /// An L1 of `capacity` entries (0: disabled).
    #[cfg(test)]
    pub(crate) fn new(capacity: usize, refresh_every: Option<Duration>) -> Self {
        Self::with_limits(Limits::entries(capacity), refresh_every, None)
    }

    /// An L1 within `limits`.
    pub(crate) fn with_limits(
        limits: Limits<K, V>,
        refresh_every: Option<Duration>,
        freshness: Option<Freshness>,
    ) -> Self {
        let capacity = limits.max_entries;
        // Entries to plan for: the entry bound, or what the byte bound holds of small entries.
        let planned = limits
            .max_bytes
            .map_or(capacity, |b| capacity.min(b / weight::ENTRY_OVERHEAD));
        let n = if limits.enabled() {
            shard_count(planned)
        } else {
            0
        };
        let shards = (0..n)
            .map(|_| Padded::default())
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let table = papaya::HashMap::builder()
            .capacity(planned.min(PRESIZE_MAX))
            .hasher(Ids)
            .build();
        Self {
            table,
            mask: n.saturating_sub(1) as u64,
            shards,
            hasher: Hasher::default(),
            global: AtomicU64::new(0),
            limits,
            capacity,
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            refresh_every,
            freshness,
            clock: Clock::new(),
            hits: ThreadLocal::new(),
            stale_hits: ThreadLocal::new(),
            evictions: AtomicU64::new(0),
            on_evict: None,
        }
    }

    /// Has `f` told the key of each entry evicted to make room (not of entries invalidated,
    /// expired or replaced). It runs under a shard's lock: it must only hand the key on.
    pub(crate) fn on_evict(&mut self, f: OnEvict<K>) {
        self.on_evict = Some(f);
    }

    /// Whether the L1 holds anything at all (`local_max > 0`, `local_max_bytes > 0`).
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The configured bound of entries.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The configured bound of bytes, if any.
    pub(crate) fn max_bytes(&self) -> Option<usize> {
        self.limits.max_bytes
    }

    /// The weight held now (by the entries' weights).
    pub(crate) fn weight(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The table's key for the key hashing to `hash` (its low byte is the policy's).
    #[inline]
    fn id(hash: u64) -> u64 {
        hash & !ID_LOW_BITS
    }

    #[inline]
    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard<K>> {
        // Bits 8.. (the id's own), apart from the coherence slot's (40..).
        lock(&self.shards[((hash >> 8) & self.mask) as usize].0)
    }

    /// Inserts or replaces under the shard lock, within the shared budgets; false when the
    /// entry could not be kept.
    fn insert(&self, shard: &mut Shard<K>, id: u64, entry: Entry<K, V>) -> bool {
        let guard = self.table.guard();
        let weight = entry.weight();
        // A replaced entry goes (given back first) and its successor keeps its standing.
        let mut standing = None;
        if let Some(old) = self.table.remove(&id, &guard) {
            let state = old.state.load(Ordering::Relaxed);
            shard
                .policy
                .forget(&self.table, &guard, state, old.weight());
            weight::give_back(&self.len, &self.bytes, 1, old.weight());
            standing = Some((policy::in_main(state), old.freq.load(Ordering::Relaxed)));
        }
        while !weight::take(&self.limits, &self.len, &self.bytes, weight) {
            // Budget spent: make room in this shard, or do not keep the entry.
            let evicted = |k: &K| {
                if let Some(f) = &self.on_evict {
                    f(k);
                }
            };
            match shard.policy.evict(&self.table, &guard, evicted) {
                Some(w) => {
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    weight::give_back(&self.len, &self.bytes, 1, w);
                }
                None => return false,
            }
        }
        let (to_main, freq) = standing.unwrap_or((false, 0));
        let state = shard.policy.admit(id, weight, to_main);
        entry.state.store(state, Ordering::Relaxed);
        entry.freq.store(freq, Ordering::Relaxed);
        self.table.insert(id, entry, &guard);
        true
    }

    /// Removes the entry of `id` under the shard lock; says whether there was one.
    fn remove(&self, shard: &mut Shard<K>, id: u64) -> bool {
        let guard = self.table.guard();
        let Some(old) = self.table.remove(&id, &guard) else {
            return false;
        };
        let state = old.state.load(Ordering::Relaxed);
        shard
            .policy
            .forget(&self.table, &guard, state, old.weight());
        weight::give_back(&self.len, &self.bytes, 1, old.weight());
        true
    }

    /// Counts a value served from the L1 (fresh, stale or a fail-safe copy). The caller counts,
    /// once it serves what [`Local::get`] found: a lookup counts nothing by itself.
    #[inline(always)]
    pub(crate) fn count_hit(&self) {
        bump_own(&self.hits);
    }

    /// Counts a stale value served from the L1 (besides its [`Local::count_hit`]).
    #[inline]
    pub(crate) fn count_stale(&self) {
        bump_own(&self.stale_hits);
    }

    /// Whether `key` is held and fresh (not expired, not past its stale point), without
    /// counting a use or claiming a refresh: what `contains` may answer from the L1.
    pub(crate) fn holds_fresh<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        if !self.enabled() {
            return false;
        }
        let guard = self.table.guard();
        let Some(entry) = self.table.get(&Self::id(self.hash(key)), &guard) else {
            return false;
        };
        if entry.key.borrow() != key {
            return false;
        }
        let now = self.clock.ms(Instant::now());
        if entry.has_deadline() && entry.expired_at(now) {
            return false;
        }
        match (self.freshness, entry.deadline_ms()) {
            (Some(f), Some(deadline)) => now < deadline.saturating_sub(ms_of(f.stale_for)),
            _ => true,
        }
    }

    /// Looks `key` up, counting a read as use (by the policy; hits are counted by whoever
    /// serves them, see [`Local::count_hit`]); an expired entry is dropped. Lock-free.
    // Always inlined: left to the heuristics, a build with the `metrics` feature called it out
    // of line from a hit (about 3 ns more, `scripts/bench-observability`).
    #[inline(always)]
    pub(crate) fn get<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        if !self.enabled() {
            return Lookup::Miss;
        }
        let hash = self.hash(key);
        let guard = self.table.guard();
        let Some(entry) = self.table.get(&Self::id(hash), &guard) else {
            return Lookup::Miss;
        };
        if entry.key.borrow() != key {
            return Lookup::Miss;
        }
        let mut refresh = false;
        if entry.has_deadline() || self.refresh_every.is_some() {
            let now = self.clock.ms(Instant::now());
            if entry.expired_at(now) {
                drop(guard);
                self.drop_expired(hash);
                return Lookup::Miss;
            }
            if let (Some(f), Some(deadline)) = (self.freshness, entry.deadline_ms()) {
                let fresh_until = deadline.saturating_sub(ms_of(f.stale_for));
                let stale = now >= fresh_until;
                let due = stale
                    || f.eager
                        .is_some_and(|e| now >= fresh_until.saturating_sub(ms_of(e)));
                let refresh = due && claim(&entry.refresh_at, now, f.retry);
                entry.mark_used();
                let value = entry.value.clone();
                if stale {
                    return Lookup::Stale { value, refresh };
                }
                return Lookup::Hit { value, refresh };
            }
            if let Some(every) = self.refresh_every {
                // Wrapping milliseconds: a wrong guess costs one refresh too many or too few,
                // and the deadline (not this) is what keeps the entry honest.
                let now = now as u32;
                let at = entry.refresh_at.load(Ordering::Relaxed);
                refresh = now.wrapping_sub(at) as i32 >= 0
                    && entry
                        .refresh_at
                        .compare_exchange(
                            at,
                            now.wrapping_add(refresh_ms(every)),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok();
            }
        }
        entry.mark_used();
        let value = entry.value.clone();
        Lookup::Hit { value, refresh }
    }

    /// Removes the entry of `hash` if it has expired (a hit found it so, without the lock).
    #[cold]
    fn drop_expired(&self, hash: u64) {
        let mut shard = self.shard(hash);
        let id = Self::id(hash);
        let expired = self
            .table
            .get(&id, &self.table.guard())
            .is_some_and(|e| e.expired(&self.clock));
        if expired {
            self.remove(&mut shard, id);
        }
    }

    /// Whether a live entry exists, without counting it as use.
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        self.enabled()
            && self
                .table
                .get(&Self::id(self.hash(key)), &self.table.guard())
                .is_some_and(|e| e.key.borrow() == key && !e.expired(&self.clock))
    }

    /// Marks `key` as recently used.
    pub(crate) fn touch<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        if self.enabled()
            && let Some(e) = self
                .table
                .get(&Self::id(self.hash(key)), &self.table.guard())
            && e.key.borrow() == key
        {
            e.mark_used();
        }
    }

    /// A ticket for a read of the key hashing to `hash`.
    pub(crate) fn read_ticket(&self, hash: u64) -> Ticket {
        if !self.enabled() {
            return Ticket::inert(hash);
        }
        let shard = self.shard(hash);
        shard.slots.read(hash, self.global.load(Ordering::Acquire))
    }

    fn still_valid(&self, shard: &Shard<K>, t: &Ticket) -> bool {
        shard.slots.allows(t, self.global.load(Ordering::Acquire))
    }

    /// A new entry for `key -> value` (of `encoded_len` bytes in Redis), or `None` when it
    /// could never be kept (heavier than the byte bound).
    fn entry(
        &self,
        key: K,
        value: V,
        deadline: Option<Instant>,
        encoded_len: usize,
        now: Instant,
    ) -> Option<Entry<K, V>> {
        let weight = self.limits.weigh(&key, &value, encoded_len);
        if self.limits.max_bytes.is_some_and(|max| weight > max) {
            return None;
        }
        let entry = Entry::new(key, value, deadline, weight, &self.clock)?;
        if let Some(every) = self.refresh_every {
            let at = (self.clock.ms(now) as u32).wrapping_add(refresh_ms(every));
            entry.refresh_at.store(at, Ordering::Relaxed);
        } else if self.freshness.is_some() {
            // Claimable as soon as the entry is due for a refresh.
            entry
                .refresh_at
                .store(self.clock.ms(now) as u32, Ordering::Relaxed);
        }
        Some(entry)
    }

    /// Fills the L1 with what a read under `ticket` found, unless something moved since.
    /// Returns whether the entry went in.
    #[cfg(test)]
    pub(crate) fn fill(&self, key: K, value: V, deadline: Option<Instant>, ticket: Ticket) -> bool {
        self.fill_sized(key, value, deadline, 0, ticket)
    }

    /// [`Local::fill`] of a value `encoded_len` bytes long in Redis (which weighs it).
    pub(crate) fn fill_sized(
        &self,
        key: K,
        value: V,
        deadline: Option<Instant>,
        encoded_len: usize,
        ticket: Ticket,
    ) -> bool {
        self.fill_read(key, Some((value, encoded_len, deadline)), ticket, false)
    }

    /// Fills the L1 with what a read under `ticket` found (`None`: missing, nothing to fill),
    /// unless something moved since. `redirected`: the read was made on a connection that
    /// tracks what it reads for the shared one (`REDIRECT`); found or not, the key is then
    /// remembered as tracked by it (see `Echoes::mark`). Returns whether an entry went in.
    pub(crate) fn fill_read(
        &self,
        key: K,
        found: Found<V>,
        ticket: Ticket,
        redirected: bool,
    ) -> bool {
        if !self.enabled() {
            return false;
        }
        let now = Instant::now();
        let marked = redirected.then(|| key.clone());
        // Weighed (the user's weigher may run) before the lock is taken.
        let entry = found.and_then(|(value, encoded_len, deadline)| {
            if deadline.is_some_and(|d| now >= d) {
                return None;
            }
            self.entry(key, value, deadline, encoded_len, now)
        });
        if entry.is_none() && marked.is_none() {
            return false;
        }
        let mut shard = self.shard(ticket.hash);
        if !self.still_valid(&shard, &ticket) {
            return false;
        }
        if let Some(key) = marked {
            let max = self.capacity() / self.shards.len() * 2 + 16;
            shard.echoes.mark(key, max);
        }
        entry.is_some_and(|entry| self.insert(&mut shard, Self::id(ticket.hash), entry))
    }

    /// Pushes out the deadline of an entry whose Redis TTL was just renewed.
    pub(crate) fn extend<Q>(&self, key: &Q, deadline: Instant, ticket: Ticket)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ToOwned<Owned = K> + ?Sized,
    {
        if !self.enabled() {
            return;
        }
        let shard = self.shard(ticket.hash);
        if !self.still_valid(&shard, &ticket) {
            return;
        }
        let guard = self.table.guard();
        let id = Self::id(ticket.hash);
        if let Some(e) = self.table.get(&id, &guard)
            && e.key.borrow() == key
        {
            // Entries are shared with lock-free readers, so a new one replaces it (same
            // weight, same standing with the policy).
            self.table
                .insert(id, e.extended(deadline, &self.clock), &guard);
        }
        drop(shard);
    }

    /// Starts a write (one key, or a pipelined batch) of the keys hashing to `hashes`: later
    /// reads and older writes of those slots may no longer fill. Keys of one batch sharing a
    /// slot share one claim, so a batch never blocks itself.
    pub(crate) fn begin_writes(&self, hashes: impl IntoIterator<Item = u64>) -> Vec<Ticket> {
        let mut claimed: Vec<(usize, usize, u64, bool)> = Vec::new();
        hashes
            .into_iter()
            .map(|hash| {
                if !self.enabled() {
                    return Ticket::inert(hash);
                }
                let shard_idx = ((hash >> 8) & self.mask) as usize;
                let slot_idx = Slots::index(hash);
                let global = self.global.load(Ordering::Acquire);
                if let Some(&(_, _, epoch, clean)) =
                    claimed.iter().find(|c| c.0 == shard_idx && c.1 == slot_idx)
                {
                    return Ticket {
                        hash,
                        global,
                        epoch,
                        clean,
                        owner: false,
                    };
                }
                let (epoch, clean) = self.shard(hash).slots.begin_write(slot_idx);
                claimed.push((shard_idx, slot_idx, epoch, clean));
                Ticket {
                    hash,
                    global,
                    epoch,
                    clean,
                    owner: true,
                }
            })
            .collect()
    }

    /// Ends the writes begun with `tickets` (all of one batch): their slots stop counting them
    /// as pending. Call [`Local::settle`] for each key afterwards.
    pub(crate) fn release(&self, tickets: &[Ticket]) {
        for t in tickets.iter().filter(|t| t.owner) {
            self.shard(t.hash).slots.end_write(t.hash);
        }
    }

    /// Settles one key of a released write. With `Some(value)` (Redis acknowledged it) the
    /// entry is filled if its batch is the newest write of the slot and no other is in flight;
    /// in every other case (failure, unknown outcome, delete, a newer write) it is removed.
    pub(crate) fn settle(&self, key: &K, outcome: Option<(V, Option<Instant>)>, ticket: Ticket) {
        self.settle_sized(key, outcome, 0, ticket);
    }

    /// [`Local::settle`] of a value `encoded_len` bytes long in Redis (which weighs it).
    pub(crate) fn settle_sized(
        &self,
        key: &K,
        outcome: Option<(V, Option<Instant>)>,
        encoded_len: usize,
        ticket: Ticket,
    ) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let id = Self::id(ticket.hash);
        let entry = match outcome {
            Some((value, deadline)) if deadline.is_none_or(|d| now < d) => {
                self.entry(key.clone(), value, deadline, encoded_len, now)
            }
            _ => None,
        };
        let mut shard = self.shard(ticket.hash);
        match entry {
            Some(entry) if self.still_valid(&shard, &ticket) => {
                if !self.insert(&mut shard, id, entry) {
                    self.remove(&mut shard, id);
                }
            }
            _ => {
                self.remove(&mut shard, id);
            }
        }
    }

    /// [`Local::begin_writes`] for one key.
    pub(crate) fn begin_write(&self, hash: u64) -> Ticket {
        let mut t = self.begin_writes([hash]);
        t.pop().unwrap_or(Ticket::inert(hash))
    }

    /// [`Local::release`] and [`Local::settle`] for one key.
    #[cfg(test)]
    pub(crate) fn end_write(&self, key: &K, outcome: Option<(V, Option<Instant>)>, ticket: Ticket) {
        self.release(&[ticket]);
        self.settle(key, outcome, ticket);
    }

    /// [`Local::end_write`] of a value `encoded_len` bytes long in Redis (which weighs it).
    pub(crate) fn end_write_sized(
        &self,
        key: &K,
        outcome: Option<(V, Option<Instant>)>,
        encoded_len: usize,
        ticket: Ticket,
    ) {
        self.release(&[ticket]);
        self.settle_sized(key, outcome, encoded_len, ticket);
    }

    /// Drops `key` and stops in-flight reads of it from filling.
    pub(crate) fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled() {
            return;
        }
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        shard.slots.invalidate(hash);
        // Whatever holds the id goes (a colliding key too: a miss, never a wrong value).
        self.remove(&mut shard, Self::id(hash));
    }

    /// Expects the pushes of a write of each of `keys` (its echo, and one for a redirecting
    /// connection that tracks the key; a batch may list a key twice) and drops their entries
    /// (see `coherence`). Returns how many pushes each key expects.
    pub(crate) fn expect_echoes(&self, keys: &[K]) -> Vec<u32> {
        if !self.enabled() {
            return vec![0; keys.len()];
        }
        keys.iter()
            .map(|key| {
                let hash = self.hash(key);
                let mut shard = self.shard(hash);
                let n = shard.echoes.expect(key);
                self.remove(&mut shard, Self::id(hash));
                n
            })
            .collect()
    }

    /// Whether a write of a key sharing a coherence slot with the key hashing to `hash` is in
    /// flight (a read started now could not fill).
    pub(crate) fn write_pending(&self, hash: u64) -> bool {
        self.enabled() && self.shard(hash).slots.pending(hash)
    }

    /// `n` pushes of `key` expected by a write will not come (or may not).
    pub(crate) fn give_back_echoes(&self, key: &K, n: u32) {
        if !self.enabled() || n == 0 {
            return;
        }
        self.shard(self.hash(key)).echoes.give_back(key, n);
    }

    /// Redis pushed an invalidation of `key`: taken as an expected echo of this process's own
    /// write if one is expected (then nothing changes), else an invalidation
    /// ([`Local::invalidate`]).
    pub(crate) fn hear<Q>(&self, key: &Q) -> Heard
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled() {
            return Heard::Invalidated { dropped: false };
        }
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        if shard.echoes.take(key) {
            return Heard::Echo;
        }
        shard.slots.invalidate(hash);
        let dropped = self.remove(&mut shard, Self::id(hash));
        Heard::Invalidated { dropped }
    }

    /// [`Local::hear`]: whether the push was an invalidation (not an expected echo).
    #[cfg(test)]
    pub(crate) fn heard<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        matches!(self.hear(key), Heard::Invalidated { .. })
    }

    /// Expects no echo any more (the connection that would carry them was lost).
    pub(crate) fn forget_echoes(&self) {
        for shard in self.shards.iter() {
            lock(&shard.0).echoes.clear();
        }
    }

    /// Echoes expected, all keys together.
    #[cfg(test)]
    pub(crate) fn echoes_expected(&self) -> u32 {
        self.shards
            .iter()
            .map(|s| lock(&s.0).echoes.pending())
            .sum()
    }

    /// Empties the L1, stops every in-flight read from filling and expects no echo any more.
    pub(crate) fn flush(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
        let guard = self.table.guard();
        for shard in self.shards.iter() {
            let mut shard = lock(&shard.0);
            shard.echoes.clear();
            let (n, w) = shard.policy.clear(&self.table, &guard);
            weight::give_back(&self.len, &self.bytes, n, w);
        }
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        let now = self.clock.ms(Instant::now());
        let table = self.table.pin();
        table
            .iter()
            .filter(|(_, e)| !(e.has_deadline() && e.expired_at(now)))
            .count()
    }

    /// The keys of live entries.
    pub(crate) fn keys(&self) -> Vec<K> {
        let now = self.clock.ms(Instant::now());
        let table = self.table.pin();
        table
            .iter()
            .filter(|(_, e)| !(e.has_deadline() && e.expired_at(now)))
            .map(|(_, e)| e.key.clone())
            .collect()
    }

    /// Local hits counted so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }

    /// Entries evicted so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Entries held now, without a walk of the table (expired ones not yet dropped count).
    pub(crate) fn held(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Stale values served from the L1 so far (all threads).
    pub(crate) fn stale_hits(&self) -> u64 {
        self.stale_hits
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// The L1 alone, without Redis: what the benchmarks that compare its policy and its memory with
/// other caches measure (`examples/l1_*.rs`). Not public API; it may change in any release.
#[doc(hidden)]
pub struct BareL1<K, V>(Local<K, V>);

impl<K, V> std::fmt::Debug for BareL1<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareL1").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> BareL1<K, V> {
    /// An L1 of at most `max_entries` entries and `max_bytes` bytes (each entry weighing 64).
    pub fn new(max_entries: usize, max_bytes: Option<usize>) -> Self {
        BareL1(Local::with_limits(
            Limits {
                max_entries,
                max_bytes,
                weigher: None,
            },
            None,
            None,
        ))
    }

    /// A lookup, as a cache read starts.
    pub fn get(&self, key: &K) -> Option<V> {
        match self.0.get(key) {
            Lookup::Hit { value, .. } => {
                self.0.count_hit();
                Some(value)
            }
            Lookup::Stale { .. } | Lookup::Miss => None,
        }
    }

    /// A fill, as a read that missed ends; false when the entry was not kept.
    pub fn insert(&self, key: K, value: V) -> bool {
        let ticket = self.0.read_ticket(self.0.hash(&key));
        self.0.fill_sized(key, value, None, 0, ticket)
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// `every` in (wrapping) milliseconds, at least 1.
/// Counts one on this thread's counter. Only this thread writes it (a thread that exits leaves
/// it to the next one given its id, after it), so the increment needs no atomic
/// read-modify-write.
#[inline(always)]
fn bump_own(counters: &ThreadLocal<Padded<StdAtomicU64>>) {
    let c = &counters.get_or_default().0;
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Claims an entry's background refresh: the first hit at or after `refresh_at` (wrapping
/// milliseconds) moves it `retry` ahead and gets `true`; the others get `false` (one refresh per
/// key at a time).
#[inline]
fn claim(refresh_at: &AtomicU32, now_ms: u64, retry: Duration) -> bool {
    let now = now_ms as u32;
    let at = refresh_at.load(Ordering::Relaxed);
    now.wrapping_sub(at) as i32 >= 0
        && refresh_at
            .compare_exchange(
                at,
                now.wrapping_add(refresh_ms(retry)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
}

fn refresh_ms(every: Duration) -> u32 {
    every.as_millis().clamp(1, i32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit<V: Clone>(l: Lookup<V>) -> Option<V> {
        match l {
            Lookup::Hit { value, .. } => Some(value),
            Lookup::Stale { .. } | Lookup::Miss => None,
        }
    }

    #[test]
    fn small_l1_evicts_the_entry_not_read_since() {
        let l: Local<u32, u32> = Local::new(3, None);
        for k in 0..3 {
            let t = l.read_ticket(l.hash(&k));
            assert!(l.fill(k, k, None, t));
        }
        assert_eq!(hit(l.get(&0)), Some(0)); // 0 is now most recent
        let t = l.read_ticket(l.hash(&3));
        l.fill(3, 3, None, t); // evicts 1: 0 was read, so it gets a second chance
        assert_eq!(hit(l.get(&1)), None);
        assert_eq!(hit(l.get(&0)), Some(0));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn capacity_is_never_exceeded_when_sharded() {
        let l: Local<u32, u32> = Local::new(1000, None);
        for k in 0..10_000 {
            let t = l.read_ticket(l.hash(&k));
            l.fill(k, k, None, t);
        }
        assert!(l.len() <= 1000);
        assert!(l.len() > 900);
    }

    #[test]
    fn a_working_set_of_exactly_capacity_fits_despite_sharding() {
        let l: Local<u64, u64> = Local::new(1000, None);
        assert!(l.shards.len() > 1);
        for k in 0..1000 {
            let t = l.read_ticket(l.hash(&k));
            assert!(l.fill(k, k, None, t));
        }
        assert_eq!(l.len(), 1000);
        for k in 0..1000 {
            assert_eq!(
                hit(l.get(&k)),
                Some(k),
                "key {k} was evicted although the L1 had room"
            );
        }
        let t = l.read_ticket(l.hash(&5000));
        l.fill(5000, 5000, None, t);
        assert_eq!(l.len(), 1000);
        l.invalidate(&5000);
        l.flush();
        assert_eq!(l.len(), 0);
        assert_eq!(l.len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn invalidation_during_a_read_blocks_the_fill() {
        let l: Local<u32, u32> = Local::new(10, None);
        let t = l.read_ticket(l.hash(&1));
        l.invalidate(&1);
        assert!(!l.fill(1, 1, None, t));
        let t = l.read_ticket(l.hash(&1));
        l.flush();
        assert!(!l.fill(1, 1, None, t));
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, None, t));
    }

    #[test]
    fn a_writes_own_echo_keeps_its_entry_whenever_it_comes() {
        let l: Local<u32, u32> = Local::new(10, None);
        // The echo after the reply is processed (Redis 7: it follows the reply).
        let mut g = WriteGuard::begin(&l, vec![1]);
        g.expect_echo();
        g.finish(vec![(2, 0)], None);
        assert!(!l.heard(&1), "the write's own echo is not an invalidation");
        assert_eq!(hit(l.get(&1)), Some(2));
        // The echo before the reply is processed (Redis 6, or the reader ran first).
        let mut g = WriteGuard::begin(&l, vec![1]);
        g.expect_echo();
        assert!(!l.heard(&1));
        g.finish(vec![(3, 0)], None);
        assert_eq!(hit(l.get(&1)), Some(3));
        // Nothing more is expected: the next push is another client's write.
        assert_eq!(l.echoes_expected(), 0);
        assert!(l.heard(&1));
        assert_eq!(hit(l.get(&1)), None);
    }

    #[test]
    fn expecting_an_echo_drops_the_entry_the_write_replaces() {
        let l: Local<u32, u32> = Local::new(10, None);
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, None, t));
        let mut g = WriteGuard::begin(&l, vec![1]);
        g.expect_echo();
        // A push taken for the echo while the write is in flight must find nothing to keep:
        // it may be another client's earlier write.
        assert_eq!(hit(l.get(&1)), None);
        assert!(!l.heard(&1));
        // ... and no read may fill meanwhile.
        let r = l.read_ticket(l.hash(&1));
        g.finish(vec![(2, 0)], None);
        assert!(!l.fill(1, 1, None, r));
        assert_eq!(hit(l.get(&1)), Some(2));
    }

    #[test]
    fn a_write_that_failed_or_did_not_apply_gives_its_echo_back() {
        let l: Local<u32, u32> = Local::new(10, None);
        let mut g = WriteGuard::begin(&l, vec![1]);
        g.expect_echo();
        drop(g); // failed, cancelled, or `NX` found a value: no echo will come
        assert_eq!(l.echoes_expected(), 0);
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, None, t));
        assert!(l.heard(&1), "another client's write is an invalidation");
        assert_eq!(hit(l.get(&1)), None);
        // A `GETEX` of a missing key changes nothing in Redis.
        let mut g = WriteGuard::begin(&l, vec![1, 2]);
        g.expect_echo();
        g.finish_some(vec![None, Some((5, 0, None))]);
        assert_eq!(l.echoes_expected(), 1);
        assert_eq!(hit(l.get(&2)), Some(5));
        assert!(!l.heard(&2));
        assert!(l.heard(&1));
    }

    #[test]
    fn a_batch_listing_a_key_twice_expects_two_echoes_and_a_flush_forgets_them() {
        let l: Local<u32, u32> = Local::new(10, None);
        let mut g = WriteGuard::begin(&l, vec![1, 1]);
        g.expect_echo();
        g.expect_echo(); // a second call adds nothing
        assert_eq!(l.echoes_expected(), 2);
        g.finish(vec![(1, 0), (2, 0)], None);
        l.flush();
        assert_eq!(l.echoes_expected(), 0);
        let mut g = WriteGuard::begin(&l, vec![3]);
        g.expect_echo();
        l.forget_echoes();
        g.finish(vec![(3, 0)], None);
        assert!(l.heard(&3), "an echo no longer expected drops the entry");
        assert_eq!(hit(l.get(&3)), None);
    }

    #[test]
    fn a_write_of_a_key_a_redirecting_connection_read_expects_its_push_too() {
        let l: Local<u32, u32> = Local::new(10, None);
        // A miss read on a connection that tracks for the shared one (`REDIRECT`).
        let t = l.read_ticket(l.hash(&1));
        assert!(!l.fill_read(1, None, t, true));
        let mut g = WriteGuard::begin(&l, vec![1]);
        g.expect_echo();
        assert_eq!(l.echoes_expected(), 2);
        assert!(
            !l.heard(&1),
            "the push for the redirecting connection (before the reply)"
        );
        g.finish(vec![(5, 0)], None);
        assert!(!l.heard(&1), "the write's own echo (after the reply)");
        assert_eq!(hit(l.get(&1)), Some(5));
        assert!(l.heard(&1), "the next push is another client's write");
        assert_eq!(hit(l.get(&1)), None);
        // A hit read on it, then a write that fails: both pushes given back.
        let t = l.read_ticket(l.hash(&2));
        assert!(l.fill_read(2, Some((7, 0, None)), t, true));
        let mut g = WriteGuard::begin(&l, vec![2]);
        g.expect_echo();
        assert_eq!(l.echoes_expected(), 2);
        drop(g);
        assert_eq!(l.echoes_expected(), 0);
    }

    #[test]
    fn a_redirected_read_is_not_counted_on_once_a_push_may_have_ended_its_tracking() {
        let l: Local<u32, u32> = Local::new(10, None);
        // A push overtook the read: it may have been sent before or after Redis ran the read.
        let t = l.read_ticket(l.hash(&1));
        assert!(l.heard(&1));
        assert!(!l.fill_read(1, Some((1, 0, None)), t, true));
        // A write started while the read was in flight.
        let t = l.read_ticket(l.hash(&2));
        let mut g = WriteGuard::begin(&l, vec![2]);
        assert!(!l.fill_read(2, None, t, true));
        g.expect_echo();
        assert_eq!(l.echoes_expected(), 1);
        drop(g);
        // Any push of the key ends its tracking, an echo taken included; so does a flush.
        let t = l.read_ticket(l.hash(&3));
        l.fill_read(3, None, t, true);
        assert!(l.heard(&3));
        let t = l.read_ticket(l.hash(&4));
        l.fill_read(4, None, t, true);
        l.forget_echoes();
        for k in [1, 2, 3, 4] {
            let mut g = WriteGuard::begin(&l, vec![k]);
            g.expect_echo();
            assert_eq!(l.echoes_expected(), 1, "key {k}");
            drop(g);
        }
    }

    #[test]
    fn a_read_overlapping_a_write_never_fills() {
        let l: Local<u32, u32> = Local::new(10, None);
        let w = l.begin_write(l.hash(&1));
        let r = l.read_ticket(l.hash(&1));
        l.end_write(&1, Some((2, None)), w);
        assert_eq!(hit(l.get(&1)), Some(2));
        assert!(
            !l.fill(1, 1, None, r),
            "a read that started during a write must not fill"
        );
    }

    #[test]
    fn overlapping_writes_leave_no_entry_unless_the_last_is_alone() {
        let l: Local<u32, u32> = Local::new(10, None);
        let a = l.begin_write(l.hash(&1));
        let b = l.begin_write(l.hash(&1));
        // b is acknowledged first while a is still in flight: a may land after it in Redis.
        l.end_write(&1, Some((20, None)), b);
        assert_eq!(hit(l.get(&1)), None);
        l.end_write(&1, Some((10, None)), a);
        assert_eq!(hit(l.get(&1)), None);
        // A lone write fills.
        let c = l.begin_write(l.hash(&1));
        l.end_write(&1, Some((30, None)), c);
        assert_eq!(hit(l.get(&1)), Some(30));
        // A failed write removes.
        let d = l.begin_write(l.hash(&1));
        l.end_write(&1, None, d);
        assert_eq!(hit(l.get(&1)), None);
    }

    #[test]
    fn a_write_that_started_during_another_never_fills() {
        let l: Local<u32, u32> = Local::new(10, None);
        // `first` starts, then `second`; Redis applies `second` first and `first` last, and
        // `second` happens to settle last.
        let first = l.begin_write(l.hash(&1));
        let second = l.begin_write(l.hash(&1));
        l.release(&[second]);
        l.release(&[first]);
        l.settle(&1, Some((1, None)), first);
        l.settle(&1, Some((2, None)), second);
        assert_eq!(
            hit(l.get(&1)),
            None,
            "the L1 must not keep a value Redis may not hold"
        );
    }

    #[test]
    fn a_batch_never_blocks_itself_but_blocks_others() {
        let l: Local<u32, u32> = Local::new(50, None); // one shard, 64 slots: collisions
        let keys: Vec<u32> = (0..200).collect();
        let other = l.begin_write(l.hash(&1000));
        let tickets = l.begin_writes(keys.iter().map(|k| l.hash(k)));
        l.end_write(&1000, Some((1, None)), other); // the batch is still in flight
        l.release(&tickets);
        for (k, t) in keys.iter().zip(tickets) {
            l.settle(k, Some((*k, None)), t);
        }
        assert_eq!(l.len(), 50, "the batch fills up to capacity");
        assert!(
            l.keys().iter().all(|k| *k < 200),
            "the overlapped single write did not fill"
        );
        // A batch overlapped by a later write fills none of that write's slot, and the later
        // write does not fill either (Redis may apply the two in either order).
        let tickets = l.begin_writes([l.hash(&1), l.hash(&2)]);
        let later = l.begin_write(l.hash(&1));
        l.release(&tickets);
        l.settle(&1, Some((10, None)), tickets[0]);
        assert_eq!(hit(l.get(&1)), None);
        l.end_write(&1, Some((11, None)), later);
        assert_eq!(hit(l.get(&1)), None);
        // The next lone write fills again.
        let alone = l.begin_write(l.hash(&1));
        l.end_write(&1, Some((12, None)), alone);
        assert_eq!(hit(l.get(&1)), Some(12));
    }

    #[test]
    fn expired_entries_are_never_served() {
        let l: Local<u32, u32> = Local::new(10, None);
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, Some(Instant::now() + Duration::from_millis(30)), t));
        assert_eq!(hit(l.get(&1)), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(hit(l.get(&1)), None);
        let t = l.read_ticket(l.hash(&2));
        assert!(
            !l.fill(2, 2, Some(Instant::now()), t),
            "an already expired value must not go in"
        );
    }

    #[test]
    fn a_hit_after_an_invalidation_never_sees_the_old_value() {
        use std::sync::Arc;
        let l: Arc<Local<u32, u64>> = Arc::new(Local::new(1000, None));
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (l, done, stop) = (l.clone(), done.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        let invalidated = done.load(Ordering::Acquire);
                        if let Some(v) = hit(l.get(&7)) {
                            assert!(
                                v > invalidated,
                                "served {v} after {invalidated} was invalidated"
                            );
                            seen += 1;
                        }
                    }
                    seen
                })
            })
            .collect();
        for v in 1..=20_000u64 {
            let t = l.read_ticket(l.hash(&7));
            assert!(l.fill(7, v, None, t));
            l.invalidate(&7);
            done.store(v, Ordering::Release);
        }
        stop.store(true, Ordering::Release);
        for r in readers {
            r.join().expect("a reader saw an invalidated value");
        }
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn one_hit_claims_each_ttl_refresh() {
        let l: Local<u32, u32> = Local::new(10, Some(Duration::from_millis(20)));
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, None, t));
        let refreshes = |l: &Local<u32, u32>| match l.get(&1) {
            Lookup::Hit { refresh, .. } => refresh,
            Lookup::Stale { .. } | Lookup::Miss => panic!("the entry is live and fresh"),
        };
        assert!(!refreshes(&l), "not due yet");
        std::thread::sleep(Duration::from_millis(30));
        assert!(refreshes(&l), "due: this hit claims it");
        assert!(!refreshes(&l), "already claimed");
    }

    #[test]
    fn hits_are_counted_across_threads() {
        let l: Local<u32, u32> = Local::new(10, None);
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, None, t));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        assert_eq!(hit(l.get(&1)), Some(1));
                        l.count_hit();
                    }
                });
            }
        });
        assert_eq!(l.hits(), 4000);
    }

    #[test]
    fn disabled_l1_holds_nothing() {
        let l: Local<u32, u32> = Local::new(0, None);
        let t = l.read_ticket(l.hash(&1));
        assert!(!l.fill(1, 1, None, t));
        assert_eq!(l.len(), 0);
    }
}

/// Tests of the bounds and the policy (the protocol's are in `tests` above).
#[cfg(test)]
mod bound_tests {
    use super::*;
    use std::sync::Arc;

    fn fill_one<V: Clone>(l: &Local<u64, V>, k: u64, v: V, len: usize) -> bool {
        let t = l.read_ticket(l.hash(&k));
        l.fill_sized(k, v, None, len, t)
    }

    /// What the table holds, by the entries' weights.
    fn held<V>(l: &Local<u64, V>) -> usize {
        l.table.pin().iter().map(|(_, e)| e.weight()).sum()
    }

    #[test]
    fn the_byte_bound_holds_under_8_threads_of_mixed_sizes() {
        const MAX: usize = 1 << 20;
        let l: Arc<Local<u64, Arc<[u8]>>> = Arc::new(Local::with_limits(
            Limits {
                max_entries: usize::MAX,
                max_bytes: Some(MAX),
                weigher: None,
            },
            None,
            None,
        ));
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (l, done) = (l.clone(), done.clone());
            std::thread::spawn(move || {
                // The count is taken before an entry goes in and given back after one leaves,
                // so it is never below what the table holds at that instant. (A sum over the
                // table while it changes is no snapshot: it can count an evicted entry and its
                // successor, so it is checked only once the fills are over.)
                let mut peak = 0;
                while !done.load(Ordering::Acquire) {
                    let w = l.weight();
                    assert!(w <= MAX, "{w} bytes held, bound {MAX}");
                    peak = peak.max(w);
                }
                peak
            })
        };
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let l = &l;
                s.spawn(move || {
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for i in 0..20_000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // 1 B to 64 KiB, mostly small.
                        let len = 1usize << (x % 17);
                        let len = len + (x >> 20) as usize % len;
                        let k = x % 50_000;
                        let v: Arc<[u8]> = vec![0u8; len.min(4096)].into();
                        fill_one(l, k, v, len);
                        if i % 7 == 0 {
                            l.invalidate(&(k ^ 1));
                        }
                    }
                });
            }
        });
        done.store(true, Ordering::Release);
        let peak = watcher.join().expect("the bound was exceeded");
        assert!(held(&l) <= MAX);
        assert_eq!(
            held(&l),
            l.weight(),
            "the count matches what the table holds"
        );
        assert_eq!(l.len(), l.len.load(Ordering::Relaxed));
        assert!(peak > MAX / 2, "the L1 was used ({peak} bytes at most)");
        l.flush();
        assert_eq!((l.weight(), l.len()), (0, 0));
    }

    #[test]
    fn both_bounds_hold_together_and_an_oversized_entry_is_not_kept() {
        let l: Local<u64, u64> = Local::with_limits(
            Limits {
                max_entries: 100,
                max_bytes: Some(100 * 1000),
                weigher: None,
            },
            None,
            None,
        );
        for k in 0..1000 {
            fill_one(&l, k, k, 10); // 74 bytes each: the entry bound binds
        }
        assert!(l.len() <= 100 && l.len() > 90);
        for k in 1000..2000 {
            fill_one(&l, k, k, 5000); // 5064 each: the byte bound binds
        }
        assert!(l.weight() <= 100_000);
        assert!(l.len() <= 19);
        assert!(!fill_one(&l, 5, 5, 100_000), "heavier than the whole bound");
        assert!(l.weight() <= 100_000);
    }

    #[test]
    fn a_weigher_decides_the_weight() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let weigher: Weigher<u64, String> = Arc::new(move |_k: &u64, v: &String| {
            c.fetch_add(1, Ordering::Relaxed);
            v.len()
        });
        let l: Local<u64, String> = Local::with_limits(
            Limits {
                max_entries: 1000,
                max_bytes: Some(1000),
                weigher: Some(weigher),
            },
            None,
            None,
        );
        // The encoded length (here a bogus 1 MB) is ignored: the weigher says 100.
        for k in 0..10 {
            assert!(fill_one(&l, k, "x".repeat(100), 1 << 20));
        }
        assert_eq!(l.weight(), 1000);
        assert_eq!(l.len(), 10);
        fill_one(&l, 10, "y".repeat(300), 1);
        assert_eq!(l.weight(), 1000 - 300 + 300);
        assert_eq!(l.len(), 8, "three entries of 100 made room for one of 300");
        assert!(
            !fill_one(&l, 11, "z".repeat(1001), 1),
            "heavier than the bound"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn hot_keys_survive_a_scan_of_10x_the_capacity() {
        const CAP: u64 = 1000;
        let l: Local<u64, u64> = Local::new(CAP as usize, None);
        let hot = 0..100u64;
        // Warm up: the hot keys are read often, other keys come and go.
        for round in 0..20 {
            for k in hot.clone() {
                if !matches!(l.get(&k), Lookup::Hit { .. }) {
                    fill_one(&l, k, k, 8);
                }
            }
            for k in 0..50 {
                let k = 1_000_000 + round * 50 + k;
                fill_one(&l, k, k, 8);
            }
        }
        // One pass over 10x the capacity, each key read once.
        for k in 10_000_000..10_000_000 + 10 * CAP {
            if !matches!(l.get(&k), Lookup::Hit { .. }) {
                fill_one(&l, k, k, 8);
            }
        }
        let kept = hot.filter(|k| l.contains(k)).count();
        assert!(kept >= 95, "only {kept} of 100 hot keys survived the scan");
        assert!(l.len() <= CAP as usize);
    }

    #[test]
    fn invalidated_entries_do_not_pile_up_in_the_queues() {
        let l: Local<u64, u64> = Local::new(1000, None);
        for v in 0..100_000u64 {
            fill_one(&l, v % 10, v, 8);
            l.invalidate(&(v % 10));
        }
        for shard in l.shards.iter() {
            let shard = lock(&shard.0);
            assert!(shard.policy.queued() <= 200, "{}", shard.policy.queued());
        }
        assert_eq!((l.len(), l.weight()), (0, 0));
    }

    #[test]
    fn a_colliding_key_is_a_miss_never_a_wrong_value() {
        let l: Local<u64, u64> = Local::new(10, None);
        assert!(fill_one(&l, 1, 1, 8));
        // Another key under the same id (as a 64-bit hash collision would put it).
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill_sized(2, 2, None, 8, t));
        assert!(matches!(l.get(&1), Lookup::Miss));
        assert!(!l.contains(&1));
        assert_eq!(l.len(), 1);
    }
}
