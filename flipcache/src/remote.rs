//! Redis: one shared, multiplexed RESP3 connection per endpoint per process, its reconnects and
//! keep-alive, and every command the crate sends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use redis::{
    AsyncConnectionConfig, ErrorKind, PushInfo, PushKind, RedisError, ServerErrorKind, Value,
};
use tokio::runtime::Handle;

use crate::blocking_reads::{self, BlockingReads};
use crate::conn::Conn;
use crate::endpoint::Target;
use crate::outage::Outage;
use crate::tracking::{Coverage, Registry, Tracking};

/// How often an idle shared connection is pinged; a ping unanswered within
/// [`PING_TIMEOUT`] counts as a lost connection.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(500);
/// See [`PING_EVERY`].
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a Redis call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Redis(RedisError),
    Timeout,
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        Failure::Redis(e)
    }
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
}

/// One Redis endpoint: its shared connection and the caches using it.
pub(crate) struct Remote {
    endpoint: String,
    target: Target,
    connect_timeout: Duration,
    state: Mutex<State>,
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
        (target, identity, endpoint): (Target, String, String),
        mode: Tracking,
        connect_timeout: Duration,
        rt: &'static Handle,
    ) -> Arc<Remote> {
        let identity = format!("{identity}|{mode:?}");
        let mut map = crate::lock::lock(endpoints());
        if let Some(remote) = map.get(&identity).and_then(Weak::upgrade) {
            return remote;
        }
        let reads = target
            .direct_client()
            .map(|client| BlockingReads::new(client.clone()));
        let remote = Arc::new(Remote {
            reads,
            mode,
            endpoint,
            target,
            connect_timeout,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
            registry: Registry::default(),
            rt,
            outage: Outage::default(),
        });
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(identity, Arc::downgrade(&remote));
        keep_alive(Arc::downgrade(&remote), rt);
        remote
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

    /// The current connection, connecting (and enabling tracking) first if needed.
    async fn connection(self: &Arc<Self>) -> Result<(u64, Conn), RedisError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        self.connect_locked().await
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
        let timeout = self.connect_timeout;
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
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await?;
            let run_id = blocking_reads::run_id(&info).map(str::to_owned);
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
        let _guard = self.connecting.lock().await;
        let Some((generation, mut conn)) = self.current() else {
            // A new connection registers every wanted prefix, this one included.
            return self.connect_locked().await.map(drop);
        };
        if self.registry.unsupported() {
            return Ok(());
        }
        match self.registry.coverage(prefix) {
            Coverage::Covered => Ok(()),
            Coverage::Disjoint => match track(&mut conn, self.mode, &[prefix.to_owned()]).await {
                Ok(()) => {
                    tracing::info!(endpoint = %self.endpoint, mode = ?self.mode, prefix, "client tracking registered");
                    for p in self.tracked_set(vec![prefix.to_owned()]) {
                        self.registry.add_tracked(p);
                    }
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
                self.connect_locked().await.map(drop)
            }
        }
    }

    /// Runs the read `op` on a synchronous connection of the calling thread, when the shared
    /// connection is up (so its invalidations cover what the read may fill) and the target is
    /// one server. `None`: use [`Remote::run`] (also when the pooled connection turned out to be
    /// closed).
    pub(crate) fn run_blocking<T>(
        &self,
        timeout: Duration,
        op: impl FnOnce(&mut redis::Connection) -> Result<T, RedisError>,
    ) -> Option<Result<T, Failure>> {
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
        let (result, dropped) = reads.run(
            self.rt,
            (generation, &server, redirect),
            self.connect_timeout,
            timeout,
            op,
        )?;
        if dropped && redirect.is_some() {
            tracing::warn!(endpoint = %self.endpoint, "a tracked read connection failed; local caches emptied");
            self.lost(generation);
        }
        match result {
            Ok(v) => Some(Ok(v)),
            Err(e) if e.is_timeout() => Some(Err(Failure::Timeout)),
            // A pooled connection closed under us (the server's idle `timeout`, a kill): the
            // read is harmless to repeat on the shared connection.
            Err(e) if is_connection_error(&e) => None,
            Err(e) => Some(Err(Failure::Redis(e))),
        }
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
            Ok(r) => r.map_err(Failure::Redis),
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// `CLIENT TRACKING ON NOLOOP` (key-based), or `CLIENT TRACKING ON BCAST PREFIX p1 PREFIX p2
/// ... NOLOOP`, on every primary.
async fn track(conn: &mut Conn, mode: Tracking, prefixes: &[String]) -> Result<(), RedisError> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON");
    if mode == Tracking::Broadcast {
        cmd.arg("BCAST");
        for p in prefixes {
            cmd.arg("PREFIX").arg(p);
        }
    }
    cmd.arg("NOLOOP");
    conn.on_every_primary(&cmd).await.map(drop)
}

/// Pings the shared connection while the endpoint is in use; a connection that stops answering
/// is treated as lost (its invalidations may be stuck with it).
fn keep_alive(remote: Weak<Remote>, rt: &'static Handle) {
    rt.spawn(async move {
        loop {
            tokio::time::sleep(PING_EVERY).await;
            let Some(r) = remote.upgrade() else { return };
            let Some((generation, mut conn)) = r.current() else {
                // No connection (Redis was unreachable): try again in the background, so that
                // what the L1s kept meanwhile is dropped soon after Redis answers, even when
                // every call is an L1 hit.
                let again = async {
                    let _guard = r.connecting.lock().await;
                    if r.current().is_none() {
                        r.connect_locked().await.map(drop)
                    } else {
                        Ok(())
                    }
                };
                if let Ok(Err(e)) = tokio::time::timeout(r.connect_timeout, again).await {
                    tracing::debug!(endpoint = %r.endpoint, error = %e, "reconnect attempt failed");
                }
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
            }
        }
    });
}

// ---- commands ----------------------------------------------------------------------------

/// A value and, when asked, its remaining TTL in milliseconds (`None`: no TTL) and whether an
/// absence marker exists.
pub(crate) struct Fetched {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) pttl: Option<u64>,
    pub(crate) absent: bool,
}

