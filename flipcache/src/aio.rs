//! [`FlipCache`]: the async front (tokio), on the same core, L1 and connection as the blocking one.
//!
//! There is no cargo feature to leave this front out: both fronts are thin wrappers over one
//! async implementation, and the blocking front itself runs on a background tokio runtime that
//! owns the shared, multiplexed Redis connection (the way `reqwest::blocking` works). Leaving out
//! this module would save no dependency and almost no compile time.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::arg::Arg;
use crate::builder::Builder;
use crate::core::Core;
use crate::error::Result;
use crate::key::FlipKey;
use crate::load::{Load, LoadError};
use crate::stats::Stats;
use crate::value::FlipValue;

pub use crate::memo::handle_async::MemoCache;

/// A hybrid cache with an async API: the same cache as [`crate::FlipCache`] (same verbs,
/// encodings, L1 and shared connection), for tokio code.
///
/// Futures are `Send`. Dropping one half-way (a timeout around it, a cancelled task) leaves the
/// cache consistent: a write whose outcome is unknown removes its key from the L1, and a read
/// that never finished fills nothing. Concurrent misses from many tasks are pipelined on the
/// one multiplexed connection. Use it inside a tokio runtime with timers enabled (as
/// `#[tokio::main]` sets up).
///
/// ```no_run
/// use flipcache::aio::FlipCache;
/// # async fn run() -> flipcache::Result<()> {
/// let cache: FlipCache<String, String> = FlipCache::new("my_cache").await?;
/// cache.set("my_key", "my_value").await?;
/// assert_eq!(cache.get("my_key").await?, Some("my_value".to_string()));
/// assert!(cache.contains("my_key").await?);
/// # Ok(()) }
/// ```
pub struct FlipCache<K, V> {
    core: Arc<Core<K, V>>,
}

impl<K, V> Clone for FlipCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
        }
    }
}

impl<K, V> fmt::Debug for FlipCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlipCache")
            .field("name", &self.core.name)
            .field("endpoint", &self.core.remote.endpoint())
            .finish()
    }
}

// `new` and `builder` bound `K` on themselves, not on the impl: a key type that is not a
// `FlipKey` then gets `FlipKey`'s diagnostic (which names the fix) rather than E0599.
impl<K, V> FlipCache<K, V> {
    /// A cache named `name` with the default settings, connected to the Redis at
    /// `FLIPCACHE_REDIS_URL`, else `REDIS_URL`, else `redis://127.0.0.1:6379`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("my_cache").await?;
    /// # Ok(()) }
    /// ```
    pub async fn new(name: &str) -> Result<Self>
    where
        K: FlipKey,
        V: FlipValue,
    {
        Self::builder(name).build().await
    }

    /// A [`Builder`] for a cache named `name`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache = flipcache::aio::FlipCache::<u64, String>::builder("users")
    ///     .local_max(1_000)
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(
        name: impl Into<String>,
    ) -> Builder<K, V, crate::DefaultCodec, crate::front::Async> {
        Builder::new(name)
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> FlipCache<K, V> {
    pub(crate) fn from_core(core: Arc<Core<K, V>>) -> Self {
        Self { core }
    }

    /// The value under `key`: from the L1 if it holds it, else from Redis (one round trip).
    /// A missing key gives the [`value_default`](Builder::value_default), or `None`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("c").await?;
    /// let v: Option<String> = cache.get("k").await?;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub async fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(v) = self.core.local_hit(key) {
            return Ok(Some(v));
        }
        self.core.returned(self.core.fetch(key.to_owned()).await)
    }

