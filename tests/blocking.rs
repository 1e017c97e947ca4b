//! The blocking front against a real, private Redis: every verb, every encoding, TTLs with the
//! L1 on, eviction order, defaults, decode errors, awkward names, threads, and Redis going away.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use flipcache::{Error, FlipCache};
use redis::Commands;
use support::{Server, eventually};

#[test]
fn the_seed_quickstart_behaves_as_in_python() {
    let server = Server::start();
    let cache: FlipCache<String, String> = FlipCache::builder("my_cache")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .build()
        .unwrap();
    cache.set("my_key", "my_value").unwrap();
    assert_eq!(cache.get("my_key").unwrap(), Some("my_value".to_string()));
    assert_eq!(cache.get("unknown").unwrap(), None);
    assert!(cache.contains("my_key").unwrap());
    assert!(!cache.contains("unknown").unwrap());
    let nums = server.cache::<u64, u64>("nums");
    nums.set(123, 246).unwrap();
    assert_eq!(nums.get(&123).unwrap(), Some(246));
    // Same layout as Python: `{name}:{key}` holding text.
    let mut raw = server.raw();
    let stored: String = raw.get("my_cache:my_key").unwrap();
    assert_eq!(stored, "my_value");
    let stored: String = raw.get("nums:123").unwrap();
    assert_eq!(stored, "246");
}

#[test]
fn reads_what_python_wrote_and_writes_what_python_reads() {
    let server = Server::start();
    let mut raw = server.raw();
    let _: () = raw.set("ints:5", "10").unwrap();
    let _: () = raw.set("floats:pi", "2.75").unwrap();
    let _: () = raw
        .set(
            "json:u",
            r#"{"state": 1, "orders": [1, 2, 3, 4], "items": {"foo": 1, "bar": true, "baz": []}}"#,
        )
        .unwrap();
    let ints = server.cache::<u64, u64>("ints");
    assert_eq!(ints.get(&5).unwrap(), Some(10));
    let floats: FlipCache<String, f64> = FlipCache::builder("floats")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .build()
        .unwrap();
    assert_eq!(floats.get("pi").unwrap(), Some(2.75));
    floats.set("e", 2.5).unwrap();
    let e: String = raw.get("floats:e").unwrap();
    assert_eq!(e, "2.5");
    let json: FlipCache<String, serde_json::Value> = FlipCache::builder("json")
        .tracking(support::tracking())
        .json()
        .redis_url(&server.url())
        .build()
        .unwrap();
    let v = json.get("u").unwrap().unwrap();
    assert_eq!(v["items"]["bar"], serde_json::json!(true));
    json.set("w", serde_json::json!({"a": [1, 2]})).unwrap();
    let w: String = raw.get("json:w").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&w).unwrap(),
        serde_json::json!({"a": [1, 2]})
    );
    let flags: FlipCache<u32, bool> = FlipCache::builder("flags")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .build()
        .unwrap();
    flags.set(1, true).unwrap();
    let _: () = raw.set("flags:2", "False").unwrap();
    assert_eq!(flags.get(&1).unwrap(), Some(true));
    assert_eq!(flags.get(&2).unwrap(), Some(false));
}

#[derive(Clone, Debug, PartialEq)]
struct Shape {
    name: String,
    dimensions: Vec<f64>,
}

#[test]
fn custom_closures_encode_and_decode() {
    let server = Server::start();
    let shapes = FlipCache::<u64, Shape>::builder("custom")
        .tracking(support::tracking())
        .value_encoder(|s: &Shape| format!("{}||{:?}", s.name, s.dimensions))
        .value_decoder(|s: &str| -> Result<Shape, String> {
            let (name, dims) = s.split_once("||").ok_or("no separator")?;
            let dimensions = dims
                .trim_matches(['[', ']'])
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| d.trim().parse::<f64>().map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            Ok(Shape {
                name: name.to_string(),
                dimensions,
            })
        })
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    let womp = Shape {
        name: "womp".into(),
        dimensions: vec![4.1, 3.4],
    };
    shapes.set(123, womp.clone()).unwrap();
    assert_eq!(shapes.get(&123).unwrap(), Some(womp));
    let _: () = server.raw().set("custom:9", "garbage").unwrap();
    let err = shapes.get(&9).unwrap_err();
    assert!(err.is_decode(), "{err}");
    assert_eq!(err.key(), Some("custom:9"));
    assert_eq!(err.cache(), "custom");
}

