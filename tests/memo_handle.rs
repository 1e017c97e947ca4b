//! `<fn>_cache()`: a memoized function's cache as a `MemoCache<A, V>` typed by the function's
//! arguments (`flipcache::aio::MemoCache` for an `async fn`), against a real private server:
//! its typed reads see what the function stored, its writes are what the function returns,
//! and its untyped escape hatch sees the same Redis keys.

mod support;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flipcache::{FlipCache, Loaded, MemoCache, flipcache};
use redis::Commands;
use support::Server;

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

// ---- several arguments, one of them `&str` -------------------------------------------------

static GREET_URL: OnceLock<String> = OnceLock::new();
static GREET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_handle_greet", expire_time = 60, redis = GREET_URL.get())]
fn greet(name: &str, times: u32) -> String {
    GREET_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("hi {name}").repeat(times as usize)
}

/// `A` is the owned tuple `(String, u32)`: `get` reads what a call stored, `invalidate` makes
/// the body run again, `set` is what the next call returns, and the untyped cache and Redis
/// hold the same key.
#[test]
fn a_handle_over_several_arguments_reads_and_writes_what_calls_see() {
    let server = Server::start();
    GREET_URL.set(server.url()).expect("one test");
    let cache: MemoCache<(String, u32), String> = greet_cache().expect("cache");
    let bob = ("bob".to_string(), 2);
    assert_eq!(cache.get(&bob).expect("get"), None);
    assert!(!cache.contains(&bob).expect("contains"));

    assert_eq!(greet("bob", 2), "hi bobhi bob");
    assert_eq!(runs(&GREET_RUNS), 1);
    assert_eq!(
        cache.get(&bob).expect("get").as_deref(),
        Some("hi bobhi bob")
    );
    assert!(cache.contains(&bob).expect("contains"));
    assert!(cache.local_contains(&bob));
    assert_eq!(cache.get(&("bob".into(), 3)).expect("get"), None);
    assert_eq!(runs(&GREET_RUNS), 1, "the handle never runs the body");

    // The keys: as a call writes them, escaped, and the same in Redis and untyped.
    assert_eq!(cache.key(&bob), "bob,2");
    assert_eq!(cache.key(&("a,b".into(), 1)), r"a\,b,1");
    assert_eq!(cache.redis_key(&bob), "t_handle_greet:bob,2");
    let mut raw = server.raw();
    let stored: Option<String> = raw.get(cache.redis_key(&bob)).expect("raw get");
    assert_eq!(stored.as_deref(), Some("hi bobhi bob"));
    let untyped: &FlipCache<String, String> = cache.untyped();
    assert_eq!(
        untyped.get(cache.key(&bob).as_str()).expect("untyped get"),
        Some("hi bobhi bob".into())
    );
    assert_eq!(untyped.keys().expect("keys"), vec!["bob,2".to_string()]);
    let left = cache.ttl(&bob).expect("ttl").expect("a TTL");
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(60),
        "{left:?}"
    );

    // `invalidate`: gone from Redis and the L1, so the body runs again.
    assert!(cache.invalidate(&bob).expect("invalidate"));
    assert!(!cache.invalidate(&bob).expect("invalidate"), "already gone");
    assert!(
        !raw.exists::<_, bool>("t_handle_greet:bob,2")
            .expect("exists")
    );
    assert_eq!(greet("bob", 2), "hi bobhi bob");
    assert_eq!(runs(&GREET_RUNS), 2);

    // `set`: the function returns it without running the body, in Redis as a call stores it.
    let ann = ("ann".to_string(), 1);
    cache.set(&ann, "hello ann".to_string()).expect("set");
    assert_eq!(greet("ann", 1), "hello ann");
    assert_eq!(runs(&GREET_RUNS), 2);
    let stored: Option<String> = raw.get("t_handle_greet:ann,1").expect("raw get");
    assert_eq!(stored.as_deref(), Some("hello ann"));
    assert!(
        cache.ttl(&ann).expect("ttl").is_some(),
        "the function's TTL"
    );

    // A `Loaded` chooses its entry's TTL.
    let short = ("eve".to_string(), 1);
    cache
        .set(
            &short,
            Loaded::new("x".to_string()).ttl(Duration::from_secs(5)),
        )
        .expect("set");
    let left = cache.ttl(&short).expect("ttl").expect("a TTL");
    assert!(left <= Duration::from_secs(5), "{left:?}");

    // The whole-cache operations.
    assert_eq!(cache.name(), "t_handle_greet");
    assert_eq!(cache.expire_time(), Some(Duration::from_secs(60)));
    assert_eq!(cache.len().expect("len"), 3);
    assert!(cache.stats().misses >= 2, "{:?}", cache.stats());
    assert_eq!(cache.clear().expect("clear"), 3);
    assert!(cache.is_empty().expect("is_empty"));
    assert_eq!(cache.local_len(), 0);
    assert_eq!(greet("ann", 1), "hi ann");
    assert_eq!(runs(&GREET_RUNS), 3);
}

