//! Every command the crate sends, built and its replies parsed: reads (`GET`, `GET`+`PTTL`,
//! `GETEX`, with an absence marker), writes (`SET` and its tracked script), `PEXPIRE`, `DEL`,
//! `SCAN`, `UNLINK`. They run on a connection that [`super::connection`] provides.

use std::time::{Duration, Instant};

use redis::{RedisError, Value};

use super::fill::{Cond, TraceKeys, fill_value_cmd, read_traces, traces_reply};
use crate::conn::Conn;

/// A value and, when asked, its remaining TTL in milliseconds (`None`: no TTL) and whether an
/// absence marker exists.
pub(crate) struct Fetched {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) pttl: Option<u64>,
    pub(crate) absent: bool,
    /// The tokens of the key's write trace and its cache's clear trace, when a load's read
    /// asked for them (see [`super::fill`]).
    pub(crate) traces: Option<[Option<Vec<u8>>; 2]>,
}

impl Fetched {
    fn new(value: Option<Vec<u8>>, pttl: Option<u64>) -> Self {
        Fetched {
            value,
            pttl,
            absent: false,
            traces: None,
        }
    }

    /// A value read with its `PTTL` reply (`-2`: gone between the two commands; `-1`: no
    /// TTL).
    fn with_pttl(value: Option<Vec<u8>>, pttl: i64) -> Self {
        if pttl == -2 {
            return Fetched::new(None, None);
        }
        Fetched::new(value, pttl_of(pttl))
    }
}

/// A `PTTL` reply as a TTL in ms (`None` for `-1`, no TTL, and `-2`, no key).
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

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

// With key-based tracking (which tracks without `NOLOOP`), a write of a key this connection
// tracks is pushed back to it as an invalidation (an *echo*), and ends its tracking of the key;
// a write command is not tracked itself. A write that leaves a value in the L1 (`SET`,
// `GETEX`) therefore runs in a script that reads the key with `PTTL` first, so that Redis
// echoes the write exactly once, whatever this connection tracked before (the L1 expects that
// one echo: see `local/coherence.rs`), and again after, so that Redis tracks the key for this
// connection before any other client can write it. (A script rather than `MULTI`/`EXEC`: an
// invalidation redirected to this connection by the blocking front's read connections may be
// written in the middle of an `EXEC` reply, but not into a script's reply.) A `PEXPIRE`
// (`refresh`) is sent as it is: its echo drops the entry, which the next read fills again.

/// `SET KEYS[1] ARGV[1] [ARGV[2..]]` (`PX ms`, `NX`) between two reads of the key (see above);
/// replies as `SET`.
const SET_TRACKED: &str = "redis.call('PTTL', KEYS[1]) \
     local r = redis.call('SET', KEYS[1], unpack(ARGV)) redis.call('PTTL', KEYS[1]) return r";
/// `GETEX KEYS[1] PX ARGV[1]` between two reads of the key (see above).
const GETEX_TRACKED: &str = "redis.call('PTTL', KEYS[1]) \
     local v = redis.call('GETEX', KEYS[1], 'PX', ARGV[1]) redis.call('PTTL', KEYS[1]) return v";

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

fn pexpire_cmd(pipe: &mut redis::Pipeline, key: &str, ttl: Duration) {
    pipe.cmd("PEXPIRE").arg(key).arg(ms(ttl));
}

/// `GET key` + `PTTL key` (see [`Fetched::with_pttl`] for the replies).
fn get_with_pttl_cmd(pipe: &mut redis::Pipeline, key: &str) {
    pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
}

/// Adds the commands of one read to `pipe`: `GET`, `GET` + `PTTL`, or `GETEX` (`retrack`: see
/// [`GETEX_TRACKED`]).
fn read_cmds(pipe: &mut redis::Pipeline, key: &str, mode: ReadMode, retrack: bool) {
    match mode {
        ReadMode::Plain => {
            pipe.cmd("GET").arg(key);
        }
        ReadMode::WithTtl => {
            get_with_pttl_cmd(pipe, key);
        }
        ReadMode::Refresh(ttl) => getex_cmd(pipe, key, ttl, retrack),
    };
}

/// `e` (from running `pipe`) as the error of the command that failed, named: "refused by
/// Redis - NoPerm: `PTTL`: ..." rather than redis-rs's "Pipeline failure: [(Index 1, ...)]".
/// Errors that are not a server's error reply are given back as they are.
pub(crate) fn named(pipe: &redis::Pipeline, e: RedisError) -> RedisError {
    if !matches!(e.kind(), redis::ErrorKind::Server(_)) {
        return e;
    }
    let Some(errors) = e.clone().into_server_errors() else {
        return e;
    };
    let Some((index, error)) = errors.first() else {
        return e;
    };
    refused(pipe, *index, error)
}

