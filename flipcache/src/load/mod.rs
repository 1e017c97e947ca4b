//! The loader layer: get-or-compute on both fronts (`get_with`, `try_get_with`,
//! `optionally_get_with`) and for memoized functions, over one single-flight ([`flight`]), one
//! fail-open policy ([`health`]) and one read path (the core's).
//!
//! A load of a key goes: L1 hit, else join the key's flight. The leader reads Redis once (a
//! value that does not decode counts as a miss); if Redis has nothing, it runs the loader,
//! writes the result to Redis and the L1 under the same rules as `set`, and lands the flight,
//! so every waiter gets the same outcome. Loader errors are never cached.

pub(crate) mod call;
pub(crate) mod flight;
pub(crate) mod health;
pub(crate) mod lease;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

pub use health::PROBE_EVERY;

/// A loaded value with settings for its entry: what a loader returns when it wants more than
/// the cache's defaults (a TTL of its own, for a token valid for its own lifetime).
///
/// Every loader method takes a loader returning either `V` or `Loaded<V>` (see [`Load`]).
///
/// ```no_run
/// use std::time::Duration;
/// use flipcache::{FlipCache, Loaded};
/// # fn main() -> flipcache::Result<()> {
/// let tokens: FlipCache<String, String> = FlipCache::new("tokens")?;
/// let token = tokens.get_with("api", || {
///     // A token valid for 10 minutes is cached for 9.
///     Loaded::new("secret".to_string()).ttl(Duration::from_secs(540))
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<V> {
    pub(crate) value: V,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tags: Vec<String>,
}

impl<V> Loaded<V> {
    /// A loaded value with the cache's settings.
    ///
    /// ```
    /// let l = flipcache::Loaded::new(5u64);
    /// assert_eq!(l.value(), &5);
    /// ```
    pub fn new(value: V) -> Self {
        Loaded {
            value,
            ttl: None,
            tags: Vec::new(),
        }
    }

    /// Stores the value with this TTL instead of the cache's `expire_time` (the
    /// [`expire_jitter`](crate::Builder::expire_jitter), if any, is still added).
    ///
    /// ```
    /// let l = flipcache::Loaded::new(5u64).ttl(std::time::Duration::from_secs(30));
    /// assert_eq!(l.time_to_live(), Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Lists the entry under these tags, so that
    /// [`remove_by_tag`](crate::FlipCache::remove_by_tag) of any of them removes it (added to
    /// the tags given before, if any). `tags` is any list of strings (`["a"]`, a
    /// `Vec<String>`), as for [`FlipCache::set_with_tags`](crate::FlipCache::set_with_tags).
    ///
    /// ```
    /// let l = flipcache::Loaded::new(5u64).tags(["user:42", "org:7"]);
    /// assert_eq!(l.tag_list(), ["user:42", "org:7"]);
    /// ```
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.tags.extend(crate::key::tag_list(tags));
        self
    }

    /// The tags chosen for this entry.
    ///
    /// ```
    /// assert!(flipcache::Loaded::new(1u8).tag_list().is_empty());
    /// ```
    pub fn tag_list(&self) -> &[String] {
        &self.tags
    }

    /// The value.
    ///
    /// ```
    /// assert_eq!(flipcache::Loaded::new("v").value(), &"v");
    /// ```
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The TTL chosen for this entry, if any.
    ///
    /// ```
    /// assert_eq!(flipcache::Loaded::new(1u8).time_to_live(), None);
    /// ```
    pub fn time_to_live(&self) -> Option<Duration> {
        self.ttl
    }

    /// The value, dropping the settings.
    ///
    /// ```
    /// assert_eq!(flipcache::Loaded::new(3u8).into_value(), 3);
    /// ```
    pub fn into_value(self) -> V {
        self.value
    }
}