// ---- one `&str` argument, no argument --------------------------------------------------------

static WORD_URL: OnceLock<String> = OnceLock::new();
static WORD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_handle_shout", redis = WORD_URL.get())]
fn shout(word: &str) -> String {
    WORD_RUNS.fetch_add(1, Ordering::SeqCst);
    word.to_uppercase()
}

#[flipcache(name = "t_handle_config", redis = WORD_URL.get())]
fn config() -> u64 {
    WORD_RUNS.fetch_add(1, Ordering::SeqCst);
    7
}

/// One argument is `A` itself, `&str` being `str` (`get("hey")`); no argument is `()`.
#[test]
fn one_str_argument_is_str_and_none_is_the_unit() {
    let server = Server::start();
    WORD_URL.set(server.url()).expect("one test");
    let cache: MemoCache<str, String> = shout_cache().expect("cache");
    assert_eq!(shout("a,b"), "A,B");
    assert_eq!(cache.get("a,b").expect("get").as_deref(), Some("A,B"));
    assert_eq!(
        cache.redis_key("a,b"),
        "t_handle_shout:a,b",
        "one string as it is"
    );
    cache.set("hey", "HEY!".to_string()).expect("set");
    assert_eq!(shout("hey"), "HEY!");
    assert_eq!(runs(&WORD_RUNS), 1);
    assert!(cache.invalidate("a,b").expect("invalidate"));
    assert_eq!(shout("a,b"), "A,B");
    assert_eq!(runs(&WORD_RUNS), 2);

    let cache: MemoCache<(), u64> = config_cache().expect("cache");
    assert_eq!(cache.redis_key(&()), "t_handle_config:");
    assert_eq!(cache.get(&()).expect("get"), None);
    cache.set(&(), 8).expect("set");
    assert_eq!(config(), 8);
    assert_eq!(runs(&WORD_RUNS), 2);
    assert!(cache.invalidate(&()).expect("invalidate"));
    assert_eq!(config(), 7);
    assert_eq!(runs(&WORD_RUNS), 3);
}

// ---- `key = ...` and `tags = [...]` ------------------------------------------------------------

static KEYED_URL: OnceLock<String> = OnceLock::new();
static KEYED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Neither `Clone` nor `MemoKey`: only the body reads it.
struct Db {
    base: u64,
}

#[flipcache(name = "t_handle_stock", key = sku, redis = KEYED_URL.get())]
fn stock(db: &Db, sku: u32) -> u64 {
    KEYED_RUNS.fetch_add(1, Ordering::SeqCst);
    db.base + u64::from(sku)
}

#[flipcache(name = "t_handle_edge", key = format!("{a}+{b}"), redis = KEYED_URL.get())]
fn edge(a: u32, b: &str, verbose: bool) -> String {
    KEYED_RUNS.fetch_add(1, Ordering::SeqCst);
    if verbose {
        format!("{a} and {b}")
    } else {
        format!("{a}{b}")
    }
}

