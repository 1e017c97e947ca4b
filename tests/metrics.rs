//! Observability against a real, private Redis: the `metrics` feature's counters, histograms
//! and gauge (read through `metrics-util`'s debugging recorder), the events of `on_event`, the
//! new `Stats` counters, and errors that print their cause once under `anyhow`.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flipcache::{Event, FlipCache, LoadError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use redis::Commands;
use support::{Server, eventually};

/// `(name, sorted labels)` of one series.
type Series = (String, Vec<(String, String)>);

/// What the recorder saw, accumulated: the debugging recorder hands out each increment and
/// sample once (a snapshot resets counters and gauges to 0 and empties histograms), and the
/// tests of this file share it. A gauge keeps its last non-zero value (a reset one reads 0).
#[derive(Default)]
struct Seen {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
    samples: HashMap<Series, Vec<f64>>,
}

fn recorder() -> &'static (Snapshotter, Mutex<Seen>) {
    static R: OnceLock<(Snapshotter, Mutex<Seen>)> = OnceLock::new();
    R.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        (snapshotter, Mutex::new(Seen::default()))
    })
}

/// Reads the recorder and gives what it saw of cache `cache`'s series `name` with `labels`
/// (besides `cache`).
fn seen<T>(f: impl FnOnce(&Seen) -> T) -> T {
    let (snapshotter, seen) = recorder();
    let mut seen = seen.lock().unwrap();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let series = (key.name().to_owned(), labels);
        match value {
            DebugValue::Counter(n) => *seen.counters.entry(series).or_default() += n,
            DebugValue::Gauge(g) => {
                if g.into_inner() != 0.0 {
                    seen.gauges.insert(series, g.into_inner());
                }
            }
            DebugValue::Histogram(hs) => seen
                .samples
                .entry(series)
                .or_default()
                .extend(hs.into_iter().map(|h| h.into_inner())),
        }
    }
    f(&seen)
}

fn series(name: &str, cache: &str, labels: &[(&str, &str)]) -> Series {
    let mut all: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.push(("cache".into(), cache.into()));
    all.sort();
    (name.to_owned(), all)
}

fn counter(name: &str, cache: &str, labels: &[(&str, &str)]) -> u64 {
    let s = series(name, cache, labels);
    seen(|seen| seen.counters.get(&s).copied().unwrap_or(0))
}

fn samples(name: &str, cache: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let s = series(name, cache, labels);
    seen(|seen| seen.samples.get(&s).cloned().unwrap_or_default())
}

fn gauge(name: &str, cache: &str) -> Option<f64> {
    let s = series(name, cache, &[]);
    seen(|seen| seen.gauges.get(&s).copied())
}

/// A listener that keeps every event, and what it kept.
fn listener() -> (
    impl Fn(&Event) + Send + Sync + 'static,
    Arc<Mutex<Vec<Event>>>,
) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let k = kept.clone();
    (move |e: &Event| k.lock().unwrap().push(e.clone()), kept)
}

fn has(events: &Mutex<Vec<Event>>, wanted: &Event) -> bool {
    events.lock().unwrap().iter().any(|e| e == wanted)
}

