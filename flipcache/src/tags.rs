//! Tags: remove a group of entries everywhere in one call.
//!
//! An entry written with tags (`set_with_tags`, a loader's [`Loaded::tags`](crate::Loaded::tags),
//! a memo's `tags = [...]`) is listed in one index per tag, a sorted set at
//! `__flipcache__:tag:{name}:{tag}` (outside the `{name}:{key}` layout: `len`, `keys`, `clear`
//! and Python FlipCache never see it). `remove_by_tag` deletes the listed keys themselves in
//! Redis, in batches of [`BATCH`] (500: each claim script then stays around a millisecond or two) with `UNLINK` (per hash slot on a cluster), so Redis's
//! tracking invalidations carry the removal to every process's L1 and Python readers see the
//! keys gone.
//!
//! # The index
//! A member is the entry's Redis key; its score is when the entry expires (Redis server time
//! in ms, `+inf` without TTL). Every tagged write trims up to [`TRIM`] members dead for more
//! than [`GRACE_MS`] and sets the index's own expiry to [`GRACE_MS`] past its longest-lived
//! member, so an index never outgrows its live members by more than the writes of the last
//! [`GRACE_MS`] (and disappears with them). Removal drains the index of every member listed when
//! it started (members tagged again by later writes may stay: see below).
//!
//! # The guarantee
//! Once `remove_by_tag(t)` returns, every entry whose tagged write had *returned* before the
//! removal started is deleted in Redis (unless overwritten or expired meanwhile). A tagged write
//! concurrent with the removal either ends up deleted, or was written after the removal
//! reached it and stays indexed (a later removal gets it): no pre-removal value survives, and
//! no surviving tagged value is missing from its index. How:
//!
//! - **Writer:** `ZADD` the key to each index, then `SET` the value, then `ZSCORE` each index.
//!   If an index no longer lists the key unclaimed (see below), a removal took it between our
//!   `ZADD` and our check and may have deleted the key *before* our `SET` landed: the writer
//!   deletes its own value (for a cache a deletion is always safe: the next read loads).
//!   One pipeline on one server (Redis runs a connection's commands in order); three steps on a
//!   cluster, where the indexes and the value sit on other slots.
//! - **Remover:** takes a batch of members by *claiming* them in one script (their score set
//!   to a negative claim: `-(deadline_ms * 1024 + remover id)`), `UNLINK`s them, and only then
//!   removes from the index those still bearing its claim (a writer that re-tagged one
//!   meanwhile overwrote the claim: it stays listed). Members stay visible while being removed,
//!   so a second, concurrent removal of the same tag does not return before they are gone: it
//!   `UNLINK`s other removers' claimed members itself before returning, and takes over claims
//!   whose deadline ([`LEASE_MS`]) passed (a remover that died).
//!
//! Each script and each `UNLINK` touches at most [`BATCH`] members, so removing a tag of
//! 100,000 entries never blocks Redis for more than a few milliseconds at a time.
//!
//! # Limits
//! - Other processes drop their L1 copies when Redis's invalidation reaches them (about a round
//!   trip), as for `delete`; this process's L1s are emptied before `remove_by_tag` returns.
//! - The index knows the TTL an entry was written with. An entry kept alive past it by more
//!   than [`GRACE_MS`] (`refresh_expire_time_on_get`, `refresh`) may have left its index.
//! - An untagged write of a tagged key leaves it listed: removing the tag deletes it too
//!   (harmless for a cache, where a deletion only costs a load). Entries without TTL stay listed
//!   until their tag is removed, even if deleted otherwise.
//! - Names and tags are joined with `:`: cache `p`'s tag `q:x` shares its index with cache
//!   `p:q`'s tag `x` (removing either removes both groups).

use std::time::Duration;

use redis::{RedisError, Value};

use crate::conn::Conn;
use crate::core::Core;
use crate::error::Result;
use crate::key::{FlipKey, RESERVED};
use crate::remote::Write;

/// Members claimed, and keys unlinked, per step of a removal.
pub(crate) const BATCH: usize = 500;
/// How long past its score a member stays listed (covers the time between indexing an entry
/// and writing it, when the entry's TTL starts).
pub(crate) const GRACE_MS: u64 = 2_000;
/// How many dead members a tagged write trims from an index, at most.
pub(crate) const TRIM: usize = 100;
/// How long a removal's claim on a batch holds before another removal may take it over.
pub(crate) const LEASE_MS: u64 = 30_000;

/// The index of `tag` in the cache `name`: `__flipcache__:tag:{name}:{tag}`.
pub(crate) fn index_key(name: &str, tag: &str) -> String {
    let mut out = String::with_capacity(RESERVED.len() + 6 + name.len() + tag.len());
    out.push_str(RESERVED);
    out.push_str(":tag:");
    out.push_str(name);
    out.push(':');
    out.push_str(tag);
    out
}