/// The error reply `error` to command `index` of `pipe`, naming the command.
fn refused(pipe: &redis::Pipeline, index: usize, error: &redis::ServerError) -> RedisError {
    let kind = error
        .kind()
        .map_or(redis::ErrorKind::Extension, redis::ErrorKind::Server);
    let name = pipe
        .cmd_iter()
        .nth(index)
        .and_then(|c| c.args_iter().next())
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).to_uppercase(),
            _ => "?".to_owned(),
        })
        .unwrap_or_else(|| "?".to_owned());
    RedisError::from((kind, "refused by Redis", format!("`{name}`: {error}")))
}

/// Runs `pipe` on `conn`, naming a refused command (see [`named`]).
async fn query<T: redis::FromRedisValue>(
    pipe: &redis::Pipeline,
    conn: &mut Conn,
) -> Result<T, RedisError> {
    pipe.query_async(conn).await.map_err(|e| named(pipe, e))
}

/// What the replies of [`read_cmds`] say.
fn read_reply(raw: Vec<Value>, mode: ReadMode) -> Result<Fetched, RedisError> {
    let mut raw = raw.into_iter();
    let value: Option<Vec<u8>> = redis::from_redis_value(raw.next().unwrap_or(Value::Nil))?;
    match mode {
        ReadMode::Plain => Ok(Fetched::new(value, None)),
        ReadMode::WithTtl => {
            let pttl: i64 = redis::from_redis_value(raw.next().unwrap_or(Value::Int(-2)))?;
            Ok(Fetched::with_pttl(value, pttl))
        }
        ReadMode::Refresh(ttl) => Ok(Fetched::new(value, Some(ms(ttl)))),
    }
}

/// Adds the reply of `EXISTS marker` to a read.
fn with_marker(mut fetched: Fetched, exists: Value) -> Result<Fetched, RedisError> {
    fetched.absent = redis::from_redis_value::<u64>(exists)? > 0;
    Ok(fetched)
}

/// What a read asks for besides the value: the key's absence marker, and (a load's read) the
/// tokens its fill will compare (see [`super::fill`]). Both sit in the value key's slot, so
/// they join the value's pipeline on a cluster too.
#[derive(Clone, Copy, Default)]
pub(crate) struct Also<'a> {
    pub(crate) marker: Option<&'a str>,
    pub(crate) traces: Option<&'a TraceKeys>,
}

impl Also<'_> {
    /// Whether the tokens are read with the value, in one `MGET` (value, trace, clear trace),
    /// which costs Redis no command more than the read alone (not with `GETEX`).
    fn merged(&self, mode: ReadMode) -> bool {
        self.traces.is_some() && !matches!(mode, ReadMode::Refresh(_))
    }

    /// The whole read: the value's commands (see [`read_cmds`]) and these.
    fn request(&self, key: &str, mode: ReadMode, retrack: bool) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        match self.traces {
            Some(keys) if self.merged(mode) => {
                pipe.cmd("MGET")
                    .arg(key)
                    .arg(&keys.trace)
                    .arg(&keys.cleared);
                if let ReadMode::WithTtl = mode {
                    pipe.cmd("PTTL").arg(key);
                }
            }
            _ => read_cmds(&mut pipe, key, mode, retrack),
        }
        self.add(&mut pipe, mode);
        pipe
    }

    /// Adds the commands to `pipe`, after the read's (those [`Also::merged`] did not take).
    fn add(&self, pipe: &mut redis::Pipeline, mode: ReadMode) {
        if let Some(marker) = self.marker {
            pipe.cmd("EXISTS").arg(marker);
        }
        if let Some(keys) = self.traces
            && !self.merged(mode)
        {
            read_traces(pipe, keys);
        }
    }

    /// The replies of the read and of these commands.
    fn parse(&self, mut raw: Vec<Value>, mode: ReadMode) -> Result<Fetched, RedisError> {
        let merged = self.merged(mode);
        let mut traces = match self.traces {
            Some(_) if !merged => Some(traces_reply(raw.pop().unwrap_or(Value::Nil))?),
            _ => None,
        };
        let exists = self.marker.map(|_| raw.pop().unwrap_or(Value::Int(0)));
        let mut fetched = if merged {
            let mut raw = raw.into_iter();
            let mut values: Vec<Option<Vec<u8>>> =
                redis::from_redis_value(raw.next().unwrap_or(Value::Array(Vec::new())))?;
            values.resize(3, None);
            let cleared = values.pop().flatten();
            let trace = values.pop().flatten();
            let value = values.pop().flatten();
            traces = Some([trace, cleared]);
            match mode {
                ReadMode::WithTtl => {
                    let pttl: i64 = redis::from_redis_value(raw.next().unwrap_or(Value::Int(-2)))?;
                    Fetched::with_pttl(value, pttl)
                }
                _ => Fetched::new(value, None),
            }
        } else {
            read_reply(raw, mode)?
        };
        if let Some(exists) = exists {
            fetched = with_marker(fetched, exists)?;
        }
        fetched.traces = traces;
        Ok(fetched)
    }
}

