//! Who to connect as, how to authenticate, how to trust the host, and how
//! long to wait.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::algorithms::{AlgorithmList, Algorithms};
use crate::auth::Auth;
use crate::error::Error;
use crate::host_key::HostKeyPolicy;

/// The default receive window of a channel: big enough for long links
/// (russh refills it once half is used, so 8-16 MiB per round trip),
/// small enough that a stalled consumer lets the remote writer get less
/// than 32 MiB ahead. Measured through a delaying relay in BENCHMARKS.md.
const DEFAULT_WINDOW: u32 = 16 * 1024 * 1024;

/// How long a plain transfer's SFTP channel is kept for the next one: long
/// enough for the calls of one piece of work (an upload, then the command
/// that uses it, then a download), short enough that an idle session does
/// not keep an `sftp-server` for long.
const DEFAULT_SFTP_IDLE: Duration = Duration::from_secs(10);

/// Connection settings, built with by-value setters.
///
/// Cheap to clone: a fleet hands one copy to each VM. Problems (no
/// authentication method, an unreadable key) are reported by
/// [`Session::connect`](crate::Session::connect), not here.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use vmssh::{Auth, HostKeyPolicy, SshConfig};
///
/// let cfg = SshConfig::new("root")
///     .auth(Auth::key_file("/home/me/.ssh/id_ed25519"))
///     .auth(Auth::agent())
///     .host_key(HostKeyPolicy::known_hosts("/home/me/.ssh/known_hosts"))
///     .connect_timeout(Duration::from_secs(10));
/// # let _ = cfg;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SshConfig {
    pub(crate) user: String,
    pub(crate) auth: Vec<Auth>,
    pub(crate) host_key: HostKeyPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) connect_stagger: Option<Duration>,
    pub(crate) parallel_connects: usize,
    pub(crate) algorithms: Algorithms,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) keepalive_max: usize,
    pub(crate) inactivity_timeout: Option<Duration>,
    pub(crate) max_channels: usize,
    pub(crate) sftp_idle_timeout: Duration,
    pub(crate) max_output: usize,
    pub(crate) window_size: u32,
    pub(crate) max_packet_size: u32,
    pub(crate) channel_buffer_size: usize,
    pub(crate) nodelay: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) forward_agent: ForwardAgent,
}

/// Where a session forwards the agent ([`SshConfig::forward_agent`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum ForwardAgent {
    /// Not forwarded.
    #[default]
    Off,
    /// To the agent at `SSH_AUTH_SOCK`, read when the server connects to it.
    Env,
    /// To the agent listening at this socket.
    At(PathBuf),
}

impl SshConfig {
    /// Settings for logging in as `user`, with the defaults below and no
    /// authentication method yet.
    pub fn new(user: impl Into<String>) -> Self {
        SshConfig {
            user: user.into(),
            auth: Vec::new(),
            host_key: HostKeyPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            connect_stagger: Some(DEFAULT_STAGGER),
            parallel_connects: DEFAULT_PARALLEL,
            algorithms: Algorithms::default(),
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            inactivity_timeout: None,
            max_channels: 10,
            sftp_idle_timeout: DEFAULT_SFTP_IDLE,
            max_output: 64 * 1024 * 1024,
            window_size: DEFAULT_WINDOW,
            max_packet_size: 32 * 1024,
            channel_buffer_size: 100,
            nodelay: true,
            retry: RetryPolicy::default(),
            forward_agent: ForwardAgent::Off,
        }
    }

    /// The user name.
    pub fn user_name(&self) -> &str {
        &self.user
    }

    /// The authentication methods, in the order they are tried.
    pub fn auth_methods(&self) -> &[Auth] {
        &self.auth
    }

    /// How the server's host key is checked.
    pub fn host_key_policy(&self) -> &HostKeyPolicy {
        &self.host_key
    }