/// The indexes of `tags` (duplicates dropped).
pub(crate) fn index_keys(name: &str, tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags.iter().map(|t| index_key(name, t)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Lists `ARGV[1]` in the index `KEYS[1]`, expiring `ARGV[2]` ms from now (`""`: never);
/// trims members dead for more than the grace; sets the index's expiry past its last member.
const INDEX: &str = r"-- flipcache: index a tagged write
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[3])
if ARGV[2] == '' then
  redis.call('ZADD', KEYS[1], '+inf', ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], 0, now - grace, 'LIMIT', 0, tonumber(ARGV[4]))
if #dead > 0 then redis.call('ZREM', KEYS[1], unpack(dead)) end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], math.max(tonumber(top[2]), now) + grace)
end
return 1
";

/// One step of a removal from the index `KEYS[1]`. `ARGV`: the remover's id (`0..1024`), the
/// batch size, the lease (ms), the claim of its previous batch, then that batch's members
/// (unlinked since). Releases the previous batch (members still bearing its claim), then
/// claims the next: unclaimed members first, then claims whose lease ran out. Returns
/// `{claim, members, live claims of other removers}`.
const CLAIM: &str = r"-- flipcache: claim a batch to remove
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local prev = tonumber(ARGV[4])
if #ARGV >= 5 then
  local members = {unpack(ARGV, 5)}
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
  local done = {}
  for i, s in ipairs(members) do
    if scores[i] and tonumber(scores[i]) == prev then done[#done + 1] = s end
  end
  if #done > 0 then redis.call('ZREM', KEYS[1], unpack(done)) end
end
local live = -(now * 1024)
local got = redis.call('ZRANGEBYSCORE', KEYS[1], 0, '+inf', 'LIMIT', 0, n)
if #got < n then
  local above = '(' .. string.format('%.0f', live)
  local stale = redis.call('ZRANGEBYSCORE', KEYS[1], above, '(0', 'LIMIT', 0, n - #got)
  for _, m in ipairs(stale) do got[#got + 1] = m end
end
local claim = -((now + tonumber(ARGV[3])) * 1024 + id)
for i = 1, #got, 500 do
  local args = {}
  for j = i, math.min(i + 499, #got) do
    args[#args + 1] = claim
    args[#args + 1] = got[j]
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
local others = redis.call('ZCOUNT', KEYS[1], '-inf', live)
return {claim, got, others}
";

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn index_cmd(index: &str, w: &Write<'_>) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(INDEX).arg(1).arg(index).arg(w.key);
    match w.ttl {
        Some(ttl) => cmd.arg(ms(ttl)),
        None => cmd.arg(""),
    };
    cmd.arg(GRACE_MS).arg(TRIM);
    cmd
}

fn zscore_cmd(index: &str, member: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("ZSCORE");
    cmd.arg(index).arg(member);
    cmd
}

/// Whether a `ZSCORE` reply says the member is listed and unclaimed.
fn listed(score: &Value) -> bool {
    match score {
        Value::Nil => false,
        Value::Double(d) => *d >= 0.0,
        other => redis::from_redis_value::<String>(other.clone())
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|d| d >= 0.0),
    }
}

/// A tagged write (see the module docs): index, `SET`, check; deletes its own value when a
/// removal took the key meanwhile. Says whether the value was written and stands.
pub(crate) async fn set(
    mut conn: Conn,
    w: Write<'_>,
    indexes: &[String],
) -> Result<bool, RedisError> {
    let (written, scores) = match &conn {
        Conn::Single(_) => {
            let mut pipe = redis::pipe();
            for index in indexes {
                pipe.add_command(index_cmd(index, &w)).ignore();
            }
            pipe.add_command(crate::remote::write_cmd(&w));
            if let Some(marker) = w.clear {
                pipe.cmd("DEL").arg(marker).ignore();
            }
            for index in indexes {
                pipe.add_command(zscore_cmd(index, w.key));
            }
            let mut reply: Vec<Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| crate::remote::named(&pipe, e))?;
            let scores = reply.split_off(1.min(reply.len()));
            (reply.pop().unwrap_or(Value::Nil), scores)
        }
        #[cfg(feature = "cluster")]
        Conn::Cluster(_) => {
            for index in indexes {
                index_cmd(index, &w).query_async::<Value>(&mut conn).await?;
            }
            let written: Value = crate::remote::write_cmd(&w).query_async(&mut conn).await?;
            if let Some(marker) = w.clear {
                redis::cmd("DEL")
                    .arg(marker)
                    .query_async::<Value>(&mut conn)
                    .await?;
            }
            let mut scores = Vec::with_capacity(indexes.len());
            for index in indexes {
                scores.push(
                    zscore_cmd(index, w.key)
                        .query_async::<Value>(&mut conn)
                        .await?,
                );
            }
            (written, scores)
        }
    };
    if written == Value::Nil {
        // `NX` found a value: nothing of ours to check (the listing is harmless).
        return Ok(false);
    }
    if scores.len() == indexes.len() && scores.iter().all(listed) {
        return Ok(true);
    }
    // A removal claimed the key between our ZADD and our check: its UNLINK may have come
    // before our SET. Ours goes, as the removal meant.
    redis::cmd("DEL")
        .arg(w.key)
        .query_async::<Value>(&mut conn)
        .await?;
    Ok(false)
}

/// What one [`CLAIM`] step returned.
struct Claimed {
    claim: i64,
    members: Vec<String>,
    others: u64,
}

async fn claim(
    mut conn: Conn,
    index: &str,
    id: u32,
    prev: i64,
    released: &[String],
    batch: usize,
) -> Result<Claimed, RedisError> {
    let (claim, members, others): (i64, Vec<String>, u64) = redis::cmd("EVAL")
        .arg(CLAIM)
        .arg(1)
        .arg(index)
        .arg(id)
        .arg(batch)
        .arg(LEASE_MS)
        .arg(prev)
        .arg(released)
        .query_async(&mut conn)
        .await?;
    Ok(Claimed {
        claim,
        members,
        others,
    })
}

/// The members other removers hold (at most a batch per removal in progress).
async fn claimed_by_others(mut conn: Conn, index: &str) -> Result<Vec<String>, RedisError> {
    redis::cmd("ZRANGEBYSCORE")
        .arg(index)
        .arg("-inf")
        .arg("(0")
        .query_async(&mut conn)
        .await
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    /// `SET` with tags (see the module docs).
    pub(crate) async fn set_with_tags(&self, key: K, value: V, tags: &[String]) -> Result<()> {
        self.write_tagged(key, value, None, false, tags)
            .await
            .map(drop)
    }

    /// Deletes every entry listed under `tag`, in batches; returns how many existed.
    pub(crate) async fn remove_by_tag(&self, tag: &str) -> Result<usize> {
        let index = index_key(&self.name, tag);
        let id = fastrand::u32(0..1024);
        let mut prev = 0;
        let mut released: Vec<String> = Vec::new();
        let mut removed = 0;
        // Every member this removal has deleted once. A member listed again after that was
        // tagged by a write that came after the removal reached it, which may survive: once a
        // whole (not full) batch holds only such members, every member listed when the removal
        // started has been dealt with, and the removal ends instead of chasing writers that
        // keep tagging the same keys.
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut batch = BATCH;
        loop {
            let step = self
                .round_trip("tag", Some(&index), |c| {
                    claim(c, &index, id, prev, &released, batch)
                })
                .await
                .map_err(|f| self.fail(Some(&index), f))?;
            if step.members.is_empty() {
                if step.others > 0 {
                    removed += self.unlink_claimed_by_others(&index).await?;
                }
                return Ok(removed);
            }
            let whole = step.members.len() < BATCH;
            let mut fresh = false;
            for m in &step.members {
                fresh |= seen.insert(m.clone());
            }
            removed += self.unlink_members(&index, &step.members).await?;
            prev = step.claim;
            released = step.members;
            if whole && !fresh {
                // One more step releases this batch (claims nothing: a batch of 0).
                batch = 0;
            }
        }
    }

    /// `UNLINK`s `members` (this cache's Redis keys) in batches per slot, emptying their L1
    /// entries here. Each leaves a write trace first, so a load of a member in flight (absent
    /// or not) does not fill it after the removal (see `remote/fill.rs`).
    async fn unlink_members(&self, index: &str, members: &[String]) -> Result<usize> {
        let token = crate::remote::fill::token();
        self.removing(members, async {
            self.round_trip("unlink", None, |c| {
                crate::remote::fill::unlink(c, members, &token)
            })
            .await
            .map_err(|f| self.fail(Some(index), f))
        })
        .await
    }

    /// Deletes the members other removals of the tag still hold, so this one does not return
    /// before they are gone.
    async fn unlink_claimed_by_others(&self, index: &str) -> Result<usize> {
        let held = self
            .round_trip("tag", Some(index), |c| claimed_by_others(c, index))
            .await
            .map_err(|f| self.fail(Some(index), f))?;
        let mut removed = 0;
        for batch in held.chunks(BATCH) {
            removed += self.unlink_members(index, batch).await?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_live_outside_the_layout() {
        assert_eq!(index_key("users", "org:7"), "__flipcache__:tag:users:org:7");
        let tags = ["b".to_string(), "a".to_string(), "b".to_string()];
        assert_eq!(
            index_keys("c", &tags),
            ["__flipcache__:tag:c:a", "__flipcache__:tag:c:b"]
        );
    }

    #[test]
    fn only_unclaimed_scores_count_as_listed() {
        assert!(listed(&Value::Double(12.0)));
        assert!(listed(&Value::BulkString(b"inf".to_vec())));
        assert!(listed(&Value::Double(f64::INFINITY)));
        assert!(!listed(&Value::Double(-5.0)));
        assert!(!listed(&Value::BulkString(b"-1.7e15".to_vec())));
        assert!(!listed(&Value::Nil));
    }
}
