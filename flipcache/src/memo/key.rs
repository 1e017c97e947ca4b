//! [`MemoKey`]: how a memoized function's arguments become the `{key}` of `{name}:{key}`.
//!
//! The text must be stable across processes, builds and platforms (it is what another process
//! looks up), injective for each function's argument types (two different argument lists never
//! share an entry), and readable in `redis-cli`. So:
//!
//! - one integer argument is its decimal digits (`fib:42`), one string argument is the string
//!   itself (`user:alice`);
//! - several arguments are joined with `,`; inside them (and inside lists, tuples and options)
//!   a string escapes `\ , ( ) [ ] ~` with a backslash (`greet:a\,b,3`);
//! - lists are `[a,b]`, tuples `(a,b)`, `None` is `~`.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// A type that can be (part of) a memoized function's cache key.
///
/// [`write_key`](MemoKey::write_key) writes the *composable* form: the one used when the value
/// sits next to others (several arguments, an element of a list or tuple), where it must not
/// be confused with a separator. [`write_alone`](MemoKey::write_alone) writes the form used
/// when the value is a function's only argument; it defaults to `write_key`, and strings and
/// `char`s override it to write themselves unescaped.
///
/// Implemented for integers, floats, `bool`, `char`, `str`, `String`, references, `Box`, `Rc`,
/// `Arc`, `Cow`, `Option` (`None` is `~`), slices, arrays and `Vec` (`[a,b]`) and tuples up to
/// twelve (`(a,b)`). Implement it for your own argument types; to keep keys unambiguous, write
/// any string you embed with [`write_escaped_key`], and do not start the text with `~`.
///
/// ```
/// use flipcache::MemoKey;
///
/// struct UserId(u32);
///
/// impl MemoKey for UserId {
///     fn write_key(&self, out: &mut String) {
///         out.push('u');
///         self.0.write_key(out);
///     }
/// }
///
/// let mut out = String::new();
/// UserId(7).write_key(&mut out);
/// assert_eq!(out, "u7");
///
/// let mut out = String::new();
/// ("a,b", vec![1, 2], None::<u8>).write_key(&mut out);
/// assert_eq!(out, r"(a\,b,[1,2],~)");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a `#[flipcache]` key",
    label = "this argument's type does not implement `flipcache::MemoKey`",
    note = "implement `flipcache::MemoKey` for it, or choose the key yourself with \
            `#[flipcache(key = ...)]`"
)]
pub trait MemoKey {
    /// Appends the composable form of `self` to `out`.
    ///
    /// ```
    /// use flipcache::MemoKey;
    /// let mut out = String::new();
    /// "a,b".write_key(&mut out);
    /// assert_eq!(out, r"a\,b");
    /// ```
    fn write_key(&self, out: &mut String);

    /// Appends the form used when `self` is a function's only argument (by default the same
    /// as [`write_key`](MemoKey::write_key)).
    ///
    /// ```
    /// use flipcache::MemoKey;
    /// let mut out = String::new();
    /// "a,b".write_alone(&mut out);
    /// assert_eq!(out, "a,b");
    /// ```
    #[inline]
    fn write_alone(&self, out: &mut String) {
        self.write_key(out)
    }

    /// Calls `f` with the [`write_alone`](MemoKey::write_alone) form of `self` when it can be
    /// had without allocating (a string `self` holds, an integer formatted on the stack), so
    /// a single-argument call looks its key up without building a `String`. Returns `None`
    /// (the default) when it cannot; the key is then written with `write_alone`.
    ///
    /// ```
    /// use flipcache::MemoKey;
    /// assert_eq!("alice".with_alone_str(str::len), Some(5));
    /// assert_eq!(42u8.with_alone_str(|s| s.to_owned()), Some("42".to_owned()));
    /// assert_eq!(true.with_alone_str(|s| s.to_owned()), None);
    /// ```
    #[inline]
    fn with_alone_str<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        let _ = f;
        None
    }
}

