//! An SSH server inside the test process, for tests, demos, scale runs and
//! fault injection.
//!
//! [`TestServer`] listens on `127.0.0.1` on a free port, with a fresh
//! ed25519 host key and a fresh client key that it authorizes, and hands
//! out everything a client needs ([`TestServer::config`]). It does real
//! work, not canned answers:
//!
//! - `exec` runs the command through `/bin/sh -c` as the current user, in
//!   the configured directory and environment (`env` requests are
//!   honoured), with stdin, stdout, stderr and the exit status or signal
//!   bridged to the channel with flow control both ways: output is read in
//!   32 KiB chunks, each sent only when the client's window has room, so a
//!   client that stops reading blocks the command; client data reaches
//!   stdin through russh's bounded per-channel queue; EOF from the client
//!   closes stdin. Exit status (or `exit-signal`, named without `SIG`),
//!   EOF and CLOSE follow once the command exited *and* its output was
//!   drained. A `signal` request goes to the command's process group.
//! - `shell` runs `/bin/sh` reading commands from stdin.
//! - `pty-req` is accepted without allocating a terminal: `TERM` is set and
//!   stderr is merged into stdout (as on a terminal), but there is no line
//!   discipline (no `\r\n`, `isatty` is false).
//! - The `sftp` subsystem serves the local filesystem (paths used as
//!   given), or a directory as `/` ([`TestServerBuilder::sftp_root`]), as
//!   OpenSSH's sftp-server does: listings with `.`, `..` and `ls -l`
//!   lines, symlinks, `realpath` resolving them, and the `limits`,
//!   `fsync`, `hardlink`, `posix-rename`, `statvfs`, `fstatvfs`,
//!   `expand-path` and `copy-data` extensions. It ends with exit status 0
//!   when the client sends EOF, so OpenSSH's `ssh`, `sftp` and `scp` work
//!   against it as against sshd (tested in `tests/openssh_clients.rs`).
//! - Many connections, several channels each (at most
//!   [`max_sessions`](TestServerBuilder::max_sessions) open at once, like
//!   OpenSSH's `MaxSessions`).
//!
//! Faults are builder knobs: a VM still booting
//! ([`listen_after`](TestServerBuilder::listen_after),
//! [`drop_first_connections`](TestServerBuilder::drop_first_connections)),
//! refused credentials ([`reject_auth`](TestServerBuilder::reject_auth)),
//! an impostor ([`different_host_key`](TestServerBuilder::different_host_key)),
//! a connection that breaks mid-output
//! ([`close_after_output_bytes`](TestServerBuilder::close_after_output_bytes)),
//! a frozen VM ([`freeze_after_auth`](TestServerBuilder::freeze_after_auth),
//! [`TestServer::freeze`]), lost replies
//! ([`ignore_keepalives`](TestServerBuilder::ignore_keepalives)) and a
//! command run without an answer to its request
//! ([`unanswered_execs`](TestServerBuilder::unanswered_execs)); a server
//! that reaches for the client's agent whether asked or not
//! ([`probe_agent`](TestServerBuilder::probe_agent)).
//!
//! # Backpressure
//!
//! As on the client side, russh delivers a connection's incoming messages
//! from one loop: a command that does not read its stdin stalls that loop
//! once the channel's queue is full, and with it the other channels of the
//! same connection. Output flow control is per channel.
//!
//! # Example
//!
//! ```
//! use vmssh::Session;
//! use vmssh_testkit::TestServer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let server = TestServer::start().await?;
//!     let sess = Session::connect(server.host(), server.port(), &server.config()).await?;
//!     let out = sess.exec("echo hello; echo oops >&2; exit 3").await?;
//!     assert_eq!(out.stdout, b"hello\n");
//!     assert_eq!(out.stderr, b"oops\n");
//!     assert_eq!(out.status.code(), Some(3));
//!     Ok::<_, vmssh::Error>(())
//! })?;
//! # Ok(()) }
//! ```
//!
//! A VM that is still booting:
//!
//! ```
//! use std::time::Duration;
//! use vmssh::Session;
//! use vmssh_testkit::TestServer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! let server = TestServer::builder()
//!     .listen_after(Duration::from_millis(300))
//!     .drop_first_connections(2)
//!     .start()
//!     .await?;
//! let sess = Session::connect_with_retry(server.host(), server.port(), &server.config(), Duration::from_secs(30)).await?;
//! assert!(sess.exec("true").await?.status.success());
//! # Ok::<_, vmssh::Error>(())
//! # })?;
//! # Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod conn;
mod handler;
mod process;
pub mod qemu;
mod sftp;
mod tasks;
mod users;
mod valve;

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::{MethodKind, MethodSet, SshId};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use vmssh::{Auth, HostKeyPolicy, Session, SshConfig};
use vmssh::{Error, KeyErrorKind};

