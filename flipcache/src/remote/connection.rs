//! One shared, multiplexed RESP3 connection per endpoint per process: the registry of
//! endpoints, (re)connecting, the tracking registration, keep-alive, and running a command on
//! it within a timeout. The commands themselves are in [`super::commands`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use redis::{
    AsyncConnectionConfig, ErrorKind, PushInfo, PushKind, RedisError, ServerErrorKind, Value,
};
use tokio::runtime::Handle;

use crate::blocking_reads::{self, BlockingReads};
use crate::conn::Conn;
use crate::endpoint::{Endpoint, Target};
use crate::outage::Outage;
use crate::tracking::{Coverage, Registry, Tracking};

/// How often an idle shared connection is pinged; a ping unanswered within
/// [`PING_TIMEOUT`] counts as a lost connection.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(500);
/// See [`PING_EVERY`].
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// The wait after a first failed connection attempt; it doubles with each failure in a row, up
/// to [`BACKOFF_MAX`]. Only failed attempts are spaced, and never by more than
/// [`BACKOFF_MAX`], so a server that answers again is in use within about that much (plus
/// one connection's set-up), whether calls are made or not (the keep-alive tries as often
/// while the endpoint is down). An attempt against a server that refuses connections costs a
/// connect and a `RST`; one that hangs is single-flight and takes its `connect_timeout`.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
/// See [`BACKOFF_FIRST`].
const BACKOFF_MAX: Duration = Duration::from_millis(25);

/// Why a Redis call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Redis(RedisError),
    /// The call gave up after this long.
    Timeout(Duration),
}

impl Failure {
    /// `e`, of a call that started at `start`: a timed-out socket read, write or connect is a
    /// [`Failure::Timeout`] like a call that ran out of time.
    pub(crate) fn of(e: RedisError, start: Instant) -> Self {
        if e.is_timeout() {
            Failure::Timeout(start.elapsed())
        } else {
            Failure::Redis(e)
        }
    }
}

/// Redis is unreachable: the last attempt's error, and when the next attempt may start.
struct Down {
    failures: u32,
    until: Instant,
    error: RedisError,
}

#[derive(Default)]
struct State {
    current: Option<(u64, Conn)>,
    generation: u64,
    /// The cluster's primaries and their slots when the current connection was made.
    topology: Vec<String>,
    /// The server run the current connection reaches (one server only; for [`BlockingReads`]).
    run_id: Option<String>,
    /// The current connection's `CLIENT ID` (one server, key-based tracking): where the
    /// blocking reads' connections redirect their invalidations.
    client_id: Option<u64>,
    /// Set while connection attempts fail: calls fail fast until the backoff ends.
    down: Option<Down>,
}

/// One Redis endpoint: its shared connection and the caches using it.
pub(crate) struct Remote {
    endpoint: String,
    target: Target,
    /// The longest connect timeout (ms) of the caches built on this endpoint: a connection
    /// attempt runs in the background, so a long one delays no caller (each waits at most its
    /// own timeout), while a short one would fail a cache that allows more.
    connect_timeout: AtomicU64,
    state: Mutex<State>,
    /// A connection attempt is running (see [`Remote::start_attempt`]).
    attempting: AtomicBool,
    /// Woken when a connection attempt ends.
    attempted: tokio::sync::Notify,
    /// Serialises (re)connecting and tracking changes.
    connecting: tokio::sync::Mutex<()>,
    pub(crate) registry: Registry,
    pub(crate) rt: &'static Handle,
    /// Reads from blocking callers on their own thread (one fixed server only).
    reads: Option<BlockingReads>,
    /// How Redis tracks keys for this connection.
    mode: Tracking,
    /// Logs each outage once.
    outage: Outage,
}

/// Connection identity → the endpoint's `Remote`, so every cache of the process shares one.
fn endpoints() -> &'static Mutex<HashMap<String, Weak<Remote>>> {
    static MAP: OnceLock<Mutex<HashMap<String, Weak<Remote>>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        // A cluster node the connection has no link to (it died): a fresh connection reads
        // the topology again.
        || e.kind() == ErrorKind::ClusterConnectionNotFound
}