impl Fetched {
    fn new(value: Option<Vec<u8>>, pttl: Option<u64>) -> Self {
        Fetched {
            value,
            pttl,
            absent: false,
        }
    }

    fn gone() -> Self {
        Fetched::new(None, None)
    }
}

fn pttl_of(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

/// What a read needs besides the value.
#[derive(Clone, Copy)]
pub(crate) enum ReadMode {
    /// Just `GET` (no L1 to bound).
    Plain,
    /// `GET` + `PTTL` in one round trip, to bound the L1 entry by the Redis TTL.
    WithTtl,
    /// `GETEX key PX ttl`: read and renew the TTL.
    Refresh(Duration),
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

// With key-based tracking, a write made by this connection ends its tracking of the key
// (silently: `NOLOOP`), and a write command is not tracked itself. A write that leaves a value
// in the L1 (`SET`, `PEXPIRE` of a held key, `GETEX`) therefore runs in a script that then calls
// the read-only `PTTL`, so Redis tracks the key for this connection again before any other
// client can write it. (A script rather than `MULTI`/`EXEC`: an invalidation redirected to this
// connection by the blocking front's read connections may be written in the middle of an
// `EXEC` reply, but not into a script's reply.)

/// `SET KEYS[1] ARGV[1] [ARGV[2..]]` (`PX ms`, `NX`), then track the key; replies as `SET`.
const SET_TRACKED: &str =
    "local r = redis.call('SET', KEYS[1], unpack(ARGV)) redis.call('PTTL', KEYS[1]) return r";
/// `PEXPIRE KEYS[1] ARGV[1]`, then track the key.
const PEXPIRE_TRACKED: &str =
    "local n = redis.call('PEXPIRE', KEYS[1], ARGV[1]) redis.call('PTTL', KEYS[1]) return n";
/// `GETEX KEYS[1] PX ARGV[1]`, then track the key.
const GETEX_TRACKED: &str =
    "local v = redis.call('GETEX', KEYS[1], 'PX', ARGV[1]) redis.call('PTTL', KEYS[1]) return v";

fn getex_cmd(pipe: &mut redis::Pipeline, key: &str, ttl: Duration, retrack: bool) {
    if retrack {
        pipe.cmd("EVAL")
            .arg(GETEX_TRACKED)
            .arg(1)
            .arg(key)
            .arg(ms(ttl));
    } else {
        pipe.cmd("GETEX").arg(key).arg("PX").arg(ms(ttl));
    }
}

fn pexpire_cmd(pipe: &mut redis::Pipeline, key: &str, ttl: Duration, retrack: bool) {
    if retrack {
        pipe.cmd("EVAL")
            .arg(PEXPIRE_TRACKED)
            .arg(1)
            .arg(key)
            .arg(ms(ttl));
    } else {
        pipe.cmd("PEXPIRE").arg(key).arg(ms(ttl));
    }
}

/// The commands of one read: `GET`, `GET` + `PTTL`, or `GETEX` (`retrack`: see
/// [`GETEX_TRACKED`]).
fn read_request(key: &str, mode: ReadMode, retrack: bool) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    match mode {
        ReadMode::Plain => {
            pipe.cmd("GET").arg(key);
        }
        ReadMode::WithTtl => {
            pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        }
        ReadMode::Refresh(ttl) => getex_cmd(&mut pipe, key, ttl, retrack),
    };
    pipe
}

/// What [`read_request`]'s replies say.
fn read_reply(raw: Vec<Value>, mode: ReadMode) -> Result<Fetched, RedisError> {
    let mut raw = raw.into_iter();
    let value: Option<Vec<u8>> = redis::from_redis_value(raw.next().unwrap_or(Value::Nil))?;
    match mode {
        ReadMode::Plain => Ok(Fetched::new(value, None)),
        ReadMode::WithTtl => {
            let pttl: i64 = redis::from_redis_value(raw.next().unwrap_or(Value::Int(-2)))?;
            if pttl == -2 {
                // Gone between the two commands.
                return Ok(Fetched::gone());
            }
            Ok(Fetched::new(value, pttl_of(pttl)))
        }
        ReadMode::Refresh(ttl) => Ok(Fetched::new(value, Some(ms(ttl)))),
    }
}

/// Adds the reply of `EXISTS marker` to a read.
fn with_marker(mut fetched: Fetched, exists: Value) -> Result<Fetched, RedisError> {
    fetched.absent = redis::from_redis_value::<u64>(exists)? > 0;
    Ok(fetched)
}

/// Reads `key` (see [`ReadMode`]) and, when `marker` is given, whether that absence marker
/// exists: one pipeline on one server; two requests at once on a cluster, where the marker may
/// sit on another slot.
pub(crate) async fn get(
    mut conn: Conn,
    key: &str,
    mode: ReadMode,
    marker: Option<&str>,
    retrack: bool,
) -> Result<Fetched, RedisError> {
    let Some(marker) = marker else {
        let raw = read_request(key, mode, retrack)
            .query_async(&mut conn)
            .await?;
        return read_reply(raw, mode);
    };
    #[cfg(feature = "cluster")]
    if let Conn::Cluster(_) = &conn {
        let mut other = conn.clone();
        let read = async {
            let raw = read_request(key, mode, retrack)
                .query_async(&mut conn)
                .await?;
            read_reply(raw, mode)
        };
        let mut exists = redis::cmd("EXISTS");
        exists.arg(marker);
        let exists = exists.query_async::<Value>(&mut other);
        let (fetched, exists) = futures_util::future::try_join(read, exists).await?;
        return with_marker(fetched, exists);
    }
    let mut pipe = read_request(key, mode, retrack);
    pipe.cmd("EXISTS").arg(marker);
    let mut raw: Vec<Value> = pipe.query_async(&mut conn).await?;
    let exists = raw.pop().unwrap_or(Value::Int(0));
    with_marker(read_reply(raw, mode)?, exists)
}

/// [`get`] on a synchronous connection (one server).
pub(crate) fn get_blocking(
    conn: &mut redis::Connection,
    key: &str,
    mode: ReadMode,
    marker: Option<&str>,
) -> Result<Fetched, RedisError> {
    let mut pipe = read_request(key, mode, false);
    if let Some(marker) = marker {
        pipe.cmd("EXISTS").arg(marker);
    }
    let mut raw: Vec<Value> = pipe.query(conn)?;
    match marker {
        Some(_) => {
            let exists = raw.pop().unwrap_or(Value::Int(0));
            with_marker(read_reply(raw, mode)?, exists)
        }
        None => read_reply(raw, mode),
    }
}

/// Reads of `keys` (`retrack`: see [`read_request`]).
pub(crate) async fn get_many(
    mut conn: Conn,
    keys: &[String],
    mode: ReadMode,
    retrack: bool,
) -> Result<Vec<Fetched>, RedisError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match mode {
        ReadMode::Plain => {
            let values: Vec<Option<Vec<u8>>> = match &mut conn {
                Conn::Single(c) => redis::cmd("MGET").arg(keys).query_async(c).await?,
                #[cfg(feature = "cluster")]
                Conn::Cluster(_) => conn
                    .pipelined(keys, 1, |p, i| {
                        p.cmd("GET").arg(&keys[i]);
                    })
                    .await?
                    .into_iter()
                    .map(redis::from_redis_value)
                    .collect::<Result<_, _>>()?,
            };
            Ok(values
                .into_iter()
                .map(|value| Fetched::new(value, None))
                .collect())
        }
        ReadMode::WithTtl => {
            let raw = conn
                .pipelined(keys, 2, |p, i| {
                    p.cmd("GET").arg(&keys[i]).cmd("PTTL").arg(&keys[i]);
                })
                .await?;
            let mut out = Vec::with_capacity(keys.len());
            let mut it = raw.into_iter();
            while let (Some(v), Some(t)) = (it.next(), it.next()) {
                let value: Option<Vec<u8>> = redis::from_redis_value(v)?;
                let pttl: i64 = redis::from_redis_value(t)?;
                out.push(if pttl == -2 {
                    Fetched::gone()
                } else {
                    Fetched::new(value, pttl_of(pttl))
                });
            }
            Ok(out)
        }
        ReadMode::Refresh(ttl) => {
            let raw = conn
                .pipelined(keys, 1, |p, i| getex_cmd(p, &keys[i], ttl, retrack))
                .await?;
            raw.into_iter()
                .map(|v| Ok(Fetched::new(redis::from_redis_value(v)?, Some(ms(ttl)))))
                .collect()
        }
    }
}

