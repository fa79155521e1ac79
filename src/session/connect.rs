//! Connecting a [`Session`]: directly, through a jump host or over a
//! given stream, once or with retries; then handshake and login.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client;
use tokio::sync::Semaphore;

use super::Session;
use crate::algorithms::Resolved;
use crate::auth;
use crate::config::SshConfig;
use crate::connection::{
    ClientHandler, Connection, Idle, NoteServerId, Shared, Slots, handshake_error,
};
use crate::error::Error;
use crate::host_key::KeyAlgorithms;
use crate::retry::{LOGIN_CONNECTION_SPACING, LOGIN_MARGIN, LoginRetry, Retrying};

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
        let state = Arc::new(Shared::default());
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
        let server_id = Arc::new(std::sync::OnceLock::new());
        let stream = NoteServerId::new(stream, server_id.clone());
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
        let idle = Idle::new(cfg.sftp_idle_timeout);
        let conn = Arc::new(Connection {
            handle,
            host: host.to_string(),
            port,
            user: cfg.user.clone(),
            slots: Slots::new(cfg.max_channels),
            max_output: cfg.max_output,
            forward_agent: cfg.forward_agent.clone(),
            state,
            window: cfg.window_size,
            server_id,
            idle: Arc::downgrade(&idle),
        });
        // Always: a command may ask for the agent when the session does not.
        crate::agent_forward::serve_agent_channels(&conn);
        Ok(Session {
            inner: conn,
            idle: Some(idle),
        })
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
