//! A private `redis-server` per test, on a free port, torn down when dropped (built on the
//! `redis-test` crate's server helper, plus a readiness wait and restart on the same port).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use flipcache::{FlipKey, FlipValue};
use redis_test::server::RedisServer;

pub mod capture;
pub mod pairs;
pub mod stampede;

/// A private Redis for one test.
pub struct Server {
    inner: Option<RedisServer>,
    addr: redis::ConnectionAddr,
}

impl Server {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Server {
        let inner = RedisServer::new();
        let addr = inner.client_addr().clone();
        let server = Server {
            inner: Some(inner),
            addr,
        };
        server.wait_ready();
        server
    }

    /// Starts a server on a free port with extra command-line arguments (a config file first,
    /// if any, as `redis-server` wants it) and waits until it answers.
    pub fn start_with(args: &[String]) -> Server {
        let port = redis_test::utils::get_random_available_port();
        let addr = redis::ConnectionAddr::Tcp("127.0.0.1".into(), port);
        let args = args.to_vec();
        let inner = RedisServer::new_with_addr_tls_modules_and_spawner(
            addr.clone(),
            None,
            None,
            false,
            None,
            &[],
            move |cmd| {
                // redis-server wants a config file before every other argument.
                let mut full = std::process::Command::new(cmd.get_program());
                full.args(&args);
                full.args(cmd.get_args());
                // Replicas write the snapshot they receive into --dir: keep it out of the
                // working tree.
                let dir = std::env::temp_dir().join(format!("flipcache-redis-{port}"));
                let _ = std::fs::create_dir_all(&dir);
                full.arg("--dir").arg(dir);
                full.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                full.spawn().expect("spawn redis-server")
            },
        );
        let server = Server {
            inner: Some(inner),
            addr,
        };
        server.wait_ready();
        server
    }

    /// Starts a TLS-only server on a free port (certificates made by redis-test's helpers) and
    /// waits until it answers over TLS; with its CA certificate. [`Server::url`] is then a
    /// `rediss://...#insecure` URL.
    pub fn start_tls() -> (Server, Vec<u8>) {
        let port = redis_test::utils::get_random_available_port();
        let addr = redis::ConnectionAddr::TcpTls {
            host: "127.0.0.1".into(),
            port,
            insecure: true,
            tls_params: None,
        };
        let inner = RedisServer::new_with_addr_tls_modules_and_spawner(
            addr.clone(),
            None,
            None,
            false,
            None,
            &[],
            |cmd| {
                cmd.stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn redis-server")
            },
        );
        let ca = std::fs::read(&inner.tls_paths.as_ref().expect("tls paths").ca_crt).expect("CA");
        let server = Server {
            inner: Some(inner),
            addr,
        };
        server.wait_ready();
        (server, ca)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match &self.addr {
            redis::ConnectionAddr::Tcp(_, port) | redis::ConnectionAddr::TcpTls { port, .. } => {
                *port
            }
            other => panic!("unexpected address {other:?}"),
        }
    }

