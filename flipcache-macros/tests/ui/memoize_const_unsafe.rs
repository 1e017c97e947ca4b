use flipcache::flipcache;

#[flipcache]
const fn double(n: u64) -> u64 {
    n * 2
}

#[flipcache]
unsafe fn read(p: usize) -> u64 {
    p as u64
}

#[flipcache]
extern "C" fn ext(n: u64) -> u64 {
    n
}

fn main() {}
