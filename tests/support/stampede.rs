//! A cross-process stampede on `distributed_lock`: child processes, each with threads, miss one
//! cold key at the same moment, round after round, with a slow loader. The children are
//! coordinated through a second Redis (so the cache's server counts only the cache's commands
//! in `INFO commandstats`): the parent sets `go` to the round number, every child polls it, then
//! each thread calls `get_with`; the loader counts its runs in `loads:{round}`, and every caller
//! adds what it got to `values:{round}` and counts itself in `done:{round}`.

use std::time::{Duration, Instant};

use redis::Commands;

use super::child_said;

/// The environment a stampede child reads (set only by [`run`]).
pub const CHILD_ENV: &str = "FLIPCACHE_STAMPEDE_CHILD";

/// One stampede.
pub struct Spec {
    /// Where the cache lives: `redis://...`, or `cluster:` and comma-separated seed URLs.
    pub target: String,
    /// The URLs of every primary of the target (their `INFO commandstats` are summed).
    pub nodes: Vec<String>,
    /// The coordination server.
    pub coord: String,
    pub processes: usize,
    pub threads: usize,
    pub rounds: usize,
    /// How long the loader takes.
    pub load: Duration,
    /// The lease.
    pub lease: Duration,
    /// The callers are tasks on the async front (else threads on the blocking one).
    pub asynchronous: bool,
}

impl Spec {
    /// The stampede of the tests: 4 processes x 8 threads, 20 rounds, a 100 ms loader, a 5 s
    /// lease, on the cache at `target` (its primaries at `nodes`), coordinated through `coord`.
    pub fn new(target: String, nodes: Vec<String>, coord: String) -> Spec {
        Spec {
            target,
            nodes,
            coord,
            processes: 4,
            threads: 8,
            rounds: 20,
            load: Duration::from_millis(100),
            lease: Duration::from_secs(5),
            asynchronous: false,
        }
    }
}

/// What the parent saw.
#[derive(Debug)]
pub struct Report {
    /// Loader runs in each round.
    pub loads: Vec<u64>,
    /// Distinct values the callers of each round got.
    pub values: Vec<u64>,
    /// Commands the cache's servers ran in each round (all processes).
    pub commands: Vec<u64>,
}

impl Report {
    /// Checks that each of `rounds` rounds ran the loader once, every caller got its value,
    /// and the cache's servers ran at most `commands` commands a round.
    pub fn assert_once_per_round(&self, rounds: usize, commands: u64) {
        println!("{self:?}");
        assert_eq!(self.loads, vec![1; rounds], "loader runs per round");
        assert_eq!(self.values, vec![1; rounds], "distinct values per round");
        let most = self.commands.iter().copied().max().unwrap_or(0);
        assert!(
            most <= commands,
            "at most {commands} commands per round, saw {:?}",
            self.commands
        );
    }
}

/// Runs a stampede with the child entry `entry` of the calling test binary (which calls
/// [`child`]).
pub fn run(entry: &str, spec: &Spec) -> Report {
    let mut coord = redis::Client::open(spec.coord.as_str())
        .and_then(|c| c.get_connection())
        .expect("the coordination server");
    let env = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        spec.target,
        spec.coord,
        spec.threads,
        spec.rounds,
        spec.load.as_millis(),
        spec.lease.as_millis(),
        spec.asynchronous
    );
    let tracking = std::env::var("FLIPCACHE_TEST_TRACKING").unwrap_or_default();
    let children: Vec<_> = (0..spec.processes)
        .map(|_| {
            super::spawn_child(
                entry,
                &[
                    (CHILD_ENV, env.clone()),
                    ("FLIPCACHE_TEST_TRACKING", tracking.clone()),
                ],
            )
        })
        .collect();
    let ready = spec.processes as u64;
    super::eventually(Duration::from_secs(60), "every child to be ready", || {
        coord.get::<_, Option<u64>>("ready").unwrap_or_default() == Some(ready)
    });
    let callers = (spec.processes * spec.threads) as u64;
    let mut report = Report {
        loads: Vec::new(),
        values: Vec::new(),
        commands: Vec::new(),
    };
    for round in 0..spec.rounds {
        let before = commands(&spec.nodes);
        let _: () = coord.set("go", round).expect("SET go");
        let deadline = Instant::now() + Duration::from_secs(30);
        while coord
            .get::<_, Option<u64>>(format!("done:{round}"))
            .expect("GET done")
            .unwrap_or(0)
            < callers
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: the callers did not all return"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        report.commands.push(commands(&spec.nodes) - before);
        let loads: Option<u64> = coord.get(format!("loads:{round}")).expect("GET loads");
        report.loads.push(loads.unwrap_or(0));
        let values: u64 = coord.scard(format!("values:{round}")).expect("SCARD");
        report.values.push(values);
    }
    let _: () = coord.set("go", "end").expect("SET go end");
    for (i, child) in children.into_iter().enumerate() {
        let out = child.output();
        let said = child_said(entry, &out, "STAMPEDE_CHILD ");
        assert_eq!(said, "done", "child {i}");
        assert!(out.status.success(), "child {i} failed");
    }
    report
}