    /// Adds an authentication method. Methods are tried in the order added
    /// until the server accepts one.
    ///
    /// Default: none (connect fails with [`Error::Config`]).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth.push(auth);
        self
    }

    /// Sets how the server's host key is verified.
    ///
    /// Default: [`HostKeyPolicy::known_hosts`] on `~/.ssh/known_hosts`
    /// (unknown hosts are refused).
    pub fn host_key(mut self, policy: HostKeyPolicy) -> Self {
        self.host_key = policy;
        self
    }

    /// Sets the limit for one connection attempt: TCP connect, banner, key exchange
    /// and authentication together.
    ///
    /// Default: 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets, while retrying ([`Session::connect_with_retry`](crate::Session::connect_with_retry),
    /// fleets), how long an established connection may stay silent (the
    /// server's banner not yet begun) before another one starts beside it;
    /// the first connection the server speaks on is used and the others are
    /// closed. A VM booting
    /// behind QEMU's user-mode network accepts connections seconds before
    /// its sshd can answer them, and leaves them silent: a fresh connection
    /// reaches the sshd as soon as it listens. `None`: one connection at a
    /// time, each waiting up to [`connect_timeout`](Self::connect_timeout).
    ///
    /// Default: 250 ms.
    pub fn connect_stagger(mut self, stagger: Option<Duration>) -> Self {
        self.connect_stagger = stagger;
        self
    }

    /// Sets the most connections open at once while waiting for the server to
    /// answer (see [`connect_stagger`](Self::connect_stagger)). The first is
    /// kept to the end; with the limit reached, the oldest of the others is
    /// closed for a fresh one. In a [`Fleet`](crate::fleet::Fleet) each one
    /// counts against the fleet's
    /// [`connect_concurrency`](crate::fleet::Fleet::connect_concurrency).
    ///
    /// Default: 4 (1 disables parallel connections).
    pub fn parallel_connects(mut self, n: usize) -> Self {
        self.parallel_connects = n.max(1);
        self
    }

    /// Sets the key exchange algorithms offered, most preferred first, as
    /// OpenSSH's `KexAlgorithms` takes them: names (or comma-separated
    /// lists of names), replacing the defaults; or, when the first starts
    /// with `+`, `-` or `^`, the defaults with these appended, removed or
    /// put first. An unsupported name fails `connect` with
    /// [`Error::UnsupportedAlgorithm`].
    ///
    /// Default: `mlkem768x25519-sha256`, `curve25519-sha256`,
    /// `curve25519-sha256@libssh.org`, `ecdh-sha2-nistp256`, `-nistp384`,
    /// `-nistp521`, `diffie-hellman-group-exchange-sha256`,
    /// `diffie-hellman-group16-sha512`, `-group18-sha512`,
    /// `-group14-sha256`, `-group15-sha512`, `-group17-sha512`: every
    /// default of OpenSSH's client this crate implements (all but
    /// `sntrup761x25519-sha512@openssh.com`).
    ///
    /// # Example
    ///
    /// ```
    /// use vmssh::SshConfig;
    ///
    /// // An old appliance: allow SHA-1 Diffie-Hellman on top of the defaults.
    /// let cfg = SshConfig::new("admin").kex_algorithms(["+diffie-hellman-group14-sha1"]);
    /// # let _ = cfg;
    /// ```
    pub fn kex_algorithms<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms.kex = AlgorithmList::new(names);
        self
    }

    /// Sets the ciphers offered, as OpenSSH's `Ciphers` takes them (see
    /// [`kex_algorithms`](Self::kex_algorithms) for the syntax).
    ///
    /// Takes [`Cipher`](crate::Cipher)s as well as names. Beyond the defaults, the CBC
    /// modes can be asked for (`+aes128-cbc`), for old appliances.
    ///
    /// Default: [`Cipher::preferred`](crate::Cipher::preferred): OpenSSH's defaults, AES-GCM first
    /// where this CPU has AES instructions (checked at run time), else
    /// chacha20-poly1305 first.
    pub fn ciphers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms.ciphers = AlgorithmList::new(names);
        self
    }

    /// Sets the MACs offered (used with ciphers that have no integrity of
    /// their own, the CTR and CBC modes), as OpenSSH's `MACs` takes them (see
    /// [`kex_algorithms`](Self::kex_algorithms) for the syntax).
    ///
    /// Default: `hmac-sha2-256-etm@openssh.com`,
    /// `hmac-sha2-512-etm@openssh.com`, `hmac-sha1-etm@openssh.com`,
    /// `hmac-sha2-256`, `hmac-sha2-512`, `hmac-sha1`: OpenSSH's defaults
    /// but the `umac-*` ones, which this crate does not implement.
    pub fn macs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms.macs = AlgorithmList::new(names);
        self
    }

    /// Sets the host key signature algorithms offered, as OpenSSH's
    /// `HostKeyAlgorithms` takes them (see
    /// [`kex_algorithms`](Self::kex_algorithms) for the syntax). The host
    /// key policy still puts the types it knows for the host first, as
    /// OpenSSH does.
    ///
    /// Default: `ssh-ed25519`, `ecdsa-sha2-nistp256`, `-nistp384`,
    /// `-nistp521`, `rsa-sha2-512`, `rsa-sha2-256`, `ssh-rsa`.
    pub fn host_key_algorithms<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms.host_keys = AlgorithmList::new(names);
        self
    }

    /// Sets whether to ask for compression (`zlib@openssh.com`, then
    /// `zlib`), as OpenSSH's `Compression yes`. It saves bandwidth on slow
    /// links with compressible data and costs CPU everywhere else.
    ///
    /// Default: false (no compression, unless a server offers nothing
    /// else).
    pub fn compression(mut self, on: bool) -> Self {
        self.algorithms.compression = on;
        self
    }

    /// Sets how long without hearing from the server before a keepalive is sent;
    /// `None` disables keepalives.
    ///
    /// Default: 15 s.
    pub fn keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keepalive_interval = interval;
        self
    }

    /// Sets how many unanswered keepalives declare the connection lost.
    ///
    /// Default: 3.
    pub fn keepalive_max(mut self, count: usize) -> Self {
        self.keepalive_max = count;
        self
    }

    /// Sets how long without any traffic in either direction closes the
    /// connection; `None` disables it.
    ///
    /// Default: none.
    pub fn inactivity_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.inactivity_timeout = timeout;
        self
    }

    /// Sets how many channels (commands, SFTP sessions) may be open at once on one
    /// session. Callers beyond the limit wait for a free slot.
    ///
    /// Default: 10, OpenSSH's `MaxSessions`.
    pub fn max_channels(mut self, n: usize) -> Self {
        self.max_channels = n.max(1);
        self
    }

    /// Sets how long the SFTP channel of a session's plain transfers
    /// ([`Session::upload`](crate::Session::upload),
    /// [`download`](crate::Session::download), their variants, the
    /// directory transfers and [`Session::sftp`](crate::Session::sftp)) is
    /// kept open after one ends, for the next to use: each transfer after
    /// the first then spares the channel open, the subsystem start and the
    /// SFTP init (four round trips). A kept channel takes one of the
    /// session's channels, and gives way at once when an open finds none
    /// free; it is closed with the last clone of the session, or by
    /// [`Session::close`](crate::Session::close). Zero keeps none: each
    /// transfer opens its own.
    ///
    /// Only on servers where a channel's end cannot take down a channel
    /// being opened at that moment (OpenSSH; dropbear 2024.86 and later,
    /// as [`Session::server_id`](crate::Session::server_id) shows): on
    /// others each transfer opens its own, whatever this is set to.
    ///
    /// Default: 10 seconds.
    pub fn sftp_idle_timeout(mut self, idle: Duration) -> Self {
        self.sftp_idle_timeout = idle;
        self
    }

    /// Sets the most bytes [`Session::exec`](crate::Session::exec) collects
    /// (stdout and stderr together) before failing with
    /// [`Error::OutputTooLarge`].
    ///
    /// Default: 64 MiB.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Sets the SSH flow-control window advertised for each channel: how
    /// many bytes the server may send on a channel before this side has
    /// taken them in. On a long link it caps what one channel moves per
    /// round trip (16 MiB is 320 MB/s at 50 ms). It costs no memory on this
    /// side, since a consumer that stops reading stops the session's reader
    /// (see [`channel_buffer_size`](Self::channel_buffer_size)), but a
    /// stalled channel lets the remote program write up to this much ahead
    /// into the server's buffers.
    ///
    /// Default: 16 MiB (OpenSSH's client: 2 MiB; see BENCHMARKS.md).
    pub fn window_size(mut self, bytes: u32) -> Self {
        self.window_size = bytes;
        self
    }

    /// Sets the largest data packet the server may send.
    ///
    /// Default: 32 KiB.
    pub fn max_packet_size(mut self, bytes: u32) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// Sets how many incoming messages each channel may queue before the session
    /// stops reading from the socket (backpressure is per connection).
    ///
    /// Default: 100.
    pub fn channel_buffer_size(mut self, messages: usize) -> Self {
        self.channel_buffer_size = messages.max(1);
        self
    }

    /// Sets whether Nagle's algorithm is disabled on the socket.
    ///
    /// Default: true (interactive writes and small commands go out at once).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// How connecting is retried (see [`retry`](Self::retry)).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sets how [`Session::connect_with_retry`](crate::Session::connect_with_retry)
    /// and fleets retry: the backoff, whether refused logins are retried,
    /// who is told about each retry.
    ///
    /// Default: [`RetryPolicy::default`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets whether the local ssh-agent is forwarded to the server, as
    /// `ssh -A` does: each command (and shell) asks the server for an
    /// agent (`auth-agent-req@openssh.com`), and programs it runs
    /// (`ssh-add -l`, `git` over SSH, a further `ssh`) reach the agent at
    /// `SSH_AUTH_SOCK` here through the session. The agent is reachable
    /// only while a command that asked for it runs: the server's agent
    /// connections are refused when none does.
    /// [`Command::forward_agent`](crate::Command::forward_agent) overrides
    /// this per command; file transfers never ask.
    ///
    /// Where `SSH_AUTH_SOCK` is not set when a command starts, the command
    /// runs without an agent and a warning is logged (OpenSSH, too, goes on
    /// without one). A server that refuses forwarding (sshd's
    /// `AllowAgentForwarding no`, dropbear's `-j`) is not an error either:
    /// the command runs without an agent, and a warning is logged.
    ///
    /// # Security
    ///
    /// As OpenSSH's manual warns: users who can bypass file permissions on
    /// the server (root) can reach the local agent through the forwarded
    /// connection while a command runs, and authenticate as you with its
    /// keys wherever they are accepted. They cannot read the keys
    /// themselves. Forward the agent only to hosts you trust.
    ///
    /// Default: false (as OpenSSH).
    pub fn forward_agent(mut self, on: bool) -> Self {
        self.forward_agent = if on {
            ForwardAgent::Env
        } else {
            ForwardAgent::Off
        };
        self
    }

    /// Forwards the agent listening at `socket` instead of the one at
    /// `SSH_AUTH_SOCK` (ssh_config's `ForwardAgent /path`); otherwise as
    /// [`forward_agent(true)`](Self::forward_agent), its security note
    /// included.
    pub fn forward_agent_at(mut self, socket: impl Into<PathBuf>) -> Self {
        self.forward_agent = ForwardAgent::At(socket.into());
        self
    }

    /// Whether the agent is forwarded ([`forward_agent`](Self::forward_agent)).
    pub fn forwards_agent(&self) -> bool {
        self.forward_agent != ForwardAgent::Off
    }
}

