//! Conditional fills: a load stores what its loader produced only if nothing wrote the key
//! since the load's read. The commands of that protocol live here: what a load's read notes
//! ([`Seen`]), the fill script ([`FILL`]), and the writes that leave a trace a fill can see
//! ([`delete`], [`unlink`], [`set_cleared`]).
//!
//! # The protocol
//! A load's read (the `GET` + `PTTL` it makes anyway; the `GET` becomes one `MGET` of the value
//! and the tokens, so Redis runs no command more) also reads two tokens kept outside the
//! `{name}:{key}` layout, both in the value key's hash slot (see
//! `slot.rs`): the key's *write trace* (`__flipcache__:w:{tag}{name}:{key}`) and the cache's
//! *clear trace* (`__flipcache__:cleared:{name}`, one per slot on a cluster). The fill is one
//! script on the value key's slot, sent by SHA1 ([`with_scripts`]), which stores only if
//! - both tokens are what the read saw (a `delete`, `remove_by_tag` or `clear` by any flipcache
//!   process since the read changed one: `delete` and `remove_by_tag` write a fresh token
//!   (for [`TRACE_TTL`](crate::key::TRACE_TTL)) and delete in one script ([`DELETE`]); `clear`
//!   writes its token before it lists what it deletes), and
//! - the value key holds exactly the bytes the read saw, or nothing if it saw nothing (a `SET`
//!   or `DEL` by anyone since, flipcache or not, Python or `redis-cli`, changed them).
//!
//! A token that expired between the read and the fill is missing then, which differs from a
//! token the read saw; only a read that found no value and no token cannot tell a token that
//! came and went, so such a fill is skipped once its load took longer than the traces live.
//!
//! What does not stop a fill: a write that leaves the bytes as the read saw them (a `SET` of
//! the same bytes, or of other bytes and back, by a client that is not flipcache), a change of
//! the TTL alone (`EXPIRE`, `PERSIST`; flipcache's own TTL renewals by
//! `refresh_expire_time_on_get` are such changes and must not stop fills), and a `DEL` of an
//! absent key by a client that is not flipcache (it changes nothing Redis can see). And
//! `clear` deletes what it listed after its trace with plain `UNLINK`s (a trace per key would
//! cost a key per cleared key): a `SET` by another client that lands during a `clear` and is
//! deleted by it can be followed by the fill of a load that read after the `clear` began and
//! before that `SET`.

use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::{RedisError, Value};

use super::commands::{Write, ms, named};
use crate::conn::Conn;
use crate::key::{TRACE_TTL, cleared_key, trace_key};

/// The trace keys a load's read notes and its fill checks (both in the value key's slot).
#[derive(Debug, Clone)]
pub(crate) struct TraceKeys {
    /// The value key's write trace.
    pub(crate) trace: String,
    /// The cache's clear trace for the value key's slot.
    pub(crate) cleared: String,
}

/// What a load's read saw of its key: what its fill compares with (shared by the load, its
/// flight's waiters and its background refresh).
pub(crate) type Seen = std::sync::Arc<Noted>;

/// What [`Seen`] holds.
#[derive(Debug)]
pub(crate) struct Noted {
    pub(crate) keys: TraceKeys,
    /// The value's bytes, or `None`: no value.
    pub(crate) value: Option<Vec<u8>>,
    /// The write trace's token, if any.
    pub(crate) trace: Option<Vec<u8>>,
    /// The clear trace's token, if any.
    pub(crate) cleared: Option<Vec<u8>>,
    /// When the read was sent.
    pub(crate) at: Instant,
}

impl Noted {
    /// Whether a fill made now cannot be checked: the read found no value and no trace, and
    /// a trace written since may have expired already (see the module docs).
    pub(crate) fn too_old(&self) -> bool {
        // A margin for the clocks of Redis and of this process, and the fill's round trip.
        const MARGIN: Duration = Duration::from_secs(5);
        self.value.is_none() && self.at.elapsed() + MARGIN >= TRACE_TTL
    }
}

/// A fill's condition: what the read saw, and the absence marker to clear (a value fill) or
/// to write (an absence fill), which sits in the value key's slot too.
#[derive(Clone, Copy)]
pub(crate) struct Cond<'a> {
    pub(crate) seen: &'a Seen,
    pub(crate) marker: Option<&'a str>,
}

/// Adds the read of `keys`' tokens to a load's read (one `MGET`: both sit in one slot).
pub(crate) fn read_traces(pipe: &mut redis::Pipeline, keys: &TraceKeys) {
    pipe.cmd("MGET").arg(&keys.trace).arg(&keys.cleared);
}

