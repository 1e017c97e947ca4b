//! What a memoized function stores: its return value's encoding, and which part of the
//! return value is cached (its shape).

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::time::Duration;

use crate::codec::{DefaultCodec, JsonCodec, ValueCodec};
use crate::load::Loaded;
use crate::value::FlipValue;

/// A type `#[flipcache]` can store with its default encoding: every [`FlipValue`]. (Its own
/// trait only to say, when a type is not one, what to do about it.)
#[diagnostic::on_unimplemented(
    message = "`#[flipcache]` cannot store `{Self}`: it has no default encoding",
    label = "the cached part of this return type does not implement `flipcache::FlipValue`",
    note = "derive `flipcache::FlipCodec` for it, implement `flipcache::FlipValue`, or add \
            `json` to the attribute to store it as JSON (serde)"
)]
pub trait Storable: FlipValue {}

impl<T: FlipValue> Storable for T {}

/// The default encoding ([`FlipValue`]) of a memoized function's return value.
pub fn default_codec<V: Storable>() -> &'static dyn ValueCodec<V> {
    &DefaultCodec
}

/// JSON (`json`) for a memoized function's return value.
pub fn json_codec<V>() -> &'static dyn ValueCodec<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    &JsonCodec
}

// ---- return shapes ---------------------------------------------------------------------------

/// Which part of a return value is cached: all of it ([`Whole`]), the `Ok` of a `Result`
/// ([`OkOnly`]), the `Some` of an `Option` ([`SomeOnly`]), or the `Ok(Some)` of a
/// `Result<Option<T>, E>` ([`OkSome`]). The macro picks one from the return type.
pub trait Shape<R> {
    /// What is stored.
    type Value;
    /// The part to store, if this result is cached at all.
    fn cacheable(r: &R) -> Option<&Self::Value>;
    /// A stored value as a result.
    fn wrap(v: Self::Value) -> R;
    /// Whether `r` says "not found" (`None`, `Ok(None)`), for `cache_absent`.
    #[inline]
    fn is_absent(_r: &R) -> bool {
        false
    }
    /// "Not found" as a result, for shapes that have one.
    #[inline]
    fn absent() -> Option<R> {
        None
    }
    /// The entry settings the body chose (a `Loaded<T>` return).
    #[inline]
    fn settings(_r: &R) -> Option<(Option<Duration>, Vec<String>)> {
        None
    }
}

/// The whole return value is cached.
#[derive(Debug)]
pub struct Whole;
/// Only `Ok` values are cached.
#[derive(Debug)]
pub struct OkOnly;
/// Only `Some` values are cached (and `None`, with `cache_absent`).
#[derive(Debug)]
pub struct SomeOnly;
/// A [`Loaded`] return: its value is cached with the TTL and tags the body chose.
#[derive(Debug)]
pub struct Entry;
/// A `Result<Loaded<T>, E>` return: as [`Entry`], on `Ok`.
#[derive(Debug)]
pub struct OkEntry;
/// Only `Ok(Some)` values are cached (and `Ok(None)`, with `cache_absent`).
#[derive(Debug)]
pub struct OkSome;

impl<R> Shape<R> for Whole {
    type Value = R;
    #[inline]
    fn cacheable(r: &R) -> Option<&R> {
        Some(r)
    }
    #[inline]
    fn wrap(v: R) -> R {
        v
    }
}

impl<T, E> Shape<Result<T, E>> for OkOnly {
    type Value = T;
    #[inline]
    fn cacheable(r: &Result<T, E>) -> Option<&T> {
        r.as_ref().ok()
    }
    #[inline]
    fn wrap(v: T) -> Result<T, E> {
        Ok(v)
    }
}

impl<T> Shape<Option<T>> for SomeOnly {
    type Value = T;
    #[inline]
    fn cacheable(r: &Option<T>) -> Option<&T> {
        r.as_ref()
    }
    #[inline]
    fn wrap(v: T) -> Option<T> {
        Some(v)
    }
    #[inline]
    fn is_absent(r: &Option<T>) -> bool {
        r.is_none()
    }
    #[inline]
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
}

impl<T> Shape<Loaded<T>> for Entry {
    type Value = T;
    #[inline]
    fn cacheable(r: &Loaded<T>) -> Option<&T> {
        Some(&r.value)
    }
    #[inline]
    fn wrap(v: T) -> Loaded<T> {
        Loaded::new(v)
    }
    #[inline]
    fn settings(r: &Loaded<T>) -> Option<(Option<Duration>, Vec<String>)> {
        Some((r.ttl, r.tags.clone()))
    }
}

impl<T, E> Shape<Result<Loaded<T>, E>> for OkEntry {
    type Value = T;
    #[inline]
    fn cacheable(r: &Result<Loaded<T>, E>) -> Option<&T> {
        r.as_ref().ok().map(|l| &l.value)
    }
    #[inline]
    fn wrap(v: T) -> Result<Loaded<T>, E> {
        Ok(Loaded::new(v))
    }
    #[inline]
    fn settings(r: &Result<Loaded<T>, E>) -> Option<(Option<Duration>, Vec<String>)> {
        r.as_ref().ok().map(|l| (l.ttl, l.tags.clone()))
    }
}

impl<T, E> Shape<Result<Option<T>, E>> for OkSome {
    type Value = T;
    #[inline]
    fn cacheable(r: &Result<Option<T>, E>) -> Option<&T> {
        r.as_ref().ok()?.as_ref()
    }
    #[inline]
    fn wrap(v: T) -> Result<Option<T>, E> {
        Ok(Some(v))
    }
    #[inline]
    fn is_absent(r: &Result<Option<T>, E>) -> bool {
        matches!(r, Ok(None))
    }
    #[inline]
    fn absent() -> Option<Result<Option<T>, E>> {
        Some(Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cache_the_right_part() {
        assert_eq!(<Whole as Shape<u8>>::cacheable(&3), Some(&3));
        let ok: Result<u8, String> = Ok(4);
        let err: Result<u8, String> = Err("no".into());
        assert_eq!(OkOnly::cacheable(&ok), Some(&4));
        assert_eq!(OkOnly::cacheable(&err), None);
        assert_eq!(<OkOnly as Shape<Result<u8, String>>>::wrap(5), Ok(5));
        assert_eq!(SomeOnly::cacheable(&Some(1u8)), Some(&1));
        assert_eq!(SomeOnly::cacheable(&None::<u8>), None);
        assert!(SomeOnly::is_absent(&None::<u8>));
        let found: Result<Option<u8>, String> = Ok(Some(2));
        let none: Result<Option<u8>, String> = Ok(None);
        assert_eq!(OkSome::cacheable(&found), Some(&2));
        assert!(OkSome::is_absent(&none) && !OkSome::is_absent(&found));
        assert_eq!(
            <OkSome as Shape<Result<Option<u8>, String>>>::absent(),
            Some(Ok(None))
        );
        assert!(!<OkOnly as Shape<Result<u8, String>>>::is_absent(&err));
    }
}
