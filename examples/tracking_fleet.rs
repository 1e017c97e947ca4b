//! Benchmark (not a test): what a fleet of processes holding keys in their L1s costs Redis per
//! write, in each tracking mode. For 0, 10, 50 and 200 processes, each holding 10 of 2,000 keys
//! of one cache, a foreign client makes 100,000 pipelined `SET`s over the 2,000 keys; printed:
//! Redis CPU per `SET` (`INFO cpu`, `used_cpu_sys` + `used_cpu_user`) and write throughput.
//!
//! `cargo run --release --example tracking_fleet` (starts its own `redis-server` on a free port;
//! the processes are this program started again with `FLIPCACHE_FLEET_CHILD` set).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use flipcache::{FlipCache, Tracking};

const KEYS: usize = 2_000;
const HELD: usize = 10;
const WRITES: usize = 100_000;
const PIPELINE: usize = 1_000;
const CHILD_ENV: &str = "FLIPCACHE_FLEET_CHILD";

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let port = free_port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/redis-env.sh)");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut raw = wait_ready(&client);
    println!("| mode | processes | Redis CPU per SET | pipelined SETs/s |");
    println!("|---|---:|---:|---:|");
    for mode in [Tracking::Keys, Tracking::Broadcast] {
        for n in [0, 10, 50, 200] {
            preset(&mut raw);
            let fleet = Fleet::start(&url, mode, n);
            let (cpu, rate) = measure(&mut raw);
            println!(
                "| {mode:?} | {n} | {:.2} µs | {:.0}k |",
                cpu * 1e6,
                rate / 1e3
            );
            drop(fleet);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// The processes of one run; dropping it ends them (their stdin closes).
struct Fleet {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Fleet {
    fn start(url: &str, mode: Tracking, n: usize) -> Fleet {
        let exe = std::env::current_exe().expect("own path");
        let mut children = Vec::new();
        for i in 0..n {
            let first = (i * HELD) % KEYS;
            let mut child = Command::new(&exe)
                .env(CHILD_ENV, format!("{url} {mode:?} {first}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a fleet process");
            let stdin = child.stdin.take();
            children.push((child, stdin));
        }
        for (child, _) in &mut children {
            let mut line = String::new();
            let out = child.stdout.as_mut().expect("piped stdout");
            BufReader::new(out).read_line(&mut line).expect("read");
            assert_eq!(line.trim(), "ready", "a fleet process failed to start");
        }
        Fleet { children }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (child, stdin) in &mut self.children {
            drop(stdin.take());
            let _ = child.wait();
        }
    }
}

/// Writes every key once, so every run starts from the same data.
fn preset(raw: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for k in 0..KEYS {
        pipe.cmd("SET").arg(format!("fleet:k{k}")).arg(0).ignore();
    }
    pipe.query::<()>(raw).expect("preset");
}

/// Redis CPU seconds per `SET` and `SET`s per second over [`WRITES`] pipelined writes.
fn measure(raw: &mut redis::Connection) -> (f64, f64) {
    let cpu_before = redis_cpu(raw);
    let start = Instant::now();
    for batch in 0..WRITES / PIPELINE {
        let mut pipe = redis::pipe();
        for i in 0..PIPELINE {
            let k = (batch * PIPELINE + i) % KEYS;
            pipe.cmd("SET")
                .arg(format!("fleet:k{k}"))
                .arg(batch)
                .ignore();
        }
        pipe.query::<()>(raw).expect("writes");
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = redis_cpu(raw) - cpu_before;
    (cpu / WRITES as f64, WRITES as f64 / wall)
}

fn redis_cpu(raw: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(raw).expect("INFO cpu");
    info.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k, "used_cpu_sys" | "used_cpu_user").then(|| v.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// One fleet process: holds keys `first..first + 10` in its L1, says `ready`, and lives until
/// its stdin closes.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    let [url, mode, first] = parts[..] else {
        panic!("{CHILD_ENV} must be `<url> <Keys|Broadcast> <first key>`, got `{spec}`");
    };
    let mode = match mode {
        "Keys" => Tracking::Keys,
        "Broadcast" => Tracking::Broadcast,
        other => panic!("{CHILD_ENV}: unknown tracking mode `{other}`"),
    };
    let first: usize = first.parse().expect("first key");
    let cache: FlipCache<String, u64> = FlipCache::builder("fleet")
        .tracking(mode)
        .local_max(100)
        .redis_url(url)
        .build()
        .expect("build");
    for k in first..first + HELD {
        cache.get(&format!("k{k}")).expect("read");
    }
    assert_eq!(cache.local_len(), HELD, "the held keys are in the L1");
    println!("ready");
    std::io::stdout().flush().expect("flush");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_ready(client: &redis::Client) -> redis::Connection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut c).is_ok()
        {
            return c;
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}
