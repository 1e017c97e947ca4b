//! The one implementation behind both fronts: every verb as an `async fn` over the L1
//! ([`Local`]) and Redis ([`Remote`]). The blocking front runs these with `block_on`, the async
//! front awaits them.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::codec::ValueCodec;
use crate::error::{Error, Result};
use crate::event::{Event, Listener};
use crate::instrument::Observe;
use crate::key::{ABSENT, FlipKey, absent_key, cleared_key, escape_glob, redis_key, trace_key};
use crate::load::Loaded;
use crate::load::flight::Flights;
use crate::load::health::Health;
use crate::load::lease::{Claim, Leases};
use crate::local::{
    Fill, Found, Freshness, Heard, Limits, Local, Lookup, Ticket, Weigher, WriteGuard,
};
use crate::lock::lock;
use crate::remote::fill::{Cond, Noted, Seen, TraceKeys};
use crate::remote::{self, Also, Failure, Fetched, ReadMode, Remote};
use crate::runtime::block_on;
use crate::stats::{Counters, ErrorKind, Stats};
use crate::tracking::Sink;

/// How many keys `decode_errors_as_misses` remembers having warned about.
const WARNED_KEYS_MAX: usize = 1024;

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
    /// Loader paths return the loader's value when Redis fails.
    pub(crate) fail_open: bool,
    /// How long a loader's `None` is remembered in Redis.
    pub(crate) absent_ttl: Option<Duration>,
    /// Random extra TTL per write, in `0..jitter`.
    pub(crate) jitter: Option<Duration>,
    /// `get`/`get_many` read an undecodable entry as absent.
    pub(crate) decode_misses: bool,
    /// Spans and log lines name keys.
    pub(crate) trace_keys: bool,
    /// The end of an entry's Redis lifetime during which it is stale.
    pub(crate) stale_for: Option<Duration>,
    /// The fraction of the fresh lifetime after which a hit starts a background refresh.
    pub(crate) eager_refresh: Option<f64>,
    /// Keep the L1 through outages and serve it when Redis or the loader fails.
    pub(crate) fail_safe: bool,
    /// After a failed refresh, how long until the next attempt.
    pub(crate) fail_safe_throttle: Duration,
    /// How long a caller with a stale value waits for its refresh.
    pub(crate) load_timeout: Option<Duration>,
    /// How long a caller waits for a loader at most.
    pub(crate) load_hard_timeout: Option<Duration>,
    /// The cross-process lease of a load (`distributed_lock`).
    pub(crate) distributed_lock: Option<Duration>,
    /// Told every [`Event`].
    pub(crate) on_event: Option<Listener>,
}

/// What Redis holds for a key, as a read found it.
pub(crate) enum Stored<V> {
    /// A value (now in the L1 too, unless something moved meanwhile), and whether it is stale
    /// (its remaining TTL is within `stale_for`).
    Value(V, bool),
    /// No value, and a marker saying a loader found none (`cache_absent`).
    Absent,
    /// Nothing.
    Missing,
}

/// Why a read of Redis is made: what it notes and counts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A caller's lookup (`get`): counted as a hit or a miss.
    Call,
    /// A load's read (its leader's): counted, and noting what the load's fill compares with.
    Load,
    /// A look the cache takes for itself (the lease's second look at the key): counted as
    /// neither (its lookup was counted by the read before).
    Look,
}

