use flipcache::flipcache;

#[flipcache(name = "orders", tags = ["user:{user_id}", "org:{org}", "all:{}"])]
fn orders(user: u64, org: u32) -> Vec<u64> {
    vec![user, u64::from(org)]
}

#[flipcache(name = "bad_tags", tags = "user:{user}")]
fn profile(user: u64) -> u64 {
    user
}

fn main() {}
