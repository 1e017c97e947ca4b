// A key type that is not a `FlipKey`: the error says which types are keys and how to make one.
use flipcache::FlipCache;

#[derive(Clone, Hash, PartialEq, Eq)]
struct UserId(u64);

fn main() {
    let _cache = FlipCache::<UserId, u64>::new("users");
}
