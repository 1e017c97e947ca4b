//! TLS: `rediss://` URLs and clients built with a CA certificate, against a private TLS-only
//! redis-server (`support::Server::start_tls`: certificates made by redis-test's helpers).
//! Needs the `tls` feature.

mod support;

use std::time::{Duration, Instant};

use flipcache::FlipCache;
use redis::{Commands, TlsCertificates};
use support::Server;

#[test]
fn tls_with_a_ca_certificate_and_with_an_insecure_url() {
    let (server, ca) = Server::start_tls();
    let port = server.port();
    let client = redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{port}"),
        TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .unwrap();
    let c: FlipCache<String, String> = FlipCache::builder("tls")
        .redis_client(client.clone())
        .build()
        .unwrap();
    c.set("k", "v").unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
    // Coherence over TLS: a foreign write is pushed to us.
    let before = c.stats().invalidations;
    let _: () = client.get_connection().unwrap().set("tls:k", "w").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.stats().invalidations == before {
        assert!(Instant::now() < deadline, "no push over TLS");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(c.get("k").unwrap().as_deref(), Some("w"));

    let insecure: FlipCache<String, String> = FlipCache::builder("tls")
        .redis_url(&format!("rediss://127.0.0.1:{port}/#insecure"))
        .build()
        .unwrap();
    assert_eq!(insecure.get("k").unwrap().as_deref(), Some("w"));
}

#[test]
fn plain_text_to_a_tls_port_fails_fast_with_a_clear_error() {
    let (server, _ca) = Server::start_tls();
    let port = server.port();
    let start = Instant::now();
    let err = FlipCache::<String, String>::builder("tls_plain")
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(1))
        .redis_url(&format!("redis://127.0.0.1:{port}"))
        .build()
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.is_remote(), "{err}");
    assert_eq!(err.cache(), "tls_plain");
}