/// Whether the server itself refused a command (rather than the command not getting
/// through): only then is `CLIENT TRACKING` unsupported.
fn is_refusal(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_))
}

impl Remote {
    /// The shared `Remote` for `target` and tracking `mode`, created on first use (one
    /// connection has one tracking mode).
    pub(crate) fn shared(
        Endpoint {
            target,
            identity,
            name: endpoint,
        }: Endpoint,
        mode: Tracking,
        connect_timeout: Duration,
        rt: &'static Handle,
    ) -> Arc<Remote> {
        let identity = format!("{identity}|{mode:?}");
        let mut map = crate::lock::lock(endpoints());
        if let Some(remote) = map.get(&identity).and_then(Weak::upgrade) {
            remote.allow_connect_timeout(connect_timeout);
            return remote;
        }
        // Over TLS the blocking front reads through the shared connection: a pooled one's
        // close could not be seen at once (see `read_conn.rs`).
        let reads = target
            .direct_client()
            .filter(|client| crate::read_conn::watchable(client.get_connection_info()))
            .map(|client| BlockingReads::new(client.clone()));
        let remote = Arc::new(Remote {
            reads,
            mode,
            endpoint,
            target,
            connect_timeout: AtomicU64::new(millis(connect_timeout)),
            state: Mutex::default(),
            attempting: AtomicBool::new(false),
            attempted: tokio::sync::Notify::new(),
            connecting: tokio::sync::Mutex::new(()),
            registry: Registry::default(),
            rt,
            outage: Outage::default(),
        });
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(identity, Arc::downgrade(&remote));
        keep_alive(Arc::downgrade(&remote), rt);
        if remote.reads.is_some() && mode == Tracking::Keys {
            watch_reads(Arc::downgrade(&remote), rt);
        }
        remote
    }

    /// Lets connection attempts take `timeout` (a cache that allows more than the caches
    /// before it); a backoff that failures with shorter attempts started ends at once.
    fn allow_connect_timeout(&self, timeout: Duration) {
        let ms = millis(timeout);
        if self.connect_timeout.fetch_max(ms, Ordering::AcqRel) < ms {
            crate::lock::lock(&self.state).down = None;
        }
    }

