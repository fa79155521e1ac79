//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed cause from a lower layer (I/O, the SSH implementation, SFTP).
///
/// Kept opaque so that a dependency's error types never become part of this
/// crate's API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in vmssh.
///
/// Variants carry the context needed to act on them (host, port, path, VM,
/// step); the underlying cause, where there is one, is available through
/// [`std::error::Error::source`] and is not repeated in `Display`. No variant
/// ever holds a password, passphrase or private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (for example no authentication method).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },

    /// An algorithm named in [`SshConfig`](crate::SshConfig) (key exchange,
    /// cipher, MAC, host key) is not one this crate implements, or a list
    /// was left empty. Reported by `connect`, before anything is sent.
    #[error(
        "unsupported {kind} algorithm {name:?} (supported: {})",
        supported.join(", ")
    )]
    UnsupportedAlgorithm {
        /// Which list it was in.
        kind: AlgorithmKind,
        /// The name as given (empty for an empty list).
        name: String,
        /// The names of that kind this crate implements.
        supported: Vec<String>,
    },

    /// The TCP connection could not be made (refused, reset, unreachable).
    #[error("cannot connect to {host}:{port}")]
    Connect {
        /// Host as given to `connect`.
        host: String,
        /// Port.
        port: u16,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Connecting (TCP, banner, key exchange and authentication) took longer
    /// than the configured connect timeout.
    #[error("connecting to {host}:{port} timed out after {after:?}")]
    ConnectTimeout {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The timeout that expired.
        after: Duration,
    },

    /// The server closed the connection or sent something unusable before
    /// the SSH handshake completed (a VM still booting often does this).
    #[error("SSH handshake with {host}:{port} failed: {reason}")]
    Handshake {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What went wrong.
        reason: String,
        /// Whether the connection ended before the server said anything
        /// useful (no banner, or closed during key exchange).
        early_close: bool,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },

    /// The server's host key is not trusted by the configured policy.
    #[error(
        "host key for {host}:{port} is unknown ({fingerprint}): not in {}; refusing to connect",
        known_hosts.display()
    )]
    HostKeyUnknown {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// SHA256 fingerprint of the key the server presented.
        fingerprint: String,
        /// The known_hosts file that was checked (it may not exist).
        known_hosts: PathBuf,
    },

    /// The server presented a key other than the one recorded for it.
    #[error(
        "host key for {host}:{port} has changed: expected {}, server presented {actual}; \
         possible man-in-the-middle, refusing to connect",
        expected.join(" or ")
    )]
    HostKeyChanged {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// SHA256 fingerprints of the recorded (trusted) keys.
        expected: Vec<String>,
        /// SHA256 fingerprint of the key the server presented.
        actual: String,
    },

    /// The server presented a key marked `@revoked` in known_hosts.
    #[error(
        "host key for {host}:{port} ({fingerprint}) is marked @revoked in known_hosts; \
         refusing to connect"
    )]
    HostKeyRevoked {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// SHA256 fingerprint of the revoked key the server presented.
        fingerprint: String,
    },

    /// The server presented a host certificate, known_hosts lists
    /// `@cert-authority` keys for the host, and the certificate does not
    /// pass (nor is its key trusted on its own).
    #[error(
        "host certificate for {host}:{port} ({fingerprint}, signed by {authority}) is refused: \
         {problem}"
    )]
    HostCertificateRefused {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// SHA256 fingerprint of the certified host key.
        fingerprint: String,
        /// SHA256 fingerprint of the key that signed the certificate.
        authority: String,
        /// What is wrong with the certificate.
        problem: HostCertificateProblem,
    },

    /// A known_hosts file could not be read or written, or a pinned key is
    /// not a valid OpenSSH public key line.
    #[error("host key store {}: {reason}", path.display())]
    HostKeyStore {
        /// The file (or `<pinned>` for pinned keys).
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },

    /// A private key could not be read or decoded.
    #[error("private key {origin}: {kind}")]
    Key {
        /// Where the key came from: a path, or `<in-memory>`.
        origin: String,
        /// What is wrong with it.
        kind: KeyErrorKind,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },

    /// The ssh-agent could not be reached or refused to sign.
    #[error("ssh-agent: {reason}")]
    Agent {
        /// What went wrong.
        reason: String,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },

    /// No configured authentication method got in. `failures` says why,
    /// attempt by attempt: rejected by the server, unusable here (no
    /// agent, unreadable key, expired certificate), or the server ended the
    /// connection (too many failed attempts: sshd's `MaxAuthTries`).
    #[error(
        "authentication as {user} on {host}:{port} {}: {}",
        AuthFailure::verb(kept_failing),
        AuthFailure::list(failures)
    )]
    AuthFailed {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// User name.
        user: String,
        /// The methods tried, in order (`publickey`, `agent`, `password`,
        /// `keyboard-interactive`).
        tried: Vec<String>,
        /// Why each attempt failed, in order (of the last login tried).
        failures: Vec<AuthFailure>,
        /// With [`RetryPolicy::retry_auth_failures`](crate::RetryPolicy::retry_auth_failures),
        /// how long login kept failing before the retry deadline passed
        /// (from the first refusal to the last); `None` when it was not
        /// retried.
        kept_failing: Option<Duration>,
    },

    /// The server refused to open a channel, or closed it before a
    /// command was requested on it (nothing ran).
    #[error("{host}:{port} refused to open a channel: {reason}")]
    ChannelOpen {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What the server said.
        reason: String,
    },

    /// The server refused a channel request (exec, env, pty, subsystem).
    #[error("{host}:{port} refused the {request} request")]
    RequestRefused {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The request (`exec`, `pty-req`, `subsystem sftp`, ...).
        request: String,
    },

    /// The connection was lost after it was established (server killed,
    /// network gone, keepalive unanswered, inactivity timeout).
    #[error("connection to {host}:{port} lost: {reason}")]
    ConnectionLost {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What was observed.
        reason: String,
    },

    /// The channel closed without the server reporting an exit status or
    /// signal. No exit code is invented.
    #[error("{host}:{port}: command ended without an exit status")]
    MissingExitStatus {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },

    /// A command ran longer than its timeout; its channel was closed.
    #[error("{host}:{port}: command timed out after {after:?}")]
    CommandTimeout {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The timeout.
        after: Duration,
    },

    /// `sudo` refused the password given with
    /// [`Command::sudo_password`](crate::Command::sudo_password): it asked
    /// again after the first answer. The command did not run (nothing of
    /// its stdin was sent); the password appears nowhere in the error.
    #[error("{host}:{port}: sudo rejected the password for {user}")]
    SudoPasswordRejected {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The SSH user, whose password sudo asks for (unless sudoers
        /// says `rootpw`, `targetpw` or `runaspw`).
        user: String,
    },

    /// Collected output exceeded the configured cap; the command's channel
    /// was closed.
    #[error("{host}:{port}: command output exceeded the limit of {limit} bytes")]
    OutputTooLarge {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The cap that was exceeded.
        limit: usize,
    },

    /// A local I/O operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The session was closed by this side
    /// ([`Session::close`](crate::Session::close)) before or during the
    /// operation.
    #[error("session to {host}:{port} is closed")]
    SessionClosed {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },

    /// An SFTP operation failed on the remote side.
    #[error("{host}:{port}: sftp {op} {path}: {kind}")]
    Sftp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The operation (`open`, `write`, `rename`, `mkdir`, ...).
        op: String,
        /// The remote path.
        path: String,
        /// What kind of failure the server reported.
        kind: SftpErrorKind,
        /// The server's message, or a description.
        #[source]
        source: Option<BoxError>,
    },

    /// A provisioning step failed; later steps did not run.
    #[error("provisioning {vm}: step {step} ({description}) failed: {reason}")]
    ProvisionFailed {
        /// VM name.
        vm: String,
        /// 1-based index of the failing step.
        step: usize,
        /// What the step was (`inline: apt-get update`, `script: setup.sh`, ...).
        description: String,
        /// Short reason (`exit status 7`, `killed by signal TERM`, ...).
        reason: String,
        /// The exit status, when the step was a command that ran to the end.
        status: Option<crate::status::ExitStatus>,
        /// The last lines of the step's stderr (boxed, as the stdout
        /// tail: keeps `Error` small).
        stderr_tail: Box<String>,
        /// The last lines of the step's stdout.
        stdout_tail: Box<String>,
        /// The underlying error, when the step did not complete (connection
        /// lost, upload failed, ...).
        #[source]
        source: Option<Box<Error>>,
    },

    /// A provisioning plan is invalid (bad KDL, missing local file, ...).
    #[error("invalid plan {origin}: {reason}")]
    Plan {
        /// The plan's file name, or `<inline>`; with `:line` where known.
        origin: String,
        /// What is wrong and what was expected.
        reason: String,
    },

    /// The server refused to open a TCP tunnel (`direct-tcpip`) to
    /// `to_host:to_port`: for [`Session::open_tcp`](crate::Session::open_tcp),
    /// a forward, or a session through a jump host.
    #[error("{host}:{port} cannot open a tunnel to {to_host}:{to_port}: {kind}")]
    Tunnel {
        /// The server asked (the jump host).
        host: String,
        /// Its port.
        port: u16,
        /// Where the tunnel was to go.
        to_host: String,
        /// Its port.
        to_port: u16,
        /// Why the server refused.
        kind: TunnelErrorKind,
    },

    /// A local forward could not listen on its address.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address, as resolved.
        addr: String,
        /// The I/O error (`AddrInUse`, `PermissionDenied`, ...).
        #[source]
        source: std::io::Error,
    },

    /// A `ProxyCommand` could not be started, or ended before the SSH
    /// session was established.
    #[error("proxy command `{command}` for {host}:{port}: {reason}")]
    ProxyCommand {
        /// Host the command was to reach.
        host: String,
        /// Port.
        port: u16,
        /// The command, as run by the shell.
        command: String,
        /// What happened (its exit status and the end of its stderr).
        reason: String,
    },

    /// An OpenSSH client configuration file (`~/.ssh/config`) is invalid:
    /// an unknown directive, an `Include` loop, a bad value, a token that
    /// cannot be expanded, or a file that cannot be read.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    SshConfig {
        /// The file.
        path: PathBuf,
        /// The 1-based line, when the problem is on one line.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
        /// Underlying cause (an I/O error).
        #[source]
        source: Option<BoxError>,
    },

    /// vmctl's VM state (`vms.json`) cannot be used as asked.
    #[error("vmctl state {}: {kind}", path.display())]
    Vmctl {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        kind: VmctlErrorKind,
        /// Underlying cause (the JSON error).
        #[source]
        source: Option<BoxError>,
    },

    /// Two fleet targets have the same name: their reports and logs would
    /// mix, so nothing was run.
    #[error("fleet targets {first} and {second} are both named {name:?}")]
    DuplicateTarget {
        /// The name.
        name: String,
        /// 1-based index of the first target with it.
        first: usize,
        /// 1-based index of the second.
        second: usize,
    },

    /// Any other protocol-level failure.
    #[error("{host}:{port}: SSH protocol error: {reason}")]
    Protocol {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Description.
        reason: String,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },
}