/// What the connections run in the background whatever the loads do (the keep-alive's `PING`
/// and tracking-table check, a cluster's topology checks), and this count's own `INFO`.
const KEEP_ALIVE: [&str; 5] = [
    "cmdstat_info:",
    "cmdstat_ping:",
    "cmdstat_cluster|",
    "cmdstat_client|",
    "cmdstat_config|",
];

/// Commands run so far by the servers at `nodes` (`INFO commandstats`), without
/// [`KEEP_ALIVE`]'s.
fn commands(nodes: &[String]) -> u64 {
    nodes
        .iter()
        .map(|url| {
            let mut raw = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .expect("a node");
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query(&mut raw)
                .expect("INFO commandstats");
            info.lines()
                .filter(|l| {
                    l.starts_with("cmdstat_") && !KEEP_ALIVE.iter().any(|k| l.starts_with(k))
                })
                .filter_map(|l| {
                    let calls = l.split_once("calls=")?.1;
                    calls.split(',').next()?.parse::<u64>().ok()
                })
                .sum::<u64>()
        })
        .sum()
}

/// The child side: builds the cache, says it is ready, then runs every round when told.
/// Panics (so the parent fails) unless started by [`run`].
pub fn child() {
    let env = std::env::var(CHILD_ENV).expect("run only as a child process of a stampede test");
    let parts: Vec<&str> = env.lines().collect();
    let [
        target,
        coord,
        threads,
        rounds,
        load_ms,
        lease_ms,
        asynchronous,
    ] = parts[..]
    else {
        panic!("{CHILD_ENV} is malformed: {env:?}");
    };
    let threads: usize = threads.parse().expect("threads");
    let rounds: usize = rounds.parse().expect("rounds");
    let load = Duration::from_millis(load_ms.parse().expect("load"));
    let lease = Duration::from_millis(lease_ms.parse().expect("lease"));
    let builder = flipcache::FlipCache::<String, String>::builder("stampede")
        .tracking(super::tracking())
        .distributed_lock(lease);
    let builder = match target.strip_prefix("cluster:") {
        Some(seeds) => builder.redis_cluster(&seeds.split(',').collect::<Vec<_>>()),
        None => builder.redis_url(target),
    };
    let client = redis::Client::open(coord).expect("coordination client");
    let mut conn = client.get_connection().expect("coordination connection");
    let wait_for = |conn: &mut redis::Connection, round: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let go: Option<String> = conn.get("go").expect("GET go");
            if go.as_deref() == Some(round.to_string().as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "round {round} never started");
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    let pid = std::process::id();
    if asynchronous == "true" {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        let cache = rt.block_on(builder.build_async()).expect("build the cache");
        let _: () = conn.incr("ready", 1).expect("INCR ready");
        for round in 0..rounds {
            wait_for(&mut conn, round);
            rt.block_on(async {
                let tasks: Vec<_> = (0..threads)
                    .map(|_| {
                        let cache = cache.clone();
                        let client = client.clone();
                        tokio::spawn(async move {
                            let counter = client.clone();
                            let value = cache
                                .get_with(&format!("k{round}"), async move {
                                    let mut c = counter
                                        .get_multiplexed_async_connection()
                                        .await
                                        .expect("coordination");
                                    let _: () = redis::AsyncCommands::incr(
                                        &mut c,
                                        format!("loads:{round}"),
                                        1,
                                    )
                                    .await
                                    .expect("INCR");
                                    tokio::time::sleep(load).await;
                                    format!("{round}-{pid}")
                                })
                                .await
                                .expect("get_with");
                            let mut c = client.get_connection().expect("coordination");
                            let _: () = c.sadd(format!("values:{round}"), value).expect("SADD");
                            let _: () = c.incr(format!("done:{round}"), 1).expect("INCR done");
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("a caller task");
                }
            });
        }
        println!("STAMPEDE_CHILD done");
        return;
    }
    let cache = builder.build().expect("build the cache");
    let _: () = conn.incr("ready", 1).expect("INCR ready");
    for round in 0..rounds {
        wait_for(&mut conn, round);
        std::thread::scope(|s| {
            for _ in 0..threads {
                let cache = &cache;
                let client = &client;
                s.spawn(move || {
                    let counter = client.clone();
                    let value = cache
                        .get_with(&format!("k{round}"), move || {
                            let mut c = counter.get_connection().expect("coordination");
                            let _: () = c.incr(format!("loads:{round}"), 1).expect("INCR");
                            std::thread::sleep(load);
                            format!("{round}-{pid}")
                        })
                        .expect("get_with");
                    let mut c = client.get_connection().expect("coordination");
                    let _: () = c.sadd(format!("values:{round}"), value).expect("SADD");
                    let _: () = c.incr(format!("done:{round}"), 1).expect("INCR done");
                });
            }
        });
    }
    println!("STAMPEDE_CHILD done");
}