use self::handler::ConnHandler;
use self::tasks::Tasks;
use self::valve::Valves;

/// Pending connections the kernel queues for the accept loop.
const BACKLOG: u32 = 1024;

/// An SSH server running in this process on `127.0.0.1`.
///
/// Start it from inside a tokio runtime (its tasks are spawned there); it
/// serves until dropped. See the [module docs](self) for what it does.
///
/// # Drop behavior
///
/// Dropping the server stops it: the listener closes, every connection is
/// cut (clients see the connection lost), every running command's process
/// group is killed and all server tasks are cancelled.
///
/// A server task that panicked (a bug in the server, not a fault it was
/// asked to inject) is not hidden: `Drop` panics with the collected
/// messages, failing the test, unless the thread is already panicking, in
/// which case they are printed to stderr. [`failures`](Self::failures)
/// lists them earlier. Tasks still running at drop time cannot report.
pub struct TestServer {
    addr: SocketAddr,
    host_key_line: String,
    client_key_pem: String,
    client_key_line: String,
    user: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("host_key", &self.host_key_line)
            .field("options", &self.shared.opts)
            .finish_non_exhaustive()
    }
}

/// A password that does not show in `Debug` output.
#[derive(Clone)]
pub(crate) struct Password(pub(crate) String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the builder sets.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) password: Option<Password>,
    pub(crate) working_dir: Option<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) sftp_root: Option<PathBuf>,
    pub(crate) max_sessions: usize,
    pub(crate) listen_after: Option<Duration>,
    pub(crate) drop_first: u64,
    pub(crate) reject_auth: bool,
    pub(crate) different_host_key: bool,
    pub(crate) close_after_output: Option<u64>,
    pub(crate) freeze_after_auth: bool,
    pub(crate) ignore_keepalives: bool,
    pub(crate) unanswered_execs: u64,
    pub(crate) probe_agent: bool,
}

/// What the server's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: Options,
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) valves: Arc<Valves>,
    pub(crate) client_key: PublicKey,
    config: Arc<russh::server::Config>,
    accepted: AtomicU64,
    /// Exec requests still to leave unanswered.
    pub(crate) unanswered_execs: AtomicU64,
}

impl Shared {
    fn stop(&self) {
        self.valves.close_all();
        self.tasks.stop();
    }
}

/// Settings and faults for a [`TestServer`], applied by
/// [`start`](Self::start).
#[derive(Clone, Debug)]
#[must_use]
pub struct TestServerBuilder {
    opts: Options,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            opts: Options {
                password: None,
                working_dir: None,
                env: Vec::new(),
                sftp_root: None,
                max_sessions: 10,
                listen_after: None,
                drop_first: 0,
                reject_auth: false,
                different_host_key: false,
                close_after_output: None,
                freeze_after_auth: false,
                ignore_keepalives: false,
                unanswered_execs: 0,
                probe_agent: false,
            },
        }
    }
}