/// Why one authentication attempt did not get in.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The server rejected it.
    Rejected {
        /// The method and what it used (`publickey /home/me/.ssh/id`).
        method: String,
    },
    /// It could not be used, so it was skipped (no agent, unreadable key,
    /// missing or wrong passphrase, expired certificate).
    Unusable {
        /// The method and what it used.
        method: String,
        /// Why.
        error: Box<Error>,
    },
    /// The server ended the connection while it was being tried.
    Disconnected {
        /// The method and what it used.
        method: String,
        /// The server's disconnect message.
        message: String,
    },
}

impl AuthFailure {
    /// The method and what it used.
    pub fn method(&self) -> &str {
        match self {
            AuthFailure::Rejected { method }
            | AuthFailure::Unusable { method, .. }
            | AuthFailure::Disconnected { method, .. } => method,
        }
    }

    /// `failed`, or how long it kept failing while retried.
    fn verb(kept_failing: &Option<Duration>) -> String {
        match kept_failing {
            None => "failed".to_string(),
            Some(d) => format!(
                "kept failing for {:.1} s, until the retry deadline",
                d.as_secs_f64()
            ),
        }
    }

    fn list(failures: &[AuthFailure]) -> String {
        if failures.is_empty() {
            return "no method was tried".to_string();
        }
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFailure::Rejected { method } => write!(f, "{method}: rejected by the server"),
            AuthFailure::Unusable { method, error } => write!(f, "{method}: {error}"),
            AuthFailure::Disconnected { method, message } => {
                write!(f, "{method}: the server disconnected ({message})")
            }
        }
    }
}

