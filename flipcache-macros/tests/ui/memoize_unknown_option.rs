use flipcache::flipcache;

#[flipcache(nmae = "typo", expire = 60)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
