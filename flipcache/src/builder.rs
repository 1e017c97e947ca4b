//! One builder for both fronts: name, L1 size, TTL, codec, Redis source, timeouts, coherence.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{ClosureCodec, CodecChoice, DefaultCodec, JsonCodec, ValueCodec};
use crate::core::{Core, Settings};
use crate::endpoint::Target;
use crate::error::{Error, Result};
use crate::key::FlipKey;
use crate::local::Weigher;
use crate::remote::Remote;
use crate::runtime;

/// Default for [`Builder::local_max`], as in the Python original.
///
/// ```
/// assert_eq!(flipcache::DEFAULT_LOCAL_MAX, 100);
/// ```
pub const DEFAULT_LOCAL_MAX: usize = 100;
/// Default for [`Builder::timeout`].
///
/// ```
/// assert_eq!(flipcache::DEFAULT_TIMEOUT, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default for [`Builder::connect_timeout`].
///
/// ```
/// assert_eq!(flipcache::DEFAULT_CONNECT_TIMEOUT, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Where a cache connects when neither a URL, a client nor an environment variable says
/// (`FLIPCACHE_REDIS_URL`, then `REDIS_URL`, are read first).
///
/// ```
/// assert_eq!(flipcache::DEFAULT_REDIS_URL, "redis://127.0.0.1:6379");
/// ```
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

enum Source {
    Env,
    Url(String),
    Client(redis::Client),
    #[cfg(feature = "sentinel")]
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        node: redis::RedisConnectionInfo,
    },
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

/// Configures a cache; made by [`FlipCache::builder`](crate::FlipCache::builder).
///
/// `C` is the codec choice: the type's default encoding until [`json`](Builder::json),
/// [`value_encoder`](Builder::value_encoder)/[`value_decoder`](Builder::value_decoder) or
/// [`value_codec`](Builder::value_codec) picks another.
///
/// ```no_run
/// use flipcache::{et, FlipCache};
/// # fn main() -> flipcache::Result<()> {
/// let cache = FlipCache::<String, String>::builder("sessions")
///     .local_max(10_000)
///     .expire_time(et::ONE_HOUR)
///     .refresh_expire_time_on_get(true)
///     .redis_url("redis://127.0.0.1:6379/0")
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `.build()` or `.build_async()`"]
pub struct Builder<K, V, C = DefaultCodec> {
    name: String,
    /// `None`: the default (unbounded when a byte bound is set).
    local_max: Option<usize>,
    local_max_bytes: Option<usize>,
    weigher: Option<Weigher<K, V>>,
    expire_time: Option<Duration>,
    refresh_on_get: bool,
    default: Option<V>,
    write_default: bool,
    codec: C,
    source: Source,
    timeout: Duration,
    connect_timeout: Duration,
    coherence: bool,
    lazy: bool,
    _key: PhantomData<fn() -> K>,
}

/// A codec choice that custom closures can start from or continue.
#[doc(hidden)]
pub trait ClosureStart<V> {
    fn into_closures(self) -> ClosureCodec<V>;
}

impl<V: 'static> ClosureStart<V> for DefaultCodec {
    fn into_closures(self) -> ClosureCodec<V> {
        ClosureCodec::new()
    }
}

impl<V: 'static> ClosureStart<V> for ClosureCodec<V> {
    fn into_closures(self) -> ClosureCodec<V> {
        self
    }
}

impl<K, V> Builder<K, V> {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Builder {
            name: name.into(),
            local_max: None,
            local_max_bytes: None,
            weigher: None,
            expire_time: None,
            refresh_on_get: false,
            default: None,
            write_default: false,
            codec: DefaultCodec,
            source: Source::Env,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            coherence: true,
            lazy: false,
            _key: PhantomData,
        }
    }
}

impl<K, V, C> Builder<K, V, C> {
    fn map_codec<D>(self, f: impl FnOnce(C) -> D) -> Builder<K, V, D> {
        Builder {
            name: self.name,
            local_max: self.local_max,
            local_max_bytes: self.local_max_bytes,
            weigher: self.weigher,
            expire_time: self.expire_time,
            refresh_on_get: self.refresh_on_get,
            default: self.default,
            write_default: self.write_default,
            codec: f(self.codec),
            source: self.source,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            coherence: self.coherence,
            lazy: self.lazy,
            _key: PhantomData,
        }
    }

    /// Most entries the in-process layer holds (default 100, or no bound of its own when
    /// [`local_max_bytes`](Self::local_max_bytes) is set); `0` turns it off.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").local_max(0);
    /// ```
    pub fn local_max(mut self, n: usize) -> Self {
        self.local_max = Some(n);
        self
    }