/// How many keys `len` and `keys` read per round trip when they must look at values.
const VISIBLE_BATCH: usize = 500;

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
    pub(crate) counters: Counters,
    refresher: OnceLock<mpsc::UnboundedSender<K>>,
    /// The loads in flight (the crate's one single-flight).
    pub(crate) flights: Arc<Flights<K, V>>,
    /// Redis's health as the loader paths see it (fail-open).
    pub(crate) health: Health,
    pub(crate) fail_open: bool,
    absent_ttl: Option<Duration>,
    jitter: Option<Duration>,
    decode_misses: bool,
    /// Keys whose undecodable value was reported (`decode_errors_as_misses`).
    warned: std::sync::Mutex<std::collections::HashSet<String>>,
    stale_for: Option<Duration>,
    pub(crate) fail_safe: bool,
    /// Fail-safe: the connection was lost and the L1 kept; its entries are served only as
    /// fail-safe values until a new connection revalidates them.
    unverified: std::sync::atomic::AtomicBool,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    /// `distributed_lock`: the lease and the waiters of each key.
    pub(crate) leases: Option<Arc<Leases>>,
    /// Events, metrics (see `instrument`).
    pub(crate) observe: Observe,
    /// Redis pushes invalidations of this cache's keys to this process (`coherence`, an L1).
    tracked: bool,
    /// Spans and log lines name keys (`trace_keys`).
    pub(crate) trace_keys: bool,
    /// This cache's clear trace on one server (see `remote/fill.rs`).
    cleared: String,
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
        } = settings;
        let freshness = (stale_for.is_some() || eager_refresh.is_some()).then(|| Freshness {
            stale_for: stale_for.unwrap_or_default(),
            eager: eager_refresh
                .zip(expire_time)
                .map(|(ratio, ttl)| ttl.mul_f64((1.0 - ratio).clamp(0.0, 1.0))),
            retry: fail_safe_throttle,
        });
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
        let name: Arc<str> = name.into();
        let cleared = cleared_key(&name, None);
        let observe = Observe::new(&name, on_event);
        let mut local = Local::with_limits(limits, refresh_every, freshness);
        if observe.events.on() {
            let (events, cache, prefix) = (observe.events.clone(), name.clone(), prefix.clone());
            local.on_evict(Box::new(move |k: &K| {
                events.emit(|| Event::Evicted {
                    cache: cache.clone(),
                    key: redis_key(&prefix, k),
                })
            }));
        }
        let core = Arc::new(Core {
            name,
            prefix: prefix.clone(),
            local,
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
            flights: Arc::new(Flights::new()),
            health: Health::default(),
            fail_open,
            absent_ttl,
            jitter: jitter.filter(|j| !j.is_zero()),
            decode_misses,
            warned: std::sync::Mutex::new(std::collections::HashSet::new()),
            stale_for: stale_for.filter(|s| !s.is_zero()),
            fail_safe,
            unverified: std::sync::atomic::AtomicBool::new(false),
            soft_timeout: load_timeout,
            hard_timeout: load_hard_timeout,
            leases: distributed_lock.map(|lease| Arc::new(Leases::new(lease))),
            observe,
            tracked: coherence && l1,
            trace_keys,
            cleared,
        });
        core.health.show_keys(trace_keys);
        let weak: Weak<Self> = Arc::downgrade(&core);
        let sink: Weak<dyn Sink> = weak.clone();
        let id = core
            .remote
            .registry
            .join(prefix.clone(), coherence && l1, sink);
        let _ = core.id.set(id);
        let start = Instant::now();
        let ready = async {
            if coherence && l1 {
                core.remote
                    .ensure_tracked(&prefix)
                    .await
                    .map_err(|e| Failure::of(e, start))
            } else {
                core.round_trip("ping", None, |mut c| async move {
                    redis::cmd("PING").query_async::<()>(&mut c).await
                })
                .await
            }
        };
        let failure = match tokio::time::timeout(core.timeout, ready).await {
            Ok(Ok(())) => None,
            Ok(Err(f)) => Some(f),
            Err(_) => Some(Failure::Timeout(start.elapsed())),
        };
        if let Some(f) = failure {
            if !lazy {
                return Err(core.fail(None, f));
            }
            let e = core.fail(None, f);
            core.remote.outage().down(|| {
                tracing::warn!(cache = %core.name, error = %core.chain(&e), "built without reaching Redis (lazy_connect); retrying in the background");
            });
            core.health.unreachable_at_start();
            // If a connection is up but registering this cache's prefix did not finish, start
            // over: the next connection registers every prefix before anything is filled.
            core.remote.reset();
        }
        if refresh_every.is_some() && core.local.enabled() {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = core.refresher.set(tx);
            core.remote.rt.spawn(refresh_loop(weak.clone(), rx));
        }
        #[cfg(feature = "metrics")]
        {
            let publisher: Weak<dyn crate::metrics::Publish> = weak;
            crate::metrics::keep_publishing(core.rt(), publisher);
        }
        Ok(core)
    }

    pub(crate) fn rt(&self) -> &'static Handle {
        self.remote.rt
    }

    /// The Redis key of `key` (`{name}:{key}`).
    pub(crate) fn rkey(&self, key: &K) -> String {
        redis_key(&self.prefix, key)
    }

    /// The trace keys a load's read of `rkey` notes (see `remote/fill.rs`): its write trace,
    /// and this cache's clear trace (one per slot on a cluster, else the one made at start).
    fn fill_traces(&self, rkey: &str) -> TraceKeys {
        let cleared = match self.remote.is_cluster() {
            true => cleared_key(&self.name, Some(crate::slot::slot(rkey.as_bytes()))),
            false => self.cleared.clone(),
        };
        TraceKeys {
            trace: trace_key(rkey),
            cleared,
        }
    }

    /// `rkey`, if spans and log lines may name it (`trace_keys`).
    pub(crate) fn shown<'a>(&self, rkey: &'a str) -> Option<&'a str> {
        self.trace_keys.then_some(rkey)
    }

    /// `e` and its causes for a log line, naming keys only with `trace_keys`.
    pub(crate) fn chain<'e>(&self, e: &'e Error) -> crate::error::Chain<'e> {
        e.chain_keys(self.trace_keys)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id.get().copied().unwrap_or(u64::MAX)
    }

    pub(crate) fn fail(&self, key: Option<&str>, failure: Failure) -> Error {
        let cache = self.name.clone();
        let key = key.map(str::to_owned);
        match failure {
            Failure::Redis(source) => Error::Redis { cache, key, source },
            Failure::Timeout(elapsed) => Error::Timeout {
                cache,
                key,
                after: self.timeout,
                elapsed,
            },
        }
    }

    /// What a call returns to its caller, counted: an error in `errors` (by kind). The one
    /// place `errors` grows: the fronts pass every result through it (see `stats.rs`).
    #[inline]
    pub(crate) fn returned<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.counters.error(ErrorKind::of(e));
        }
        result
    }

    /// [`Core::returned`] for the fallible loader verbs: a loader's error counts as well.
    #[inline]
    pub(crate) fn returned_load<T, E>(
        &self,
        result: std::result::Result<T, crate::LoadError<E>>,
    ) -> std::result::Result<T, crate::LoadError<E>> {
        match &result {
            Ok(_) => {}
            Err(crate::LoadError::Cache(e)) => self.counters.error(ErrorKind::of(e)),
            Err(_) => self.counters.error(ErrorKind::Loader),
        }
        result
    }

    /// [`Core::returned`] of a blocking call: `work` run to completion on the cache's runtime.
    pub(crate) fn block<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.returned(block_on(self.rt(), work))
    }

    /// Decodes a value read from Redis. A failure is counted in `decode_errors`; it is counted
    /// in `errors` too only where it is returned to the caller ([`Core::undecodable`]).
    fn decode(&self, rkey: &str, bytes: &[u8]) -> Result<V> {
        self.codec.decode(bytes).map_err(|e| {
            Counters::bump(&self.counters.decode_errors);
            Error::Decode {
                cache: self.name.clone(),
                key: rkey.to_owned(),
                source: e.into(),
            }
        })
    }

    fn encode(&self, rkey: &str, value: &V) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.codec
            .encode(value, &mut out)
            .map_err(|e| Error::Encode {
                cache: self.name.clone(),
                key: rkey.to_owned(),
                source: e.into(),
            })?;
        Ok(out)
    }

    /// Whether this cache's writes (and `GETEX` reads) must have Redis track their keys again
    /// (key-based tracking; see `SET_TRACKED` in `remote/commands.rs`).
    fn retrack(&self) -> bool {
        self.local.enabled() && self.remote.tracks_keys()
    }

    fn read_mode(&self) -> ReadMode {
        match (self.refresh_on_get, self.ttl) {
            (true, Some(ttl)) => ReadMode::Refresh(ttl),
            // The TTL bounds the L1 entry, and says whether a value is stale.
            _ if self.local.enabled() || self.stale_for.is_some() => ReadMode::WithTtl,
            _ => ReadMode::Plain,
        }
    }

    // ---- the L1 fast path ------------------------------------------------------------------

    /// An L1 hit of a fresh, verified entry, or `None` (what `get` may serve). Always inlined,
    /// as `Local::get` is: the hit path of `get`.
    #[inline(always)]
    pub(crate) fn local_hit<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.local.get(key) {
            Lookup::Hit { value, refresh } => {
                if self.unverified.load(Ordering::Relaxed) {
                    return None;
                }
                if refresh && let Some(tx) = self.refresher.get() {
                    let _ = tx.send(key.to_owned());
                }
                self.local.count_hit();
                Some(value)
            }
            Lookup::Stale { .. } | Lookup::Miss => None,
        }
    }

    /// An L1 hit for a loader path: fresh, stale (`stale_for`) or unverified (fail-safe, during
    /// an outage) values are served; `true` when this hit claimed the key's background refresh.
    #[inline]
    pub(crate) fn loader_hit<Q>(&self, key: &Q) -> Option<(V, bool)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.local.get(key) {
            Lookup::Hit { value, refresh } => {
                self.served_local(key, false);
                if refresh && let Some(tx) = self.refresher.get() {
                    // refresh-on-get: this claim was for a TTL renewal.
                    let _ = tx.send(key.to_owned());
                    return Some((value, false));
                }
                Some((value, refresh))
            }
            Lookup::Stale { value, refresh } => {
                self.served_local(key, true);
                Some((value, refresh))
            }
            Lookup::Miss => None,
        }
    }

    /// Counts a value a loader path serves from the L1: a local hit and, among them, a stale
    /// value or (while the L1 is unverified, in an outage under fail-safe) a fail-safe copy.
    #[inline]
    fn served_local<Q>(&self, key: &Q, stale: bool)
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        self.local.count_hit();
        if self.unverified.load(Ordering::Relaxed) {
            Counters::bump(&self.counters.fail_safe);
            Counters::bump(&self.counters.stale_served);
            self.stale_served(key);
        } else if stale {
            self.local.count_stale();
            self.stale_served(key);
        }
    }

    /// The L1's value for `key` whatever its state (a fail-safe value, served in place of a
    /// Redis error), or `None`.
    fn fail_safe_value(&self, key: &K) -> Option<V> {
        if !self.fail_safe {
            return None;
        }
        let value = match self.local.get(key) {
            Lookup::Hit { value, .. } | Lookup::Stale { value, .. } => value,
            Lookup::Miss => return None,
        };
        self.local.count_hit();
        Counters::bump(&self.counters.fail_safe);
        Counters::bump(&self.counters.stale_served);
        self.stale_served(key);
        Some(value)
    }

    /// An [`Event::StaleServed`] of `key`, if anyone listens.
    #[inline]
    pub(crate) fn stale_served<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        if self.observe.events.on() {
            self.observe.events.emit(|| Event::StaleServed {
                cache: self.name.clone(),
                key: self.rkey(&key.to_owned()),
            });
        }
    }

    // ---- verbs -----------------------------------------------------------------------------

    /// The absence marker of `rkey`, when absence is remembered and the caller reads it.
    fn marker(&self, rkey: &str, wanted: bool) -> Option<String> {
        (wanted && self.absent_ttl.is_some()).then(|| absent_key(rkey))
    }

    /// How a read of `keys` may fill the L1, and the mode it reads in. A `GETEX`
    /// (refresh-on-get) under key-based tracking changes the key, so Redis echoes it: it is a
    /// write expecting that echo (see `local/coherence.rs`). While another write of a key's
    /// slot is in flight it reads with `GET` + `PTTL` instead: it could not fill anyway, and
    /// that write sets the TTL (overlapping `GETEX`s of a hot key would otherwise keep each
    /// other from ever filling).
    fn read_fill(&self, keys: &[K]) -> (ReadMode, Fill<'_, K, V>) {
        let mode = self.read_mode();
        let hashes: Vec<u64> = keys.iter().map(|k| self.local.hash(k)).collect();
        let plain = || Fill::Read {
            local: &self.local,
            tickets: hashes.iter().map(|&h| self.local.read_ticket(h)).collect(),
            redirected: false,
        };
        if !(matches!(mode, ReadMode::Refresh(_)) && self.retrack()) {
            return (mode, plain());
        }
        if hashes.iter().any(|&h| self.local.write_pending(h)) {
            return (ReadMode::WithTtl, plain());
        }
        (
            mode,
            Fill::Write(WriteGuard::begin(&self.local, keys.to_vec())),
        )
    }

    /// A read that missed the L1: one round trip (value, TTL and, when `markers`, the absence
    /// marker), then an epoch-guarded fill.
    pub(crate) async fn read(&self, key: &K, markers: bool) -> Result<Stored<V>> {
        self.read_seen(key, markers, Why::Call).await.0
    }

    /// [`Core::read`] that, when `traced` (a load's read), also notes what its fill will
    /// compare with (see `remote/fill.rs`), in the same round trip: noted whenever Redis
    /// answered, also when the value does not decode (the load then overwrites it).
    pub(crate) async fn read_seen(
        &self,
        key: &K,
        markers: bool,
        why: Why,
    ) -> (Result<Stored<V>>, Option<Seen>) {
        let traced = why == Why::Load;
        let rkey = redis_key(&self.prefix, key);
        let marker = self.marker(&rkey, markers);
        let traces = traced.then(|| self.fill_traces(&rkey));
        let (mode, mut fill) = self.read_fill(std::slice::from_ref(key));
        let start = Instant::now();
        let fetched = self
            .round_trip("get", Some(&rkey), |c| {
                let retrack = self.retrack();
                fill.sending(retrack);
                let also = Also {
                    marker: marker.as_deref(),
                    traces: traces.as_ref(),
                };
                remote::get(c, &rkey, mode, also, retrack)
            })
            .await;
        let fetched = match fetched {
            Ok(f) => f,
            Err(f) => return (Err(self.fail(Some(&rkey), f)), None),
        };
        let seen = seen_of(traces, &fetched, start);
        (self.landed(key, &rkey, fill, start, fetched, why), seen)
    }

    /// What a load's read of `key` notes, read on its own (a background refresh of a value
    /// served from the L1, which made no read): one round trip, nothing counted or filled.
    pub(crate) async fn snapshot(&self, key: &K) -> Result<Seen> {
        let rkey = redis_key(&self.prefix, key);
        let traces = self.fill_traces(&rkey);
        let start = Instant::now();
        let fetched = self
            .round_trip("get", Some(&rkey), |c| {
                let also = Also {
                    marker: None,
                    traces: Some(&traces),
                };
                remote::get(c, &rkey, ReadMode::Plain, also, false)
            })
            .await
            .map_err(|f| self.fail(Some(&rkey), f))?;
        seen_of(Some(traces), &fetched, start).ok_or_else(|| Error::Config {
            cache: self.name.clone(),
            message: format!("a read of `{rkey}` returned no write trace"),
        })
    }

    /// [`Core::read`] that also tries to take the key's lease first (`distributed_lock`, see
    /// `load/lease.rs`). The outer error is Redis's, the inner one the value's decoding (the
    /// lease was taken or not either way).
    pub(crate) async fn read_leased(
        &self,
        key: &K,
        markers: bool,
        claim: &Claim,
    ) -> Result<(remote::Taken, Result<Stored<V>>)> {
        let rkey = redis_key(&self.prefix, key);
        let marker = self.marker(&rkey, markers);
        let (mode, mut fill) = self.read_fill(std::slice::from_ref(key));
        let start = Instant::now();
        let (taken, fetched) = self
            .round_trip("lease", Some(&rkey), |c| {
                let retrack = self.retrack();
                fill.sending(retrack);
                let also = Also {
                    marker: marker.as_deref(),
                    traces: None,
                };
                remote::take_lease_and_get(c, claim.on(), &rkey, mode, also, retrack)
            })
            .await
            .map_err(|f| self.fail(Some(&rkey), f))?;
        Ok((
            taken,
            self.landed(key, &rkey, fill, start, fetched, Why::Look),
        ))
    }

    /// [`Core::read_seen`] for the blocking front: the round trip is made from the calling
    /// thread on a connection of its own when that is possible (see `blocking_reads`), which
    /// spares two thread hand-offs; otherwise through the shared connection.
    pub(crate) fn read_blocking(
        &self,
        key: &K,
        markers: bool,
        why: Why,
    ) -> (Result<Stored<V>>, Option<Seen>) {
        let traced = why == Why::Load;
        let mode = self.read_mode();
        if matches!(mode, ReadMode::Refresh(_)) {
            // GETEX changes the key: it goes through the shared connection, which tracks it and
            // hears its echo (see `Core::read_fill`).
            return block_on(self.rt(), self.read_seen(key, markers, why));
        }
        let rkey = redis_key(&self.prefix, key);
        let marker = self.marker(&rkey, markers);
        let traces = traced.then(|| self.fill_traces(&rkey));
        let tickets = vec![self.local.read_ticket(self.local.hash(key))];
        let start = Instant::now();
        let also = Also {
            marker: marker.as_deref(),
            traces: traces.as_ref(),
        };
        let Some((fetched, redirected)) = self.round_trip_blocking("get", Some(&rkey), |c| {
            remote::get_blocking(c, self.timeout, &rkey, mode, also)
        }) else {
            return block_on(self.rt(), self.read_seen(key, markers, why));
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(f) => return (Err(self.fail(Some(&rkey), f)), None),
        };
        let fill = Fill::Read {
            local: &self.local,
            tickets,
            redirected,
        };
        let seen = seen_of(traces, &fetched, start);
        (self.landed(key, &rkey, fill, start, fetched, why), seen)
    }

    /// What a read brought back (the L1 filled by `fill` if nothing moved since), counted as
    /// `why` says.
    fn landed(
        &self,
        key: &K,
        rkey: &str,
        fill: Fill<'_, K, V>,
        start: Instant,
        fetched: Fetched,
        why: Why,
    ) -> Result<Stored<V>> {
        match fetched.value {
            Some(bytes) => {
                let value = self.decode(rkey, &bytes)?;
                let stale = self
                    .stale_for
                    .is_some_and(|s| fetched.pttl.is_some_and(|ms| Duration::from_millis(ms) < s));
                // A stale value is served by loader paths (then counted as stale there), and
                // read as absent by `get`: a miss.
                match why {
                    Why::Look => {}
                    Why::Call if stale => Counters::bump(&self.counters.misses),
                    Why::Call | Why::Load => Counters::bump(&self.counters.remote_hits),
                }
                let deadline = fetched.pttl.map(|ms| start + Duration::from_millis(ms));
                let found = Some((value.clone(), bytes.len(), deadline));
                fill.fill(std::slice::from_ref(key), vec![found]);
                if fetched.absent {
                    // A value written by someone who does not clear markers: it wins; drop the
                    // marker so it does not come back when the value goes.
                    self.forget_absence(rkey);
                }
                Ok(Stored::Value(value, stale))
            }
            None => {
                if why != Why::Look {
                    Counters::bump(&self.counters.misses);
                }
                fill.fill(std::slice::from_ref(key), vec![None]);
                Ok(if fetched.absent {
                    Stored::Absent
                } else {
                    Stored::Missing
                })
            }
        }
    }

    /// Deletes the absence marker of `rkey` in the background.
    fn forget_absence(&self, rkey: &str) {
        let marker = absent_key(rkey);
        let remote = self.remote.clone();
        let timeout = self.timeout;
        self.rt().spawn(async move {
            let _ = remote
                .run(timeout, |c| async move { remote::del(c, &marker).await })
                .await;
        });
    }

    /// What `get` makes of a read: a value, or `None` (also for an undecodable value under
    /// `decode_errors_as_misses`, reported once per key).
    fn answer(&self, key: &K, read: Result<Stored<V>>) -> Result<Option<V>> {
        match read {
            Ok(Stored::Value(v, false)) => Ok(Some(v)),
            // Stale reads as absent for `get`; loader paths serve it.
            Ok(Stored::Value(_, true) | Stored::Absent | Stored::Missing) => Ok(None),
            Err(e) if e.is_remote() => match self.fail_safe_value(key) {
                Some(v) => {
                    tracing::debug!(cache = %self.name, error = %self.chain(&e), "Redis failed; served the fail-safe value");
                    Ok(Some(v))
                }
                None => Err(e),
            },
            Err(e) if self.decode_misses && e.is_decode() => {
                self.warn_undecodable(&e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn warn_undecodable(&self, e: &Error) {
        let key = e.key().unwrap_or_default();
        let mut warned = lock(&self.warned);
        if warned.len() < WARNED_KEYS_MAX && warned.insert(key.to_owned()) {
            tracing::warn!(cache = %self.name, key = self.shown(key), error = %self.chain(e), "an entry does not decode; read as absent");
        } else {
            tracing::debug!(cache = %self.name, key = self.shown(key), error = %self.chain(e), "an entry does not decode; read as absent");
        }
    }

    /// A `get` that missed the L1.
    pub(crate) async fn fetch(&self, key: K) -> Result<Option<V>> {
        let read = self.read(&key, false).await;
        match self.answer(&key, read)? {
            Some(v) => Ok(Some(v)),
            None => self.missing(key).await,
        }
    }

    /// [`Core::fetch`] for the blocking front.
    pub(crate) fn fetch_blocking(&self, key: K) -> Result<Option<V>> {
        let read = self.read_blocking(&key, false, Why::Call).0;
        match self.answer(&key, read)? {
            Some(v) => Ok(Some(v)),
            None if self.default.is_none() => Ok(None),
            None => block_on(self.rt(), self.missing(key)),
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

    /// The TTL a write gets: its own, else the cache's, plus the stale window and the jitter.
    fn write_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        let base = ttl.or(self.ttl)? + self.stale_for.unwrap_or_default();
        Some(match self.jitter {
            Some(j) => base + jitter_below(j),
            None => base,
        })
    }

    pub(crate) fn absent_ttl(&self) -> Option<Duration> {
        self.absent_ttl
    }

    pub(crate) async fn set(&self, key: K, value: V) -> Result<()> {
        self.write(key, value, None, false).await.map(drop)
    }

    /// `SET` (with `NX` when `only_new`), with the entry's TTL; ends a remembered absence.
    /// Says whether the value was written.
    pub(crate) async fn write(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        only_new: bool,
    ) -> Result<bool> {
        self.write_tagged(key, value, ttl, only_new, &[]).await
    }

    /// [`Core::write`], adding the entry to the index of each of `tags` (see `tags`).
    pub(crate) async fn write_tagged(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        only_new: bool,
        tags: &[String],
    ) -> Result<bool> {
        self.write_with(key, value, ttl, only_new, tags, None).await
    }

    /// A load's fill of `key`: [`Core::write_tagged`], if nothing wrote the key since the
    /// read that noted `seen` (see `remote/fill.rs`). Says whether it was stored; a skipped
    /// fill is counted, and leaves the L1 to what Redis holds.
    pub(crate) async fn fill(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        tags: &[String],
        seen: &Seen,
    ) -> Result<bool> {
        let stored = if seen.too_old() {
            false
        } else {
            self.write_with(key.clone(), value, ttl, false, tags, Some(seen))
                .await?
        };
        if !stored {
            self.skipped(&key);
        }
        Ok(stored)
    }

    /// A fill that found the key written since its read: counted, logged, and the L1 entry
    /// left to the next read.
    fn skipped(&self, key: &K) {
        Counters::bump(&self.counters.fills_skipped);
        let rkey = self.trace_keys.then(|| self.rkey(key));
        tracing::debug!(cache = %self.name, key = rkey.as_deref(), "a load's fill was skipped: the key was written since the load read it");
    }

    async fn write_with(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        only_new: bool,
        tags: &[String],
        seen: Option<&Seen>,
    ) -> Result<bool> {
        let rkey = redis_key(&self.prefix, &key);
        let bytes = self.encode(&rkey, &value)?;
        let marker = self.marker(&rkey, true);
        let mut guard = WriteGuard::begin(&self.local, vec![key]);
        let start = Instant::now();
        let ttl = self.write_ttl(ttl);
        let indexes = crate::tags::index_keys(&self.name, tags);
        let result = self
            .round_trip("set", Some(&rkey), |c| {
                // Decided once connected: whether the connection tracks keys (then Redis
                // echoes the write, see `local/coherence.rs`).
                let retrack = self.retrack();
                guard.sending(retrack);
                let cond = seen.map(|seen| Cond {
                    seen,
                    marker: marker.as_deref(),
                });
                let write = remote::Write {
                    key: &rkey,
                    value: &bytes,
                    ttl,
                    only_new,
                    clear: if cond.is_some() {
                        None
                    } else {
                        marker.as_deref()
                    },
                    retrack,
                    cond,
                };
                let indexes = &indexes;
                // A fill is sent by SHA1: loaded first if Redis does not know it.
                remote::fill::with_scripts(c, move |c| async move {
                    if indexes.is_empty() {
                        remote::set(c, write).await
                    } else {
                        crate::tags::set(c, write, indexes).await
                    }
                })
            })
            .await;
        self.remote.registry.local_write(rkey.as_bytes(), self.id());
        match result {
            // A conditional fill is a script. Under broadcast tracking, whether Redis pushes a
            // script's write back to the connection that ran it despite `NOLOOP` depends on
            // the server (7.0 does), so the L1 cannot count on either: it is left to the next
            // read. Key-based tracking accounts for the echo exactly (`retrack`).
            Ok(true) if seen.is_some() && self.tracked && !self.retrack() => {
                Counters::bump(&self.counters.sets);
                drop(guard);
                Ok(true)
            }
            Ok(true) => {
                Counters::bump(&self.counters.sets);
                guard.finish(vec![(value, bytes.len())], ttl.map(|t| start + t));
                Ok(true)
            }
            // Not written (NX, or a fill that found the key written since its read): the key
            // holds someone else's value; the guard drops ours.
            Ok(false) => Ok(false),
            Err(f) => {
                drop(guard);
                Err(self.fail(Some(&rkey), f))
            }
        }
    }

    /// Stores `loaded` (its value, TTL and tags) under `key`, listed under `tags` too: what a
    /// memoized function's cache is given directly (`<fn>_prime`, `MemoCache::set`), `tags`
    /// being the function's own.
    pub(crate) async fn write_loaded(
        &self,
        key: K,
        loaded: Loaded<V>,
        mut tags: Vec<String>,
    ) -> Result<()> {
        let Loaded {
            value,
            ttl,
            tags: own,
        } = loaded;
        tags.extend(own);
        self.write_tagged(key, value, ttl, false, &tags)
            .await
            .map(drop)
    }

    /// Remembers in Redis that the loader found nothing for `key` (`cache_absent`), if
    /// nothing wrote the key since the read that noted `seen`; says whether it did.
    pub(crate) async fn write_absent(&self, key: &K, seen: &Seen) -> Result<bool> {
        let Some(ttl) = self.absent_ttl else {
            return Ok(false);
        };
        let rkey = redis_key(&self.prefix, key);
        let marker = absent_key(&rkey);
        let written = !seen.too_old()
            && self
                .round_trip("set_absent", Some(&rkey), |c| {
                    let cond = Cond {
                        seen,
                        marker: Some(&marker),
                    };
                    remote::fill::fill_absent(c, &rkey, cond, ttl)
                })
                .await
                .map_err(|f| self.fail(Some(&rkey), f))?;
        if !written {
            self.skipped(key);
        }
        Ok(written)
    }

    /// The remaining TTL of `key` in Redis (`None`: no such key, or no TTL).
    pub(crate) async fn ttl_of(&self, key: K) -> Result<Option<Duration>> {
        let rkey = redis_key(&self.prefix, &key);
        self.round_trip("pttl", Some(&rkey), |c| remote::pttl(c, &rkey))
            .await
            .map(|ms| ms.map(Duration::from_millis))
            .map_err(|f| self.fail(Some(&rkey), f))
    }

    pub(crate) async fn delete(&self, key: K) -> Result<bool> {
        let rkey = redis_key(&self.prefix, &key);
        let marker = self.marker(&rkey, true);
        let guard = WriteGuard::begin(&self.local, vec![key.clone()]);
        // Gone from the L1 before Redis can push the delete back: that push, were it to find
        // the entry, would count as someone else's write.
        self.local.invalidate(&key);
        // A trace even when the key is absent: a load of it in flight must not fill it after
        // this delete (see `remote/fill.rs`).
        let token = remote::fill::token();
        let result = self
            .round_trip("del", Some(&rkey), |c| {
                remote::fill::delete(c, &rkey, &token, marker.as_deref())
            })
            .await;
        self.remote.registry.local_write(rkey.as_bytes(), self.id());
        drop(guard);
        result.map_err(|f| self.fail(Some(&rkey), f))
    }

    /// Runs `op`, which deletes the Redis keys `rkeys` of this cache, with their L1 entries
    /// held as being written (a read in flight cannot fill them back), and drops them from
    /// this process's L1s (Redis may tell them later, or never: `NOLOOP` when broadcasting).
    pub(crate) async fn removing<T>(&self, rkeys: &[String], op: impl Future<Output = T>) -> T {
        let keys: Vec<K> = rkeys
            .iter()
            .filter_map(|r| r.strip_prefix(self.prefix.as_str()).and_then(K::parse_key))
            .collect();
        let guard = WriteGuard::begin(&self.local, keys.clone());
        // As for `delete`: gone before Redis can push the deletes back.
        for key in &keys {
            self.local.invalidate(key);
        }
        let out = op.await;
        for rkey in rkeys {
            self.remote.registry.local_write(rkey.as_bytes(), self.id());
        }
        drop(guard);
        out
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
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
        self.round_trip("exists", Some(&rkey), |c| remote::exists(c, &rkey))
            .await
            .map_err(|f| self.fail(Some(&rkey), f))
    }

    /// Whether the L1 holds `key` fresh and verified: `contains` without Redis.
    pub(crate) fn holds_fresh<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        !self.unverified.load(Ordering::Relaxed) && self.local.holds_fresh(key)
    }

    /// Whether the caller must read values to say what `get` would find: stale values and,
    /// under `decode_errors_as_misses`, undecodable ones read as absent.
    fn judges_values(&self) -> bool {
        self.stale_for.is_some() || self.decode_misses
    }

    /// Whether `get` of the key read as `fetched` would return a value (nothing is counted,
    /// filled or warned about; an undecodable value counts in `decode_errors`).
    fn visible(&self, rkey: &str, fetched: &Fetched) -> bool {
        let Some(bytes) = &fetched.value else {
            return false;
        };
        let stale = self
            .stale_for
            .is_some_and(|s| fetched.pttl.is_some_and(|ms| Duration::from_millis(ms) < s));
        let undecodable = self.decode_misses && self.decode(rkey, bytes).is_err();
        !(stale || undecodable)
    }

    /// `contains` past the L1: whether `get` would find a value in Redis. One `EXISTS`, or,
    /// when stale or undecodable entries read as absent, the value and its TTL.
    pub(crate) async fn contains(&self, key: K) -> Result<bool> {
        if !self.judges_values() {
            return self.exists(key).await;
        }
        let rkey = redis_key(&self.prefix, &key);
        let fetched = self
            .round_trip("get", Some(&rkey), |c| {
                remote::get(c, &rkey, ReadMode::WithTtl, Also::default(), false)
            })
            .await
            .map_err(|f| self.fail(Some(&rkey), f))?;
        Ok(self.visible(&rkey, &fetched))
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
            .round_trip("pexpire", Some(&rkey), |c| remote::pexpire(c, &rkey, ttl))
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

    /// Reads `keys` again (fail-safe revalidation after a reconnect, refresh-on-get's TTL renewal
    /// under key-based tracking), in one pipelined pass,
    /// filling the L1 with what Redis holds now.
    async fn refill(&self, keys: Vec<K>) {
        let (mode, mut fill) = self.read_fill(&keys);
        let rkeys: Vec<String> = keys.iter().map(|k| self.rkey(k)).collect();
        let start = Instant::now();
        let fetched = match self
            .round_trip("mget", None, |c| {
                let retrack = self.retrack();
                fill.sending(retrack);
                remote::get_many(c, &rkeys, mode, retrack)
            })
            .await
        {
            Ok(f) => f,
            Err(f) => {
                let e = self.fail(None, f);
                tracing::debug!(cache = %self.name, error = %self.chain(&e), "reading keys again (revalidation, TTL renewal) failed");
                return;
            }
        };
        let found = rkeys
            .iter()
            .zip(fetched)
            .map(|(rkey, f)| {
                let bytes = f.value?;
                let value = self.decode(rkey, &bytes).ok()?;
                let deadline = f.pttl.map(|ms| start + Duration::from_millis(ms));
                Some((value, bytes.len(), deadline))
            })
            .collect();
        fill.fill(&keys, found);
    }

    /// Renews the Redis TTL of keys read from the L1 (refresh-on-get), in one round trip. With
    /// key-based tracking Redis echoes a `PEXPIRE`, which would drop the entry (it cannot be
    /// told from another client's write while the entry is kept): the keys are read again with
    /// `GETEX` instead (see [`Core::refill`]), which renews their TTL and fills them anew.
    async fn refresh_batch(&self, keys: Vec<K>) {
        let Some(ttl) = self.ttl else { return };
        if self.retrack() {
            return self.refill(keys).await;
        }
        let tickets: Vec<Ticket> = keys
            .iter()
            .map(|k| self.local.read_ticket(self.local.hash(k)))
            .collect();
        let rkeys: Vec<String> = keys.iter().map(|k| redis_key(&self.prefix, k)).collect();
        let start = Instant::now();
        match self
            .round_trip("pexpire", None, |c| remote::pexpire_many(c, &rkeys, ttl))
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
                tracing::debug!(cache = %self.name, error = %self.chain(&e), "background TTL refresh failed; will retry on a later hit");
            }
        }
    }

    /// This cache's keys in Redis: those under `{name}:` that parse as `K`, minus those of
    /// other caches of this process whose names nest inside this one (`p` vs `p:q`).
    async fn own_keys(&self) -> Result<Vec<(Vec<u8>, K)>> {
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let raw = self
            .round_trip("scan", None, |c| remote::scan(c, &pattern))
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
        Ok(self.visible_keys().await?.len())
    }

    pub(crate) async fn keys(&self) -> Result<Vec<K>> {
        Ok(self
            .visible_keys()
            .await?
            .into_iter()
            .map(|(_, k)| k)
            .collect())
    }

    /// This cache's keys that `get` would find: [`Core::own_keys`], less (when stale or
    /// undecodable entries read as absent) those whose value `get` would not return, read in
    /// pipelines of [`VISIBLE_BATCH`] keys (a `GET` and a `PTTL` each).
    async fn visible_keys(&self) -> Result<Vec<(Vec<u8>, K)>> {
        let keys = self.own_keys().await?;
        if !self.judges_values() {
            return Ok(keys);
        }
        let mut out = Vec::with_capacity(keys.len());
        for batch in keys.chunks(VISIBLE_BATCH) {
            let rkeys: Vec<String> = batch
                .iter()
                .map(|(raw, _)| String::from_utf8_lossy(raw).into_owned())
                .collect();
            let fetched = self
                .round_trip("mget", None, |c| {
                    remote::get_many(c, &rkeys, ReadMode::WithTtl, false)
                })
                .await
                .map_err(|f| self.fail(None, f))?;
            for ((entry, rkey), f) in batch.iter().zip(&rkeys).zip(&fetched) {
                if self.visible(rkey, f) {
                    out.push(entry.clone());
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn clear(&self) -> Result<usize> {
        // The clear traces first: a load that read before them does not fill after them, and
        // whatever filled before them is listed below (see `remote/fill.rs`).
        let token = remote::fill::token();
        self.round_trip("set", None, |c| {
            remote::fill::set_cleared(c, &self.name, &token)
        })
        .await
        .map_err(|f| self.fail(None, f))?;
        let keys: Vec<Vec<u8>> = self
            .own_keys()
            .await?
            .into_iter()
            .map(|(raw, _)| raw)
            .collect();
        let result = self
            .round_trip("unlink", None, |c| remote::unlink(c, &keys))
            .await;
        self.local.flush();
        self.remote.registry.local_clear(&self.prefix, self.id());
        let removed = result.map_err(|f| self.fail(None, f))?;
        if self.absent_ttl.is_some() {
            self.clear_absences().await?;
        }
        Ok(removed)
    }

    /// Deletes this cache's absence markers (not those of caches nested in its name).
    async fn clear_absences(&self) -> Result<()> {
        // `__flipcache__:absent:{tag}{name}:{key}`: the tag first, then this cache's prefix.
        let pattern = format!("{}{{*}}{}*", escape_glob(ABSENT), escape_glob(&self.prefix));
        let raw = self
            .round_trip("scan", None, |c| remote::scan(c, &pattern))
            .await
            .map_err(|f| self.fail(None, f))?;
        let nested = self.remote.registry.nested_prefixes(&self.prefix);
        let markers: Vec<Vec<u8>> = raw
            .into_iter()
            .filter(|k| {
                crate::slot::untagged(ABSENT.as_bytes(), k).is_some_and(|rkey| {
                    rkey.starts_with(self.prefix.as_bytes())
                        && !nested.iter().any(|n| rkey.starts_with(n.as_bytes()))
                })
            })
            .collect();
        self.round_trip("unlink", None, |c| remote::unlink(c, &markers))
            .await
            .map(drop)
            .map_err(|f| self.fail(None, f))
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
        let wanted: Vec<K> = missing.iter().map(|&i| keys[i].clone()).collect();
        let (mode, mut fill) = self.read_fill(&wanted);
        let rkeys: Vec<String> = wanted.iter().map(|k| redis_key(&self.prefix, k)).collect();
        let start = Instant::now();
        let fetched = self
            .round_trip("mget", None, |c| {
                let retrack = self.retrack();
                fill.sending(retrack);
                remote::get_many(c, &rkeys, mode, retrack)
            })
            .await
            .map_err(|f| self.fail(None, f))?;
        // Decoded first, the L1 filled, then the defaults of what is missing (which may write).
        let mut found: Vec<Found<V>> = Vec::with_capacity(wanted.len());
        let mut undecodable: Vec<bool> = Vec::with_capacity(wanted.len());
        // Stale values fill the L1 (loader paths serve them) and read as absent, as for `get`.
        let mut stale: Vec<bool> = Vec::with_capacity(wanted.len());
        for (rkey, f) in rkeys.iter().zip(fetched) {
            stale.push(
                self.stale_for
                    .is_some_and(|s| f.pttl.is_some_and(|ms| Duration::from_millis(ms) < s)),
            );
            let Some(bytes) = f.value else {
                found.push(None);
                undecodable.push(false);
                continue;
            };
            match self.decode(rkey, &bytes) {
                Ok(value) => {
                    let deadline = f.pttl.map(|ms| start + Duration::from_millis(ms));
                    found.push(Some((value, bytes.len(), deadline)));
                    undecodable.push(false);
                }
                Err(e) if self.decode_misses => {
                    self.warn_undecodable(&e);
                    found.push(None);
                    undecodable.push(true);
                }
                Err(e) => return Err(e),
            }
        }
        let values: Vec<Option<V>> = found
            .iter()
            .zip(&stale)
            .map(|(f, &stale)| f.as_ref().filter(|_| !stale).map(|(v, _, _)| v.clone()))
            .collect();
        fill.fill(&wanted, found);
        for ((&i, value), undecodable) in missing.iter().zip(values).zip(undecodable) {
            match value {
                Some(value) => {
                    Counters::bump(&self.counters.remote_hits);
                    out[i] = Some(value);
                }
                None => {
                    if !undecodable {
                        Counters::bump(&self.counters.misses);
                    }
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
        let mut guard = WriteGuard::begin(&self.local, keys);
        let start = Instant::now();
        // One jitter for the batch would let it expire together: each key gets its own.
        let ttls: Vec<Option<Duration>> = encoded.iter().map(|_| self.write_ttl(None)).collect();
        let result = self
            .round_trip("mset", None, |c| {
                let retrack = self.retrack();
                guard.sending(retrack);
                remote::set_many(c, &encoded, &ttls, retrack)
            })
            .await;
        for (rkey, _) in &encoded {
            self.remote.registry.local_write(rkey.as_bytes(), self.id());
        }
        match result {
            Ok(()) => {
                self.counters
                    .sets
                    .fetch_add(encoded.len() as u64, Ordering::Relaxed);
                let deadlines = ttls.iter().map(|t| t.map(|t| start + t)).collect();
                guard.finish_each(values, deadlines);
                Ok(())
            }
            Err(f) => {
                drop(guard);
                Err(self.fail(None, f))
            }
        }
    }

    /// Keeps `value` in the L1 only (Redis unreachable: a fail-open load). It expires with its
    /// TTL, if any, and is dropped by any later write or invalidation as usual.
    pub(crate) fn put_local(&self, key: K, value: V, ttl: Option<Duration>) {
        let ticket = self.local.begin_write(self.local.hash(&key));
        let deadline = self.write_ttl(ttl).map(|t| Instant::now() + t);
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
        #[cfg(feature = "metrics")]
        {
            let mut stats = Stats::default();
            self.observe.meter.publish(|| {
                stats = self.read_stats();
                (stats, ErrorKind::ALL.map(|k| self.counters.errors_of(k)))
            });
            stats
        }
        #[cfg(not(feature = "metrics"))]
        self.read_stats()
    }

    fn read_stats(&self) -> Stats {
        let mut stats = self.counters.snapshot(self.local.hits());
        stats.stale_served += self.local.stale_hits();
        stats.evictions = self.local.evictions();
        stats.local_entries = self.local.held() as u64;
        stats.local_bytes = self.local.weight() as u64;
        stats
    }

    pub(crate) fn expire_time(&self) -> Option<Duration> {
        self.ttl
    }
}

#[cfg(feature = "metrics")]
impl<K: FlipKey, V: Clone + Send + Sync + 'static> crate::metrics::Publish for Core<K, V> {
    fn publish(&self) {
        self.stats();
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Core<K, V> {
    /// `{prefix}{suffix}` changed in Redis: lease waiters look again, listeners are told.
    fn changed(&self, suffix: &[u8]) {
        if let Some(leases) = &self.leases {
            leases.changed(suffix);
        }
        self.observe.events.emit(|| Event::Invalidated {
            cache: self.name.clone(),
            key: format!("{}{}", self.prefix, String::from_utf8_lossy(suffix)),
        });
    }
}

impl<K: FlipKey, V: Clone + Send + Sync + 'static> Sink for Core<K, V> {
    fn invalidate(&self, suffix: &[u8]) {
        if let Some(key) = std::str::from_utf8(suffix).ok().and_then(K::parse_key) {
            self.local.invalidate(&key);
        }
        self.changed(suffix);
    }

    fn pushed(&self, suffix: &[u8]) {
        let heard = match std::str::from_utf8(suffix).ok().and_then(K::parse_key) {
            Some(key) => self.local.hear(&key),
            None => Heard::Invalidated { dropped: false },
        };
        match heard {
            Heard::Invalidated { dropped } => {
                // Counted as an entry the L1 lost, as evictions are: a push of a key it does
                // not hold (broadcast tracking pushes every write under the prefix; an echo of
                // this process's own script that the L1 could not count on) changes nothing.
                if dropped {
                    Counters::bump(&self.counters.invalidations);
                }
                self.changed(suffix);
            }
            // This process's own write: its waiters may read it.
            Heard::Echo => {
                if let Some(leases) = &self.leases {
                    leases.changed(suffix);
                }
            }
        }
    }

    fn flush(&self) {
        if let Some(leases) = &self.leases {
            leases.all_changed();
        }
        self.local.flush();
        self.unverified.store(false, Ordering::Release);
        // Counted once done, so whoever sees the count sees the L1 emptied.
        Counters::bump(&self.counters.flushes);
        self.observe.events.emit(|| Event::Flushed {
            cache: self.name.clone(),
        });
    }

    fn disconnected(&self) {
        self.observe.disconnected();
        // The echoes of writes sent on it are lost with it.
        self.local.forget_echoes();
        if self.fail_safe && self.local.enabled() {
            // Kept, but served only as fail-safe values until revalidated.
            self.unverified.store(true, Ordering::Release);
            if let Some(leases) = &self.leases {
                leases.all_changed();
            }
        } else {
            self.flush();
        }
    }

    fn connected(self: Arc<Self>) {
        // Writes sent on an earlier connection are not counted on to echo on this one.
        self.local.forget_echoes();
        self.health.healthy(&self.name);
        self.observe.connected(&self.name);
        // Without fail-safe the L1 was emptied when the last connection was lost (or never had
        // one): whatever it holds now was kept while Redis was unreachable. With fail-safe it
        // holds what it had before the outage too. Either way nothing of it is verified: it is
        // dropped now, before the connection serves anything, and (fail-safe) read again from
        // Redis in one pipelined pass.
        let keys = if self.fail_safe {
            self.local.keys()
        } else {
            Vec::new()
        };
        if self.local.len() > 0 {
            self.flush();
        }
        self.unverified.store(false, Ordering::Release);
        if !keys.is_empty() {
            let me = self.clone();
            self.rt().spawn(async move { me.refill(keys).await });
        }
    }
}

impl<K, V> Drop for Core<K, V> {
    fn drop(&mut self) {
        if let Some(id) = self.id.get() {
            self.remote.registry.leave(*id);
        }
    }
}

/// What a load's read noted (`traces` asked for), from its reply.
fn seen_of(traces: Option<TraceKeys>, fetched: &Fetched, at: Instant) -> Option<Seen> {
    let keys = traces?;
    let [trace, cleared] = fetched.traces.clone()?;
    Some(Arc::new(Noted {
        keys,
        value: fetched.value.clone(),
        trace,
        cleared,
        at,
    }))
}

/// A random duration in `0..max` (write jitter).
fn jitter_below(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(fastrand::u64(0..nanos))
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
