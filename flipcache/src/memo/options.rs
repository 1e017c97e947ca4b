//! A memoized function's options, as the expansion of `#[flipcache(...)]` writes them, and
//! where its cache connects.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::ValueCodec;

/// Default Redis timeout of a memoized function's cache: short, since a slow cache is worse
/// than none when the body can always run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// How a memoized function's cache is configured; built by the expansion on first use.
pub struct MemoOptions<V: 'static> {
    name: &'static str,
    codec: &'static dyn ValueCodec<V>,
    /// `None`: the builder's default (no entry bound of its own under `local_max_bytes`).
    local_max: Option<usize>,
    local_max_bytes: Option<usize>,
    expire_time: Option<Duration>,
    refresh_on_get: bool,
    timeout: Duration,
    redis: Redis,
    tracking: crate::Tracking,
    absent_ttl: Option<Duration>,
    jitter: Option<Duration>,
    stale_for: Option<Duration>,
    eager_refresh: Option<f64>,
    fail_safe: bool,
    trace_keys: bool,
    load_timeout: Option<Duration>,
    distributed_lock: Option<Duration>,
}

impl<V: 'static> MemoOptions<V> {
    /// Options with the runtime's defaults.
    pub fn new(name: &'static str, codec: &'static dyn ValueCodec<V>) -> Self {
        Self {
            name,
            codec,
            local_max: None,
            local_max_bytes: None,
            expire_time: None,
            refresh_on_get: false,
            timeout: DEFAULT_TIMEOUT,
            redis: Redis::Env,
            tracking: crate::Tracking::default(),
            absent_ttl: None,
            jitter: None,
            stale_for: None,
            eager_refresh: None,
            fail_safe: false,
            trace_keys: false,
            load_timeout: None,
            distributed_lock: None,
        }
    }

    /// `local_max = n`.
    pub fn local_max(mut self, n: usize) -> Self {
        self.local_max = Some(n);
        self
    }

    /// `local_max_bytes = n`: at most `n` bytes in the L1, by the entries' encoded lengths
    /// (plus a fixed overhead each), as well as at most `local_max` entries if that is given.
    pub fn local_max_bytes(mut self, n: usize) -> Self {
        self.local_max_bytes = Some(n);
        self
    }

    /// `expire_time = d`.
    pub fn expire_time(mut self, ttl: Duration) -> Self {
        self.expire_time = Some(ttl);
        self
    }

    /// `expire_time = n` (seconds).
    pub fn expire_secs(self, secs: u64) -> Self {
        self.expire_time(Duration::from_secs(secs))
    }

    /// `refresh_expire_time_on_get`.
    pub fn refresh_expire_time_on_get(mut self, on: bool) -> Self {
        self.refresh_on_get = on;
        self
    }

    /// How Redis reports other processes' writes (see [`crate::Tracking`]).
    ///
    /// ```
    /// use flipcache::__private01::{MemoOptions, default_codec};
    /// let o = MemoOptions::<u64>::new("m", default_codec::<u64>())
    ///     .tracking(flipcache::Tracking::Broadcast);
    /// ```
    pub fn tracking(mut self, mode: crate::Tracking) -> Self {
        self.tracking = mode;
        self
    }

    /// `timeout_ms = n`.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout = Duration::from_millis(ms);
        self
    }

    /// `redis = x`.
    pub fn redis(mut self, redis: impl IntoRedis) -> Self {
        self.redis = redis.into_redis();
        self
    }

    /// `cache_absent = d` (a `Duration`, or whole seconds).
    pub fn cache_absent(mut self, ttl: impl IntoTtl) -> Self {
        self.absent_ttl = Some(ttl.into_ttl());
        self
    }

    /// `expire_jitter = d` (a `Duration`, or whole seconds).
    pub fn expire_jitter(mut self, max: impl IntoTtl) -> Self {
        self.jitter = Some(max.into_ttl());
        self
    }

    /// `stale_for = d` (a `Duration`, or whole seconds).
    pub fn stale_for(mut self, d: impl IntoTtl) -> Self {
        self.stale_for = Some(d.into_ttl());
        self
    }

    /// `eager_refresh = ratio`.
    pub fn eager_refresh(mut self, ratio: f64) -> Self {
        self.eager_refresh = Some(ratio);
        self
    }

    /// `fail_safe`.
    pub fn fail_safe(mut self, on: bool) -> Self {
        self.fail_safe = on;
        self
    }

    /// `trace_keys`.
    pub fn trace_keys(mut self, on: bool) -> Self {
        self.trace_keys = on;
        self
    }

    /// `load_timeout_ms = n`: how long a call that finds a stale result waits for its refresh.
    pub fn load_timeout_ms(mut self, ms: u64) -> Self {
        self.load_timeout = Some(Duration::from_millis(ms));
        self
    }

    /// `distributed_lock = lease` (a `Duration`, or whole seconds): one load per key across
    /// processes (see `Builder::distributed_lock`).
    pub fn distributed_lock(mut self, lease: impl IntoTtl) -> Self {
        self.distributed_lock = Some(lease.into_ttl());
        self
    }

    /// The cache these options describe (lazily connecting: memoized functions never fail to
    /// build their cache because Redis is down).
    pub(crate) fn builder(self) -> crate::Builder<String, V, Arc<dyn ValueCodec<V>>>
    where
        V: Clone + Send + Sync,
    {
        let mut b = crate::FlipCache::<String, V>::builder(self.name)
            .refresh_expire_time_on_get(self.refresh_on_get)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .tracking(self.tracking)
            .lazy_connect(true);
        if let Some(n) = self.local_max {
            b = b.local_max(n);
        }
        if let Some(n) = self.local_max_bytes {
            b = b.local_max_bytes(n);
        }
        if let Some(ttl) = self.expire_time {
            b = b.expire_time(ttl);
        }
        if let Some(ttl) = self.absent_ttl {
            b = b.cache_absent(ttl);
        }
        if let Some(max) = self.jitter {
            b = b.expire_jitter(max);
        }
        if let Some(d) = self.stale_for {
            b = b.stale_for(d);
        }
        if let Some(r) = self.eager_refresh {
            b = b.eager_refresh(r);
        }
        b = b.fail_safe(self.fail_safe);
        b = b.trace_keys(self.trace_keys);
        if let Some(soft) = self.load_timeout {
            b = b.load_timeout(soft);
        }
        if let Some(lease) = self.distributed_lock {
            b = b.distributed_lock(lease);
        }
        b = match self.redis {
            Redis::Env => b,
            Redis::Url(url) => b.redis_url(&url),
            Redis::Client(c) => b.redis_client(*c),
            #[cfg(feature = "cluster")]
            Redis::Cluster(nodes) => {
                b.redis_cluster(&nodes.iter().map(String::as_str).collect::<Vec<_>>())
            }
            #[cfg(feature = "sentinel")]
            Redis::Sentinel(s) => b
                .redis_sentinel(
                    &s.sentinels.iter().map(String::as_str).collect::<Vec<_>>(),
                    &s.service,
                )
                .redis_sentinel_node(s.node),
        };
        b.value_codec(CodecRef(self.codec))
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// A duration for the memo's options: a `Duration`, or whole seconds as an integer.
pub trait IntoTtl {
    /// The duration.
    fn into_ttl(self) -> Duration;
}

impl IntoTtl for Duration {
    fn into_ttl(self) -> Duration {
        self
    }
}

impl IntoTtl for u64 {
    fn into_ttl(self) -> Duration {
        Duration::from_secs(self)
    }
}

struct CodecRef<V: 'static>(&'static dyn ValueCodec<V>);

