//! [`MemoCache`]: an async memoized function's cache, typed by the function's arguments (what
//! `<fn>_cache().await` returns); the async twin of [`crate::MemoCache`], over
//! [`aio::FlipCache`](crate::aio::FlipCache).

use std::fmt;
use std::time::Duration;

use crate::aio::FlipCache;
use crate::error::Result;
use crate::load::Load;
use crate::memo::handle::{KeyFn, TagsFn, key_text};
use crate::stats::Stats;

/// The cache of an `async` `#[flipcache]` function, typed by its arguments: what
/// `<fn>_cache().await` returns.
///
/// `A` is the function's arguments as one value, as for the blocking
/// [`MemoCache`](crate::MemoCache) (which explains it): `u64` for `fn(n: u64)`, `str` for
/// `fn(name: &str)`, `(String, u32)` for `fn(name: &str, times: u32)`, `()` for no argument.
/// The typed methods build the key exactly as a call does. The futures hold `&A`: they are
/// `Send` when `A` is `Sync`.
///
/// ```no_run
/// use flipcache::{aio::MemoCache, flipcache};
///
/// #[flipcache(name = "greet_async")]
/// async fn greet(name: &str, times: usize) -> String {
///     format!("hello {name}! ").repeat(times)
/// }
///
/// # async fn run() -> flipcache::Result<()> {
/// let cache: MemoCache<(String, usize), String> = greet_cache().await?;
/// greet("bob", 2).await;
/// assert_eq!(cache.get(&("bob".into(), 2)).await?, Some("hello bob! hello bob! ".into()));
/// cache.set(&("ann".into(), 1), "hi ann".to_string()).await?;
/// assert_eq!(greet("ann", 1).await, "hi ann"); // served, the body does not run
/// assert!(cache.invalidate(&("ann".into(), 1)).await?);
/// assert_eq!(cache.untyped().get("bob,2").await?, Some("hello bob! hello bob! ".into()));
/// # Ok(()) }
/// ```
pub struct MemoCache<A: ?Sized, V> {
    cache: FlipCache<String, V>,
    key: KeyFn<A>,
    tags: TagsFn<A>,
}

impl<A: ?Sized, V> Clone for MemoCache<A, V> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            key: self.key,
            tags: self.tags,
        }
    }
}