#[flipcache(name = "t_handle_profile", key = id, tags = ["org:{org}"], redis = KEYED_URL.get())]
fn profile(id: u64, org: &str) -> String {
    KEYED_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{id}@{org}")
}

static CAST_URL: OnceLock<String> = OnceLock::new();

/// An argument taken by value, neither `Copy` nor `Clone`.
struct Point {
    x: i32,
    label: String,
}

#[flipcache(name = "t_handle_cast", key = (i64::from(n) * 2, p.x as i64 + n as i64, p.label.as_str()), redis = CAST_URL.get())]
fn cast(n: i32, p: Point) -> String {
    format!("{}{}", p.label, n + p.x)
}

/// A key expression over arguments taken by value means in the handle what it means in the
/// function (`i64::from(n)`, casts, fields of a value that is not `Clone`).
#[test]
fn a_key_over_arguments_taken_by_value_reads_them_as_the_call_does() {
    let server = Server::start();
    CAST_URL.set(server.url()).expect("one test");
    let cache: MemoCache<(i32, Point), String> = cast_cache().expect("cache");
    let p = || Point {
        x: 1,
        label: "a,b".into(),
    };
    assert_eq!(cast(3, p()), "a,b4");
    assert_eq!(cache.key(&(3, p())), r"6,4,a\,b");
    assert_eq!(cache.get(&(3, p())).expect("get").as_deref(), Some("a,b4"));
    cache.set(&(5, p()), "primed".to_string()).expect("set");
    assert_eq!(cast(5, p()), "primed");
}

/// With `key = ...`, `A` holds the arguments the key and the tags read (a database handle
/// stays out), and the handle's key is the call's; `set` tags the entry as a call does.
#[test]
fn with_a_key_expression_the_handle_takes_the_keyed_arguments() {
    let server = Server::start();
    KEYED_URL.set(server.url()).expect("one test");
    let db = Db { base: 100 };
    let cache: MemoCache<u32, u64> = stock_cache().expect("cache");
    assert_eq!(stock(&db, 7), 107);
    assert_eq!(cache.get(&7).expect("get"), Some(107));
    assert_eq!(cache.redis_key(&7), "t_handle_stock:7");
    cache.set(&8, 1).expect("set");
    assert_eq!(stock(&db, 8), 1);
    assert_eq!(runs(&KEYED_RUNS), 1);

    let cache: MemoCache<(u32, String), String> = edge_cache().expect("cache");
    assert_eq!(edge(1, "x", true), "1 and x");
    assert_eq!(cache.redis_key(&(1, "x".into())), "t_handle_edge:1+x");
    assert_eq!(
        cache.get(&(1, "x".into())).expect("get").as_deref(),
        Some("1 and x")
    );
    assert_eq!(
        edge(1, "x", false),
        "1 and x",
        "`verbose` is not in the key"
    );
    assert_eq!(runs(&KEYED_RUNS), 2);

    let cache: MemoCache<(u64, String), String> = profile_cache().expect("cache");
    assert_eq!(profile(1, "acme"), "1@acme");
    cache
        .set(&(2, "acme".into()), "primed".to_string())
        .expect("set");
    assert_eq!(cache.redis_key(&(2, "acme".into())), "t_handle_profile:2");
    assert_eq!(profile(2, "acme"), "primed");
    assert_eq!(runs(&KEYED_RUNS), 3);
    assert_eq!(cache.remove_by_tag("org:acme").expect("remove_by_tag"), 2);
    assert_eq!(cache.get(&(2, "acme".into())).expect("get"), None);
    assert_eq!(profile(2, "acme"), "2@acme");
    assert_eq!(runs(&KEYED_RUNS), 4);
}

// ---- slices, nested references, raw names ---------------------------------------------------

static SLICE_URL: OnceLock<String> = OnceLock::new();
static SLICE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_handle_total", redis = SLICE_URL.get())]
fn total(items: &[u32], scale: Option<u8>) -> u64 {
    SLICE_RUNS.fetch_add(1, Ordering::SeqCst);
    items.iter().map(|&i| u64::from(i)).sum::<u64>() * u64::from(scale.unwrap_or(1))
}

