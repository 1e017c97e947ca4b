use flipcache::flipcache;

#[derive(Clone)]
struct Report {
    lines: Vec<String>,
}

struct Id(u32);

// A return type with no default encoding: derive FlipCodec, implement FlipValue, or add `json`.
#[flipcache]
fn report(n: u64) -> Report {
    Report { lines: vec![n.to_string()] }
}

// An argument that cannot be part of a key: implement MemoKey, or give a `key = ...`.
#[flipcache]
fn name_of(id: Id) -> String {
    id.0.to_string()
}

fn main() {}