impl TestServerBuilder {
    /// Also accepts password authentication with this password (any user
    /// name).
    ///
    /// Default: public key authentication only.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.opts.password = Some(Password(password.into()));
        self
    }

    /// The directory commands run in.
    ///
    /// Default: the test process's working directory.
    pub fn working_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.opts.working_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Sets an environment variable for every command (on top of the test
    /// process's environment; `env` requests from the client come last).
    ///
    /// Default: the test process's environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts.env.push((key.into(), value.into()));
        self
    }

    /// Serves SFTP from this directory as `/` (`..` does not leave it;
    /// symlinks inside it can: a convenience, not a sandbox).
    ///
    /// Default: the real filesystem, paths used as given.
    pub fn sftp_root(mut self, dir: impl AsRef<Path>) -> Self {
        self.opts.sftp_root = Some(dir.as_ref().to_path_buf());
        self
    }

    /// How many session channels one connection may have open at once;
    /// further opens are refused until the client closes one.
    ///
    /// Default: 10, OpenSSH's `MaxSessions`.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.opts.max_sessions = n;
        self
    }

    /// Fault: a VM still booting. The port is bound (reserved) at once but
    /// connections are refused until `delay` has passed; then the server
    /// listens.
    ///
    /// Default: listen at once.
    pub fn listen_after(mut self, delay: Duration) -> Self {
        self.opts.listen_after = Some(delay);
        self
    }

    /// Fault: an SSH daemon not ready yet. The first `n` connections are
    /// accepted and closed at once, before the server's banner.
    ///
    /// Default: 0.
    pub fn drop_first_connections(mut self, n: u64) -> Self {
        self.opts.drop_first = n;
        self
    }

    /// Fault: every authentication attempt fails.
    ///
    /// Default: the client key (and the password, if set) are accepted.
    pub fn reject_auth(mut self) -> Self {
        self.opts.reject_auth = true;
        self
    }

    /// Fault: an impostor. The server presents a host key other than the
    /// one [`TestServer::host_public_key_line`] reports, so a client that
    /// pins the reported key refuses it.
    ///
    /// Default: the reported key is presented.
    pub fn different_host_key(mut self) -> Self {
        self.opts.different_host_key = true;
        self
    }

    /// Fault: a connection that breaks. Once `bytes` bytes of command
    /// output (stdout and stderr, all channels of the connection) have been
    /// sent, the connection is cut without any SSH goodbye (no exit status,
    /// no channel close, no disconnect message). The client receives at
    /// most `bytes` bytes.
    ///
    /// Default: never.
    pub fn close_after_output_bytes(mut self, bytes: u64) -> Self {
        self.opts.close_after_output = Some(bytes);
        self
    }

    /// Fault: a VM that freezes once the client is logged in. Right after
    /// authentication succeeds, the server stops reading from and writing
    /// to each connection (the socket stays open), as with
    /// [`TestServer::freeze`].
    ///
    /// Default: off.
    pub fn freeze_after_auth(mut self) -> Self {
        self.opts.freeze_after_auth = true;
        self
    }

    /// Fault: keepalives go unanswered. russh answers
    /// `keepalive@openssh.com` inside its session loop, with no hook to
    /// intercept, so this knob works below SSH: right after authentication
    /// everything the server writes on each connection is dropped (a
    /// one-way network partition), while it keeps reading and running
    /// commands. The client hears nothing more, keepalive replies
    /// included.
    ///
    /// Default: off.
    pub fn ignore_keepalives(mut self) -> Self {
        self.opts.ignore_keepalives = true;
        self
    }

    /// Fault: a command runs, but its channel closes without an answer
    /// to the exec request, as dropbear 2022.83 does on a channel it is
    /// closing. The first `n` exec requests of the server are run and
    /// never answered: output, exit status and close follow as usual.
    ///
    /// Default: 0.
    pub fn unanswered_execs(mut self, n: u64) -> Self {
        self.opts.unanswered_execs = n;
        self
    }

    /// Fault: a server that reaches for the client's agent whether the
    /// channel asked for one or not. Agent forwarding requests
    /// (`auth-agent-req@openssh.com`) are accepted, and before each
    /// command runs the server opens an agent channel
    /// (`auth-agent@openssh.com`) and asks the agent for its identities.
    /// The command gets the outcome in `TESTKIT_AGENT`: `refused` (the
    /// client refused the channel), `N identities`, or `no answer`.
    ///
    /// Default: off (agent requests refused, no agent channel opened).
    pub fn probe_agent(mut self) -> Self {
        self.opts.probe_agent = true;
        self
    }

    /// Generates the keys, binds `127.0.0.1` on a free port and starts
    /// serving (or, with [`listen_after`](Self::listen_after), returns at
    /// once with the port reserved).
    ///
    /// Must be called inside a tokio runtime with I/O and time enabled;
    /// the server's tasks run on it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the socket cannot be bound; [`Error::Key`] when
    /// key generation fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future leaves nothing running.
    pub async fn start(self) -> Result<TestServer, Error> {
        let opts = self.opts;
        let generate = |e| key_error(KeyErrorKind::Unsupported, e);
        let host_key = new_key("vmssh-testkit-host").map_err(generate)?;
        let client_key = new_key("vmssh-testkit-client").map_err(generate)?;
        let presented = if opts.different_host_key {
            new_key("vmssh-testkit-impostor").map_err(generate)?
        } else {
            host_key.clone()
        };
        let encode = |e| key_error(KeyErrorKind::Malformed, e);
        let host_key_line = host_key.public_key().to_openssh().map_err(encode)?;
        let client_key_line = client_key.public_key().to_openssh().map_err(encode)?;
        let client_key_pem = client_key
            .to_openssh(LineEnding::LF)
            .map_err(encode)?
            .to_string();

        let socket = bind().map_err(|e| crate::io_error("testkit: cannot bind 127.0.0.1:0", e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| crate::io_error("testkit: cannot read the bound address", e))?;
        let listen =
            match opts.listen_after {
                None => Listen::Now(socket.listen(BACKLOG).map_err(|e| {
                    crate::io_error(format!("testkit: cannot listen on {addr}"), e)
                })?),
                Some(delay) => Listen::Later(socket, delay),
            };

        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        if opts.password.is_some() {
            methods.push(MethodKind::Password);
        }
        let config = russh::server::Config {
            server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-vmssh_testkit")),
            methods,
            // Tests want refusals fast; nobody is timing them to guess keys.
            auth_rejection_time: Duration::ZERO,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![presented],
            inactivity_timeout: None,
            nodelay: true,
            ..russh::server::Config::default()
        };
        let shared = Arc::new(Shared {
            unanswered_execs: AtomicU64::new(opts.unanswered_execs),
            opts,
            tasks: Arc::new(Tasks::default()),
            valves: Arc::new(Valves::default()),
            client_key: client_key.public_key().clone(),
            config: Arc::new(config),
            accepted: AtomicU64::new(0),
        });
        shared
            .tasks
            .spawn("accept loop", accept_loop(listen, shared.clone()));
        Ok(TestServer {
            addr,
            host_key_line,
            client_key_pem,
            client_key_line,
            user: users::current_user(),
            shared,
        })
    }
}