impl<V: 'static> ValueCodec<V> for CodecRef<V> {
    #[inline]
    fn encode(
        &self,
        value: &V,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), crate::codec::CodecError> {
        self.0.encode(value, out)
    }
    #[inline]
    fn decode(&self, bytes: &[u8]) -> std::result::Result<V, crate::codec::CodecError> {
        self.0.decode(bytes)
    }
}

/// Where a memoized function's cache connects.
pub enum Redis {
    /// `FLIPCACHE_REDIS_URL`, else `REDIS_URL`, else `redis://127.0.0.1:6379`.
    Env,
    /// A URL.
    Url(String),
    /// A client's endpoint and settings.
    Client(Box<redis::Client>),
    /// A Redis Cluster's seed nodes.
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
    /// The primary a set of Sentinels names.
    #[cfg(feature = "sentinel")]
    Sentinel(SentinelService),
}

/// The seed nodes of a Redis Cluster, for `#[flipcache(redis = ...)]` (cargo feature
/// `cluster`; see [`Builder::redis_cluster`](crate::Builder::redis_cluster)).
///
/// ```no_run
/// use flipcache::{flipcache, ClusterNodes};
///
/// #[flipcache(name = "squares", redis = ClusterNodes::new(["redis://10.0.0.1:7000"]))]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
/// ```
#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub struct ClusterNodes(Vec<String>);

#[cfg(feature = "cluster")]
impl ClusterNodes {
    /// Seed node URLs (`redis://host:port`; one reachable node is enough).
    ///
    /// ```
    /// let seeds = flipcache::ClusterNodes::new(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    ///
    /// // `Debug` hides passwords.
    /// let seeds = flipcache::ClusterNodes::new(["redis://app:s3cret@10.0.0.1:7000"]);
    /// assert_eq!(format!("{seeds:?}"), r#"ClusterNodes(["redis://app:***@10.0.0.1:7000"])"#);
    /// ```
    pub fn new(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClusterNodes(nodes.into_iter().map(Into::into).collect())
    }
}

#[cfg(feature = "cluster")]
impl IntoRedis for ClusterNodes {
    fn into_redis(self) -> Redis {
        Redis::Cluster(self.0)
    }
}