#[test]
fn hits_misses_loads_and_errors_move_their_counters_and_histograms() {
    recorder();
    let server = Server::start();
    let name = "mx_basic";
    let cache: FlipCache<String, u64> = server.builder(name).local_max(100).build().unwrap();
    let mut raw = server.raw();
    let _: () = raw.set(format!("{name}:remote"), "7").unwrap();
    let _: () = raw.set(format!("{name}:bad"), "not a number").unwrap();

    assert_eq!(cache.get("remote").unwrap(), Some(7)); // remote hit, fills the L1
    for _ in 0..5 {
        assert_eq!(cache.get("remote").unwrap(), Some(7)); // local hits
    }
    assert_eq!(cache.get("absent").unwrap(), None); // miss
    assert_eq!(cache.get_with("loaded", || 3).unwrap(), 3); // miss + load
    let failed = cache.try_get_with("failing", || {
        Err::<u64, _>(std::io::Error::other("db down"))
    });
    assert!(matches!(failed, Err(LoadError::Loader { .. })));
    assert!(cache.get("bad").unwrap_err().is_decode());
    cache.set("written", 1).unwrap();

    let stats = cache.stats(); // publishes
    assert_eq!(stats.local_hits, 5);
    assert_eq!(stats.remote_hits, 1);
    assert_eq!(stats.loads, 2);
    assert_eq!(stats.load_errors, 1);
    assert_eq!(stats.sets, 2, "the loaded value and `set`");
    assert_eq!(
        stats.errors, 2,
        "the loader's error and the undecodable value"
    );
    // remote, written and (unless an invalidation raced the load's fill) loaded.
    let held = cache.local_keys();
    assert_eq!(stats.local_entries, held.len() as u64, "{held:?}");
    assert!(
        held.contains(&"remote".to_string()) && held.contains(&"written".to_string()),
        "{held:?}"
    );

    let hits = |layer| counter("flipcache_hits_total", name, &[("layer", layer)]);
    assert_eq!(hits("local"), 5);
    assert_eq!(hits("remote"), 1);
    assert_eq!(counter("flipcache_misses_total", name, &[]), stats.misses);
    assert_eq!(stats.misses, 3, "absent, loaded, failing");
    assert_eq!(counter("flipcache_loads_total", name, &[]), 2);
    assert_eq!(counter("flipcache_load_errors_total", name, &[]), 1);
    let errors = |kind| counter("flipcache_errors_total", name, &[("kind", kind)]);
    assert_eq!(errors("decode"), 1);
    assert_eq!(errors("loader"), 1);
    assert_eq!(errors("redis") + errors("timeout"), 0);
    assert_eq!(
        gauge("flipcache_local_entries", name),
        Some(stats.local_entries as f64)
    );
    // One sample per loader run, one per Redis round trip, by command.
    assert_eq!(samples("flipcache_load_seconds", name, &[]).len(), 2);
    let gets = samples("flipcache_redis_seconds", name, &[("command", "get")]);
    assert_eq!(
        gets.len(),
        5,
        "remote, absent, loaded, failing, bad: {gets:?}"
    );
    assert!(gets.iter().all(|s| *s > 0.0 && *s < 5.0), "{gets:?}");
    assert_eq!(
        samples("flipcache_redis_seconds", name, &[("command", "set")]).len(),
        2
    );

    // Reading again publishes only what changed since.
    assert_eq!(cache.get("remote").unwrap(), Some(7));
    cache.stats();
    assert_eq!(hits("local"), 6);
    assert_eq!(counter("flipcache_loads_total", name, &[]), 2);

    // Redis down: an error of kind `redis` (refused) or `timeout`.
    drop(raw);
    let mut server = server;
    server.stop();
    assert!(cache.get("elsewhere").is_err());
    cache.stats();
    assert_eq!(errors("redis") + errors("timeout"), 1);
}

#[test]
fn counters_are_published_in_the_background_without_a_stats_call() {
    recorder();
    let server = Server::start();
    let name = "mx_background";
    let cache: FlipCache<u64, u64> = server.builder(name).build().unwrap();
    cache.set(1, 1).unwrap();
    for _ in 0..10 {
        cache.get(&1).unwrap();
    }
    eventually(Duration::from_secs(5), "the publisher ran", || {
        counter("flipcache_hits_total", name, &[("layer", "local")]) == 10
    });
}

