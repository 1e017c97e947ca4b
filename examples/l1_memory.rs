//! Memory per entry of flipcache's L1 against `Mutex<lru::LruCache>`, `quick_cache` and moka:
//! 1,000,000 `u64 -> u64` entries each, every cache measured in a child process of its own
//! (resident set size before and after the fills, from `/proc/self/statm`), side by side in one
//! run. Linux only.
//!
//! `cargo run --release --example l1_memory`

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::process::Command;
use std::sync::Mutex;

use flipcache::__private01::BareL1;

const N: u64 = 1_000_000;
const KINDS: [&str; 4] = ["flipcache", "mutex_lru", "quick_cache", "moka"];

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Fills one cache and prints `kind entries rss_before rss_after`.
fn child(kind: &str) {
    let before = rss();
    let (held, after) = match kind {
        "flipcache" => {
            let l = BareL1::<u64, u64>::new(N as usize, None);
            for i in 0..N {
                l.insert(i, i);
            }
            (l.len(), rss())
        }
        "mutex_lru" => {
            let l = Mutex::new(lru::LruCache::<u64, u64>::new(
                NonZeroUsize::new(N as usize).unwrap(),
            ));
            for i in 0..N {
                l.lock().unwrap().put(i, i);
            }
            let n = l.lock().unwrap().len();
            (black_box(n), rss())
        }
        "quick_cache" => {
            let q = quick_cache::sync::Cache::<u64, u64>::new(N as usize);
            for i in 0..N {
                q.insert(i, i);
            }
            (q.len(), rss())
        }
        "moka" => {
            let m = moka::sync::Cache::<u64, u64>::new(N);
            for i in 0..N {
                m.insert(i, i);
            }
            m.run_pending_tasks();
            (m.entry_count() as usize, rss())
        }
        _ => return,
    };
    println!("{kind} {held} {before} {after}");
}

fn main() {
    if let Some(kind) = std::env::args().nth(1) {
        child(&kind);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!("{N} u64 -> u64 entries, RSS of a child process per cache");
    println!(
        "{:<12} {:>9} {:>12} {:>12} {:>10} {:>8}",
        "cache", "held", "rss_before", "rss_after", "B/entry", "vs_lru"
    );
    let mut rows = Vec::new();
    for kind in KINDS {
        let out = Command::new(&exe).arg(kind).output().expect("child ran");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let f: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [held, before, after] = f[..] {
            rows.push((
                kind,
                held,
                before,
                after,
                (after - before) as f64 / held as f64,
            ));
        } else {
            println!("{kind}: child printed {line:?}");
        }
    }
    let lru = rows
        .iter()
        .find(|r| r.0 == "mutex_lru")
        .map_or(f64::NAN, |r| r.4);
    for (kind, held, before, after, per) in rows {
        println!(
            "{kind:<12} {held:>9} {before:>12} {after:>12} {per:>10.1} {:>8.2}",
            per / lru
        );
    }
}
