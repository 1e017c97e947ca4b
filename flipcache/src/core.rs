//! The one implementation behind both fronts: every verb as an `async fn` over the L1
//! ([`Local`]) and Redis ([`Remote`]). The blocking front runs these with `block_on`, the async
//! front awaits them.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::codec::ValueCodec;
use crate::error::{Error, Result};
use crate::key::{FlipKey, escape_glob, redis_key};
use crate::local::{Limits, Local, Lookup, Ticket, Weigher, WriteGuard};
use crate::remote::{self, Failure, Fetched, ReadMode, Remote};
use crate::runtime::block_on;
use crate::stats::{Counters, Stats};
use crate::tracking::Sink;

/// Everything the builder decided, minus the codec and the connection.
pub(crate) struct Settings<K, V> {
    pub(crate) name: String,
    pub(crate) local_max: usize,
    pub(crate) local_max_bytes: Option<usize>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) expire_time: Option<Duration>,
    pub(crate) refresh_on_get: bool,
    pub(crate) default: Option<V>,
    pub(crate) write_default: bool,
    pub(crate) timeout: Duration,
    pub(crate) coherence: bool,
    /// Build even when Redis cannot be reached.
    pub(crate) lazy: bool,
}

/// One cache: name, L1, codec, connection, counters.
pub(crate) struct Core<K, V> {
    pub(crate) name: Arc<str>,
    prefix: String,
    local: Local<K, V>,
    codec: Arc<dyn ValueCodec<V>>,
    pub(crate) remote: Arc<Remote>,
    ttl: Option<Duration>,
    refresh_on_get: bool,
    default: Option<V>,
    write_default: bool,
    timeout: Duration,
    id: OnceLock<u64>,
    counters: Counters,
    refresher: OnceLock<mpsc::UnboundedSender<K>>,
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    /// Builds the cache, joins its connection's registry and makes sure Redis tracks its keys.
    pub(crate) async fn start(
        settings: Settings<K, V>,
        codec: Arc<dyn ValueCodec<V>>,
        remote: Arc<Remote>,
    ) -> Result<Arc<Self>> {
        let Settings {
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
        } = settings;
        let refresh_every = match (refresh_on_get, expire_time) {
            (true, Some(ttl)) => Some(ttl / 4),
            _ => None,
        };
        let limits = Limits {
            max_entries: local_max,
            max_bytes: local_max_bytes,
            weigher,
        };
        let l1 = limits.enabled();
        let prefix = format!("{name}:");
        let core = Arc::new(Core {
            name: name.into(),
            prefix: prefix.clone(),
            local: Local::with_limits(limits, refresh_every),
            codec,
            remote,
            ttl: expire_time,
            refresh_on_get,
            default,
            write_default,
            timeout,
            id: OnceLock::new(),
            counters: Counters::default(),
            refresher: OnceLock::new(),
        });
        let weak: Weak<Self> = Arc::downgrade(&core);
        let sink: Weak<dyn Sink> = weak.clone();
        let id = core
            .remote
            .registry
            .join(prefix.clone(), coherence && l1, sink);
        let _ = core.id.set(id);
        let ready = async {
            if coherence && l1 {
                core.remote
                    .ensure_tracked(&prefix)
                    .await
                    .map_err(Failure::Redis)
            } else {
                core.remote
                    .run(core.timeout, |mut c| async move {
                        redis::cmd("PING").query_async::<()>(&mut c).await
                    })
                    .await
            }
        };
        let failure = match tokio::time::timeout(core.timeout, ready).await {
            Ok(Ok(())) => None,
            Ok(Err(f)) => Some(f),
            Err(_) => Some(Failure::Timeout),
        };
        if let Some(f) = failure {
            if !lazy {
                return Err(core.fail(None, f));
            }
            let e = core.fail(None, f);
            tracing::debug!(error = %e, "flipcache: built without reaching Redis (lazy_connect)");
            // If a connection is up but registering this cache's prefix did not finish, start
            // over: the next connection registers every prefix before anything is filled.
            core.remote.reset();
        }
        if refresh_every.is_some() && core.local.enabled() {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = core.refresher.set(tx);
            core.remote.rt.spawn(refresh_loop(weak, rx));
        }
        Ok(core)
    }