    /// Most bytes the in-process layer holds, by the entries' weights; `0` turns it off.
    ///
    /// An entry weighs its encoded length (what Redis holds) plus 64 bytes of bookkeeping,
    /// unless a [`weigher`](Self::weigher) says otherwise. Set alone, it is the only bound;
    /// with [`local_max`](Self::local_max) as well, both hold at all times. An entry heavier than
    /// the whole bound is never kept locally (it is still read from and written to Redis).
    ///
    /// ```
    /// // At most 64 MiB of values, however many entries that is.
    /// let b = flipcache::FlipCache::<String, String>::builder("reports")
    ///     .local_max_bytes(64 << 20);
    /// // At most 10,000 entries and at most 16 MiB.
    /// let b = flipcache::FlipCache::<String, String>::builder("profiles")
    ///     .local_max(10_000)
    ///     .local_max_bytes(16 << 20);
    /// ```
    pub fn local_max_bytes(mut self, n: usize) -> Self {
        self.local_max_bytes = Some(n);
        self
    }

    /// What an entry weighs against [`local_max_bytes`](Self::local_max_bytes), instead of its
    /// encoded length plus a fixed overhead (for values whose size in memory differs much from
    /// their encoding). Called once per entry kept, outside the cache's locks; keep it cheap.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<String, Vec<u64>>::builder("lists")
    ///     .local_max_bytes(8 << 20)
    ///     .weigher(|key: &String, value: &Vec<u64>| key.len() + value.len() * 8 + 64);
    /// ```
    pub fn weigher(mut self, f: impl Fn(&K, &V) -> usize + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(f));
        self
    }

    /// TTL of every entry written (`SET ... PX`); none by default. Must be at least 1 ms.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").expire_time(flipcache::et::ONE_DAY);
    /// ```
    pub fn expire_time(mut self, ttl: Duration) -> Self {
        self.expire_time = Some(ttl);
        self
    }

    /// Renews an entry's TTL whenever it is read: `GETEX` on reads that reach Redis, and a
    /// batched background `PEXPIRE` (at most once per key per quarter TTL) for reads served by
    /// the L1, so hot keys do not expire in Redis.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .refresh_expire_time_on_get(true);
    /// ```
    pub fn refresh_expire_time_on_get(mut self, on: bool) -> Self {
        self.refresh_on_get = on;
        self
    }

    /// What a read of a missing key returns (a fresh clone each time) instead of `None`.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("b").value_default("none".to_string());
    /// ```
    pub fn value_default(mut self, value: V) -> Self {
        self.default = Some(value);
        self
    }

    /// Also write the default into Redis when a read misses, as the Python original does.
    /// Off by default.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").value_default(0).write_default(true);
    /// ```
    pub fn write_default(mut self, on: bool) -> Self {
        self.write_default = on;
        self
    }

    /// Stores values as JSON text (serde_json), like the Python original's `value_type="json"`.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<String, serde_json::Value>::builder("b").json();
    /// ```
    pub fn json(self) -> Builder<K, V, JsonCodec> {
        self.map_codec(|_| JsonCodec)
    }

    /// Uses `codec` for values.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let b = flipcache::FlipCache::<u64, Vec<u8>>::builder("b")
    ///     .value_codec(flipcache::ClosureCodec::new()
    ///         .encoder_bytes(|v: &Vec<u8>| v.clone())
    ///         .decoder_bytes(|b: &[u8]| Ok::<_, String>(b.to_vec())));
    /// ```
    pub fn value_codec(self, codec: impl ValueCodec<V>) -> Builder<K, V, Arc<dyn ValueCodec<V>>> {
        self.map_codec(|_| Arc::new(codec) as Arc<dyn ValueCodec<V>>)
    }

    /// Reads the Redis URL from here instead of the environment.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").redis_url("redis://10.0.0.5:6379/2");
    /// ```
    pub fn redis_url(mut self, url: &str) -> Self {
        self.source = Source::Url(url.to_owned());
        self
    }

    /// Connects where this client points (the Python original's `redis_protocol`). The cache
    /// opens its own shared RESP3 connection to that endpoint with the client's settings.
    ///
    /// ```
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").redis_client(client);
    /// ```
    pub fn redis_client(mut self, client: redis::Client) -> Self {
        self.source = Source::Client(client);
        self
    }

    /// Longest a Redis call may take before it fails with [`Error::Timeout`] (default 1 s).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .timeout(std::time::Duration::from_millis(200));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest opening a connection may take (default 1 s).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .connect_timeout(std::time::Duration::from_millis(500));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Keeps the L1 coherent with Redis through client-side-caching invalidations (on by
    /// default). Off, the L1 is bounded only by TTLs and by this process's own writes, as in the
    /// Python original.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").coherence(false);
    /// ```
    pub fn coherence(mut self, on: bool) -> Self {
        self.coherence = on;
        self
    }

    /// Uses a Redis Cluster, discovered through the seed nodes `nodes` (`redis://host:port` or
    /// `rediss://` URLs; one reachable node is enough, credentials go in the URLs). Each key
    /// goes to the primary owning its hash slot; `get_many`/`set_many` send one pipeline per
    /// slot, all at once; `len`, `keys` and `clear` scan every primary. Coherence: tracking is
    /// registered on every primary, and when a node's connection drops or the cluster's
    /// primaries or slots change (failover, resharding, a node added), every L1 on the
    /// connection is emptied and tracking is registered again on the new topology. Needs the
    /// `cluster` cargo feature.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .redis_cluster(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// ```
    #[cfg(feature = "cluster")]
    pub fn redis_cluster(mut self, nodes: &[&str]) -> Self {
        self.source = Source::Cluster(nodes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Finds the primary of `service` through the Sentinels at `sentinels` (`redis://host:port`
    /// URLs), and finds it again after a failover: a connection to a demoted server is dropped
    /// (and every L1 on it emptied) and the next call reconnects to the new primary. Needs the
    /// `sentinel` cargo feature. Credentials and database of the data nodes: see
    /// [`redis_sentinel_node`](Builder::redis_sentinel_node).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .redis_sentinel(&["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"], "mymaster");
    /// ```
    #[cfg(feature = "sentinel")]
    pub fn redis_sentinel(mut self, sentinels: &[&str], service: &str) -> Self {
        self.source = Source::Sentinel {
            sentinels: sentinels.iter().map(|s| (*s).to_owned()).collect(),
            service: service.to_owned(),
            node: redis::RedisConnectionInfo::default(),
        };
        self
    }

    /// Username, password and database for the data nodes found through Sentinel (call after
    /// [`redis_sentinel`](Builder::redis_sentinel)).
    ///
    /// ```
    /// let node = redis::RedisConnectionInfo::default().set_password("secret").set_db(2);
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .redis_sentinel(&["redis://10.0.0.1:26379"], "mymaster")
    ///     .redis_sentinel_node(node);
    /// ```
    #[cfg(feature = "sentinel")]
    pub fn redis_sentinel_node(mut self, info: redis::RedisConnectionInfo) -> Self {
        if let Source::Sentinel { node, .. } = &mut self.source {
            *node = info;
        }
        self
    }

    /// Lets `build()` succeed while Redis is unreachable (only configuration errors fail it):
    /// calls fail until Redis answers, then the cache connects by itself, tracking included.
    /// Off by default, so a wrong address or password shows up at build time. Memoized
    /// functions use it, so a cache exists (and keeps results in the L1) from the first call.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").lazy_connect(true);
    /// ```
    pub fn lazy_connect(mut self, on: bool) -> Self {
        self.lazy = on;
        self
    }

    fn target(&self) -> Result<(Target, String, String)> {
        #[cfg(feature = "sentinel")]
        if let Source::Sentinel {
            sentinels,
            service,
            node,
        } = &self.source
        {
            return Target::sentinel(sentinels, service, node.clone())
                .map_err(|e| self.config(format!("invalid Sentinel settings: {e}")));
        }
        #[cfg(feature = "cluster")]
        if let Source::Cluster(nodes) = &self.source {
            return Target::cluster(nodes)
                .map_err(|e| self.config(format!("invalid Redis Cluster settings: {e}")));
        }
        let client = self.client()?;
        Target::direct(&client)
            .map_err(|e| self.config(format!("invalid Redis connection settings: {e}")))
    }

    fn client(&self) -> Result<redis::Client> {
        let url = match &self.source {
            Source::Client(c) => return Ok(c.clone()),
            Source::Url(u) => u.clone(),
            #[cfg(feature = "sentinel")]
            Source::Sentinel { .. } => {
                return Err(self.config("no single Redis URL with Sentinel".into()));
            }
            #[cfg(feature = "cluster")]
            Source::Cluster(_) => {
                return Err(self.config("no single Redis URL with a cluster".into()));
            }
            Source::Env => std::env::var("FLIPCACHE_REDIS_URL")
                .or_else(|_| std::env::var("REDIS_URL"))
                .unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned()),
        };
        redis::Client::open(url.as_str())
            .map_err(|e| self.config(format!("invalid Redis URL `{url}`: {e}")))
    }

    fn config(&self, message: String) -> Error {
        Error::Config {
            cache: self.name.as_str().into(),
            message,
        }
    }

    async fn start(self) -> Result<Arc<Core<K, V>>>
    where
        K: FlipKey,
        V: Clone + Send + Sync + 'static,
        C: CodecChoice<V>,
    {
        if self.name.is_empty() {
            return Err(self.config("the name must not be empty".into()));
        }
        if self
            .expire_time
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(self.config("expire_time must be at least 1 ms".into()));
        }
        if self.timeout.is_zero() {
            return Err(self.config("timeout must not be zero".into()));
        }
        let target = self.target()?;
        let rt = runtime::handle()
            .map_err(|e| self.config(format!("cannot start the background runtime: {e}")))?;
        let remote = Remote::shared(target, self.connect_timeout, rt);
        let Builder {
            name,
            local_max,
            local_max_bytes,
            weigher,
            expire_time,
            refresh_on_get,
            default,
            write_default,
            codec,
            timeout,
            coherence,
            lazy,
            ..
        } = self;
        let codec = codec.into_codec().map_err(|message| Error::Config {
            cache: name.as_str().into(),
            message,
        })?;
        let local_max = local_max.unwrap_or(match local_max_bytes {
            Some(_) => usize::MAX,
            None => DEFAULT_LOCAL_MAX,
        });
        let settings = Settings {
            name,
            local_max,
            local_max_bytes,
            weigher,
            expire_time,
            refresh_on_get,
            default,
            write_default,
            timeout,
            coherence,
            lazy,
        };
        Core::start(settings, codec, remote).await
    }

    /// Builds the blocking cache, connecting to Redis (an unreachable server or a wrong password
    /// is an error here, not at first use).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache = flipcache::FlipCache::<u64, u64>::builder("b").local_max(1000).build()?;
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<crate::FlipCache<K, V>>
    where
        K: FlipKey,
        V: Clone + Send + Sync + 'static,
        C: CodecChoice<V>,
    {
        let rt = runtime::handle()
            .map_err(|e| self.config(format!("cannot start the background runtime: {e}")))?;
        runtime::block_on(rt, self.start()).map(crate::FlipCache::from_core)
    }

    /// Builds the async cache. Await it inside a tokio runtime with timers enabled (as
    /// `#[tokio::main]` sets up).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache = flipcache::FlipCache::<u64, u64>::builder("b").build_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build_async(self) -> Result<crate::aio::FlipCache<K, V>>
    where
        K: FlipKey,
        V: Clone + Send + Sync + 'static,
        C: CodecChoice<V>,
    {
        self.start().await.map(crate::aio::FlipCache::from_core)
    }
}

