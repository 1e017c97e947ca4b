//! The seed's JSON example: serde values stored as JSON text, readable by the Python original's
//! `value_type="json"`.

use flipcache::{FlipCache, et};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Items {
    foo: i64,
    bar: bool,
    baz: Vec<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UserData {
    state: i64,
    orders: Vec<i64>,
    items: Items,
}

fn main() -> flipcache::Result<()> {
    let user_data = FlipCache::<String, UserData>::builder("user_data")
        .local_max(100)
        .expire_time(et::THREE_DAYS)
        .json()
        .build()?;

    let mut data = UserData {
        state: 1,
        orders: vec![1, 2, 3, 4],
        items: Items {
            foo: 1,
            bar: true,
            baz: vec![],
        },
    };

    // Store data
    user_data.set("some-uuid", data.clone())?;
    println!("{:?}", user_data.get("some-uuid")?);

    // Update data
    data.state = 2;
    data.items.bar = false;
    user_data.set("some-uuid", data)?;
    println!("{:?}", user_data.get("some-uuid")?);

    // Delete data
    user_data.delete("some-uuid")?;
    println!("{:?}", user_data.get("some-uuid")?); // None

    // Untyped JSON works too.
    let raw = FlipCache::<String, serde_json::Value>::builder("user_data")
        .json()
        .build()?;
    raw.set(
        "other-uuid",
        serde_json::json!({"state": 1, "orders": [1, 2]}),
    )?;
    println!("{}", raw.get("other-uuid")?.unwrap_or_default());
    raw.delete("other-uuid")?;
    Ok(())
}