/// Why a private key could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyErrorKind {
    /// The key file could not be read.
    Unreadable,
    /// The key is encrypted and no passphrase was given.
    PassphraseRequired,
    /// The passphrase did not decrypt the key.
    WrongPassphrase,
    /// The key's type is not supported.
    Unsupported,
    /// The data is not a valid private key (or certificate).
    Malformed,
    /// The certificate is not for this key.
    CertificateMismatch,
    /// The certificate's validity has ended.
    CertificateExpired,
    /// The certificate's validity has not begun.
    CertificateNotYetValid,
}

impl std::fmt::Display for KeyErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyErrorKind::Unreadable => "cannot read the key file",
            KeyErrorKind::PassphraseRequired => "key is encrypted and no passphrase was given",
            KeyErrorKind::WrongPassphrase => "wrong passphrase",
            KeyErrorKind::Unsupported => "unsupported key type",
            KeyErrorKind::Malformed => "not a valid private key",
            KeyErrorKind::CertificateMismatch => "the certificate is for another key",
            KeyErrorKind::CertificateExpired => "the certificate has expired",
            KeyErrorKind::CertificateNotYetValid => "the certificate is not valid yet",
        })
    }
}

/// Why a host certificate is refused ([`Error::HostCertificateRefused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostCertificateProblem {
    /// A user certificate, not a host certificate.
    NotForHosts,
    /// Signed by a key that no `@cert-authority` line lists for the host.
    UntrustedAuthority,
    /// Its validity has not begun.
    NotYetValid,
    /// Its validity has ended.
    Expired,
    /// Its principals name neither the host nor its `HostKeyAlias`.
    WrongPrincipal,
    /// It carries critical options, which no host certificate may.
    CriticalOptions,
    /// The authority's signature does not verify.
    BadSignature,
}

