use flipcache::flipcache;

#[flipcache(name = "a", local_max = 10, name = "b", json, json)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