#[test]
fn callers_that_wait_on_anothers_load_are_counted_as_waits() {
    recorder();
    let server = Server::start();
    let name = "mx_waits";
    let cache: FlipCache<u64, u64> = server.builder(name).build().unwrap();
    let start = Arc::new(std::sync::Barrier::new(8));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (cache, start) = (cache.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache
                    .get_with(&1, || {
                        std::thread::sleep(Duration::from_millis(500));
                        42
                    })
                    .unwrap()
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.join().unwrap(), 42);
    }
    let stats = cache.stats();
    assert_eq!(stats.loads, 1, "{stats:?}");
    assert_eq!(stats.waits, 7, "{stats:?}");
    assert_eq!(counter("flipcache_loads_total", name, &[]), 1);
    assert_eq!(counter("flipcache_waits_total", name, &[]), 7);
}

#[test]
fn evictions_invalidations_and_flushes_move_counters_and_fire_events() {
    recorder();
    let server = Server::start();
    let name = "mx_events";
    let (on_event, events) = listener();
    let cache: FlipCache<u64, u64> = server
        .builder(name)
        .local_max(4)
        .on_event(on_event)
        .build()
        .unwrap();
    for k in 0..10 {
        cache.set(k, k).unwrap();
    }
    let stats = cache.stats();
    assert_eq!(stats.evictions, 6, "{stats:?}");
    assert_eq!(stats.local_entries, 4, "{stats:?}");
    assert_eq!(counter("flipcache_evictions_total", name, &[]), 6);
    eventually(Duration::from_secs(5), "6 eviction events", || {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Evicted { .. }))
            .count()
            == 6
    });
    let held = cache.local_keys();
    let k = held[0];
    let mut raw = server.raw();
    let _: () = raw.set(format!("{name}:{k}"), "100").unwrap();
    let invalidated = Event::Invalidated {
        cache: name.into(),
        key: format!("{name}:{k}"),
    };
    eventually(Duration::from_secs(5), "the invalidation event", || {
        has(&events, &invalidated)
    });
    // Counted right after the event is queued.
    eventually(Duration::from_secs(5), "the invalidation counted", || {
        cache.stats().invalidations >= 1
    });
    assert!(counter("flipcache_invalidations_total", name, &[]) >= 1);

    let _: () = redis::cmd("FLUSHDB").query(&mut raw).unwrap();
    let flushed = Event::Flushed { cache: name.into() };
    eventually(Duration::from_secs(5), "the flush event", || {
        has(&events, &flushed)
    });
    assert_eq!(cache.stats().flushes, 1);
    assert_eq!(counter("flipcache_flushes_total", name, &[]), 1);
}

#[test]
fn a_reconnect_a_failed_load_and_a_stale_value_fire_events() {
    recorder();
    let mut server = Server::start();
    let name = "mx_more_events";
    let (on_event, events) = listener();
    let cache: FlipCache<u64, u64> = server
        .builder(name)
        .expire_time(Duration::from_millis(200))
        .stale_for(Duration::from_secs(10))
        .on_event(on_event)
        .build()
        .unwrap();
    assert!(
        cache
            .try_get_with(&1, || Err::<u64, _>(std::io::Error::other("db down")))
            .is_err()
    );
    let failed = Event::LoadFailed {
        cache: name.into(),
        key: format!("{name}:1"),
    };
    eventually(Duration::from_secs(5), "the load-failed event", || {
        has(&events, &failed)
    });

    assert_eq!(cache.get_with(&2, || 2).unwrap(), 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cache.get_with(&2, || 3).unwrap(),
        2,
        "stale, served at once"
    );
    let stale = Event::StaleServed {
        cache: name.into(),
        key: format!("{name}:2"),
    };
    eventually(Duration::from_secs(5), "the stale-served event", || {
        has(&events, &stale)
    });
    assert!(cache.stats().stale_served >= 1);
    assert!(counter("flipcache_stale_served_total", name, &[]) >= 1);

    server.restart();
    let reconnected = Event::Reconnected { cache: name.into() };
    eventually(Duration::from_secs(10), "the reconnect event", || {
        has(&events, &reconnected)
    });
}

