//! Cache-aside in an async service, the way a web handler does it: 50 concurrent requests for
//! one user run the database query once (`get_with`), a missing user is remembered in Redis
//! (`optionally_get_with` + `cache_absent`), and a database error reaches the caller as its own
//! type (`try_get_with`).
//!
//! `./scripts/demo cache_aside` (or `cargo run --example cache_aside` with a Redis at
//! `FLIPCACHE_REDIS_URL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flipcache::LoadError;
use flipcache::aio::FlipCache;

/// A stand-in for a database: slow, counts its queries.
struct Db {
    queries: AtomicUsize,
}

#[derive(Debug)]
struct DbError(&'static str);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

impl Db {
    async fn user(&self, id: u64) -> Result<Option<String>, DbError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        match id {
            0 => Err(DbError("connection refused")),
            404 => Ok(None),
            _ => Ok(Some(format!("user #{id}"))),
        }
    }
}

#[tokio::main]
async fn main() -> flipcache::Result<()> {
    let users: FlipCache<u64, String> = FlipCache::builder("demo_users")
        .expire_time(Duration::from_secs(60))
        .cache_absent(Duration::from_secs(10))
        .build()
        .await?;
    users.clear().await?;
    let db = Arc::new(Db {
        queries: AtomicUsize::new(0),
    });

    // 50 concurrent "requests" for user 7: one query.
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (users, db) = (users.clone(), db.clone());
            tokio::spawn(async move {
                users
                    .try_get_with(&7, async move {
                        db.user(7).await.map(|u| u.unwrap_or_default())
                    })
                    .await
            })
        })
        .collect();
    for r in requests {
        r.await.expect("request task").expect("user 7");
    }
    println!(
        "50 requests for user 7: {} database query",
        db.queries.load(Ordering::SeqCst)
    );

    // A missing user: the second lookup does not reach the database.
    for _ in 0..2 {
        let db = db.clone();
        let found = users
            .optionally_get_with(&404, async move { db.user(404).await.ok().flatten() })
            .await?;
        println!("user 404: {found:?}");
    }
    println!(
        "database queries so far: {}",
        db.queries.load(Ordering::SeqCst)
    );

    // A database error maps to a response; it is not cached.
    let db0 = db.clone();
    match users
        .try_get_with(&0, async move {
            db0.user(0).await.map(|u| u.unwrap_or_default())
        })
        .await
    {
        Ok(u) => println!("200 {u}"),
        Err(LoadError::Loader { source, .. }) => println!("503 ({source})"),
        Err(e) => println!("500 ({e})"),
    }
    println!("stats: {:?}", users.stats());
    Ok(())
}