/// The reply of [`read_traces`]: the trace's and the clear trace's tokens.
pub(crate) fn traces_reply(v: Value) -> Result<[Option<Vec<u8>>; 2], RedisError> {
    let mut tokens: Vec<Option<Vec<u8>>> = redis::from_redis_value(v)?;
    tokens.resize(2, None);
    let cleared = tokens.pop().flatten();
    let trace = tokens.pop().flatten();
    Ok([trace, cleared])
}

/// A load's fill: `KEYS` = value, write trace, clear trace[, marker]; `ARGV` = the trace and
/// clear tokens the read saw (`''`: none), `'v'` if it saw a value (else `''`), those bytes,
/// the operation (`'v'`: store the value, `'a'`: write the absence marker), `'1'` to read the
/// key again after the write (key-based tracking, as `SET_TRACKED` in `commands.rs`), the TTL
/// in ms (`''`: none), the value. Replies `nil` when something wrote the key since the read
/// (nothing is written then), else as `SET` (`OK`), or `1` for a marker.
pub(crate) const FILL: &str = r"-- flipcache: a load's conditional fill
local t = redis.call('MGET', KEYS[2], KEYS[3])
if (t[1] or '') ~= ARGV[1] or (t[2] or '') ~= ARGV[2] then return false end
local cur = redis.call('GET', KEYS[1])
if ARGV[3] == 'v' then
  if cur ~= ARGV[4] then return false end
elseif cur then
  return false
end
if ARGV[5] == 'a' then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[7])
  return 1
end
local r
if ARGV[7] == '' then
  r = redis.call('SET', KEYS[1], ARGV[8])
else
  r = redis.call('SET', KEYS[1], ARGV[8], 'PX', ARGV[7])
end
if KEYS[4] then redis.call('DEL', KEYS[4]) end
if ARGV[6] == '1' then redis.call('PTTL', KEYS[1]) end
return r";

/// A script sent by its SHA1 (`EVALSHA`), loaded (`SCRIPT LOAD`, on every primary of a
/// cluster) when Redis does not know it yet or forgot it (a restart, `SCRIPT FLUSH`).
pub(crate) struct Lua {
    code: &'static str,
    sha: String,
}

impl Lua {
    fn new(code: &'static str) -> Lua {
        Lua {
            code,
            sha: redis::Script::new(code).get_hash().to_owned(),
        }
    }

    /// `EVALSHA <sha>`, to which the caller adds the keys and arguments.
    fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha);
        cmd
    }
}

static FILL_LUA: LazyLock<Lua> = LazyLock::new(|| Lua::new(FILL));
static DELETE_LUA: LazyLock<Lua> = LazyLock::new(|| Lua::new(DELETE));

/// Runs `run` (which sends [`FILL`] or [`DELETE`] by SHA1); if Redis does not know a script,
/// loads them and runs it once more (every command `run` sends may run twice: they are
/// idempotent).
pub(crate) async fn with_scripts<T, Fut>(
    conn: Conn,
    run: impl Fn(Conn) -> Fut,
) -> Result<T, RedisError>
where
    Fut: Future<Output = Result<T, RedisError>>,
{
    match run(conn.clone()).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            for lua in [&*FILL_LUA, &*DELETE_LUA] {
                let mut c = conn.clone();
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(lua.code)
                    .query_async::<Value>(&mut c)
                    .await?;
            }
            run(conn).await
        }
        other => other,
    }
}

fn token_arg(t: &Option<Vec<u8>>) -> &[u8] {
    t.as_deref().unwrap_or_default()
}

/// The [`FILL`] command: `op` `'v'` stores `value` under `key` with `ttl`, `'a'` writes the
/// absence marker `cond.marker` for `ttl`.
fn fill_cmd(
    key: &str,
    cond: &Cond<'_>,
    op: &str,
    retrack: bool,
    ttl: Option<Duration>,
    value: &[u8],
) -> redis::Cmd {
    let seen = cond.seen;
    let mut cmd = FILL_LUA.cmd();
    cmd.arg(if cond.marker.is_some() { 4 } else { 3 })
        .arg(key)
        .arg(&seen.keys.trace)
        .arg(&seen.keys.cleared);
    if let Some(marker) = cond.marker {
        cmd.arg(marker);
    }
    cmd.arg(token_arg(&seen.trace))
        .arg(token_arg(&seen.cleared))
        .arg(if seen.value.is_some() { "v" } else { "" })
        .arg(seen.value.as_deref().unwrap_or_default())
        .arg(op)
        .arg(if retrack { "1" } else { "" });
    match ttl {
        Some(ttl) => cmd.arg(ms(ttl)),
        None => cmd.arg(""),
    };
    cmd.arg(value);
    cmd
}

