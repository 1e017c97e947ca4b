//! Eviction: S3-FIFO, one instance per shard.
//!
//! S3-FIFO (Yang, Zhang, Qiu, Yue, Rashmi: "FIFO queues are all you need for cache eviction",
//! SOSP 2023) keeps three FIFO queues: a *small* one that new entries enter, a *main* one, and a
//! *ghost* one that remembers the ids (not the values) of entries recently evicted from the
//! small queue. When room is needed:
//! - while the small queue holds at least its share of the shard's weight (a tenth in the
//!   paper, [`SMALL_PERCENT`] here), its oldest entry leaves it: to the main queue if it was
//!   read since it came in, otherwise out of the cache (its id into the ghost queue);
//! - otherwise the main queue's oldest entry is evicted if it was not read since the queue
//!   last passed it, else it goes to the back with one read fewer counted (at most 3 count).
//!
//! A new entry whose id is in the ghost queue goes straight to the main queue: it was evicted
//! too early. So a scan (many keys read once) only ever churns the small queue, and the hot set
//! in the main queue survives it. The paper's evaluation on 6,594 production traces from 14
//! datasets reports miss ratios lower than state-of-the-art policies (ARC, LIRS, TinyLFU among
//! them) on most of them. Hits do no more than bump the entry's saturating counter (no list
//! to reorder), which keeps them lock-free.
//!
//! Queues hold *items*: an entry's id with a 7-bit generation in its low byte. An entry's
//! `state` holds the generation and which queue it is in; an item that no longer matches its
//! entry (removed by an invalidation, replaced since) is skipped when it reaches the front, and
//! the queues are compacted when such items make up half of them. The ghost queue holds 16-bit
//! fingerprints of ids in two generations of tables indexed by id (see [`Ghost`]): an
//! approximate FIFO of the last evicted ids, at about 4 bytes per entry held. A fingerprint
//! that matches by chance only sends an entry to the main queue early.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use super::storage::{Entry, ID_LOW_BITS, MAX_FREQ, Table};

/// `state` bit: the entry is in the main queue.
const MAIN: u8 = 0x80;
const GEN: u8 = 0x7F;
/// Fewest ghost slots.
const MIN_GHOST: usize = 64;
/// The small queue's share of the shard's weight, in percent. The paper uses 10; on Zipf
/// traces with scans (see `examples/l1_hit_ratio.rs`) 3 does better (hot entries spend less
/// time in the small queue), and is the share quick_cache gives its cold section.
const SMALL_PERCENT: usize = 3;
/// How many evicted ids the ghost remembers, in percent of the entries held: measured on the
/// same traces, three quarters beats as many as the entries (fewer stale ids send entries
/// straight to the main queue) and half.
const GHOST_PERCENT: usize = 75;

/// One shard's queues and what they hold.
#[derive(Default)]
pub(super) struct S3Fifo {
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    /// The ghost: fingerprints of recently evicted ids, in two generations (see [`Ghost`]).
    ghost: Ghost,
    /// Entries held and their weight, in all and in the small queue.
    count: usize,
    weight: usize,
    small_weight: usize,
    next_gen: u8,
}

impl S3Fifo {
    /// Items queued (live or not).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.small.len() + self.main.len()
    }
}

/// Recently evicted ids, as 16-bit fingerprints: an approximate FIFO of about `span` ids in two
/// generations. Ids go into the current generation; once it has taken `span / 2`, it becomes
/// the previous one and the one before is forgotten. An id is remembered if either generation
/// holds it, so the ghost remembers the last `span / 2` to `span` evicted ids. Each generation is
/// a table of twice its ids (a newer id may overwrite an older one of the same index).
#[derive(Default)]
struct Ghost {
    now: Vec<u16>,
    before: Vec<u16>,
    /// Ids the current generation has taken.
    taken: usize,
    /// Ids a generation takes.
    per_generation: usize,
}

impl Ghost {
    /// Makes room for `span` ids (forgetting everything when it must grow, which happens
    /// at powers of two only).
    fn fit(&mut self, span: usize) {
        let per_generation = (span / 2).max(MIN_GHOST);
        if per_generation > self.per_generation {
            let slots = (per_generation * 2).next_power_of_two();
            self.per_generation = slots / 2;
            self.now = vec![0; slots];
            self.before = vec![0; slots];
            self.taken = 0;
        }
    }

    fn index(&self, id: u64) -> Option<usize> {
        let n = self.now.len();
        (n > 0).then(|| (id >> 16) as usize & (n - 1))
    }

    fn put(&mut self, id: u64) {
        let Some(i) = self.index(id) else { return };
        self.now[i] = fingerprint(id);
        self.taken += 1;
        if self.taken >= self.per_generation {
            std::mem::swap(&mut self.now, &mut self.before);
            self.now.fill(0);
            self.taken = 0;
        }
    }

    /// Whether `id` is remembered; it is forgotten if so.
    fn take(&mut self, id: u64) -> bool {
        let Some(i) = self.index(id) else {
            return false;
        };
        let fp = fingerprint(id);
        let found = self.now[i] == fp || self.before[i] == fp;
        if found {
            self.now[i] = 0;
            self.before[i] = 0;
        }
        found
    }
}

