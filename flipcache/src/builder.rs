//! One builder for both fronts: name, L1 size, TTL, codec, Redis source, timeouts, coherence.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{
    ClosureCodec, CodecChoice, DefaultCodec, JsonCodec, MissingDecoder, MissingEncoder, ValueCodec,
};
use crate::core::{Core, Settings};
use crate::endpoint::{Endpoint, Target};
use crate::error::{Error, Result};
use crate::event::{Event, Listener};
use crate::front::{Async, Blocking};
use crate::key::FlipKey;
use crate::local::Weigher;
use crate::remote::Remote;
use crate::runtime;
use crate::tracking::Tracking;

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
    // Boxed: with the `tls` feature a client is far larger than the other variants.
    Client(Box<redis::Client>),
    #[cfg(feature = "sentinel")]
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        node: redis::RedisConnectionInfo,
    },
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

/// Shows where a source points, with any password in a URL replaced by `***`.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env => f.write_str("Env"),
            Source::Url(url) => f.debug_tuple("Url").field(&redact_url(url)).finish(),
            // redis-rs's `Debug` for connection settings hides the password.
            Source::Client(client) => f
                .debug_tuple("Client")
                .field(client.get_connection_info())
                .finish(),
            #[cfg(feature = "sentinel")]
            Source::Sentinel {
                sentinels,
                service,
                node,
            } => f
                .debug_struct("Sentinel")
                .field(
                    "sentinels",
                    &sentinels.iter().map(|s| redact_url(s)).collect::<Vec<_>>(),
                )
                .field("service", service)
                .field("node", node)
                .finish(),
            #[cfg(feature = "cluster")]
            Source::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(&nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// `url` with the password (between `user:` and `@`) replaced by `***`, for `Debug` output.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split(':').next().unwrap_or_default();
    let password = if rest[..at].contains(':') { ":***" } else { "" };
    let user = if password.is_empty() { "***" } else { user };
    format!("{}{user}{password}{}", &url[..scheme_end], &rest[at..])
}

/// Configures a cache; made by [`FlipCache::builder`](crate::FlipCache::builder).
///
/// `C` is the codec choice: the type's default encoding until [`json`](Builder::json),
/// [`value_encoder`](Builder::value_encoder)/[`value_decoder`](Builder::value_decoder) or
/// [`value_codec`](Builder::value_codec) picks another. While only one closure of an
/// encoder/decoder pair is set, `C` is [`MissingDecoder`] or [`MissingEncoder`] and the builder
/// has no `build`: a cache that cannot read back what it writes does not compile.
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
///
/// Its `Debug` output shows the settings, never a password or a closure:
///
/// ```
/// let b = flipcache::FlipCache::<u64, u64>::builder("b")
///     .redis_url("redis://app:s3cret@10.0.0.5:6379/0")
///     .value_encoder(|v: &u64| v.to_string())
///     .value_decoder(|s: &str| s.parse::<u64>());
/// let shown = format!("{b:?}");
/// assert!(shown.contains(r#"Url("redis://app:***@10.0.0.5:6379/0")"#), "{shown}");
/// assert!(!shown.contains("s3cret"), "{shown}");
/// ```
#[must_use = "a builder does nothing until `.build()` or `.build_async()`"]
pub struct Builder<K, V, C = DefaultCodec, F = Blocking> {
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
    tracking: Tracking,
    lazy: bool,
    fail_open: bool,
    absent_ttl: Option<Duration>,
    jitter: Option<Duration>,
    decode_misses: bool,
    trace_keys: bool,
    stale_for: Option<Duration>,
    eager_refresh: Option<f64>,
    fail_safe: bool,
    fail_safe_throttle: Duration,
    load_timeout: Option<Duration>,
    load_hard_timeout: Option<Duration>,
    distributed_lock: Option<Duration>,
    on_event: Option<Listener>,
    /// The key type, and which cache `build()` makes (see [`crate::front`]).
    _key: PhantomData<fn() -> (K, F)>,
}

/// Default for [`Builder::fail_safe_throttle`].
///
/// ```
/// assert_eq!(flipcache::DEFAULT_FAIL_SAFE_THROTTLE, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(1);

/// A codec state that custom closures can start from or continue: the builder's typestate for
/// encoder/decoder pairs (default → [`MissingDecoder`] or [`MissingEncoder`] → [`ClosureCodec`]).
#[doc(hidden)]
pub trait ClosureStart<V> {
    /// The state after an encoder is set.
    type WithEncoder;
    /// The state after a decoder is set.
    type WithDecoder;
    /// Sets the encoder through `set`.
    fn with_encoder(
        self,
        set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>,
    ) -> Self::WithEncoder;
    /// Sets the decoder through `set`.
    fn with_decoder(
        self,
        set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>,
    ) -> Self::WithDecoder;
}