#[test]
fn a_panicking_listener_neither_stops_the_events_nor_poisons_the_cache() {
    let server = Server::start();
    let name = "mx_panics";
    let kept = Arc::new(Mutex::new(Vec::new()));
    let k = kept.clone();
    let cache: FlipCache<u64, u64> = server
        .builder(name)
        .local_max(1)
        .on_event(move |e: &Event| {
            let mut kept = k.lock().unwrap();
            kept.push(e.clone());
            let first = kept.len() == 1;
            drop(kept);
            assert!(!first, "the listener panics on its first event");
        })
        .build()
        .unwrap();
    for k in 0..5 {
        cache.set(k, k).unwrap();
        assert_eq!(cache.get(&k).unwrap(), Some(k));
    }
    eventually(Duration::from_secs(5), "the events after the panic", || {
        kept.lock().unwrap().len() == 4
    });
    assert_eq!(cache.get(&4).unwrap(), Some(4));
}

/// The causes of `e`'s chain, printed as `anyhow` prints them (`{:#}`).
fn chain(e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::from(e))
}

#[test]
fn errors_print_their_cause_once_under_anyhow() {
    let mut server = Server::start();
    let name = "mx_chain";
    let json: FlipCache<u64, Vec<u32>> = server.builder(name).json().build().unwrap();
    let mut raw = server.raw();
    let _: () = raw.set(format!("{name}:1"), "[1, oops]").unwrap();
    let e = json.get(&1).unwrap_err();
    let cause = serde_json::from_str::<Vec<u32>>("[1, oops]")
        .unwrap_err()
        .to_string();
    let printed = chain(e.clone());
    assert_eq!(printed.matches(&cause).count(), 1, "{printed}");
    assert!(
        printed.starts_with(&format!(
            "cache `{name}`: cannot decode the value of `{name}:1`: "
        )),
        "{printed}"
    );
    let source = std::error::Error::source(&e).expect("the decoder's error");
    assert_eq!(source.to_string(), cause);

    // A loader error through `LoadError`: its message, then the loader's error, once.
    let failed = json
        .try_get_with(&2, || Err::<Vec<u32>, _>(std::io::Error::other("db down")))
        .unwrap_err();
    let printed = chain(failed);
    assert_eq!(printed.matches("db down").count(), 1, "{printed}");

    // A Redis error: the connection's error once.
    drop(raw);
    server.stop();
    let e = json.get(&3).unwrap_err();
    assert!(e.is_remote(), "{e}");
    let own = e.to_string();
    let printed = chain(e.clone());
    let flipcache::Error::Redis { source, .. } = &e else {
        panic!("a refused connection is a Redis error: {e}");
    };
    // redis-rs prints its own I/O cause in its message and returns it as its source too: that
    // pair is redis-rs's; flipcache adds no copy of either.
    let cause = source.to_string();
    assert!(
        !own.contains(&cause),
        "the message repeats its cause: {own}"
    );
    let theirs = chain(source.clone()).matches(&cause).count();
    assert_eq!(printed.matches(&cause).count(), theirs, "{printed}");
}

#[test]
fn stats_serialize_with_every_counter() {
    let server = Server::start();
    let cache: FlipCache<u64, u64> = server.builder("mx_serde").build().unwrap();
    cache.set(1, 1).unwrap();
    cache.get(&1).unwrap();
    let json = serde_json::to_value(cache.stats()).unwrap();
    assert_eq!(json["local_hits"], 1, "{json}");
    assert_eq!(json["sets"], 1, "{json}");
    for field in [
        "evictions",
        "waits",
        "loads",
        "local_entries",
        "stale_served",
    ] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
}

#[test]
fn a_skipped_fill_is_published() {
    recorder();
    let server = Server::start();
    let name = "mx_skipped";
    let cache: FlipCache<u64, u64> = server.builder(name).build().unwrap();
    let (started_tx, started) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let c = cache.clone();
    let load = std::thread::spawn(move || {
        c.get_with(&1, move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            1
        })
    });
    started.recv().unwrap();
    // Written by another client while the loader runs: the load's fill must not land.
    let _: () = server.raw().set(format!("{name}:1"), 2).unwrap();
    go.send(()).unwrap();
    assert_eq!(load.join().unwrap().unwrap(), 1);
    assert_eq!(cache.stats().fills_skipped, 1);
    assert_eq!(counter("flipcache_fills_skipped_total", name, &[]), 1);
}

