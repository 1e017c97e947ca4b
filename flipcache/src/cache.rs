//! [`FlipCache`]: the blocking front.

use std::borrow::Borrow;
use std::fmt;
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

/// A hybrid cache: a bounded, coherent in-process L1 in front of Redis, with a blocking API.
///
/// The handle is cheap to clone and `Send + Sync`; clones share one cache. Entries live in
/// Redis under `{name}:{key}` (the Python original's layout); reads that hit the L1 cost a hash
/// lookup, reads that miss cost one round trip.
///
/// Each call blocks the calling thread until Redis answers (or the timeout runs out). It works
/// inside a tokio runtime without panicking, but there it blocks a runtime thread: in async code
/// use [`aio::FlipCache`](crate::aio::FlipCache) (or [`FlipCache::to_async`]).
///
/// ```no_run
/// use flipcache::FlipCache;
/// # fn main() -> flipcache::Result<()> {
/// let cache: FlipCache<String, String> = FlipCache::new("my_cache")?;
/// cache.set("my_key", "my_value")?;
/// assert_eq!(cache.get("my_key")?, Some("my_value".to_string()));
/// assert_eq!(cache.get("unknown")?, None);
/// assert!(cache.contains("my_key")?);
///
/// let nums: FlipCache<u64, u64> = FlipCache::new("nums")?;
/// nums.set(123, 246)?;
/// assert_eq!(nums.get(&123)?, Some(246));
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
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("my_cache")?;
    /// # Ok(()) }
    /// ```
    pub fn new(name: &str) -> Result<Self>
    where
        K: FlipKey,
        V: FlipValue,
    {
        Self::builder(name).build()
    }

    /// A [`Builder`] for a cache named `name`.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .local_max(1_000)
    ///     .expire_time(flipcache::et::ONE_HOUR)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn builder(name: impl Into<String>) -> Builder<K, V> {
        Builder::new(name)
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> FlipCache<K, V> {
    pub(crate) fn from_core(core: Arc<Core<K, V>>) -> Self {
        Self { core }
    }

    /// The shared implementation (for in-crate helpers such as memoization).
    pub(crate) fn core(&self) -> &Arc<Core<K, V>> {
        &self.core
    }

    /// The value under `key`: from the L1 if it holds it, else from Redis (one round trip).
    /// A missing key gives the [`value_default`](Builder::value_default), or `None`.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("c")?;
    /// let v: Option<String> = cache.get("k")?;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(v) = self.core.local_hit(key) {
            return Ok(Some(v));
        }
        self.core.returned(self.core.fetch_blocking(key.to_owned()))
    }

    /// The value under `key`, or, when neither layer has it, the value `load` computes, stored
    /// in Redis and the L1 (the cache-aside pattern, without its stampede).
    ///
    /// An L1 hit returns at once; otherwise one Redis round trip; otherwise `load` runs **once
    /// per key per process**, however many threads ask at the same time: the others wait and
    /// get a clone of its value. If the loading thread panics, one waiter takes over. A value in
    /// Redis that does not decode counts as a miss and is overwritten. If Redis is unreachable
    /// or slow, the loader's value is returned anyway (see [`Builder::fail_open`]).
    ///
    /// `load` may return the value or a [`Loaded`](crate::Loaded) with a TTL of its own. It
    /// runs on the calling thread when the caller must wait for it; with
    /// [`stale_for`](Builder::stale_for) or [`eager_refresh`](Builder::eager_refresh), a hit on
    /// a stale (or nearly stale) entry returns at once and `load` refreshes the key on a
    /// background thread. That is why it is `Send + 'static`: move what it needs into it (an
    /// `Arc`'d pool, the key).
    ///
    /// `load` may return `V` or a `Loaded<V>`; a loader whose result says neither (one that
    /// only panics, say) needs its type written: `|| -> String { unreachable!() }`.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let users: flipcache::FlipCache<u64, String> = flipcache::FlipCache::new("users")?;
    /// let name = users.get_with(&42, || "Ada".to_string())?; // the loader runs once
    /// assert_eq!(users.get_with(&42, || -> String { unreachable!() })?, name); // then it is cached
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn get_with<Q, T>(&self, key: &Q, load: impl FnOnce() -> T + Send + 'static) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
    {
        self.core.returned(self.core.get_with_blocking(key, load))
    }

    /// [`get_with`](FlipCache::get_with) with a fallible loader. Its error is returned as
    /// [`LoadError::Loader`] (never cached: the next call loads again); callers that waited on
    /// the same load share it (`Arc<E>`). Redis errors (only with `fail_open(false)`) come as
    /// [`LoadError::Cache`].
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let users: flipcache::FlipCache<u64, String> = flipcache::FlipCache::new("users")?;
    /// let name: Result<String, flipcache::LoadError<std::io::Error>> =
    ///     users.try_get_with(&42, || Ok("Ada".to_string()));
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn try_get_with<Q, T, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
    ) -> std::result::Result<V, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
        E: Send + Sync + 'static,
    {
        self.core
            .returned_load(self.core.try_get_with_blocking(key, load))
    }

    /// [`get_with`](FlipCache::get_with) with a loader that may find nothing. `None` is not
    /// stored, unless the cache [remembers absence](Builder::cache_absent): then it is
    /// remembered in Redis for every process, and later calls return `None` without running
    /// the loader until the absence expires or anyone writes the key. A loader that only
    /// returns `None` needs its type written (`None::<String>`): `Some` may hold a `V` or a
    /// `Loaded<V>`.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let users = flipcache::FlipCache::<u64, String>::builder("users")
    ///     .cache_absent(std::time::Duration::from_secs(30))
    ///     .build()?;
    /// assert_eq!(users.optionally_get_with(&404, || None::<String>)?, None);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn optionally_get_with<Q, T>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Option<T> + Send + 'static,
    ) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Load<V>,
    {
        self.core
            .returned(self.core.optionally_get_with_blocking(key, load))
    }

    /// [`set`](FlipCache::set) with a TTL of its own instead of the cache's `expire_time` (the
    /// [`expire_jitter`](Builder::expire_jitter), if any, is added).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let tokens: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("tokens")?;
    /// tokens.set_with_ttl("api", "secret", std::time::Duration::from_secs(540))?;
    /// # Ok(()) }
    /// ```
    pub fn set_with_ttl(&self, key: impl Arg<K>, value: impl Arg<V>, ttl: Duration) -> Result<()> {
        self.core
            .block(
                self.core
                    .write(key.into_arg(), value.into_arg(), Some(ttl), false),
            )
            .map(drop)
    }

    /// Stores `value` only if `key` has no value in Redis (`SET NX`); says whether it did.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let locks: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("owners")?;
    /// let mine = locks.set_if_absent("job:7", "worker-1")?;
    /// # Ok(()) }
    /// ```
    pub fn set_if_absent(&self, key: impl Arg<K>, value: impl Arg<V>) -> Result<bool> {
        self.core.block(
            self.core
                .write(key.into_arg(), value.into_arg(), None, true),
        )
    }

    /// [`set`](FlipCache::set), listing the entry under each of `tags`: a later
    /// [`remove_by_tag`](FlipCache::remove_by_tag) of any of them removes it. The tag indexes
    /// live outside the `{name}:{key}` layout (`len`, `keys`, `clear` and Python FlipCache
    /// never see them) and expire with their entries. `tags` is any list of strings (`&["a"]`,
    /// a `Vec<String>`), as for [`Loaded::tags`](crate::Loaded::tags).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let pages: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("pages")?;
    /// pages.set_with_tags("profile:42", "<html>", ["user:42"])?;
    /// pages.set_with_tags("orders:42", "<html>", ["user:42", "org:7"])?;
    /// let org = format!("org:{}", 7);
    /// pages.set_with_tags("team:7", "<html>", vec![org])?;
    /// # Ok(()) }
    /// ```
    pub fn set_with_tags(
        &self,
        key: impl Arg<K>,
        value: impl Arg<V>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<()> {
        let tags = crate::key::tag_list(tags);
        self.core.block(
            self.core
                .set_with_tags(key.into_arg(), value.into_arg(), &tags),
        )
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
    /// # fn main() -> flipcache::Result<()> {
    /// let pages: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("pages")?;
    /// let removed: usize = pages.remove_by_tag("user:42")?;
    /// # Ok(()) }
    /// ```
    pub fn remove_by_tag(&self, tag: &str) -> Result<usize> {
        self.core.block(self.core.remove_by_tag(tag))
    }

    /// The remaining TTL of `key` in Redis: `None` when the key does not exist or never
    /// expires.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let tokens: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("tokens")?;
    /// if let Some(left) = tokens.ttl("api")? { println!("{left:?} left"); }
    /// # Ok(()) }
    /// ```
    pub fn ttl<Q>(&self, key: &Q) -> Result<Option<Duration>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.block(self.core.ttl_of(key.to_owned()))
    }

    /// Stores `value` under `key` in Redis (with the TTL, if any), then in the L1. If Redis
    /// fails, the L1 keeps no copy and the error is returned.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// nums.set(123, 246)?;
    /// # Ok(()) }
    /// ```
    pub fn set(&self, key: impl Arg<K>, value: impl Arg<V>) -> Result<()> {
        self.core
            .block(self.core.set(key.into_arg(), value.into_arg()))
    }

    /// Removes `key` from both layers; says whether Redis had it.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("c")?;
    /// let existed: bool = cache.delete("k")?;
    /// # Ok(()) }
    /// ```
    pub fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.block(self.core.delete(key.to_owned()))
    }

    /// Whether [`get`](FlipCache::get) would find a value for `key`: the L1 first (a fresh
    /// entry), else Redis, with one `EXISTS`; with `stale_for` or `decode_errors_as_misses`,
    /// whose stale or undecodable entries `get` reads as absent, with the value and its TTL
    /// (`GET`+`PTTL`) instead. Counts no hit or miss.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("c")?;
    /// if cache.contains("k")? { /* ... */ }
    /// # Ok(()) }
    /// ```
    pub fn contains<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.core.holds_fresh(key) {
            return Ok(true);
        }
        self.core.block(self.core.contains(key.to_owned()))
    }

    /// Re-applies the TTL to `key` in Redis and marks it recently used locally; says whether the
    /// key exists. With key-based tracking Redis echoes the `PEXPIRE`, which drops the key from
    /// the L1 (the next read fills it again).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("c")?;
    /// cache.refresh("k")?;
    /// # Ok(()) }
    /// ```
    pub fn refresh<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.block(self.core.refresh(key.to_owned()))
    }

    /// How many keys the cache has in Redis that [`get`](FlipCache::get) would find (by
    /// `SCAN`, so it costs a pass over the keyspace; with `stale_for` or
    /// `decode_errors_as_misses` it also reads each value and its TTL, 500 keys per round
    /// trip, to leave out the stale or undecodable entries `get` reads as absent). Absence
    /// markers, tag indexes, leases and write traces are not keys of the cache.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("c")?;
    /// println!("{} entries", cache.len()?);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.core.block(self.core.len())
    }

    /// Whether the cache has no keys in Redis.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("c")?;
    /// assert_eq!(cache.is_empty()?, cache.len()? == 0);
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every key of the cache in Redis that [`get`](FlipCache::get) would find (by `SCAN`;
    /// keys that do not parse as `K` are skipped; the same cost and the same keys as
    /// [`len`](FlipCache::len)).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("c")?;
    /// for k in cache.keys()? { println!("{k}"); }
    /// # Ok(()) }
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        self.core.block(self.core.keys())
    }

    /// Deletes every key of the cache from Redis (`SCAN` + `UNLINK`, never `FLUSHDB`) and
    /// empties the L1; returns how many keys were deleted.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("c")?;
    /// let removed = cache.clear()?;
    /// # Ok(()) }
    /// ```
    pub fn clear(&self) -> Result<usize> {
        self.core.block(self.core.clear())
    }

    /// The values of `keys`, in the order asked; everything the L1 lacks comes in one pipelined
    /// round trip (on a cluster, one pipeline per hash slot, sent at once). With
    /// [`write_default`](crate::Builder::write_default), each key Redis lacks then costs one
    /// `SET` of the default.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// let values: Vec<Option<u64>> = nums.get_many(&[1, 2, 3])?;
    /// // Keys as `get` takes them: borrowed (`&str` for `String` keys), or owned.
    /// let names: flipcache::FlipCache<String, String> = flipcache::FlipCache::new("names")?;
    /// let both = names.get_many(&["a", "b"])?;
    /// let wanted = vec!["c".to_owned()];
    /// let more = names.get_many(&wanted)?;
    /// # Ok(()) }
    /// ```
    pub fn get_many<A: Arg<K> + Clone>(&self, keys: &[A]) -> Result<Vec<Option<V>>> {
        let keys: Vec<K> = keys.iter().cloned().map(Arg::into_arg).collect();
        self.core.block(self.core.get_many(&keys))
    }

    /// Stores every pair in one pipelined round trip (on a cluster, one per hash slot).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// nums.set_many([(1, 2), (3, 6)])?;
    /// # Ok(()) }
    /// ```
    pub fn set_many<A: Arg<K>, B: Arg<V>>(
        &self,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<()> {
        let items = items
            .into_iter()
            .map(|(k, v)| (k.into_arg(), v.into_arg()))
            .collect();
        self.core.block(self.core.set_many(items))
    }

    /// How many live entries the L1 holds (never more than `local_max`).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// assert!(nums.local_len() <= 100);
    /// # Ok(()) }
    /// ```
    pub fn local_len(&self) -> usize {
        self.core.local_len()
    }

    /// Whether the L1 holds a live entry for `key` (no Redis call; does not count as use).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// nums.set(1, 2)?;
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
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// let local: Vec<u64> = nums.local_keys();
    /// # Ok(()) }
    /// ```
    pub fn local_keys(&self) -> Vec<K> {
        self.core.local_keys()
    }

    /// The cache's counters.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// println!("{:?}", nums.stats());
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The cache's name (the `{name}` of `{name}:{key}`).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// assert_eq!(nums.name(), "nums");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The configured `local_max`.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// assert_eq!(nums.local_max(), 100);
    /// # Ok(()) }
    /// ```
    pub fn local_max(&self) -> usize {
        self.core.local_max()
    }

    /// The configured `expire_time`.
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// assert_eq!(nums.expire_time(), None);
    /// # Ok(()) }
    /// ```
    pub fn expire_time(&self) -> Option<Duration> {
        self.core.expire_time()
    }

    /// An async handle on the same cache (same L1, same connection).
    ///
    /// ```no_run
    /// # fn main() -> flipcache::Result<()> {
    /// let nums: flipcache::FlipCache<u64, u64> = flipcache::FlipCache::new("nums")?;
    /// let async_nums: flipcache::aio::FlipCache<u64, u64> = nums.to_async();
    /// # Ok(()) }
    /// ```
    pub fn to_async(&self) -> crate::aio::FlipCache<K, V> {
        crate::aio::FlipCache::from_core(self.core.clone())
    }
}
