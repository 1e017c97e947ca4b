//! Redis's tracking table (key-based tracking) and `NOLOOP`: whether the table has room enough
//! for the shared connection to keep `NOLOOP`.
//!
//! Redis bounds the table by `tracking-table-max-keys` (default 1,000,000; 0: unbounded). Once
//! it holds more keys, Redis trims it at the start of whichever command comes next, sending an
//! invalidation for each key it forgets. Since Redis 7.0.5 (redis/redis#11052) the `NOLOOP` check
//! of those invalidations compares with the client whose command is running: when that is a
//! `NOLOOP` client, Redis forgets the keys that client tracked *without telling it*, and its L1
//! entries of those keys would never hear of later writes.
//!
//! `NOLOOP` spares the shared connection the echo of this process's own writes (which would
//! drop from the L1 what the write just put there), so it is kept while the table is far from
//! full: trimming cannot start before the table is full. The keep-alive checks the table; once
//! it is half full (or its size cannot be read, as on a server refusing `CONFIG GET`), tracking
//! is turned on again without `NOLOOP` for the rest of the connection's life, and every L1 on
//! it is emptied (anything trimmed meanwhile was trimmed unheard). From then on every trim is
//! heard, and a write of a key the connection tracks costs its L1 fill (the next read fills it).

use std::collections::HashMap;

use redis::Value;

use crate::conn::Conn;

/// Whether a table of `total` keys bounded by `limit` (0: unbounded) has room enough to keep
/// `NOLOOP`: less than half full.
fn room(limit: u64, total: u64) -> bool {
    limit == 0 || total < limit / 2
}

/// `tracking_total_keys` from `INFO stats`.
fn total_keys(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix("tracking_total_keys:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `tracking-table-max-keys` from a `CONFIG GET` reply (a map in RESP3, pairs in RESP2).
fn limit(reply: Value) -> Option<u64> {
    let pairs: HashMap<String, String> = redis::from_redis_value(reply).ok()?;
    pairs.get("tracking-table-max-keys")?.parse().ok()
}

/// Whether every primary's tracking table has room (see [`room`]); `false` when a primary's
/// table cannot be read (`CONFIG GET` refused, an error): `NOLOOP` is then not safe to keep.
pub(crate) async fn has_room(conn: &mut Conn) -> bool {
    let mut config = redis::cmd("CONFIG");
    config.arg("GET").arg("tracking-table-max-keys");
    let mut info = redis::cmd("INFO");
    info.arg("stats");
    let (Ok(limits), Ok(infos)) = (
        conn.on_every_primary(&config).await,
        conn.on_every_primary(&info).await,
    ) else {
        return false;
    };
    if limits.len() != infos.len() {
        return false;
    }
    limits.into_iter().zip(infos).all(|(l, i)| {
        let info: Option<String> = redis::from_redis_value(i).ok();
        match (limit(l), info.as_deref().and_then(total_keys)) {
            (Some(l), Some(t)) => room(l, t),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_less_than_half_a_bounded_table() {
        assert!(room(0, u64::MAX));
        assert!(room(1_000_000, 499_999));
        assert!(!room(1_000_000, 500_000));
        assert!(!room(1, 0));
        assert!(!room(5, 3));
    }

    #[test]
    fn the_table_is_read_from_info_and_config() {
        let info = "# Stats\r\ntotal_connections_received:3\r\ntracking_total_keys:42\r\n";
        assert_eq!(total_keys(info), Some(42));
        assert_eq!(total_keys("# Stats\r\n"), None);
        let resp3 = Value::Map(vec![(
            Value::BulkString(b"tracking-table-max-keys".to_vec()),
            Value::BulkString(b"1000000".to_vec()),
        )]);
        assert_eq!(limit(resp3), Some(1_000_000));
        let resp2 = Value::Array(vec![
            Value::BulkString(b"tracking-table-max-keys".to_vec()),
            Value::BulkString(b"0".to_vec()),
        ]);
        assert_eq!(limit(resp2), Some(0));
        assert_eq!(limit(Value::Array(vec![])), None);
    }
}