/// One `SET`: the key, the encoded value, its TTL, `NX`, and an absence marker to end.
#[derive(Clone, Copy)]
pub(crate) struct Write<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a [u8],
    pub(crate) ttl: Option<Duration>,
    /// `NX`: only if the key has no value.
    pub(crate) only_new: bool,
    /// An absence marker to delete with the write (`cache_absent`).
    pub(crate) clear: Option<&'a str>,
    /// Track the key again after the write (key-based tracking; see [`SET_TRACKED`]).
    pub(crate) retrack: bool,
}

/// The command of one write: `SET` (or [`SET_TRACKED`] when `retrack`), with `PX` and `NX`.
pub(crate) fn write_cmd(w: &Write<'_>) -> redis::Cmd {
    let mut cmd = if w.retrack {
        let mut c = redis::cmd("EVAL");
        c.arg(SET_TRACKED).arg(1);
        c
    } else {
        redis::cmd("SET")
    };
    cmd.arg(w.key).arg(w.value);
    if let Some(ttl) = w.ttl {
        cmd.arg("PX").arg(ms(ttl));
    }
    if w.only_new {
        cmd.arg("NX");
    }
    cmd
}

fn set_cmd<'a>(pipe: &'a mut redis::Pipeline, w: &Write<'_>) -> &'a mut redis::Pipeline {
    pipe.add_command(write_cmd(w))
}

