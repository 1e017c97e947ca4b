//! Keys: how a key type becomes the `{key}` part of the Redis key `{name}:{key}`, and back.

use std::hash::Hash;

/// A type usable as a cache key.
///
/// The Redis key of an entry is `{name}:{key}`, where `{key}` is what [`FlipKey::write_key`]
/// writes: the plain text for strings and decimal digits for integers, exactly as the Python
/// original writes them, so a Python and a Rust service can share a cache.
/// [`FlipKey::parse_key`] is the inverse, used by [`keys`](crate::FlipCache::keys) and to route
/// invalidations; `parse_key(write_key(k))` must give back `k`.
///
/// Implement it for your own key types:
///
/// ```
/// use flipcache::FlipKey;
///
/// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
/// struct UserId(u32);
///
/// impl FlipKey for UserId {
///     fn write_key(&self, out: &mut String) {
///         use std::fmt::Write;
///         let _ = write!(out, "u{}", self.0);
///     }
///     fn parse_key(text: &str) -> Option<Self> {
///         text.strip_prefix('u')?.parse().ok().map(UserId)
///     }
/// }
///
/// let mut out = String::new();
/// UserId(7).write_key(&mut out);
/// assert_eq!(out, "u7");
/// assert_eq!(UserId::parse_key("u7"), Some(UserId(7)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cache key: it does not implement `flipcache::FlipKey`",
    label = "not a cache key",
    note = "keys are strings, integers, `bool`, `char` or `Arc<str>`; for a type of your own, \
            implement `flipcache::FlipKey` (`write_key` gives the text after `{{name}}:`, \
            `parse_key` reads it back), or key the cache by that text (`String`)"
)]
pub trait FlipKey: Hash + Eq + Clone + Send + Sync + 'static {
    /// Appends this key's text form to `out`.
    fn write_key(&self, out: &mut String);
    /// Reads a key back from its text form; `None` when `text` is not one.
    fn parse_key(text: &str) -> Option<Self>;
}

impl FlipKey for String {
    fn write_key(&self, out: &mut String) {
        out.push_str(self);
    }
    fn parse_key(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl FlipKey for std::sync::Arc<str> {
    fn write_key(&self, out: &mut String) {
        out.push_str(self);
    }
    fn parse_key(text: &str) -> Option<Self> {
        Some(text.into())
    }
}

impl FlipKey for char {
    fn write_key(&self, out: &mut String) {
        out.push(*self);
    }
    fn parse_key(text: &str) -> Option<Self> {
        let mut chars = text.chars();
        let c = chars.next()?;
        chars.next().is_none().then_some(c)
    }
}

impl FlipKey for bool {
    fn write_key(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
    fn parse_key(text: &str) -> Option<Self> {
        match text {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl FlipKey for $t {
            #[inline]
            fn write_key(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }
            fn parse_key(text: &str) -> Option<Self> {
                // Only the canonical form: `parse` would also take "+7" and "007".
                let v: $t = text.parse().ok()?;
                (itoa::Buffer::new().format(v) == text).then_some(v)
            }
        }
    )*};
}
int_keys!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// Builds `{name}:{key}` into a fresh string.
pub(crate) fn redis_key<K: FlipKey>(prefix: &str, key: &K) -> String {
    let mut out = String::with_capacity(prefix.len() + 24);
    out.push_str(prefix);
    key.write_key(&mut out);
    out
}

/// The namespace of the keys flipcache keeps beside the `{name}:{key}` layout (absence
/// markers, and later leases and tag indexes). No cache name may start with it, so Python
/// FlipCache readers, `len`, `keys` and `clear` never see these keys.
pub(crate) const RESERVED: &str = "__flipcache__";

/// The namespace of absence markers (`cache_absent`).
pub(crate) const ABSENT: &str = "__flipcache__:absent:";

/// The absence marker of the value key `rkey` (`cache_absent`):
/// `__flipcache__:absent:{tag}{rkey}`, in `rkey`'s hash slot (see `slot.rs`), so a load's
/// conditional fill can check the value and write the marker in one script on a cluster too.
pub(crate) fn absent_key(rkey: &str) -> String {
    crate::slot::same_slot(ABSENT, rkey)
}

/// The namespace of write traces (see [`trace_key`]).
pub(crate) const TRACE: &str = "__flipcache__:w:";

/// The write trace of the value key `rkey`: `__flipcache__:w:{tag}{rkey}`, in `rkey`'s hash
/// slot. A `delete` sets it to a fresh token (for [`TRACE_TTL`]) before deleting the key, so a
/// load that read the key before the delete sees, when it fills, that the key was written
/// since, even if the key was absent all along (see `remote/fill.rs`).
pub(crate) fn trace_key(rkey: &str) -> String {
    crate::slot::same_slot(TRACE, rkey)
}

/// How long a write trace (and a `clear` trace) lives. A load whose read found no value and
/// whose fill comes later than this cannot tell whether a trace came and went meanwhile: its
/// fill is skipped (see `remote/fill.rs`).
pub(crate) const TRACE_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// The namespace of `clear` traces.
pub(crate) const CLEARED: &str = "__flipcache__:cleared:";

/// The `clear` trace of cache `name` that a fill of a key in hash slot `slot` checks: one key
/// per cache on one server (`slot` is `None`), one per slot and cache on a cluster
/// (`__flipcache__:cleared:{tag}{name}`).
pub(crate) fn cleared_key(name: &str, slot: Option<u16>) -> String {
    match slot {
        None => format!("{CLEARED}{name}"),
        Some(s) => crate::slot::in_slot(CLEARED, s, name),
    }
}

/// Tags as the cache keeps them: any list of strings (`&["a"]`, `["a"]`, a `Vec<String>`), the
/// one shape `set_with_tags` and `Loaded::tags` take.
pub(crate) fn tag_list(tags: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    tags.into_iter().map(|t| t.as_ref().to_owned()).collect()
}

/// The lease key of the value key `rkey` (`distributed_lock`).
pub(crate) fn lease_key(rkey: &str) -> String {
    let mut out = String::with_capacity(RESERVED.len() + 7 + rkey.len());
    out.push_str(RESERVED);
    out.push_str(":lease:");
    out.push_str(rkey);
    out
}

/// Escapes the glob characters of `text` for a `SCAN MATCH` pattern.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_in_canonical_form_only() {
        assert_eq!(redis_key("n:", &123u64), "n:123");
        assert_eq!(redis_key("n:", &-5i32), "n:-5");
        assert_eq!(u64::parse_key("123"), Some(123));
        assert_eq!(u64::parse_key("+123"), None);
        assert_eq!(u64::parse_key("0123"), None);
        assert_eq!(u64::parse_key("abc"), None);
        assert_eq!(i8::parse_key("-128"), Some(-128));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
        assert_eq!(escape_glob("plain:name"), "plain:name");
    }

    #[test]
    fn char_and_bool_keys() {
        assert_eq!(char::parse_key("x"), Some('x'));
        assert_eq!(char::parse_key("xy"), None);
        assert_eq!(bool::parse_key("true"), Some(true));
    }
}
