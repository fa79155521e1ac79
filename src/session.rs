//! `Session`: one authenticated SSH connection to one VM.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use tokio::sync::Semaphore;

use crate::auth;
use crate::channel::Closings;
use crate::config::SshConfig;
use crate::error::Error;
use crate::host_key::HostKeyPolicy;

/// An authenticated SSH connection to one host.
///
/// `Session` is a cheap handle: clone it freely and use the clones from any
/// task; there is no need to wrap it in an `Arc`. Commands and SFTP
/// transfers started from the clones share the one connection, each on its
/// own channel, at most [`SshConfig::max_channels`] at once (further callers
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
/// at once.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) handle: Handle<ClientHandler>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) channels: Arc<Semaphore>,
    pub(crate) max_output: usize,
    pub(crate) state: Arc<SharedState>,
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

/// State the connection's handler shares with the session: why it ended.
#[derive(Debug, Default)]
pub(crate) struct SharedState {
    disconnect: Mutex<Option<String>>,
    /// Cancelled when the connection's task ends, whatever the reason.
    closed: tokio_util::sync::CancellationToken,
    /// Set by [`Session::close`]: later operations fail with
    /// [`Error::SessionClosed`], not as a lost connection.
    closed_here: std::sync::atomic::AtomicBool,
    /// Channels being closed, which new channels wait for.
    closings: Closings,
}

impl SharedState {
    fn set_reason(&self, reason: String) {
        if let Ok(mut slot) = self.disconnect.lock() {
            slot.get_or_insert(reason);
        }
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.disconnect.lock().ok().and_then(|s| s.clone())
    }
}

/// The russh client handler: host key verification and disconnect reasons.
pub(crate) struct ClientHandler {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    state: Arc<SharedState>,
}

impl Drop for ClientHandler {
    fn drop(&mut self) {
        // russh drops the handler when the connection task ends.
        self.state.closed.cancel();
    }
}

/// Errors raised inside the handler, carried through russh.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Russh(russh::Error),
    HostKey(Error),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                PublicKey::new(cert.public_key().clone(), "")
            }
        };
        self.policy
            .verify(&self.host, self.port, &key)
            .await
            .map_err(HandlerError::HostKey)?;
        Ok(true)
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                self.state.set_reason(format!(
                    "server disconnected ({:?}): {}",
                    info.reason_code, info.message
                ));
                Ok(())
            }
            DisconnectReason::Error(e) => {
                self.state.set_reason(describe_handler_error(&e));
                Err(e)
            }
        }
    }
}

fn describe_handler_error(e: &HandlerError) -> String {
    match e {
        HandlerError::HostKey(e) => e.to_string(),
        HandlerError::Russh(russh::Error::KeepaliveTimeout) => {
            "no answer to keepalives".to_string()
        }
        HandlerError::Russh(russh::Error::InactivityTimeout) => "inactivity timeout".to_string(),
        HandlerError::Russh(russh::Error::IO(io)) => format!("I/O error: {io}"),
        HandlerError::Russh(e) => e.to_string(),
    }
}

