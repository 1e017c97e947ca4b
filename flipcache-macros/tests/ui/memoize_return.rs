use flipcache::flipcache;

#[flipcache]
fn nothing(n: u64) {
    let _ = n;
}

#[flipcache]
fn unit(n: u64) -> () {
    let _ = n;
}

#[flipcache]
fn borrowed(text: &str) -> &str {
    text
}

#[flipcache]
fn cow<'a>(text: &'a str) -> std::borrow::Cow<'a, str> {
    text.into()
}

struct Point(u64);

impl Point {
    #[flipcache]
    fn make(n: u64) -> Option<Self> {
        Some(Point(n))
    }
}

fn main() {}