impl TestServer {
    /// Starts a server with the default settings: key authentication, no
    /// faults. Shorthand for `TestServer::builder().start()`.
    ///
    /// # Errors
    ///
    /// As [`TestServerBuilder::start`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn start() -> Result<TestServer, Error> {
        Self::builder().start().await
    }

    /// A builder for a server with settings or faults.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// The address the server listens on (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The user commands run as: the current user's name. The server
    /// accepts any user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server's host key as an OpenSSH public key line, for
    /// [`HostKeyPolicy::pinned`] or a `known_hosts` entry.
    pub fn host_public_key_line(&self) -> &str {
        &self.host_key_line
    }

    /// The authorized client key, as OpenSSH private key text for
    /// [`Auth::key_pem`] (or a key file).
    pub fn client_private_key_pem(&self) -> &str {
        &self.client_key_pem
    }

    /// The authorized client key's OpenSSH public key line.
    pub fn client_public_key_line(&self) -> &str {
        &self.client_key_line
    }

    /// A ready client configuration: the current user, the client key, the
    /// host key pinned. Adjust it with the usual setters.
    pub fn config(&self) -> SshConfig {
        SshConfig::new(self.user.clone())
            .auth(Auth::key_pem(self.client_key_pem.clone()))
            .host_key(HostKeyPolicy::pinned(self.host_key_line.clone()))
    }

    /// Connects to this server with [`config`](Self::config).
    ///
    /// # Errors
    ///
    /// As [`Session::connect`].
    ///
    /// # Cancel safety
    ///
    /// As [`Session::connect`].
    pub async fn connect(&self) -> Result<Session, Error> {
        Session::connect(self.host(), self.port(), &self.config()).await
    }

    /// Fault: freezes the server. Every connection, current and new, stops
    /// being read from and written to (sockets stay open, the kernel still
    /// accepts new TCP connections), until [`unfreeze`](Self::unfreeze).
    pub fn freeze(&self) {
        self.shared.valves.freeze_all();
    }

    /// Lets a frozen server run again; connections resume where they
    /// stopped.
    pub fn unfreeze(&self) {
        self.shared.valves.thaw_all();
    }

    /// Whether [`freeze`](Self::freeze) is in effect.
    pub fn is_frozen(&self) -> bool {
        self.shared.valves.is_frozen()
    }

    /// TCP connections accepted so far, including those dropped by
    /// [`drop_first_connections`](TestServerBuilder::drop_first_connections).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Panics in server tasks (and failures to start listening) so far,
    /// one message each. `Drop` reports them too.
    pub fn failures(&self) -> Vec<String> {
        self.shared.tasks.panics()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop();
        let failures = self.shared.tasks.panics();
        if failures.is_empty() {
            return;
        }
        let report = format!(
            "vmssh testkit server on {}: {} server task(s) failed:\n  {}",
            self.addr,
            failures.len(),
            failures.join("\n  ")
        );
        if std::thread::panicking() {
            eprintln!("{report}");
        } else {
            fail(report);
        }
    }
}

