//! [`MemoCache`]: a memoized function's cache, typed by the function's arguments (what
//! `<fn>_cache()` returns for a blocking function; [`aio::MemoCache`](crate::aio::MemoCache) is
//! the async one).
//!
//! The handle is the untyped [`FlipCache<String, V>`](crate::FlipCache) (entries are
//! `{name}:{key}`, `{key}` the text of the arguments) plus two function pointers the macro
//! writes for each function: one writes the key of an argument list exactly as a call does,
//! the other formats the function's `tags = [...]` from it. Every typed method builds the key
//! with the first, so `get(&args)` reads what `f(args)` stored, and `set(&args, v)` writes what
//! `f(args)` will return.

use std::fmt;
use std::time::Duration;

use crate::cache::FlipCache;
use crate::error::Result;
use crate::load::Load;
use crate::stats::Stats;

/// Writes the `{key}` of an argument list (as the memoized function does).
pub(crate) type KeyFn<A> = fn(&A, &mut String);
/// The `tags = [...]` of an argument list (empty without `tags`).
pub(crate) type TagsFn<A> = fn(&A) -> Vec<String>;

/// The key text of `args`.
pub(crate) fn key_text<A: ?Sized>(write: KeyFn<A>, args: &A) -> String {
    let mut out = String::new();
    write(args, &mut out);
    out
}