impl<A: ?Sized, V> fmt::Debug for MemoCache<A, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoCache")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<A: ?Sized, V: Clone + Send + Sync + 'static> MemoCache<A, V> {
    pub(crate) fn new(cache: FlipCache<String, V>, key: KeyFn<A>, tags: TagsFn<A>) -> Self {
        Self { cache, key, tags }
    }

    /// The `{key}` of `args`: what the function's call with `args` looks up.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add_async")]
    /// async fn add(a: u32, b: u32) -> u32 { a + b }
    /// # async fn run() -> flipcache::Result<()> {
    /// assert_eq!(add_cache().await?.key(&(1, 2)), "1,2");
    /// # Ok(()) }
    /// ```
    pub fn key(&self, args: &A) -> String {
        key_text(self.key, args)
    }

    /// The Redis key of `args` (`{name}:{key}`), as `redis-cli` shows it.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add_async")]
    /// async fn add(a: u32, b: u32) -> u32 { a + b }
    /// # async fn run() -> flipcache::Result<()> {
    /// assert_eq!(add_cache().await?.redis_key(&(1, 2)), "add_async:1,2");
    /// # Ok(()) }
    /// ```
    pub fn redis_key(&self, args: &A) -> String {
        self.cache.to_blocking().core().rkey(&self.key(args))
    }

    /// The stored result for `args`, if any (from the L1, else Redis), without running the
    /// function's body.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// user_name(7).await;
    /// assert_eq!(user_name_cache().await?.get(&7).await?, Some("user7".into()));
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, args: &A) -> Result<Option<V>> {
        let key = self.key(args);
        self.cache.get(key.as_str()).await
    }

    /// Whether Redis holds a result for `args`.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// user_name(7).await;
    /// assert!(user_name_cache().await?.contains(&7).await?);
    /// # Ok(()) }
    /// ```
    pub async fn contains(&self, args: &A) -> Result<bool> {
        let key = self.key(args);
        self.cache.contains(key.as_str()).await
    }

    /// Whether this process's L1 holds a result for `args` (no call to Redis).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// user_name(7).await;
    /// assert!(user_name_cache().await?.local_contains(&7));
    /// # Ok(()) }
    /// ```
    pub fn local_contains(&self, args: &A) -> bool {
        self.cache.local_contains(self.key(args).as_str())
    }

    /// Removes the result for `args` from Redis and from every process's L1 (the next call
    /// runs the body); says whether Redis had it.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// user_name(7).await;
    /// assert!(user_name_cache().await?.invalidate(&7).await?);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, args: &A) -> Result<bool> {
        let key = self.key(args);
        self.cache.delete(key.as_str()).await
    }

    /// Stores `value` as the function's result for `args` (with the function's TTL and
    /// `tags = [...]`; a [`Loaded`](crate::Loaded) chooses its own TTL and adds tags): the next call with
    /// `args` returns it without running the body.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// user_name_cache().await?.set(&7, "ann".to_string()).await?;
    /// assert_eq!(user_name(7).await, "ann");
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, args: &A, value: impl Load<V>) -> Result<()> {
        let blocking = self.cache.to_blocking();
        let (key, tags) = (self.key(args), (self.tags)(args));
        let core = blocking.core();
        let written = core.write_loaded(key, value.into_loaded(), tags).await;
        core.returned(written)
    }

    /// The remaining TTL of the result for `args` in Redis: `None` when there is none or it
    /// never expires.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "rate_async", expire_time = 60)]
    /// async fn rate(pair: &str) -> f64 { 1.1 }
    /// # async fn run() -> flipcache::Result<()> {
    /// rate("EURUSD").await;
    /// assert!(rate_cache().await?.ttl("EURUSD").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn ttl(&self, args: &A) -> Result<Option<Duration>> {
        let key = self.key(args);
        self.cache.ttl(key.as_str()).await
    }

    /// How many results Redis holds for the function.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// println!("{} results", user_name_cache().await?.len().await?);
    /// # Ok(()) }
    /// ```
    pub async fn len(&self) -> Result<usize> {
        self.cache.len().await
    }

    /// Whether Redis holds no result for the function.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// let empty: bool = user_name_cache().await?.is_empty().await?;
    /// # Ok(()) }
    /// ```
    pub async fn is_empty(&self) -> Result<bool> {
        self.cache.is_empty().await
    }

    /// Removes every result of the function, from Redis and every process's L1; returns how
    /// many Redis held.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// let removed: usize = user_name_cache().await?.clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<usize> {
        self.cache.clear().await
    }

    /// Removes every result listed under `tag` (see the `tags = [...]` option); returns how
    /// many existed.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "profile_async", tags = ["user:{id}"])]
    /// async fn profile(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// profile(42).await;
    /// assert_eq!(profile_cache().await?.remove_by_tag("user:42").await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn remove_by_tag(&self, tag: &str) -> Result<usize> {
        self.cache.remove_by_tag(tag).await
    }

    /// The cache's counters (the same as `<fn>_stats()`).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// println!("{} misses", user_name_cache().await?.stats().misses);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// The cache's name (the `{name}` of `{name}:{key}`).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// assert_eq!(user_name_cache().await?.name(), "user_name_async");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        self.cache.name()
    }

    /// The configured `expire_time`.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "rate_async", expire_time = 60)]
    /// async fn rate(pair: &str) -> f64 { 1.1 }
    /// # async fn run() -> flipcache::Result<()> {
    /// assert_eq!(rate_cache().await?.expire_time(), Some(std::time::Duration::from_secs(60)));
    /// # Ok(()) }
    /// ```
    pub fn expire_time(&self) -> Option<Duration> {
        self.cache.expire_time()
    }

    /// How many results this process's L1 holds.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name_async")]
    /// async fn user_name(id: u64) -> String { format!("user{id}") }
    /// # async fn run() -> flipcache::Result<()> {
    /// println!("{} in memory", user_name_cache().await?.local_len());
    /// # Ok(()) }
    /// ```
    pub fn local_len(&self) -> usize {
        self.cache.local_len()
    }

    /// The same cache, keyed by the arguments' text (the [`key`](MemoCache::key)): for what
    /// the typed methods do not cover (`keys`, `get_many`, `set_with_ttl`, ...).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add_async")]
    /// async fn add(a: u32, b: u32) -> u32 { a + b }
    /// # async fn run() -> flipcache::Result<()> {
    /// add(1, 2).await;
    /// let cache = add_cache().await?;
    /// assert_eq!(cache.untyped().get("1,2").await?, Some(3));
    /// # Ok(()) }
    /// ```
    pub fn untyped(&self) -> &FlipCache<String, V> {
        &self.cache
    }

    /// [`untyped`](MemoCache::untyped), by value.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add_async")]
    /// async fn add(a: u32, b: u32) -> u32 { a + b }
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::FlipCache<String, u32> = add_cache().await?.into_untyped();
    /// # Ok(()) }
    /// ```
    pub fn into_untyped(self) -> FlipCache<String, V> {
        self.cache
    }

    /// A blocking handle on the same cache.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add_async")]
    /// async fn add(a: u32, b: u32) -> u32 { a + b }
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::MemoCache<(u32, u32), u32> = add_cache().await?.to_blocking();
    /// # Ok(()) }
    /// ```
    pub fn to_blocking(&self) -> crate::MemoCache<A, V> {
        crate::MemoCache::new(self.cache.to_blocking(), self.key, self.tags)
    }
}