    /// How long a connection attempt may take.
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout.load(Ordering::Acquire))
    }

    /// This endpoint's outage log (see [`Outage`]).
    pub(crate) fn outage(&self) -> &Outage {
        &self.outage
    }

    /// Where this connects to, for messages.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn current(&self) -> Option<(u64, Conn)> {
        crate::lock::lock(&self.state).current.clone()
    }

    /// Forgets connection `generation` (if it is still the current one) and empties every L1
    /// on it: what it missed while down cannot be known.
    pub(crate) fn lost(&self, generation: u64) {
        let was_current = {
            let mut st = crate::lock::lock(&self.state);
            let hit = st.current.as_ref().is_some_and(|(g, _)| *g == generation);
            if hit {
                st.current = None;
            }
            hit
        };
        if was_current {
            self.outage.down(|| {
                tracing::warn!(endpoint = %self.endpoint, "lost the Redis connection; local caches emptied (kept unverified under fail-safe); reconnecting in the background");
            });
            self.registry.disconnected_all();
        }
    }

    /// Whether `now` differs from the topology seen when connection `generation` was made.
    fn topology_changed(&self, generation: u64, now: &[String]) -> bool {
        let st = crate::lock::lock(&self.state);
        st.current.as_ref().is_some_and(|(g, _)| *g == generation) && st.topology != now
    }

    /// Drops the current connection, if any (see [`Remote::lost`]).
    pub(crate) fn reset(&self) {
        if let Some((generation, _)) = self.current() {
            self.lost(generation);
        }
    }

    /// The current connection, connecting (and enabling tracking) first if needed: waits for
    /// a connection attempt, which runs in the background (so that it is not lost when this
    /// caller gives up). While Redis is unreachable, attempts back off and calls in between
    /// fail at once with the last attempt's error.
    async fn connection(self: &Arc<Self>) -> Result<(u64, Conn), RedisError> {
        loop {
            if let Some(c) = self.current() {
                return Ok(c);
            }
            // Made before the attempt can end, so its end is never missed.
            let attempted = self.attempted.notified();
            if let Some(e) = self.backing_off() {
                return Err(e);
            }
            self.start_attempt();
            attempted.await;
        }
    }

    /// The last attempt's error, while no new attempt may start.
    fn backing_off(&self) -> Option<RedisError> {
        let st = crate::lock::lock(&self.state);
        let down = st.down.as_ref()?;
        (Instant::now() < down.until).then(|| down.error.clone())
    }

    /// How long until the next connection attempt may start (zero: now).
    fn backoff_left(&self) -> Duration {
        let st = crate::lock::lock(&self.state);
        st.down.as_ref().map_or(Duration::ZERO, |d| {
            d.until.saturating_duration_since(Instant::now())
        })
    }

    /// Starts a connection attempt in the background unless one is running or the backoff
    /// forbids it; every waiter is woken when it ends.
    fn start_attempt(self: &Arc<Self>) {
        if self.attempting.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        self.rt.spawn(async move {
            {
                let _guard = me.connecting.lock().await;
                if me.current().is_none() && me.backing_off().is_none() {
                    let timeout = me.connect_timeout();
                    let result = match tokio::time::timeout(timeout, me.connect_locked()).await {
                        Ok(r) => r.map(drop),
                        Err(_) => Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connecting timed out after {timeout:?}"),
                        ))),
                    };
                    me.attempt_ended(result, timeout);
                }
            }
            me.attempting.store(false, Ordering::Release);
            me.attempted.notify_waiters();
        });
    }

    /// Records how an attempt that was given `timeout` ended.
    fn attempt_ended(&self, result: Result<(), RedisError>, timeout: Duration) {
        let mut st = crate::lock::lock(&self.state);
        let Err(error) = result else {
            st.down = None;
            return;
        };
        tracing::debug!(endpoint = %self.endpoint, %error, "connection attempt failed");
        if timeout < self.connect_timeout() {
            // A cache allowing longer attempts arrived meanwhile: try again at once.
            st.down = None;
            return;
        }
        let failures = st.down.as_ref().map_or(0, |d| d.failures).saturating_add(1);
        let backoff = BACKOFF_FIRST
            .saturating_mul(1 << failures.saturating_sub(1).min(10))
            .min(BACKOFF_MAX);
        st.down = Some(Down {
            failures,
            until: Instant::now() + backoff,
            error,
        });
    }

    /// Opens a new connection with tracking on for every coherent prefix, then publishes it.
    /// Caller holds `connecting`.
    async fn connect_locked(self: &Arc<Self>) -> Result<(u64, Conn), RedisError> {
        let generation = {
            let mut st = crate::lock::lock(&self.state);
            st.generation += 1;
            st.generation
        };
        let weak = Arc::downgrade(self);
        let on_push = move |info: PushInfo| -> Result<(), redis::aio::SendError> {
            let Some(remote) = weak.upgrade() else {
                return Err(redis::aio::SendError);
            };
            match info.kind {
                PushKind::Invalidate => remote.registry.on_push(&info.data),
                PushKind::Message => remote.registry.on_message(&info.data),
                // On a cluster: any node's connection (redis-rs reconnects it, without our
                // tracking), so the whole connection is dropped and made again.
                PushKind::Disconnection => remote.lost(generation),
                _ => {}
            }
            Ok(())
        };
        let me = self.clone();
        let timeout = self.connect_timeout();
        // The connection's driver task must live on the background runtime, which outlives
        // any runtime of the caller.
        let mut conn = self
            .rt
            .spawn(async move {
                match &me.target {
                    #[cfg(feature = "cluster")]
                    Target::Cluster(client) => {
                        let config = redis::cluster::ClusterConfig::new()
                            .set_connection_timeout(timeout)
                            .set_push_sender(on_push);
                        client
                            .get_async_connection_with_config(config)
                            .await
                            .map(Conn::Cluster)
                    }
                    _ => {
                        let config = AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(timeout))
                            .set_response_timeout(None)
                            .set_push_sender(on_push);
                        let client = me.target.resolve().await?;
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await
                            .map(Conn::Single)
                    }
                }
            })
            .await
            .map_err(|e| RedisError::from(std::io::Error::other(e.to_string())))??;
        let topology = conn.topology().await?;
        let (run_id, client_id) = if self.reads.is_some() {
            // `INFO` is `@dangerous`: an ACL user may not run it. Then the server run is
            // unknown and blocking reads use this connection.
            let run_id = match redis::cmd("INFO")
                .arg("server")
                .query_async::<String>(&mut conn)
                .await
            {
                Ok(info) => blocking_reads::run_id(&info).map(str::to_owned),
                Err(e) if is_refusal(&e) => None,
                Err(e) => return Err(e),
            };
            // Without it (an ACL refusing `CLIENT ID`), blocking reads use this connection.
            let client_id = match self.mode {
                Tracking::Keys => redis::cmd("CLIENT")
                    .arg("ID")
                    .query_async::<u64>(&mut conn)
                    .await
                    .ok(),
                Tracking::Broadcast => None,
            };
            (run_id, client_id)
        } else {
            (None, None)
        };
        let prefixes = self.registry.wanted_prefixes();
        if !prefixes.is_empty() && !self.registry.unsupported() {
            match track(&mut conn, self.mode, &prefixes).await {
                Ok(()) => {
                    tracing::info!(endpoint = %self.endpoint, mode = ?self.mode, prefixes = prefixes.len(), "client tracking registered");
                    self.registry.set_tracked(self.tracked_set(prefixes));
                }
                Err(e) if is_refusal(&e) => self.tracking_refused(&e),
                // Not tracked everywhere: the connection is not usable for an L1.
                Err(e) => return Err(e),
            }
        }
        // Tracking covers every prefix from here on; what the L1s kept while there was no
        // connection was never covered (another process may have changed it meanwhile).
        self.registry.connected_all();
        let mut st = crate::lock::lock(&self.state);
        st.current = Some((generation, conn.clone()));
        st.topology = topology;
        st.run_id = run_id;
        st.client_id = client_id;
        drop(st);
        self.outage.up(&self.endpoint);
        Ok((generation, conn))
    }

    /// What tracking `prefixes` amounts to: those prefixes when broadcasting; with key-based
    /// tracking every key read is tracked, which the empty prefix stands for.
    fn tracked_set(&self, prefixes: Vec<String>) -> Vec<String> {
        match self.mode {
            Tracking::Broadcast => prefixes,
            Tracking::Keys => vec![String::new()],
        }
    }

    /// Whether the endpoint is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        #[cfg(feature = "cluster")]
        if let Target::Cluster(_) = &self.target {
            return true;
        }
        false
    }

    /// Whether writes that fill an L1 must make Redis track the written key for this process
    /// (key-based tracking, which the server supports).
    pub(crate) fn tracks_keys(&self) -> bool {
        self.mode == Tracking::Keys && !self.registry.unsupported() && self.registry.tracking()
    }

    fn tracking_refused(&self, e: &RedisError) {
        if self.registry.mark_unsupported() {
            tracing::warn!(
                endpoint = %self.endpoint,
                error = %e,
                "this server does not support RESP3 client tracking; local caches \
                 fall back to TTL-bounded entries and cannot see other clients' writes"
            );
        }
    }

    /// Makes sure Redis reports writes under `prefix` to this process.
    pub(crate) async fn ensure_tracked(self: &Arc<Self>, prefix: &str) -> Result<(), RedisError> {
        let guard = self.connecting.lock().await;
        let Some((generation, mut conn)) = self.current() else {
            // A new connection registers every wanted prefix, this one included.
            drop(guard);
            return self.connection().await.map(drop);
        };
        if self.registry.unsupported() {
            return Ok(());
        }
        match self.registry.coverage(prefix) {
            Coverage::Covered => Ok(()),
            Coverage::Disjoint => match track(&mut conn, self.mode, &[prefix.to_owned()]).await {
                Ok(()) => {
                    for p in self.tracked_set(vec![prefix.to_owned()]) {
                        self.registry.add_tracked(p);
                    }
                    tracing::info!(endpoint = %self.endpoint, mode = ?self.mode, prefix, "client tracking registered");
                    Ok(())
                }
                Err(e) if is_refusal(&e) => {
                    self.tracking_refused(&e);
                    Ok(())
                }
                Err(e) => {
                    self.lost(generation);
                    Err(e)
                }
            },
            Coverage::Overlaps => {
                // Redis refuses overlapping prefixes on one client: start over on a fresh
                // connection with the minimal set. Every L1 here is emptied on the way.
                self.lost(generation);
                drop(guard);
                self.connection().await.map(drop)
            }
        }
    }

    /// Runs the read `op` on a synchronous connection of the calling thread, when the shared
    /// connection is up (so its invalidations cover what the read may fill) and the target is
    /// one server. `None`: use [`Remote::run`] (also when the pooled connection turned out to be
    /// closed). With the result: whether that connection tracks what it reads for the shared
    /// one (`REDIRECT`, key-based tracking), so that a write of a key it read is pushed for it
    /// too (see `local/coherence.rs`).
    pub(crate) fn run_blocking<T>(
        &self,
        timeout: Duration,
        op: impl FnOnce(&mut crate::read_conn::ReadConn) -> Result<T, RedisError>,
    ) -> Option<(Result<T, Failure>, bool)> {
        let start = Instant::now();
        let reads = self.reads.as_ref()?;
        let (generation, server, client_id) = {
            let st = crate::lock::lock(&self.state);
            (st.current.as_ref()?.0, st.run_id.clone()?, st.client_id)
        };
        // With key-based tracking a read is tracked by the connection that makes it: pooled
        // connections redirect their invalidations to the shared one (`REDIRECT <id>`), and
        // none may close while its generation is current (Redis forgets what a closed
        // connection read, so its invalidations would be lost).
        let redirect = match self.mode {
            Tracking::Broadcast => None,
            Tracking::Keys if self.registry.unsupported() => None,
            Tracking::Keys => Some(client_id?),
        };
        let (result, tracked, dropped) = reads.run(
            self.rt,
            (generation, &server, redirect),
            self.connect_timeout(),
            timeout,
            op,
        )?;
        if dropped {
            tracing::warn!(endpoint = %self.endpoint, "a tracked read connection failed; local caches emptied");
            self.lost(generation);
        }
        let result = match result {
            Ok(v) => Ok(v),
            Err(e) if e.is_timeout() => Err(Failure::Timeout(start.elapsed())),
            // A pooled connection closed under us (the server's idle `timeout`, a kill): the
            // read is harmless to repeat on the shared connection.
            Err(e) if is_connection_error(&e) => return None,
            Err(e) => Err(Failure::Redis(e)),
        };
        Some((result, tracked))
    }

    /// Runs `op` on the shared connection within `timeout`.
    pub(crate) async fn run<T, F, Fut>(
        self: &Arc<Self>,
        timeout: Duration,
        op: F,
    ) -> Result<T, Failure>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let start = Instant::now();
        let work = async {
            let (generation, conn) = self.connection().await?;
            op(conn).await.inspect_err(|e| {
                // READONLY: this server was demoted (a failover); reconnect to the primary.
                if is_connection_error(e)
                    || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
                {
                    self.lost(generation);
                }
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r.map_err(|e| Failure::of(e, start)),
            Err(_) => Err(Failure::Timeout(start.elapsed())),
        }
    }
}

