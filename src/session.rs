//! `Session`: one authenticated SSH connection to one VM.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use tokio::sync::Semaphore;

use crate::algorithms::Resolved;
use crate::auth;
use crate::channel::{Closings, LiveChannels, Slots};
use crate::config::SshConfig;
use crate::error::Error;
use crate::forward::RemoteForwards;
use crate::host_key::{HostKeyPolicy, KeyAlgorithms};
use crate::retry::{LOGIN_CONNECTION_SPACING, LOGIN_MARGIN, LoginRetry, Retrying};

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
    pub(crate) channels: Arc<Slots>,
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
    /// What the server said when it sent a disconnect message, if it did.
    server_disconnect: Mutex<Option<String>>,
    /// Remote forwards, where the handler routes the tunnels the server
    /// brings.
    pub(crate) remote_forwards: RemoteForwards,
    /// Channels open now, counted in the server's message order.
    live: LiveChannels,
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

    /// The server's own disconnect message (`Too many authentication
    /// failures`), as opposed to a connection that just ended.
    pub(crate) fn server_disconnect(&self) -> Option<String> {
        self.server_disconnect.lock().ok().and_then(|s| s.clone())
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

    async fn channel_open_confirmation(
        &mut self,
        id: russh::ChannelId,
        _max_packet_size: u32,
        _window_size: u32,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.state.live.confirmed(id);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        id: russh::ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.state.live.closed(id);
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (key, cert) = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (key.clone(), None),
            PublicKeyOrCertificate::Certificate(cert) => {
                (PublicKey::new(cert.public_key().clone(), ""), Some(cert))
            }
        };
        self.policy
            .verify(&self.host, self.port, &key, cert)
            .await
            .map_err(HandlerError::HostKey)?;
        Ok(true)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        crate::forward::route_forwarded(
            &self.state.remote_forwards,
            channel,
            connected_address,
            connected_port,
            reply,
        )
        .await;
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                let reason = format!(
                    "server disconnected ({:?}): {}",
                    info.reason_code, info.message
                );
                if let Ok(mut slot) = self.state.server_disconnect.lock() {
                    slot.get_or_insert(reason.clone());
                }
                self.state.set_reason(reason);
                Ok(())
            }
            DisconnectReason::Error(e) => {
                let mut reason = describe_handler_error(&e);
                if ended_quietly(&e) && self.state.live.count() == 0 && self.state.live.peak() > 0 {
                    // Not proof, but the likeliest cause, and the one that
                    // needs explaining.
                    reason.push_str(
                        " with no channel open: the server may serve one channel per \
                         connection and end the connection when that channel closes, \
                         as tinysshd does",
                    );
                }
                self.state.set_reason(reason);
                Err(e)
            }
        }
    }
}

