//! The locks and atomics the L1's coherence protocol and the single-flight are built on: the
//! standard library's, or with the `shuttle` feature (model-checked tests only) `shuttle`'s, so
//! those tests can explore every interleaving of them.

#[cfg(not(feature = "shuttle"))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(not(feature = "shuttle"))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(feature = "shuttle")]
pub(crate) use shuttle::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(feature = "shuttle")]
pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard};

/// Locks `m`, ignoring poison: every critical section guarded this way leaves its data whole
/// even if it panics part way (single assignments and map operations), so a poisoned lock is
/// safe to keep using.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
