//! Timeouts on a shared connection, against real private servers and raw TCP listeners: each
//! cache's own timeouts are honoured whichever cache was built first for the endpoint, a
//! server that never answers gives `Error::Timeout`, a blocking miss against a paused server
//! returns within one timeout, and a server that is down is retried with backoff rather than on
//! every call. Each test fails if the cache does nothing about it.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flipcache::FlipCache;
use support::Server;

/// A TCP listener on a free port that accepts every connection, counts it, and then either
/// never answers (the connection is held open) or closes it at once.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    fn start(answer: bool) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                if answer {
                    let _ = stream.shutdown(Shutdown::Both);
                } else {
                    held.push(stream);
                }
            }
        });
        Listener { port, accepted }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A proxy to `server` that holds every new connection `delay` before passing bytes on: a
/// slow handshake that does complete.
fn slow_proxy(server: &Server, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let target = format!("127.0.0.1:{}", server.port());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let target = target.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let Ok(upstream) = TcpStream::connect(&target) else {
                    return;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                };
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                    return;
                };
                pipe(client, u2);
                pipe(upstream, c2);
            });
        }
    });
    format!("redis://127.0.0.1:{port}")
}

/// A server that accepts and never answers: `build()` fails with `Error::Timeout`
/// (`is_timeout()`), the first time as every later time, within about its timeouts.
#[test]
fn a_server_that_never_answers_gives_timeouts_from_the_first_build() {
    let silent = Listener::start(false);
    for (attempt, (timeout, connect)) in [(1000, 200), (200, 1000), (300, 300)].iter().enumerate() {
        let start = Instant::now();
        let err = FlipCache::<u64, u64>::builder(format!("silent{attempt}"))
            .redis_url(&silent.url())
            .timeout(Duration::from_millis(*timeout))
            .connect_timeout(Duration::from_millis(*connect))
            .build()
            .expect_err("nothing answers");
        assert!(err.is_timeout(), "attempt {attempt}: {err:?}");
        // Not a hang (a generous bound: this machine may be busy).
        assert!(
            start.elapsed() < Duration::from_millis(*timeout.max(connect) * 3),
            "attempt {attempt} took {:?}",
            start.elapsed()
        );
    }
}

/// A cache with a short connect timeout built first for an endpoint does not impose it on a
/// later cache with a longer one: through a proxy that holds a new connection 400 ms, the
/// second cache (connect timeout 3 s) connects; the first one's calls still return within its
/// own timeout meanwhile.
#[test]
fn two_caches_on_one_endpoint_keep_their_own_connect_timeouts() {
    let server = Server::start();
    let url = slow_proxy(&server, Duration::from_millis(400));
    let quick = FlipCache::<u64, u64>::builder("quick")
        .redis_url(&url)
        .timeout(Duration::from_millis(150))
        .connect_timeout(Duration::from_millis(100))
        .lazy_connect(true)
        .build()
        .expect("lazy build");
    let start = Instant::now();
    let err = quick.get(&1).expect_err("the proxy is slower than 100 ms");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    let patient = FlipCache::<u64, u64>::builder("patient")
        .redis_url(&url)
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .expect("a 3 s connect timeout outlasts a 400 ms handshake");
    patient.set(1, 7).expect("set");
    assert_eq!(patient.get(&1).expect("get"), Some(7));
    quick.set(1, 8).expect("the shared connection is up");
    assert_eq!(quick.get(&1).expect("get"), Some(8));
}

/// A blocking miss against a paused server (`CLIENT PAUSE`) returns `Error::Timeout` after
/// about one timeout (the `GET`+`PTTL` pipeline once waited a full socket timeout per reply).
#[test]
fn a_blocking_miss_against_a_paused_server_takes_one_timeout() {
    let server = Server::start();
    let timeout = Duration::from_millis(400);
    let c = server
        .builder::<String, String>("pausedmiss")
        .timeout(timeout)
        .build()
        .expect("build");
    // Misses through the blocking read pool (made in the background on the first miss).
    for i in 0..20 {
        assert_eq!(c.get(&format!("warm{i}")).expect("get"), None);
        std::thread::sleep(Duration::from_millis(10));
    }
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query(&mut server.raw())
        .expect("pause");
    let start = Instant::now();
    let err = c.get(&"missing".to_owned()).expect_err("paused");
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.key(), Some("pausedmiss:missing"));
    // The message says how long the call waited, against the configured limit, truthfully.
    let flipcache::Error::Timeout { after, elapsed, .. } = &err else {
        unreachable!()
    };
    assert_eq!(*after, timeout);
    assert!(
        *elapsed <= took && *elapsed >= timeout * 3 / 4,
        "{elapsed:?} of {took:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("gave up after {} ms", elapsed.as_millis()))
            && message.contains("(timeout 400 ms)"),
        "{message}"
    );
    // About 1x (once 2x: one socket timeout per reply), with room for a busy machine.
    assert!(
        took < timeout * 7 / 4,
        "a miss took {took:?} with a {timeout:?} timeout"
    );
}

/// While Redis is unreachable, calls fail fast and do not each start a connection attempt:
/// failed reconnects are spaced, by at most 25 ms.
#[test]
fn an_unreachable_server_is_retried_with_backoff() {
    let closing = Listener::start(true);
    let c = FlipCache::<u64, u64>::builder("backoff")
        .redis_url(&closing.url())
        .timeout(Duration::from_millis(500))
        .lazy_connect(true)
        .build()
        .expect("lazy build");
    let before = closing.accepted();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(500) {
        let call = Instant::now();
        assert!(c.get(&1).is_err(), "nothing answers");
        assert!(
            call.elapsed() < Duration::from_millis(1500),
            "{:?}",
            call.elapsed()
        );
        calls += 1;
    }
    let attempts = closing.accepted() - before;
    assert!(
        calls > 50,
        "only {calls} calls in 500 ms: calls do not fail fast"
    );
    // Spaced by the backoff (5 ms doubling to 25 ms): about 20 in 500 ms, however many calls;
    // and never fewer than one per 50 ms, so a server that answers again is soon in use.
    assert!(
        attempts <= 30,
        "{attempts} connection attempts for {calls} calls in 500 ms: no backoff"
    );
    assert!(
        attempts >= 10,
        "{attempts} connection attempts in 500 ms: a server back would go unused"
    );
}