impl<V: 'static> ClosureStart<V> for DefaultCodec {
    type WithEncoder = MissingDecoder<V>;
    type WithDecoder = MissingEncoder<V>;
    fn with_encoder(
        self,
        set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>,
    ) -> MissingDecoder<V> {
        MissingDecoder(set(ClosureCodec::new()))
    }
    fn with_decoder(
        self,
        set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>,
    ) -> MissingEncoder<V> {
        MissingEncoder(set(ClosureCodec::new()))
    }
}

impl<V: 'static> ClosureStart<V> for MissingDecoder<V> {
    type WithEncoder = MissingDecoder<V>;
    type WithDecoder = ClosureCodec<V>;
    fn with_encoder(
        self,
        set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>,
    ) -> MissingDecoder<V> {
        MissingDecoder(set(self.0))
    }
    fn with_decoder(self, set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>) -> ClosureCodec<V> {
        set(self.0)
    }
}

impl<V: 'static> ClosureStart<V> for MissingEncoder<V> {
    type WithEncoder = ClosureCodec<V>;
    type WithDecoder = MissingEncoder<V>;
    fn with_encoder(self, set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>) -> ClosureCodec<V> {
        set(self.0)
    }
    fn with_decoder(
        self,
        set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>,
    ) -> MissingEncoder<V> {
        MissingEncoder(set(self.0))
    }
}

/// Both closures set: setting one again replaces it.
impl<V: 'static> ClosureStart<V> for ClosureCodec<V> {
    type WithEncoder = ClosureCodec<V>;
    type WithDecoder = ClosureCodec<V>;
    fn with_encoder(self, set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>) -> ClosureCodec<V> {
        set(self)
    }
    fn with_decoder(self, set: impl FnOnce(ClosureCodec<V>) -> ClosureCodec<V>) -> ClosureCodec<V> {
        set(self)
    }
}

/// Shows the settings; closures and passwords are not shown, and the default value only as
/// whether one is set (`V` need not be `Debug`).
impl<K, V, C, F> std::fmt::Debug for Builder<K, V, C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("local_max", &self.local_max)
            .field("expire_time", &self.expire_time)
            .field("refresh_expire_time_on_get", &self.refresh_on_get)
            .field("value_default", &self.default.as_ref().map(|_| ".."))
            .field("write_default", &self.write_default)
            .field("codec", &std::any::type_name::<C>())
            .field("source", &self.source)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("coherence", &self.coherence)
            .field("lazy_connect", &self.lazy)
            .field("trace_keys", &self.trace_keys)
            .field("on_event", &self.on_event.as_ref().map(|_| ".."))
            .finish()
    }
}

impl<K, V, F> Builder<K, V, DefaultCodec, F> {
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
            tracking: Tracking::default(),
            lazy: false,
            fail_open: true,
            absent_ttl: None,
            jitter: None,
            decode_misses: false,
            trace_keys: false,
            stale_for: None,
            eager_refresh: None,
            fail_safe: false,
            fail_safe_throttle: DEFAULT_FAIL_SAFE_THROTTLE,
            load_timeout: None,
            load_hard_timeout: None,
            distributed_lock: None,
            on_event: None,
            _key: PhantomData,
        }
    }
}