/// The cache of a blocking `#[flipcache]` function, typed by its arguments: what
/// `<fn>_cache()` returns.
///
/// `A` is the function's arguments as one value (the receiver, `self`, is never part of it):
///
/// | the function | `A` | a call on the handle |
/// |---|---|---|
/// | `fn config() -> T` | `()` | `get(&())` |
/// | `fn fib(n: u64) -> T` | `u64` | `get(&42)` |
/// | `fn user(name: &str) -> T` | `str` | `get("alice")` |
/// | `fn total(items: &[u32]) -> T` | `[u32]` | `get(&[1, 2][..])` |
/// | `fn greet(name: &str, times: u32) -> T` | `(String, u32)` | `get(&("alice".into(), 3))` |
///
/// One argument is `A` itself (a reference `&T` is `T`); several are a tuple of their owned
/// forms (`&str` is `String`, `&[T]` is `Vec<T>`, any other `&T` is `T::Owned`, by
/// [`ToOwned`]); none is `()`. References nested inside an argument's type (`&[&str]`, `Cow<'a,
/// str>`) are `'static` in `A`. With `key = ...`, `A` holds only the arguments the key (and
/// `tags = [...]`) read, in the function's order; when the key reads `self`, `A` is `str`, the
/// key's text itself.
///
/// The typed methods build the key exactly as a call does, so `get(&args)` sees what the
/// function stored for `args`, and after `set(&args, v)` the function returns `v` for `args`
/// without running its body. The whole-cache methods (`len`, `clear`, `remove_by_tag`,
/// `stats`) and [`untyped`](MemoCache::untyped) (the same cache keyed by the arguments' text)
/// complete it. The handle is cheap to clone; clones share the cache.
///
/// ```no_run
/// use flipcache::{MemoCache, flipcache};
///
/// #[flipcache(name = "greet")]
/// fn greet(name: &str, times: usize) -> String {
///     format!("hello {name}! ").repeat(times)
/// }
///
/// # fn main() -> flipcache::Result<()> {
/// let cache: MemoCache<(String, usize), String> = greet_cache()?;
/// greet("bob", 2);
/// assert_eq!(cache.get(&("bob".into(), 2))?, Some("hello bob! hello bob! ".into()));
/// assert_eq!(cache.redis_key(&("a,b".into(), 1)), r"greet:a\,b,1");
/// cache.set(&("ann".into(), 1), "hi ann".to_string())?;
/// assert_eq!(greet("ann", 1), "hi ann"); // served, the body does not run
/// assert!(cache.invalidate(&("ann".into(), 1))?);
/// assert_eq!(cache.untyped().get("bob,2")?, Some("hello bob! hello bob! ".into()));
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
    /// #[flipcache::flipcache(name = "add")]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// # fn main() -> flipcache::Result<()> {
    /// assert_eq!(add_cache()?.key(&(1, 2)), "1,2");
    /// # Ok(()) }
    /// ```
    pub fn key(&self, args: &A) -> String {
        key_text(self.key, args)
    }

    /// The Redis key of `args` (`{name}:{key}`), as `redis-cli` shows it.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add")]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// # fn main() -> flipcache::Result<()> {
    /// assert_eq!(add_cache()?.redis_key(&(1, 2)), "add:1,2");
    /// # Ok(()) }
    /// ```
    pub fn redis_key(&self, args: &A) -> String {
        self.cache.core().rkey(&self.key(args))
    }

    /// The stored result for `args`, if any (from the L1, else Redis), without running the
    /// function's body.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// user_name(7);
    /// assert_eq!(user_name_cache()?.get(&7)?, Some("user7".into()));
    /// # Ok(()) }
    /// ```
    pub fn get(&self, args: &A) -> Result<Option<V>> {
        self.cache.get(self.key(args).as_str())
    }

    /// Whether Redis holds a result for `args`.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// user_name(7);
    /// assert!(user_name_cache()?.contains(&7)?);
    /// # Ok(()) }
    /// ```
    pub fn contains(&self, args: &A) -> Result<bool> {
        self.cache.contains(self.key(args).as_str())
    }

    /// Whether this process's L1 holds a result for `args` (no call to Redis).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// user_name(7);
    /// assert!(user_name_cache()?.local_contains(&7));
    /// # Ok(()) }
    /// ```
    pub fn local_contains(&self, args: &A) -> bool {
        self.cache.local_contains(self.key(args).as_str())
    }

    /// Removes the result for `args` from Redis and from every process's L1 (the next call
    /// runs the body); says whether Redis had it.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// user_name(7);
    /// assert!(user_name_cache()?.invalidate(&7)?);
    /// # Ok(()) }
    /// ```
    pub fn invalidate(&self, args: &A) -> Result<bool> {
        self.cache.delete(self.key(args).as_str())
    }

    /// Stores `value` as the function's result for `args` (with the function's TTL and
    /// `tags = [...]`; a [`Loaded`](crate::Loaded) chooses its own TTL and adds tags): the next call with
    /// `args` returns it without running the body.
    ///
    /// ```no_run
    /// use flipcache::Loaded;
    /// use std::time::Duration;
    ///
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// let cache = user_name_cache()?;
    /// cache.set(&7, "ann".to_string())?;
    /// assert_eq!(user_name(7), "ann");
    /// cache.set(&8, Loaded::new("bob".to_string()).ttl(Duration::from_secs(60)))?;
    /// # Ok(()) }
    /// ```
    pub fn set(&self, args: &A, value: impl Load<V>) -> Result<()> {
        let core = self.cache.core();
        let write = core.write_loaded(self.key(args), value.into_loaded(), (self.tags)(args));
        core.block(write)
    }

    /// The remaining TTL of the result for `args` in Redis: `None` when there is none or it
    /// never expires.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "rate", expire_time = 60)]
    /// fn rate(pair: &str) -> f64 { 1.1 }
    /// # fn main() -> flipcache::Result<()> {
    /// rate("EURUSD");
    /// assert!(rate_cache()?.ttl("EURUSD")?.is_some());
    /// # Ok(()) }
    /// ```
    pub fn ttl(&self, args: &A) -> Result<Option<Duration>> {
        self.cache.ttl(self.key(args).as_str())
    }

    /// How many results Redis holds for the function (see [`FlipCache::len`]).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// println!("{} results", user_name_cache()?.len()?);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.cache.len()
    }

    /// Whether Redis holds no result for the function.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// let empty: bool = user_name_cache()?.is_empty()?;
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        self.cache.is_empty()
    }

    /// Removes every result of the function, from Redis and every process's L1; returns how
    /// many Redis held (see [`FlipCache::clear`]).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// let removed: usize = user_name_cache()?.clear()?;
    /// # Ok(()) }
    /// ```
    pub fn clear(&self) -> Result<usize> {
        self.cache.clear()
    }

    /// Removes every result listed under `tag` (see the `tags = [...]` option and
    /// [`FlipCache::remove_by_tag`]); returns how many existed.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "profile", tags = ["user:{id}"])]
    /// fn profile(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// profile(42);
    /// assert_eq!(profile_cache()?.remove_by_tag("user:42")?, 1);
    /// # Ok(()) }
    /// ```
    pub fn remove_by_tag(&self, tag: &str) -> Result<usize> {
        self.cache.remove_by_tag(tag)
    }

    /// The cache's counters (the same as `<fn>_stats()`).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// println!("{} misses", user_name_cache()?.stats().misses);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// The cache's name (the `{name}` of `{name}:{key}`).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// assert_eq!(user_name_cache()?.name(), "user_name");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        self.cache.name()
    }

    /// The configured `expire_time`.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "rate", expire_time = 60)]
    /// fn rate(pair: &str) -> f64 { 1.1 }
    /// # fn main() -> flipcache::Result<()> {
    /// assert_eq!(rate_cache()?.expire_time(), Some(std::time::Duration::from_secs(60)));
    /// # Ok(()) }
    /// ```
    pub fn expire_time(&self) -> Option<Duration> {
        self.cache.expire_time()
    }

    /// How many results this process's L1 holds.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "user_name")]
    /// fn user_name(id: u64) -> String { format!("user{id}") }
    /// # fn main() -> flipcache::Result<()> {
    /// println!("{} in memory", user_name_cache()?.local_len());
    /// # Ok(()) }
    /// ```
    pub fn local_len(&self) -> usize {
        self.cache.local_len()
    }

    /// The same cache, keyed by the arguments' text (the [`key`](MemoCache::key)): for what
    /// the typed methods do not cover (`keys`, `get_many`, `set_with_ttl`, ...).
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add")]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// # fn main() -> flipcache::Result<()> {
    /// add(1, 2);
    /// let cache = add_cache()?;
    /// assert_eq!(cache.untyped().get("1,2")?, Some(3));
    /// assert_eq!(cache.untyped().keys()?, vec!["1,2".to_string()]);
    /// # Ok(()) }
    /// ```
    pub fn untyped(&self) -> &FlipCache<String, V> {
        &self.cache
    }

    /// [`untyped`](MemoCache::untyped), by value.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add")]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// # fn main() -> flipcache::Result<()> {
    /// let cache: flipcache::FlipCache<String, u32> = add_cache()?.into_untyped();
    /// # Ok(()) }
    /// ```
    pub fn into_untyped(self) -> FlipCache<String, V> {
        self.cache
    }

    /// An async handle on the same cache.
    ///
    /// ```no_run
    /// #[flipcache::flipcache(name = "add")]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// # async fn run() -> flipcache::Result<()> {
    /// let cache: flipcache::aio::MemoCache<(u32, u32), u32> = add_cache()?.to_async();
    /// assert_eq!(cache.get(&(1, 2)).await?, None);
    /// # Ok(()) }
    /// ```
    pub fn to_async(&self) -> crate::aio::MemoCache<A, V> {
        crate::aio::MemoCache::new(self.cache.to_async(), self.key, self.tags)
    }
}
