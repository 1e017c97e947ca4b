use flipcache::flipcache;

#[flipcache(local_max = "100")]
fn a(n: u64) -> u64 {
    n
}

#[flipcache(local_max = 1.5)]
fn b(n: u64) -> u64 {
    n
}

#[flipcache(local_max = -1)]
fn c(n: u64) -> u64 {
    n
}

#[flipcache(local_max_bytes = "1 MiB")]
fn d(n: u64) -> u64 {
    n
}

fn main() {}
