//! Redis Cluster: three primaries started by the test on free ports (cluster mode, slots split
//! three ways), a cache pointed at one seed node. Proves that every verb reaches the primary
//! owning each key, that batches and scans span every primary, that foreign writes on any
//! primary invalidate the L1, that a dropped node connection empties the L1 and tracking comes
//! back, that a slot moved to another primary while it is read and written is followed without
//! a stale read, and that a primary replaced by its replica is followed.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use flipcache::FlipCache;
use redis::Commands;
use support::{Server, eventually};

const WAIT: Duration = Duration::from_secs(10);

struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// Three primaries owning slots 0-5460, 5461-10922, 10923-16383.
    fn start() -> Cluster {
        Self::start_with_replicas(0)
    }

    /// Three primaries, and `replicas` replicas of the first (nodes 3, 4, ...).
    fn start_with_replicas(replicas: usize) -> Cluster {
        let nodes: Vec<Server> = (0..3 + replicas)
            .map(|i| {
                let conf = format!(
                    "nodes-{}-{}-{i}.conf",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                );
                Server::start_with(&[
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    conf,
                    "--cluster-node-timeout".into(),
                    "3000".into(),
                ])
            })
            .collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (a, b)) in nodes.iter().zip(ranges) {
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(a)
                .arg(b)
                .query(&mut node.raw())
                .expect("ADDSLOTSRANGE");
        }
        for node in &nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .query(&mut nodes[0].raw())
                .expect("MEET");
        }
        let cluster = Cluster { nodes };
        let known = format!("cluster_known_nodes:{}", cluster.nodes.len());
        eventually(Duration::from_secs(30), "the cluster to form", || {
            cluster.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.raw())
                    .unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains(&known)
            })
        });
        let primary = cluster.node_id(0);
        for replica in &cluster.nodes[3..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("REPLICATE")
                .arg(&primary)
                .query(&mut replica.raw())
                .expect("REPLICATE");
        }
        for replica in &cluster.nodes[3..] {
            eventually(Duration::from_secs(30), "the replica to sync", || {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut replica.raw())
                    .unwrap_or_default();
                info.contains("master_link_status:up")
            });
        }
        cluster
    }

    fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    fn cache(&self, name: &str) -> FlipCache<String, String> {
        self.cache_with_seeds(name, 1)
    }

    /// A cache given the first `n` nodes as seeds.
    fn cache_with_seeds(&self, name: &str, n: usize) -> FlipCache<String, String> {
        let seeds = self.seeds();
        let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
        FlipCache::builder(name)
            .tracking(support::tracking())
            .local_max(10_000)
            .timeout(Duration::from_millis(500))
            .redis_cluster(&seeds[..n])
            .build()
            .expect("build on a cluster")
    }

    /// A foreign writer that knows the cluster (redis-rs's own cluster client).
    fn foreign(&self) -> redis::cluster::ClusterConnection {
        let live: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Server::url)
            .collect();
        redis::cluster::ClusterClient::new(live)
            .expect("cluster client")
            .get_connection()
            .expect("cluster connection")
    }

    /// The index of the node owning `key`.
    fn owner(&self, key: &str) -> usize {
        let asked = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut asked.raw())
            .unwrap();
        self.owner_of_slot(slot)
    }

    /// The index of the node owning `slot`, as a running node sees the cluster
    /// (`CLUSTER SLOTS`).
    fn owner_of_slot(&self, slot: u16) -> usize {
        let asked = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node");
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut asked.raw())
            .unwrap();
        for range in ranges {
            let redis::Value::Array(items) = range else {
                continue;
            };
            let num = |v: &redis::Value| redis::from_redis_value::<u16>(v.clone()).unwrap();
            if (num(&items[0])..=num(&items[1])).contains(&slot) {
                let redis::Value::Array(primary) = &items[2] else {
                    panic!("unexpected CLUSTER SLOTS entry");
                };
                let port = num(&primary[1]);
                return self.nodes.iter().position(|n| n.port() == port).unwrap();
            }
        }
        panic!("no node owns slot {slot}")
    }

    fn node_id(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[i].raw())
            .unwrap()
    }
}

fn dbsize(s: &Server) -> u64 {
    redis::cmd("DBSIZE").query(&mut s.raw()).unwrap()
}

