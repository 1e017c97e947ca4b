//! The shared connection itself: one server's multiplexed connection, or (with the `cluster`
//! feature) a Redis Cluster connection, behind one type the commands are written against; and
//! what only a cluster needs: batches split by hash slot, the list of primaries.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// A connection the commands run on. Cheap to clone (a handle to a driver task).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server (direct, or the primary a Sentinel named).
    Single(MultiplexedConnection),
    /// A Redis Cluster: redis-rs routes each command to the primary owning its key's slot.
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Runs a pipeline built per key: `build(pipe, i)` adds key `i`'s commands, each key
    /// yielding `per_key` replies. On one server that is one pipeline (one round trip); on a
    /// cluster, one pipeline per hash slot, all sent at once (a pipeline may not span slots).
    /// Replies come back in key order either way.
    pub(crate) async fn pipelined<K: AsRef<[u8]>>(
        &mut self,
        keys: &[K],
        per_key: usize,
        build: impl Fn(&mut Pipeline, usize),
    ) -> Result<Vec<Value>, RedisError> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                for i in 0..keys.len() {
                    build(&mut pipe, i);
                }
                let reply: Vec<Value> = pipe
                    .query_async(c)
                    .await
                    .map_err(|e| crate::remote::named(&pipe, e))?;
                check_count(&reply, keys.len() * per_key)?;
                Ok(reply)
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => cluster::pipelined(c, keys, per_key, build).await,
        }
    }

    /// The keys of `keys` grouped so each group may go in one multi-key command (`UNLINK`):
    /// everything on one server, by hash slot on a cluster.
    pub(crate) fn key_groups<'k, K: AsRef<[u8]>>(&self, keys: &'k [K]) -> Vec<Vec<&'k K>> {
        match self {
            Conn::Single(_) => vec![keys.iter().collect()],
            #[cfg(feature = "cluster")]
            Conn::Cluster(_) => cluster::by_slot(keys)
                .into_values()
                .map(|idx| idx.into_iter().map(|i| &keys[i]).collect())
                .collect(),
        }
    }

    /// Runs `cmd` once per primary (every primary of a cluster, or the one server) and
    /// returns each reply.
    pub(crate) async fn on_every_primary(&mut self, cmd: &Cmd) -> Result<Vec<Value>, RedisError> {
        match self {
            Conn::Single(c) => Ok(vec![cmd.query_async(c).await?]),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => {
                let mut out = Vec::new();
                for node in cluster::primaries(c).await? {
                    out.push(cluster::on_node(c, cmd, &node).await?);
                }
                Ok(out)
            }
        }
    }

    /// One pipeline per primary, built by `build` for each hash slot that primary serves
    /// (`None` on one server, which gets one pipeline), all sent at once; its replies
    /// ignored. For writes of one key per slot (`clear`'s traces).
    pub(crate) async fn per_slot(
        &mut self,
        build: impl Fn(&mut Pipeline, Option<u16>),
    ) -> Result<(), RedisError> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                build(&mut pipe, None);
                pipe.query_async::<()>(c)
                    .await
                    .map_err(|e| crate::remote::named(&pipe, e))
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => {
                let nodes = cluster::primaries(c).await?;
                let runs = nodes.iter().map(|node| {
                    let mut pipe = redis::pipe();
                    for &(a, b) in &node.ranges {
                        for slot in a..=b {
                            build(&mut pipe, Some(slot));
                        }
                    }
                    let mut c = c.clone();
                    async move { cluster::pipeline_on_node(&mut c, pipe, node).await }
                });
                futures_util::future::try_join_all(runs).await.map(drop)
            }
        }
    }

    /// `SCAN` over every primary (the one server, or each cluster primary in turn), to the end:
    /// `scan(cursor)` builds the `SCAN` command for one step. Returns every key found.
    pub(crate) async fn scan_primaries(
        &mut self,
        scan: impl Fn(u64) -> Cmd,
    ) -> Result<Vec<Vec<u8>>, RedisError> {
        let mut out = Vec::new();
        match self {
            Conn::Single(c) => {
                let mut cursor = 0;
                loop {
                    let (next, batch): (u64, Vec<Vec<u8>>) = scan(cursor).query_async(c).await?;
                    out.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => {
                for node in cluster::primaries(c).await? {
                    let mut cursor = 0;
                    loop {
                        let reply = cluster::on_node(c, &scan(cursor), &node).await?;
                        let (next, batch): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)?;
                        out.extend(batch);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The primaries' identities (`host:port`, sorted): on a cluster, what a topology change
    /// alters; on one server, nothing to watch.
    pub(crate) async fn topology(&mut self) -> Result<Vec<String>, RedisError> {
        match self {
            Conn::Single(_) => Ok(Vec::new()),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => {
                let mut nodes: Vec<String> = cluster::primaries(c)
                    .await?
                    .into_iter()
                    .map(|n| format!("{}:{}|{}", n.host, n.port, n.slots))
                    .collect();
                nodes.sort();
                Ok(nodes)
            }
        }
    }
}

/// A pipeline's replies must be as many as its commands asked for.
fn check_count(reply: &[Value], expected: usize) -> Result<(), RedisError> {
    if reply.len() == expected {
        Ok(())
    } else {
        Err(RedisError::from((
            redis::ErrorKind::Parse,
            "a pipeline returned the wrong number of replies",
        )))
    }
}

#[cfg(feature = "cluster")]
mod cluster {
    use std::collections::HashMap;

    use redis::cluster_async::ClusterConnection;
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
    use redis::{Cmd, ErrorKind, Pipeline, RedisError, Value};

    /// A primary and the slot ranges it serves (as text, to notice moves).
    pub(super) struct Node {
        pub(super) host: String,
        pub(super) port: u16,
        pub(super) slots: String,
        /// The slot ranges it serves (inclusive).
        pub(super) ranges: Vec<(u16, u16)>,
    }

    /// Indexes of `keys`, grouped by hash slot.
    pub(super) fn by_slot<K: AsRef<[u8]>>(keys: &[K]) -> HashMap<Slot, Vec<usize>> {
        let mut groups: HashMap<Slot, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            groups.entry(Slot::for_key(k)).or_default().push(i);
        }
        groups
    }

    pub(super) async fn pipelined<K: AsRef<[u8]>>(
        conn: &ClusterConnection,
        keys: &[K],
        per_key: usize,
        build: impl Fn(&mut Pipeline, usize),
    ) -> Result<Vec<Value>, RedisError> {
        let groups: Vec<Vec<usize>> = by_slot(keys).into_values().collect();
        let runs = groups.iter().map(|idx| {
            let mut pipe = redis::pipe();
            for &i in idx {
                build(&mut pipe, i);
            }
            let mut conn = conn.clone();
            async move {
                pipe.query_async::<Vec<Value>>(&mut conn)
                    .await
                    .map_err(|e| crate::remote::named(&pipe, e))
            }
        });
        let replies = futures_util::future::try_join_all(runs).await?;
        let mut out = vec![Value::Nil; keys.len() * per_key];
        for (idx, reply) in groups.iter().zip(replies) {
            super::check_count(&reply, idx.len() * per_key)?;
            let mut reply = reply.into_iter();
            for &i in idx {
                for slot in &mut out[i * per_key..(i + 1) * per_key] {
                    *slot = reply.next().unwrap_or(Value::Nil);
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn on_node(
        conn: &mut ClusterConnection,
        cmd: &Cmd,
        node: &Node,
    ) -> Result<Value, RedisError> {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: node.host.clone(),
            port: node.port,
        });
        conn.route_command(cmd.clone(), route).await
    }

    /// Runs `pipe` (its replies ignored) on `node`.
    pub(super) async fn pipeline_on_node(
        conn: &mut ClusterConnection,
        pipe: Pipeline,
        node: &Node,
    ) -> Result<(), RedisError> {
        if pipe.is_empty() {
            return Ok(());
        }
        let route = SingleNodeRoutingInfo::ByAddress {
            host: node.host.clone(),
            port: node.port,
        };
        let count = pipe.len();
        conn.route_pipeline(pipe, 0, count, route).await.map(drop)
    }

    /// The primaries serving slots, from `CLUSTER SHARDS` (Redis 7+) of any node.
    pub(super) async fn primaries(conn: &mut ClusterConnection) -> Result<Vec<Node>, RedisError> {
        let reply = conn
            .route_command(
                redis::cmd("CLUSTER").arg("SHARDS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let bad = || RedisError::from((ErrorKind::Parse, "unexpected CLUSTER SHARDS reply"));
        let Value::Array(shards) = reply else {
            return Err(bad());
        };
        let mut out = Vec::new();
        for shard in shards {
            let shard = map_of(shard).ok_or_else(bad)?;
            // A shard without slots holds no keys (a failed primary whose replica took over
            // is listed like that until it comes back).
            let (slots, ranges) = match shard.get("slots") {
                Some(Value::Array(s)) if !s.is_empty() => {
                    let bounds: Vec<u16> = s
                        .iter()
                        .map(|v| redis::from_redis_value::<u16>(v.clone()))
                        .collect::<Result<_, _>>()?;
                    let ranges: Vec<(u16, u16)> =
                        bounds.chunks_exact(2).map(|r| (r[0], r[1])).collect();
                    (format!("{s:?}"), ranges)
                }
                _ => continue,
            };
            let Some(Value::Array(nodes)) = shard.get("nodes") else {
                return Err(bad());
            };
            for node in nodes {
                let node = map_of(node.clone()).ok_or_else(bad)?;
                let text = |k: &str| {
                    node.get(k)
                        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                };
                if text("role").as_deref() != Some("master")
                    || matches!(text("health").as_deref(), Some("fail" | "failed"))
                {
                    continue;
                }
                let host = text("ip").or_else(|| text("endpoint")).ok_or_else(bad)?;
                let port = node
                    .get("port")
                    .or_else(|| node.get("tls-port"))
                    .and_then(|v| redis::from_redis_value::<u16>(v.clone()).ok())
                    .ok_or_else(bad)?;
                out.push(Node {
                    host,
                    port,
                    slots: slots.clone(),
                    ranges: ranges.clone(),
                });
            }
        }
        Ok(out)
    }

    /// A RESP3 map (or a RESP2 flat key/value array) as a lookup by text key.
    fn map_of(v: Value) -> Option<HashMap<String, Value>> {
        let pairs: Vec<(Value, Value)> = match v {
            Value::Map(pairs) => pairs,
            Value::Array(flat) => {
                let mut it = flat.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                pairs
            }
            _ => return None,
        };
        pairs
            .into_iter()
            .map(|(k, v)| Some((redis::from_redis_value::<String>(k).ok()?, v)))
            .collect()
    }
}
