//! Keys out of traces by default (issue #27): every span and event the crate makes, at
//! `TRACE`, during reads, loads, writes, deletes, tags, a lease, a skipped fill, an undecodable
//! entry and calls that fail, carries the cache's name and no raw key, unless the cache was
//! built with `trace_keys(true)`.

mod support;

use std::time::Duration;

use flipcache::FlipCache;
use redis::Commands;
use support::Server;
use tracing::Level;

/// Everything a service does with a cache, on keys that hold `secret`.
fn exercise(server: &mut Server, name: &str, secret: &str, trace_keys: bool) {
    let cache: FlipCache<String, String> = server
        .builder(name)
        .trace_keys(trace_keys)
        .decode_errors_as_misses(true)
        .distributed_lock(Duration::from_secs(5))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let k = |n: u32| format!("{secret}-{n}");
    assert_eq!(cache.get(&k(1)).unwrap(), None);
    assert_eq!(cache.get_with(&k(2), || "v".to_string()).unwrap(), "v");
    cache.set(k(3), "v").unwrap();
    assert!(cache.delete(&k(3)).unwrap());
    cache.set_with_tags(k(4), "v", ["t"]).unwrap();
    assert_eq!(cache.remove_by_tag("t").unwrap(), 1);
    // An entry that does not decode: read as absent, with a warning.
    let _: () = server
        .raw()
        .set(format!("{name}:{}", k(5)), vec![0xffu8, 0xfe])
        .unwrap();
    let bytes: FlipCache<String, u64> = server
        .builder(name)
        .trace_keys(trace_keys)
        .decode_errors_as_misses(true)
        .build()
        .unwrap();
    assert_eq!(bytes.get(&k(5)).unwrap(), None);
    // A fill skipped: the key written while its loader ran.
    let (c, key, rkey) = (cache.clone(), k(6), format!("{name}:{}", k(6)));
    let (tx, rx) = std::sync::mpsc::channel();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let load = std::thread::spawn(move || {
        c.get_with(&key, move || {
            tx.send(()).unwrap();
            wait.recv().unwrap();
            "old".to_string()
        })
    });
    rx.recv().unwrap();
    let _: () = server.raw().set(rkey, "new").unwrap();
    go.send(()).unwrap();
    load.join().unwrap().unwrap();
    assert_eq!(cache.stats().fills_skipped, 1);
    // Redis gone: the loader's value, with a warning that says why; a plain read fails.
    server.stop();
    assert_eq!(cache.get_with(&k(7), || "v".to_string()).unwrap(), "v");
    assert!(cache.get(&k(8)).is_err());
    let err = cache.get(&k(9)).unwrap_err();
    assert_eq!(
        err.key(),
        Some(format!("{name}:{}", k(9)).as_str()),
        "the caller's error names the key either way"
    );
    server.restart();
}

#[test]
fn spans_and_log_lines_name_no_key_unless_asked() {
    support::capture::install_at(Level::TRACE);
    let mut server = Server::start();
    let secret = "alice@example.com";
    exercise(&mut server, "tk_off", secret, false);
    let leaks = support::capture::mentioning(secret);
    assert!(
        support::capture::captured() > 20,
        "spans and events were captured"
    );
    assert!(leaks.is_empty(), "keys in traces: {leaks:#?}");
    assert!(
        !support::capture::mentioning("cache=tk_off").is_empty(),
        "they name the cache"
    );

    let shown = "bob@example.com";
    exercise(&mut server, "tk_on", shown, true);
    let named = support::capture::mentioning(shown);
    for what in [
        "span flipcache.redis",
        "span flipcache.load",
        "does not decode",
        "fill was skipped",
        "Redis is unavailable to loads",
    ] {
        assert!(
            named.iter().any(|l| l.contains(what)),
            "with trace_keys(true), `{what}` names the key: {named:#?}"
        );
    }
}

static MEMO_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[flipcache::flipcache(name = "tk_memo_off", redis = MEMO_URL.get())]
fn profile_quiet(email: &str) -> String {
    format!("profile of {email}")
}

#[flipcache::flipcache(name = "tk_memo_on", redis = MEMO_URL.get(), trace_keys)]
fn profile_traced(email: &str) -> String {
    format!("profile of {email}")
}

/// A memoized function's spans name no key either, unless it says `trace_keys`.
#[test]
fn memoized_functions_name_keys_only_with_trace_keys() {
    support::capture::install_at(Level::TRACE);
    let server = Server::start();
    MEMO_URL.set(server.url()).unwrap();
    let quiet = "carol@example.org";
    assert_eq!(profile_quiet(quiet), format!("profile of {quiet}"));
    assert!(
        support::capture::mentioning(quiet).is_empty(),
        "keys in traces: {:#?}",
        support::capture::mentioning(quiet)
    );
    assert!(!support::capture::mentioning("cache=tk_memo_off").is_empty());
    let traced = "dave@example.org";
    assert_eq!(profile_traced(traced), format!("profile of {traced}"));
    let named = support::capture::mentioning(traced);
    assert!(
        named.iter().any(|l| l.contains("span flipcache.redis")),
        "with trace_keys, the round trips name the key: {named:#?}"
    );
}