/// How many keys `s` holds besides the short-lived write and clear traces that deletes leave
/// (see `remote/fill.rs`): values, markers, indexes, leases.
fn kept(s: &Server) -> usize {
    let all: Vec<String> = s.raw().keys("*").unwrap();
    all.iter()
        .filter(|k| !k.starts_with("__flipcache__:w:") && !k.starts_with("__flipcache__:cleared:"))
        .count()
}

#[test]
fn every_verb_spans_the_primaries() {
    let cluster = Cluster::start();
    let c = cluster.cache("cl");
    let items: Vec<(String, String)> = (0..300)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    c.set_many(items.clone()).unwrap();
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert!(dbsize(node) > 50, "node {i} holds its share of the keys");
    }
    let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).rev().collect();
    let got = c.get_many(&keys).unwrap();
    let want: Vec<Option<String>> = items.iter().rev().map(|(_, v)| Some(v.clone())).collect();
    assert_eq!(got, want, "get_many answers in the order asked");
    assert_eq!(c.len().unwrap(), 300);
    let all: HashSet<String> = c.keys().unwrap().into_iter().collect();
    assert_eq!(all, keys.iter().cloned().collect::<HashSet<_>>());

    c.set("one", "1").unwrap();
    assert_eq!(c.get("one").unwrap().as_deref(), Some("1"));
    let owner = cluster.owner("cl:one");
    let raw: Option<String> = cluster.nodes[owner].raw().get("cl:one").unwrap();
    assert_eq!(
        raw.as_deref(),
        Some("1"),
        "the write went to the owning primary"
    );
    assert!(c.contains("one").unwrap());
    assert!(c.delete("one").unwrap());
    assert!(!c.contains("one").unwrap());

    // A cache with an L1 off reads with one pipeline per slot too.
    let plain: FlipCache<String, String> = FlipCache::builder("cl")
        .tracking(support::tracking())
        .local_max(0)
        .redis_cluster(&[&cluster.seeds()[1]])
        .build()
        .unwrap();
    assert_eq!(plain.get_many(&keys).unwrap(), want);

    assert_eq!(c.clear().unwrap(), 300);
    assert_eq!(c.len().unwrap(), 0);
    for node in &cluster.nodes {
        assert_eq!(kept(node), 0);
    }
}

#[test]
fn foreign_writes_on_every_primary_invalidate_the_l1() {
    let cluster = Cluster::start();
    let c = cluster.cache("cf");
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    c.set_many(keys.iter().map(|k| (k.clone(), "old".to_string())))
        .unwrap();
    let owners: HashSet<usize> = keys
        .iter()
        .map(|k| cluster.owner(&format!("cf:{k}")))
        .collect();
    assert_eq!(owners.len(), 3, "the keys cover every primary");
    for k in &keys {
        assert!(c.local_contains(k.as_str()));
    }
    let before = c.stats().invalidations;
    let mut foreign = cluster.foreign();
    for k in &keys {
        let _: () = foreign.set(format!("cf:{k}"), "new").unwrap();
    }
    eventually(WAIT, "every key's invalidation", || {
        keys.iter().all(|k| !c.local_contains(k.as_str()))
    });
    assert!(c.stats().invalidations >= before + keys.len() as u64);
    for k in &keys {
        assert_eq!(c.get(k).unwrap().as_deref(), Some("new"));
    }
}

#[test]
fn a_dropped_node_connection_empties_the_l1_and_tracking_comes_back() {
    let cluster = Cluster::start();
    let c = cluster.cache("cd");
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    c.set_many(keys.iter().map(|k| (k.clone(), "v1".to_string())))
        .unwrap();
    let flushes = c.stats().flushes;
    // Kill every client connection of node 1 (ours among them).
    let _: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut cluster.nodes[1].raw())
        .unwrap();
    eventually(WAIT, "the L1 to be emptied", || c.stats().flushes > flushes);
    assert_eq!(
        c.local_len(),
        0,
        "what the dropped connection missed cannot be known"
    );

    // The cache works again, and node 1 reports foreign writes again (tracking was
    // registered on the new connection).
    for k in &keys {
        assert_eq!(c.get(k).unwrap().as_deref(), Some("v1"));
    }
    let on_node_1: Vec<&String> = keys
        .iter()
        .filter(|k| cluster.owner(&format!("cd:{k}")) == 1)
        .collect();
    assert!(!on_node_1.is_empty());
    for k in &on_node_1 {
        assert!(c.local_contains(k.as_str()));
    }
    let mut foreign = cluster.foreign();
    for k in &on_node_1 {
        let _: () = foreign.set(format!("cd:{k}"), "v2").unwrap();
    }
    eventually(WAIT, "node 1's invalidations", || {
        on_node_1.iter().all(|k| !c.local_contains(k.as_str()))
    });
    for k in &on_node_1 {
        assert_eq!(c.get(k.as_str()).unwrap().as_deref(), Some("v2"));
    }
}