/// The primary of a Sentinel-monitored service, for `#[flipcache(redis = ...)]` (cargo feature
/// `sentinel`; see [`Builder::redis_sentinel`](crate::Builder::redis_sentinel)): found through
/// the Sentinels, and found again after a failover.
///
/// ```no_run
/// use flipcache::{flipcache, SentinelService};
///
/// #[flipcache(
///     name = "squares",
///     redis = SentinelService::new(["redis://10.0.0.1:26379"], "mymaster")
/// )]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
/// ```
#[cfg(feature = "sentinel")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
pub struct SentinelService {
    sentinels: Vec<String>,
    service: String,
    node: redis::RedisConnectionInfo,
}

#[cfg(feature = "sentinel")]
impl SentinelService {
    /// The primary of `service`, found through the Sentinels at `sentinels`
    /// (`redis://host:port` URLs).
    ///
    /// ```
    /// let s = flipcache::SentinelService::new(["redis://10.0.0.1:26379"], "mymaster");
    /// ```
    pub fn new(sentinels: impl IntoIterator<Item = impl Into<String>>, service: &str) -> Self {
        SentinelService {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            service: service.to_owned(),
            node: redis::RedisConnectionInfo::default(),
        }
    }

    /// Username, password and database for the data nodes (see
    /// [`Builder::redis_sentinel_node`](crate::Builder::redis_sentinel_node)).
    ///
    /// ```
    /// let node = redis::RedisConnectionInfo::default().set_password("secret").set_db(2);
    /// let s = flipcache::SentinelService::new(["redis://10.0.0.1:26379"], "mymaster").node(node);
    /// // `Debug` hides the password.
    /// assert!(!format!("{s:?}").contains("secret"));
    /// ```
    pub fn node(mut self, info: redis::RedisConnectionInfo) -> Self {
        self.node = info;
        self
    }
}

#[cfg(feature = "sentinel")]
impl IntoRedis for SentinelService {
    fn into_redis(self) -> Redis {
        Redis::Sentinel(self)
    }
}

/// What `redis = ...` accepts: a URL (`&str`, `String`), a `redis::Client`, `ClusterNodes`
/// (feature `cluster`), `SentinelService` (feature `sentinel`), or an `Option` of one (`None`:
/// the environment).
pub trait IntoRedis {
    /// The source this names.
    fn into_redis(self) -> Redis;
}

impl IntoRedis for &str {
    fn into_redis(self) -> Redis {
        Redis::Url(self.to_owned())
    }
}

impl IntoRedis for String {
    fn into_redis(self) -> Redis {
        Redis::Url(self)
    }
}

impl IntoRedis for &String {
    fn into_redis(self) -> Redis {
        Redis::Url(self.clone())
    }
}

impl IntoRedis for redis::Client {
    fn into_redis(self) -> Redis {
        Redis::Client(Box::new(self))
    }
}

impl IntoRedis for &redis::Client {
    fn into_redis(self) -> Redis {
        Redis::Client(Box::new(self.clone()))
    }
}

impl<T: IntoRedis> IntoRedis for Option<T> {
    fn into_redis(self) -> Redis {
        self.map_or(Redis::Env, IntoRedis::into_redis)
    }
}

// ---- Debug: names and settings, never codecs, closures or passwords -----------------------

impl<V> std::fmt::Debug for MemoOptions<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoOptions")
            .field("name", &self.name)
            .field("local_max", &self.local_max)
            .field("expire_time", &self.expire_time)
            .field("refresh_on_get", &self.refresh_on_get)
            .field("timeout", &self.timeout)
            .field("redis", &self.redis)
            .field("stale_for", &self.stale_for)
            .field("distributed_lock", &self.distributed_lock)
            .field("fail_safe", &self.fail_safe)
            .field("trace_keys", &self.trace_keys)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redis::Env => f.write_str("Env"),
            Redis::Url(url) => f
                .debug_tuple("Url")
                .field(&crate::builder::redact_url(url))
                .finish(),
            // redis-rs's `Debug` for connection settings hides the password.
            Redis::Client(client) => f
                .debug_tuple("Client")
                .field(client.get_connection_info())
                .finish(),
            #[cfg(feature = "cluster")]
            Redis::Cluster(nodes) => f.debug_tuple("Cluster").field(&redacted(nodes)).finish(),
            #[cfg(feature = "sentinel")]
            Redis::Sentinel(s) => f.debug_tuple("Sentinel").field(s).finish(),
        }
    }
}

/// Shows the seed nodes, with any password in them replaced by `***`.
#[cfg(feature = "cluster")]
impl std::fmt::Debug for ClusterNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClusterNodes")
            .field(&redacted(&self.0))
            .finish()
    }
}

#[cfg(feature = "cluster")]
fn redacted(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| crate::builder::redact_url(u)).collect()
}

/// Shows the Sentinels (passwords in their URLs replaced by `***`), the service, and the data
/// nodes' settings (redis-rs's `Debug` hides their password).
#[cfg(feature = "sentinel")]
impl std::fmt::Debug for SentinelService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelService")
            .field(
                "sentinels",
                &self
                    .sentinels
                    .iter()
                    .map(|u| crate::builder::redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("service", &self.service)
            .field("node", &self.node)
            .finish()
    }
}
