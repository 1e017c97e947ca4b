//! Redis Cluster hash slots, and keys of our own that sit in a given key's slot.
//!
//! A conditional fill (see `remote/fill.rs`) reads and writes, in one script, a value key
//! `{name}:{key}` and keys flipcache keeps beside the layout (its write trace, its absence
//! marker): on a cluster a script may touch one slot only. [`same_slot`] builds such a key: a
//! hash tag (`{...}`) chosen so that it hashes to the value key's slot, whatever the value key
//! holds (braces included), followed by the value key itself, so the key stays unique and
//! readable. The tags are the shortest decimal numbers that reach each of the 16,384 slots,
//! found once per process (about 170,000 CRC16s of 1 to 6 bytes, well under 10 ms).

use std::sync::OnceLock;

/// The number of hash slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The part of `key` that Redis Cluster hashes: the text between the first `{` and the first
/// `}` after it when that text is not empty, else the whole key.
fn hashed(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The hash slot of `key`, as Redis Cluster computes it.
pub(crate) fn slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hashed(key)) % SLOTS
}

/// For each slot, the smallest number whose decimal text hashes to it.
fn tags() -> &'static [u32] {
    static TAGS: OnceLock<Vec<u32>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; usize::from(SLOTS)];
        let mut left = usize::from(SLOTS);
        let mut n: u32 = 0;
        let mut buf = itoa::Buffer::new();
        while left > 0 {
            let s = slot(buf.format(n).as_bytes());
            let tag = &mut tags[usize::from(s)];
            if *tag == u32::MAX {
                *tag = n;
                left -= 1;
            }
            n += 1;
        }
        tags
    })
}

/// Appends the hash tag of slot `s` (`{n}`) to `out`.
pub(crate) fn push_tag(out: &mut String, s: u16) {
    let n = tags()[usize::from(s % SLOTS)];
    out.push('{');
    out.push_str(itoa::Buffer::new().format(n));
    out.push('}');
}

/// `{prefix}{tag}{rkey}`: a key in `rkey`'s hash slot, unique per `rkey` and `prefix`.
pub(crate) fn same_slot(prefix: &str, rkey: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 8 + rkey.len());
    out.push_str(prefix);
    push_tag(&mut out, slot(rkey.as_bytes()));
    out.push_str(rkey);
    out
}

/// `{prefix}{tag}` followed by `name` for slot `s`.
pub(crate) fn in_slot(prefix: &str, s: u16, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 8 + name.len());
    out.push_str(prefix);
    push_tag(&mut out, s);
    out.push_str(name);
    out
}

/// The text after the tag of a key built by [`same_slot`] or [`in_slot`] with `prefix`.
pub(crate) fn untagged<'a>(prefix: &[u8], key: &'a [u8]) -> Option<&'a [u8]> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(b"{")?;
    let close = rest.iter().position(|&b| b == b'}')?;
    Some(&rest[close + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_hash_tags() {
        // From the Redis Cluster specification.
        assert_eq!(slot(b"123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(hashed(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hashed(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hashed(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hashed(b"no}brace{"), b"no}brace{");
    }

    #[test]
    fn every_slot_has_a_tag_that_hashes_to_it() {
        for s in 0..SLOTS {
            let mut key = String::new();
            push_tag(&mut key, s);
            key.push_str("anything{x}");
            assert_eq!(slot(key.as_bytes()), s);
        }
    }

    #[test]
    fn same_slot_keys_share_the_slot_of_any_key() {
        for rkey in [
            "users:7",
            "u:{tag}x",
            "u:}odd{",
            "u:{}empty",
            "u:{{x}}",
            "names:é",
            "",
        ] {
            let k = same_slot("__flipcache__:w:", rkey);
            assert_eq!(slot(k.as_bytes()), slot(rkey.as_bytes()), "{rkey}");
            assert_eq!(
                untagged(b"__flipcache__:w:", k.as_bytes()),
                Some(rkey.as_bytes())
            );
        }
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn slots_agree_with_redis_rs() {
        for rkey in ["a", "users:7", "u:{tag}x", "u:}odd{", "u:{}e", "{{x}}"] {
            assert_eq!(
                redis::cluster_routing::Slot::new(slot(rkey.as_bytes())),
                Some(redis::cluster_routing::Slot::for_key(rkey.as_bytes()))
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn same_slot_holds_for_any_text(rkey in ".{0,24}") {
            let k = same_slot("__flipcache__:absent:", &rkey);
            proptest::prop_assert_eq!(slot(k.as_bytes()), slot(rkey.as_bytes()));
        }
    }
}
