use flipcache::flipcache;

#[flipcache]
fn first<T: Clone>(items: Vec<T>) -> usize {
    items.len()
}

#[flipcache]
fn fixed<const N: usize>(items: [u8; N]) -> usize {
    items.len()
}

#[flipcache]
fn bounded<'a, T>(items: &'a [T]) -> usize
where
    T: Clone,
{
    items.len()
}

fn main() {}
