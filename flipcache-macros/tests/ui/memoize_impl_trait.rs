use flipcache::flipcache;

#[flipcache]
fn length(text: impl AsRef<str>) -> usize {
    text.as_ref().len()
}

#[flipcache]
fn digits(n: u64) -> impl std::fmt::Display {
    n
}

fn main() {}