/// Runs `w`; says whether the value was written (always, unless `NX` found a value).
pub(crate) async fn set(mut conn: Conn, w: Write<'_>) -> Result<bool, RedisError> {
    let mut pipe = redis::pipe();
    set_cmd(&mut pipe, &w);
    let Some(marker) = w.clear else {
        let (reply,): (Value,) = pipe.query_async(&mut conn).await?;
        return Ok(reply != Value::Nil);
    };
    #[cfg(feature = "cluster")]
    if let Conn::Cluster(_) = &conn {
        let mut other = conn.clone();
        let set = pipe.query_async::<(Value,)>(&mut conn);
        let mut del = redis::cmd("DEL");
        del.arg(marker);
        let del = del.query_async::<Value>(&mut other);
        let ((reply,), _) = futures_util::future::try_join(set, del).await?;
        return Ok(reply != Value::Nil);
    }
    pipe.cmd("DEL").arg(marker).ignore();
    let (reply,): (Value,) = pipe.query_async(&mut conn).await?;
    Ok(reply != Value::Nil)
}

/// `SET` of every pair, each with its own TTL.
pub(crate) async fn set_many(
    mut conn: Conn,
    items: &[(String, Vec<u8>)],
    ttls: &[Option<Duration>],
    retrack: bool,
) -> Result<(), RedisError> {
    if items.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    conn.pipelined(&keys, 0, |p, i| {
        let w = Write {
            key: &items[i].0,
            value: &items[i].1,
            ttl: ttls.get(i).copied().flatten(),
            only_new: false,
            clear: None,
            retrack,
        };
        set_cmd(p, &w).ignore();
    })
    .await
    .map(drop)
}

