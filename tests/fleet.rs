//! Coherence at fleet scale, with real processes: 50 child processes each hold 10 of 2,000 keys
//! in their L1. In the default (key-based) tracking mode, Redis's CPU per `SET` over 100,000
//! pipelined foreign writes stays within 1.5x of the same writes with no process connected, and
//! a foreign write to a held key still reaches its holder.
//!
//! A test binary of its own (`harness = false`): run with no arguments it is the parent; a
//! child is this binary started again with `FLIPCACHE_FLEET_TEST_CHILD` set, which only the
//! parent sets. A misformed value fails loudly.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use flipcache::FlipCache;
use support::{Server, eventually};

const CHILD_ENV: &str = "FLIPCACHE_FLEET_TEST_CHILD";
const PROCESSES: usize = 50;
const KEYS: usize = 2_000;
const HELD: usize = 10;
const WRITES: usize = 100_000;
const PIPELINE: usize = 1_000;

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(spec) => child(&spec),
        Err(_) => {
            // `cargo test` passes harness flags (`--nocapture`, a filter...): a filter that is
            // not ours skips the test, as libtest would.
            let args: Vec<String> = std::env::args().skip(1).collect();
            if args.iter().any(|a| a == "--list") {
                println!("fleet_of_50_processes: test");
                return;
            }
            if let Some(filter) = args.iter().find(|a| !a.starts_with('-'))
                && !"fleet_of_50_processes".contains(filter.as_str())
            {
                println!("fleet_of_50_processes ... filtered out");
                return;
            }
            fleet_of_50_processes();
            println!("test fleet_of_50_processes ... ok");
        }
    }
}

struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read a child's line");
        line.trim().to_owned()
    }
}

fn key(k: usize) -> String {
    format!("fleet:k{k}")
}

fn fleet_of_50_processes() {
    let server = Server::start();
    let mut raw = server.raw();
    preset(&mut raw);
    // Baseline: the same writes with no process connected (best of three, against noise from
    // other work on the machine).
    let alone = (0..3)
        .map(|_| cpu_per_set(&mut raw))
        .fold(f64::MAX, f64::min);

    let exe = std::env::current_exe().expect("own path");
    let mut fleet: Vec<Holder> = (0..PROCESSES)
        .map(|i| {
            let mut child = Command::new(&exe)
                .env(CHILD_ENV, format!("{} {}", server.url(), i * HELD))
                .env(
                    "FLIPCACHE_TEST_TRACKING",
                    std::env::var("FLIPCACHE_TEST_TRACKING").unwrap_or_default(),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a child process");
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
            Holder {
                child,
                stdin,
                stdout,
            }
        })
        .collect();
    for h in &mut fleet {
        assert_eq!(h.line(), "ready", "a child failed to start");
    }
    let clients: usize = {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut raw).unwrap();
        list.lines().count()
    };
    assert!(
        clients > PROCESSES,
        "every child is connected ({clients} clients)"
    );

    // A foreign write to a held key reaches its holder: child 7 holds keys 70..80.
    let _: () = redis::cmd("SET")
        .arg(key(73))
        .arg(4242)
        .query(&mut raw)
        .unwrap();
    writeln!(fleet[7].stdin, "check k73 4242").unwrap();
    assert_eq!(fleet[7].line(), "ok", "the holder saw the foreign write");

    if support::tracking() == flipcache::Tracking::Keys {
        let with_fleet = (0..3)
            .map(|_| cpu_per_set(&mut raw))
            .fold(f64::MAX, f64::min);
        println!(
            "Redis CPU per SET: {:.3} µs alone, {:.3} µs with {PROCESSES} processes",
            alone * 1e6,
            with_fleet * 1e6
        );
        assert!(
            with_fleet <= alone * 1.5,
            "with {PROCESSES} processes a SET costs Redis {:.3} µs, alone {:.3} µs (limit 1.5x)",
            with_fleet * 1e6,
            alone * 1e6
        );
    }
    for mut h in fleet {
        drop(h.stdin);
        let status = h.child.wait().expect("wait for a child");
        assert!(status.success(), "a child failed: {status}");
    }
}

fn preset(raw: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for k in 0..KEYS {
        pipe.cmd("SET").arg(key(k)).arg(0).ignore();
    }
    pipe.query::<()>(raw).expect("preset");
}

/// Redis CPU seconds per `SET` over [`WRITES`] pipelined writes of the 2,000 keys.
fn cpu_per_set(raw: &mut redis::Connection) -> f64 {
    let before = redis_cpu(raw);
    for batch in 0..WRITES / PIPELINE {
        let mut pipe = redis::pipe();
        for i in 0..PIPELINE {
            pipe.cmd("SET")
                .arg(key((batch * PIPELINE + i) % KEYS))
                .arg(batch)
                .ignore();
        }
        pipe.query::<()>(raw).expect("writes");
    }
    (redis_cpu(raw) - before) / WRITES as f64
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

/// A child: holds keys `first..first + 10`, says `ready`, then answers `check <key> <value>`
/// (the holder's L1 must drop the key by itself, then read `value`) until its stdin closes.
fn child(spec: &str) {
    let Some((url, first)) = spec.split_once(' ') else {
        panic!(
            "{CHILD_ENV} must be `<redis url> <first key>` (set by the fleet test), got `{spec}`"
        );
    };
    let first: usize = first
        .parse()
        .unwrap_or_else(|_| panic!("{CHILD_ENV}: `{first}` is not a key number"));
    let cache: FlipCache<String, u64> = FlipCache::builder("fleet")
        .tracking(support::tracking())
        .local_max(100)
        .redis_url(url)
        .build()
        .expect("build");
    for k in first..first + HELD {
        cache.get(format!("k{k}").as_str()).expect("read");
    }
    assert_eq!(cache.local_len(), HELD, "the held keys are in the L1");
    println!("ready");
    std::io::stdout().flush().expect("flush");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.expect("read a command");
        let parts: Vec<&str> = line.split(' ').collect();
        let ["check", k, v] = parts[..] else {
            panic!("unknown command `{line}`");
        };
        let want: u64 = v.parse().expect("a value");
        eventually(Duration::from_secs(10), "the invalidation", || {
            !cache.local_keys().iter().any(|held| held == k)
        });
        assert!(cache.stats().invalidations > 0);
        assert_eq!(cache.get(k).expect("read"), Some(want));
        println!("ok");
        std::io::stdout().flush().expect("flush");
    }
}
