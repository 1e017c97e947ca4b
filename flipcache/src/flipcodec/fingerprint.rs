//! [`Fingerprint`]: the `const` FNV-1a-64 hash behind [`FlipCodec::FINGERPRINT`].
//!
//! [`FlipCodec::FINGERPRINT`]: super::FlipCodec::FINGERPRINT

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a-64 of `bytes`, usable in `const` context.
///
/// ```
/// use flipcache::flipcodec::fnv1a64;
/// // The reference test vectors of FNV-1a-64.
/// assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
/// const H: u64 = fnv1a64(b"foobar");
/// assert_eq!(H, 0x8594_4171_f739_67e8);
/// ```
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    extend(OFFSET, bytes)
}

const fn extend(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// A `const` builder for schema fingerprints: FNV-1a-64 over a sequence of strings and numbers,
/// each length-prefixed so that `("ab", "c")` and `("a", "bc")` hash differently.
///
/// `#[derive(FlipCodec)]` builds a type's [`FINGERPRINT`](super::FlipCodec::FINGERPRINT) with
/// it; use it for hand-written [`FlipCodec`](super::FlipCodec) impls too.
///
/// ```
/// use flipcache::flipcodec::Fingerprint;
/// const A: u64 = Fingerprint::new().str("ab").str("c").finish();
/// const B: u64 = Fingerprint::new().str("a").str("bc").finish();
/// assert_ne!(A, B);
/// const C: u64 = Fingerprint::new().str("Wrapper").u64(A).finish();
/// assert_ne!(C, Fingerprint::new().str("Wrapper").u64(B).finish());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// An empty fingerprint (the FNV-1a offset basis).
    ///
    /// ```
    /// use flipcache::flipcodec::{fnv1a64, Fingerprint};
    /// assert_eq!(Fingerprint::new().finish(), fnv1a64(b""));
    /// ```
    pub const fn new() -> Self {
        Self(OFFSET)
    }

    /// Mixes in a string (its length, then its bytes).
    ///
    /// ```
    /// use flipcache::flipcodec::Fingerprint;
    /// assert_ne!(Fingerprint::new().str("a").finish(), Fingerprint::new().finish());
    /// ```
    pub const fn str(self, s: &str) -> Self {
        let bytes = s.as_bytes();
        let hash = extend(self.0, &(bytes.len() as u64).to_le_bytes());
        Self(extend(hash, bytes))
    }

    /// Mixes in a number, such as a nested type's fingerprint.
    ///
    /// ```
    /// use flipcache::flipcodec::Fingerprint;
    /// assert_ne!(Fingerprint::new().u64(1).finish(), Fingerprint::new().u64(2).finish());
    /// ```
    pub const fn u64(self, n: u64) -> Self {
        Self(extend(self.0, &n.to_le_bytes()))
    }

    /// The 64-bit hash.
    ///
    /// ```
    /// use flipcache::flipcodec::Fingerprint;
    /// const F: u64 = Fingerprint::new().str("Shape").finish();
    /// assert_ne!(F, 0);
    /// ```
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_vectors() {
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn is_length_prefixed_and_order_sensitive() {
        let ab = Fingerprint::new().str("a").str("b").finish();
        let ba = Fingerprint::new().str("b").str("a").finish();
        let joined = Fingerprint::new().str("ab").finish();
        assert_ne!(ab, ba);
        assert_ne!(ab, joined);
        assert_ne!(
            Fingerprint::new().str("").finish(),
            Fingerprint::new().finish()
        );
    }
}
