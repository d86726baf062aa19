//! A signal during a rollback: the run asks the rollback to stop at its next step instead of dropping
//! it mid-request, so `UpdateService` to the previous revision is either sent or known not to be. A leaf
//! (see `shutdown` for the cancel path that uses it).
//!
//! APIs: none.

use std::sync::atomic::{AtomicBool, Ordering};

/// A rollback is under way: a signal then lets the in-flight request finish instead of dropping it.
static ROLLING_BACK: AtomicBool = AtomicBool::new(false);
/// A signal arrived during a rollback: it stops at its next step.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
static STOP: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// How long a signal during a rollback waits for the in-flight request: the run must have written its
/// report well before the runner's kill, 5 s after SIGTERM.
pub const ROLLBACK_GRACE: std::time::Duration = std::time::Duration::from_millis(3500);

/// Marks a rollback under way until dropped.
#[derive(Debug)]
pub struct RollingBack(());

impl Drop for RollingBack {
    fn drop(&mut self) {
        ROLLING_BACK.store(false, Ordering::SeqCst);
    }
}

/// A rollback starts: until the guard is dropped, a signal asks it to stop at its next step.
pub fn rolling_back() -> RollingBack {
    ROLLING_BACK.store(true, Ordering::SeqCst);
    RollingBack(())
}

/// Is a rollback under way?
pub fn is_rolling_back() -> bool {
    ROLLING_BACK.load(Ordering::SeqCst)
}

/// Ask the rollback under way to stop at its next step.
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    STOP.notify_waiters();
}

/// Was the run asked to stop?
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Resolves once the run is asked to stop.
pub async fn stop() {
    loop {
        let notified = STOP.notified();
        if stop_requested() {
            return;
        }
        notified.await;
    }
}