#[test]
fn refreshes_fail_safe_serves_and_sets_are_published() {
    recorder();
    let mut server = Server::start();
    let name = "mx_more";
    let cache: FlipCache<u64, u64> = server
        .builder(name)
        .expire_time(Duration::from_millis(200))
        .stale_for(Duration::from_secs(60))
        .fail_safe(true)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    cache.set(1, 1).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(1));
    std::thread::sleep(Duration::from_millis(300));
    // Stale: served, and refreshed in the background.
    assert_eq!(cache.get_with(&1, || 2).unwrap(), 1);
    eventually(Duration::from_secs(5), "the refresh", || {
        cache.stats().refreshes == 1
    });
    eventually(
        Duration::from_secs(5),
        "the refreshed value in the L1",
        // Read first: broadcasting, the refresh's own fill leaves the L1 to the next read.
        || cache.get(&1).unwrap() == Some(2) && cache.local_contains(&1),
    );
    server.stop();
    eventually(Duration::from_secs(5), "a fail-safe serve", || {
        cache.get(&1).ok().flatten() == Some(2) && cache.stats().fail_safe > 0
    });
    let s = cache.stats();
    assert_eq!(counter("flipcache_refreshes_total", name, &[]), s.refreshes);
    assert_eq!(counter("flipcache_fail_safe_total", name, &[]), s.fail_safe);
    assert_eq!(counter("flipcache_sets_total", name, &[]), s.sets);
    assert_eq!(s.sets, 2, "the set and the refresh: {s:?}");
}

/// `Stats::local_bytes` (and its gauge) is the weigher's sum over what the L1 holds, after
/// inserts, overwrites, deletes, another client's writes and evictions.
#[test]
fn local_bytes_is_the_weigh_of_what_the_l1_holds() {
    recorder();
    let server = Server::start();
    let name = "mx_bytes";
    let cache: FlipCache<String, String> = server
        .builder(name)
        .local_max(4)
        .weigher(|k: &String, v: &String| k.len() + v.len())
        .build()
        .unwrap();
    let held = |c: &FlipCache<String, String>| -> u64 {
        c.local_keys()
            .iter()
            .map(|k| {
                let v = c.get(k).unwrap().unwrap_or_default();
                (k.len() + v.len()) as u64
            })
            .sum()
    };
    let check = |what: &str| {
        let s = cache.stats();
        assert_eq!(s.local_bytes, held(&cache), "{what}: {s:?}");
        // The test recorder keeps a gauge's last non-zero value (see `Seen`).
        let bytes = cache.stats().local_bytes;
        if bytes > 0 {
            assert_eq!(
                gauge("flipcache_local_bytes", name),
                Some(bytes as f64),
                "{what}: the gauge"
            );
        }
    };
    assert_eq!(cache.stats().local_bytes, 0);
    cache.set("a", "1").unwrap();
    cache.set("bb", "22").unwrap();
    check("two inserts");
    assert_eq!(cache.stats().local_bytes, 2 + 4);
    cache.set("a", "1111").unwrap();
    check("an overwrite");
    cache.delete("bb").unwrap();
    check("a delete");
    let _: () = server.raw().set(format!("{name}:a"), "x").unwrap();
    eventually(Duration::from_secs(5), "the push to drop `a`", || {
        !cache.local_contains("a")
    });
    check("another client's write");
    for k in ["c", "d", "e", "f", "g", "h"] {
        cache.set(k, "v").unwrap();
    }
    assert!(cache.stats().evictions > 0);
    check("evictions");
}