/// Appends `text` with the characters that structure a composite key (`\ , ( ) [ ] ~`)
/// escaped by a backslash: what [`MemoKey::write_key`] does for strings.
///
/// ```
/// let mut out = String::new();
/// flipcache::write_escaped_key(r"a,b\c", &mut out);
/// assert_eq!(out, r"a\,b\\c");
/// ```
pub fn write_escaped_key(text: &str, out: &mut String) {
    let special = |c: char| matches!(c, '\\' | ',' | '(' | ')' | '[' | ']' | '~');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

impl MemoKey for str {
    #[inline]
    fn write_key(&self, out: &mut String) {
        write_escaped_key(self, out);
    }
    #[inline]
    fn write_alone(&self, out: &mut String) {
        out.push_str(self);
    }
    #[inline]
    fn with_alone_str<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        Some(f(self))
    }
}

impl MemoKey for String {
    #[inline]
    fn write_key(&self, out: &mut String) {
        write_escaped_key(self, out);
    }
    #[inline]
    fn write_alone(&self, out: &mut String) {
        out.push_str(self);
    }
    #[inline]
    fn with_alone_str<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        Some(f(self))
    }
}

impl MemoKey for char {
    fn write_key(&self, out: &mut String) {
        write_escaped_key(self.encode_utf8(&mut [0; 4]), out);
    }
    fn write_alone(&self, out: &mut String) {
        out.push(*self);
    }
}

impl MemoKey for bool {
    #[inline]
    fn write_key(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl MemoKey for $t {
            #[inline]
            fn write_key(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }
            #[inline]
            fn with_alone_str<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
                Some(f(itoa::Buffer::new().format(*self)))
            }
        }
    )*};
}
int_keys!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