#[flipcache(name = "t_handle_join", redis = SLICE_URL.get())]
fn join<'a>(words: &'a [&'a str]) -> String {
    SLICE_RUNS.fetch_add(1, Ordering::SeqCst);
    words.join("-")
}

#[flipcache(name = "t_handle_raw", redis = SLICE_URL.get())]
fn kind(r#type: &str, mut n: u8) -> String {
    SLICE_RUNS.fetch_add(1, Ordering::SeqCst);
    n += 1;
    format!("{type}{n}")
}

/// `&[T]` is `Vec<T>` in a tuple and `[T]` alone; references inside an argument's type are
/// `'static`; raw and `mut` argument names work.
#[test]
fn slices_nested_references_and_raw_names() {
    let server = Server::start();
    SLICE_URL.set(server.url()).expect("one test");
    let cache: MemoCache<(Vec<u32>, Option<u8>), u64> = total_cache().expect("cache");
    assert_eq!(total(&[1, 2], None), 3);
    assert_eq!(
        cache.redis_key(&(vec![1, 2], None)),
        "t_handle_total:[1,2],~"
    );
    assert_eq!(cache.get(&(vec![1, 2], None)).expect("get"), Some(3));
    assert_eq!(cache.get(&(vec![1, 2], Some(1))).expect("get"), None);

    let cache: MemoCache<[&'static str], String> = join_cache().expect("cache");
    let words = ["a", "b,c"];
    assert_eq!(join(&words), "a-b,c");
    assert_eq!(cache.redis_key(&words[..]), r"t_handle_join:[a,b\,c]");
    assert_eq!(
        cache.get(&words[..]).expect("get").as_deref(),
        Some("a-b,c")
    );
    cache.set(&["x"][..], "primed".to_string()).expect("set");
    assert_eq!(join(&["x"]), "primed");

    let cache: MemoCache<(String, u8), String> = kind_cache().expect("cache");
    assert_eq!(kind("t", 1), "t2");
    assert_eq!(
        cache.get(&("t".into(), 1)).expect("get").as_deref(),
        Some("t2")
    );
    assert_eq!(runs(&SLICE_RUNS), 3);
}

// ---- methods -------------------------------------------------------------------------------

static SHOP_URL: OnceLock<String> = OnceLock::new();
static SHOP_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Shop {
    region: String,
}

impl Shop {
    #[flipcache(name = "t_handle_price", redis = SHOP_URL.get())]
    fn price(&self, sku: &str, qty: u32) -> u64 {
        SHOP_RUNS.fetch_add(1, Ordering::SeqCst);
        sku.len() as u64 * u64::from(qty)
    }

    #[flipcache(name = "t_handle_tax", in_impl, redis = SHOP_URL.get())]
    fn tax(cents: u64) -> u64 {
        SHOP_RUNS.fetch_add(1, Ordering::SeqCst);
        cents / 5
    }

    #[flipcache(name = "t_handle_local", key = (self.region.as_str(), sku), redis = SHOP_URL.get())]
    fn local_stock(&self, sku: u32) -> u64 {
        SHOP_RUNS.fetch_add(1, Ordering::SeqCst);
        u64::from(sku) + self.region.len() as u64
    }
}

/// In an `impl` block `<fn>_cache()` is an associated function; the receiver is not part of
/// `A`, and a key that reads `self` makes `A` the key's text.
#[test]
fn methods_have_handles_too() {
    let server = Server::start();
    SHOP_URL.set(server.url()).expect("one test");
    let shop = Shop {
        region: "eu".into(),
    };
    let cache: MemoCache<(String, u32), u64> = Shop::price_cache().expect("cache");
    assert_eq!(shop.price("abc", 2), 6);
    assert_eq!(cache.get(&("abc".into(), 2)).expect("get"), Some(6));
    cache.set(&("abc".into(), 3), 1).expect("set");
    assert_eq!(shop.price("abc", 3), 1);
    assert_eq!(runs(&SHOP_RUNS), 1);

    let cache: MemoCache<u64, u64> = Shop::tax_cache().expect("cache");
    assert_eq!(Shop::tax(100), 20);
    assert_eq!(cache.get(&100).expect("get"), Some(20));
    assert!(cache.invalidate(&100).expect("invalidate"));
    assert_eq!(Shop::tax(100), 20);
    assert_eq!(runs(&SHOP_RUNS), 3);

    let cache: MemoCache<str, u64> = Shop::local_stock_cache().expect("cache");
    assert_eq!(shop.local_stock(7), 9);
    assert_eq!(cache.get("eu,7").expect("get"), Some(9));
    assert_eq!(cache.redis_key("eu,7"), "t_handle_local:eu,7");
    cache.set("eu,8", 0).expect("set");
    assert_eq!(shop.local_stock(8), 0);
    assert_eq!(runs(&SHOP_RUNS), 4);
}

// ---- async -----------------------------------------------------------------------------------

static ASYNC_URL: OnceLock<String> = OnceLock::new();
static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_handle_area", redis = ASYNC_URL.get())]
async fn area(w: u32, label: &str) -> String {
    ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{label}:{}", w * w)
}

struct Catalog;

impl Catalog {
    #[flipcache(name = "t_handle_async_price", redis = ASYNC_URL.get())]
    async fn price(&self, sku: &str) -> Option<u64> {
        ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
        Some(sku.len() as u64)
    }
}

/// The async handle: the same operations, awaited, and a blocking twin on the same cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_function_has_an_async_handle() {
    let server = Server::start();
    ASYNC_URL.set(server.url()).expect("one test");
    let cache: flipcache::aio::MemoCache<(u32, String), String> =
        area_cache().await.expect("cache");
    let sq = (3, "sq".to_string());
    assert_eq!(cache.get(&sq).await.expect("get"), None);
    assert_eq!(area(3, "sq").await, "sq:9");
    assert_eq!(cache.get(&sq).await.expect("get").as_deref(), Some("sq:9"));
    assert!(cache.contains(&sq).await.expect("contains"));
    assert_eq!(cache.redis_key(&sq), "t_handle_area:3,sq");
    assert_eq!(
        cache.untyped().get("3,sq").await.expect("untyped get"),
        Some("sq:9".into())
    );
    assert!(cache.invalidate(&sq).await.expect("invalidate"));
    assert_eq!(area(3, "sq").await, "sq:9");
    assert_eq!(runs(&ASYNC_RUNS), 2);
    cache
        .set(&(4, "sq".into()), "sixteen".to_string())
        .await
        .expect("set");
    assert_eq!(area(4, "sq").await, "sixteen");
    assert_eq!(runs(&ASYNC_RUNS), 2);
    assert_eq!(
        cache.ttl(&sq).await.expect("ttl"),
        None,
        "no TTL configured"
    );
    assert_eq!(cache.len().await.expect("len"), 2);
    let blocking: MemoCache<(u32, String), String> = cache.to_blocking();
    let got = tokio::task::spawn_blocking(move || blocking.get(&(4, "sq".into())))
        .await
        .expect("join")
        .expect("get");
    assert_eq!(got.as_deref(), Some("sixteen"));
    assert_eq!(cache.clear().await.expect("clear"), 2);
    assert!(cache.is_empty().await.expect("is_empty"));

    // An async method: `Catalog::price_cache().await`, keyed by `sku` alone.
    let cache: flipcache::aio::MemoCache<str, u64> = Catalog::price_cache().await.expect("cache");
    assert_eq!(Catalog.price("abc").await, Some(3));
    assert_eq!(cache.get("abc").await.expect("get"), Some(3));
    cache.set("xyz", 9).await.expect("set");
    assert_eq!(Catalog.price("xyz").await, Some(9));
    assert_eq!(runs(&ASYNC_RUNS), 3);
}