#[test]
fn a_slot_moved_to_another_primary_while_reading_and_writing_is_followed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let cluster = Cluster::start();
    let c = cluster.cache("cm");
    // Both keys share the slot of the hash tag `{t}`.
    c.set("{t}k", "v1").unwrap();
    c.set("{t}w", "0").unwrap();
    assert!(c.local_contains("{t}k"));
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("t")
        .query(&mut cluster.nodes[0].raw())
        .unwrap();
    let from = cluster.owner_of_slot(slot);
    let to = (from + 1) % 3;
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));
    let flushes = c.stats().flushes;

    // A writer counts up `{t}w` (each acknowledged value recorded), a reader checks that no
    // read ever returns less than what was acknowledged before it started.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (c, stop, acked) = (c.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                i += 1;
                if c.set("{t}w", i.to_string()).is_ok() {
                    acked.store(i, Ordering::Release);
                }
            }
        })
    };
    let reader = {
        let (c, stop, acked) = (c.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Acquire) {
                let floor = acked.load(Ordering::Acquire);
                if let Ok(Some(v)) = c.get("{t}w") {
                    let v: u64 = v.parse().unwrap();
                    assert!(v >= floor, "read {v} after {floor} was acknowledged");
                    reads += 1;
                }
            }
            reads
        })
    };
    std::thread::sleep(Duration::from_millis(200));

    // The standard migration: IMPORTING on the target, MIGRATING on the source, move the
    // slot's keys until none is left, then give the slot to the target everywhere.
    let set_slot = |node: usize, state: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .query(&mut cluster.nodes[node].raw())
            .unwrap();
    };
    set_slot(to, "IMPORTING", &from_id);
    set_slot(from, "MIGRATING", &to_id);
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query(&mut cluster.nodes[from].raw())
            .unwrap();
        if keys.is_empty() {
            break;
        }
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(cluster.nodes[to].port())
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query(&mut cluster.nodes[from].raw())
            .unwrap();
    }
    for node in 0..3 {
        set_slot(node, "NODE", &to_id);
    }
    eventually(WAIT, "the key to live on the target", || {
        let moved: redis::RedisResult<Option<String>> = cluster.nodes[to].raw().get("cm:{t}k");
        matches!(moved, Ok(Some(ref v)) if v == "v1")
    });

    // The cache notices the new topology (emptying its L1), and keeps reading and writing.
    eventually(WAIT, "the topology change to be noticed", || {
        c.stats().flushes > flushes
    });
    let before = acked.load(Ordering::Acquire);
    eventually(WAIT, "writes to go on after the move", || {
        acked.load(Ordering::Acquire) > before + 10
    });
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(reader.join().expect("no stale read") > 0);
    let last = acked.load(Ordering::Acquire).to_string();
    assert_eq!(c.get("{t}w").unwrap(), Some(last.clone()));
    let on_target: Option<String> = cluster.nodes[to].raw().get("cm:{t}w").unwrap();
    assert_eq!(on_target, Some(last), "the writes followed the slot");

    assert_eq!(c.get("{t}k").unwrap().as_deref(), Some("v1"));
    assert!(c.local_contains("{t}k"));
    // The new owner reports foreign writes.
    let before = c.stats().invalidations;
    let _: () = cluster.nodes[to].raw().set("cm:{t}k", "v3").unwrap();
    eventually(WAIT, "the new owner's invalidation", || {
        c.stats().invalidations > before
    });
    assert_eq!(c.get("{t}k").unwrap().as_deref(), Some("v3"));
}

