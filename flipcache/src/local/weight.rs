//! What the L1 may hold: at most so many entries and, optionally, so many bytes, each entry
//! weighing its encoded length plus a fixed overhead, or what the user's weigher says.
//!
//! Both bounds are budgets shared by all shards (atomic counters), taken *before* an entry goes
//! into the table and given back *after* one leaves it. A fill that cannot take its share
//! evicts from its own shard until it can, or is not kept. So what the table holds never
//! exceeds either bound, whatever fills run concurrently.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sync::AtomicUsize;

/// What an entry weighs by default on top of its encoded length: about what the L1 spends on
/// an entry besides the key and value themselves.
pub(crate) const ENTRY_OVERHEAD: usize = 64;

/// A user's weigher: what an entry counts against `local_max_bytes`.
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> usize + Send + Sync>;

/// The L1's bounds.
pub(crate) struct Limits<K, V> {
    /// Most entries (0: the L1 is off).
    pub(crate) max_entries: usize,
    /// Most bytes, by the weights of the entries (`None`: unbounded; `Some(0)`: off).
    pub(crate) max_bytes: Option<usize>,
    /// Overrides the default weight.
    pub(crate) weigher: Option<Weigher<K, V>>,
}

impl<K, V> Limits<K, V> {
    /// At most `max_entries` entries, no byte bound.
    #[cfg(test)]
    pub(crate) fn entries(max_entries: usize) -> Self {
        Limits {
            max_entries,
            max_bytes: None,
            weigher: None,
        }
    }

    /// Whether anything can be held at all.
    pub(crate) fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes != Some(0)
    }

    /// The weight of `key -> value`, encoded in `encoded_len` bytes.
    pub(crate) fn weigh(&self, key: &K, value: &V, encoded_len: usize) -> usize {
        match &self.weigher {
            Some(w) => w(key, value),
            None => encoded_len.saturating_add(ENTRY_OVERHEAD),
        }
    }
}

/// Takes one entry of `weight` within `limits` from the shared counts of entries and bytes
/// held; false (nothing taken) when either is spent.
pub(crate) fn take<K, V>(
    limits: &Limits<K, V>,
    entries: &AtomicUsize,
    bytes: &AtomicUsize,
    weight: usize,
) -> bool {
    let max = limits.max_entries;
    if entries
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_err()
    {
        return false;
    }
    let max = limits.max_bytes.unwrap_or(usize::MAX);
    let taken = bytes
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
            b.checked_add(weight).filter(|&t| t <= max)
        })
        .is_ok();
    if !taken {
        entries.fetch_sub(1, Ordering::AcqRel);
    }
    taken
}

/// Gives back what `n` entries weighing `weight` in all took.
pub(crate) fn give_back(entries: &AtomicUsize, bytes: &AtomicUsize, n: usize, weight: usize) {
    entries.fetch_sub(n, Ordering::AcqRel);
    bytes.fetch_sub(weight, Ordering::AcqRel);
}