/// What [`RetryPolicy::on_retry`] is given before each retry.
type RetryObserver = dyn Fn(&ConnectRetry<'_>) + Send + Sync;

/// Backoff between connection attempts: exponential from `initial`, capped
/// at `max`, with random jitter so that many clients do not retry in step;
/// which failures are retried; and who is told about each retry.
///
/// # Example
///
/// A VM that installs its key after its sshd starts (cloud-init does), with
/// each retry shown:
///
/// ```
/// use vmssh::{RetryPolicy, SshConfig};
///
/// let policy = RetryPolicy::default()
///     .retry_auth_failures(true)
///     .on_retry(|r| eprintln!("vm1: {r}")); // "retrying (connection refused), 3 s of 120 s"
/// let cfg = SshConfig::new("vm").retry(policy);
/// # let _ = cfg;
/// ```
#[derive(Clone)]
#[must_use]
pub struct RetryPolicy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) factor: f64,
    pub(crate) auth_failures: bool,
    pub(crate) on_retry: Option<Arc<RetryObserver>>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("initial", &self.initial)
            .field("max", &self.max)
            .field("factor", &self.factor)
            .field("retry_auth_failures", &self.auth_failures)
            .field("on_retry", &self.on_retry.is_some())
            .finish()
    }
}

impl PartialEq for RetryPolicy {
    /// Equal when the delays and the choice of failures are, and both
    /// observe retries through the same function (or neither does).
    fn eq(&self, other: &Self) -> bool {
        self.initial == other.initial
            && self.max == other.max
            && self.factor == other.factor
            && self.auth_failures == other.auth_failures
            && match (&self.on_retry, &other.on_retry) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Default for RetryPolicy {
    /// 25 ms, doubling, capped at 250 ms: a server that starts listening is
    /// reached within about a quarter of a second. Authentication failures
    /// are not retried; no observer.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(25),
            max: Duration::from_millis(250),
            factor: 2.0,
            auth_failures: false,
            on_retry: None,
        }
    }
}