impl std::fmt::Display for HostCertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostCertificateProblem::NotForHosts => "it is a user certificate",
            HostCertificateProblem::UntrustedAuthority => {
                "no @cert-authority line in known_hosts lists its signer for this host"
            }
            HostCertificateProblem::NotYetValid => "it is not valid yet",
            HostCertificateProblem::Expired => "it has expired",
            HostCertificateProblem::WrongPrincipal => "it is not issued for this host name",
            HostCertificateProblem::CriticalOptions => "it carries critical options",
            HostCertificateProblem::BadSignature => "its signature does not verify",
        })
    }
}

/// Why a server refused a TCP tunnel, from its channel-open failure code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelErrorKind {
    /// Forwarding is not allowed (`AllowTcpForwarding no`, a `permitopen`
    /// restriction, dropbear's `-j`).
    Prohibited,
    /// The server could not connect to the destination (nothing listening,
    /// unreachable, unknown name).
    ConnectFailed,
    /// The server ran out of resources.
    ResourceShortage,
    /// The server does not know TCP tunnels.
    Unsupported,
}

impl std::fmt::Display for TunnelErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TunnelErrorKind::Prohibited => "forwarding is prohibited by the server",
            TunnelErrorKind::ConnectFailed => "the server could not connect there",
            TunnelErrorKind::ResourceShortage => "the server is out of resources",
            TunnelErrorKind::Unsupported => "the server does not support TCP tunnels",
        })
    }
}

/// Why vmctl's state could not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmctlErrorKind {
    /// The file is not in vmctl's `vms.json` format.
    Invalid,
    /// A VM of the plan is not in vmctl's state.
    UnknownVm {
        /// The VM's name.
        vm: String,
        /// The VMs vmctl knows.
        known: Vec<String>,
    },
    /// The VM's network mode leaves its address out of the state: vmctl
    /// finds it at run time (ARP table, DHCP leases, the zone).
    NoAddress {
        /// The VM's name.
        vm: String,
        /// vmctl's network mode (`tap`, `vnic`, `none`).
        network: String,
    },
    /// A user-mode VM whose state records no forwarded SSH port.
    NoPort {
        /// The VM's name.
        vm: String,
    },
}

impl std::fmt::Display for VmctlErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmctlErrorKind::Invalid => f.write_str("not in vmctl's vms.json format"),
            VmctlErrorKind::UnknownVm { vm, known } if known.is_empty() => write!(
                f,
                "vmctl knows no VM named \"{vm}\" (it knows none: run `vmctl up` first)"
            ),
            VmctlErrorKind::UnknownVm { vm, known } => write!(
                f,
                "vmctl knows no VM named \"{vm}\" (it knows {}; run `vmctl up` first)",
                known.join(", ")
            ),
            VmctlErrorKind::NoAddress { vm, network } => write!(
                f,
                "VM \"{vm}\" uses {network} networking, whose address vmctl finds at run time \
                 and does not record: give its address yourself, with \
                 fleet::Target::new(\"{vm}\", ADDRESS, 22, ...)"
            ),
            VmctlErrorKind::NoPort { vm } => write!(
                f,
                "VM \"{vm}\" uses user-mode networking but the state records no ssh_host_port: \
                 give its address yourself, with fleet::Target::new(\"{vm}\", \"127.0.0.1\", \
                 PORT, ...)"
            ),
        }
    }
}

