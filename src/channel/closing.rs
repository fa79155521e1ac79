//! Closings: channels of one connection being closed in the background,
//! and the cleanups of dropped operations, which new channels wait for
//! (counted in [`Closings`](crate::connection::Closings)).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connection::Connection;

tokio::task_local! {
    /// How many of the session's closings the current task is itself
    /// carrying out ([`winding_down`]): its own channels do not wait for
    /// them.
    static OWN_CLOSINGS: usize;
}

/// Held while a channel is being closed in the background, or while the
/// work that cleans up after a dropped operation runs.
#[derive(Debug)]
pub(crate) struct ClosingGuard(Arc<Connection>);

impl ClosingGuard {
    pub(crate) fn new(conn: &Arc<Connection>) -> Self {
        conn.closings().enter();
        ClosingGuard(conn.clone())
    }
}

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        self.0.closings().leave();
    }
}

/// A channel whose lease a background task owns (russh-sftp's reader and
/// writer own the SFTP channel's stream), let go of by its user before
/// that task drops the lease: [`released`](Self::released) counts the
/// channel as closing from that moment, so that the user's next channel
/// waits for it. Without it, the next channel could open while the
/// server's program (`sftp-server`, ended by the end-of-file the task is
/// about to send) exits, which is what dropbear before 2024.86 closes
/// fresh channels on. The lease's own closing takes over when the task
/// drops it: hold this after the lease (fields drop in order).
#[derive(Clone, Debug, Default)]
pub(crate) struct Release(Arc<Mutex<Option<ClosingGuard>>>);

impl Release {
    /// The user let go: the channel counts as closing until the lease is
    /// dropped.
    pub(crate) fn released(&self, conn: &Arc<Connection>) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            *held = Some(ClosingGuard::new(conn));
        }
    }

    /// A handle for the user that calls [`released`](Self::released) when
    /// dropped.
    pub(crate) fn on_drop(&self, conn: &Arc<Connection>) -> ReleaseOnDrop {
        ReleaseOnDrop {
            release: self.clone(),
            conn: conn.clone(),
        }
    }
}

/// See [`Release::on_drop`].
#[derive(Debug)]
pub(crate) struct ReleaseOnDrop {
    release: Release,
    conn: Arc<Connection>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.release.released(&self.conn);
    }
}

/// Runs `work`, which cleans up after a dropped operation (removes its
/// temporary file), as one of the session's closings: new channels wait
/// for it as for a channel being closed, except the channels `work` opens
/// itself. Take `guard` where the operation is dropped, so that the
/// caller's next request already waits for it.
pub(crate) async fn winding_down<F: Future>(guard: ClosingGuard, work: F) -> F::Output {
    let own = OWN_CLOSINGS.try_with(|n| *n).unwrap_or(0) + 1;
    OWN_CLOSINGS
        .scope(own, async move {
            let _guard = guard;
            work.await
        })
        .await
}

/// `work`, to run in a task of its own, carrying the current task's own
/// closings ([`winding_down`]) with it: task-locals do not cross a spawn.
pub(crate) fn carrying_own<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let own = OWN_CLOSINGS.try_with(|n| *n).unwrap_or(0);
    OWN_CLOSINGS.scope(own, work)
}

/// Waits (at most 5 s) until channels being closed are confirmed closed by
/// the server, and cleanups of dropped operations have finished. Dropbear
/// before 2024.86 closes a fresh channel when an unrelated child process
/// of the connection exits between the channel's open and its request
/// (it may still run the request), then can abort the whole connection on
/// the request: a new channel must not open while a process of this
/// session is about to end.
pub(crate) async fn wait_for_closing(conn: &Arc<Connection>) {
    let own = OWN_CLOSINGS.try_with(|n| *n).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    conn.closings().settled(own, deadline).await;
}
