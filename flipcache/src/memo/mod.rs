//! Runtime support for `#[flipcache]` (reached through `flipcache::__private`; not a public
//! API): one lazily built cache per memoized function, argument keys, single-flight and
//! fail-open.
//!
//! The macro turns a function into: build the key from the arguments ([`Memo::lookup`]: an L1
//! hit returns at once), then on a miss [`Memo::finish`] (or [`Memo::finish_async`]): join the
//! key's flight, and as its leader read Redis, else run the body, store, and share the value.
//!
//! Fail-open: the cache never breaks the function. When Redis cannot be reached, answers too
//! slowly, or holds a value that does not decode, the body runs and its result is returned
//! (and kept in the L1 when the cache exists). The first such trouble logs one `warn`; later
//! ones log at `debug` until Redis works again (an `info` says so). While degraded, Redis is
//! probed at most once per [`PROBE_EVERY`] per function, so an outage costs no timeouts on the
//! other calls. A cache that could not be built (Redis down at the first call) is retried on
//! the same schedule.

pub(crate) mod flight;
pub(crate) mod key;

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::FlipCache;
use crate::codec::{DefaultCodec, JsonCodec, ValueCodec};
use crate::error::{Error, Result};
use crate::runtime::block_on;
use crate::value::FlipValue;
use flight::{Flights, Join, Landed, Lead};
pub use key::{MemoKey, write_escaped_key};

/// Default Redis timeout of a memoized function's cache: short, since a slow cache is worse
/// than none when the body can always run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// While Redis is in trouble, how often one call of a memoized function tries it again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

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
pub struct ClusterNodes(Vec<String>);

#[cfg(feature = "cluster")]
impl ClusterNodes {
    /// Seed node URLs (`redis://host:port`; one reachable node is enough).
    ///
    /// ```
    /// let seeds = flipcache::ClusterNodes::new(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
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

/// What `redis = ...` accepts: a URL (`&str`, `String`), a `redis::Client`, `ClusterNodes`
/// (feature `cluster`), or an `Option` of one (`None`: the environment).
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

/// A type `#[flipcache]` can store with its default encoding: every [`FlipValue`]. (Its own
/// trait only to say, when a type is not one, what to do about it.)
#[diagnostic::on_unimplemented(
    message = "`#[flipcache]` cannot store `{Self}`: it has no default encoding",
    label = "the cached part of this return type does not implement `flipcache::FlipValue`",
    note = "derive `flipcache::FlipCodec` for it, implement `flipcache::FlipValue`, or add \
            `json` to the attribute to store it as JSON (serde)"
)]
pub trait Storable: FlipValue {}

impl<T: FlipValue> Storable for T {}

/// The default encoding ([`FlipValue`]) of a memoized function's return value.
pub fn default_codec<V: Storable>() -> &'static dyn ValueCodec<V> {
    &DefaultCodec
}

/// JSON (`json`) for a memoized function's return value.
pub fn json_codec<V>() -> &'static dyn ValueCodec<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    &JsonCodec
}

struct CodecRef<V: 'static>(&'static dyn ValueCodec<V>);

impl<V: 'static> ValueCodec<V> for CodecRef<V> {
    #[inline]
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        self.0.encode(value, out)
    }
    #[inline]
    fn decode(&self, bytes: &[u8]) -> std::result::Result<V, String> {
        self.0.decode(bytes)
    }
}

// ---- return shapes ---------------------------------------------------------------------------

/// Which part of a return value is cached: all of it ([`Whole`]), the `Ok` of a `Result`
/// ([`OkOnly`]), or the `Some` of an `Option` ([`SomeOnly`]). The macro picks one from the
/// return type's last path segment.
pub trait Shape<R> {
    /// What is stored.
    type Value;
    /// The part to store, if this result is cached at all.
    fn cacheable(r: &R) -> Option<&Self::Value>;
    /// A stored value as a result.
    fn wrap(v: Self::Value) -> R;
}

/// The whole return value is cached.
pub struct Whole;
/// Only `Ok` values are cached.
pub struct OkOnly;
/// Only `Some` values are cached.
pub struct SomeOnly;

impl<R> Shape<R> for Whole {
    type Value = R;
    #[inline]
    fn cacheable(r: &R) -> Option<&R> {
        Some(r)
    }
    #[inline]
    fn wrap(v: R) -> R {
        v
    }
}

impl<T, E> Shape<Result<T, E>> for OkOnly {
    type Value = T;
    #[inline]
    fn cacheable(r: &Result<T, E>) -> Option<&T> {
        r.as_ref().ok()
    }
    #[inline]
    fn wrap(v: T) -> Result<T, E> {
        Ok(v)
    }
}

