//! A `tracing` subscriber for the tests that check spans and log lines: it records every span
//! (its name and fields) and every event at `INFO` or above (its level and fields, the message
//! included), each field written `name=value `.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Every span created: its name and fields.
pub static SPANS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
/// Every event: its level and fields.
pub static EVENTS: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

/// A `tracing` visitor that writes every field as `name=value `.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={} ", field.name(), value);
    }
}

struct Capture {
    next: AtomicU64,
}

impl Subscriber for Capture {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= Level::INFO
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        SPANS
            .lock()
            .unwrap()
            .push((span.metadata().name().to_owned(), fields.0));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        EVENTS
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Makes the capture the global subscriber (once per test binary).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(Capture {
            next: AtomicU64::new(1),
        })
        .expect("one subscriber");
    });
}

/// Spans named `name` whose fields contain every one of `fields`.
pub fn spans(name: &str, fields: &[&str]) -> usize {
    SPANS
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, f)| n == name && fields.iter().all(|x| f.contains(x)))
        .count()
}

/// Events at `level` whose fields contain every one of `fields`.
pub fn events(level: Level, fields: &[&str]) -> usize {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, f)| *l == level && fields.iter().all(|x| f.contains(x)))
        .count()
}