/// Writes an absence marker for `ttl`.
pub(crate) async fn set_absent(
    mut conn: Conn,
    marker: &str,
    ttl: Duration,
) -> Result<(), RedisError> {
    redis::cmd("SET")
        .arg(marker)
        .arg("1")
        .arg("PX")
        .arg(ms(ttl))
        .query_async::<()>(&mut conn)
        .await
}

/// The remaining TTL of `key` in ms (`None`: no such key, or no TTL).
pub(crate) async fn pttl(mut conn: Conn, key: &str) -> Result<Option<u64>, RedisError> {
    let v: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await?;
    Ok(pttl_of(v))
}

pub(crate) async fn del(mut conn: Conn, key: &str) -> Result<bool, RedisError> {
    let n: u64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
    Ok(n > 0)
}

/// Deletes `key` and, when given, its absence marker; says whether either existed.
pub(crate) async fn del_with(
    mut conn: Conn,
    key: &str,
    marker: Option<&str>,
) -> Result<bool, RedisError> {
    let Some(marker) = marker else {
        return del(conn, key).await;
    };
    #[cfg(feature = "cluster")]
    if let Conn::Cluster(_) = &conn {
        let (a, b) =
            futures_util::future::try_join(del(conn.clone(), key), del(conn, marker)).await?;
        return Ok(a || b);
    }
    let (a, b): (u64, u64) = redis::pipe()
        .cmd("DEL")
        .arg(key)
        .cmd("DEL")
        .arg(marker)
        .query_async(&mut conn)
        .await?;
    Ok(a + b > 0)
}

pub(crate) async fn exists(mut conn: Conn, key: &str) -> Result<bool, RedisError> {
    let n: u64 = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
    Ok(n > 0)
}

/// `PEXPIRE` (`retrack`: see [`PEXPIRE_TRACKED`]).
pub(crate) async fn pexpire(
    mut conn: Conn,
    key: &str,
    ttl: Duration,
    retrack: bool,
) -> Result<bool, RedisError> {
    let mut pipe = redis::pipe();
    pexpire_cmd(&mut pipe, key, ttl, retrack);
    let (n,): (u64,) = pipe.query_async(&mut conn).await?;
    Ok(n > 0)
}

/// `PEXPIRE` of every key (`retrack`: see [`PEXPIRE_TRACKED`]).
pub(crate) async fn pexpire_many(
    mut conn: Conn,
    keys: &[String],
    ttl: Duration,
    retrack: bool,
) -> Result<Vec<bool>, RedisError> {
    conn.pipelined(keys, 1, |p, i| pexpire_cmd(p, &keys[i], ttl, retrack))
        .await?
        .into_iter()
        .map(|v| Ok(redis::from_redis_value::<u64>(v)? > 0))
        .collect()
}

/// Every key matching `pattern`, by `SCAN` (never `KEYS`), on every primary.
pub(crate) async fn scan(mut conn: Conn, pattern: &str) -> Result<Vec<Vec<u8>>, RedisError> {
    let mut out = conn
        .scan_primaries(|cursor| {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            cmd
        })
        .await?;
    // SCAN may return a key more than once.
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Unlinks `keys` in batches (by hash slot on a cluster); returns how many existed.
pub(crate) async fn unlink<K: AsRef<[u8]> + redis::ToRedisArgs>(
    mut conn: Conn,
    keys: &[K],
) -> Result<usize, RedisError> {
    #[cfg(feature = "cluster")]
    if let Conn::Cluster(_) = &conn {
        // Keys on many slots: one pipeline per slot, all at once (a loop of one `UNLINK` per
        // slot would pay a round trip per slot).
        let mut removed = 0;
        for batch in keys.chunks(1000) {
            for reply in conn
                .pipelined(batch, 1, |p, i| {
                    p.cmd("UNLINK").arg(&batch[i]);
                })
                .await?
            {
                removed += redis::from_redis_value::<usize>(reply)?;
            }
        }
        return Ok(removed);
    }
    let mut removed = 0;
    for group in conn.key_groups(keys) {
        for batch in group.chunks(1000) {
            removed += redis::cmd("UNLINK")
                .arg(batch)
                .query_async::<usize>(&mut conn)
                .await?;
        }
    }
    Ok(removed)
}