/// The [`FILL`] of a value: the command a conditional [`Write`] sends (`w.cond` is set).
pub(crate) fn fill_value_cmd(w: &Write<'_>, cond: &Cond<'_>) -> redis::Cmd {
    fill_cmd(w.key, cond, "v", w.retrack, w.ttl, w.value)
}

/// Writes the absence marker `cond.marker` for `ttl`, if nothing wrote `key` since the read;
/// says whether it did.
pub(crate) async fn fill_absent(
    conn: Conn,
    key: &str,
    cond: Cond<'_>,
    ttl: Duration,
) -> Result<bool, RedisError> {
    let mut pipe = redis::pipe();
    pipe.add_command(fill_cmd(key, &cond, "a", false, Some(ttl), b""));
    let pipe = &pipe;
    with_scripts(conn, |mut c| async move {
        let (reply,): (Value,) = pipe.query_async(&mut c).await.map_err(|e| named(pipe, e))?;
        Ok(reply != Value::Nil)
    })
    .await
}

/// A fresh token for a trace.
pub(crate) fn token() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// `SET trace token PX TRACE_TTL`.
fn trace_cmd(pipe: &mut redis::Pipeline, trace: &str, token: &str) {
    pipe.cmd("SET")
        .arg(trace)
        .arg(token)
        .arg("PX")
        .arg(ms(TRACE_TTL))
        .ignore();
}

/// Sets the write trace `KEYS[2]` to `ARGV[1]` for `ARGV[2]` ms and deletes `KEYS[1]` (and
/// the absence marker `KEYS[3]`, if given), in one step; replies how many existed. One step:
/// as two commands, a `SET` by another client landing between them would be deleted, and a
/// load that read after the trace and before that `SET` could then fill what it loaded
/// before it (the model check `shuttle_a_delete_that_is_not_atomic_would_lose_to_a_fill`
/// finds that schedule).
pub(crate) const DELETE: &str = r"-- flipcache: a delete that leaves its trace
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local n = redis.call('DEL', KEYS[1])
if KEYS[3] then n = n + redis.call('DEL', KEYS[3]) end
return n";

/// The [`DELETE`] of `key` (and `marker`), leaving the trace `token`.
fn delete_cmd(key: &str, token: &str, marker: Option<&str>) -> redis::Cmd {
    let mut cmd = DELETE_LUA.cmd();
    cmd.arg(if marker.is_some() { 3 } else { 2 })
        .arg(key)
        .arg(trace_key(key));
    if let Some(marker) = marker {
        cmd.arg(marker);
    }
    cmd.arg(token).arg(ms(TRACE_TTL));
    cmd
}

/// Deletes `key` (and, when given, its absence marker), leaving its write trace `token`
/// ([`DELETE`]); says whether either existed.
pub(crate) async fn delete(
    conn: Conn,
    key: &str,
    token: &str,
    marker: Option<&str>,
) -> Result<bool, RedisError> {
    let mut pipe = redis::pipe();
    pipe.add_command(delete_cmd(key, token, marker));
    let pipe = &pipe;
    with_scripts(conn, |mut c| async move {
        let (existed,): (u64,) = pipe.query_async(&mut c).await.map_err(|e| named(pipe, e))?;
        Ok(existed > 0)
    })
    .await
}

/// Deletes `keys` (value keys), each with its write trace `token` ([`DELETE`]): one pipeline
/// on one server, one per slot on a cluster. Returns how many existed.
pub(crate) async fn unlink(conn: Conn, keys: &[String], token: &str) -> Result<usize, RedisError> {
    let mut removed = 0;
    for batch in keys.chunks(1000) {
        let replies = with_scripts(conn.clone(), |mut c| async move {
            c.pipelined(batch, 1, |p, i| {
                p.add_command(delete_cmd(&batch[i], token, None));
            })
            .await
        })
        .await?;
        for reply in replies {
            removed += redis::from_redis_value::<usize>(reply)?;
        }
    }
    Ok(removed)
}

/// Sets the clear traces of cache `name` to `token` (see the module docs): one key on one
/// server, one per hash slot on a cluster (a pipeline per primary), before a `clear` lists
/// what it deletes.
pub(crate) async fn set_cleared(mut conn: Conn, name: &str, token: &str) -> Result<(), RedisError> {
    conn.per_slot(|p, slot| trace_cmd(p, &cleared_key(name, slot), token))
        .await
}
