//! The rough edges a new user hits first, against a real private server: each front's builder
//! builds that front, `set` takes a reference, and `get_many` takes keys as `get` does.

mod support;

use flipcache::{FlipCache, FlipCodec};
use support::Server;

#[derive(Clone, Debug, PartialEq, FlipCodec)]
struct User {
    name: String,
    age: u32,
}

/// `aio::FlipCache::builder(..).build()` is async and gives the async cache (it once gave the
/// blocking one); `FlipCache::builder(..).build()` still gives the blocking one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_front_builder_builds_its_own_front() {
    let server = Server::start();
    let a: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::builder("front_a")
        .redis_url(&server.url())
        .build()
        .await
        .expect("async build");
    a.set(1, 2).await.expect("async set");
    assert_eq!(a.get(&1).await.expect("async get"), Some(2));
    let url = server.url();
    let b = tokio::task::spawn_blocking(move || {
        let b: FlipCache<u64, u64> = FlipCache::builder("front_b")
            .redis_url(&url)
            .build()
            .expect("blocking build");
        b.set(1, 3).expect("set");
        b.get(&1).expect("get")
    })
    .await
    .expect("join");
    assert_eq!(b, Some(3));
}

/// Cache-aside keeps its value: `set(key, &value)` stores a clone, on both fronts.
#[test]
fn set_takes_a_reference() {
    let server = Server::start();
    let c: FlipCache<u64, User> = server.cache("users_ref");
    let user = User {
        name: "ada".into(),
        age: 36,
    };
    c.set(1, &user).expect("set by reference");
    c.set_with_ttl(2, &user, std::time::Duration::from_secs(60))
        .expect("set_with_ttl by reference");
    assert_eq!(c.get(&1).expect("get"), Some(user.clone()));
    assert_eq!(c.get(&2).expect("get"), Some(user.clone()));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let a = c.to_async();
    rt.block_on(async {
        a.set(3, &user).await.expect("async set by reference");
        assert_eq!(a.get(&3).await.expect("get"), Some(user.clone()));
    });
    assert_eq!(user.age, 36, "still ours");
}

/// `get_many` takes borrowed keys as `get` does: `&["a", "b"]` for `String` keys, a `&Vec` of
/// owned keys, or numbers.
#[test]
fn get_many_takes_borrowed_keys() {
    let server = Server::start();
    let c: FlipCache<String, String> = server.cache("many_str");
    c.set("a", "1").expect("set");
    c.set("b", "2").expect("set");
    let want = vec![Some("1".to_owned()), None, Some("2".to_owned())];
    assert_eq!(c.get_many(&["a", "x", "b"]).expect("&str keys"), want);
    let owned = vec!["a".to_owned(), "x".to_owned(), "b".to_owned()];
    assert_eq!(c.get_many(&owned).expect("&Vec<String> keys"), want);
    let n: FlipCache<u64, u64> = server.cache("many_num");
    n.set(1, 10).expect("set");
    assert_eq!(n.get_many(&[1, 2]).expect("numbers"), vec![Some(10), None]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let a = c.to_async();
    rt.block_on(async {
        assert_eq!(a.get_many(&["a", "x", "b"]).await.expect("async"), want);
    });
}