/// `CLIENT TRACKING ON` (key-based), or `CLIENT TRACKING ON BCAST PREFIX p1 PREFIX p2 ...
/// NOLOOP`, on every primary.
///
/// Key-based tracking goes without `NOLOOP`: since Redis 7.0.5 (redis/redis#11052), when the
/// command that makes Redis trim a full tracking table (`tracking-table-max-keys`) comes from a
/// `NOLOOP` client, Redis forgets the keys that client tracked without telling it, and its L1
/// would keep them unheard. Without `NOLOOP` every trimmed key is heard of, and Redis echoes
/// this process's own writes, which the L1 expects (see `local/coherence.rs`). Broadcasting
/// keeps no table: `NOLOOP` spares every process the push of its own writes there.
async fn track(conn: &mut Conn, mode: Tracking, prefixes: &[String]) -> Result<(), RedisError> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON");
    if mode == Tracking::Broadcast {
        cmd.arg("BCAST");
        for p in prefixes {
            cmd.arg("PREFIX").arg(p);
        }
        cmd.arg("NOLOOP");
    }
    conn.on_every_primary(&cmd).await.map(drop)
}

/// How often the blocking front's idle read connections that track what they read are looked
/// at (a look at each socket, no round trip: see `read_conn.rs`).
const WATCH_EVERY: Duration = Duration::from_millis(10);
/// How long the watch waits for a connection that tracks, when none does, before it checks
/// whether its endpoint is still in use.
const WATCH_IDLE: Duration = Duration::from_secs(1);

