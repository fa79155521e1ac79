//! Stopping a run early: from outside ([`StopHandle`]), or when too many
//! VMs failed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::report::CancelReason;

/// Stops a running fleet gracefully, from outside: VMs not yet started are
/// not started, running commands are sent SIGTERM where the server allows
/// it and their channels closed, sessions are closed, and
/// [`Fleet::provision`](super::Fleet::provision) returns its report with those VMs
/// [`Outcome::Cancelled`](super::Outcome::Cancelled). For a command line's Ctrl-C, a deadline, a
/// shutdown.
///
/// Clones share the state. A stopped handle stays stopped: a run started
/// with it afterwards starts no VM.
///
/// # Example
///
/// ```no_run
/// # async fn demo(targets: Vec<vmssh::fleet::Target>) {
/// use vmssh::fleet::{Fleet, StopHandle};
///
/// let stop = StopHandle::new();
/// let on_ctrl_c = stop.clone();
/// tokio::spawn(async move {
///     if tokio::signal::ctrl_c().await.is_ok() {
///         on_ctrl_c.stop();
///     }
/// });
/// let report = Fleet::new().stop_handle(stop).provision(targets).await;
/// println!("{}", report.summary());
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    token: CancellationToken,
}

impl StopHandle {
    /// A handle not yet stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops every run using this handle (and later ones).
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// One run's stop signal: cancelled by its [`StopHandle`] or when too many
/// VMs failed, with the reason given to the cancelled VMs.
#[derive(Clone)]
pub(super) struct Halt {
    pub(super) token: CancellationToken,
    /// Set when too many VMs failed (with the batch then running, in a
    /// rolling run); otherwise the stop handle stopped it.
    reason: Arc<std::sync::OnceLock<(CancelReason, Option<usize>)>>,
}

impl Halt {
    pub(super) fn new(stop: Option<&StopHandle>) -> Self {
        Halt {
            token: stop.map_or_else(CancellationToken::new, |s| s.token.child_token()),
            reason: Arc::default(),
        }
    }

    /// Stops the run: more than `limit` VMs failed, the last of them in
    /// `batch` (of a rolling run).
    pub(super) fn too_many_failures(&self, limit: usize, batch: Option<usize>) {
        if self.token.is_cancelled() {
            return;
        }
        let reason = if limit == 0 {
            CancelReason::FailFast
        } else {
            CancelReason::TooManyFailures { limit }
        };
        let _ = self.reason.set((reason, batch));
        self.token.cancel();
    }

    pub(super) fn reason(&self) -> CancelReason {
        self.reason
            .get()
            .map_or(CancelReason::Stopped, |(reason, _)| *reason)
    }

    /// Why a VM of `batch` (of a rolling run) was not started: a later
    /// batch than the one that failed says so.
    pub(super) fn reason_for(&self, batch: Option<usize>) -> CancelReason {
        match (self.reason.get(), batch) {
            (Some((reason, Some(failed))), Some(b)) if b > *failed => {
                let limit = match reason {
                    CancelReason::TooManyFailures { limit } => *limit,
                    _ => 0,
                };
                CancelReason::BatchFailed {
                    batch: *failed,
                    limit,
                }
            }
            _ => self.reason(),
        }
    }

    /// Whether the run's stop handle stopped it.
    pub(super) fn stopped(&self) -> bool {
        self.token.is_cancelled() && self.reason.get().is_none()
    }
}
