//! The blocking front's reads, made on the calling thread: a small pool of synchronous
//! connections to the one server, so that an L1 miss costs one round trip from this thread
//! instead of a hand-off to the background runtime that drives the shared connection, and back
//! (two thread wake-ups, which on a busy or virtual machine can cost more than the round trip).
//!
//! Only reads go this way, and only while the shared connection is up with tracking on: writes
//! must use the shared connection (its pushes are ordered with its replies, which is how a
//! write's echo is told from another client's write: see `local/coherence.rs`), and an L1 fill
//! needs the invalidations of that connection. Fills
//! stay guarded by the L1's epochs exactly as for reads on the shared connection. A pooled
//! connection belongs to one generation of the shared connection and one server run (its
//! `run_id`): after a reconnect or a server restart, old ones are dropped and new ones are
//! checked against the server the shared connection talks to.
//!
//! With key-based tracking, Redis tracks a key for the connection that read it: each pooled
//! connection is made with `CLIENT TRACKING ON REDIRECT <id of the shared connection>`, so the
//! invalidations of what it reads arrive on the shared connection as `invalidate` pushes (a
//! RESP3 target gets pushes; a RESP2 one would need Pub/Sub on `__redis__:invalidate`). A
//! reconnect makes a new shared connection with a new id: the new generation's pooled
//! connections redirect to it. Redis forgets what a closed connection read, so while its
//! generation is current a pooled connection is never closed by the pool (no idle cap), one
//! that fails is reported, so the caller can treat it as a lost connection, and idle ones are
//! pinged by the keep-alive ([`BlockingReads::ping_tracked`]) so that the server's idle
//! `timeout` does not close them. One closed anyway (`CLIENT KILL`) is found within 10 ms by a
//! look at its socket ([`BlockingReads::closed_idle`]; the connections are our own, see
//! `read_conn.rs`; over TLS there is no pool: see [`watchable`](crate::read_conn::watchable)).
//! A write of a
//! key such a connection read is pushed for it too: the caller is told which reads were
//! tracked, so the L1 expects that push (see `local/coherence.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{ErrorKind, RedisError};
use tokio::runtime::Handle;

use crate::read_conn::ReadConn;

/// Most idle connections kept.
const MAX_IDLE: usize = 16;

/// A pool of synchronous connections to one server.
#[derive(Clone)]
pub(crate) struct BlockingReads {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    idle: Mutex<Vec<Idle>>,
    /// A connection is being made in the background.
    creating: AtomicBool,
    /// Idle connections out of the pool for a ping (see [`BlockingReads::ping_tracked`]).
    pinging: AtomicUsize,
    /// Told when a connection that tracks is pooled (see [`BlockingReads::tracked_pooled`]).
    tracked: tokio::sync::Notify,
}

/// A pooled connection: its shared-connection generation, and the read/write timeout its
/// socket has now (set again only when a caller wants another).
struct Idle {
    generation: u64,
    /// Tracks what it reads (redirected to the shared connection): never dropped while
    /// `generation` is current.
    tracked: bool,
    timeout: Duration,
    conn: ReadConn,
}

/// The server's `run_id` (from `INFO server`): which run of the server a connection reaches.
pub(crate) fn run_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(str::trim)
}

