//! Hit ratio of flipcache's L1 policy (S3-FIFO) against `quick_cache`, moka and an LRU on the
//! same trace: Zipf-distributed reads over 1,000,000 keys (s = 0.9 and 1.0), interrupted every
//! 200,000 reads by a scan of 50,000 keys read once each (a crawler walking the ids), with a
//! capacity of 1% of the keys. A miss inserts the key, as a read-through cache does.
//!
//! `cargo run --release --example l1_hit_ratio`

use std::num::NonZeroUsize;

use flipcache::__private01::BareL1;

const KEYS: u64 = 1_000_000;
const CAPACITY: usize = 10_000;
const READS: usize = 4_000_000;
const SCAN_EVERY: usize = 200_000;
const SCAN_LEN: u64 = 50_000;

/// xorshift64*: a fixed, fast, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The trace: `(key, in_scan)`.
fn trace(s: f64) -> Vec<(u64, bool)> {
    let mut cdf = Vec::with_capacity(KEYS as usize);
    let mut sum = 0.0;
    for rank in 1..=KEYS {
        sum += 1.0 / (rank as f64).powf(s);
        cdf.push(sum);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(READS + READS / SCAN_EVERY * SCAN_LEN as usize);
    let mut cursor = 0u64;
    for i in 0..READS {
        if i > 0 && i % SCAN_EVERY == 0 {
            for _ in 0..SCAN_LEN {
                out.push((cursor, true));
                cursor = (cursor + 1) % KEYS;
            }
        }
        let u = rng.unit() * sum;
        let rank = cdf.partition_point(|&c| c < u) as u64;
        // Popularity is unrelated to the id (the scan walks ids): a bijection of 0..KEYS.
        out.push(((rank * 7919 + 13) % KEYS, false));
    }
    out
}

/// Hits over all reads and over the Zipf reads alone.
fn run(trace: &[(u64, bool)], mut get_or_insert: impl FnMut(u64) -> bool) -> (f64, f64) {
    let (mut hits, mut zipf, mut zipf_hits) = (0usize, 0usize, 0usize);
    for &(k, scan) in trace {
        let hit = get_or_insert(k);
        hits += usize::from(hit);
        if !scan {
            zipf += 1;
            zipf_hits += usize::from(hit);
        }
    }
    (
        hits as f64 / trace.len() as f64,
        zipf_hits as f64 / zipf as f64,
    )
}

fn main() {
    println!(
        "{KEYS} keys, capacity {CAPACITY}, {READS} Zipf reads, a {SCAN_LEN}-key scan every {SCAN_EVERY}"
    );
    println!(
        "{:<6} {:<12} {:>10} {:>10}",
        "zipf", "cache", "hit_ratio", "zipf_only"
    );
    for s in [0.9, 1.0] {
        let t = trace(s);
        let l1 = BareL1::<u64, u64>::new(CAPACITY, None);
        let ours = run(&t, |k| {
            l1.get(&k).is_some() || {
                l1.insert(k, k);
                false
            }
        });
        let q = quick_cache::sync::Cache::<u64, u64>::new(CAPACITY);
        let quick = run(&t, |k| {
            q.get(&k).is_some() || {
                q.insert(k, k);
                false
            }
        });
        let m = moka::sync::Cache::<u64, u64>::new(CAPACITY as u64);
        let moka = run(&t, |k| {
            m.get(&k).is_some() || {
                m.insert(k, k);
                false
            }
        });
        let mut lru = lru::LruCache::<u64, u64>::new(NonZeroUsize::new(CAPACITY).unwrap());
        let lru = run(&t, |k| {
            lru.get(&k).is_some() || {
                lru.put(k, k);
                false
            }
        });
        for (name, (all, zipf)) in [
            ("flipcache", ours),
            ("quick_cache", quick),
            ("moka", moka),
            ("lru", lru),
        ] {
            println!("{s:<6} {name:<12} {all:>10.4} {zipf:>10.4}");
        }
        let best = quick.0.max(moka.0);
        println!(
            "{s:<6} flipcache / best of quick_cache and moka: {:.3}",
            ours.0 / best
        );
    }
}
