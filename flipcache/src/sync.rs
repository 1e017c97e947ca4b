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

#[cfg(not(feature = "shuttle"))]
pub(crate) use crate::lock::lock;

/// Locks `m`, ignoring poison (see [`crate::lock`]), for `shuttle`'s mutex.
#[cfg(feature = "shuttle")]
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