    /// `redis://127.0.0.1:<port>` (TLS: `rediss://127.0.0.1:<port>/#insecure`).
    pub fn url(&self) -> String {
        match &self.addr {
            redis::ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}"),
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                format!("rediss://{host}:{port}/#insecure")
            }
            other => panic!("unexpected address {other:?}"),
        }
    }

    /// A builder for the cache `name` on this server (every other setting at its default).
    pub fn builder<K: FlipKey, V: Clone + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> flipcache::Builder<K, V> {
        flipcache::FlipCache::<K, V>::builder(name)
            .redis_url(&self.url())
            .tracking(tracking())
    }

    /// The blocking cache `name` on this server, default settings.
    pub fn cache<K: FlipKey, V: FlipValue>(&self, name: &str) -> flipcache::FlipCache<K, V> {
        self.builder(name).build().expect("build")
    }

    /// The async cache `name` on this server, default settings.
    pub async fn cache_async<K: FlipKey, V: FlipValue>(
        &self,
        name: &str,
    ) -> flipcache::aio::FlipCache<K, V> {
        self.builder(name).build_async().await.expect("build")
    }

    /// A plain client of its own: a "foreign writer" as far as a cache is concerned.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client")
    }

    /// A blocking connection of its own.
    pub fn raw(&self) -> redis::Connection {
        self.client().get_connection().expect("raw connection")
    }

    /// Whether the server is up (not stopped by the test).
    pub fn is_running(&self) -> bool {
        self.inner.is_some()
    }

    /// The raw multiplexed redis-rs connection, with the tokio runtime (one worker) that drives
    /// it, for calls from a blocking thread (`rt.block_on(...)`): the thread hand-off a
    /// blocking flipcache call to the shared connection makes.
    pub fn multiplexed(&self) -> (tokio::runtime::Runtime, redis::aio::MultiplexedConnection) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let conn = rt
            .block_on(self.client().get_multiplexed_async_connection())
            .expect("multiplexed connection");
        (rt, conn)
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.inner.take() {
            s.stop();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = RedisServer::new_with_addr_and_modules(self.addr.clone(), &[], false);
            self.inner = Some(s);
            if self.try_ready(Duration::from_secs(3)) {
                return;
            }
            self.stop();
            assert!(
                Instant::now() < deadline,
                "redis-server did not come back on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let client = self.client();
        while Instant::now() < deadline {
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn wait_ready(&self) {
        assert!(
            self.try_ready(Duration::from_secs(10)),
            "redis-server did not start on {}",
            self.url()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The async cache `name` of the fault suites' child processes, on `url`: a 200 ms timeout,
/// `fail_safe` as given, entries living `expire_time`.
pub async fn fault_cache_async(
    url: &str,
    name: &str,
    fail_safe: bool,
    expire_time: Duration,
) -> flipcache::aio::FlipCache<String, String> {
    flipcache::FlipCache::<String, String>::builder(name)
        .redis_url(url)
        .tracking(tracking())
        .timeout(Duration::from_millis(200))
        .fail_safe(fail_safe)
        .expire_time(expire_time)
        .build_async()
        .await
        .expect("build")
}

/// Now, in milliseconds since the Unix epoch (comparable across processes).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `CLIENT KILL TYPE normal SKIPME yes` through `raw`: every client connection but `raw`'s
/// (the caches' shared, tracking and read connections included).
pub fn kill_clients(raw: &mut redis::Connection) {
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(raw)
        .expect("CLIENT KILL");
}

/// Waits until `cond` holds, polling briefly; fails the test after `within`.
pub fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The tracking mode the suites run in: `FLIPCACHE_TEST_TRACKING=broadcast` or `keys` (unset:
/// the library's default), so CI runs the coherence, fault and cluster suites in both modes.
/// Any other value fails loudly rather than silently testing the default twice.
pub fn tracking() -> flipcache::Tracking {
    match std::env::var("FLIPCACHE_TEST_TRACKING").as_deref() {
        Err(_) | Ok("") => flipcache::Tracking::default(),
        Ok("keys") => flipcache::Tracking::Keys,
        Ok("broadcast") => flipcache::Tracking::Broadcast,
        Ok(other) => panic!("FLIPCACHE_TEST_TRACKING must be `keys` or `broadcast`, not `{other}`"),
    }
}

/// Runs the `#[ignore]`d test `entry` of this test binary as a child process, with `envs` set
/// (the child entry fails unless they are), and gives back what it printed after `marker` (the
/// rest of the first line that holds it). Fails the test, with the child's output, otherwise.
pub fn run_child(entry: &str, envs: &[(&str, String)], marker: &str) -> String {
    let out = child_command(entry, envs)
        .output()
        .expect("spawn the child");
    child_said(entry, &out, marker)
}

/// [`run_child`] without waiting: the child runs beside the test (its stdout and stderr
/// piped; killed if the test fails first), and [`child_said`] reads what it printed once it is
/// done ([`ChildGuard::output`]).
pub fn spawn_child(entry: &str, envs: &[(&str, String)]) -> ChildGuard {
    let child = child_command(entry, envs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    ChildGuard(Some(child))
}

/// A child process killed (and reaped) when dropped, so that a failing test does not leave it
/// running.
pub struct ChildGuard(pub Option<std::process::Child>);

impl ChildGuard {
    /// Kills the child (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the child to finish and gives its output.
    pub fn output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("a child")
            .wait_with_output()
            .expect("wait for the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn child_command(entry: &str, envs: &[(&str, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        entry,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// What the child `entry` printed after `marker` (the rest of the first line that holds it);
/// fails the test, with the child's output, if it printed no such line.
pub fn child_said(entry: &str, out: &std::process::Output, marker: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| {
            panic!(
                "the child `{entry}` said nothing after `{marker}`: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Waits until every push Redis sent `c`'s tracked connection so far has been handled: holds
/// `sentinel` (a key of `c`, written here first, as a number any value type reads) in the L1, has another client write it, and
/// waits until its push drops it. Pushes reach a process in the order Redis sent them, on its
/// one tracked connection, so the echoes of `c`'s earlier writes and the invalidations of
/// earlier foreign writes were handled before.
#[allow(dead_code)]
pub fn drain_pushes<V: FlipValue>(
    c: &flipcache::FlipCache<String, V>,
    raw: &mut redis::Connection,
    sentinel: &str,
) {
    let rkey = format!("{}:{sentinel}", c.name());
    let mut set = |value: &str| {
        let _: () = redis::cmd("SET")
            .arg(&rkey)
            .arg(value)
            .query(raw)
            .expect("SET");
    };
    set("1");
    // A read whose fill raced a push (a trim, say) is retried until the L1 holds the sentinel.
    eventually(Duration::from_secs(5), "the sentinel to be held", || {
        let _ = c.get(sentinel).expect("get");
        c.local_contains(sentinel)
    });
    set("2");
    eventually(Duration::from_secs(5), "the sentinel's push", || {
        !c.local_contains(sentinel)
    });
}

/// With key-based tracking, has `c`'s blocking reads made on a pooled connection of their own
/// that tracks for the shared one (`CLIENT TRACKING ON REDIRECT`), reading `warm` (which must
/// be missing) until one has served a read (it is then idle in the pool), and gives its client
/// id. Broadcasting, such a connection tracks nothing: `None`, at once.
#[allow(dead_code)]
pub fn redirecting_read_connection<V: FlipValue + std::fmt::Debug>(
    c: &flipcache::FlipCache<String, V>,
    raw: &mut redis::Connection,
    warm: &str,
) -> Option<u64> {
    if tracking() != flipcache::Tracking::Keys {
        return None;
    }
    let mut found = None;
    eventually(
        Duration::from_secs(5),
        "a read connection that redirects",
        || {
            assert!(
                c.get(warm).expect("get").is_none(),
                "`{warm}` must be missing"
            );
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(raw)
                .expect("CLIENT LIST");
            // The shared connection shows `redir=0`; one that redirects to it, its id. One that
            // has served a read last ran a read, not its `CLIENT TRACKING` set-up.
            found = clients.lines().find_map(|l| {
                let field = |name: &str| l.split(' ').find_map(|f| f.strip_prefix(name));
                let redirects =
                    field("redir=").is_some_and(|id| id.parse::<i64>().is_ok_and(|id| id > 0));
                let read = field("cmd=").is_some_and(|cmd| !cmd.starts_with("client"));
                (redirects && read).then(|| field("id=")?.parse().ok())?
            });
            found.is_some()
        },
    );
    found
}

/// Reads `key` (which holds `value`) until a read fills the L1. (When broadcasting, the push of
/// a foreign write just before may still be on its way and stop the first read's fill.)
#[allow(dead_code)]
pub fn read_until_held(c: &flipcache::FlipCache<String, String>, key: &str, value: &str) {
    eventually(Duration::from_secs(5), "a read to fill the L1", || {
        assert_eq!(c.get(key).expect("get").as_deref(), Some(value));
        c.local_contains(key)
    });
}

/// A cache `name` of `server` holding `key` (set to `value` by another client first), read
/// into its L1 on a blocking read connection of its own: with the other client's connection
/// and that read connection's client id (key-based tracking; see
/// [`redirecting_read_connection`]).
#[allow(dead_code)]
pub fn held_through_a_read_connection(
    server: &Server,
    name: &str,
    key: &str,
    value: &str,
) -> (
    flipcache::FlipCache<String, String>,
    redis::Connection,
    Option<u64>,
) {
    let c = server.cache(name);
    let mut raw = server.raw();
    // Written first: broadcasting, its push is heard long before the key is read.
    let _: () = redis::cmd("SET")
        .arg(format!("{name}:{key}"))
        .arg(value)
        .query(&mut raw)
        .expect("SET");
    let reader = redirecting_read_connection(&c, &mut raw, "warm");
    read_until_held(&c, key, value);
    (c, raw, reader)
}

/// A cache `name` of `server` whose L1 holds keys `0..keys` (each its own value), checked: for
/// benchmarks of L1 hits.
pub fn filled(server: &Server, name: &str, keys: u64) -> flipcache::FlipCache<u64, u64> {
    let cache: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::builder(name)
        .local_max(keys as usize)
        .redis_url(&server.url())
        .build()
        .expect("build");
    cache.set_many((0..keys).map(|i| (i, i))).expect("set_many");
    for i in 0..keys {
        assert_eq!(cache.get(&i).expect("get"), Some(i));
        assert!(cache.local_contains(&i), "the bench must measure L1 hits");
    }
    cache
}