/// The server closed the connection without a disconnect message.
fn ended_quietly(e: &HandlerError) -> bool {
    matches!(
        e,
        HandlerError::Russh(russh::Error::IO(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            )
    ) || matches!(
        e,
        HandlerError::Russh(russh::Error::HUP | russh::Error::Disconnect)
    )
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

/// How a connection reaches its server.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route<'a> {
    /// A TCP connection from here.
    Direct,
    /// A `direct-tcpip` tunnel through this session.
    Via(&'a Session),
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
            Self::connect_inner(Route::Direct, host, port, cfg, false, None, None),
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
    /// follow [`SshConfig::retry`]: short at first, capped, jittered. With
    /// [`RetryPolicy::retry_auth_failures`](crate::RetryPolicy::retry_auth_failures),
    /// a refused login is retried too (a VM that installs its key after
    /// its sshd starts). Each retry is a `tracing` event and goes to
    /// [`RetryPolicy::on_retry`](crate::RetryPolicy::on_retry).
    ///
    /// # Errors
    ///
    /// Host key problems and configuration errors are returned at once, and
    /// so are authentication failures unless the policy retries them.
    /// Otherwise the last attempt's error once the deadline has passed (a
    /// refused login then says how long it kept failing).
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
        Self::connect_with_retry_gated(Route::Direct, host, port, cfg, deadline, None).await
    }

    /// Connects through `jump` like [`connect_via`](Self::connect_via),
    /// retrying what is worth retrying until `deadline` has passed, as
    /// [`connect_with_retry`](Self::connect_with_retry) does: a VM behind a
    /// bastion that is still booting (the jump cannot reach it yet, or its
    /// sshd closes the connection before the handshake).
    ///
    /// # Errors
    ///
    /// As [`connect_with_retry`](Self::connect_with_retry); a jump that
    /// refuses to forward or whose connection is gone is not retried.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the current attempt and closes its
    /// tunnel.
    pub async fn connect_via_with_retry(
        jump: &Session,
        host: &str,
        port: u16,
        cfg: &SshConfig,
        deadline: Duration,
    ) -> Result<Session, Error> {
        Self::connect_with_retry_gated(Route::Via(jump), host, port, cfg, deadline, None).await
    }

    /// [`connect_with_retry`](Self::connect_with_retry) along `route`,
    /// holding a permit of `gate` during each attempt (not during the
    /// backoff sleeps), so a fleet caps handshakes in flight without
    /// letting booting VMs block the ones that are up.
    pub(crate) async fn connect_with_retry_gated(
        route: Route<'_>,
        host: &str,
        port: u16,
        cfg: &SshConfig,
        deadline: Duration,
        gate: Option<&tokio::sync::Semaphore>,
    ) -> Result<Session, Error> {
        let retrying = Retrying::new(&cfg.retry, host, port, deadline);
        loop {
            let permit = match gate {
                Some(g) => g.acquire().await.ok(),
                None => None,
            };
            let started = Instant::now();
            let remaining = deadline.saturating_sub(retrying.elapsed());
            let limit = cfg
                .connect_timeout
                .min(remaining.max(Duration::from_millis(1)));
            // Logins retried on the connection stop in time to report
            // the refusal, not the attempt's timeout.
            let login = LoginRetry {
                retrying: &retrying,
                until: started + limit.saturating_sub(LOGIN_MARGIN),
            };
            let result = match tokio::time::timeout(
                limit,
                Self::connect_inner(route, host, port, cfg, true, gate, Some(&login)),
            )
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
                Err(e) if retrying.retryable(&e) => {
                    let mut delay = cfg.retry.delay(retrying.failed());
                    if e.login_refused() {
                        delay =
                            delay.max(LOGIN_CONNECTION_SPACING.saturating_sub(started.elapsed()));
                    }
                    if retrying.elapsed() + delay >= deadline {
                        return Err(retrying.give_up(e));
                    }
                    retrying.retrying(&e, delay);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_inner(
        route: Route<'_>,
        host: &str,
        port: u16,
        cfg: &SshConfig,
        parallel: bool,
        gate: Option<&Semaphore>,
        login: Option<&LoginRetry<'_, '_>>,
    ) -> Result<Session, Error> {
        check_auth_configured(cfg)?;
        match route {
            Route::Direct => {
                let socket = crate::dial::dial(host, port, cfg, parallel, gate).await?;
                Self::establish(socket, host, port, cfg, login).await
            }
            Route::Via(jump) => {
                let tunnel = jump.open_tcp(host, port).await?;
                Self::establish(tunnel, host, port, cfg, login).await
            }
        }
    }

    /// Runs an SSH session over any byte stream: a unix socket, a vsock
    /// connection, a child process's standard input and output
    /// (`ProxyCommand`), a tunnel through another session. `host` and
    /// `port` are what the host key is checked against and what errors and
    /// [`host`](Self::host) name; nothing connects to them. All within
    /// [`SshConfig::connect_timeout`].
    ///
    /// # Example
    ///
    /// A unix socket (a VM manager's console relay, say), and a
    /// `ProxyCommand`-style child process:
    ///
    /// ```no_run
    /// # async fn demo(cfg: vmssh::SshConfig) -> Result<(), Box<dyn std::error::Error>> {
    /// use vmssh::Session;
    ///
    /// let unix = tokio::net::UnixStream::connect("/run/vm1/ssh.sock").await?;
    /// let sess = Session::connect_stream(unix, "vm1", 22, &cfg).await?;
    ///
    /// let mut child = tokio::process::Command::new("nc")
    ///     .args(["10.0.0.7", "22"])
    ///     .stdin(std::process::Stdio::piped())
    ///     .stdout(std::process::Stdio::piped())
    ///     .kill_on_drop(true)
    ///     .spawn()?;
    /// let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    /// let via_child = Session::connect_stream(tokio::io::join(stdout, stdin), "10.0.0.7", 22, &cfg).await?;
    /// # let _ = (sess, via_child); Ok(()) }
    /// ```
    ///
    /// A QEMU guest whose systemd runs sshd on `AF_VSOCK` (systemd-ssh-generator),
    /// with the `tokio-vsock` crate:
    ///
    /// ```text
    /// let stream = tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, 22)).await?;
    /// let sess = Session::connect_stream(stream, "vm1", 22, &cfg).await?;
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), except [`Error::Connect`]: the stream
    /// is already connected. A stream that ends before the handshake gives
    /// [`Error::Handshake`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt and drops the stream.
    pub async fn connect_stream<S>(
        stream: S,
        host: &str,
        port: u16,
        cfg: &SshConfig,
    ) -> Result<Session, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        within(cfg.connect_timeout, host, port, async {
            check_auth_configured(cfg)?;
            Self::establish(stream, host, port, cfg, None).await
        })
        .await
    }

    /// Connects to `host:port` through `jump`: the server behind `jump`
    /// opens a TCP connection to `host:port` (`direct-tcpip`, as
    /// `ssh -J` does) and a full SSH session runs inside it, with its own
    /// host key check against `host:port` and its own authentication, all
    /// within `cfg`'s connect timeout.
    ///
    /// A session made this way can be the jump of another (chains), and
    /// many sessions can share one jump. Each holds one of `jump`'s channel
    /// slots ([`SshConfig::max_channels`]) for its lifetime: give the jump
    /// session a limit as large as the number of sessions through it. When
    /// the jump's connection ends, the sessions inside it end too, with
    /// [`Error::ConnectionLost`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(bastion_cfg: vmssh::SshConfig, vm_cfg: vmssh::SshConfig) -> Result<(), vmssh::Error> {
    /// use vmssh::Session;
    ///
    /// let bastion = Session::connect("bastion.example.com", 22, &bastion_cfg.max_channels(64)).await?;
    /// let vm = Session::connect_via(&bastion, "10.0.0.7", 22, &vm_cfg).await?;
    /// println!("{}", vm.exec("hostname").await?.stdout_lossy());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Tunnel`] (naming the jump and the target) when the jump
    /// refuses to forward (`AllowTcpForwarding no`) or cannot reach
    /// `host:port` (retryable: a VM still booting); otherwise as
    /// [`connect_stream`](Self::connect_stream).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt and closes the tunnel.
    pub async fn connect_via(
        jump: &Session,
        host: &str,
        port: u16,
        cfg: &SshConfig,
    ) -> Result<Session, Error> {
        within(
            cfg.connect_timeout,
            host,
            port,
            Self::connect_inner(Route::Via(jump), host, port, cfg, false, None, None),
        )
        .await
    }

    /// Handshake and authentication over a connected stream.
    async fn establish<S>(
        stream: S,
        host: &str,
        port: u16,
        cfg: &SshConfig,
        login: Option<&LoginRetry<'_, '_>>,
    ) -> Result<Session, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let algorithms = cfg.algorithms.resolve()?;
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
            .key_algorithms(host, port, &algorithms.preferred.key)
            .await;
        let config = Arc::new(russh_config(cfg, algorithms, key_order));
        let mut handle = client::connect_stream(config, stream, handler)
            .await
            .map_err(|e| handshake_error(host, port, e))?;
        let server_disconnect = {
            let state = state.clone();
            move || state.server_disconnect()
        };
        auth::authenticate(
            &mut handle,
            host,
            port,
            &cfg.user,
            &cfg.auth,
            &server_disconnect,
            login,
        )
        .await?;
        tracing::debug!(host, port, user = %cfg.user, "session established");
        Ok(Session {
            inner: Arc::new(Inner {
                handle,
                host: host.to_string(),
                port,
                user: cfg.user.clone(),
                channels: Slots::new(cfg.max_channels),
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

    /// How many channels this session keeps open at once:
    /// [`SshConfig::max_channels`], or fewer once the server has refused a
    /// channel while others were open (OpenSSH's `MaxSessions`, tinysshd's
    /// one channel). Callers beyond it wait for a channel to close.
    pub fn channel_limit(&self) -> usize {
        self.inner.channels.capacity()
    }

    /// Changes of [`channel_limit`](Self::channel_limit) from now on.
    pub(crate) fn channel_limit_changes(&self) -> tokio::sync::watch::Receiver<usize> {
        self.inner.channels.limit_changes()
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
        if !self.is_closed() {
            crate::channel::wait_for_closing(self).await;
        }
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

    /// As [`lost`](Self::lost), once the connection's task has ended:
    /// russh reports a connection closed before it tells the handler why,
    /// and the reason (a server disconnect message, or a quiet end with no
    /// channel open) is only known then. Bounded, in case the task lingers.
    pub(crate) async fn lost_after_end(&self, fallback: &str) -> Error {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.closed()).await;
        self.lost(fallback)
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
    pub(crate) fn channel_slots(&self) -> Arc<Slots> {
        self.inner.channels.clone()
    }

    /// Channels of this session open now.
    pub(crate) fn live_channels(&self) -> &LiveChannels {
        &self.inner.state.live
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

fn check_auth_configured(cfg: &SshConfig) -> Result<(), Error> {
    if cfg.auth.is_empty() {
        return Err(Error::Config {
            reason: "no authentication method configured (SshConfig::auth)".to_string(),
        });
    }
    Ok(())
}

/// `fut`, or [`Error::ConnectTimeout`] for `host:port` after `limit`.
async fn within<T>(
    limit: Duration,
    host: &str,
    port: u16,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::ConnectTimeout {
            host: host.to_string(),
            port,
            after: limit,
        }),
    }
}

fn russh_config(cfg: &SshConfig, algorithms: Resolved, host_keys: KeyAlgorithms) -> client::Config {
    let preferred = russh::Preferred {
        key: std::borrow::Cow::Owned(host_keys.keys),
        host_key_certificates: std::borrow::Cow::Owned(host_keys.certificates),
        ..algorithms.preferred
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