    /// The value under `key`, or, when neither layer has it, the value of `load` (a future,
    /// polled only if needed), stored in Redis and the L1.
    ///
    /// An L1 hit returns at once; otherwise one Redis round trip; otherwise `load` runs **once
    /// per key per process**, however many tasks ask at the same time: the others wait and get
    /// a clone of its value. If the loading task is cancelled or panics, one waiter takes over.
    /// A value in Redis that does not decode counts as a miss and is overwritten. If Redis is
    /// unreachable or slow, the loader's value is returned anyway (see
    /// [`Builder::fail_open`](crate::Builder::fail_open)). `load` may give the value or a
    /// [`Loaded`](crate::Loaded) with a TTL of its own. With
    /// [`stale_for`](crate::Builder::stale_for) or
    /// [`eager_refresh`](crate::Builder::eager_refresh), a hit on a stale (or nearly stale) entry
    /// returns at once and `load` refreshes the key in a task of its own; that is why it is
    /// `Send + 'static`, as `tokio::spawn`'s futures are (write `async move { .. }` with what
    /// it needs moved in). `load` may give `V` or a `Loaded<V>`; a future whose output says
    /// neither (one that only panics, say) needs its type written:
    /// `async { let v: String = unreachable!(); v }`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let users: flipcache::aio::FlipCache<u64, String> = flipcache::aio::FlipCache::new("users").await?;
    /// let name = users.get_with(&42, async { "Ada".to_string() }).await?;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub async fn get_with<Q, T>(
        &self,
        key: &Q,
        load: impl Future<Output = T> + Send + 'static,
    ) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
    {
        self.core.returned(self.core.get_with(key, load).await)
    }

    /// [`get_with`](FlipCache::get_with) with a fallible loader. Its error is returned as
    /// [`LoadError::Loader`] (never cached); tasks that waited on the same load share it
    /// (`Arc<E>`). Redis errors (only with `fail_open(false)`) come as [`LoadError::Cache`].
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let users: flipcache::aio::FlipCache<u64, String> = flipcache::aio::FlipCache::new("users").await?;
    /// let name = users
    ///     .try_get_with(&42, async { Ok::<_, std::io::Error>("Ada".to_string()) })
    ///     .await;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub async fn try_get_with<Q, T, E>(
        &self,
        key: &Q,
        load: impl Future<Output = std::result::Result<T, E>> + Send + 'static,
    ) -> std::result::Result<V, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        E: Send + Sync + 'static,
    {
        self.core
            .returned_load(self.core.try_get_with(key, load).await)
    }

    /// [`get_with`](FlipCache::get_with) with a loader that may find nothing; `None` is
    /// remembered in Redis only with [`cache_absent`](crate::Builder::cache_absent). A loader
    /// that only gives `None` needs its type written (`None::<String>`): `Some` may hold a `V`
    /// or a `Loaded<V>`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let users: flipcache::aio::FlipCache<u64, String> = flipcache::aio::FlipCache::new("users").await?;
    /// let found = users.optionally_get_with(&404, async { None::<String> }).await?;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub async fn optionally_get_with<Q, T>(
        &self,
        key: &Q,
        load: impl Future<Output = Option<T>> + Send + 'static,
    ) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
    {
        self.core
            .returned(self.core.optionally_get_with(key, load).await)
    }

    /// [`set`](FlipCache::set) with a TTL of its own instead of the cache's `expire_time`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let tokens: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("tokens").await?;
    /// tokens.set_with_ttl("api", "secret", std::time::Duration::from_secs(540)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_with_ttl(
        &self,
        key: impl Arg<K>,
        value: impl Arg<V>,
        ttl: Duration,
    ) -> Result<()> {
        let written = self
            .core
            .write(key.into_arg(), value.into_arg(), Some(ttl), false)
            .await;
        self.core.returned(written).map(drop)
    }

    /// Stores `value` only if `key` has no value in Redis (`SET NX`); says whether it did.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let owners: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("owners").await?;
    /// let mine = owners.set_if_absent("job:7", "worker-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_if_absent(&self, key: impl Arg<K>, value: impl Arg<V>) -> Result<bool> {
        let written = self
            .core
            .write(key.into_arg(), value.into_arg(), None, true)
            .await;
        self.core.returned(written)
    }

    /// [`set`](FlipCache::set), listing the entry under each of `tags`: a later
    /// [`remove_by_tag`](FlipCache::remove_by_tag) of any of them removes it. The tag indexes
    /// live outside the `{name}:{key}` layout (`len`, `keys`, `clear` and Python FlipCache
    /// never see them) and expire with their entries. `tags` is any list of strings (`&["a"]`,
    /// a `Vec<String>`), as for [`Loaded::tags`](crate::Loaded::tags).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let pages: flipcache::aio::FlipCache<String, String> =
    ///     flipcache::aio::FlipCache::new("pages").await?;
    /// pages.set_with_tags("profile:42", "<html>", ["user:42"]).await?;
    /// pages.set_with_tags("orders:42", "<html>", ["user:42", "org:7"]).await?;
    /// let org = format!("org:{}", 7);
    /// pages.set_with_tags("team:7", "<html>", vec![org]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_with_tags(
        &self,
        key: impl Arg<K>,
        value: impl Arg<V>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<()> {
        let tags = crate::key::tag_list(tags);
        let written = self
            .core
            .set_with_tags(key.into_arg(), value.into_arg(), &tags)
            .await;
        self.core.returned(written)
    }

    /// Removes every entry listed under `tag` (see [`set_with_tags`](FlipCache::set_with_tags)
    /// and [`Loaded::tags`](crate::Loaded::tags)) from Redis, in batches; returns how many
    /// existed. Once it returns, the entries are gone from Redis (Python readers see them gone)
    /// and from this process's local layer; other processes drop their local copies when
    /// Redis's invalidation reaches them, as for [`delete`](FlipCache::delete). An entry tagged
    /// while this runs is either removed or written after it, and then stays listed for a later
    /// removal: no value written before the call survives it. Batches of 500 keep each Redis
    /// command short (a few milliseconds at most), also on a cluster.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let pages: flipcache::aio::FlipCache<String, String> =
    ///     flipcache::aio::FlipCache::new("pages").await?;
    /// let removed: usize = pages.remove_by_tag("user:42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_by_tag(&self, tag: &str) -> Result<usize> {
        self.core.returned(self.core.remove_by_tag(tag).await)
    }

    /// The remaining TTL of `key` in Redis: `None` when the key does not exist or never
    /// expires.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let tokens: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("tokens").await?;
    /// let left = tokens.ttl("api").await?;
    /// # Ok(()) }
    /// ```
    pub async fn ttl<Q>(&self, key: &Q) -> Result<Option<Duration>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.returned(self.core.ttl_of(key.to_owned()).await)
    }

    /// Stores `value` under `key` in Redis (with the TTL, if any), then in the L1. If Redis
    /// fails, the L1 keeps no copy and the error is returned.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// nums.set(123, 246).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, key: impl Arg<K>, value: impl Arg<V>) -> Result<()> {
        self.core
            .returned(self.core.set(key.into_arg(), value.into_arg()).await)
    }

    /// Removes `key` from both layers; says whether Redis had it.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("c").await?;
    /// let existed: bool = cache.delete("k").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.returned(self.core.delete(key.to_owned()).await)
    }

    /// Whether [`get`](FlipCache::get) would find a value for `key`: the L1 first (a fresh
    /// entry), else Redis, with one `EXISTS`; with `stale_for` or `decode_errors_as_misses`,
    /// whose stale or undecodable entries `get` reads as absent, with the value and its TTL
    /// (`GET`+`PTTL`) instead. Counts no hit or miss.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("c").await?;
    /// if cache.contains("k").await? { /* ... */ }
    /// # Ok(()) }
    /// ```
    pub async fn contains<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.core.holds_fresh(key) {
            return Ok(true);
        }
        self.core.returned(self.core.contains(key.to_owned()).await)
    }

    /// Re-applies the TTL to `key` in Redis and marks it recently used locally; says whether the
    /// key exists. With key-based tracking Redis echoes the `PEXPIRE`, which drops the key from
    /// the L1 (the next read fills it again).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<String, String> = flipcache::aio::FlipCache::new("c").await?;
    /// cache.refresh("k").await?;
    /// # Ok(()) }
    /// ```
    pub async fn refresh<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.returned(self.core.refresh(key.to_owned()).await)
    }

    /// How many keys the cache has in Redis that [`get`](FlipCache::get) would find (by
    /// `SCAN`, so it costs a pass over the keyspace; with `stale_for` or
    /// `decode_errors_as_misses` it also reads each value and its TTL, 500 keys per round
    /// trip, to leave out the stale or undecodable entries `get` reads as absent). Absence
    /// markers, tag indexes, leases and write traces are not keys of the cache.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("c").await?;
    /// println!("{} entries", cache.len().await?);
    /// # Ok(()) }
    /// ```
    pub async fn len(&self) -> Result<usize> {
        self.core.returned(self.core.len().await)
    }

    /// Whether the cache has no keys in Redis.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("c").await?;
    /// assert_eq!(cache.is_empty().await?, cache.len().await? == 0);
    /// # Ok(()) }
    /// ```
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Every key of the cache in Redis that [`get`](FlipCache::get) would find (by `SCAN`;
    /// keys that do not parse as `K` are skipped; the same cost and the same keys as
    /// [`len`](FlipCache::len)).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("c").await?;
    /// for k in cache.keys().await? { println!("{k}"); }
    /// # Ok(()) }
    /// ```
    pub async fn keys(&self) -> Result<Vec<K>> {
        self.core.returned(self.core.keys().await)
    }

    /// Deletes every key of the cache from Redis (`SCAN` + `UNLINK`, never `FLUSHDB`) and
    /// empties the L1; returns how many keys were deleted.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("c").await?;
    /// let removed = cache.clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<usize> {
        self.core.returned(self.core.clear().await)
    }

    /// The values of `keys`, in the order asked; everything the L1 lacks comes in one pipelined
    /// round trip (on a cluster, one pipeline per hash slot, sent at once). With
    /// [`write_default`](crate::Builder::write_default), each key Redis lacks then costs one
    /// `SET` of the default.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// let values: Vec<Option<u64>> = nums.get_many(&[1, 2, 3]).await?;
    /// # Ok(()) }
    /// ```
    pub fn get_many<'a, A: Arg<K> + Clone>(
        &'a self,
        keys: &[A],
    ) -> impl Future<Output = Result<Vec<Option<V>>>> + Send + use<'a, K, V, A> {
        // Converted before the future, so that it is `Send` whatever `A` is.
        let keys: Vec<K> = keys.iter().cloned().map(Arg::into_arg).collect();
        async move { self.core.returned(self.core.get_many(&keys).await) }
    }

    /// Stores every pair in one pipelined round trip (on a cluster, one per hash slot).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// nums.set_many([(1, 2), (3, 6)]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_many<A: Arg<K>, B: Arg<V>>(
        &self,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<()> {
        let items = items
            .into_iter()
            .map(|(k, v)| (k.into_arg(), v.into_arg()))
            .collect();
        self.core.returned(self.core.set_many(items).await)
    }

    /// How many live entries the L1 holds (never more than `local_max`).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// assert!(nums.local_len() <= 100);
    /// # Ok(()) }
    /// ```
    pub fn local_len(&self) -> usize {
        self.core.local_len()
    }

    /// Whether the L1 holds a live entry for `key` (no Redis call; does not count as use).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// nums.set(1, 2).await?;
    /// assert!(nums.local_contains(&1));
    /// # Ok(()) }
    /// ```
    pub fn local_contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core.local_contains(key)
    }

    /// The keys the L1 holds (the Python original's `.local`).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// let local: Vec<u64> = nums.local_keys();
    /// # Ok(()) }
    /// ```
    pub fn local_keys(&self) -> Vec<K> {
        self.core.local_keys()
    }

    /// The cache's counters.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// println!("{:?}", nums.stats());
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The cache's name (the `{name}` of `{name}:{key}`).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// assert_eq!(nums.name(), "nums");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The configured `local_max`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// assert_eq!(nums.local_max(), 100);
    /// # Ok(()) }
    /// ```
    pub fn local_max(&self) -> usize {
        self.core.local_max()
    }

    /// The configured `expire_time`.
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// assert_eq!(nums.expire_time(), None);
    /// # Ok(()) }
    /// ```
    pub fn expire_time(&self) -> Option<Duration> {
        self.core.expire_time()
    }

    /// A blocking handle on the same cache (same L1, same connection).
    ///
    /// ```no_run
    /// # async fn run() -> flipcache::Result<()> {
    /// let nums: flipcache::aio::FlipCache<u64, u64> = flipcache::aio::FlipCache::new("nums").await?;
    /// let blocking: flipcache::FlipCache<u64, u64> = nums.to_blocking();
    /// # Ok(()) }
    /// ```
    pub fn to_blocking(&self) -> crate::FlipCache<K, V> {
        crate::FlipCache::from_core(self.core.clone())
    }
}
