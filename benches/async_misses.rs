//! Async front, L1-missing gets: 64 concurrent tasks vs one task in sequence (and the raw
//! multiplexed redis-rs connection doing the same), against a private redis-server.
//! Run: `cargo bench --bench async_misses`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use redis::AsyncCommands;

const KEYS: u64 = 1000;
const GETS: u64 = 64_000;

fn main() {
    let server = support::Server::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = flipcache::FlipCache::<u64, u64>::builder("bench_async")
            .local_max(0)
            .redis_url(&server.url())
            .build_async()
            .await
            .unwrap();
        cache.set_many((0..KEYS).map(|i| (i, i))).await.unwrap();
        let raw = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();

        let mut rows = Vec::new();
        for (label, tasks) in [("1 task", 1u64), ("64 tasks", 64)] {
            let c = cache.clone();
            let ours = run(tasks, move |i| {
                let c = c.clone();
                async move {
                    c.get(&(i % KEYS)).await.unwrap();
                }
            })
            .await;
            let r = raw.clone();
            let theirs = run(tasks, move |i| {
                let mut r = r.clone();
                async move {
                    let _: Option<u64> = r.get(format!("bench_async:{}", i % KEYS)).await.unwrap();
                }
            })
            .await;
            rows.push((label, ours, theirs));
        }
        println!("| workload ({GETS} L1-missing gets) | flipcache gets/s | raw redis-rs gets/s |");
        println!("|---|---|---|");
        for (label, ours, theirs) in &rows {
            println!("| {label} | {:.0} | {:.0} |", rate(*ours), rate(*theirs));
        }
        let speedup = rate(rows[1].1) / rate(rows[0].1);
        println!("\n64 tasks vs 1 task (flipcache): {speedup:.1}x (target >= 5x)");
    });
}

fn rate(d: Duration) -> f64 {
    GETS as f64 / d.as_secs_f64()
}

async fn run<F, Fut>(tasks: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per = GETS / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    op(t * per + i).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    start.elapsed()
}
