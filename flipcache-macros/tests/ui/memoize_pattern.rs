use flipcache::flipcache;

#[flipcache]
fn sum((a, b): (u64, u64)) -> u64 {
    a + b
}

#[flipcache]
fn ignored(_: u64, ref name: String) -> usize {
    name.len()
}

fn main() {}