/// Watches the blocking front's idle read connections that track for the shared connection
/// (key-based tracking): one the server closed (`CLIENT KILL`, its idle `timeout`) took what
/// it tracked with it, without a push, so it is a lost connection, noticed within
/// [`WATCH_EVERY`] rather than at the next ping.
fn watch_reads(remote: Weak<Remote>, rt: &'static Handle) {
    rt.spawn(async move {
        loop {
            let idle = {
                let Some(r) = remote.upgrade() else { return };
                let Some(reads) = r.reads.clone() else { return };
                match r.current() {
                    Some((generation, _)) if reads.tracks() => {
                        if reads.closed_idle(generation) {
                            tracing::warn!(endpoint = %r.endpoint, "a tracked read connection was closed; local caches emptied");
                            r.lost(generation);
                        }
                        None
                    }
                    _ => Some(reads),
                }
            };
            match idle {
                None => tokio::time::sleep(WATCH_EVERY).await,
                // Nothing to watch: until a connection that tracks is pooled (or a while, so
                // that a dropped cache ends this task).
                Some(reads) => {
                    let _ = tokio::time::timeout(WATCH_IDLE, reads.tracked_pooled()).await;
                }
            }
        }
    });
}

/// Pings the shared connection while the endpoint is in use; a connection that stops answering
/// is treated as lost (its invalidations may be stuck with it).
fn keep_alive(remote: Weak<Remote>, rt: &'static Handle) {
    rt.spawn(async move {
        let mut pause = PING_EVERY;
        loop {
            tokio::time::sleep(pause).await;
            pause = PING_EVERY;
            let Some(r) = remote.upgrade() else { return };
            let Some((generation, mut conn)) = r.current() else {
                // No connection (Redis was unreachable): try again in the background as soon
                // as the backoff allows, so that a server that answers again is in use (and
                // what the L1s kept meanwhile dropped or revalidated) within the backoff, even
                // when every call is an L1 hit.
                if r.backing_off().is_none() {
                    r.start_attempt();
                }
                pause = r.backoff_left().max(BACKOFF_FIRST).min(PING_EVERY);
                continue;
            };
            let ping = redis::cmd("PING");
            match tokio::time::timeout(PING_TIMEOUT, ping.query_async::<Value>(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if !is_connection_error(&e) => {}
                _ => {
                    r.lost(generation);
                    continue;
                }
            }
            // A cluster whose primaries or slots changed (failover, resharding, a new node)
            // may have primaries that do not track for us: start over.
            if let Ok(Ok(now)) = tokio::time::timeout(PING_TIMEOUT, conn.topology()).await
                && r.topology_changed(generation, &now)
            {
                tracing::warn!(endpoint = %r.endpoint, "the cluster's topology changed; reconnecting");
                r.lost(generation);
                continue;
            }
            // The blocking front's idle read connections that track for this one: kept alive,
            // and one the server closed is a lost connection (what it tracked is forgotten).
            if let Some(reads) = r.reads.clone().filter(|_| r.mode == Tracking::Keys)
                && !tokio::task::spawn_blocking(move || reads.ping_tracked(generation, PING_TIMEOUT))
                    .await
                    .unwrap_or(true)
            {
                tracing::warn!(endpoint = %r.endpoint, "a tracked read connection was closed; local caches emptied");
                r.lost(generation);
            }
        }
    });
}

/// `d` in whole milliseconds (at least 1).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
