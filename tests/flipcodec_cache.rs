//! `#[derive(FlipCodec)]` types as cache values, against a real Redis: the stored format, and
//! what a reader sees when the stored bytes come from another version of the type or from
//! another client.

mod support;

use flipcache::FlipCodec;
use support::Server;

mod v1 {
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq, Default)]
    pub struct Shape {
        pub name: String,
        pub dimensions: Vec<f64>,
        pub edges: i64,
        pub area: f64,
    }
}

mod v2 {
    /// `v1::Shape` after a deploy that added a field.
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq, Default)]
    pub struct Shape {
        pub name: String,
        pub dimensions: Vec<f64>,
        pub edges: i64,
        pub area: f64,
        pub color: Option<String>,
    }
}

fn womp() -> v1::Shape {
    v1::Shape {
        name: "womp".into(),
        dimensions: vec![4.1, 3.4],
        edges: 6,
        area: 16.38,
    }
}

#[test]
fn derived_values_round_trip_through_redis_with_a_version_header() {
    let server = Server::start();
    let shapes = server
        .builder::<u64, v1::Shape>("fc_round_trip")
        .local_max(0)
        .build()
        .expect("cache");
    shapes.set(123, womp()).unwrap();
    assert_eq!(shapes.get(&123).unwrap(), Some(womp()));
    assert_eq!(shapes.get(&321).unwrap(), None);

    let raw: Vec<u8> = redis::cmd("GET")
        .arg("fc_round_trip:123")
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(raw[0], flipcache::flipcodec::VALUE_HEADER);
    assert_eq!(raw[1..9], v1::Shape::FINGERPRINT.to_le_bytes());
    assert_eq!(raw[9..], flipcache::to_bytes(&womp()));
}

#[test]
fn a_value_from_another_version_of_the_type_is_a_decode_error_then_a_miss_to_refill() {
    let server = Server::start();
    let old = server
        .builder::<u64, v1::Shape>("fc_versions")
        .local_max(0)
        .build()
        .expect("cache");
    old.set(1, womp()).unwrap();

    let new = server
        .builder::<u64, v2::Shape>("fc_versions")
        .local_max(0)
        .build()
        .expect("cache");
    let err = new.get(&1).unwrap_err();
    assert!(err.is_decode(), "{err}");
    // The message names the cache and the key; the decoder's error is its source.
    let source = std::error::Error::source(&err).expect("the decoder's error");
    let message = format!("{err}: {source}");
    assert!(
        message.contains("written by a different version of `Shape`"),
        "{message}"
    );
    assert!(message.contains("fc_versions:1"), "{message}");

    // The recipe from the docs: treat it as a miss, recompute, overwrite.
    let fresh = v2::Shape {
        name: "womp".into(),
        color: Some("teal".into()),
        ..Default::default()
    };
    let value = match new.get(&1) {
        Ok(Some(v)) => v,
        Ok(None) | Err(_) => {
            new.set(1, fresh.clone()).unwrap();
            fresh.clone()
        }
    };
    assert_eq!(value, fresh);
    assert_eq!(new.get(&1).unwrap(), Some(fresh));
    // And now the old build is the one that cannot read it.
    assert!(old.get(&1).unwrap_err().is_decode());
}

#[test]
fn text_written_by_another_client_is_a_decode_error_naming_the_type() {
    let server = Server::start();
    let shapes = server
        .builder::<u64, v1::Shape>("fc_foreign")
        .local_max(0)
        .build()
        .expect("cache");
    let _: () = redis::cmd("SET")
        .arg("fc_foreign:7")
        .arg(r#"{"name": "womp"}"#)
        .query(&mut server.raw())
        .unwrap();
    let err = shapes.get(&7).unwrap_err();
    assert!(err.is_decode());
    let source = std::error::Error::source(&err).expect("the decoder's error");
    assert!(
        source
            .to_string()
            .contains("not a FlipCodec value of `Shape`"),
        "{err}: {source}"
    );
}
