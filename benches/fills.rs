//! What conditional fills cost (issue #23), in one run of paired blocks (see
//! `tests/support/pairs.rs`):
//! - a cold `get_with` (an L1 and Redis miss, the loader, the fill) against the commands an
//!   unconditional fill sends (`GET` + `PTTL`, then `SET ... PX`), raw, from a blocking thread
//!   through a multiplexed connection, as flipcache's fill goes;
//! - an L1 hit (`get`) against `Mutex<lru::LruCache>::get`, which conditional fills must not
//!   change.
//!
//! Run it on the commit before and after a change to compare the ratios (the raw reference
//! absorbs the machine's drift): `cargo bench --bench fills`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use flipcache::FlipCache;
use support::pairs::{BLOCKS, Pairs};

fn main() {
    let server = support::Server::start();
    let cold: FlipCache<u64, u64> = FlipCache::builder("bf_cold")
        .local_max(1000)
        .redis_url(&server.url())
        .build()
        .unwrap();
    let (rt, mut mux) = server.multiplexed();
    println!(
        "| path | flipcache (median) | reference (median) | ratio, median of {BLOCKS} paired blocks | target |"
    );
    println!("|---|---|---|---|---|");
    // Every call a key never seen (absent in Redis and in the L1).
    let mut next = 0u64;
    let mut raw_next = 0u64;
    Pairs::run(
        |_| {
            next += 1;
            let k = next;
            black_box(cold.get_with(&k, move || k).unwrap());
        },
        |_| {
            raw_next += 1;
            let key = format!("bf_raw:{raw_next}");
            rt.block_on(async {
                let (v, ttl): (Option<u64>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut mux)
                    .await
                    .unwrap();
                black_box((v, ttl));
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(raw_next)
                    .arg("PX")
                    .arg(60_000)
                    .query_async(&mut mux)
                    .await
                    .unwrap();
            });
        },
    )
    .print(
        "cold `get_with` (miss, load, fill)",
        "raw `GET`+`PTTL`, then `SET PX`",
        "-",
    );

    let hot = support::filled(&server, "bf_hot", 1000);
    let lru = Mutex::new(lru::LruCache::<u64, u64>::new(
        NonZeroUsize::new(1000).unwrap(),
    ));
    for i in 0..1000 {
        lru.lock().unwrap().put(i, i);
    }
    Pairs::run(
        |i| {
            for j in 0..100 {
                black_box(hot.get(&((i * 100 + j) % 1000)).unwrap());
            }
        },
        |i| {
            for j in 0..100 {
                black_box(lru.lock().unwrap().get(&((i * 100 + j) % 1000)).copied());
            }
        },
    )
    .print("L1 hit (`get`, x100)", "`Mutex<LruCache>::get` (x100)", "-");
}