#[test]
fn every_verb() {
    let server = Server::start();
    let c = server.cache::<u64, u64>("verbs");
    assert_eq!(c.len().unwrap(), 0);
    assert!(c.is_empty().unwrap());
    c.set_many([(1, 10), (2, 20), (3, 30)]).unwrap();
    assert_eq!(c.len().unwrap(), 3);
    assert_eq!(
        c.get_many(&[3, 9, 1]).unwrap(),
        vec![Some(30), None, Some(10)]
    );
    let mut keys = c.keys().unwrap();
    keys.sort();
    assert_eq!(keys, [1, 2, 3]);
    assert!(c.delete(&2).unwrap());
    assert!(!c.delete(&2).unwrap());
    assert_eq!(c.get(&2).unwrap(), None);
    assert!(c.refresh(&1).unwrap());
    assert!(!c.refresh(&2).unwrap());
    let mut local = c.local_keys();
    local.sort();
    assert_eq!(local, [1, 3]);
    assert_eq!(c.local_len(), 2);
    assert_eq!(c.clear().unwrap(), 2);
    assert_eq!(c.local_len(), 0);
    assert_eq!(c.len().unwrap(), 0);
    assert_eq!(c.get(&1).unwrap(), None);
    let s = c.stats();
    assert!(s.local_hits >= 2 && s.misses >= 2, "{s:?}");
}

#[test]
fn get_many_is_read_from_redis_in_order_with_an_l1_off() {
    let server = Server::start();
    let c: FlipCache<u64, u64> = FlipCache::builder("gm")
        .tracking(support::tracking())
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    let items: Vec<(u64, u64)> = (0..500).map(|i| (i, i * 2)).collect();
    c.set_many(items).unwrap();
    let keys: Vec<u64> = (0..600).rev().collect();
    let got = c.get_many(&keys).unwrap();
    for (k, v) in keys.iter().zip(got) {
        assert_eq!(v, (*k < 500).then_some(k * 2));
    }
    assert_eq!(c.local_len(), 0);
}

#[test]
fn the_l1_never_outlives_the_redis_ttl() {
    let server = Server::start();
    // Coherence off: expiry must be enforced by the L1's own deadline, not by a push.
    let c: FlipCache<String, String> = FlipCache::builder("ttl")
        .tracking(support::tracking())
        .expire_time(Duration::from_millis(300))
        .coherence(false)
        .redis_url(&server.url())
        .build()
        .unwrap();
    c.set("data", "This will expire").unwrap();
    assert_eq!(c.get("data").unwrap().as_deref(), Some("This will expire"));
    assert_eq!(c.local_len(), 1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.get("data").unwrap(), None);
    // A TTL set by someone else is honoured too: the fill reads PTTL with the value.
    let _: () = redis::cmd("SET")
        .arg("ttl:foreign")
        .arg("x")
        .arg("PX")
        .arg(300)
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(c.get("foreign").unwrap().as_deref(), Some("x"));
    let hits = c.stats().local_hits;
    assert_eq!(c.get("foreign").unwrap().as_deref(), Some("x"));
    assert_eq!(c.stats().local_hits, hits + 1, "second read is an L1 hit");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.get("foreign").unwrap(), None);
}

#[test]
fn eviction_keeps_what_is_read_and_is_bounded() {
    let server = Server::start();
    let c: FlipCache<u64, u64> = FlipCache::builder("lru")
        .tracking(support::tracking())
        .local_max(3)
        .redis_url(&server.url())
        .build()
        .unwrap();
    for k in 1..=3 {
        c.set(k, k).unwrap();
    }
    assert_eq!(c.get(&1).unwrap(), Some(1)); // 1 was read: it gets a second chance
    c.set(4, 4).unwrap(); // evicts 2, the oldest not read since
    let local: HashSet<u64> = c.local_keys().into_iter().collect();
    assert_eq!(local, HashSet::from([1, 3, 4]));
    let big: FlipCache<u64, u64> = FlipCache::builder("lru_big")
        .tracking(support::tracking())
        .local_max(500)
        .redis_url(&server.url())
        .build()
        .unwrap();
    big.set_many((0..2000u64).map(|i| (i, i))).unwrap();
    assert!(big.local_len() <= 500, "{}", big.local_len());
    assert!(
        big.local_len() >= 450,
        "the L1 should be (nearly) full: {}",
        big.local_len()
    );
    // A batch of exactly local_max keys is kept whole, shards or not.
    let fit: FlipCache<String, String> = FlipCache::builder("lru_fit")
        .tracking(support::tracking())
        .local_max(1000)
        .redis_url(&server.url())
        .build()
        .unwrap();
    fit.set_many((0..1000).map(|i| (format!("{i:0>32}"), i.to_string())))
        .unwrap();
    assert_eq!(fit.local_len(), 1000);
    assert_eq!(
        big.get(&7).unwrap(),
        Some(7),
        "evicted entries are still in Redis"
    );
}

