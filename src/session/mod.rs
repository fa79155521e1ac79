//! `Session`: one authenticated SSH connection to one VM, the public
//! handle over its connection (`connection/`, private). Inside: this file holds the handle;
//! `connect.rs` connecting (directly, through a jump host, over a given
//! stream, with retries), handshake and login.

use std::fmt;
use std::sync::Arc;

use crate::connection::{Connection, Idle};
use crate::error::Error;

mod connect;

pub(crate) use connect::Route;

/// An authenticated SSH connection to one host.
///
/// `Session` is a cheap handle: clone it freely and use the clones from any
/// task; there is no need to wrap it in an `Arc`. Commands and SFTP
/// transfers started from the clones share the one connection, each on its
/// own channel, at most [`SshConfig::max_channels`](crate::SshConfig::max_channels) at once (further callers
/// wait for a free channel).
///
/// # Backpressure
///
/// Flow control is per channel on the wire, but russh reads the connection
/// from one task: a channel whose consumer stops reading eventually stalls
/// every channel of the same session. Consume streams promptly, or use one
/// session per independent consumer.
///
/// # Drop behavior
///
/// The connection stays open while any clone, stream or transfer is alive,
/// and is shut down when the last one is dropped. [`Session::close`] ends it
/// at once. The SFTP channel kept between plain transfers (see
/// [`SshConfig::sftp_idle_timeout`](crate::SshConfig::sftp_idle_timeout))
/// does not keep it open: it is closed with the last clone.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Connection>,
    /// The park of the channel kept between plain transfers, shared by the
    /// clones the user holds: dropping the last drops it. `None` in the
    /// session an internal holder keeps (an [`Sftp`](crate::Sftp)'s), so
    /// that what is parked never holds the park.
    idle: Option<Arc<Idle>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("user", &self.inner.user)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Session {
    /// The host this session is connected to, as given to `connect`.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The port this session is connected to.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The user this session is authenticated as.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The identification string the server sent, such as
    /// `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3` or
    /// `SSH-2.0-dropbear_2025.89` (OpenSSH's `ssh -v` shows it as the
    /// remote software version); `None` if none was seen.
    pub fn server_id(&self) -> Option<&str> {
        self.inner.server_id.get().map(String::as_str)
    }

    /// How many channels this session keeps open at once:
    /// [`SshConfig::max_channels`](crate::SshConfig::max_channels), or fewer once the server has refused a
    /// channel while others were open (OpenSSH's `MaxSessions`, tinysshd's
    /// one channel). Callers beyond it wait for a channel to close.
    pub fn channel_limit(&self) -> usize {
        self.inner.slots.capacity()
    }

    /// Changes of [`channel_limit`](Self::channel_limit) from now on.
    pub(crate) fn channel_limit_changes(&self) -> tokio::sync::watch::Receiver<usize> {
        self.inner.slots.limit_changes()
    }

    /// Whether the connection has ended (closed by either side or lost).
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Resolves when the connection has ended, for whatever reason.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) {
        self.inner.closed().await;
    }

    /// Ends the connection for every clone of this session. Running
    /// commands and later calls fail with [`Error::SessionClosed`].
    /// Closing a session that is already closed, or whose connection is
    /// gone, does nothing.
    ///
    /// Commands abandoned just before (a dropped stream, a timeout) are
    /// stopped first (see [`Command::stoppable`](crate::Command::stoppable)),
    /// and channels being closed are let finish: this waits for them, at
    /// most 5 seconds.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; once the wait for closing channels is over, the
    /// session counts as closed at once, though the disconnect message may
    /// not have been sent.
    pub async fn close(&self) {
        self.inner.clear_idle();
        if !self.is_closed() {
            self.wait_for_closing().await;
        }
        self.inner.disconnect().await;
    }

    /// Waits (at most 5 s) for this session's channels being closed and
    /// the cleanups of its dropped operations.
    pub(crate) async fn wait_for_closing(&self) {
        crate::channel::wait_for_closing(&self.inner).await;
    }

    /// This session without its user handle on the park: for what the
    /// park may hold (see [`Session::idle`]).
    pub(crate) fn internal(&self) -> Session {
        Session {
            inner: self.inner.clone(),
            idle: None,
        }
    }

    /// The park of the channel kept between plain transfers; `None` in an
    /// internal session.
    pub(crate) fn idle(&self) -> Option<&Arc<Idle>> {
        self.idle.as_ref()
    }

    /// The connection below this session.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.inner
    }

    /// See [`Connection::lost_after_end`].
    pub(crate) async fn lost_after_end(&self, fallback: &str) -> Error {
        self.inner.lost_after_end(fallback).await
    }

    /// See [`Connection::lost`].
    pub(crate) fn lost(&self, fallback: &str) -> Error {
        self.inner.lost(fallback)
    }
}
