//! The background tokio runtime that owns the shared Redis connections, and `block_on` for the
//! blocking front (the way `reqwest::blocking` works).

use std::future::Future;
use std::sync::{Mutex, OnceLock};

use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The background runtime, started on first use (one worker thread named `flipcache`).
pub(crate) fn handle() -> std::io::Result<&'static Handle> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle());
    }
    let _init = crate::lock::lock(&INIT);
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("flipcache")
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| rt).handle())
}

/// Runs `fut` to completion on the calling thread, with the background runtime's timers and
/// I/O available to it. Works inside or outside a tokio runtime: the connection it talks to is
/// driven by the background runtime, so nothing here needs the caller's runtime.
pub(crate) fn block_on<F: Future>(rt: &Handle, fut: F) -> F::Output {
    let _enter = rt.enter();
    futures_executor::block_on(fut)
}