/// Reads `key` (see [`ReadMode`]) and what `also` asks for, in one pipeline.
pub(crate) async fn get(
    mut conn: Conn,
    key: &str,
    mode: ReadMode,
    also: Also<'_>,
    retrack: bool,
) -> Result<Fetched, RedisError> {
    let pipe = also.request(key, mode, retrack);
    let raw: Vec<Value> = query(&pipe, &mut conn).await?;
    also.parse(raw, mode)
}

/// [`get`] on a synchronous connection (one server), all of it within `timeout`.
pub(crate) fn get_blocking(
    conn: &mut crate::read_conn::ReadConn,
    timeout: Duration,
    key: &str,
    mode: ReadMode,
    also: Also<'_>,
) -> Result<Fetched, RedisError> {
    let pipe = also.request(key, mode, false);
    let raw = query_within(conn, &pipe, timeout)?;
    also.parse(raw, mode)
}

/// Runs `pipe` on a synchronous connection whose socket timeout is `timeout`, within about
/// `timeout` for the whole pipeline: a failure to read a reply ends the exchange (redis-rs's
/// `query` goes on reading the other replies, a full socket timeout each, so a stalled server
/// made a two-command read take twice the timeout), and a reply still awaited past a tenth of
/// the timeout is awaited only for what is left of it (so at most 1.1x in all; the fast path
/// makes no extra system call). After an error other than a server's error reply the
/// connection must be dropped (a reply may still be on its way).
fn query_within(
    conn: &mut crate::read_conn::ReadConn,
    pipe: &redis::Pipeline,
    timeout: Duration,
) -> Result<Vec<Value>, RedisError> {
    let start = Instant::now();
    conn.send_packed_command(&pipe.get_packed_pipeline())?;
    let mut replies = Vec::with_capacity(pipe.len());
    let mut refusal = None;
    let mut shortened = false;
    while replies.len() < pipe.len() {
        let elapsed = start.elapsed();
        let Some(left) = timeout.checked_sub(elapsed).filter(|l| !l.is_zero()) else {
            return Err(timed_out(timeout));
        };
        if elapsed > timeout / 10 {
            conn.set_read_timeout(Some(left))?;
            shortened = true;
        }
        match conn.recv_response()? {
            // Not a reply (RESP3 may put pushes between replies).
            Value::Push { .. } => {}
            Value::ServerError(e) => {
                // The other replies still come: read them, so the connection stays usable.
                refusal.get_or_insert((replies.len(), e));
                replies.push(Value::Nil);
            }
            v => replies.push(v),
        }
    }
    if shortened {
        conn.set_read_timeout(Some(timeout))?;
    }
    match refusal {
        Some((index, e)) => Err(refused(pipe, index, &e)),
        None => Ok(replies),
    }
}

/// The error of a synchronous exchange that ran out of time (`is_timeout()`).
fn timed_out(timeout: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no reply within {timeout:?}"),
    ))
}

/// Reads of `keys` (`retrack`: see [`GETEX_TRACKED`]).
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
                .pipelined(keys, 2, |p, i| get_with_pttl_cmd(p, &keys[i]))
                .await?;
            let mut out = Vec::with_capacity(keys.len());
            let mut it = raw.into_iter();
            while let (Some(v), Some(t)) = (it.next(), it.next()) {
                let value: Option<Vec<u8>> = redis::from_redis_value(v)?;
                let pttl: i64 = redis::from_redis_value(t)?;
                out.push(Fetched::with_pttl(value, pttl));
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
    /// A load's fill: written only if nothing wrote the key since the load's read (see
    /// [`super::fill`]); its marker is cleared by the fill itself (`clear` is `None` then).
    pub(crate) cond: Option<Cond<'a>>,
}

/// The command of one write: `SET` (or [`SET_TRACKED`] when `retrack`), with `PX` and `NX`.
pub(crate) fn write_cmd(w: &Write<'_>) -> redis::Cmd {
    if let Some(cond) = &w.cond {
        return fill_value_cmd(w, cond);
    }
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

/// Runs `w`; says whether the value was written (always, unless `NX` found a value).
pub(crate) async fn set(mut conn: Conn, w: Write<'_>) -> Result<bool, RedisError> {
    let mut pipe = redis::pipe();
    pipe.add_command(write_cmd(&w));
    let Some(marker) = w.clear else {
        let (reply,): (Value,) = query(&pipe, &mut conn).await?;
        return Ok(reply != Value::Nil);
    };
    #[cfg(feature = "cluster")]
    if let Conn::Cluster(_) = &conn {
        let mut other = conn.clone();
        let set = query::<(Value,)>(&pipe, &mut conn);
        let mut del = redis::cmd("DEL");
        del.arg(marker);
        let del = del.query_async::<Value>(&mut other);
        let ((reply,), _) = futures_util::future::try_join(set, del).await?;
        return Ok(reply != Value::Nil);
    }
    pipe.cmd("DEL").arg(marker).ignore();
    let (reply,): (Value,) = query(&pipe, &mut conn).await?;
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
            cond: None,
        };
        p.add_command(write_cmd(&w)).ignore();
    })
    .await
    .map(drop)
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

