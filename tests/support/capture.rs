//! A `tracing` subscriber for the tests that check spans and log lines: it records every span
//! (its name and fields, those recorded later too) and every event at `INFO` or above (or at
//! the level [`install_at`] says), with its level and fields, the message included, each field
//! written `name=value `.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// The most verbose level captured: 0 `INFO`, 1 `DEBUG`, 2 `TRACE`.
static VERBOSITY: AtomicUsize = AtomicUsize::new(0);

fn verbosity(level: Level) -> usize {
    match level {
        Level::TRACE => 2,
        Level::DEBUG => 1,
        _ => 0,
    }
}

impl Subscriber for Capture {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        verbosity(*meta.level()) <= VERBOSITY.load(Ordering::Relaxed)
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
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut fields = Fields(String::new());
        values.record(&mut fields);
        SPANS
            .lock()
            .unwrap()
            .push(("(recorded)".to_owned(), fields.0));
    }
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

/// [`install`], capturing events down to `level` (a test binary picks one level).
#[allow(dead_code)]
pub fn install_at(level: Level) {
    VERBOSITY.store(verbosity(level), Ordering::Relaxed);
    install();
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

/// Every span and event captured whose fields contain `text`, as `name: fields` lines.
#[allow(dead_code)]
pub fn mentioning(text: &str) -> Vec<String> {
    let spans = SPANS.lock().unwrap();
    let events = EVENTS.lock().unwrap();
    spans
        .iter()
        .map(|(n, f)| format!("span {n}: {f}"))
        .chain(events.iter().map(|(l, f)| format!("event {l}: {f}")))
        .filter(|line| line.contains(text))
        .collect()
}

/// How many spans and events were captured.
#[allow(dead_code)]
pub fn captured() -> usize {
    SPANS.lock().unwrap().len() + EVENTS.lock().unwrap().len()
}
