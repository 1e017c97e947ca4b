//! The seed's custom-type example with hand-written closures, as in Python. (Its
//! `"name||dims||edges||area"` format breaks on names containing `||`; see the `derive_codec`
//! example for the robust way.)

use flipcache::FlipCache;

#[derive(Clone, Debug, Default, PartialEq)]
struct Shape {
    name: String,
    dimensions: Vec<f64>,
    edges: i64,
    area: f64,
}

impl Shape {
    fn new(name: &str, dimensions: Vec<f64>, edges: i64, area: f64) -> Shape {
        let area = if area == 0.0 && dimensions.len() >= 2 {
            dimensions[0] * dimensions[1]
        } else {
            area
        };
        Shape {
            name: name.to_string(),
            dimensions,
            edges,
            area,
        }
    }
}

fn encode_shape(shape: &Shape) -> String {
    format!(
        "{}||{:?}||{}||{}",
        shape.name, shape.dimensions, shape.edges, shape.area
    )
}

fn decode_shape(shape: &str) -> Result<Shape, String> {
    let data: Vec<&str> = shape.split("||").collect();
    let [name, dims, edges, area] = data[..] else {
        return Err(format!("expected 4 fields, found {}", data.len()));
    };
    let dimensions = dims
        .trim_matches(['[', ']'])
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.trim().parse::<f64>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shape {
        name: name.to_string(),
        dimensions,
        edges: edges.parse().map_err(|e| format!("edges: {e}"))?,
        area: area.parse().map_err(|e| format!("area: {e}"))?,
    })
}

fn main() -> flipcache::Result<()> {
    let my_shape = Shape::new("womp", vec![4.1, 3.4], 6, 16.38);
    let shape2 = Shape::new("wat", vec![11.0, 22.0], 0, 0.0);

    let custom = FlipCache::<u64, Shape>::builder("custom")
        .local_max(0)
        .value_default(Shape::new("default", vec![], 0, 0.0))
        .value_encoder(encode_shape)
        .value_decoder(decode_shape)
        .build()?;

    custom.set(123, my_shape)?;
    custom.set(456, shape2)?;

    println!("{:?}", custom.get(&123)?); // Some(Shape { name: "womp", dimensions: [4.1, 3.4], edges: 6, area: 16.38 })
    println!("{:?}", custom.get(&321)?); // Some(Shape { name: "default", dimensions: [], edges: 0, area: 0.0 })
    println!("{:?}", custom.get(&456)?); // Some(Shape { name: "wat", dimensions: [11.0, 22.0], edges: 0, area: 242.0 })
    Ok(())
}