impl Session {
    /// Connects to `host:port`, verifies the host key and authenticates,
    /// all within [`SshConfig::connect_timeout`].
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] / [`Error::ConnectTimeout`] / [`Error::Handshake`]
    /// when the server cannot be reached or talked to;
    /// [`Error::HostKeyUnknown`] / [`Error::HostKeyChanged`] when its key
    /// is not trusted; [`Error::Key`] / [`Error::Agent`] when a credential
    /// cannot be used; [`Error::AuthFailed`] when every method was rejected;
    /// [`Error::Config`] when no authentication method is configured.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt and closes the socket.
    pub async fn connect(host: &str, port: u16, cfg: &SshConfig) -> Result<Session, Error> {
        match tokio::time::timeout(
            cfg.connect_timeout,
            Self::connect_inner(host, port, cfg, false, None),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Error::ConnectTimeout {
                host: host.to_string(),
                port,
                after: cfg.connect_timeout,
            }),
        }
    }

    /// Connects like [`connect`](Self::connect), retrying what is worth
    /// retrying (refused, reset, timed out, closed before the handshake
    /// completed: a VM still booting) until `deadline` has passed. Delays
    /// follow [`SshConfig::retry`]: short at first, capped, jittered.
    ///
    /// # Errors
    ///
    /// Authentication failures, host key problems and configuration errors
    /// are returned at once. Otherwise the last attempt's error once the
    /// deadline has passed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the current attempt.
    pub async fn connect_with_retry(
        host: &str,
        port: u16,
        cfg: &SshConfig,
        deadline: Duration,
    ) -> Result<Session, Error> {
        Self::connect_with_retry_gated(host, port, cfg, deadline, None).await
    }

    /// [`connect_with_retry`](Self::connect_with_retry), holding a permit
    /// of `gate` during each attempt (not during the backoff sleeps), so a
    /// fleet caps handshakes in flight without letting booting VMs block
    /// the ones that are up.
    pub(crate) async fn connect_with_retry_gated(
        host: &str,
        port: u16,
        cfg: &SshConfig,
        deadline: Duration,
        gate: Option<&tokio::sync::Semaphore>,
    ) -> Result<Session, Error> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            let permit = match gate {
                Some(g) => g.acquire().await.ok(),
                None => None,
            };
            let remaining = deadline.saturating_sub(start.elapsed());
            let limit = cfg
                .connect_timeout
                .min(remaining.max(Duration::from_millis(1)));
            let result =
                match tokio::time::timeout(limit, Self::connect_inner(host, port, cfg, true, gate))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(Error::ConnectTimeout {
                        host: host.to_string(),
                        port,
                        after: limit,
                    }),
                };
            drop(permit);
            match result {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() => {
                    let delay = cfg.retry.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    if start.elapsed() + delay >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(host, port, attempt, error = %e, "connect failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_inner(
        host: &str,
        port: u16,
        cfg: &SshConfig,
        parallel: bool,
        gate: Option<&Semaphore>,
    ) -> Result<Session, Error> {
        if cfg.auth.is_empty() {
            return Err(Error::Config {
                reason: "no authentication method configured (SshConfig::auth)".to_string(),
            });
        }
        let socket = crate::dial::dial(host, port, cfg, parallel, gate).await?;

        let state = Arc::new(SharedState::default());
        let handler = ClientHandler {
            host: host.to_string(),
            port,
            policy: cfg.host_key.clone(),
            state: state.clone(),
        };
        // Known host key types first, as OpenSSH orders them.
        let key_order = cfg
            .host_key
            .key_algorithms(host, port, &russh::Preferred::DEFAULT.key)
            .await;
        let config = Arc::new(russh_config(cfg, key_order));
        let mut handle = client::connect_stream(config, socket, handler)
            .await
            .map_err(|e| handshake_error(host, port, e))?;
        auth::authenticate(&mut handle, host, port, &cfg.user, &cfg.auth).await?;
        tracing::debug!(host, port, user = %cfg.user, "session established");
        Ok(Session {
            inner: Arc::new(Inner {
                handle,
                host: host.to_string(),
                port,
                user: cfg.user.clone(),
                channels: Arc::new(Semaphore::new(cfg.max_channels)),
                max_output: cfg.max_output,
                state,
            }),
        })
    }

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

    /// Whether the connection has ended (closed by either side or lost).
    pub fn is_closed(&self) -> bool {
        self.inner.handle.is_closed()
    }

    /// Resolves when the connection has ended, for whatever reason.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) {
        self.inner.state.closed.cancelled().await;
    }

    /// Ends the connection for every clone of this session. Running
    /// commands and later calls fail with [`Error::SessionClosed`].
    /// Closing a session that is already closed, or whose connection is
    /// gone, does nothing.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the session counts as closed at once, though the
    /// disconnect message may not have been sent.
    pub async fn close(&self) {
        self.inner
            .state
            .closed_here
            .store(true, std::sync::atomic::Ordering::Release);
        // Already gone is as good as closed.
        let _ = self
            .inner
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// The error to report when the connection has gone away.
    pub(crate) fn lost(&self, fallback: &str) -> Error {
        if self
            .inner
            .state
            .closed_here
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Error::SessionClosed {
                host: self.inner.host.clone(),
                port: self.inner.port,
            };
        }
        Error::ConnectionLost {
            host: self.inner.host.clone(),
            port: self.inner.port,
            reason: self
                .inner
                .state
                .reason()
                .unwrap_or_else(|| fallback.to_string()),
        }
    }

    /// The channel slots of this session.
    pub(crate) fn channel_slots(&self) -> Arc<Semaphore> {
        self.inner.channels.clone()
    }

    /// Channels of this session being closed.
    pub(crate) fn closings(&self) -> &Closings {
        &self.inner.state.closings
    }

    /// The russh connection.
    pub(crate) fn handle(&self) -> &Handle<ClientHandler> {
        &self.inner.handle
    }
}

fn russh_config(cfg: &SshConfig, host_key_order: Vec<russh::keys::Algorithm>) -> client::Config {
    let preferred = russh::Preferred {
        key: std::borrow::Cow::Owned(host_key_order),
        cipher: std::borrow::Cow::Owned(cfg.ciphers.iter().map(|c| c.russh()).collect()),
        ..russh::Preferred::default()
    };
    client::Config {
        window_size: cfg.window_size,
        maximum_packet_size: cfg.max_packet_size,
        channel_buffer_size: cfg.channel_buffer_size,
        keepalive_interval: cfg.keepalive_interval,
        keepalive_max: cfg.keepalive_max,
        inactivity_timeout: cfg.inactivity_timeout,
        nodelay: cfg.nodelay,
        preferred,
        ..client::Config::default()
    }
}

pub(crate) fn handshake_error(host: &str, port: u16, e: HandlerError) -> Error {
    let e = match e {
        HandlerError::HostKey(e) => return e,
        HandlerError::Russh(e) => e,
    };
    let early_close = match &e {
        russh::Error::IO(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        ),
        russh::Error::Disconnect | russh::Error::HUP | russh::Error::SendError => true,
        _ => false,
    };
    // Our own words for this layer: the cause itself is the source, and
    // Display never repeats it.
    let reason = match &e {
        russh::Error::IO(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof => "connection closed by the server",
            std::io::ErrorKind::ConnectionReset => "connection reset",
            std::io::ErrorKind::ConnectionAborted => "connection aborted",
            std::io::ErrorKind::BrokenPipe => "connection closed while sending",
            std::io::ErrorKind::TimedOut => "timed out",
            _ => "I/O error",
        },
        russh::Error::UnknownKey => "host key rejected",
        russh::Error::Disconnect | russh::Error::HUP => "connection closed by the server",
        russh::Error::NoCommonAlgo { .. } => "no algorithm in common with the server",
        _ => "protocol error",
    }
    .to_string();
    Error::Handshake {
        host: host.to_string(),
        port,
        reason,
        early_close,
        source: Some(Box::new(e)),
    }
}
