use flipcache::flipcache;

#[flipcache]
struct Cache {
    size: usize,
}

fn main() {}
