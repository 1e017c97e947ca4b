//! `#[derive(FlipCodec)]`: your own type as a cache value, stored in a compact binary form
//! that carries a fingerprint of the type's shape (a value written by an older version of
//! `Shape` is a decode error, never a wrong `Shape`).
//!
//! Needs a Redis at `FLIPCACHE_REDIS_URL` (default `redis://127.0.0.1:6379`):
//! `cargo run --example derive_codec`

use flipcache::{FlipCache, FlipCodec};

#[derive(FlipCodec, Default, Clone, Debug)]
struct Shape {
    name: String,
    dimensions: Vec<f64>,
    edges: i64,
    area: f64,
}

impl Shape {
    /// A shape; an `area` of 0 is computed from the first two dimensions.
    fn new(name: &str, dimensions: Vec<f64>, edges: i64, area: f64) -> Self {
        let area = match dimensions.as_slice() {
            [w, h, ..] if area == 0.0 => w * h,
            _ => area,
        };
        Shape {
            name: name.to_string(),
            dimensions,
            edges,
            area,
        }
    }
}

fn main() -> flipcache::Result<()> {
    let custom = FlipCache::<u64, Shape>::builder("custom")
        .local_max(0)
        .value_default(Shape::default())
        .build()?;
    custom.clear()?;

    let womp = Shape::new("womp", vec![4.1, 3.4], 6, 16.38);
    println!(
        "womp encodes to {} bytes (Redis also stores a 9-byte version header)",
        flipcache::to_bytes(&womp).len()
    );
    custom.set(123, womp)?;
    custom.set(456, Shape::new("square", vec![2.0, 2.0], 4, 0.0))?;

    for key in [123, 321, 456] {
        match custom.get(&key)? {
            Some(shape) => println!("{key}: {shape:?}"),
            None => println!("{key}: None"),
        }
    }
    Ok(())
}
