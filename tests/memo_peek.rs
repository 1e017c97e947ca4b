//! `<fn>_peek(args)`: a memoized function's stored result, looked up by the function's own
//! arguments (a shortcut for `<fn>_cache()?.get(&args)`, which `tests/memo_handle.rs`
//! covers), against a real private server.

mod support;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use flipcache::flipcache;
use support::Server;

static SYNC_URL: OnceLock<String> = OnceLock::new();
static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_peek", redis = SYNC_URL.get())]
fn area(w: u32, label: &str) -> String {
    SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{label}:{}", w * w)
}

/// Before a call nothing is stored; after it, `_peek` gives the result for those arguments
/// only, without running the body; `_invalidate` removes it again.
#[test]
fn peek_reads_the_result_for_these_arguments() {
    let server = Server::start();
    SYNC_URL.set(server.url()).expect("one test");
    assert_eq!(area_peek(3, "sq").expect("peek"), None);
    assert_eq!(area(3, "sq"), "sq:9");
    let runs = SYNC_RUNS.load(Ordering::SeqCst);
    assert_eq!(area_peek(3, "sq").expect("peek").as_deref(), Some("sq:9"));
    assert_eq!(area_peek(4, "sq").expect("peek"), None, "other arguments");
    assert_eq!(
        area_peek(3, "other").expect("peek"),
        None,
        "other arguments"
    );
    assert_eq!(
        SYNC_RUNS.load(Ordering::SeqCst),
        runs,
        "peek never runs the body"
    );
    // What another process stored is seen too: the entry is in Redis.
    let raw: Vec<String> = redis::cmd("KEYS")
        .arg("t_peek:*")
        .query(&mut server.raw())
        .expect("keys");
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert!(area_invalidate(3, "sq").expect("invalidate"));
    assert_eq!(area_peek(3, "sq").expect("peek"), None);
}

static ASYNC_URL: OnceLock<String> = OnceLock::new();

#[flipcache(name = "t_peek_async", redis = ASYNC_URL.get())]
async fn twice(n: u64) -> u64 {
    n * 2
}

/// The async form: `_peek(args).await`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_of_an_async_function() {
    let server = Server::start();
    ASYNC_URL.set(server.url()).expect("one test");
    assert_eq!(twice_peek(5).await.expect("peek"), None);
    assert_eq!(twice(5).await, 10);
    assert_eq!(twice_peek(5).await.expect("peek"), Some(10));
}