impl<K, V: 'static, C: ClosureStart<V>> Builder<K, V, C> {
    /// Encodes values with `f`, which gives the text stored in Redis (the Python original's
    /// `value_encoder`). Pair it with [`value_decoder`](Builder::value_decoder).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, (i32, i32)>::builder("points")
    ///     .value_encoder(|p: &(i32, i32)| format!("{},{}", p.0, p.1))
    ///     .value_decoder(|s: &str| -> Result<(i32, i32), String> {
    ///         let (a, b) = s.split_once(',').ok_or("no comma")?;
    ///         Ok((a.parse().map_err(|_| "bad x")?, b.parse().map_err(|_| "bad y")?))
    ///     });
    /// ```
    pub fn value_encoder(
        self,
        f: impl Fn(&V) -> String + Send + Sync + 'static,
    ) -> Builder<K, V, ClosureCodec<V>> {
        self.map_codec(|c| c.into_closures().encoder(f))
    }

    /// Decodes values with `g`, given the stored text; its error becomes [`Error::Decode`].
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u8>::builder("b")
    ///     .value_encoder(|v: &u8| v.to_string())
    ///     .value_decoder(|s: &str| s.parse::<u8>());
    /// ```
    pub fn value_decoder<E: std::fmt::Display>(
        self,
        g: impl Fn(&str) -> Result<V, E> + Send + Sync + 'static,
    ) -> Builder<K, V, ClosureCodec<V>> {
        self.map_codec(|c| c.into_closures().decoder(g))
    }

    /// Encodes values with `f` into raw bytes.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u8>::builder("b")
    ///     .value_encoder_bytes(|v: &u8| vec![*v])
    ///     .value_decoder_bytes(|b: &[u8]| b.first().copied().ok_or("empty"));
    /// ```
    pub fn value_encoder_bytes(
        self,
        f: impl Fn(&V) -> Vec<u8> + Send + Sync + 'static,
    ) -> Builder<K, V, ClosureCodec<V>> {
        self.map_codec(|c| c.into_closures().encoder_bytes(f))
    }

    /// Decodes values with `g` from raw bytes.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u8>::builder("b")
    ///     .value_encoder_bytes(|v: &u8| vec![*v])
    ///     .value_decoder_bytes(|b: &[u8]| b.first().copied().ok_or("empty"));
    /// ```
    pub fn value_decoder_bytes<E: std::fmt::Display>(
        self,
        g: impl Fn(&[u8]) -> Result<V, E> + Send + Sync + 'static,
    ) -> Builder<K, V, ClosureCodec<V>> {
        self.map_codec(|c| c.into_closures().decoder_bytes(g))
    }
}