/// What one scripted mix of calls must leave in every counter (both fronts run the same mix).
const ACCOUNTED: Accounted = Accounted {
    // a ×3, b once from the L1 and once as a fail-safe copy, s stale, b through `get_with` as
    // a fail-safe copy
    local_hits: 3 + 1 + 1 + 1 + 1,
    remote_hits: 1,      // b
    misses: 6,           // none, loaded, failing, s (stale reads as absent), w, a after delete
    loads: 3,            // loaded, failing, w
    load_errors: 1,      // failing
    waits: 1,            // w's second caller
    stale_served: 1 + 2, // s; the two fail-safe copies
    fail_safe: 2,        // get(b) and get_with(b) during the outage
    refreshes: 0,        // s's refresh lost the lease
    sets: 3,             // set(a), loaded, w
    decode_errors: 1,    // bad
    errors: 3,           // failing (loader), bad (decode), elsewhere (Redis down)
};

/// The expected counts of [`ACCOUNTED`].
struct Accounted {
    local_hits: u64,
    remote_hits: u64,
    misses: u64,
    loads: u64,
    load_errors: u64,
    waits: u64,
    stale_served: u64,
    fail_safe: u64,
    refreshes: u64,
    sets: u64,
    decode_errors: u64,
    errors: u64,
}

fn accounting_builder(server: &Server, name: &str) -> flipcache::Builder<String, String> {
    server
        .builder(name)
        .local_max(100)
        .expire_time(Duration::from_secs(120))
        .stale_for(Duration::from_secs(60))
        .fail_safe(true)
        .distributed_lock(Duration::from_secs(10))
}

/// Writes what the scripted mix reads behind the cache's back: `b` (fresh), `s` (within its
/// last 60 s: stale), `bad` (not UTF-8), and another process's lease on `s`.
fn accounting_fixtures(raw: &mut redis::Connection, name: &str) {
    let _: () = raw.set(format!("{name}:b"), "2").unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{name}:s"))
        .arg("old")
        .arg("PX")
        .arg(30_000)
        .query(raw)
        .unwrap();
    let _: () = raw.set(format!("{name}:bad"), &[0xffu8, 0xfe][..]).unwrap();
    let _: () = raw
        .set(format!("__flipcache__:lease:{name}:s"), "someone-else")
        .unwrap();
}

