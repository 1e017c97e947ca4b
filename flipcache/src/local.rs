//! The L1: a bounded map of decoded values, each entry with a deadline, and the epoch guard that
//! keeps fills from racing invalidations and writes.
//!
//! Reads never write shared memory (beyond setting an entry's reference bit once): entries live
//! in a lock-free [`papaya::HashMap`], so hits from many threads scale instead of queueing on a
//! lock whose cache line bounces between cores. Every *change* (fill, write, invalidation,
//! eviction) happens under the lock of the key's shard, which also holds the coherence state
//! and the eviction order, so writers are serialised per shard exactly as before.
//!
//! Eviction is CLOCK (second chance), the usual approximation of LRU when hits must not
//! reorder a list: each shard keeps its keys in insertion order; a hit sets the entry's
//! reference bit; to make room the oldest key is evicted unless its bit is set, in which case
//! the bit is cleared and the key goes to the back. A key that is read again survives a full
//! sweep, one that is not read goes first.
//!
//! Bound: the shards share one budget of `capacity` entries (an atomic count) instead of a
//! fixed slice each, so uneven hashing never evicts while the L1 as a whole has room (a fixed
//! split would turn a working set of exactly `local_max` keys into constant misses). When the
//! budget is spent, a new entry evicts from its own shard; if that shard is empty, the new entry
//! is not kept. `len()` therefore never exceeds `capacity`.
//!
//! Coherence rules, all enforced under the shard lock:
//! - Every key hashes to a *slot* in its shard. A slot has an `epoch` (bumped by every write
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

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use papaya::Equivalent;
use thread_local::ThreadLocal;

type Hasher = foldhash::fast::RandomState;

const SLOTS: usize = 64;
/// Below this many entries the L1 is one shard, so eviction is one CLOCK over every entry.
const ONE_SHARD_BELOW: usize = 64;
/// Fewest entries per shard (on average) when the L1 is split.
const MIN_PER_SHARD: usize = 32;
const MAX_SHARDS: usize = 64;
/// Most table slots reserved up front, whatever the capacity (the table grows past this).
const PRESIZE_MAX: usize = 1 << 14;

/// A read's or write's claim on a slot, taken before Redis is asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    hash: u64,
    global: u64,
    epoch: u64,
    clean: bool,
    /// For writes: this ticket holds its slot's pending count (one per slot per batch).
    owner: bool,
}