/// The kind of an SFTP failure, from the server's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SftpErrorKind {
    /// No such file or directory.
    NotFound,
    /// Permission denied.
    PermissionDenied,
    /// The destination exists and overwriting was not allowed.
    AlreadyExists,
    /// The remote disk is full or over quota.
    NoSpace,
    /// The server does not offer the SFTP subsystem.
    Unsupported,
    /// The connection was lost during the operation.
    ConnectionLost,
    /// Anything else the server reported.
    Other,
}

impl std::fmt::Display for SftpErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SftpErrorKind::NotFound => "no such file or directory",
            SftpErrorKind::PermissionDenied => "permission denied",
            SftpErrorKind::AlreadyExists => "already exists",
            SftpErrorKind::NoSpace => "no space left on the remote device",
            SftpErrorKind::Unsupported => "SFTP not supported by the server",
            SftpErrorKind::ConnectionLost => "connection lost",
            SftpErrorKind::Other => "failed",
        })
    }
}

impl Error {
    /// True when retrying may succeed and nothing reached the remote side
    /// that could have had an effect: refused, reset or timed-out connects
    /// and handshakes that ended before authentication.
    ///
    /// Authentication failures, host key mismatches and anything after a
    /// command was sent are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::PermissionDenied
            ),
            Error::ConnectTimeout { .. } => true,
            Error::Handshake { early_close, .. } => *early_close,
            // Only ever reported before an exec request was sent: a
            // channel closed unanswered after one is `Protocol`.
            Error::ChannelOpen { .. } => true,
            // Nothing listens behind the jump yet (a VM still booting).
            Error::Tunnel { kind, .. } => *kind == TunnelErrorKind::ConnectFailed,
            _ => false,
        }
    }

    /// True for timeouts of any phase (connect, command).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::ConnectTimeout { .. } | Error::CommandTimeout { .. }
        )
    }

    /// True when the server's identity was not accepted.
    pub fn is_host_key(&self) -> bool {
        matches!(
            self,
            Error::HostKeyUnknown { .. }
                | Error::HostKeyChanged { .. }
                | Error::HostKeyRevoked { .. }
                | Error::HostCertificateRefused { .. }
        )
    }

    /// True when the connection ended underneath an operation.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::ConnectionLost { .. })
    }

    /// True when the server refused every authentication method (or
    /// disconnected during authentication).
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::AuthFailed { .. })
    }

    /// True when the server refused the login (a method rejected, or the
    /// connection ended by the server during authentication), as opposed
    /// to no method being usable here: what
    /// [`RetryPolicy::retry_auth_failures`](crate::RetryPolicy::retry_auth_failures)
    /// retries.
    pub(crate) fn login_refused(&self) -> bool {
        match self {
            Error::AuthFailed { failures, .. } => failures.iter().any(|f| {
                matches!(
                    f,
                    AuthFailure::Rejected { .. } | AuthFailure::Disconnected { .. }
                )
            }),
            _ => false,
        }
    }

    /// This error and its causes on one line, `: `-separated (see
    /// [`Chain`]).
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Displays an error and its causes on one line, each `Display` after the
/// one before it, `: `-separated: `connect failed: ...: Connection
/// refused`. No error here repeats its source in its own `Display`, so
/// nothing shows twice.
///
/// ```
/// use vmssh::error::Chain;
///
/// let e = std::io::Error::other("disk full");
/// assert_eq!(Chain(&e).to_string(), "disk full");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Which of the negotiated algorithm lists a name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlgorithmKind {
    /// Key exchange (OpenSSH's `KexAlgorithms`).
    Kex,
    /// Cipher (`Ciphers`).
    Cipher,
    /// Message authentication code (`MACs`).
    Mac,
    /// Host key signature algorithm (`HostKeyAlgorithms`).
    HostKey,
}