macro_rules! float_keys {
    ($($t:ty),*) => {$(
        impl MemoKey for $t {
            /// The shortest text that reads back exactly (`0.1`, `-0`, `inf`, `NaN`).
            fn write_key(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}
float_keys!(f32, f64);

macro_rules! forward_keys {
    ($($(#[$m:meta])* [$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)*> MemoKey for $t {
            #[inline]
            fn write_key(&self, out: &mut String) {
                (**self).write_key(out)
            }
            #[inline]
            fn write_alone(&self, out: &mut String) {
                (**self).write_alone(out)
            }
            #[inline]
            fn with_alone_str<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
                (**self).with_alone_str(f)
            }
        }
    )*};
}
forward_keys!(
    [T: MemoKey + ?Sized] &T,
    [T: MemoKey + ?Sized] &mut T,
    [T: MemoKey + ?Sized] Box<T>,
    [T: MemoKey + ?Sized] Rc<T>,
    [T: MemoKey + ?Sized] Arc<T>,
    [T: MemoKey + ToOwned + ?Sized] Cow<'_, T>,
);

/// `None` is `~`; `Some(x)` is `x`, with a `~` in front when `x` itself starts with one (so
/// `Some(None)` is `~~`, never `~`).
impl<T: MemoKey> MemoKey for Option<T> {
    fn write_key(&self, out: &mut String) {
        match self {
            None => out.push('~'),
            Some(v) => {
                let start = out.len();
                v.write_key(out);
                if out[start..].starts_with('~') {
                    out.insert(start, '~');
                }
            }
        }
    }
}

/// `[a,b]`; an element whose text is empty (an empty string) is written `\0`, so `[""]` is
/// not `[]`.
impl<T: MemoKey> MemoKey for [T] {
    fn write_key(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let start = out.len();
            v.write_key(out);
            if out.len() == start {
                out.push_str("\\0");
            }
        }
        out.push(']');
    }
}

impl<T: MemoKey, const N: usize> MemoKey for [T; N] {
    fn write_key(&self, out: &mut String) {
        self.as_slice().write_key(out)
    }
}

impl<T: MemoKey> MemoKey for Vec<T> {
    fn write_key(&self, out: &mut String) {
        self.as_slice().write_key(out)
    }
}

macro_rules! tuple_keys {
    ($(($($n:tt $t:ident),+))*) => {$(
        impl<$($t: MemoKey),+> MemoKey for ($($t,)+) {
            fn write_key(&self, out: &mut String) {
                out.push('(');
                $(
                    if $n > 0 {
                        out.push(',');
                    }
                    self.$n.write_key(out);
                )+
                out.push(')');
            }
        }
    )*};
}
tuple_keys! {
    (0 A)
    (0 A, 1 B)
    (0 A, 1 B, 2 C)
    (0 A, 1 B, 2 C, 3 D)
    (0 A, 1 B, 2 C, 3 D, 4 E)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L)
}

/// Writes a function's only argument (or its `key = ...` value).
#[inline]
pub fn write_alone<T: MemoKey + ?Sized>(out: &mut String, v: &T) {
    v.write_alone(out)
}

/// Writes one of several arguments; `first` is false for all but the first.
#[inline]
pub fn write_part<T: MemoKey + ?Sized>(out: &mut String, first: bool, v: &T) {
    if !first {
        out.push(',');
    }
    v.write_key(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part<T: MemoKey + ?Sized>(v: &T) -> String {
        let mut out = String::new();
        v.write_key(&mut out);
        out
    }

    fn alone<T: MemoKey + ?Sized>(v: &T) -> String {
        let mut out = String::new();
        v.write_alone(&mut out);
        out
    }

    #[test]
    fn single_arguments_are_readable() {
        assert_eq!(alone(&42u64), "42");
        assert_eq!(alone(&-7i8), "-7");
        assert_eq!(alone("alice"), "alice");
        assert_eq!(alone(&&"a,b"), "a,b");
        assert_eq!(alone(&String::from("x(y)")), "x(y)");
        assert_eq!(alone(&'~'), "~");
        assert_eq!(alone(&true), "true");
        assert_eq!(alone(&0.1f64), "0.1");
        assert_eq!(alone(&u128::MAX), u128::MAX.to_string());
    }

    #[test]
    fn composite_forms_escape_their_structure() {
        assert_eq!(part(r"a,b\c"), r"a\,b\\c");
        assert_eq!(part("[x]~(y)"), r"\[x\]\~\(y\)");
        assert_eq!(part(&vec!["a", "b,c"]), r"[a,b\,c]");
        assert_eq!(part(&[1u8, 2, 3]), "[1,2,3]");
        assert_eq!(part(&(1, "x", Some(2))), "(1,x,2)");
        assert_eq!(part(&None::<u8>), "~");
        assert_eq!(part(&Some("~")), r"\~");
        assert_eq!(part(&Some(None::<u8>)), "~~");
        assert_eq!(part(&Some(Some(None::<u8>))), "~~~");
        assert_eq!(part(&vec![""]), r"[\0]");
        assert_eq!(part(&Vec::<String>::new()), "[]");
        assert_eq!(part(&Box::new(5u16)), "5");
        assert_eq!(part(&Cow::Borrowed("a,")), r"a\,");
    }

    #[test]
    fn composite_forms_are_injective_on_tricky_inputs() {
        // Values of one type that a naive join would confuse.
        let lists: Vec<Vec<&str>> = vec![
            vec![],
            vec![""],
            vec!["", ""],
            vec![","],
            vec!["a", "b"],
            vec!["a,b"],
            vec!["\\", ""],
            vec!["\\,"],
            vec!["]"],
            vec!["a]", "b"],
        ];
        let mut seen = std::collections::HashSet::new();
        for l in &lists {
            assert!(seen.insert(part(l)), "collision for {l:?}");
        }
        let options = [
            None,
            Some(None),
            Some(Some("")),
            Some(Some("~")),
            Some(Some("~~")),
        ];
        let mut seen = std::collections::HashSet::new();
        for o in &options {
            assert!(seen.insert(part(o)), "collision for {o:?}");
        }
        let pairs = [("a,", "b"), ("a", ",b"), ("a\\", ",b"), ("a", "\\,b")];
        let mut seen = std::collections::HashSet::new();
        for (a, b) in pairs {
            let mut out = String::new();
            a.write_key(&mut out);
            out.push(',');
            b.write_key(&mut out);
            assert!(seen.insert(out), "collision for {a:?}, {b:?}");
        }
    }
}