impl Ticket {
    /// A ticket that allows nothing (the L1 is off).
    fn inert(hash: u64) -> Self {
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

struct Entry<V> {
    value: V,
    deadline: Option<Instant>,
    /// With refresh-on-get: when (nanoseconds after [`Local::base`]) a hit should next ask
    /// Redis to push the TTL out. Claimed by compare-and-swap, so one hit does it.
    refresh_at: AtomicU64,
    /// CLOCK reference bit: read since the eviction sweep last passed.
    used: AtomicBool,
}

impl<V> Entry<V> {
    #[inline]
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    #[inline]
    fn mark_used(&self) {
        // Read first: writing only when the bit is clear keeps hits from dirtying the line.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}

/// One shard's write-side state: the eviction order of its keys and its coherence slots.
struct Shard<K> {
    /// This shard's keys present in the map, oldest first (the CLOCK hand is the front).
    order: LruCache<K, (), Hasher>,
    slots: [Slot; SLOTS],
}

#[repr(align(128))]
struct Padded<T>(T);

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
    map: papaya::HashMap<K, Entry<V>, Hasher>,
    shards: Box<[Padded<Mutex<Shard<K>>>]>,
    mask: u64,
    hasher: Hasher,
    global: AtomicU64,
    capacity: usize,
    /// Entries held across all shards; never above `capacity`.
    len: AtomicUsize,
    /// With refresh-on-get: how often a key read only from the L1 has its Redis TTL renewed.
    refresh_every: Option<Duration>,
    /// With `stale_for`: when entries turn stale and get refreshed.
    freshness: Option<Freshness>,
    /// The origin of [`Entry::refresh_at`].
    base: Instant,
    /// Local hits, one counter per thread (written by that thread only, so a hit pays a plain
    /// load and store, and threads never share a counter's cache line).
    hits: ThreadLocal<Padded<AtomicU64>>,
}

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
    pub(crate) fn new(
        capacity: usize,
        refresh_every: Option<Duration>,
        freshness: Option<Freshness>,
    ) -> Self {
        let hasher = Hasher::default();
        let n = if capacity == 0 {
            0
        } else {
            shard_count(capacity)
        };
        let shards = (0..n)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    order: LruCache::unbounded_with_hasher(hasher.clone()),
                    slots: [Slot::default(); SLOTS],
                }))
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let map = papaya::HashMap::builder()
            .capacity(capacity.min(PRESIZE_MAX))
            .hasher(hasher.clone())
            .build();
        Self {
            map,
            mask: n.saturating_sub(1) as u64,
            shards,
            hasher,
            global: AtomicU64::new(0),
            capacity,
            len: AtomicUsize::new(0),
            refresh_every,
            freshness,
            base: Instant::now(),
            hits: ThreadLocal::new(),
        }
    }

    /// Whether the L1 holds anything at all (`local_max > 0`).
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The configured bound.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard<K>> {
        let shard = &self.shards[(hash & self.mask) as usize].0;
        // A panic while holding the lock cannot leave state half-written (the map and the
        // order are updated by single calls that do not panic), so a poisoned lock is safe to
        // keep using.
        crate::lock::lock(shard)
    }

    /// Nanoseconds from [`Local::base`] to `t`.
    #[inline]
    fn stamp(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// Inserts or replaces under the shard lock, within the shared budget.
    fn insert(&self, shard: &mut Shard<K>, key: K, entry: Entry<V>) {
        let guard = self.map.guard();
        if shard.order.contains(&key) {
            shard.order.promote(&key);
            self.map.insert(key, entry, &guard);
            return;
        }
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            // Budget spent: make room in this shard, or do not keep the entry.
            // (An eviction gives back the victim's share of the budget, which this entry takes.)
            if !self.evict_one(shard, &guard) {
                self.len.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
        shard.order.push(key.clone(), ());
        self.map.insert(key, entry, &guard);
    }

    /// One CLOCK step of `shard`: evicts its oldest key not used since the hand last passed.
    /// Ends within two sweeps (the first clears every bit); false when the shard is empty.
    fn evict_one(&self, shard: &mut Shard<K>, guard: &impl papaya::Guard) -> bool {
        for _ in 0..=shard.order.len() * 2 {
            let Some((victim, ())) = shard.order.pop_lru() else {
                return false;
            };
            let used = self
                .map
                .get(&victim, guard)
                .is_some_and(|e| e.used.swap(false, Ordering::Relaxed));
            if used {
                shard.order.push(victim, ());
            } else {
                self.map.remove(&victim, guard);
                self.len.fetch_sub(1, Ordering::AcqRel);
                return true;
            }
        }
        false
    }

    /// Removes under the shard lock.
    fn remove<Q>(&self, shard: &mut Shard<K>, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        if shard.order.pop(key).is_some() {
            self.map.remove(key, &self.map.guard());
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
    }

    #[inline]
    fn slot(hash: u64) -> usize {
        (hash >> 40) as usize % SLOTS
    }

    #[inline]
    fn count_hit(&self) {
        // Only this thread writes its counter (a thread that exits leaves it to the next one
        // given its id, after it), so the increment needs no atomic read-modify-write.
        let c = &self.hits.get_or_default().0;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Looks `key` up, counting a read as use; an expired entry is dropped. Lock-free.
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        if !self.enabled() {
            return Lookup::Miss;
        }
        let guard = self.map.guard();
        let Some(entry) = self.map.get(key, &guard) else {
            return Lookup::Miss;
        };
        let mut refresh = false;
        if entry.deadline.is_some() || self.refresh_every.is_some() {
            let now = Instant::now();
            if entry.expired(now) {
                drop(guard);
                self.drop_expired(key);
                return Lookup::Miss;
            }
            if let (Some(f), Some(deadline)) = (self.freshness, entry.deadline) {
                let fresh_until = deadline.checked_sub(f.stale_for).unwrap_or(now);
                let stale = now >= fresh_until;
                let due = stale
                    || f.eager
                        .is_some_and(|e| fresh_until.checked_sub(e).is_none_or(|at| now >= at));
                let refresh = due && self.claim(&entry.refresh_at, now, f.retry);
                entry.mark_used();
                let value = entry.value.clone();
                if stale {
                    return Lookup::Stale { value, refresh };
                }
                self.count_hit();
                return Lookup::Hit { value, refresh };
            }
            if let Some(every) = self.refresh_every {
                let at = entry.refresh_at.load(Ordering::Relaxed);
                let now = self.stamp(now);
                refresh = now >= at
                    && entry
                        .refresh_at
                        .compare_exchange(
                            at,
                            now.saturating_add(every.as_nanos() as u64),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok();
            }
        }
        entry.mark_used();
        let value = entry.value.clone();
        self.count_hit();
        Lookup::Hit { value, refresh }
    }

    /// Claims an entry's background refresh: the first hit at or after `refresh_at` moves it
    /// `retry` ahead and gets `true`; the others get `false` (one refresh per key at a time).
    #[inline]
    fn claim(&self, refresh_at: &AtomicU64, now: Instant, retry: Duration) -> bool {
        let at = refresh_at.load(Ordering::Relaxed);
        let now = self.stamp(now);
        now >= at
            && refresh_at
                .compare_exchange(
                    at,
                    now.saturating_add(u64::try_from(retry.as_nanos()).unwrap_or(u64::MAX)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Removes `key` if its entry has expired (a hit found it so, without the lock).
    #[cold]
    fn drop_expired<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        let mut shard = self.shard(self.hash(key));
        let expired = self
            .map
            .get(key, &self.map.guard())
            .is_some_and(|e| e.expired(Instant::now()));
        if expired {
            self.remove(&mut shard, key);
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
                .map
                .get(key, &self.map.guard())
                .is_some_and(|e| !e.expired(Instant::now()))
    }

    /// Marks `key` as recently used.
    pub(crate) fn touch<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Equivalent<K> + ?Sized,
    {
        if self.enabled()
            && let Some(e) = self.map.get(key, &self.map.guard())
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
        let slot = shard.slots[Self::slot(hash)];
        Ticket {
            hash,
            global: self.global.load(Ordering::Acquire),
            epoch: slot.epoch,
            clean: slot.pending == 0,
            owner: false,
        }
    }

    fn still_valid(&self, shard: &Shard<K>, t: &Ticket) -> bool {
        let slot = shard.slots[Self::slot(t.hash)];
        t.clean
            && slot.pending == 0
            && slot.epoch == t.epoch
            && self.global.load(Ordering::Acquire) == t.global
    }

    fn entry(&self, value: V, deadline: Option<Instant>, now: Instant) -> Entry<V> {
        let refresh_at = match (self.refresh_every, self.freshness) {
            (Some(every), _) => self.stamp(now + every),
            // Claimable as soon as the entry is due for a refresh.
            (None, Some(_)) => 0,
            (None, None) => u64::MAX,
        };
        Entry {
            value,
            deadline,
            refresh_at: AtomicU64::new(refresh_at),
            used: AtomicBool::new(false),
        }
    }

    /// Fills the L1 with what a read under `ticket` found, unless something moved since.
    /// Returns whether the entry went in.
    pub(crate) fn fill(&self, key: K, value: V, deadline: Option<Instant>, ticket: Ticket) -> bool {
        if !self.enabled() {
            return false;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        let mut shard = self.shard(ticket.hash);
        if !self.still_valid(&shard, &ticket) {
            return false;
        }
        let entry = self.entry(value, deadline, now);
        self.insert(&mut shard, key, entry);
        true
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
        let guard = self.map.guard();
        if let Some(e) = self.map.get(key, &guard) {
            // Entries are shared with lock-free readers, so a new one replaces it.
            let longer = Entry {
                value: e.value.clone(),
                deadline: Some(e.deadline.map_or(deadline, |d| d.max(deadline))),
                refresh_at: AtomicU64::new(e.refresh_at.load(Ordering::Relaxed)),
                used: AtomicBool::new(e.used.load(Ordering::Relaxed)),
            };
            self.map.insert(key.to_owned(), longer, &guard);
        }
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
                let (shard_idx, slot_idx) = ((hash & self.mask) as usize, Self::slot(hash));
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
                let mut shard = self.shard(hash);
                let slot = &mut shard.slots[slot_idx];
                // A write that starts while another of its slot is in flight may reach Redis
                // before or after it (starting here and sending on the connection are not one
                // step), so it is not known to be the last one Redis applies: it never fills.
                let clean = slot.pending == 0;
                slot.pending += 1;
                slot.epoch += 1;
                claimed.push((shard_idx, slot_idx, slot.epoch, clean));
                Ticket {
                    hash,
                    global,
                    epoch: slot.epoch,
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
            let mut shard = self.shard(t.hash);
            let slot = &mut shard.slots[Self::slot(t.hash)];
            slot.pending = slot.pending.saturating_sub(1);
        }
    }

    /// Settles one key of a released write. With `Some(value)` (Redis acknowledged it) the
    /// entry is filled if its batch is the newest write of the slot and no other is in flight;
    /// in every other case (failure, unknown outcome, delete, a newer write) it is removed.
    pub(crate) fn settle(&self, key: &K, outcome: Option<(V, Option<Instant>)>, ticket: Ticket) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut shard = self.shard(ticket.hash);
        match outcome {
            Some((value, deadline))
                if self.still_valid(&shard, &ticket) && deadline.is_none_or(|d| now < d) =>
            {
                let entry = self.entry(value, deadline, now);
                self.insert(&mut shard, key.clone(), entry);
            }
            _ => self.remove(&mut shard, key),
        }
    }

    /// [`Local::begin_writes`] for one key.
    pub(crate) fn begin_write(&self, hash: u64) -> Ticket {
        let mut t = self.begin_writes([hash]);
        t.pop().unwrap_or(Ticket::inert(hash))
    }

    /// [`Local::release`] and [`Local::settle`] for one key.
    pub(crate) fn end_write(&self, key: &K, outcome: Option<(V, Option<Instant>)>, ticket: Ticket) {
        self.release(&[ticket]);
        self.settle(key, outcome, ticket);
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
        shard.slots[Self::slot(hash)].epoch += 1;
        self.remove(&mut shard, key);
    }

    /// Empties the L1 and stops every in-flight read from filling.
    pub(crate) fn flush(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
        let guard = self.map.guard();
        for shard in self.shards.iter() {
            let mut shard = crate::lock::lock(&shard.0);
            let n = shard.order.len();
            for (k, ()) in shard.order.iter() {
                self.map.remove(k, &guard);
            }
            shard.order.clear();
            self.len.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        let now = Instant::now();
        let map = self.map.pin();
        map.iter().filter(|(_, e)| !e.expired(now)).count()
    }

    /// The keys of live entries.
    pub(crate) fn keys(&self) -> Vec<K> {
        let now = Instant::now();
        let map = self.map.pin();
        map.iter()
            .filter(|(_, e)| !e.expired(now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Local hits counted so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
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
        let l: Local<u32, u32> = Local::new(3, None, None);
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
        let l: Local<u32, u32> = Local::new(1000, None, None);
        for k in 0..10_000 {
            let t = l.read_ticket(l.hash(&k));
            l.fill(k, k, None, t);
        }
        assert!(l.len() <= 1000);
        assert!(l.len() > 900);
    }

    #[test]
    fn a_working_set_of_exactly_capacity_fits_despite_sharding() {
        let l: Local<u64, u64> = Local::new(1000, None, None);
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
        let l: Local<u32, u32> = Local::new(10, None, None);
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
    fn a_read_overlapping_a_write_never_fills() {
        let l: Local<u32, u32> = Local::new(10, None, None);
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
        let l: Local<u32, u32> = Local::new(10, None, None);
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
        let l: Local<u32, u32> = Local::new(10, None, None);
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
        let l: Local<u32, u32> = Local::new(50, None, None); // one shard, 64 slots: collisions
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
        let l: Local<u32, u32> = Local::new(10, None, None);
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
        let l: Arc<Local<u32, u64>> = Arc::new(Local::new(1000, None, None));
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
        let l: Local<u32, u32> = Local::new(10, Some(Duration::from_millis(20)), None);
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
        let l: Local<u32, u32> = Local::new(10, None, None);
        let t = l.read_ticket(l.hash(&1));
        assert!(l.fill(1, 1, None, t));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        assert_eq!(hit(l.get(&1)), Some(1));
                    }
                });
            }
        });
        assert_eq!(l.hits(), 4000);
    }

    #[test]
    fn disabled_l1_holds_nothing() {
        let l: Local<u32, u32> = Local::new(0, None, None);
        let t = l.read_ticket(l.hash(&1));
        assert!(!l.fill(1, 1, None, t));
        assert_eq!(l.len(), 0);
    }
}
