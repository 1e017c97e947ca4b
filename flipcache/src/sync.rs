//! Lock helpers shared by the crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section in this crate is a single assignment
/// or map operation, so a panic elsewhere cannot leave the data half-updated.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
