//! `remove_by_tag` of 100,000 entries, and `clear` of 100,000: total time, and the longest
//! single Redis command while each runs (from `SLOWLOG` with `slowlog-log-slower-than 0`), so
//! the batching is seen to keep Redis responsive. Not a criterion bench: one run, raw numbers.
//!
//! Runs against a private redis-server it starts: `cargo bench --bench tags`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use flipcache::aio::FlipCache;

const ENTRIES: u64 = 100_000;
const WRITERS: u64 = 64;

/// Every command the server logged since the last reset: (microseconds, command name).
fn slowlog(raw: &mut redis::Connection) -> Vec<(u64, String)> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(raw)
        .expect("SLOWLOG GET");
    entries
        .into_iter()
        .filter_map(|e| {
            let redis::Value::Array(fields) = e else {
                return None;
            };
            let micros: u64 = redis::from_redis_value(fields.get(2)?.clone()).ok()?;
            let args: Vec<String> = redis::from_redis_value(fields.get(3)?.clone()).ok()?;
            let name = args.first().cloned().unwrap_or_default();
            let name = if name.eq_ignore_ascii_case("EVAL") {
                // Name the script by what it does.
                let body = args.get(1).cloned().unwrap_or_default();
                let what = body.lines().next().unwrap_or_default();
                format!("EVAL ({})", what.trim_start_matches("-- flipcache: "))
            } else {
                name
            };
            Some((micros, name))
        })
        .collect()
}

fn report(what: &str, took: Duration, removed: usize, log: &[(u64, String)]) {
    let mut log = log.to_vec();
    log.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
    println!(
        "{what}: removed {removed} in {took:?}; {} commands logged",
        log.len()
    );
    println!("  longest single commands:");
    for (micros, name) in log.iter().take(5) {
        println!("    {:>8.3} ms  {name}", *micros as f64 / 1000.0);
    }
    let mut by_name: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for (micros, name) in &log {
        let e = by_name.entry(name.as_str()).or_default();
        e.0 += 1;
        e.1 += micros;
    }
    for (name, (n, total)) in by_name {
        println!(
            "  {name}: {n} calls, {:.1} ms in Redis",
            total as f64 / 1000.0
        );
    }
}

fn reset(raw: &mut redis::Connection) {
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(raw).unwrap();
}

fn main() {
    let server = support::Server::start();
    let mut raw = server.raw();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(1_000_000)
        .query(&mut raw)
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = server.url();
    rt.block_on(async {
        let cache: FlipCache<u64, u64> = FlipCache::builder("bench_tags")
            .redis_url(&url)
            .timeout(Duration::from_secs(10))
            .build_async()
            .await
            .unwrap();

        // ---- remove_by_tag -------------------------------------------------------------
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let cache = cache.clone();
            tasks.spawn(async move {
                let mut i = w;
                while i < ENTRIES {
                    cache.set_with_tags(i, i, ["big"]).await.unwrap();
                    i += WRITERS;
                }
            });
        }
        tasks.join_all().await;
        println!("tagged {ENTRIES} entries in {:?}", start.elapsed());
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(0)
            .query(&mut raw)
            .unwrap();
        reset(&mut raw);
        let start = Instant::now();
        let removed = cache.remove_by_tag("big").await.unwrap();
        let took = start.elapsed();
        report("remove_by_tag", took, removed, &slowlog(&mut raw));
        assert_eq!(removed as u64, ENTRIES);

        // ---- clear ---------------------------------------------------------------------
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(10_000)
            .query(&mut raw)
            .unwrap();
        for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(10_000) {
            cache
                .set_many(chunk.iter().map(|&i| (i, i)).collect::<Vec<_>>())
                .await
                .unwrap();
        }
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(0)
            .query(&mut raw)
            .unwrap();
        reset(&mut raw);
        let start = Instant::now();
        let removed = cache.clear().await.unwrap();
        let took = start.elapsed();
        report("clear", took, removed, &slowlog(&mut raw));
        assert_eq!(removed as u64, ENTRIES);
    });
}