    pub(crate) fn rt(&self) -> &'static Handle {
        self.remote.rt
    }

    fn id(&self) -> u64 {
        self.id.get().copied().unwrap_or(u64::MAX)
    }

    fn fail(&self, key: Option<&str>, failure: Failure) -> Error {
        Counters::bump(&self.counters.errors);
        let cache = self.name.clone();
        let key = key.map(str::to_owned);
        match failure {
            Failure::Redis(source) => Error::Redis { cache, key, source },
            Failure::Timeout => Error::Timeout {
                cache,
                key,
                after: self.timeout,
            },
        }
    }

    fn decode(&self, rkey: &str, bytes: &[u8]) -> Result<V> {
        self.codec.decode(bytes).map_err(|message| {
            Counters::bump(&self.counters.errors);
            Error::Decode {
                cache: self.name.clone(),
                key: rkey.to_owned(),
                message,
            }
        })
    }

    fn encode(&self, rkey: &str, value: &V) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.codec.encode(value, &mut out).map_err(|message| {
            Counters::bump(&self.counters.errors);
            Error::Encode {
                cache: self.name.clone(),
                key: rkey.to_owned(),
                message,
            }
        })?;
        Ok(out)
    }

    fn read_mode(&self) -> ReadMode {
        match (self.refresh_on_get, self.ttl) {
            (true, Some(ttl)) => ReadMode::Refresh(ttl),
            _ if self.local.enabled() => ReadMode::WithTtl,
            _ => ReadMode::Plain,
        }
    }

    // ---- the L1 fast path ------------------------------------------------------------------

    /// An L1 hit, or `None`.
    #[inline]
    pub(crate) fn local_hit<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.local.get(key) {
            Lookup::Hit { value, refresh } => {
                if refresh && let Some(tx) = self.refresher.get() {
                    let _ = tx.send(key.to_owned());
                }
                Some(value)
            }
            Lookup::Miss => None,
        }
    }

    // ---- verbs -----------------------------------------------------------------------------

    /// A read that missed the L1: one round trip, then an epoch-guarded fill.
    pub(crate) async fn fetch(&self, key: K) -> Result<Option<V>> {
        let rkey = redis_key(&self.prefix, &key);
        let ticket = self.local.read_ticket(self.local.hash(&key));
        let mode = self.read_mode();
        let start = Instant::now();
        let fetched = self
            .remote
            .run(self.timeout, |c| remote::get(c, &rkey, mode))
            .await
            .map_err(|f| self.fail(Some(&rkey), f))?;
        match self.landed(key, &rkey, ticket, start, fetched)? {
            Ok(value) => Ok(Some(value)),
            Err(key) => self.missing(key).await,
        }
    }

    /// [`Core::fetch`] for the blocking front: the round trip is made from the calling thread
    /// on a connection of its own when that is possible (see `blocking_reads`), which spares
    /// two thread hand-offs; otherwise through the shared connection.
    pub(crate) fn fetch_blocking(&self, key: K) -> Result<Option<V>> {
        let mode = self.read_mode();
        if matches!(mode, ReadMode::Refresh(_)) {
            // GETEX changes the key: it must go through the shared connection (NOLOOP).
            return block_on(self.rt(), self.fetch(key));
        }
        let rkey = redis_key(&self.prefix, &key);
        let ticket = self.local.read_ticket(self.local.hash(&key));
        let start = Instant::now();
        let Some(fetched) = self
            .remote
            .run_blocking(self.timeout, |c| remote::get_blocking(c, &rkey, mode))
        else {
            return block_on(self.rt(), self.fetch(key));
        };
        let fetched = fetched.map_err(|f| self.fail(Some(&rkey), f))?;
        match self.landed(key, &rkey, ticket, start, fetched)? {
            Ok(value) => Ok(Some(value)),
            Err(key) => block_on(self.rt(), self.missing(key)),
        }
    }

    /// What a read under `ticket` brought back: the decoded value (the L1 filled if nothing
    /// moved since), or the key back when Redis has none.
    fn landed(
        &self,
        key: K,
        rkey: &str,
        ticket: Ticket,
        start: Instant,
        fetched: Fetched,
    ) -> Result<std::result::Result<V, K>> {
        match fetched.value {
            Some(bytes) => {
                let value = self.decode(rkey, &bytes)?;
                Counters::bump(&self.counters.remote_hits);
                let deadline = fetched.pttl.map(|ms| start + Duration::from_millis(ms));
                self.local
                    .fill_sized(key, value.clone(), deadline, bytes.len(), ticket);
                Ok(Ok(value))
            }
            None => {
                Counters::bump(&self.counters.misses);
                Ok(Err(key))
            }
        }
    }

    /// What a read of a missing key returns: the default (written back if asked), or `None`.
    async fn missing(&self, key: K) -> Result<Option<V>> {
        let Some(default) = &self.default else {
            return Ok(None);
        };
        if self.write_default {
            self.set(key, default.clone()).await?;
        }
        Ok(Some(default.clone()))
    }

    pub(crate) async fn set(&self, key: K, value: V) -> Result<()> {
        let rkey = redis_key(&self.prefix, &key);
        let bytes = self.encode(&rkey, &value)?;
        let guard = WriteGuard::begin(&self.local, vec![key]);
        let start = Instant::now();
        let ttl = self.ttl;
        let result = self
            .remote
            .run(self.timeout, |c| remote::set(c, &rkey, &bytes, ttl))
            .await;
        self.remote.registry.local_write(rkey.as_bytes(), self.id());
        match result {
            Ok(()) => {
                guard.finish(vec![(value, bytes.len())], ttl.map(|t| start + t));
                Ok(())
            }
            Err(f) => {
                drop(guard);
                Err(self.fail(Some(&rkey), f))
            }
        }
    }

    pub(crate) async fn delete(&self, key: K) -> Result<bool> {
        let rkey = redis_key(&self.prefix, &key);
        let guard = WriteGuard::begin(&self.local, vec![key]);
        let result = self
            .remote
            .run(self.timeout, |c| remote::del(c, &rkey))
            .await;
        self.remote.registry.local_write(rkey.as_bytes(), self.id());
        drop(guard);
        result.map_err(|f| self.fail(Some(&rkey), f))
    }

    pub(crate) fn local_contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.local.contains(key)
    }

    pub(crate) async fn exists(&self, key: K) -> Result<bool> {
        let rkey = redis_key(&self.prefix, &key);
        self.remote
            .run(self.timeout, |c| remote::exists(c, &rkey))
            .await
            .map_err(|f| self.fail(Some(&rkey), f))
    }

    pub(crate) async fn refresh(&self, key: K) -> Result<bool> {
        let rkey = redis_key(&self.prefix, &key);
        let Some(ttl) = self.ttl else {
            let found = self.exists(key.clone()).await?;
            if found {
                self.local.touch(&key);
            } else {
                self.local.invalidate(&key);
            }
            return Ok(found);
        };
        let ticket = self.local.read_ticket(self.local.hash(&key));
        let start = Instant::now();
        let found = self
            .remote
            .run(self.timeout, |c| remote::pexpire(c, &rkey, ttl))
            .await
            .map_err(|f| self.fail(Some(&rkey), f))?;
        if found {
            self.local.extend(&key, start + ttl, ticket);
            self.local.touch(&key);
        } else {
            self.local.invalidate(&key);
        }
        Ok(found)
    }

    /// Renews the Redis TTL of keys read from the L1 (refresh-on-get), in one round trip.
    async fn refresh_batch(&self, keys: Vec<K>) {
        let Some(ttl) = self.ttl else { return };
        let tickets: Vec<Ticket> = keys
            .iter()
            .map(|k| self.local.read_ticket(self.local.hash(k)))
            .collect();
        let rkeys: Vec<String> = keys.iter().map(|k| redis_key(&self.prefix, k)).collect();
        let start = Instant::now();
        match self
            .remote
            .run(self.timeout, |c| remote::pexpire_many(c, &rkeys, ttl))
            .await
        {
            Ok(found) => {
                for ((key, ticket), found) in keys.iter().zip(tickets).zip(found) {
                    if found {
                        self.local.extend(key, start + ttl, ticket);
                    } else {
                        self.local.invalidate(key);
                    }
                }
            }
            Err(f) => {
                let e = self.fail(None, f);
                tracing::debug!(error = %e, "flipcache: background TTL refresh failed; will retry on a later hit");
            }
        }
    }

    /// This cache's keys in Redis: those under `{name}:` that parse as `K`, minus those of
    /// other caches of this process whose names nest inside this one (`p` vs `p:q`).
    async fn own_keys(&self) -> Result<Vec<(Vec<u8>, K)>> {
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let raw = self
            .remote
            .run(self.timeout, |c| remote::scan(c, &pattern))
            .await
            .map_err(|f| self.fail(None, f))?;
        let nested = self.remote.registry.nested_prefixes(&self.prefix);
        Ok(raw
            .into_iter()
            .filter(|k| !nested.iter().any(|n| k.starts_with(n.as_bytes())))
            .filter_map(|k| {
                let key = std::str::from_utf8(&k[self.prefix.len()..])
                    .ok()
                    .and_then(K::parse_key)?;
                Some((k, key))
            })
            .collect())
    }

    pub(crate) async fn len(&self) -> Result<usize> {
        Ok(self.own_keys().await?.len())
    }

    pub(crate) async fn keys(&self) -> Result<Vec<K>> {
        Ok(self.own_keys().await?.into_iter().map(|(_, k)| k).collect())
    }

    pub(crate) async fn clear(&self) -> Result<usize> {
        let keys: Vec<Vec<u8>> = self
            .own_keys()
            .await?
            .into_iter()
            .map(|(raw, _)| raw)
            .collect();
        let result = self
            .remote
            .run(self.timeout, |c| remote::unlink(c, &keys))
            .await;
        self.local.flush();
        self.remote.registry.local_clear(&self.prefix, self.id());
        result.map_err(|f| self.fail(None, f))
    }

    pub(crate) async fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>> {
        let mut out: Vec<Option<V>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let hit = self.local_hit(k);
            if hit.is_none() {
                missing.push(i);
            }
            out.push(hit);
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let tickets: Vec<Ticket> = missing
            .iter()
            .map(|&i| self.local.read_ticket(self.local.hash(&keys[i])))
            .collect();
        let rkeys: Vec<String> = missing
            .iter()
            .map(|&i| redis_key(&self.prefix, &keys[i]))
            .collect();
        let mode = self.read_mode();
        let start = Instant::now();
        let fetched = self
            .remote
            .run(self.timeout, |c| remote::get_many(c, &rkeys, mode))
            .await
            .map_err(|f| self.fail(None, f))?;
        for (((&i, rkey), ticket), f) in missing.iter().zip(&rkeys).zip(tickets).zip(fetched) {
            match f.value {
                Some(bytes) => {
                    let value = self.decode(rkey, &bytes)?;
                    Counters::bump(&self.counters.remote_hits);
                    let deadline = f.pttl.map(|ms| start + Duration::from_millis(ms));
                    self.local.fill_sized(
                        keys[i].clone(),
                        value.clone(),
                        deadline,
                        bytes.len(),
                        ticket,
                    );
                    out[i] = Some(value);
                }
                None => {
                    Counters::bump(&self.counters.misses);
                    out[i] = self.missing(keys[i].clone()).await?;
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn set_many(&self, items: Vec<(K, V)>) -> Result<()> {
        let mut encoded = Vec::with_capacity(items.len());
        for (k, v) in &items {
            let rkey = redis_key(&self.prefix, k);
            let bytes = self.encode(&rkey, v)?;
            encoded.push((rkey, bytes));
        }
        let (keys, values): (Vec<K>, Vec<(V, usize)>) = items
            .into_iter()
            .zip(&encoded)
            .map(|((k, v), (_, bytes))| (k, (v, bytes.len())))
            .unzip();
        let guard = WriteGuard::begin(&self.local, keys);
        let start = Instant::now();
        let ttl = self.ttl;
        let result = self
            .remote
            .run(self.timeout, |c| remote::set_many(c, &encoded, ttl))
            .await;
        for (rkey, _) in &encoded {
            self.remote.registry.local_write(rkey.as_bytes(), self.id());
        }
        match result {
            Ok(()) => {
                guard.finish(values, ttl.map(|t| start + t));
                Ok(())
            }
            Err(f) => {
                drop(guard);
                Err(self.fail(None, f))
            }
        }
    }

    /// Keeps `value` in the L1 only (Redis unreachable: fail-open memoization). It expires with
    /// the cache's TTL, if any, and is dropped by any later write or invalidation as usual.
    pub(crate) fn put_local(&self, key: K, value: V) {
        let ticket = self.local.begin_write(self.local.hash(&key));
        let deadline = self.ttl.map(|t| Instant::now() + t);
        // Weighed by its encoded length when that matters (a byte bound, no weigher).
        let len = match self.local.max_bytes() {
            Some(_) => self
                .encode(&redis_key(&self.prefix, &key), &value)
                .map_or(0, |b| b.len()),
            None => 0,
        };
        self.local
            .end_write_sized(&key, Some((value, deadline)), len, ticket);
    }

    pub(crate) fn local_len(&self) -> usize {
        self.local.len()
    }

    pub(crate) fn local_keys(&self) -> Vec<K> {
        self.local.keys()
    }

    pub(crate) fn local_max(&self) -> usize {
        self.local.capacity()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters.snapshot(self.local.hits())
    }

    pub(crate) fn expire_time(&self) -> Option<Duration> {
        self.ttl
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Sink for Core<K, V> {
    fn invalidate(&self, suffix: &[u8]) {
        if let Some(key) = std::str::from_utf8(suffix).ok().and_then(K::parse_key) {
            self.local.invalidate(&key);
        }
    }

    fn flush(&self) {
        self.local.flush();
        // Counted once done, so whoever sees the count sees the L1 emptied.
        Counters::bump(&self.counters.flushes);
    }

    fn count_invalidation(&self) {
        Counters::bump(&self.counters.invalidations);
    }
}

impl<K, V> Drop for Core<K, V> {
    fn drop(&mut self) {
        if let Some(id) = self.id.get() {
            self.remote.registry.leave(*id);
        }
    }
}

async fn refresh_loop<K: FlipKey, V: Clone + Send + Sync + 'static>(
    core: Weak<Core<K, V>>,
    mut rx: mpsc::UnboundedReceiver<K>,
) {
    const BATCH: usize = 1000;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(k) => batch.push(k),
                Err(_) => break,
            }
        }
        let Some(core) = core.upgrade() else { return };
        core.refresh_batch(batch).await;
    }
}