/// Fails the test that owns a server whose tasks panicked.
#[allow(clippy::panic)] // The point: a panic in a server task must fail the test.
fn fail(report: String) {
    panic!("{report}");
}

enum Listen {
    Now(TcpListener),
    Later(TcpSocket, Duration),
}

fn bind() -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    // Bound but not listening: the port is ours, and connections to it are
    // refused as by a host with nothing listening yet.
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(socket)
}

async fn accept_loop(listen: Listen, shared: Arc<Shared>) {
    let listener = match listen {
        Listen::Now(l) => l,
        Listen::Later(socket, delay) => {
            tokio::time::sleep(delay).await;
            match socket.listen(BACKLOG) {
                Ok(l) => l,
                Err(e) => {
                    shared
                        .tasks
                        .record_panic("accept loop", format!("cannot listen: {e}"));
                    return;
                }
            }
        }
    };
    loop {
        let socket = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors or a connection reset while queued:
                // back off briefly instead of spinning on the same error.
                tracing::debug!("testkit: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let n = shared.accepted.fetch_add(1, Ordering::SeqCst);
        if n < shared.opts.drop_first {
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        shared
            .tasks
            .spawn("connection", serve_connection(socket, shared.clone()));
    }
}

async fn serve_connection(socket: TcpStream, shared: Arc<Shared>) {
    let stream = shared.valves.wrap(socket);
    let handler = ConnHandler::new(shared.clone(), stream.valve());
    let Ok(session) = russh::server::run_stream(shared.config.clone(), stream, handler).await
    else {
        return;
    };
    // russh runs the session (and our handler) in a task of its own; a
    // join error there is a panic in the handler (the task is never
    // aborted: stopping the server cuts its socket instead).
    if let Err(russh::Error::Join(_)) = session.await
        && !shared.tasks.is_stopped()
    {
        shared.tasks.record_panic(
            "connection",
            "the SSH session task panicked (its message was printed above)".to_string(),
        );
    }
}

/// An I/O failure, with what was being done.
pub(crate) fn io_error(context: impl Into<String>, source: std::io::Error) -> Error {
    Error::Io {
        context: context.into(),
        source,
    }
}

fn key_error(kind: KeyErrorKind, e: russh::keys::ssh_key::Error) -> Error {
    Error::Key {
        origin: "<testkit>".to_string(),
        kind,
        source: Some(Box::new(e)),
    }
}

fn new_key(comment: &str) -> Result<PrivateKey, russh::keys::ssh_key::Error> {
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)?;
    key.set_comment(comment);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;

    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_server_task_fails_the_drop() {
        let server = TestServer::start().await.unwrap();
        server
            .shared
            .tasks
            .spawn("test task", async { panic!("boom") });
        for _ in 0..1000 {
            if !server.failures().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(server.failures(), ["test task: boom"]);
        let dropped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(server)));
        let payload = dropped.unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(message.contains("test task: boom"), "{message}");
    }

    #[tokio::test]
    async fn a_clean_server_drops_quietly() {
        let server = TestServer::builder().password("pw").start().await.unwrap();
        assert!(server.failures().is_empty());
        assert!(
            !format!("{server:?}").contains("pw\""),
            "no password in Debug"
        );
        assert!(!format!("{server:?}").contains("PRIVATE KEY"));
        drop(server);
    }
}