/// What a loader may return for a cache of `V`: the value itself, or a [`Loaded<V>`] with
/// settings for its entry.
///
/// ```
/// use flipcache::{Load, Loaded};
/// fn settings<T: Load<u64>>(t: T) -> Loaded<u64> {
///     t.into_loaded()
/// }
/// assert_eq!(settings(5u64).time_to_live(), None);
/// let d = std::time::Duration::from_secs(1);
/// assert_eq!(settings(Loaded::new(5u64).ttl(d)).time_to_live(), Some(d));
/// ```
pub trait Load<V> {
    /// The value and its entry settings.
    fn into_loaded(self) -> Loaded<V>;
}

impl<V> Load<V> for V {
    #[inline]
    fn into_loaded(self) -> Loaded<V> {
        Loaded::new(self)
    }
}

impl<V> Load<V> for Loaded<V> {
    #[inline]
    fn into_loaded(self) -> Loaded<V> {
        self
    }
}

/// Why `try_get_with` failed: the cache (only with
/// [`fail_open(false)`](crate::Builder::fail_open); by default Redis trouble never fails a
/// load), or the loader.
///
/// The loader's error is shared: the caller whose loader ran and every caller that waited on
/// that load (with the same error type `E`) get the same `Arc<E>`. Waiters whose loader has
/// another error type run their own loader instead. Errors are never cached: the next call
/// loads again.
///
/// ```no_run
/// use flipcache::{FlipCache, LoadError};
/// # fn main() -> flipcache::Result<()> {
/// let users: FlipCache<u64, String> = FlipCache::new("users")?;
/// match users.try_get_with(&7, || Err::<String, _>(std::io::Error::other("db down"))) {
///     Ok(name) => println!("{name}"),
///     Err(LoadError::Loader { source, .. }) => eprintln!("database: {source}"),
///     Err(LoadError::Cache(e)) => eprintln!("cache: {e}"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The cache failed (Redis, with `fail_open(false)`).
    Cache(Error),
    /// The loader failed.
    Loader {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key (`{name}:{key}`) being loaded.
        key: String,
        /// The loader's error, shared with the callers that waited on the same load.
        source: Arc<E>,
    },
}

impl<E> LoadError<E> {
    /// The loader's error, if the loader failed.
    ///
    /// ```
    /// let e = flipcache::LoadError::Loader {
    ///     cache: "c".into(),
    ///     key: "c:1".into(),
    ///     source: std::sync::Arc::new("db down"),
    /// };
    /// assert_eq!(e.loader_error(), Some(&"db down"));
    /// ```
    pub fn loader_error(&self) -> Option<&E> {
        match self {
            LoadError::Loader { source, .. } => Some(source),
            LoadError::Cache(_) => None,
        }
    }

    /// The loader's error, owned: `Ok(E)` when no waiter still holds it, else the shared
    /// `Arc<E>`; `None` when the cache failed.
    ///
    /// ```
    /// let e = flipcache::LoadError::Loader {
    ///     cache: "c".into(),
    ///     key: "c:1".into(),
    ///     source: std::sync::Arc::new(String::from("db down")),
    /// };
    /// assert_eq!(e.into_loader_error(), Some(Ok(String::from("db down"))));
    /// ```
    pub fn into_loader_error(self) -> Option<Result<E, Arc<E>>> {
        match self {
            LoadError::Loader { source, .. } => Some(Arc::try_unwrap(source)),
            LoadError::Cache(_) => None,
        }
    }

    /// The cache's error, if the cache failed.
    ///
    /// ```
    /// let e: flipcache::LoadError<String> =
    ///     flipcache::LoadError::Cache(flipcache::Error::Config { cache: "c".into(), message: "x".into() });
    /// assert!(e.cache_error().is_some());
    /// ```
    pub fn cache_error(&self) -> Option<&Error> {
        match self {
            LoadError::Cache(e) => Some(e),
            LoadError::Loader { .. } => None,
        }
    }
}

impl<E> From<Error> for LoadError<E> {
    fn from(e: Error) -> Self {
        LoadError::Cache(e)
    }
}

impl<E> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Cache(e) => fmt::Display::fmt(e, f),
            LoadError::Loader { cache, key, .. } => {
                write!(f, "cache `{cache}`: the loader failed for `{key}`")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Cache(e) => std::error::Error::source(e),
            LoadError::Loader { source, .. } => Some(&**source),
        }
    }
}