impl BlockingReads {
    /// A pool of connections to `client`'s server (one [`watchable`](crate::read_conn::watchable)).
    pub(crate) fn new(client: redis::Client) -> Self {
        BlockingReads {
            inner: Arc::new(Inner {
                client,
                idle: Mutex::new(Vec::new()),
                creating: AtomicBool::new(false),
                pinging: AtomicUsize::new(0),
                tracked: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Runs `op` on an idle connection belonging to `generation` (`at`: the generation, the
    /// server run, and the client id to redirect invalidations to, with key-based tracking).
    /// `None` when there is none: the read should go through the shared connection, while a new
    /// connection is made in the background (never on the caller's time: a handshake with a
    /// stalled server must not outlast the caller's timeout) and checked to reach server run
    /// `server`. Otherwise the result, whether the connection tracks what it reads (for the
    /// client id of `at`), and whether it was dropped while tracking (it failed: what it
    /// tracked is lost).
    pub(crate) fn run<T>(
        &self,
        rt: &Handle,
        at: (u64, &str, Option<u64>),
        connect_timeout: Duration,
        timeout: Duration,
        op: impl FnOnce(&mut ReadConn) -> Result<T, RedisError>,
    ) -> Option<(Result<T, RedisError>, bool, bool)> {
        let generation = at.0;
        let pooled = {
            let mut idle = crate::lock::lock(&self.inner.idle);
            idle.retain(|i| i.generation == generation);
            idle.pop()
        };
        let Some(mut idle) = pooled else {
            // None idle may just mean one is out for a ping: no new one then (tracked ones are
            // never closed, so each made for nothing would stay).
            if self.inner.pinging.load(Ordering::Acquire) == 0 {
                self.grow(rt, at, connect_timeout);
            }
            return None;
        };
        if idle.timeout != timeout {
            if let Err(e) = idle
                .conn
                .set_read_timeout(Some(timeout))
                .and_then(|()| idle.conn.set_write_timeout(Some(timeout)))
            {
                return Some((Err(e), idle.tracked, idle.tracked));
            }
            idle.timeout = timeout;
        }
        let result = op(&mut idle.conn);
        // A connection that failed on the way (or timed out half-way) may hold a stray reply:
        // drop it. An error reply from the server ends a whole exchange (redis-rs reads every
        // reply of a pipeline), so that connection is kept. A tracked connection that is not
        // kept loses what it tracked: the caller is told.
        let clean = match &result {
            Ok(_) => true,
            Err(e) => matches!(e.kind(), ErrorKind::Server(_)),
        };
        let tracked = idle.tracked;
        let dropped = !clean && tracked;
        if clean {
            self.inner.put(idle);
        }
        Some((result, tracked, dropped))
    }

    /// Pings each idle connection of `generation` that tracks what it reads, one at a time
    /// (each is out of the pool only while its ping is in flight), within `timeout`. This keeps
    /// them from being closed by the server's idle `timeout`, and finds one the server closed
    /// anyway (`CLIENT KILL`): Redis forgot what it tracked without a push, so the caller must
    /// treat that as a lost connection. Returns whether every ping was answered.
    pub(crate) fn ping_tracked(&self, generation: u64, timeout: Duration) -> bool {
        let count = crate::lock::lock(&self.inner.idle).len();
        for _ in 0..count {
            let next = {
                let mut idle = crate::lock::lock(&self.inner.idle);
                idle.retain(|i| i.generation == generation);
                // The least recently used first: it was put back last, at the end.
                let at = idle.iter().position(|i| i.tracked);
                at.map(|at| {
                    self.inner.pinging.fetch_add(1, Ordering::AcqRel);
                    idle.remove(at)
                })
            };
            let Some(mut conn) = next else {
                return true;
            };
            let answered = conn
                .conn
                .set_read_timeout(Some(timeout))
                .and_then(|()| conn.conn.set_write_timeout(Some(timeout)))
                .and_then(|()| conn.conn.request(&redis::cmd("PING")));
            conn.timeout = timeout;
            let alive = answered.is_ok();
            if alive {
                self.inner.put(conn);
            }
            self.inner.pinging.fetch_sub(1, Ordering::AcqRel);
            if !alive {
                return false;
            }
        }
        true
    }

    /// Looks at the sockets of the idle connections of `generation` that track what they read
    /// (without a round trip: see `read_conn.rs`); says whether one was closed by the server
    /// (it is dropped: what it tracked is forgotten, so the caller must treat that as a lost
    /// connection). Cheap enough to run every few milliseconds.
    pub(crate) fn closed_idle(&self, generation: u64) -> bool {
        let mut closed = false;
        crate::lock::lock(&self.inner.idle).retain_mut(|i| {
            if i.generation != generation {
                return false;
            }
            if i.tracked && i.conn.closed_while_idle() {
                closed = true;
                return false;
            }
            true
        });
        closed
    }

    /// Whether any idle connection tracks what it reads (then [`BlockingReads::closed_idle`]
    /// has something to look at).
    pub(crate) fn tracks(&self) -> bool {
        crate::lock::lock(&self.inner.idle)
            .iter()
            .any(|i| i.tracked)
    }

    /// Resolves once a connection that tracks what it reads has been pooled since the last
    /// call (at once if one was meanwhile).
    pub(crate) async fn tracked_pooled(&self) {
        self.inner.tracked.notified().await;
    }

    /// Makes one more connection in the background, unless one is on its way.
    fn grow(&self, rt: &Handle, at: (u64, &str, Option<u64>), connect_timeout: Duration) {
        if self.inner.creating.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let (generation, server, redirect) = (at.0, at.1.to_owned(), at.2);
        rt.spawn_blocking(move || {
            if let Ok(Some(conn)) = inner.connect(&server, redirect, connect_timeout) {
                inner.put(Idle {
                    generation,
                    tracked: redirect.is_some(),
                    timeout: connect_timeout,
                    conn,
                });
            }
            inner.creating.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    /// Pools `conn`. Untracked connections beyond [`MAX_IDLE`] are closed; tracked ones never
    /// are (their number is bounded by how many threads read at once, since one is made only
    /// when none is idle).
    fn put(&self, conn: Idle) {
        let mut idle = crate::lock::lock(&self.idle);
        if conn.tracked {
            self.tracked.notify_one();
        }
        if conn.tracked || idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// A new connection, if it reaches server run `server`; with `redirect`, tracking the keys
    /// it reads for the shared connection with that client id.
    fn connect(
        &self,
        server: &str,
        redirect: Option<u64>,
        connect_timeout: Duration,
    ) -> Result<Option<ReadConn>, RedisError> {
        let mut conn = ReadConn::connect(self.client.get_connection_info(), connect_timeout)?;
        let info: String =
            redis::from_redis_value(conn.request(redis::cmd("INFO").arg("server"))?)?;
        if run_id(&info) != Some(server) {
            return Ok(None);
        }
        if let Some(id) = redirect {
            conn.request(
                redis::cmd("CLIENT")
                    .arg("TRACKING")
                    .arg("ON")
                    .arg("REDIRECT")
                    .arg(id),
            )?;
        }
        Ok(Some(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::run_id;

    #[test]
    fn run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:3f2a9c\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info), Some("3f2a9c"));
        assert_eq!(run_id("# Server\r\nredis_version:7\r\n"), None);
    }
}
