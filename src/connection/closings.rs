//! Closings: the channels of one connection being closed, and other work
//! winding down a dropped operation, counted so that new channels can wait
//! for them (`channel/closing.rs` holds the guards and the waiting).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Channels of one connection that are being closed, and other work
/// winding down a dropped operation, which new channels wait for (see
/// `channel/closing.rs`).
#[derive(Debug, Default)]
pub(crate) struct Closings {
    count: AtomicUsize,
    done: Notify,
}

impl Closings {
    /// One more closing.
    pub(crate) fn enter(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// One closing fewer.
    pub(crate) fn leave(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.done.notify_waiters();
    }

    /// Waits until at most `own` closings are left, or `deadline`.
    pub(crate) async fn settled(&self, own: usize, deadline: tokio::time::Instant) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) <= own {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}
