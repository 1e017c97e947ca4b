//! Where L1 entries live: a lock-free table ([`papaya::HashMap`]) keyed by the key's 64-bit
//! hash (its *id*), each entry holding the key once, the value, and 16 bytes of bookkeeping.
//!
//! Per entry the table holds one allocation of `id + key + value + 16` bytes (40 for
//! `u64 -> u64`) and one slot (a pointer and a tag byte); the eviction queues hold the id
//! (8 bytes). Two keys whose ids collide cannot both be held: the later replaces the earlier,
//! and every lookup compares the key, so a collision costs a miss, never a wrong value.
//!
//! Times are milliseconds after the L1 was built: a deadline in 40 bits (35 years), rounded
//! down so an entry expires at worst a millisecond early, never late.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Instant;

/// Low bits of an id left free for a queue entry's generation (see `policy`).
pub(super) const ID_LOW_BITS: u64 = 0xFF;

/// The table's hasher: ids are already hashes, so this only mixes the bits the id leaves zero.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`IdHasher`]s.
#[derive(Clone, Copy, Default)]
pub(super) struct Ids;

impl BuildHasher for Ids {
    type Hasher = IdHasher;

    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// The table: id -> entry.
pub(super) type Table<K, V> = papaya::HashMap<u64, Entry<K, V>, Ids>;

const DEADLINE_BITS: u32 = 40;
const NO_DEADLINE: u64 = (1 << DEADLINE_BITS) - 1;
/// Weights below this are kept exactly; above it, in KiB rounded up.
const EXACT_WEIGHT: u64 = 1 << 23;

/// Weight as held in 24 bits: exact below 8 MiB, KiB (rounded up) above, 8 GiB at most.
/// `None` when it is too heavy to hold at all.
fn weight_code(w: usize) -> Option<u64> {
    let w = w as u64;
    if w < EXACT_WEIGHT {
        return Some(w);
    }
    let kib = w.div_ceil(1024);
    (kib < EXACT_WEIGHT).then_some(EXACT_WEIGHT | kib)
}

fn weight_of(code: u64) -> usize {
    if code & EXACT_WEIGHT == 0 {
        code as usize
    } else {
        ((code & !EXACT_WEIGHT) * 1024) as usize
    }
}

/// The clock entries' times are kept on.
pub(super) struct Clock {
    base: Instant,
}

impl Clock {
    pub(super) fn new() -> Self {
        Clock {
            base: Instant::now(),
        }
    }

    /// Milliseconds from the base to `t`, rounded down.
    #[inline]
    pub(super) fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    /// `deadline` as an entry holds it: rounded down (never later than the real one).
    fn deadline(&self, deadline: Option<Instant>) -> u64 {
        deadline.map_or(NO_DEADLINE, |d| self.ms(d).min(NO_DEADLINE - 1))
    }
}

/// One cached value.
pub(super) struct Entry<K, V> {
    pub(super) key: K,
    pub(super) value: V,
    /// Deadline (low 40 bits, ms on the [`Clock`]; all ones: none) and weight (high 24 bits,
    /// see [`weight_code`]). Fixed for the entry's life.
    packed: u64,
    /// With refresh-on-get: when (ms on the clock, wrapping) a hit should next ask Redis to
    /// push the TTL out. Claimed by compare-and-swap, so one hit does it.
    pub(super) refresh_at: AtomicU32,
    /// Hits since the policy last looked, saturating at [`MAX_FREQ`]; written by a hit only
    /// while below it, so hot entries' lines stay clean.
    pub(super) freq: AtomicU8,
    /// The policy's mark (queue and generation); written under the shard lock only.
    pub(super) state: AtomicU8,
}

/// Most hits an entry's counter records.
pub(super) const MAX_FREQ: u8 = 3;

impl<K, V> Entry<K, V> {
    /// A new entry, or `None` when `weight` is too large to hold.
    pub(super) fn new(
        key: K,
        value: V,
        deadline: Option<Instant>,
        weight: usize,
        clock: &Clock,
    ) -> Option<Self> {
        let code = weight_code(weight)?;
        Some(Entry {
            key,
            value,
            packed: clock.deadline(deadline) | (code << DEADLINE_BITS),
            refresh_at: AtomicU32::new(0),
            freq: AtomicU8::new(0),
            state: AtomicU8::new(0),
        })
    }

    /// A copy with a later deadline (the entry's own is kept if later), same everything else.
    pub(super) fn extended(&self, deadline: Instant, clock: &Clock) -> Self
    where
        K: Clone,
        V: Clone,
    {
        let old = self.packed & NO_DEADLINE;
        let new = if old == NO_DEADLINE {
            old
        } else {
            clock.deadline(Some(deadline)).max(old)
        };
        Entry {
            key: self.key.clone(),
            value: self.value.clone(),
            packed: (self.packed & !NO_DEADLINE) | new,
            refresh_at: AtomicU32::new(self.refresh_at.load(Ordering::Relaxed)),
            freq: AtomicU8::new(self.freq.load(Ordering::Relaxed)),
            state: AtomicU8::new(self.state.load(Ordering::Relaxed)),
        }
    }

    /// What this entry counts against the byte bound (at least the weight it was given).
    #[inline]
    pub(super) fn weight(&self) -> usize {
        weight_of(self.packed >> DEADLINE_BITS)
    }

    #[inline]
    pub(super) fn has_deadline(&self) -> bool {
        self.packed & NO_DEADLINE != NO_DEADLINE
    }

    /// The deadline in ms on the clock, if any.
    #[inline]
    pub(super) fn deadline_ms(&self) -> Option<u64> {
        self.has_deadline().then_some(self.packed & NO_DEADLINE)
    }

    /// Whether the entry is past its deadline at `now_ms` (on the clock).
    #[inline]
    pub(super) fn expired_at(&self, now_ms: u64) -> bool {
        now_ms >= self.packed & NO_DEADLINE
    }

    #[inline]
    pub(super) fn expired(&self, clock: &Clock) -> bool {
        self.has_deadline() && self.expired_at(clock.ms(Instant::now()))
    }

    /// Counts a hit.
    #[inline]
    pub(super) fn mark_used(&self) {
        // Read first: writing only below the cap keeps hits on hot entries from dirtying the
        // line.
        let f = self.freq.load(Ordering::Relaxed);
        if f < MAX_FREQ {
            self.freq.store(f + 1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn weights_round_up_and_never_under_count() {
        for w in [
            0,
            1,
            100,
            (1 << 23) - 1,
            1 << 23,
            (1 << 23) + 1,
            5_000_000_123,
        ] {
            let code = weight_code(w).unwrap();
            assert!(code < 1 << 24);
            assert!(weight_of(code) >= w, "{w}");
            assert!(weight_of(code) - w < 1024, "{w}");
        }
        assert!(weight_code(usize::MAX).is_none());
    }

    #[test]
    fn deadlines_round_down_and_none_never_expires() {
        let clock = Clock::new();
        let d = Instant::now() + Duration::from_millis(5);
        let e = Entry::new(1u8, 1u8, Some(d), 10, &clock).unwrap();
        assert!(e.has_deadline());
        assert!(e.expired_at(clock.ms(d)), "expires at its deadline");
        assert_eq!(e.weight(), 10);
        let e = Entry::new(1u8, 1u8, None, 10, &clock).unwrap();
        assert!(!e.has_deadline());
        assert!(!e.expired_at(NO_DEADLINE - 1));
    }

    #[test]
    fn an_entry_of_u64s_takes_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry<u64, u64>>(), 32);
    }
}
