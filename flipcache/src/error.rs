//! The one error type every fallible flipcache call returns.

use std::sync::Arc;
use std::time::Duration;

/// The result type of every fallible flipcache call.
///
/// ```
/// fn lookup() -> flipcache::Result<Option<String>> {
///     Ok(None)
/// }
/// assert!(lookup().unwrap().is_none());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for which cache and (where there is one) which key.
///
/// Every variant names the cache; the per-key variants name the key as it is written in Redis
/// (`{name}:{key}`), so a log line is enough to find the entry.
///
/// The message of an error does not repeat its cause: the cause (redis-rs's error, the
/// codec's) is its [`source`](std::error::Error::source), which error reporters such as
/// `anyhow` print after it (`{:#}`), once.
///
/// ```
/// use std::error::Error as _;
/// use flipcache::Error;
/// let cause = "x".parse::<u64>().unwrap_err();
/// let err = Error::Decode {
///     cache: "nums".into(),
///     key: "nums:7".into(),
///     source: std::sync::Arc::new(cause),
/// };
/// assert_eq!(err.to_string(), "cache `nums`: cannot decode the value of `nums:7`");
/// assert_eq!(err.source().unwrap().to_string(), "invalid digit found in string");
/// assert!(err.is_decode());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis answered with an error, or the connection failed.
    #[error("cache `{cache}`: Redis error{}", for_key(.key))]
    Redis {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key involved, if the operation had one.
        key: Option<String>,
        /// The underlying redis-rs error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer in time: the call's timeout ran out, or a socket timed out first
    /// (a connect that the call waited on, a read of the blocking front).
    #[error("cache `{cache}`: Redis did not answer{}: {}", for_key(.key), waited(*.after, *.elapsed))]
    Timeout {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key involved, if the operation had one.
        key: Option<String>,
        /// The configured timeout (`Builder::timeout`).
        after: Duration,
        /// How long the call waited before it gave up.
        elapsed: Duration,
    },
    /// A value could not be encoded for Redis.
    #[error("cache `{cache}`: cannot encode the value for `{key}`")]
    Encode {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key the value was meant for.
        key: String,
        /// The encoder's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A value read from Redis could not be decoded (another writer, an old format, garbage).
    #[error("cache `{cache}`: cannot decode the value of `{key}`")]
    Decode {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key whose value did not decode.
        key: String,
        /// The decoder's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A loader did not finish within the `load_hard_timeout` (it goes on in the background,
    /// and its result is stored when it finishes).
    #[error("cache `{cache}`: the loader did not finish within {after:?} for `{key}`")]
    LoadTimeout {
        /// The cache's name.
        cache: Arc<str>,
        /// The Redis key being loaded.
        key: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The cache was configured in a way that cannot work.
    #[error("cache `{cache}`: invalid configuration: {message}")]
    Config {
        /// The cache's name.
        cache: Arc<str>,
        /// What is wrong.
        message: String,
    },
}

/// An error and its causes, as one line (`msg: cause: cause`): what flipcache's own log lines
/// print, since an [`Error`]'s message leaves its cause to `source()`. Without `keys`, an
/// [`Error`] at the top says what happened without the key it happened to (see
/// `Builder::trace_keys`).
pub(crate) struct Chain<'a> {
    error: &'a (dyn std::error::Error + 'static),
    keys: bool,
}

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error.downcast_ref::<Error>() {
            Some(e) if !self.keys => e.fmt_without_key(f)?,
            _ => write!(f, "{}", self.error)?,
        }
        // A cause whose text its error's message already holds (redis-rs prints its I/O
        // error and gives it as its source too) is not printed again.
        let mut shown = self.error.to_string();
        let mut cause = self.error.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            cause = c.source();
        }
        Ok(())
    }
}

fn for_key(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" for `{k}`"),
        None => String::new(),
    }
}

/// How long a timed-out call waited, against its timeout, in milliseconds: "gave up after
/// 717 ms (timeout 1000 ms)".
fn waited(after: Duration, elapsed: Duration) -> String {
    format!(
        "gave up after {} ms (timeout {} ms)",
        elapsed.as_millis(),
        after.as_millis()
    )
}