impl<T> Shape<Option<T>> for SomeOnly {
    type Value = T;
    #[inline]
    fn cacheable(r: &Option<T>) -> Option<&T> {
        r.as_ref()
    }
    #[inline]
    fn wrap(v: T) -> Option<T> {
        Some(v)
    }
}

// ---- keys ------------------------------------------------------------------------------------

/// Writes a function's only argument (or its `key = ...` value).
#[inline]
pub fn write_alone<T: MemoKey + ?Sized>(out: &mut String, v: &T) {
    v.write_alone(out)
}

/// Writes one of several arguments; `first` is false for all but the first.
#[inline]
pub fn write_part<T: MemoKey + ?Sized>(out: &mut String, first: bool, v: &T) {
    if !first {
        out.push(',');
    }
    v.write_key(out)
}

thread_local! {
    /// Where hit-path keys are built, so a hit allocates nothing.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// What [`Memo::lookup`] found.
pub enum Found<V> {
    /// The L1 had it.
    Hit(V),
    /// Not in the L1: the key, for [`Memo::finish`].
    Miss(String),
}

// ---- the per-function cache ------------------------------------------------------------------

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(base().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The cache of one memoized function: built on first use, shared by the function and its
/// companions (`_cache`, `_invalidate`, `_prime`).
pub struct Memo<V: 'static> {
    options: fn() -> MemoOptions<V>,
    name: OnceLock<&'static str>,
    cache: OnceLock<FlipCache<String, V>>,
    build_lock: Mutex<()>,
    build_lock_async: tokio::sync::Mutex<()>,
    flights: Flights<V>,
    /// Redis is in trouble (a warning was logged); set back, with an info, when it works.
    degraded: AtomicBool,
    /// While degraded: when (ms since `base()`) the next call may try Redis again.
    retry_at: AtomicU64,
    /// A value did not encode or decode (warned once per function).
    codec_warned: AtomicBool,
}

impl<V: Clone + Send + Sync + 'static> Memo<V> {
    /// A memo whose cache is configured by `options`, called when the cache is built.
    pub const fn new(options: fn() -> MemoOptions<V>) -> Self {
        Self {
            options,
            name: OnceLock::new(),
            cache: OnceLock::new(),
            build_lock: Mutex::new(()),
            build_lock_async: tokio::sync::Mutex::const_new(()),
            flights: Flights::new(),
            degraded: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            codec_warned: AtomicBool::new(false),
        }
    }

    fn name(&self) -> &'static str {
        self.name.get().copied().unwrap_or("?")
    }

    fn builder(&self) -> crate::Builder<String, V, std::sync::Arc<dyn ValueCodec<V>>> {
        let o = (self.options)();
        let _ = self.name.set(o.name);
        let mut b = FlipCache::<String, V>::builder(o.name)
            .refresh_expire_time_on_get(o.refresh_on_get)
            .timeout(o.timeout)
            .connect_timeout(o.timeout)
            .lazy_connect(true);
        if let Some(ttl) = o.expire_time {
            b = b.expire_time(ttl);
        }
        if let Some(n) = o.local_max {
            b = b.local_max(n);
        }
        if let Some(n) = o.local_max_bytes {
            b = b.local_max_bytes(n);
        }
        b = match o.redis {
            Redis::Env => b,
            Redis::Url(url) => b.redis_url(&url),
            Redis::Client(c) => b.redis_client(*c),
            #[cfg(feature = "cluster")]
            Redis::Cluster(nodes) => {
                b.redis_cluster(&nodes.iter().map(String::as_str).collect::<Vec<_>>())
            }
        };
        b.value_codec(CodecRef(o.codec))
    }

    // ---- health ----------------------------------------------------------------------------

    /// Whether this call may use Redis: always when healthy; while degraded, one call per
    /// [`PROBE_EVERY`].
    fn redis_allowed(&self) -> bool {
        if !self.degraded.load(Ordering::Acquire) {
            return true;
        }
        let now = now_ms();
        let at = self.retry_at.load(Ordering::Acquire);
        now >= at
            && self
                .retry_at
                .compare_exchange(at, now + probe_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn healthy(&self) {
        if self.degraded.load(Ordering::Acquire) && self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!(
                cache = self.name(),
                "flipcache: Redis answers again; memoized calls use their cache again"
            );
        }
    }

    fn trouble(&self, e: &Error) {
        if matches!(e, Error::Decode { .. } | Error::Encode { .. }) {
            if !self.codec_warned.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    cache = self.name(),
                    error = %e,
                    "flipcache: a memoized value could not be encoded or decoded; the function \
                     ran instead (further such cases are logged at debug level)"
                );
            } else {
                tracing::debug!(cache = self.name(), error = %e, "flipcache: memoized value skipped");
            }
            return;
        }
        self.retry_at
            .store(now_ms() + probe_ms(), Ordering::Release);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                cache = self.name(),
                error = %e,
                "flipcache: Redis is unavailable to a memoized function; it runs without the \
                 shared cache (results kept in process memory) until Redis answers again"
            );
        } else {
            tracing::debug!(cache = self.name(), error = %e, "flipcache: Redis still unavailable");
        }
    }

    // ---- building --------------------------------------------------------------------------

    /// Builds the cache if it is not built and a try is due (blocking).
    #[inline]
    pub fn ready(&'static self) {
        if self.cache.get().is_none() {
            // Failure is already logged; the call goes on without the cache.
            let _ = self.build_sync(false);
        }
    }

    /// Builds the cache if it is not built and a try is due (async).
    #[inline]
    pub async fn ready_async(&'static self) {
        if self.cache.get().is_none() {
            let _ = self.build_async(false).await;
        }
    }

    fn due(&self) -> bool {
        !self.degraded.load(Ordering::Acquire) || now_ms() >= self.retry_at.load(Ordering::Acquire)
    }

    fn build_sync(&'static self, force: bool) -> Result<&'static FlipCache<String, V>> {
        let _guard = self.build_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.cache.get() {
            return Ok(c);
        }
        if !force && !self.due() {
            return Err(self.not_built());
        }
        match self.builder().build() {
            Ok(c) => {
                self.healthy();
                Ok(self.cache.get_or_init(|| c))
            }
            Err(e) => {
                self.trouble(&e);
                Err(e)
            }
        }
    }

    async fn build_async(&'static self, force: bool) -> Result<&'static FlipCache<String, V>> {
        let _guard = self.build_lock_async.lock().await;
        if let Some(c) = self.cache.get() {
            return Ok(c);
        }
        if !force && !self.due() {
            return Err(self.not_built());
        }
        match self.builder().build_async().await {
            Ok(c) => {
                self.healthy();
                Ok(self.cache.get_or_init(|| c.to_blocking()))
            }
            Err(e) => {
                self.trouble(&e);
                Err(e)
            }
        }
    }

    fn not_built(&self) -> Error {
        Error::Config {
            cache: self.name().into(),
            message: "the cache is not built yet (Redis was unreachable); retrying later".into(),
        }
    }

    // ---- the call path ---------------------------------------------------------------------

    /// Builds the key with `write` and looks it up in the L1.
    #[inline]
    pub fn lookup(&'static self, write: impl FnOnce(&mut String)) -> Found<V> {
        let core = self.cache.get().map(FlipCache::core);
        let mut write = Some(write);
        let found = KEY.try_with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            buf.clear();
            (write.take()?)(&mut buf);
            if let Some(core) = core
                && let Some(v) = core.local_hit(buf.as_str())
            {
                return Some(Found::Hit(v));
            }
            let key = buf.as_str().to_owned();
            if buf.capacity() > 4096 {
                *buf = String::new();
            }
            Some(Found::Miss(key))
        });
        if let Ok(Some(found)) = found {
            return found;
        }
        // Re-entered from a key writer, or during thread teardown: no shared buffer.
        let mut key = String::new();
        if let Some(write) = write.take() {
            write(&mut key);
        }
        match core.and_then(|c| c.local_hit(key.as_str())) {
            Some(v) => Found::Hit(v),
            None => Found::Miss(key),
        }
    }

    /// [`Memo::lookup`] for a function of one argument (or one `key = ...` value): a string or
    /// an integer is looked up without building a `String` (see
    /// [`MemoKey::with_alone_str`]), anything else is written first.
    #[inline]
    pub fn lookup_alone<T: MemoKey + ?Sized>(&'static self, v: &T) -> Found<V> {
        let core = self.cache.get().map(FlipCache::core);
        let found = v.with_alone_str(|s| match core.and_then(|c| c.local_hit(s)) {
            Some(hit) => Found::Hit(hit),
            None => Found::Miss(s.to_owned()),
        });
        match found {
            Some(found) => found,
            None => self.lookup(|k| v.write_alone(k)),
        }
    }

    /// The key written by `write`, in a fresh string.
    pub fn key(&self, write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    /// Finishes a blocking call: the hit's value, or single-flight over Redis and the body.
    #[inline]
    pub fn finish<S, R>(&'static self, found: Found<V>, _shape: S, body: impl FnOnce() -> R) -> R
    where
        S: Shape<R, Value = V>,
    {
        match found {
            Found::Hit(v) => S::wrap(v),
            Found::Miss(key) => self.miss::<S, R>(key, body),
        }
    }

    /// The miss path, kept out of line so the hit path stays small.
    #[inline(never)]
    fn miss<S, R>(&'static self, key: String, body: impl FnOnce() -> R) -> R
    where
        S: Shape<R, Value = V>,
    {
        loop {
            match self.flights.join(&key) {
                Join::Lead(lead) => return self.lead_sync::<S, R>(lead, key, body),
                Join::Follow(flight) => match flight.wait() {
                    Landed::Value(v) => return S::wrap(v),
                    Landed::RunYourself => return self.run::<S, R>(key, body).0,
                    Landed::TakeOver => {
                        if let Some(v) = self.local(&key) {
                            return S::wrap(v);
                        }
                    }
                },
            }
        }
    }

    fn local(&self, key: &str) -> Option<V> {
        self.cache.get()?.core().local_hit(key)
    }

    fn lead_sync<S, R>(&'static self, lead: Lead<'_, V>, key: String, body: impl FnOnce() -> R) -> R
    where
        S: Shape<R, Value = V>,
    {
        let cache = self.cache.get();
        if let Some(cache) = cache {
            let core = cache.core();
            if let Some(v) = core.local_hit(key.as_str()) {
                lead.finish(Some(v.clone()));
                return S::wrap(v);
            }
            if self.redis_allowed() {
                match block_on(core.rt(), core.fetch(key.clone())) {
                    Ok(Some(v)) => {
                        self.healthy();
                        lead.finish(Some(v.clone()));
                        return S::wrap(v);
                    }
                    Ok(None) => self.healthy(),
                    Err(e) => self.trouble(&e),
                }
            }
        }
        let (r, v) = self.run::<S, R>(key, body);
        lead.finish(v);
        r
    }

    /// Runs the body and stores its result if it is cacheable; gives back the result and the
    /// stored value.
    fn run<S, R>(&'static self, key: String, body: impl FnOnce() -> R) -> (R, Option<V>)
    where
        S: Shape<R, Value = V>,
    {
        let r = body();
        let v = S::cacheable(&r).cloned();
        if let (Some(v), Some(cache)) = (&v, self.cache.get()) {
            let core = cache.core();
            let stored = self
                .redis_allowed()
                .then(|| block_on(core.rt(), core.set(key.clone(), v.clone())));
            self.stored(cache, key, v, stored);
        }
        (r, v)
    }

    /// After a store (`None`: skipped, Redis being in trouble): healthy, or keep the value in
    /// the L1 only and report the trouble.
    fn stored(&self, cache: &FlipCache<String, V>, key: String, v: &V, stored: Option<Result<()>>) {
        match stored {
            Some(Ok(())) => self.healthy(),
            Some(Err(e)) => {
                self.trouble(&e);
                cache.core().put_local(key, v.clone());
            }
            None => cache.core().put_local(key, v.clone()),
        }
    }

    /// Finishes an async call: the hit's value, or single-flight over Redis and the body.
    pub async fn finish_async<S, R, F, Fut>(&'static self, found: Found<V>, _shape: S, body: F) -> R
    where
        S: Shape<R, Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let key = match found {
            Found::Hit(v) => return S::wrap(v),
            Found::Miss(k) => k,
        };
        loop {
            match self.flights.join(&key) {
                Join::Lead(lead) => return self.lead_async::<S, R, F, Fut>(lead, key, body).await,
                Join::Follow(flight) => match flight.wait_async().await {
                    Landed::Value(v) => return S::wrap(v),
                    Landed::RunYourself => {
                        return self.run_async::<S, R, F, Fut>(key, body).await.0;
                    }
                    Landed::TakeOver => {
                        if let Some(v) = self.local(&key) {
                            return S::wrap(v);
                        }
                    }
                },
            }
        }
    }

    async fn lead_async<S, R, F, Fut>(&'static self, lead: Lead<'_, V>, key: String, body: F) -> R
    where
        S: Shape<R, Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let cache = self.cache.get();
        if let Some(cache) = cache {
            let core = cache.core();
            if let Some(v) = core.local_hit(key.as_str()) {
                lead.finish(Some(v.clone()));
                return S::wrap(v);
            }
            if self.redis_allowed() {
                match core.fetch(key.clone()).await {
                    Ok(Some(v)) => {
                        self.healthy();
                        lead.finish(Some(v.clone()));
                        return S::wrap(v);
                    }
                    Ok(None) => self.healthy(),
                    Err(e) => self.trouble(&e),
                }
            }
        }
        let (r, v) = self.run_async::<S, R, F, Fut>(key, body).await;
        lead.finish(v);
        r
    }

    /// [`Memo::run`] for an async body.
    async fn run_async<S, R, F, Fut>(&'static self, key: String, body: F) -> (R, Option<V>)
    where
        S: Shape<R, Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let r = body().await;
        let v = S::cacheable(&r).cloned();
        if let (Some(v), Some(cache)) = (&v, self.cache.get()) {
            let stored = if self.redis_allowed() {
                Some(cache.core().set(key.clone(), v.clone()).await)
            } else {
                None
            };
            self.stored(cache, key, v, stored);
        }
        (r, v)
    }

    // ---- companions ------------------------------------------------------------------------

    /// The cache (`<fn>_cache()`), building it now if needed.
    pub fn cache(&'static self) -> Result<FlipCache<String, V>> {
        match self.cache.get() {
            Some(c) => Ok(c.clone()),
            None => self.build_sync(true).cloned(),
        }
    }

    /// The cache's async handle (`<fn>_cache().await`), building it now if needed.
    pub async fn cache_async(&'static self) -> Result<crate::aio::FlipCache<String, V>> {
        match self.cache.get() {
            Some(c) => Ok(c.to_async()),
            None => self.build_async(true).await.map(FlipCache::to_async),
        }
    }

    /// Removes one entry (`<fn>_invalidate(args)`); says whether Redis had it.
    pub fn invalidate(&'static self, key: String) -> Result<bool> {
        self.cache()?.delete(&key)
    }

    /// Removes one entry (`<fn>_invalidate(args).await`); says whether Redis had it.
    pub async fn invalidate_async(&'static self, key: String) -> Result<bool> {
        self.cache_async().await?.delete(&key).await
    }

    /// Stores one entry (`<fn>_prime(args, value)`).
    pub fn prime(&'static self, key: String, value: V) -> Result<()> {
        self.cache()?.set(key, value)
    }

    /// Stores one entry (`<fn>_prime(args, value).await`).
    pub async fn prime_async(&'static self, key: String, value: V) -> Result<()> {
        self.cache_async().await?.set(key, value).await
    }
}

fn probe_ms() -> u64 {
    u64::try_from(PROBE_EVERY.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cache_the_right_part() {
        assert_eq!(<Whole as Shape<u8>>::cacheable(&3), Some(&3));
        let ok: Result<u8, String> = Ok(4);
        let err: Result<u8, String> = Err("no".into());
        assert_eq!(OkOnly::cacheable(&ok), Some(&4));
        assert_eq!(OkOnly::cacheable(&err), None);
        assert_eq!(<OkOnly as Shape<Result<u8, String>>>::wrap(5), Ok(5));
        assert_eq!(SomeOnly::cacheable(&Some(1u8)), Some(&1));
        assert_eq!(SomeOnly::cacheable(&None::<u8>), None);
    }

    #[test]
    fn keys_join_parts_and_leave_a_single_argument_alone() {
        let mut out = String::new();
        write_alone(&mut out, &"a,b");
        assert_eq!(out, "a,b");
        let mut out = String::new();
        write_part(&mut out, true, &"a,b");
        write_part(&mut out, false, &3u8);
        assert_eq!(out, r"a\,b,3");
    }

    static UNREACHABLE: Memo<u64> = Memo::new(|| {
        MemoOptions::new("memo_unit_unreachable", default_codec::<u64>())
            .redis("redis://127.0.0.1:1")
            .timeout_ms(100)
    });

    #[test]
    fn an_unreachable_redis_never_breaks_the_function() {
        let mut runs = 0;
        for _ in 0..3 {
            UNREACHABLE.ready();
            let found = UNREACHABLE.lookup(|k| write_alone(k, &7u64));
            let r = UNREACHABLE.finish(found, Whole, || {
                runs += 1;
                49u64
            });
            assert_eq!(r, 49);
        }
        // The cache is built without Redis (lazy connect), so the first result is kept in the
        // L1 and the next calls hit it; Redis is marked as degraded.
        assert_eq!(runs, 1);
        assert!(UNREACHABLE.degraded.load(Ordering::Acquire));
        assert!(UNREACHABLE.cache().is_ok());
    }
}