#[test]
fn defaults_are_fresh_and_only_written_when_asked() {
    let server = Server::start();
    let c: FlipCache<u64, Vec<u8>> = FlipCache::builder("defaults")
        .tracking(support::tracking())
        .value_encoder_bytes(|v: &Vec<u8>| v.clone())
        .value_decoder_bytes(|b: &[u8]| Ok::<_, String>(b.to_vec()))
        .value_default(vec![1, 2])
        .redis_url(&server.url())
        .build()
        .unwrap();
    let mut a = c.get(&1).unwrap().unwrap();
    a.push(3);
    assert_eq!(
        c.get(&2).unwrap(),
        Some(vec![1, 2]),
        "no sharing between keys"
    );
    assert!(
        !c.contains(&1).unwrap(),
        "the default is not written by default"
    );
    let w: FlipCache<u64, u64> = FlipCache::builder("defaults_w")
        .tracking(support::tracking())
        .value_default(0)
        .write_default(true)
        .redis_url(&server.url())
        .build()
        .unwrap();
    assert_eq!(w.get(&5).unwrap(), Some(0));
    let stored: String = server.raw().get("defaults_w:5").unwrap();
    assert_eq!(stored, "0");
}

#[test]
fn an_empty_string_is_a_value() {
    let server = Server::start();
    let c = server.cache::<String, String>("empty");
    c.set("k", "").unwrap();
    assert_eq!(c.get("k").unwrap(), Some(String::new()));
    let c2: FlipCache<String, String> = FlipCache::builder("empty")
        .tracking(support::tracking())
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    assert_eq!(c2.get("k").unwrap(), Some(String::new()));
}

#[test]
fn values_other_clients_wrote_in_other_formats_are_decode_errors() {
    let server = Server::start();
    let c = server.cache::<u64, u64>("mixed");
    let mut raw = server.raw();
    let _: () = raw.set("mixed:7", "not a number").unwrap();
    let _: () = raw.set("mixed:8", vec![0xffu8, 0xfe]).unwrap();
    for k in [7, 8] {
        let err = c.get(&k).unwrap_err();
        assert!(err.is_decode(), "{err}");
        assert!(err.to_string().contains(&format!("mixed:{k}")), "{err}");
        assert!(err.to_string().contains("`mixed`"), "{err}");
    }
    let err = c.get_many(&[1, 7]).unwrap_err();
    assert!(err.is_decode());
    // A non-string Redis type is an error too, not a panic.
    let _: () = raw.rpush("mixed:9", "x").unwrap();
    let err = c.get(&9).unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err}");
    assert_eq!(c.local_len(), 0, "nothing undecodable is kept");
}

#[test]
fn names_with_glob_characters_and_nested_names_stay_apart() {
    let server = Server::start();
    let star = server.cache::<String, String>("a*b?[c]");
    let other = server.cache::<String, String>("aXb?[c]");
    let plain = server.cache::<String, String>("a");
    star.set("1", "x").unwrap();
    other.set("1", "y").unwrap();
    plain.set("1", "z").unwrap();
    assert_eq!(star.len().unwrap(), 1);
    assert_eq!(star.keys().unwrap(), ["1"]);
    assert_eq!(star.clear().unwrap(), 1);
    assert_eq!(other.get("1").unwrap().as_deref(), Some("y"));
    let p = server.cache::<String, String>("p");
    let pq = server.cache::<String, String>("p:q");
    p.set("a", "1").unwrap();
    pq.set("b", "2").unwrap();
    assert_eq!(
        p.keys().unwrap(),
        ["a"],
        "cache p does not list cache p:q's keys"
    );
    assert_eq!(pq.keys().unwrap(), ["b"]);
    assert_eq!(p.clear().unwrap(), 1);
    assert_eq!(pq.get("b").unwrap().as_deref(), Some("2"));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let server = Server::start();
    let e = FlipCache::<u64, u64>::builder("")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    let e = FlipCache::<u64, u64>::builder("z")
        .tracking(support::tracking())
        .expire_time(Duration::ZERO)
        .redis_url(&server.url())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("expire_time"), "{e}");
    let e = FlipCache::<u64, u64>::builder("z")
        .tracking(support::tracking())
        .redis_url("nope://x")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("invalid Redis URL"), "{e}");
}

