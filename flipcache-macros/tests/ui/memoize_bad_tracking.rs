use flipcache::flipcache;

#[flipcache(tracking = "bcast")]
fn a(n: u64) -> u64 {
    n
}

#[flipcache(tracking = flipcache::Tracking::Keys)]
fn b(n: u64) -> u64 {
    n
}

fn main() {}