#[test]
fn a_stopped_primary_is_replaced_by_its_replica_without_stale_reads() {
    let mut cluster = Cluster::start_with_replicas(1);
    let c = cluster.cache_with_seeds("cr", 4);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    c.set_many(keys.iter().map(|k| (k.clone(), "v1".to_string())))
        .unwrap();
    let on_node_0: Vec<String> = keys
        .iter()
        .filter(|k| cluster.owner(&format!("cr:{k}")) == 0)
        .cloned()
        .collect();
    assert!(!on_node_0.is_empty());
    // The replica has the writes before the primary goes.
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query(&mut cluster.nodes[0].raw())
        .unwrap();
    assert_eq!(acked, 1, "the replica acknowledged the writes");
    eventually(WAIT, "the replica to hold every key", || {
        redis::cmd("DBSIZE")
            .query::<u64>(&mut cluster.nodes[3].raw())
            .is_ok_and(|n| n == dbsize(&cluster.nodes[0]))
    });
    let flushes = c.stats().flushes;

    cluster.nodes[0].stop();
    eventually(WAIT, "the L1 to be emptied", || c.stats().flushes > flushes);
    assert_eq!(c.local_len(), 0);

    // Calls for node 0's keys fail (clearly) until the replica takes over, then succeed.
    let k = on_node_0[0].as_str();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.get(k);
        if matches!(r, Ok(Some(ref v)) if v == "v1") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let info: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut cluster.nodes[3].raw())
                .unwrap_or_default();
            panic!("the replica did not take over: last read {r:?}; cluster:\n{info}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eventually(WAIT, "the cluster to name the replica as primary", || {
        cluster.owner(&format!("cr:{k}")) == 3
    });
    for k in &on_node_0 {
        assert_eq!(c.get(k.as_str()).unwrap().as_deref(), Some("v1"));
    }
    // The new primary reports foreign writes: no stale read.
    let mut foreign = cluster.foreign();
    for k in &on_node_0 {
        let _: () = foreign.set(format!("cr:{k}"), "v2").unwrap();
    }
    eventually(WAIT, "the new primary's invalidations", || {
        on_node_0.iter().all(|k| !c.local_contains(k.as_str()))
    });
    for k in &on_node_0 {
        assert_eq!(c.get(k.as_str()).unwrap().as_deref(), Some("v2"));
    }
    c.set("after", "ok").unwrap();
    assert_eq!(c.get("after").unwrap().as_deref(), Some("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_front_works_on_a_cluster() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let seeds = cluster.seeds();
    let c: flipcache::aio::FlipCache<u64, u64> = FlipCache::builder("ca")
        .tracking(support::tracking())
        .local_max(1000)
        .redis_cluster(&[seeds[0].as_str()])
        .build_async()
        .await
        .unwrap();
    c.set_many((0..200u64).map(|i| (i, i * 2))).await.unwrap();
    let keys: Vec<u64> = (0..200).collect();
    let got = c.get_many(&keys).await.unwrap();
    assert_eq!(got, keys.iter().map(|k| Some(k * 2)).collect::<Vec<_>>());
    assert_eq!(c.len().await.unwrap(), 200);
    let tasks: Vec<_> = (0..50u64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.get(&i).await.unwrap() })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), Some(i as u64 * 2));
    }
    assert_eq!(c.clear().await.unwrap(), 200);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

static SEEDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
static SQUARE_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[flipcache::flipcache(
    name = "cluster_square",
    redis = flipcache::ClusterNodes::new(SEEDS.get().cloned().unwrap_or_default())
)]
fn square(n: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    n * n
}

#[test]
fn a_memoized_function_caches_on_a_cluster() {
    let cluster = Cluster::start();
    SEEDS.set(cluster.seeds()).unwrap();
    assert_eq!(square(12), 144);
    assert_eq!(square(12), 144);
    assert_eq!(
        SQUARE_RUNS.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the second call was served by the cache"
    );
    let stored: Option<String> = cluster.foreign().get("cluster_square:12").unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("144"),
        "the result is in the cluster"
    );
}

#[test]
fn tags_span_the_primaries_and_removal_reaches_every_l1() {
    let cluster = Cluster::start();
    let writer = cluster.cache("cl_tags");
    let reader = cluster.cache_with_seeds("cl_tags", 2);
    for i in 0..300 {
        let tags: &[&str] = if i % 3 == 0 {
            &["all", "third"]
        } else {
            &["all"]
        };
        writer
            .set_with_tags(format!("k{i}"), format!("v{i}"), tags)
            .unwrap();
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert!(dbsize(node) > 50, "node {i} holds its share of the entries");
    }
    // The indexes sit on their own slots; `len` and `clear` never see them.
    assert_eq!(writer.len().unwrap(), 300);
    let mut foreign = cluster.foreign();
    let listed: usize = foreign.zcard("__flipcache__:tag:cl_tags:all").unwrap();
    assert_eq!(listed, 300);
    // A second instance of the cache (its own L1) holds an entry; the raw reads below stand
    // for other processes and Python.
    assert_eq!(reader.get("k3").unwrap().as_deref(), Some("v3"));

    assert_eq!(writer.remove_by_tag("third").unwrap(), 100);
    for i in (0..300).step_by(3) {
        let v: Option<String> = foreign.get(format!("cl_tags:k{i}")).unwrap();
        assert_eq!(v, None, "k{i} is gone on its primary");
    }
    assert_eq!(reader.get("k3").unwrap(), None);
    assert_eq!(writer.len().unwrap(), 200);
    assert_eq!(writer.remove_by_tag("all").unwrap(), 200);
    for node in &cluster.nodes {
        assert_eq!(
            kept(node),
            0,
            "entries and indexes are gone from every primary"
        );
    }
}

