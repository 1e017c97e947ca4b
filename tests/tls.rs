//! TLS: `rediss://` URLs and clients built with a CA certificate, against a private TLS-only
//! redis-server (certificates made by redis-test's helpers). Needs the `tls` feature.

use std::time::{Duration, Instant};

use flipcache::FlipCache;
use redis::{Commands, ConnectionAddr, TlsCertificates};
use redis_test::server::RedisServer;

fn tls_server() -> (RedisServer, u16, Vec<u8>) {
    let port = redis_test::utils::get_random_available_port();
    let addr = ConnectionAddr::TcpTls {
        host: "127.0.0.1".into(),
        port,
        insecure: true,
        tls_params: None,
    };
    let server = RedisServer::new_with_addr_tls_modules_and_spawner(
        addr,
        None,
        None,
        false,
        None,
        &[],
        |cmd| {
            cmd.stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn redis-server")
        },
    );
    let ca = std::fs::read(&server.tls_paths.as_ref().expect("tls paths").ca_crt).expect("CA");
    // Wait until it accepts TLS connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = redis::Client::open(format!("rediss://127.0.0.1:{port}/#insecure"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok();
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "TLS redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port, ca)
}

#[test]
fn tls_with_a_ca_certificate_and_with_an_insecure_url() {
    let (_server, port, ca) = tls_server();
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
    let (_server, port, _ca) = tls_server();
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
