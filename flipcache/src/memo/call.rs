//! The call path of a memoized function: build the key from the arguments and look it up in
//! the L1 ([`Memo::lookup`]: a hit returns at once); on a miss, load through the cache's
//! loader layer ([`Memo::finish`] / [`Memo::finish_async`]), with the body as the loader.
//!
//! The memo holds the cache's core (built on first use) and nothing of its own for loading:
//! single-flight, the Redis read, fail-open and the store are the loader layer's, shared with
//! `get_with` on both fronts. What is memo-specific: the function's return shape decides what
//! is stored ([`Shape`]), an uncached result (`Err`, `None`) stays with its caller while the
//! waiters run the body themselves, and Redis trouble never fails the function (the memo always
//! fails open, whatever the cache's `fail_open`).

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::options::MemoOptions;
use super::shape::Shape;
use super::{MemoKey, write_alone};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::load::PROBE_EVERY;
use crate::load::call::{Ask, Got, Produced, Start, Unshared};
use crate::load::health::now_ms;
use crate::load::{Load, Loaded};
use crate::lock::lock;
use crate::remote::fill::Seen;

thread_local! {
    /// Where hit-path keys are built, so a hit allocates nothing.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// What [`Memo::lookup`] found.
#[derive(Debug)]
pub enum Found<V> {
    /// The L1 had it.
    Hit(V),
    /// The L1 had it, stale or nearly so: serve it, and refresh the key (its key given) in the
    /// background when the function can (`stale_for`, `eager_refresh`).
    Refresh(V, String),
    /// Not in the L1: the key, for [`Memo::finish`].
    Miss(String),
}

/// The cache of one memoized function: built on first use, shared by the function and its
/// companions (`_cache`, `_invalidate`, `_prime`).
pub struct Memo<V: 'static> {
    options: fn() -> MemoOptions<V>,
    name: OnceLock<&'static str>,
    core: OnceLock<Arc<Core<String, V>>>,
    build_lock: Mutex<()>,
    build_lock_async: tokio::sync::Mutex<()>,
    /// After a failed build: when (ms, see `now_ms`) the next call may try again.
    build_retry_at: AtomicU64,
}

impl<V> Found<V> {
    /// Whether the L1 missed (the call loads: its tags are worth building).
    #[inline]
    pub fn is_miss(&self) -> bool {
        matches!(self, Found::Miss(_))
    }

    /// Whether the call may load or refresh (a miss, or a hit that claimed the refresh): its
    /// tags are worth building.
    #[inline]
    pub fn may_load(&self) -> bool {
        !matches!(self, Found::Hit(_))
    }
}

/// What the body's result means for the cache (stored under `tags`, if any).
fn produce<S, R, V>(r: &R, absent: bool, tags: Vec<String>) -> Produced<V, Unshared>
where
    S: Shape<R, Value = V>,
    V: Clone,
{
    if let Some(v) = S::cacheable(r) {
        let mut loaded = Loaded::new(v.clone()).tags(tags);
        if let Some((ttl, chosen)) = S::settings(r) {
            loaded.ttl = ttl;
            loaded.tags.extend(chosen);
        }
        return Ok(Some(loaded));
    }
    if absent && S::is_absent(r) {
        return Ok(None);
    }
    Err(Unshared)
}