pub(crate) async fn exists(mut conn: Conn, key: &str) -> Result<bool, RedisError> {
    let n: u64 = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
    Ok(n > 0)
}

/// `PEXPIRE`.
pub(crate) async fn pexpire(mut conn: Conn, key: &str, ttl: Duration) -> Result<bool, RedisError> {
    let mut pipe = redis::pipe();
    pexpire_cmd(&mut pipe, key, ttl);
    let (n,): (u64,) = query(&pipe, &mut conn).await?;
    Ok(n > 0)
}

/// `PEXPIRE` of every key.
pub(crate) async fn pexpire_many(
    mut conn: Conn,
    keys: &[String],
    ttl: Duration,
) -> Result<Vec<bool>, RedisError> {
    conn.pipelined(keys, 1, |p, i| pexpire_cmd(p, &keys[i], ttl))
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

// ---- leases (`distributed_lock`, see `load/lease.rs`) -------------------------------------

/// Deletes the lease `KEYS[1]` if it still holds the token `ARGV[1]`.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// What an attempt to take a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The attempt holds the lease now.
    pub(crate) acquired: bool,
    /// What is left of the lease (of whoever holds it), if Redis says.
    pub(crate) left: Option<Duration>,
}

/// A lease to take: its key, the taker's token, how long it lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseOn<'a> {
    pub(crate) key: &'a str,
    pub(crate) token: &'a str,
    pub(crate) lease: Duration,
}

/// `SET lease token NX PX ms` + `PTTL lease`.
fn lease_cmds(pipe: &mut redis::Pipeline, lease: LeaseOn<'_>) {
    pipe.cmd("SET")
        .arg(lease.key)
        .arg(lease.token)
        .arg("NX")
        .arg("PX")
        .arg(ms(lease.lease))
        .cmd("PTTL")
        .arg(lease.key);
}

/// What [`lease_cmds`]'s replies say.
fn lease_reply(set: Value, pttl: Value) -> Result<Taken, RedisError> {
    let acquired = !matches!(set, Value::Nil);
    let pttl: i64 = redis::from_redis_value(pttl)?;
    Ok(Taken {
        acquired,
        left: pttl_of(pttl).map(Duration::from_millis),
    })
}

/// Tries to take `lease`, then reads the value key `key` as [`get`] does: one pipeline on one
/// server, the lease first (whoever takes a lease its holder released then sees the value the
/// holder wrote before releasing it); on a cluster, where the two may sit on different slots,
/// two round trips in that order.
pub(crate) async fn take_lease_and_get(
    mut conn: Conn,
    lease: LeaseOn<'_>,
    key: &str,
    mode: ReadMode,
    also: Also<'_>,
    retrack: bool,
) -> Result<(Taken, Fetched), RedisError> {
    #[cfg(feature = "cluster")]
    if let Conn::Cluster(_) = &conn {
        let mut pipe = redis::pipe();
        lease_cmds(&mut pipe, lease);
        let (set, pttl): (Value, Value) = query(&pipe, &mut conn).await?;
        let taken = lease_reply(set, pttl)?;
        let fetched = get(conn, key, mode, also, retrack).await?;
        return Ok((taken, fetched));
    }
    let mut pipe = redis::pipe();
    lease_cmds(&mut pipe, lease);
    for cmd in also.request(key, mode, retrack).cmd_iter() {
        pipe.add_command(cmd.clone());
    }
    let raw: Vec<Value> = query(&pipe, &mut conn).await?;
    let mut raw = raw.into_iter();
    let taken = lease_reply(
        raw.next().unwrap_or(Value::Nil),
        raw.next().unwrap_or(Value::Int(-2)),
    )?;
    let fetched = also.parse(raw.collect(), mode)?;
    Ok((taken, fetched))
}

/// Releases the lease `key` if it still holds `token` (compare-and-delete).
pub(crate) async fn release_lease(
    mut conn: Conn,
    key: &str,
    token: &str,
) -> Result<(), RedisError> {
    redis::cmd("EVAL")
        .arg(RELEASE)
        .arg(1)
        .arg(key)
        .arg(token)
        .query_async::<i64>(&mut conn)
        .await
        .map(drop)
}