impl RetryPolicy {
    /// A policy with the given first delay and cap, doubling in between.
    pub fn new(initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            initial,
            max: max.max(initial),
            ..RetryPolicy::default()
        }
    }

    /// Sets the growth factor between attempts (at least 1).
    ///
    /// Default: 2.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            2.0
        };
        self
    }

    /// Sets whether a refused login is retried until the deadline, like a
    /// refused connection: every authentication method rejected, or the
    /// server ending the connection during authentication. A booting VM
    /// may start its sshd before its key is installed (cloud-init writes
    /// `authorized_keys` after sshd starts). Host key errors, keys that
    /// cannot be read and other configuration errors still fail at once.
    ///
    /// While the server keeps the connection open, the login is tried
    /// again on it every second, and a new connection is made only when
    /// the server ends it (sshd's `MaxAuthTries`), at most one every
    /// 5 seconds: OpenSSH 9.8 and later penalise an address 5 s for each
    /// connection that failed to log in and refuse it for a while once
    /// the penalties pass 15 s (`PerSourcePenalties`); this pace stays
    /// below that. A key that lands is used within about a second.
    ///
    /// When the deadline passes, the error is the last
    /// [`Error::AuthFailed`], saying how long
    /// login kept failing.
    ///
    /// Default: false (a wrong key fails at once instead of taking the
    /// whole deadline).
    pub fn retry_auth_failures(mut self, on: bool) -> Self {
        self.auth_failures = on;
        self
    }

    /// Calls `observer` before each retry (of a connection, or of a login
    /// on the same connection) with what failed and how long retrying
    /// has taken so far, for a progress line. It runs on the connecting
    /// task: keep it quick. Each retry is also a `tracing` event (`DEBUG`,
    /// `INFO` for a refused login).
    ///
    /// Default: none.
    pub fn on_retry(
        mut self,
        observer: impl Fn(&ConnectRetry<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_retry = Some(Arc::new(observer));
        self
    }

    /// Whether refused logins are retried
    /// ([`retry_auth_failures`](Self::retry_auth_failures)).
    pub fn retries_auth_failures(&self) -> bool {
        self.auth_failures
    }

    /// The delay before retry number `attempt` (0-based), without jitter.
    pub(crate) fn base_delay(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.min(64) as i32);
        let secs = self.initial.as_secs_f64() * exp;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay with "equal jitter": half fixed, half random.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        let half = base / 2;
        let jitter = rand::random::<f64>();
        half + half.mul_f64(jitter)
    }
}