/// Whether an entry of `state` is in the main queue.
pub(super) fn in_main(state: u8) -> bool {
    state & MAIN != 0
}

/// 16 bits of the id (apart from those that index the ghost); never 0, which marks a free slot.
fn fingerprint(id: u64) -> u16 {
    (id >> 48) as u16 | 1
}

impl S3Fifo {
    /// Takes in a new entry of `weight` (into the main queue when `to_main`, or when it was
    /// evicted recently); returns the `state` the entry must carry.
    pub(super) fn admit(&mut self, id: u64, weight: usize, to_main: bool) -> u8 {
        let ghosted = self.ghost.take(id);
        self.next_gen = self.next_gen.wrapping_add(1) & GEN;
        let item = id | u64::from(self.next_gen);
        self.count += 1;
        self.weight += weight;
        self.ghost.fit(self.count * GHOST_PERCENT / 100);
        if to_main || ghosted {
            self.main.push_back(item);
            self.next_gen | MAIN
        } else {
            self.small.push_back(item);
            self.small_weight += weight;
            self.next_gen
        }
    }

    /// An entry of `state` and `weight` left `table` by other means (invalidation, expiry,
    /// replacement): its item stays queued until it reaches the front and is skipped, or the
    /// queues are compacted.
    pub(super) fn forget<K, V>(
        &mut self,
        table: &Table<K, V>,
        guard: &impl papaya::Guard,
        state: u8,
        weight: usize,
    ) {
        self.count = self.count.saturating_sub(1);
        self.weight = self.weight.saturating_sub(weight);
        if state & MAIN == 0 {
            self.small_weight = self.small_weight.saturating_sub(weight);
        }
        if self.small.len() + self.main.len() > 2 * self.count + MIN_GHOST {
            self.small
                .retain(|&it| live(table, guard, it, false).is_some());
            self.main
                .retain(|&it| live(table, guard, it, true).is_some());
        }
    }

    /// Evicts one entry of this shard from `table`, returning its weight; `None` when the
    /// shard holds nothing.
    /// `evicted` sees the key of the entry evicted (it runs under the shard's lock: it must
    /// not block).
    pub(super) fn evict<K, V>(
        &mut self,
        table: &Table<K, V>,
        guard: &impl papaya::Guard,
        evicted: impl FnOnce(&K),
    ) -> Option<usize> {
        // Every item is looked at most MAX_FREQ + 2 times before its entry leaves.
        let mut steps = (usize::from(MAX_FREQ) + 2) * (self.small.len() + self.main.len()) + 1;
        while steps > 0 {
            steps -= 1;
            let from_small = !self.small.is_empty()
                && (self.main.is_empty() || self.small_weight * 100 >= self.weight * SMALL_PERCENT);
            let queue = if from_small {
                &mut self.small
            } else {
                &mut self.main
            };
            let item = queue.pop_front()?;
            let Some(e) = live(table, guard, item, !from_small) else {
                continue;
            };
            let id = item & !ID_LOW_BITS;
            let w = e.weight();
            let freq = e.freq.load(Ordering::Relaxed);
            if from_small && freq > 0 {
                // Read while in the small queue: it goes on to the main one.
                e.freq.store(0, Ordering::Relaxed);
                e.state
                    .store(e.state.load(Ordering::Relaxed) | MAIN, Ordering::Relaxed);
                self.small_weight = self.small_weight.saturating_sub(w);
                self.main.push_back(item);
            } else if freq > 0 {
                e.freq.store(freq - 1, Ordering::Relaxed);
                self.main.push_back(item);
            } else {
                if from_small {
                    self.small_weight = self.small_weight.saturating_sub(w);
                    self.ghost.put(id);
                }
                evicted(&e.key);
                table.remove(&id, guard);
                self.count = self.count.saturating_sub(1);
                self.weight = self.weight.saturating_sub(w);
                return Some(w);
            }
        }
        None
    }

    /// Removes every entry of this shard from `table`; returns how many and their weight.
    pub(super) fn clear<K, V>(
        &mut self,
        table: &Table<K, V>,
        guard: &impl papaya::Guard,
    ) -> (usize, usize) {
        for (queue, main) in [(&self.small, false), (&self.main, true)] {
            for &item in queue {
                if live(table, guard, item, main).is_some() {
                    table.remove(&(item & !ID_LOW_BITS), guard);
                }
            }
        }
        let held = (self.count, self.weight);
        *self = S3Fifo::default();
        held
    }
}

/// The entry `item` stands for, if it is still that entry and in that queue.
fn live<'g, K, V>(
    table: &'g Table<K, V>,
    guard: &'g impl papaya::Guard,
    item: u64,
    main: bool,
) -> Option<&'g Entry<K, V>> {
    let e = table.get(&(item & !ID_LOW_BITS), guard)?;
    let state = e.state.load(Ordering::Relaxed);
    let wanted = (item & ID_LOW_BITS) as u8 | if main { MAIN } else { 0 };
    (state == wanted).then_some(e)
}