/// Checks every `Stats` field against [`ACCOUNTED`] and every published series against its
/// field. `held` is what the L1 holds, with each value's length (for `local_bytes`).
fn check_accounting(name: &str, s: flipcache::Stats, held: &[(String, usize)]) {
    let a = ACCOUNTED;
    let got = [
        ("local_hits", s.local_hits, a.local_hits),
        ("remote_hits", s.remote_hits, a.remote_hits),
        ("misses", s.misses, a.misses),
        ("loads", s.loads, a.loads),
        ("load_errors", s.load_errors, a.load_errors),
        ("waits", s.waits, a.waits),
        ("stale_served", s.stale_served, a.stale_served),
        ("fail_safe", s.fail_safe, a.fail_safe),
        ("refreshes", s.refreshes, a.refreshes),
        ("sets", s.sets, a.sets),
        ("decode_errors", s.decode_errors, a.decode_errors),
        ("errors", s.errors, a.errors),
        ("evictions", s.evictions, 0),
        ("flushes", s.flushes, 0),
        ("fills_skipped", s.fills_skipped, 0),
        ("invalidations", s.invalidations, 0),
        ("local_entries", s.local_entries, held.len() as u64),
        (
            "local_bytes",
            s.local_bytes,
            held.iter().map(|(_, len)| *len as u64 + 64).sum(),
        ),
    ];
    let wrong: Vec<_> = got.iter().filter(|(_, got, want)| got != want).collect();
    assert!(wrong.is_empty(), "(field, got, expected): {wrong:?}\n{s:?}");

    let c = |series: &str, labels: &[(&str, &str)]| counter(series, name, labels);
    let published = [
        (
            "hits local",
            c("flipcache_hits_total", &[("layer", "local")]),
            s.local_hits,
        ),
        (
            "hits remote",
            c("flipcache_hits_total", &[("layer", "remote")]),
            s.remote_hits,
        ),
        ("misses", c("flipcache_misses_total", &[]), s.misses),
        ("loads", c("flipcache_loads_total", &[]), s.loads),
        (
            "load_errors",
            c("flipcache_load_errors_total", &[]),
            s.load_errors,
        ),
        ("waits", c("flipcache_waits_total", &[]), s.waits),
        (
            "stale_served",
            c("flipcache_stale_served_total", &[]),
            s.stale_served,
        ),
        (
            "fail_safe",
            c("flipcache_fail_safe_total", &[]),
            s.fail_safe,
        ),
        (
            "refreshes",
            c("flipcache_refreshes_total", &[]),
            s.refreshes,
        ),
        ("sets", c("flipcache_sets_total", &[]), s.sets),
        (
            "decode_errors",
            c("flipcache_decode_errors_total", &[]),
            s.decode_errors,
        ),
        (
            "evictions",
            c("flipcache_evictions_total", &[]),
            s.evictions,
        ),
        ("flushes", c("flipcache_flushes_total", &[]), s.flushes),
        (
            "fills_skipped",
            c("flipcache_fills_skipped_total", &[]),
            s.fills_skipped,
        ),
        (
            "invalidations",
            c("flipcache_invalidations_total", &[]),
            s.invalidations,
        ),
        (
            "errors loader",
            c("flipcache_errors_total", &[("kind", "loader")]),
            1,
        ),
        (
            "errors decode",
            c("flipcache_errors_total", &[("kind", "decode")]),
            1,
        ),
        (
            "errors redis+timeout",
            c("flipcache_errors_total", &[("kind", "redis")])
                + c("flipcache_errors_total", &[("kind", "timeout")]),
            1,
        ),
        (
            "errors encode+load_timeout",
            c("flipcache_errors_total", &[("kind", "encode")])
                + c("flipcache_errors_total", &[("kind", "load_timeout")]),
            0,
        ),
    ];
    let wrong: Vec<_> = published
        .iter()
        .filter(|(_, got, want)| got != want)
        .collect();
    assert!(wrong.is_empty(), "(series, published, expected): {wrong:?}");
    assert_eq!(
        gauge("flipcache_local_entries", name),
        Some(s.local_entries as f64)
    );
    assert_eq!(
        gauge("flipcache_local_bytes", name),
        Some(s.local_bytes as f64)
    );
}

/// What the L1 holds, with each value's length (the mix's values are their own encoding).
fn held_values(keys: Vec<String>) -> Vec<(String, usize)> {
    let len = |k: &str| match k {
        "b" | "loaded" | "w" => 1,
        "s" => 3,
        other => panic!("the L1 holds an unexpected key {other}"),
    };
    keys.into_iter()
        .map(|k| (len(&k), k))
        .map(|(l, k)| (k, l))
        .collect()
}

