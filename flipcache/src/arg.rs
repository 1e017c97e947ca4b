//! [`Arg`]: what `set` and friends accept, so literals infer and `&str` works for `String`.

/// A value that can be passed where a `T` is stored: `T` itself, or a borrowed string for
/// `String`.
///
/// This is what lets `cache.set("k", "v")` compile on a `FlipCache<String, String>` and
/// `nums.set(123, 246)` compile on a `FlipCache<u64, u64>` (an `Into<T>` bound cannot infer an
/// integer literal's type).
///
/// ```
/// use flipcache::Arg;
/// fn takes<A: Arg<String>>(a: A) -> String { a.into_arg() }
/// assert_eq!(takes("x"), "x");
/// assert_eq!(takes(String::from("y")), "y");
/// fn num<A: Arg<u64>>(a: A) -> u64 { a.into_arg() }
/// assert_eq!(num(5), 5);
/// ```
pub trait Arg<T> {
    /// Converts into the stored type.
    fn into_arg(self) -> T;
}

impl<T> Arg<T> for T {
    #[inline]
    fn into_arg(self) -> T {
        self
    }
}

impl Arg<String> for &str {
    #[inline]
    fn into_arg(self) -> String {
        self.to_owned()
    }
}

/// A reference to a stored type: a clone of it (so `cache.set(1, &user)` keeps `user`, as
/// cache-aside code wants).
///
/// ```
/// use flipcache::Arg;
/// fn takes<A: Arg<Vec<u8>>>(a: A) -> Vec<u8> { a.into_arg() }
/// let kept = vec![1u8, 2];
/// assert_eq!(takes(&kept), kept);
/// ```
impl<T: Clone> Arg<T> for &T {
    #[inline]
    fn into_arg(self) -> T {
        self.clone()
    }
}

impl Arg<String> for &mut str {
    #[inline]
    fn into_arg(self) -> String {
        (*self).to_owned()
    }
}

impl Arg<std::sync::Arc<str>> for &str {
    #[inline]
    fn into_arg(self) -> std::sync::Arc<str> {
        self.into()
    }
}