impl<V: Clone + Send + Sync + 'static> Memo<V> {
    /// A memo whose cache is configured by `options`, called when the cache is built.
    pub const fn new(options: fn() -> MemoOptions<V>) -> Self {
        Self {
            options,
            name: OnceLock::new(),
            core: OnceLock::new(),
            build_lock: Mutex::new(()),
            build_lock_async: tokio::sync::Mutex::const_new(()),
            build_retry_at: AtomicU64::new(0),
        }
    }

    fn name(&self) -> &'static str {
        self.name.get().copied().unwrap_or("?")
    }

    // ---- building --------------------------------------------------------------------------

    /// Builds the cache if it is not built and a try is due (blocking).
    #[inline]
    pub fn ready(&'static self) {
        if self.core.get().is_none() {
            // Failure is already logged; the call goes on without the cache.
            let _ = self.build_sync(false);
        }
    }

    /// Builds the cache if it is not built and a try is due (async).
    #[inline]
    pub async fn ready_async(&'static self) {
        if self.core.get().is_none() {
            let _ = self.build_async(false).await;
        }
    }

    fn options(&self) -> MemoOptions<V> {
        let o = (self.options)();
        let _ = self.name.set(o.name());
        o
    }

    fn due(&self) -> bool {
        now_ms() >= self.build_retry_at.load(Ordering::Acquire)
    }

    fn built(&self, result: Result<Arc<Core<String, V>>>) -> Result<&Arc<Core<String, V>>> {
        match result {
            Ok(core) => Ok(self.core.get_or_init(|| core)),
            Err(e) => {
                let retry = u64::try_from(PROBE_EVERY.as_millis()).unwrap_or(u64::MAX);
                self.build_retry_at
                    .store(now_ms().saturating_add(retry), Ordering::Release);
                tracing::warn!(cache = self.name(), error = %e.chain(), "a memoized function's cache cannot be built; the function runs without it");
                Err(e)
            }
        }
    }

    fn build_sync(&'static self, force: bool) -> Result<&'static Arc<Core<String, V>>> {
        let _guard = lock(&self.build_lock);
        if let Some(c) = self.core.get() {
            return Ok(c);
        }
        if !force && !self.due() {
            return Err(self.not_built());
        }
        let built = self.options().builder().build().map(|c| c.core().clone());
        self.built(built)
    }

    async fn build_async(&'static self, force: bool) -> Result<&'static Arc<Core<String, V>>> {
        let _guard = self.build_lock_async.lock().await;
        if let Some(c) = self.core.get() {
            return Ok(c);
        }
        if !force && !self.due() {
            return Err(self.not_built());
        }
        let built = self
            .options()
            .builder()
            .build_async()
            .await
            .map(|c| c.to_blocking().core().clone());
        self.built(built)
    }

    fn not_built(&self) -> Error {
        Error::Config {
            cache: self.name().into(),
            message: "the cache could not be built; retrying later".into(),
        }
    }

    // ---- the call path ---------------------------------------------------------------------

    /// Builds the key with `write` and looks it up in the L1.
    #[inline]
    pub fn lookup(&'static self, write: impl FnOnce(&mut String)) -> Found<V> {
        let core = self.core.get();
        let mut write = Some(write);
        let found = KEY.try_with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            buf.clear();
            (write.take()?)(&mut buf);
            if let Some(core) = core
                && let Some((v, refresh)) = core.loader_hit(buf.as_str())
            {
                return Some(if refresh {
                    Found::Refresh(v, buf.as_str().to_owned())
                } else {
                    Found::Hit(v)
                });
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
        match core.and_then(|c| c.loader_hit(key.as_str())) {
            Some((v, true)) => Found::Refresh(v, key),
            Some((v, false)) => Found::Hit(v),
            None => Found::Miss(key),
        }
    }

    /// [`Memo::lookup`] for a function of one argument (or one `key = ...` value): a string or
    /// an integer is looked up without building a `String` (see
    /// [`MemoKey::with_alone_str`]), anything else is written first.
    #[inline]
    pub fn lookup_alone<T: MemoKey + ?Sized>(&'static self, v: &T) -> Found<V> {
        let core = self.core.get();
        let found = v.with_alone_str(|s| match core.and_then(|c| c.loader_hit(s)) {
            Some((hit, true)) => Found::Refresh(hit, s.to_owned()),
            Some((hit, false)) => Found::Hit(hit),
            None => Found::Miss(s.to_owned()),
        });
        match found {
            Some(found) => found,
            None => self.lookup(|k| write_alone(k, v)),
        }
    }

    /// The key written by `write`, in a fresh string.
    pub fn key(&self, write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    fn ask<S: Shape<R>, R>(core: &Core<String, V>) -> Ask {
        Ask {
            absent: core.absent_ttl().is_some() && S::absent().is_some(),
            fail_open: true,
        }
    }

    /// What a settled load (whose loader this caller did not run) returns: the stored value,
    /// remembered absence, or else the body's own result.
    fn settled<S, R>(got: Got<V, Unshared>, body: impl FnOnce() -> R) -> R
    where
        S: Shape<R, Value = V>,
    {
        match got {
            Got::Value(v) => S::wrap(v),
            Got::Absent => S::absent().unwrap_or_else(body),
            Got::Failed(Unshared) | Got::Cache(_) | Got::Unstored(..) => body(),
        }
    }

    /// Finishes a blocking call: the hit's value, or a load with the body as the loader.
    #[inline]
    pub fn finish<S, R>(&'static self, found: Found<V>, shape: S, body: impl FnOnce() -> R) -> R
    where
        S: Shape<R, Value = V>,
    {
        self.finish_tagged(found, shape, Vec::new(), body)
    }

    /// [`Memo::finish`], storing a loaded result under `tags` (`tags = [...]`).
    #[inline]
    pub fn finish_tagged<S, R>(
        &'static self,
        found: Found<V>,
        _shape: S,
        tags: Vec<String>,
        body: impl FnOnce() -> R,
    ) -> R
    where
        S: Shape<R, Value = V>,
    {
        match found {
            // No refresh: the body may borrow (see `finish_refreshing`).
            Found::Hit(v) | Found::Refresh(v, _) => S::wrap(v),
            Found::Miss(key) => self.miss::<S, R>(key, tags, body),
        }
    }

    /// [`Memo::finish`] for functions with `stale_for` or `eager_refresh`, whose body owns
    /// what it needs: a stale (or nearly stale) result is returned at once and the body runs
    /// again on a background thread to refresh it.
    #[inline]
    pub fn finish_refreshing<S, R, B>(
        &'static self,
        found: Found<V>,
        _shape: S,
        tags: Vec<String>,
        body: B,
    ) -> R
    where
        S: Shape<R, Value = V>,
        R: Send + 'static,
        B: FnOnce() -> R + Send + 'static,
    {
        let key = match found {
            Found::Hit(v) => return S::wrap(v),
            Found::Refresh(v, key) => {
                return S::wrap(self.refresh_blocking::<S, R, B>(key, v, body, None, tags));
            }
            Found::Miss(key) => key,
        };
        let Some(core) = self.core.get() else {
            return body();
        };
        let ask = Self::ask::<S, R>(core);
        match core.start_blocking(key.clone(), ask) {
            Start::Done(got) => Self::settled::<S, R>(got, body),
            Start::Stale(v, seen) => {
                S::wrap(self.refresh_blocking::<S, R, B>(key, v, body, seen, tags))
            }
            Start::Load(loading) => {
                let r = body();
                loading.finish_blocking(produce::<S, R, V>(&r, ask.absent, tags));
                r
            }
        }
    }

    /// Refreshes `key` in the background; the stale `v`, or the new value if it lands within
    /// the `load_timeout`. `seen`: what the read that found `v` stale noted (`None`: a hit).
    fn refresh_blocking<S, R, B>(
        &'static self,
        key: String,
        v: V,
        body: B,
        seen: Option<Seen>,
        tags: Vec<String>,
    ) -> V
    where
        S: Shape<R, Value = V>,
        R: Send + 'static,
        B: FnOnce() -> R + Send + 'static,
    {
        let Some(core) = self.core.get() else {
            return v;
        };
        let ask = Self::ask::<S, R>(core);
        let flight = core.refresh_blocking(
            key,
            ask,
            move || produce::<S, R, V>(&body(), ask.absent, tags),
            seen,
        );
        core.refreshed_blocking(&flight, v)
    }

    /// [`Memo::finish_refreshing`] for async functions.
    pub async fn finish_refreshing_async<S, R, F, Fut>(
        &'static self,
        found: Found<V>,
        _shape: S,
        tags: Vec<String>,
        body: F,
    ) -> R
    where
        S: Shape<R, Value = V>,
        R: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R> + Send + 'static,
    {
        let key = match found {
            Found::Hit(v) => return S::wrap(v),
            Found::Refresh(v, key) => {
                return S::wrap(
                    self.refresh_async::<S, R, Fut>(key, v, body(), None, tags)
                        .await,
                );
            }
            Found::Miss(key) => key,
        };
        let Some(core) = self.core.get() else {
            return body().await;
        };
        let ask = Self::ask::<S, R>(core);
        match core.start_async::<Unshared>(key.clone(), ask).await {
            Start::Done(Got::Value(v)) => S::wrap(v),
            Start::Done(Got::Absent) => match S::absent() {
                Some(r) => r,
                None => body().await,
            },
            Start::Done(_) => body().await,
            Start::Stale(v, seen) => S::wrap(
                self.refresh_async::<S, R, Fut>(key, v, body(), seen, tags)
                    .await,
            ),
            Start::Load(loading) => {
                let r = body().await;
                loading
                    .finish(produce::<S, R, V>(&r, ask.absent, tags))
                    .await;
                r
            }
        }
    }

    /// [`Memo::refresh_blocking`] for async functions.
    async fn refresh_async<S, R, Fut>(
        &'static self,
        key: String,
        v: V,
        fut: Fut,
        seen: Option<Seen>,
        tags: Vec<String>,
    ) -> V
    where
        S: Shape<R, Value = V>,
        R: Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let Some(core) = self.core.get() else {
            return v;
        };
        let ask = Self::ask::<S, R>(core);
        let flight = core.refresh_async(
            key,
            ask,
            async move {
                let r = fut.await;
                produce::<S, R, V>(&r, ask.absent, tags)
            },
            seen,
        );
        core.refreshed(&flight, v).await
    }

    /// The miss path, kept out of line so the hit path stays small.
    #[inline(never)]
    fn miss<S, R>(&'static self, key: String, tags: Vec<String>, body: impl FnOnce() -> R) -> R
    where
        S: Shape<R, Value = V>,
    {
        let Some(core) = self.core.get() else {
            return body();
        };
        let ask = Self::ask::<S, R>(core);
        match core.start_blocking(key, ask) {
            Start::Done(got) => Self::settled::<S, R>(got, body),
            // No background refresh: the body may borrow (see `finish_refreshing`).
            Start::Stale(v, _) => S::wrap(v),
            Start::Load(loading) => {
                let r = body();
                loading.finish_blocking(produce::<S, R, V>(&r, ask.absent, tags));
                r
            }
        }
    }

    /// Finishes an async call: the hit's value, or a load with the body as the loader.
    pub async fn finish_async<S, R, F, Fut>(&'static self, found: Found<V>, shape: S, body: F) -> R
    where
        S: Shape<R, Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        self.finish_async_tagged(found, shape, Vec::new(), body)
            .await
    }

    /// [`Memo::finish_async`], storing a loaded result under `tags` (`tags = [...]`).
    pub async fn finish_async_tagged<S, R, F, Fut>(
        &'static self,
        found: Found<V>,
        _shape: S,
        tags: Vec<String>,
        body: F,
    ) -> R
    where
        S: Shape<R, Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let key = match found {
            Found::Hit(v) | Found::Refresh(v, _) => return S::wrap(v),
            Found::Miss(k) => k,
        };
        let Some(core) = self.core.get() else {
            return body().await;
        };
        let ask = Self::ask::<S, R>(core);
        match core.start_async::<Unshared>(key, ask).await {
            Start::Done(Got::Value(v)) | Start::Stale(v, _) => S::wrap(v),
            Start::Done(Got::Absent) => match S::absent() {
                Some(r) => r,
                None => body().await,
            },
            Start::Done(_) => body().await,
            Start::Load(loading) => {
                let r = body().await;
                loading
                    .finish(produce::<S, R, V>(&r, ask.absent, tags))
                    .await;
                r
            }
        }
    }

    // ---- companions ------------------------------------------------------------------------

    /// The untyped cache (under [`Memo::handle`]), building it now if needed.
    pub fn cache(&'static self) -> Result<crate::FlipCache<String, V>> {
        let core = match self.core.get() {
            Some(c) => c,
            None => self.build_sync(true)?,
        };
        Ok(crate::FlipCache::from_core(core.clone()))
    }

    /// The untyped async cache (under [`Memo::handle_async`]), building it now if needed.
    pub async fn cache_async(&'static self) -> Result<crate::aio::FlipCache<String, V>> {
        let core = match self.core.get() {
            Some(c) => c,
            None => self.build_async(true).await?,
        };
        Ok(crate::aio::FlipCache::from_core(core.clone()))
    }

    /// The cache typed by the function's arguments (`<fn>_cache()`): `key` writes the key of
    /// `A` as a call does, `tags` formats the `tags = [...]` of `A`.
    pub fn handle<A: ?Sized>(
        &'static self,
        key: fn(&A, &mut String),
        tags: fn(&A) -> Vec<String>,
    ) -> Result<crate::MemoCache<A, V>> {
        Ok(crate::MemoCache::new(self.cache()?, key, tags))
    }

    /// The async cache typed by the function's arguments (`<fn>_cache().await`).
    pub async fn handle_async<A: ?Sized>(
        &'static self,
        key: fn(&A, &mut String),
        tags: fn(&A) -> Vec<String>,
    ) -> Result<crate::aio::MemoCache<A, V>> {
        Ok(crate::aio::MemoCache::new(
            self.cache_async().await?,
            key,
            tags,
        ))
    }

    /// The cache's counters (`<fn>_stats()`); all zero while the cache is not built.
    pub fn stats(&'static self) -> crate::Stats {
        self.core
            .get()
            .map_or_else(crate::Stats::default, |c| c.stats())
    }

    /// Removes one entry (`<fn>_invalidate(args)`); says whether Redis had it.
    pub fn invalidate(&'static self, key: String) -> Result<bool> {
        self.cache()?.delete(&key)
    }

    /// Removes one entry (`<fn>_invalidate(args).await`); says whether Redis had it.
    pub async fn invalidate_async(&'static self, key: String) -> Result<bool> {
        self.cache_async().await?.delete(&key).await
    }

    /// The stored result for one key (`<fn>_peek(args)`), without running the body.
    pub fn peek(&'static self, key: String) -> Result<Option<V>> {
        self.cache()?.get(&key)
    }

    /// The stored result for one key (`<fn>_peek(args).await`), without running the body.
    pub async fn peek_async(&'static self, key: String) -> Result<Option<V>> {
        self.cache_async().await?.get(&key).await
    }

    /// Stores one entry (`<fn>_prime(args, value)`).
    pub fn prime(&'static self, key: String, value: impl Load<V>) -> Result<()> {
        let core = match self.core.get() {
            Some(c) => c,
            None => self.build_sync(true)?,
        };
        let write = core.write_loaded(key, value.into_loaded(), Vec::new());
        core.block(write)
    }

    /// Stores one entry (`<fn>_prime(args, value).await`).
    pub async fn prime_async(&'static self, key: String, value: impl Load<V>) -> Result<()> {
        let core = match self.core.get() {
            Some(c) => c,
            None => self.build_async(true).await?,
        };
        let written = core
            .write_loaded(key, value.into_loaded(), Vec::new())
            .await;
        core.returned(written)
    }
}

impl<V> std::fmt::Debug for Memo<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("name", &self.name.get())
            .field("built", &self.core.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::{Whole, default_codec};

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
        let core = UNREACHABLE.core.get().expect("built lazily");
        assert!(core.health.degraded());
        assert!(UNREACHABLE.cache().is_ok());
    }
}