/// One retry of [`Session::connect_with_retry`](crate::Session::connect_with_retry)
/// (and of fleets), as [`RetryPolicy::on_retry`] sees it: the attempt that
/// failed, why, and how far retrying has got.
///
/// Its `Display` is a progress line: `retrying (connection refused), 12 s
/// of 120 s`.
#[derive(Debug)]
pub struct ConnectRetry<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) attempt: u32,
    pub(crate) elapsed: Duration,
    pub(crate) deadline: Duration,
    pub(crate) delay: Duration,
    pub(crate) error: &'a Error,
}

impl ConnectRetry<'_> {
    /// The host being connected to.
    pub fn host(&self) -> &str {
        self.host
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many attempts have failed so far, this one included (1 for the
    /// first). A login tried again on the same connection counts as an
    /// attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Time since connecting began.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The deadline given to `connect_with_retry` (or the fleet's
    /// connect deadline), from when connecting began.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// How long until the next attempt.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Why the attempt failed.
    pub fn error(&self) -> &Error {
        self.error
    }

    /// Whether the login was refused (the server is up, the key is not
    /// accepted yet), as opposed to the server not answering.
    pub fn is_auth(&self) -> bool {
        self.error.is_auth()
    }

    /// A few words on why the attempt failed, for a progress line:
    /// `connection refused`, `timed out`, `connection closed by the
    /// server`, `login refused`.
    pub fn reason(&self) -> String {
        match self.error {
            Error::Connect { source, .. } => match source.kind() {
                std::io::ErrorKind::Other => source.to_string(),
                kind => kind.to_string(),
            },
            Error::ConnectTimeout { .. } => "timed out".to_string(),
            Error::Handshake { reason, .. } => reason.clone(),
            Error::AuthFailed { .. } => "login refused".to_string(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ConnectRetry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retrying ({}), {} s of {} s",
            self.reason(),
            self.elapsed.as_secs(),
            self.deadline.as_secs()
        )
    }
}

/// The time the first attempt of a connect may stay silent before a
/// second one starts, by default.
pub(crate) const DEFAULT_STAGGER: Duration = Duration::from_millis(250);

/// Connections open at once for one connect, by default.
pub(crate) const DEFAULT_PARALLEL: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_host_key_policy_say_what_they_are_without_secrets() {
        let cfg = SshConfig::new("root")
            .auth(Auth::key_file("/k/id").certificate("/k/id-cert.pub"))
            .auth(Auth::key_pem("-----BEGIN OPENSSH PRIVATE KEY-----"))
            .auth(Auth::agent())
            .auth(Auth::agent_at("/run/agent.sock"))
            .auth(Auth::password("hunter2"))
            .host_key(HostKeyPolicy::per_instance("/vm/known_hosts", "i-42"));
        let methods: Vec<String> = cfg.auth_methods().iter().map(ToString::to_string).collect();
        assert_eq!(
            methods,
            [
                "key /k/id, certificate /k/id-cert.pub",
                "key <in-memory>",
                "agent",
                "agent at /run/agent.sock",
                "password"
            ]
        );
        assert_eq!(
            cfg.host_key_policy().to_string(),
            "accept-new /vm/known_hosts as i-42"
        );
        for (policy, shown) in [
            (HostKeyPolicy::known_hosts("/kh"), "known_hosts /kh"),
            (HostKeyPolicy::accept_new("/kh"), "accept-new /kh"),
            (HostKeyPolicy::pinned("ssh-ed25519 AAAA"), "pinned (1 key)"),
            (
                HostKeyPolicy::insecure_accept_any(),
                "insecure: any key accepted",
            ),
        ] {
            assert_eq!(policy.to_string(), shown);
        }
    }

    #[test]
    fn retry_lines_say_why_and_how_far() {
        let refused = Error::Connect {
            host: "h".into(),
            port: 22,
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let r = ConnectRetry {
            host: "h",
            port: 22,
            attempt: 3,
            elapsed: Duration::from_millis(12_400),
            deadline: Duration::from_secs(120),
            delay: Duration::from_millis(250),
            error: &refused,
        };
        assert_eq!(
            r.to_string(),
            "retrying (connection refused), 12 s of 120 s"
        );
        assert!(!r.is_auth());
        let refused_login = Error::AuthFailed {
            host: "h".into(),
            port: 22,
            user: "vm".into(),
            tried: vec!["publickey".into()],
            failures: Vec::new(),
            kept_failing: None,
        };
        let r = ConnectRetry {
            error: &refused_login,
            ..r
        };
        assert_eq!(r.reason(), "login refused");
        assert!(r.is_auth());
    }

    #[test]
    fn policies_compare_by_settings_and_observer() {
        let a = RetryPolicy::default();
        assert_eq!(a, RetryPolicy::default());
        assert_ne!(a, RetryPolicy::default().retry_auth_failures(true));
        let observed = a.clone().on_retry(|_| {});
        assert_ne!(a, observed);
        assert_eq!(observed, observed.clone());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.base_delay(0), Duration::from_millis(25));
        assert_eq!(p.base_delay(1), Duration::from_millis(50));
        assert_eq!(p.base_delay(3), Duration::from_millis(200));
        assert_eq!(p.base_delay(4), Duration::from_millis(250));
        assert_eq!(p.base_delay(1000), Duration::from_millis(250));
        for a in 0..10 {
            let d = p.delay(a);
            assert!(d >= p.base_delay(a) / 2 && d <= p.base_delay(a));
        }
    }
}
