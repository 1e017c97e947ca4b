use flipcache::flipcache;

#[flipcache(expire_time = "1h")]
fn a(n: u64) -> u64 {
    n
}

#[flipcache(expire_time = 0, timeout_ms = 0)]
fn b(n: u64) -> u64 {
    n
}

#[flipcache(name = "", json = true)]
fn c(n: u64) -> u64 {
    n
}

#[flipcache(refresh_expire_time_on_get, name = 5)]
fn d(n: u64) -> u64 {
    n
}

fn main() {}