impl<K, V, C, F> Builder<K, V, C, F> {
    fn map_codec<D>(self, f: impl FnOnce(C) -> D) -> Builder<K, V, D, F> {
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
            tracking: self.tracking,
            lazy: self.lazy,
            fail_open: self.fail_open,
            absent_ttl: self.absent_ttl,
            jitter: self.jitter,
            decode_misses: self.decode_misses,
            trace_keys: self.trace_keys,
            stale_for: self.stale_for,
            eager_refresh: self.eager_refresh,
            fail_safe: self.fail_safe,
            fail_safe_throttle: self.fail_safe_throttle,
            load_timeout: self.load_timeout,
            load_hard_timeout: self.load_hard_timeout,
            distributed_lock: self.distributed_lock,
            on_event: self.on_event,
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
    pub fn json(self) -> Builder<K, V, JsonCodec, F> {
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
    pub fn value_codec(
        self,
        codec: impl ValueCodec<V>,
    ) -> Builder<K, V, Arc<dyn ValueCodec<V>>, F> {
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
        self.source = Source::Client(Box::new(client));
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

    /// How Redis reports other clients' writes to this process (see [`Tracking`]):
    /// [`Tracking::Keys`] (the default) tells a process only about keys it read, so Redis's
    /// cost per write does not grow with the number of processes; [`Tracking::Broadcast`]
    /// tells every process about every write under the cache's prefix, which costs Redis CPU
    /// per process per write but no memory per key. The coherence guarantees are the same.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .tracking(flipcache::Tracking::Broadcast);
    /// ```
    pub fn tracking(mut self, mode: Tracking) -> Self {
        self.tracking = mode;
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
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
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
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
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
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
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

    /// Whether the loader paths (`get_with`, `try_get_with`, `optionally_get_with`) ignore Redis
    /// trouble (on by default): when Redis is unreachable or slower than the
    /// [`timeout`](Builder::timeout), the loader's value is returned anyway (kept in the L1 for
    /// its TTL) and one warning is logged per outage; while Redis stays down, one load per
    /// second tries it again. Off, such loads return the Redis error.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").fail_open(false);
    /// ```
    pub fn fail_open(mut self, on: bool) -> Self {
        self.fail_open = on;
        self
    }

    /// Remembers a loader's "not found" for `ttl`, in Redis, for every process:
    /// `optionally_get_with` (and memoized functions returning `Option` or
    /// `Result<Option<_>, _>` with `cache_absent`) then answer `None` without running the
    /// loader. The marker lives outside the `{name}:{key}` layout (under `__flipcache__:absent:`),
    /// so Python FlipCache readers, `len` and `keys` never see it; any write of the key, by this
    /// crate, Python or `redis-cli`, ends the absence (a value in Redis always wins over the
    /// marker), and `delete` and `clear` remove markers too. A remembered absence costs a Redis
    /// round trip per read (it is not kept in the L1).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .cache_absent(std::time::Duration::from_secs(30));
    /// ```
    pub fn cache_absent(mut self, ttl: Duration) -> Self {
        self.absent_ttl = Some(ttl);
        self
    }

    /// Adds a random extra in `0..max` to the TTL of every write (each key its own), so a batch
    /// written together does not expire together. Needs a TTL (`expire_time`, or one chosen per
    /// entry) to apply to.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b")
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .expire_jitter(std::time::Duration::from_secs(60));
    /// ```
    pub fn expire_jitter(mut self, max: Duration) -> Self {
        self.jitter = Some(max);
        self
    }

    /// Makes `get` and `get_many` read an entry that does not decode (an old format after a
    /// deploy, another writer's garbage) as absent, with one warning per key, instead of
    /// failing. Off by default: the error names the key. (Loader paths always treat such an
    /// entry as a miss and overwrite it.)
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").decode_errors_as_misses(true);
    /// ```
    pub fn decode_errors_as_misses(mut self, on: bool) -> Self {
        self.decode_misses = on;
        self
    }

    /// Puts the key (`{name}:{key}`) in the crate's spans (`tracing-spans`) and log lines, and
    /// in the error chains they print. Off by default: they carry the cache's name and no key,
    /// since keys often hold personal data (an email, a session id) that trace and log
    /// backends should not receive. Errors returned to the caller name the key either way
    /// ([`Error::key`](crate::Error::key)).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u64>::builder("b").trace_keys(true);
    /// ```
    pub fn trace_keys(mut self, on: bool) -> Self {
        self.trace_keys = on;
        self
    }

    /// Keeps every value `d` longer in Redis than its fresh lifetime (written with a TTL of
    /// `expire_time + d`), and calls it *stale* during that last stretch. Freshness is read
    /// from the TTL Redis keeps (the `PTTL` read with every miss), so values stay plain text or
    /// JSON for Python FlipCache and `redis-cli`, and every process agrees on what is stale.
    /// `get` reads a stale value as absent; the loader paths (`get_with` and friends, memoized
    /// functions) serve it at once and refresh the key in the background, once per key per
    /// process (**stale-while-revalidate**); a refresh that fails keeps the stale value until
    /// it expires, and is retried after [`fail_safe_throttle`](Builder::fail_safe_throttle).
    /// Cannot be combined with `refresh_expire_time_on_get`.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .stale_for(std::time::Duration::from_secs(300));
    /// ```
    pub fn stale_for(mut self, d: Duration) -> Self {
        self.stale_for = Some(d);
        self
    }

    /// Starts the background refresh of an entry hit past `ratio` (say `0.8`) of its fresh
    /// lifetime (`expire_time`), while it is still fresh: hot keys are refreshed before they go
    /// stale, and no caller waits for the loader. Needs an `expire_time`; `ratio` in `(0, 1)`.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .eager_refresh(0.8);
    /// ```
    pub fn eager_refresh(mut self, ratio: f64) -> Self {
        self.eager_refresh = Some(ratio);
        self
    }

    /// Keeps the application up when Redis fails: the L1 is kept (not emptied) when the
    /// connection drops, and its entries are served as *fail-safe* values (by `get` after a
    /// failed Redis call, and by the loader paths at once) until their Redis TTL would have run
    /// out; when the connection returns, they are dropped and read again from Redis in one
    /// pipelined pass before anything is served as fresh. Off by default (an outage empties
    /// the L1 and calls fail).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .stale_for(std::time::Duration::from_secs(300))
    ///     .fail_safe(true);
    /// ```
    pub fn fail_safe(mut self, on: bool) -> Self {
        self.fail_safe = on;
        self
    }

    /// After a background refresh fails, how long until a hit may start the next one (default
    /// [`DEFAULT_FAIL_SAFE_THROTTLE`]), so a failing source is not hammered.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .fail_safe_throttle(std::time::Duration::from_secs(5));
    /// ```
    pub fn fail_safe_throttle(mut self, d: Duration) -> Self {
        self.fail_safe_throttle = d;
        self
    }

    /// The *soft* load timeout: a caller that finds a stale value (see
    /// [`stale_for`](Builder::stale_for)) waits up to `soft` for the refresh it starts, and gets
    /// the new value if it comes in time, else the stale one while the refresh goes on in the
    /// background (its result is stored). Without it a stale value is served at once.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .stale_for(std::time::Duration::from_secs(300))
    ///     .load_timeout(std::time::Duration::from_millis(50));
    /// ```
    pub fn load_timeout(mut self, soft: Duration) -> Self {
        self.load_timeout = Some(soft);
        self
    }

    /// The *hard* load timeout: no caller waits longer than `hard` for a loader (its own, or the
    /// one it waits on): past it, the call fails with [`Error::LoadTimeout`] while the load goes
    /// on in the background and its result is stored. The loader then runs on a task (async) or
    /// on the runtime's blocking pool (blocking front) instead of the caller's thread; a
    /// blocking loader cannot be interrupted, so it runs to its end.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .load_hard_timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn load_hard_timeout(mut self, hard: Duration) -> Self {
        self.load_hard_timeout = Some(hard);
        self
    }

    /// One load per key across processes: a loader path that finds nothing in Redis first
    /// takes a *lease* on the key in Redis (`__flipcache__:lease:{name}:{key}`, outside the
    /// layout Python FlipCache reads; `len`, `keys` and `clear` never see it) for at most
    /// `lease`. Its holder runs the loader and writes the value; the other processes that miss
    /// the key meanwhile wait for that write (woken by Redis's invalidation push, not by
    /// polling) and read it in one round trip. Past the lease (a holder that crashed or hangs)
    /// one of them takes over. With [`stale_for`](Builder::stale_for), callers serve the stale
    /// value instead of waiting, and background refreshes run once in the fleet.
    ///
    /// Choose a `lease` longer than a load takes: a holder still loading when its lease ends
    /// lets another process load too. A lease is for efficiency, not mutual exclusion: a
    /// holder paused past its lease still writes, and the value written last wins. When Redis
    /// cannot be reached the load goes on with this process's single-flight alone: the lease
    /// never fails a call. Costs a second round trip on a miss (two more on a cluster, where
    /// the lease may live on another slot than the value).
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, String>::builder("reports")
    ///     .distributed_lock(std::time::Duration::from_secs(10));
    /// ```
    pub fn distributed_lock(mut self, lease: Duration) -> Self {
        self.distributed_lock = Some(lease);
        self
    }

    /// Calls `f` with every [`Event`] of this cache: entries invalidated by other clients,
    /// evicted to make room, the L1 flushed, Redis reconnected, stale values served, loads
    /// failed. For debugging lost updates and for custom telemetry.
    ///
    /// `f` runs on a thread of its own (one per cache that has a callback), in the order the
    /// events happened, never on the caller's thread nor while the cache holds a lock, so it
    /// may block (events queue up meanwhile) but it sees them a little later than they
    /// happen. A panic in `f` is caught and logged; the cache and later events are unaffected.
    /// Nothing is queued for caches without a callback, and an L1 hit never queues anything
    /// but a stale value served.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .on_event(|e: &flipcache::Event| {
    ///         if let flipcache::Event::Invalidated { key, .. } = e {
    ///             eprintln!("{key} changed elsewhere");
    ///         }
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    fn target(&self) -> Result<Endpoint> {
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
            Source::Client(c) => return Ok((**c).clone()),
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
        if self.name.starts_with(crate::key::RESERVED) {
            return Err(self.config(format!(
                "names starting with `{}` are reserved for flipcache's own keys",
                crate::key::RESERVED
            )));
        }
        if self
            .absent_ttl
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(self.config("cache_absent must be at least 1 ms".into()));
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
        if self
            .distributed_lock
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(self.config("distributed_lock's lease must be at least 1 ms".into()));
        }
        let target = self.target()?;
        let rt = runtime::handle()
            .map_err(|e| self.config(format!("cannot start the background runtime: {e}")))?;
        let remote = Remote::shared(target, self.tracking, self.connect_timeout, rt);
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
            fail_open,
            absent_ttl,
            jitter,
            decode_misses,
            trace_keys,
            stale_for,
            eager_refresh,
            fail_safe,
            fail_safe_throttle,
            load_timeout,
            load_hard_timeout,
            distributed_lock,
            on_event,
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
            fail_open,
            absent_ttl,
            jitter,
            decode_misses,
            trace_keys,
            stale_for,
            eager_refresh,
            fail_safe,
            fail_safe_throttle,
            load_timeout,
            load_hard_timeout,
            distributed_lock,
            on_event,
        };
        Core::start(settings, codec, remote).await
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

impl<K, V, C> Builder<K, V, C, Blocking> {
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
}

impl<K, V, C> Builder<K, V, C, Async> {
    /// Builds the async cache, connecting to Redis (an unreachable server or a wrong password
    /// is an error here, not at first use). This is the builder
    /// [`aio::FlipCache::builder`](crate::aio::FlipCache::builder) gives; await it inside a
    /// tokio runtime with timers enabled (as `#[tokio::main]` sets up).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<u64, u64> =
    ///     flipcache::aio::FlipCache::builder("b").local_max(1000).build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<crate::aio::FlipCache<K, V>>
    where
        K: FlipKey,
        V: Clone + Send + Sync + 'static,
        C: CodecChoice<V>,
    {
        self.build_async().await
    }
}

impl<K, V: 'static, C: ClosureStart<V>, F> Builder<K, V, C, F> {
    /// Encodes values with `f`, which gives the text stored in Redis (the Python original's
    /// `value_encoder`). Pair it with [`value_decoder`](Builder::value_decoder): until both are
    /// set the builder has no `build` (see [`MissingDecoder`]).
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
    ) -> Builder<K, V, C::WithEncoder, F> {
        self.map_codec(|c| c.with_encoder(|c| c.encoder(f)))
    }

    /// Decodes values with `g`, given the stored text; its error becomes [`Error::Decode`].
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u8>::builder("b")
    ///     .value_encoder(|v: &u8| v.to_string())
    ///     .value_decoder(|s: &str| s.parse::<u8>());
    /// ```
    pub fn value_decoder<E: Into<crate::codec::CodecError>>(
        self,
        g: impl Fn(&str) -> Result<V, E> + Send + Sync + 'static,
    ) -> Builder<K, V, C::WithDecoder, F> {
        self.map_codec(|c| c.with_decoder(|c| c.decoder(g)))
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
    ) -> Builder<K, V, C::WithEncoder, F> {
        self.map_codec(|c| c.with_encoder(|c| c.encoder_bytes(f)))
    }

    /// Decodes values with `g` from raw bytes.
    ///
    /// ```
    /// let b = flipcache::FlipCache::<u64, u8>::builder("b")
    ///     .value_encoder_bytes(|v: &u8| vec![*v])
    ///     .value_decoder_bytes(|b: &[u8]| b.first().copied().ok_or("empty"));
    /// ```
    pub fn value_decoder_bytes<E: Into<crate::codec::CodecError>>(
        self,
        g: impl Fn(&[u8]) -> Result<V, E> + Send + Sync + 'static,
    ) -> Builder<K, V, C::WithDecoder, F> {
        self.map_codec(|c| c.with_decoder(|c| c.decoder_bytes(g)))
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn debug_output_never_shows_a_password() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://app:s3cret@h:6379/0", "redis://app:***@h:6379/0"),
            ("rediss://:s3cret@h:6380", "rediss://:***@h:6380"),
            ("redis://s3cret@h", "redis://***@h"),
            ("redis://a:b:c@h/0?x=@", "redis://a:***@h/0?x=@"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
