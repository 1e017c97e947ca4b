//! A small web service over flipcache, the way one is run in production: cache-aside with
//! `try_get_with` (50 concurrent requests for one user query the database once), a memoized
//! function, errors mapped to HTTP statuses, and the caches' metrics on `/metrics` through a
//! Prometheus exporter (`metrics` feature; no extra listener: the route renders them).
//!
//! `./scripts/demo axum_service` starts a private Redis, runs the service on a free port,
//! sends it a few requests and prints the answers and the metrics. With `-- --serve` (and a
//! Redis at `FLIPCACHE_REDIS_URL`) it keeps serving: try `curl localhost:PORT/users/7`,
//! `/users/404`, `/users/0`, `/prices/3`, `/stats` and `/metrics`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flipcache::{LoadError, aio::FlipCache, flipcache};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// A stand-in for a database: slow, counts its queries, fails for user 0.
struct Db {
    queries: AtomicUsize,
}

#[derive(Debug)]
enum DbError {
    NotFound,
    Down,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NotFound => f.write_str("no such user"),
            DbError::Down => f.write_str("the database is down"),
        }
    }
}

impl std::error::Error for DbError {}

impl Db {
    async fn user(&self, id: u64) -> Result<String, DbError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        match id {
            0 => Err(DbError::Down),
            404 => Err(DbError::NotFound),
            _ => Ok(format!("user #{id}")),
        }
    }
}

/// A memoized computation: its companion `price_stats()` gives its counters.
#[flipcache(name = "axum_prices", expire_time = 60)]
async fn price(sku: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    sku * 100 + 99
}

#[derive(Clone)]
struct App {
    users: FlipCache<u64, String>,
    db: Arc<Db>,
    metrics: PrometheusHandle,
}

/// A cache's answer as an HTTP response: the loader's own errors by kind, the cache's as 500.
fn respond(result: Result<String, LoadError<DbError>>) -> Response {
    match result {
        Ok(name) => name.into_response(),
        Err(LoadError::Loader { source, .. }) => match *source {
            DbError::NotFound => (StatusCode::NOT_FOUND, source.to_string()).into_response(),
            DbError::Down => (StatusCode::SERVICE_UNAVAILABLE, source.to_string()).into_response(),
        },
        // Redis failed (only with `fail_open(false)`: by default a load goes on without it).
        Err(e) => {
            tracing::error!(error = %e, "cache failure");
            (StatusCode::INTERNAL_SERVER_ERROR, "cache failure").into_response()
        }
    }
}

async fn user(State(app): State<App>, Path(id): Path<u64>) -> Response {
    let db = app.db.clone();
    respond(
        app.users
            .try_get_with(&id, async move { db.user(id).await })
            .await,
    )
}

async fn prices(Path(sku): Path<u64>) -> String {
    price(sku).await.to_string()
}

async fn stats(State(app): State<App>) -> Response {
    let body = serde_json::json!({
        "users": app.users.stats(),
        "prices": price_stats(),
        "database_queries": app.db.queries.load(Ordering::SeqCst),
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn metrics(State(app): State<App>) -> String {
    // Publishes the L1's per-thread counters now rather than at the next second.
    app.users.stats();
    price_stats();
    app.metrics.render()
}

/// `GET path` with a plain HTTP/1.1 request; the status line and the body.
fn fetch(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.lines().next().unwrap_or_default().to_owned();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The recorder first: caches take their metric handles from it when they are built.
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;

    let users = FlipCache::<u64, String>::builder("axum_users")
        .expire_time(Duration::from_secs(60))
        .on_event(|e: &flipcache::Event| println!("event: {e}"))
        .build()
        .await?;
    let app = App {
        users,
        db: Arc::new(Db {
            queries: AtomicUsize::new(0),
        }),
        metrics: handle,
    };
    let router = Router::new()
        .route("/users/{id}", get(user))
        .route("/prices/{sku}", get(prices))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    if std::env::args().any(|a| a == "--serve") {
        println!("serving on http://127.0.0.1:{port} (Ctrl-C stops)");
        return Ok(server.await??);
    }
    app.users.clear().await?;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        // 50 concurrent requests for one user: one database query.
        let burst: Vec<_> = (0..50)
            .map(|_| std::thread::spawn(move || fetch(port, "/users/7")))
            .collect();
        for b in burst {
            let (status, _) = b.join().expect("request thread")?;
            assert!(status.contains("200"), "{status}");
        }
        for path in [
            "/users/7",
            "/users/404",
            "/users/0",
            "/prices/3",
            "/prices/3",
            "/stats",
        ] {
            let (status, body) = fetch(port, path)?;
            println!("GET {path:<11} -> {status}: {body}");
        }
        let (_, text) = fetch(port, "/metrics")?;
        println!("\nGET /metrics (flipcache_ series, without histogram buckets):");
        for line in text.lines().filter(|l| {
            l.starts_with("flipcache_") && !l.contains("quantile") && !l.contains("_bucket")
        }) {
            println!("  {line}");
        }
        Ok(())
    })
    .await??;
    println!(
        "\ndatabase queries: {}",
        app.db.queries.load(Ordering::SeqCst)
    );
    server.abort();
    Ok(())
}