/// The blocking front's accounting, one call at a time: each `Stats` field and each published
/// series counts what `stats.rs` says it counts, once per outcome.
#[test]
fn every_counter_counts_each_outcome_once_blocking() {
    recorder();
    let mut server = Server::start();
    let name = "acct_blocking";
    let cache = accounting_builder(&server, name).build().unwrap();
    let mut raw = server.raw();
    accounting_fixtures(&mut raw, name);

    cache.set("a", "1").unwrap();
    eventually(Duration::from_secs(5), "a in the L1", || {
        cache.local_contains("a")
    });
    for _ in 0..3 {
        assert_eq!(cache.get("a").unwrap().as_deref(), Some("1"));
    }
    assert_eq!(cache.get("b").unwrap().as_deref(), Some("2")); // from Redis
    assert_eq!(cache.get("b").unwrap().as_deref(), Some("2")); // from the L1
    assert_eq!(cache.get("none").unwrap(), None);
    assert_eq!(cache.get_with("loaded", || "3".to_string()).unwrap(), "3");
    let failed = cache.try_get_with("failing", || Err::<String, _>(std::io::Error::other("db")));
    assert!(matches!(failed, Err(LoadError::Loader { .. })));
    assert!(cache.get("bad").unwrap_err().is_decode());
    // Stale: `get` reads it as absent; `get_with` serves it and leaves the refresh to the
    // lease's holder.
    assert_eq!(cache.get("s").unwrap(), None);
    assert_eq!(cache.get_with("s", || "new".to_string()).unwrap(), "old");
    // One load for two callers.
    let cache = &cache;
    std::thread::scope(|t| {
        let slow = || {
            std::thread::sleep(Duration::from_millis(400));
            "4".to_string()
        };
        let first = t.spawn(move || cache.get_with("w", slow).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(cache.get_with("w", || "never".to_string()).unwrap(), "4");
        assert_eq!(first.join().unwrap(), "4");
    });
    assert!(cache.delete("a").unwrap());
    assert_eq!(cache.get("a").unwrap(), None);
    std::thread::sleep(Duration::from_millis(300)); // the refresh of s has given up

    drop(raw);
    server.stop();
    assert!(cache.get("elsewhere").is_err());
    assert_eq!(cache.get("b").unwrap().as_deref(), Some("2")); // fail-safe
    assert_eq!(cache.get_with("b", || "x".to_string()).unwrap(), "2"); // fail-safe

    let held = held_values(cache.local_keys());
    check_accounting(name, cache.stats(), &held);
}

/// [`every_counter_counts_each_outcome_once_blocking`] for the async front.
#[test]
fn every_counter_counts_each_outcome_once_async() {
    recorder();
    let mut server = Server::start();
    let name = "acct_async";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = rt
        .block_on(accounting_builder(&server, name).build_async())
        .unwrap();
    let mut raw = server.raw();
    accounting_fixtures(&mut raw, name);
    rt.block_on(async {
        cache.set("a", "1").await.unwrap();
        eventually(Duration::from_secs(5), "a in the L1", || {
            cache.local_contains("a")
        });
        for _ in 0..3 {
            assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("1"));
        }
        assert_eq!(cache.get("b").await.unwrap().as_deref(), Some("2"));
        assert_eq!(cache.get("b").await.unwrap().as_deref(), Some("2"));
        assert_eq!(cache.get("none").await.unwrap(), None);
        let loaded = cache.get_with("loaded", async { "3".to_string() }).await;
        assert_eq!(loaded.unwrap(), "3");
        let failed = cache
            .try_get_with("failing", async {
                Err::<String, _>(std::io::Error::other("db"))
            })
            .await;
        assert!(matches!(failed, Err(LoadError::Loader { .. })));
        assert!(cache.get("bad").await.unwrap_err().is_decode());
        assert_eq!(cache.get("s").await.unwrap(), None);
        let stale = cache.get_with("s", async { "new".to_string() }).await;
        assert_eq!(stale.unwrap(), "old");
        let slow = cache.get_with("w", async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            "4".to_string()
        });
        let second = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cache.get_with("w", async { "never".to_string() }).await
        };
        let (first, second) = tokio::join!(slow, second);
        assert_eq!((first.unwrap(), second.unwrap()), ("4".into(), "4".into()));
        assert!(cache.delete("a").await.unwrap());
        assert_eq!(cache.get("a").await.unwrap(), None);
        tokio::time::sleep(Duration::from_millis(300)).await;
    });

    drop(raw);
    server.stop();
    rt.block_on(async {
        assert!(cache.get("elsewhere").await.is_err());
        assert_eq!(cache.get("b").await.unwrap().as_deref(), Some("2"));
        let b = cache.get_with("b", async { "x".to_string() }).await;
        assert_eq!(b.unwrap(), "2");
    });

    let held = held_values(cache.local_keys());
    check_accounting(name, cache.stats(), &held);
}