impl std::fmt::Display for AlgorithmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlgorithmKind::Kex => "key exchange",
            AlgorithmKind::Cipher => "cipher",
            AlgorithmKind::Mac => "MAC",
            AlgorithmKind::HostKey => "host key",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when an error's Display contains the Display of anything in
    /// its source chain (reporters print the chain: the cause would show
    /// twice).
    fn assert_no_repeats(e: &(dyn std::error::Error + 'static)) {
        let mut outer: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(o) = outer {
            let shown = o.to_string();
            let mut inner = o.source();
            while let Some(i) = inner {
                let cause = i.to_string();
                assert!(
                    cause.is_empty() || !shown.contains(&cause),
                    "{shown:?} repeats its source {cause:?}"
                );
                inner = i.source();
            }
            outer = o.source();
        }
    }

    fn cause() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer went away (os error 104)",
        )
    }

    fn boxed() -> Option<BoxError> {
        Some(Box::new(cause()))
    }

    /// One of every variant, each with a cause where it can carry one.
    fn every_variant() -> Vec<Error> {
        let (host, port) = ("10.0.0.5".to_string(), 22);
        vec![
            Error::Config {
                reason: "no authentication method configured".into(),
            },
            Error::Connect {
                host: host.clone(),
                port,
                source: cause(),
            },
            Error::ConnectTimeout {
                host: host.clone(),
                port,
                after: Duration::from_secs(3),
            },
            Error::Handshake {
                host: host.clone(),
                port,
                reason: "connection reset".into(),
                early_close: true,
                source: boxed(),
            },
            Error::HostKeyUnknown {
                host: host.clone(),
                port,
                fingerprint: "SHA256:abc".into(),
                known_hosts: "/home/u/.ssh/known_hosts".into(),
            },
            Error::HostKeyChanged {
                host: host.clone(),
                port,
                expected: vec!["SHA256:abc".into()],
                actual: "SHA256:def".into(),
            },
            Error::HostKeyRevoked {
                host: host.clone(),
                port,
                fingerprint: "SHA256:abc".into(),
            },
            Error::HostCertificateRefused {
                host: host.clone(),
                port,
                fingerprint: "SHA256:abc".into(),
                authority: "SHA256:def".into(),
                problem: HostCertificateProblem::Expired,
            },
            Error::HostKeyStore {
                path: "known_hosts".into(),
                reason: "cannot read".into(),
                source: boxed(),
            },
            Error::Key {
                origin: "id_ed25519".into(),
                kind: KeyErrorKind::Unreadable,
                source: boxed(),
            },
            Error::Agent {
                reason: "cannot connect to SSH_AUTH_SOCK".into(),
                source: boxed(),
            },
            Error::AuthFailed {
                host: host.clone(),
                port,
                user: "root".into(),
                tried: vec!["publickey".into()],
                failures: Vec::new(),
                kept_failing: Some(Duration::from_secs(120)),
            },
            Error::Tunnel {
                host: host.clone(),
                port,
                to_host: "10.0.0.7".into(),
                to_port: 22,
                kind: TunnelErrorKind::Prohibited,
            },
            Error::Listen {
                addr: "127.0.0.1:8080".into(),
                source: cause(),
            },
            Error::ProxyCommand {
                host: host.clone(),
                port,
                command: "nc %h %p".into(),
                reason: "exit status 1".into(),
            },
            Error::ChannelOpen {
                host: host.clone(),
                port,
                reason: "administratively prohibited".into(),
            },
            Error::RequestRefused {
                host: host.clone(),
                port,
                request: "exec".into(),
            },
            Error::ConnectionLost {
                host: host.clone(),
                port,
                reason: "no answer to keepalives".into(),
            },
            Error::MissingExitStatus {
                host: host.clone(),
                port,
            },
            Error::SudoPasswordRejected {
                host: host.clone(),
                port,
                user: "vm".into(),
            },
            Error::CommandTimeout {
                host: host.clone(),
                port,
                after: Duration::from_secs(1),
            },
            Error::OutputTooLarge {
                host: host.clone(),
                port,
                limit: 10,
            },
            Error::Io {
                context: "cannot read setup.sh".into(),
                source: cause(),
            },
            Error::SessionClosed {
                host: host.clone(),
                port,
            },
            Error::Sftp {
                host: host.clone(),
                port,
                op: "open".into(),
                path: "/tmp/x".into(),
                kind: SftpErrorKind::ConnectionLost,
                source: boxed(),
            },
            Error::ProvisionFailed {
                vm: "vm1".into(),
                step: 2,
                description: "inline: true".into(),
                reason: "did not complete".into(),
                status: None,
                stderr_tail: Box::default(),
                stdout_tail: Box::default(),
                source: Some(Box::new(Error::ConnectionLost {
                    host: host.clone(),
                    port,
                    reason: "connection reset".into(),
                })),
            },
            Error::UnsupportedAlgorithm {
                kind: crate::AlgorithmKind::Mac,
                name: "umac-64-etm@openssh.com".into(),
                supported: vec!["hmac-sha2-256".into(), "hmac-sha1".into()],
            },
            Error::Plan {
                origin: "VMFile.kdl:3".into(),
                reason: "unknown step type".into(),
            },
            Error::Vmctl {
                path: "vms.json".into(),
                kind: VmctlErrorKind::Invalid,
                source: boxed(),
            },
            Error::SshConfig {
                path: "ssh_config".into(),
                line: Some(4),
                reason: "cannot read".into(),
                source: boxed(),
            },
            Error::DuplicateTarget {
                name: "vm1".into(),
                first: 1,
                second: 3,
            },
            Error::Protocol {
                host,
                port,
                reason: "channel open failed".into(),
                source: boxed(),
            },
        ]
    }

    #[test]
    fn no_variant_repeats_its_source() {
        let all = every_variant();
        let mut seen = std::collections::HashSet::new();
        for e in &all {
            assert_no_repeats(e);
            // Exhaustive on purpose: a new variant must be added above.
            let name = match e {
                Error::Config { .. } => "Config",
                Error::Connect { .. } => "Connect",
                Error::ConnectTimeout { .. } => "ConnectTimeout",
                Error::Handshake { .. } => "Handshake",
                Error::HostKeyUnknown { .. } => "HostKeyUnknown",
                Error::HostKeyChanged { .. } => "HostKeyChanged",
                Error::HostKeyRevoked { .. } => "HostKeyRevoked",
                Error::HostCertificateRefused { .. } => "HostCertificateRefused",
                Error::HostKeyStore { .. } => "HostKeyStore",
                Error::Key { .. } => "Key",
                Error::Agent { .. } => "Agent",
                Error::AuthFailed { .. } => "AuthFailed",
                Error::ChannelOpen { .. } => "ChannelOpen",
                Error::RequestRefused { .. } => "RequestRefused",
                Error::ConnectionLost { .. } => "ConnectionLost",
                Error::MissingExitStatus { .. } => "MissingExitStatus",
                Error::CommandTimeout { .. } => "CommandTimeout",
                Error::SudoPasswordRejected { .. } => "SudoPasswordRejected",
                Error::OutputTooLarge { .. } => "OutputTooLarge",
                Error::Io { .. } => "Io",
                Error::SessionClosed { .. } => "SessionClosed",
                Error::Sftp { .. } => "Sftp",
                Error::ProvisionFailed { .. } => "ProvisionFailed",
                Error::Plan { .. } => "Plan",
                Error::SshConfig { .. } => "SshConfig",
                Error::Protocol { .. } => "Protocol",
                Error::Tunnel { .. } => "Tunnel",
                Error::Listen { .. } => "Listen",
                Error::ProxyCommand { .. } => "ProxyCommand",
                Error::Vmctl { .. } => "Vmctl",
                Error::UnsupportedAlgorithm { .. } => "UnsupportedAlgorithm",
                Error::DuplicateTarget { .. } => "DuplicateTarget",
            };
            seen.insert(name);
        }
        assert_eq!(seen.len(), 32, "every variant once: {seen:?}");
    }

    #[test]
    fn handshake_errors_name_their_layer_not_their_cause() {
        use crate::connection::{HandlerError, handshake_error};
        let kinds = [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::TimedOut,
            std::io::ErrorKind::Other,
        ];
        let mut errors: Vec<russh::Error> = kinds
            .into_iter()
            .map(|k| russh::Error::IO(std::io::Error::new(k, "os said no (os error 104)")))
            .collect();
        errors.extend([
            russh::Error::Disconnect,
            russh::Error::HUP,
            russh::Error::UnknownKey,
            russh::Error::KexInit,
            russh::Error::Inconsistent,
        ]);
        for e in errors {
            let shown = format!("{e}");
            let err = handshake_error("127.0.0.1", 2222, HandlerError::Russh(e));
            assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
            assert_no_repeats(&err);
            assert!(!err.to_string().contains(&shown), "{err} repeats {shown}");
        }
    }
}
