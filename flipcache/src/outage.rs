//! Logging a Redis endpoint's connections and outages: connects and reconnects at INFO, the
//! first sign of each outage at WARN (once per outage, again for the next one).

use std::sync::atomic::{AtomicBool, Ordering};

/// One endpoint's connection history, as far as logging needs it.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    /// Redis is unreachable and that was logged; cleared by the next connection.
    down: AtomicBool,
    /// A connection was made once (the next one is a reconnect).
    connected_before: AtomicBool,
}

impl Outage {
    /// Redis cannot be reached: runs `warn` (which logs it) if this outage was not logged yet.
    pub(crate) fn down(&self, warn: impl FnOnce()) {
        if !self.down.swap(true, Ordering::AcqRel) {
            warn();
        }
    }

    /// A connection to `endpoint` was made: logs it at INFO and ends the outage, if any.
    pub(crate) fn up(&self, endpoint: &str) {
        let was_down = self.down.swap(false, Ordering::AcqRel);
        if self.connected_before.swap(true, Ordering::AcqRel) {
            tracing::info!(endpoint, "reconnected to Redis");
        } else if was_down {
            tracing::info!(
                endpoint,
                "connected to Redis (it was unreachable until now)"
            );
        } else {
            tracing::info!(endpoint, "connected to Redis");
        }
    }

    /// Whether an outage is being reported (`down` was called since the last connection).
    #[cfg(test)]
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outage_warns_once() {
        let o = Outage::default();
        let mut warned = 0;
        o.down(|| warned += 1);
        o.down(|| warned += 1);
        assert_eq!(warned, 1);
        assert!(o.is_down());
        o.up("e");
        assert!(!o.is_down());
        o.down(|| warned += 1);
        o.down(|| warned += 1);
        assert_eq!(warned, 2, "a new outage warns again");
    }
}
