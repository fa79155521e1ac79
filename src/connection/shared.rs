//! What a connection's russh handler shares with the connection above it.

use std::sync::{Arc, Mutex};

use super::agent::AgentForwards;
use super::closings::Closings;
use super::routes::RemoteForwards;
use super::slots::LiveChannels;

/// What the connection's handler shares with the [`Connection`]: why it
/// ended, its live channels, its closings, its remote-forward routes and
/// its agent forwarding.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(super) disconnect: Mutex<Option<String>>,
    /// Cancelled when the connection's task ends, whatever the reason.
    pub(super) closed: tokio_util::sync::CancellationToken,
    /// Set by [`Session::close`]: later operations fail with
    /// [`Error::SessionClosed`], not as a lost connection.
    pub(super) closed_here: std::sync::atomic::AtomicBool,
    /// Channels being closed, which new channels wait for.
    pub(super) closings: Closings,
    /// What the server said when it sent a disconnect message, if it did.
    pub(super) server_disconnect: Mutex<Option<String>>,
    /// Remote forwards, where the handler routes the tunnels the server
    /// brings.
    pub(super) routes: RemoteForwards,
    /// Channels open now, counted in the server's message order.
    pub(super) live: LiveChannels,
    /// Which channels asked for an agent, and where agent channels go.
    pub(super) agent: Arc<AgentForwards>,
}

impl Shared {
    pub(super) fn set_reason(&self, reason: String) {
        if let Ok(mut slot) = self.disconnect.lock() {
            slot.get_or_insert(reason);
        }
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.disconnect.lock().ok().and_then(|s| s.clone())
    }

    /// The server's own disconnect message (`Too many authentication
    /// failures`), as opposed to a connection that just ended.
    pub(crate) fn server_disconnect(&self) -> Option<String> {
        self.server_disconnect.lock().ok().and_then(|s| s.clone())
    }
}