#[test]
fn eight_threads_hammering_shared_keys_leave_l1_and_redis_agreeing() {
    let server = Server::start();
    let c = server.cache::<u64, u64>("hammer");
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..2000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % 16;
                    match x % 5 {
                        0 => {
                            c.delete(&k).unwrap();
                        }
                        1 | 2 => c.set(k, t * 1_000_000 + i).unwrap(),
                        _ => {
                            c.get(&k).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let fresh: FlipCache<u64, u64> = FlipCache::builder("hammer")
        .tracking(support::tracking())
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    let mut checked = 0;
    for k in c.local_keys() {
        let local = c.get(&k).unwrap();
        let remote = fresh.get(&k).unwrap();
        assert_eq!(
            local, remote,
            "key {k}: L1 says {local:?}, Redis says {remote:?}"
        );
        checked += 1;
    }
    assert!(checked > 0, "the L1 should hold something after the run");
}

#[test]
fn a_failed_write_leaves_no_local_copy_and_the_cache_recovers() {
    let mut server = Server::start();
    let c: FlipCache<u64, u64> = FlipCache::builder("outage")
        .tracking(support::tracking())
        .timeout(Duration::from_millis(500))
        .redis_url(&server.url())
        .build()
        .unwrap();
    c.set(1, 1).unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(1));
    server.stop();
    let err = c.set(1, 2).unwrap_err();
    assert!(err.is_remote(), "{err}");
    assert_eq!(err.cache(), "outage");
    assert_eq!(err.key(), Some("outage:1"));
    assert!(
        c.local_keys().is_empty(),
        "a failed write must not leave a value the L1 and Redis disagree on"
    );
    assert!(
        c.get(&1).is_err(),
        "with Redis down and no L1 copy, a read is an error, not stale data"
    );
    server.restart();
    // Reconnects back off while Redis is down: calls fail fast until an attempt succeeds.
    let mut back = None;
    eventually(Duration::from_secs(5), "a reconnect", || {
        back = c.get(&1).ok();
        back.is_some()
    });
    // The new server is empty: no read may return what the old one had.
    assert_eq!(back, Some(None));
    c.set(1, 3).unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(3));
}

#[test]
fn refresh_on_get_keeps_hot_keys_alive_in_redis() {
    let server = Server::start();
    let c: FlipCache<String, String> = FlipCache::builder("hot")
        .tracking(support::tracking())
        .expire_time(Duration::from_millis(400))
        .refresh_expire_time_on_get(true)
        .redis_url(&server.url())
        .build()
        .unwrap();
    c.set("k", "v").unwrap();
    let mut raw = server.raw();
    for _ in 0..30 {
        assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
        std::thread::sleep(Duration::from_millis(40));
    }
    // 1.2 s after the write, three TTLs later, the key is alive because L1 hits renewed it.
    let exists: bool = raw.exists("hot:k").unwrap();
    assert!(exists, "a key read from the L1 must not expire in Redis");
    assert!(c.stats().local_hits > 20);
}

#[test]
fn a_blocking_cache_works_inside_a_tokio_runtime() {
    let server = Server::start();
    let url = server.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let c: FlipCache<u64, u64> = FlipCache::builder("in_rt")
            .tracking(support::tracking())
            .redis_url(&url)
            .build()
            .unwrap();
        c.set(1, 2).unwrap();
        assert_eq!(c.local_len(), 1);
        c.delete(&1).unwrap();
        assert_eq!(c.get(&1).unwrap(), None);
    });
}

/// Names of the clients connected to `server`, other than the asking connection, with the
/// last command each ran.
fn clients(server: &Server) -> Vec<(u64, String)> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.raw())
        .unwrap();
    list.lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .map(|l| {
            let field = |name: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("id=").parse().unwrap(), field("cmd="))
        })
        .collect()
}

/// A blocking miss is read on a connection of the calling thread's own (no hand-off to the
/// background runtime): after the first miss a second connection appears, later misses reuse
/// it, and one killed under the cache costs no error (the read goes through the shared
/// connection and a new one is made).
#[test]
fn blocking_misses_read_on_a_pooled_connection_of_their_own() {
    let server = Server::start();
    let c = server.cache::<u64, u64>("pooled");
    c.set_many((0..100u64).map(|i| (i, i))).unwrap();
    let shared = clients(&server);
    assert_eq!(shared.len(), 1, "one shared connection: {shared:?}");
    let _ = c.get(&1000).unwrap(); // a miss: made through the shared connection, grows the pool
    eventually(Duration::from_secs(5), "the pooled connection", || {
        clients(&server).len() == 2
    });
    let other: FlipCache<u64, u64> = FlipCache::builder("pooled")
        .tracking(support::tracking())
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    for i in 0..100u64 {
        assert_eq!(other.get(&i).unwrap(), Some(i));
    }
    let now = clients(&server);
    assert_eq!(
        now.len(),
        2,
        "sequential misses reuse one connection: {now:?}"
    );
    let pooled = now
        .iter()
        .find(|(id, _)| !shared.iter().any(|(s, _)| s == id))
        .expect("the pooled connection")
        .clone();
    assert!(
        pooled.1 == "get" || pooled.1 == "pttl" || pooled.1 == "exec",
        "the pooled connection made the reads: {now:?}"
    );
    let _: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(pooled.0)
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(
        other.get(&5).unwrap(),
        Some(5),
        "a closed pooled connection is not an error"
    );
    eventually(Duration::from_secs(5), "a new pooled connection", || {
        other.get(&6).unwrap() == Some(6) && clients(&server).len() == 2
    });
}