impl Error {
    /// This error with its causes, for a log line (naming the key).
    pub(crate) fn chain(&self) -> Chain<'_> {
        self.chain_keys(true)
    }

    /// This error with its causes, for a log line, naming the key only if `keys`.
    pub(crate) fn chain_keys(&self, keys: bool) -> Chain<'_> {
        Chain { error: self, keys }
    }

    /// The message without the key.
    fn fmt_without_key(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Redis { cache, .. } => write!(f, "cache `{cache}`: Redis error"),
            Error::Timeout {
                cache,
                after,
                elapsed,
                ..
            } => {
                write!(
                    f,
                    "cache `{cache}`: Redis did not answer: {}",
                    waited(*after, *elapsed)
                )
            }
            Error::Encode { cache, .. } => write!(f, "cache `{cache}`: cannot encode a value"),
            Error::Decode { cache, .. } => write!(f, "cache `{cache}`: cannot decode a value"),
            Error::LoadTimeout { cache, after, .. } => {
                write!(
                    f,
                    "cache `{cache}`: the loader did not finish within {after:?}"
                )
            }
            Error::Config { .. } => write!(f, "{self}"),
        }
    }

    /// The name of the cache the error happened in.
    ///
    /// ```
    /// let err = flipcache::Error::Config { cache: "c".into(), message: "x".into() };
    /// assert_eq!(err.cache(), "c");
    /// ```
    pub fn cache(&self) -> &str {
        match self {
            Error::Redis { cache, .. }
            | Error::Timeout { cache, .. }
            | Error::Encode { cache, .. }
            | Error::Decode { cache, .. }
            | Error::LoadTimeout { cache, .. }
            | Error::Config { cache, .. } => cache,
        }
    }

    /// The Redis key (`{name}:{key}`) the error is about, if any.
    ///
    /// ```
    /// let err = flipcache::Error::Timeout {
    ///     cache: "c".into(),
    ///     key: Some("c:1".into()),
    ///     after: std::time::Duration::from_secs(1),
    ///     elapsed: std::time::Duration::from_secs(1),
    /// };
    /// assert_eq!(err.key(), Some("c:1"));
    /// ```
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Redis { key, .. } | Error::Timeout { key, .. } => key.as_deref(),
            Error::Encode { key, .. }
            | Error::Decode { key, .. }
            | Error::LoadTimeout { key, .. } => Some(key),
            Error::Config { .. } => None,
        }
    }

    /// Whether this is a [`Error::Timeout`].
    ///
    /// ```
    /// let err = flipcache::Error::Timeout {
    ///     cache: "c".into(),
    ///     key: None,
    ///     after: std::time::Duration::from_secs(1),
    ///     elapsed: std::time::Duration::from_secs(1),
    /// };
    /// assert!(err.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether this is a [`Error::LoadTimeout`].
    ///
    /// ```
    /// let err = flipcache::Error::LoadTimeout {
    ///     cache: "c".into(),
    ///     key: "c:1".into(),
    ///     after: std::time::Duration::from_secs(1),
    /// };
    /// assert!(err.is_load_timeout() && !err.is_timeout());
    /// ```
    pub fn is_load_timeout(&self) -> bool {
        matches!(self, Error::LoadTimeout { .. })
    }

    /// Whether this is a [`Error::Decode`].
    ///
    /// ```
    /// let err = flipcache::Error::Decode {
    ///     cache: "c".into(),
    ///     key: "c:1".into(),
    ///     source: std::sync::Arc::new(std::fmt::Error),
    /// };
    /// assert!(err.is_decode());
    /// ```
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. })
    }

    /// Whether the error comes from Redis or the connection to it (including timeouts), as
    /// opposed to encoding, decoding or configuration.
    ///
    /// ```
    /// let err = flipcache::Error::Config { cache: "c".into(), message: "x".into() };
    /// assert!(!err.is_remote());
    /// ```
    pub fn is_remote(&self) -> bool {
        matches!(self, Error::Redis { .. } | Error::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message already holds its cause's text, as redis-rs's I/O errors do.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn redis_error(key: Option<&str>) -> Error {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        Error::Redis {
            cache: "c".into(),
            key: key.map(str::to_owned),
            source: redis::RedisError::from(io),
        }
    }

    #[test]
    fn a_timeout_says_how_long_it_waited_and_its_limit() {
        let err = Error::Timeout {
            cache: "c".into(),
            key: Some("c:1".into()),
            after: Duration::from_secs(1),
            elapsed: Duration::from_micros(717_400),
        };
        assert_eq!(
            err.to_string(),
            "cache `c`: Redis did not answer for `c:1`: gave up after 717 ms (timeout 1000 ms)"
        );
        assert_eq!(
            err.chain_keys(false).to_string(),
            "cache `c`: Redis did not answer: gave up after 717 ms (timeout 1000 ms)"
        );
    }

    #[test]
    fn a_chain_states_each_cause_once() {
        let io = std::io::Error::other("Connection refused (os error 111)");
        let line = Chain {
            error: &Repeats(io),
            keys: true,
        }
        .to_string();
        assert_eq!(line, "Connection refused (os error 111)");
        let line = redis_error(None).chain().to_string();
        assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
    }

    #[test]
    fn a_chain_names_the_key_only_when_asked() {
        let e = redis_error(Some("c:alice@example.com"));
        assert!(
            e.chain_keys(true)
                .to_string()
                .contains("c:alice@example.com")
        );
        let hidden = e.chain_keys(false).to_string();
        assert!(!hidden.contains("alice"), "{hidden}");
        assert!(hidden.starts_with("cache `c`: Redis error"), "{hidden}");
        assert!(
            hidden.contains("Connection refused"),
            "the cause stays: {hidden}"
        );
    }
}