/// The child side of the cluster stampede: run only by it; run any other way it fails.
#[test]
#[ignore = "a child process of the_cross_process_stampede_holds_on_a_cluster"]
fn child_stampede() {
    support::stampede::child();
}

/// `distributed_lock` on a cluster, where a key's lease and its value sit on different slots:
/// 4 processes x 8 threads miss one cold key at once, 20 rounds, the loader runs once a round.
#[test]
fn the_cross_process_stampede_holds_on_a_cluster() {
    let cluster = Cluster::start();
    let coord = Server::start();
    let spec = support::stampede::Spec::new(
        format!("cluster:{}", cluster.seeds().join(",")),
        cluster.seeds(),
        coord.url(),
    );
    support::stampede::run("child_stampede", &spec).assert_once_per_round(20, 80);
}

/// A slow loader for [`loads_on_a_cluster_never_overwrite_newer_data`]: reports that it runs,
/// then waits for the test's go.
fn gated(
    c: &FlipCache<String, String>,
    key: &str,
) -> (
    std::thread::JoinHandle<flipcache::Result<String>>,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let (c, key) = (c.clone(), key.to_owned());
    let t = std::thread::spawn(move || {
        c.get_with(&key, move || {
            started_tx.send(()).unwrap();
            go_rx.recv_timeout(WAIT).unwrap();
            "old".to_string()
        })
    });
    (t, started, go)
}

#[test]
fn loads_on_a_cluster_never_overwrite_newer_data() {
    let cluster = Cluster::start();
    let c = cluster.cache("cl_fill");
    let mut foreign = cluster.foreign();
    // Keys on every primary, hash tags included (their traces and markers follow the tag).
    let keys = ["a", "b", "c", "d{x}e", "f}g{"];
    let owners: HashSet<usize> = keys
        .iter()
        .map(|k| cluster.owner(&format!("cl_fill:{k}")))
        .collect();
    assert_eq!(owners.len(), 3, "the keys span the primaries");
    for (i, k) in keys.iter().enumerate() {
        let rkey = format!("cl_fill:{k}");
        let (t, started, go) = gated(&c, k);
        started.recv_timeout(WAIT).unwrap();
        // A foreign SET, this process's set, or a delete of the absent key.
        let expect = match i % 3 {
            0 => {
                let _: () = foreign.set(&rkey, "new").unwrap();
                Some("new")
            }
            1 => {
                c.set(*k, "new").unwrap();
                Some("new")
            }
            _ => {
                assert!(!c.delete(*k).unwrap());
                None
            }
        };
        go.send(()).unwrap();
        assert_eq!(t.join().unwrap().unwrap(), "old");
        let held: Option<String> = foreign.get(&rkey).unwrap();
        assert_eq!(held.as_deref(), expect, "{rkey}");
        assert_eq!(c.get(*k).unwrap().as_deref(), expect, "{rkey}");
    }
    assert_eq!(c.stats().fills_skipped, keys.len() as u64);
    // `clear` on a cluster traces every slot: a load of an absent key does not fill after it.
    let (t, started, go) = gated(&c, "h");
    started.recv_timeout(WAIT).unwrap();
    c.clear().unwrap();
    go.send(()).unwrap();
    assert_eq!(t.join().unwrap().unwrap(), "old");
    let held: Option<String> = foreign.get("cl_fill:h").unwrap();
    assert_eq!(held, None);
    // Without a race, loads fill on every primary as before.
    for k in keys {
        assert_eq!(c.get_with(k, || "loaded".to_string()).unwrap(), "loaded");
        let held: Option<String> = foreign.get(format!("cl_fill:{k}")).unwrap();
        assert_eq!(held.as_deref(), Some("loaded"));
    }
    assert_eq!(c.len().unwrap(), keys.len());
}
