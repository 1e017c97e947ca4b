//! ACL users that follow the usual hardening (`+@all -@dangerous`), against real private
//! servers: the cache needs no `@dangerous` command (`INFO` included), keeps coherent, and a
//! command the user may not run fails with an error naming that command, the cache and the key.

mod support;

use std::time::Duration;

use flipcache::{Error, FlipCache};
use redis::Commands;
use support::{Server, eventually};

/// Creates the ACL user `name` (password `pw`) with `rules` on `server`, and gives its URL.
fn user(server: &Server, name: &str, rules: &[&str]) -> String {
    let mut args = vec!["SETUSER", name, "on", ">pw", "~*", "&*"];
    args.extend_from_slice(rules);
    let _: () = redis::cmd("ACL")
        .arg(&args)
        .query(&mut server.raw())
        .expect("ACL SETUSER");
    format!("redis://{name}:pw@127.0.0.1:{}", server.port())
}

/// `+@all -@dangerous`: building, reads (blocking and async), writes, batches, TTLs, tags,
/// scans and coherence with another client's writes all work.
#[test]
fn a_user_without_dangerous_commands_uses_every_feature() {
    let server = Server::start();
    let url = user(&server, "app", &["+@all", "-@dangerous"]);
    let c: FlipCache<String, String> = FlipCache::builder("hardened")
        .tracking(support::tracking())
        .redis_url(&url)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a +@all -@dangerous user can build a cache");
    c.set("k", "v").expect("set");
    assert_eq!(c.get("k").expect("get").as_deref(), Some("v"));
    assert_eq!(c.get("missing").expect("a miss"), None);
    c.set_with_ttl("t", "v", Duration::from_secs(60))
        .expect("set_with_ttl");
    assert!(c.ttl("t").expect("ttl").is_some());
    assert!(c.refresh("t").expect("refresh"));
    c.set_many([("a", "1"), ("b", "2")]).expect("set_many");
    assert_eq!(
        c.get_many(&["a".to_owned(), "b".to_owned()])
            .expect("get_many"),
        vec![Some("1".to_owned()), Some("2".to_owned())]
    );
    c.set_with_tags("tagged", "v", ["group"])
        .expect("set_with_tags");
    assert_eq!(c.remove_by_tag("group").expect("remove_by_tag"), 1);
    assert!(c.contains("k").expect("contains"));
    assert!(c.delete("k").expect("delete"));
    assert!(c.len().expect("len (SCAN)") >= 3);

    // Coherence: another client's write reaches the L1.
    c.set("shared", "mine").expect("set");
    assert_eq!(c.get("shared").expect("get").as_deref(), Some("mine"));
    support::read_until_held(&c, "shared", "mine");
    let before = c.stats().invalidations;
    let _: () = server
        .raw()
        .set("hardened:shared", "theirs")
        .expect("raw set");
    eventually(
        Duration::from_secs(5),
        "an invalidation for the user",
        || c.stats().invalidations > before,
    );
    assert_eq!(c.get("shared").expect("get").as_deref(), Some("theirs"));
    assert!(c.clear().expect("clear (SCAN + UNLINK)") >= 3);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let a = FlipCache::<u64, u64>::builder("hardened_async")
            .tracking(support::tracking())
            .redis_url(&url)
            .build_async()
            .await
            .expect("async build");
        a.set(1, 2).await.expect("async set");
        assert_eq!(a.get(&1).await.expect("async get"), Some(2));
    });
}

/// A command the user may not run fails the call with an error that names the command, the
/// cache and the key, not redis-rs's "Pipeline failure: [(Index 1, ...)]".
#[test]
fn a_refused_command_is_named_with_the_cache_and_the_key() {
    let server = Server::start();
    let url = user(&server, "nopttl", &["+@all", "-@dangerous", "-pttl"]);
    let c: FlipCache<String, String> = FlipCache::builder("refusing")
        .tracking(flipcache::Tracking::Broadcast)
        .redis_url(&url)
        .build()
        .expect("build");
    let _: () = server.raw().set("refusing:k", "v").expect("raw set");
    // An L1 read asks for `GET` + `PTTL` (to bound the local copy by the Redis TTL).
    let err = c.get("k").expect_err("PTTL is refused");
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    // The error names the cache and the key; its source, Redis's refusal, names the command
    // (as a reporter such as `anyhow` prints it: the message, then each cause once).
    let text = chain(&err);
    assert!(text.contains("`PTTL`"), "{text}");
    assert_eq!(text.matches("`PTTL`").count(), 1, "{text}");
    // The same through a batch (`get_many`: one pipeline of `GET` + `PTTL` per key).
    let batch_err = c.get_many(&["k", "other"]).expect_err("PTTL is refused");
    let batch = chain(&batch_err);
    assert!(batch.contains("`PTTL`"), "{batch}");
    assert!(batch.contains("refusing"), "{batch}");
    assert!(!batch.contains("Pipeline failure"), "{batch}");
    assert!(text.contains("refusing"), "{text}");
    assert_eq!(err.key(), Some("refusing:k"));
    assert!(!text.contains("Pipeline failure"), "{text}");
}

/// An error as a reporter such as `anyhow` prints it: the message, then each cause once.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
