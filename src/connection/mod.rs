//! The connection below a [`Session`](crate::Session) (private): the russh
//! handle and everything kept per connection, which channels, tunnels and
//! the session share: the channel slots, the channels open and being
//! closed, the remote-forward routes, and why the connection ended.
//!
//! Nothing here knows of sessions, channels or forwards: they sit above
//! and use it. Inside: `handler.rs` is the russh handler, `slots.rs` the
//! channel limit and the live-channel count, `routes.rs` the remote
//! forwards' routes, `agent.rs` the gate of agent forwarding.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::client::Handle;

use crate::config::ForwardAgent;
use crate::error::Error;

mod agent;
mod closings;
mod handler;
mod idle;
mod routes;
mod server_id;
mod shared;
mod slots;

pub(crate) use agent::{AgentAsk, AgentForwards};
pub(crate) use closings::Closings;
#[cfg(test)]
pub(crate) use handler::HandlerError;
pub(crate) use handler::{ClientHandler, handshake_error};
pub(crate) use idle::Idle;
pub(crate) use routes::{Forwarded, RemoteForwards};
pub(crate) use server_id::NoteServerId;
pub(crate) use shared::Shared;
pub(crate) use slots::{LiveChannels, Slot, Slots};

/// One SSH connection, authenticated: its russh handle and its state.
pub(crate) struct Connection {
    pub(crate) handle: Handle<ClientHandler>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) slots: Arc<Slots>,
    /// What a command's collected output may grow to
    /// ([`SshConfig::max_output`](crate::SshConfig::max_output)).
    pub(crate) max_output: usize,
    /// Whether and where commands forward the agent
    /// ([`SshConfig::forward_agent`](crate::SshConfig::forward_agent)).
    pub(crate) forward_agent: ForwardAgent,
    pub(crate) state: Arc<Shared>,
    /// The window this side gives each channel
    /// ([`SshConfig::window_size`](crate::SshConfig::window_size)): what a
    /// channel can carry toward us in one round trip.
    pub(crate) window: u32,
    /// The server's identification string, once the handshake read it.
    pub(crate) server_id: Arc<std::sync::OnceLock<String>>,
    /// The channel parked between the session's plain transfers, owned by
    /// the session's user handles (see `idle.rs`).
    pub(crate) idle: std::sync::Weak<Idle>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Whether a channel may be opened ahead of its command: see
    /// [`server_id::keeps_unstarted_channels`].
    pub(crate) fn keeps_unstarted_channels(&self) -> bool {
        self.server_id
            .get()
            .is_some_and(|id| server_id::keeps_unstarted_channels(id))
    }

    /// Closes the channel parked between uses, if any: an open needs its
    /// slot, or the session is closing.
    pub(crate) fn clear_idle(&self) {
        if let Some(idle) = self.idle.upgrade() {
            idle.clear();
        }
    }

    /// Whether the connection has ended (closed by either side or lost).
    pub(crate) fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Resolves when the connection's task has ended, for whatever reason.
    pub(crate) async fn closed(&self) {
        self.state.closed.cancelled().await;
    }

    /// Channels open now.
    pub(crate) fn live_channels(&self) -> &LiveChannels {
        &self.state.live
    }

    /// Channels being closed, and cleanups of dropped operations.
    pub(crate) fn closings(&self) -> &Closings {
        &self.state.closings
    }

    /// Agent forwarding: which channels asked, where agent channels go.
    pub(crate) fn agent(&self) -> &Arc<AgentForwards> {
        &self.state.agent
    }

    /// The remote forwards' routes.
    pub(crate) fn routes(&self) -> &RemoteForwards {
        &self.state.routes
    }

    /// Ends the connection from this side: later operations fail with
    /// [`Error::SessionClosed`].
    pub(crate) async fn disconnect(&self) {
        self.state.closed_here.store(true, Ordering::Release);
        // Already gone is as good as closed.
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// As [`lost`](Self::lost), once the connection's task has ended:
    /// russh reports a connection closed before it tells the handler why,
    /// and the reason (a server disconnect message, or a quiet end with no
    /// channel open) is only known then. Bounded, in case the task lingers;
    /// a connection still open has no end to wait for.
    pub(crate) async fn lost_after_end(&self, fallback: &str) -> Error {
        if self.is_closed() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.closed()).await;
        }
        self.lost(fallback)
    }

    /// The error to report when the connection has gone away.
    pub(crate) fn lost(&self, fallback: &str) -> Error {
        if self.state.closed_here.load(Ordering::Acquire) {
            return Error::SessionClosed {
                host: self.host.clone(),
                port: self.port,
            };
        }
        Error::ConnectionLost {
            host: self.host.clone(),
            port: self.port,
            reason: self.state.reason().unwrap_or_else(|| fallback.to_string()),
        }
    }
}
