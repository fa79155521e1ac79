//! Async-native SSH for VM orchestrators: connect while a VM boots, run
//! commands and stream their output, move files over pipelined SFTP, and
//! run provisioning plans on many VMs at once, from one tokio runtime, on
//! pure-Rust SSH ([russh](https://docs.rs/russh)).
//!
//! # Quick start
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use futures::StreamExt;
//! use vmssh::{Auth, Chunk, HostKeyPolicy, Session, SshConfig};
//!
//! # async fn demo() -> Result<(), vmssh::Error> {
//! let cfg = SshConfig::new("root")
//!     .auth(Auth::key_file("id_ed25519"))
//!     .host_key(HostKeyPolicy::known_hosts("known_hosts"));
//!
//! // A VM that is still booting: retried with a short, capped backoff.
//! let sess = Session::connect_with_retry("127.0.0.1", 2222, &cfg, Duration::from_secs(120)).await?;
//!
//! let out = sess.exec("uname -a").await?;
//! println!("{} ({})", out.stdout_lossy(), out.status);
//!
//! // Live output, with backpressure: a slow reader slows the remote command.
//! let mut stream = sess.exec_streaming("make").await?;
//! while let Some(chunk) = stream.next().await {
//!     match chunk? {
//!         Chunk::Stdout(b) => print!("{}", String::from_utf8_lossy(&b)),
//!         Chunk::Stderr(b) => eprint!("{}", String::from_utf8_lossy(&b)),
//!         _ => {}
//!     }
//! }
//! println!("make: {}", stream.exit_status().await?);
//!
//! // Pipelined SFTP, replaced atomically.
//! sess.upload(Path::new("local.sh"), "/tmp/remote.sh").await?;
//! sess.download("/var/log/cloud-init.log", Path::new("out.log")).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! The files in the order the data path crosses them:
//!
//! 1. `config.rs` ([`config`]): who to connect as, timeouts, keepalive,
//!    retry policy ([`SshConfig`], [`RetryPolicy`]); `algorithms.rs`
//!    (private) the key exchange, cipher, MAC, host key and compression
//!    lists it offers, by OpenSSH's names ([`AlgorithmKind`]).
//!    `ssh_config/` ([`ssh_config`]) turns an OpenSSH `~/.ssh/config`
//!    alias into one.
//! 2. `session/` ([`session`]): one connection per VM ([`Session`]): the
//!    handle (`mod.rs`) and connecting (`connect.rs`: retry, over any byte
//!    stream ([`Session::connect_stream`]) or through a jump host
//!    ([`Session::connect_via`])). Below it, `connection/` (private): the
//!    russh handle and handler, and what is kept per connection (channel
//!    slots, channels open and being closed, remote-forward routes, why
//!    it ended), which sessions, channels and forwards share; it imports
//!    none of them.
//! 3. `host_key/` ([`host_key`]): how to trust the server during key
//!    exchange ([`HostKeyPolicy`], known_hosts).
//! 4. `auth/` ([`auth`]): how to prove who we are ([`Auth`]: key file
//!    with its certificate, in-memory key, agent, password,
//!    keyboard-interactive) and the loop that tries the methods in order.
//! 5. `channel/` (private): channels opened under the connection's
//!    limit, their requests and replies, the one lease whose drop closes a
//!    channel, and a channel as a byte stream (`stream.rs`) that tunnels
//!    and SFTP wrap.
//!    `forward.rs` ([`forward`]): TCP through a session ([`Tunnel`],
//!    [`LocalForward`], [`RemoteForward`]); `agent_forward.rs` (private):
//!    the local agent forwarded to commands
//!    ([`SshConfig::forward_agent`]); `proxy_command.rs` (private):
//!    a session over a `ProxyCommand` child's standard input and output.
//! 6. `exec/` ([`exec`]): commands on channels: the builder
//!    (`command.rs`, [`Command`]), the exec methods with their collected
//!    [`Output`] (`mod.rs`), and the stream of a running command
//!    (`stream.rs`, [`ExecStream`] of [`Chunk`]s), then
//!    `status.rs`'s [`ExitStatus`]; `sudo.rs` (private): the line and the
//!    stderr gate of a sudo given a password
//!    ([`Command::sudo_password`], with a [`Secret`] from `secret.rs`).
//!    `shell.rs` ([`shell`]): interactive shells on a pseudo-terminal
//!    ([`Session::shell`], [`Shell`], [`PtyOptions`]).
//! 7. `transfer/`: the one upload/download façade ([`Session::upload`],
//!    [`Session::download`], ...), SFTP where the server has it, else
//!    `cat` over exec (`cat.rs`); and what provisioning stages on a host
//!    (temporary scripts, the plan's SFTP channel within the session's
//!    channel budget); `dir.rs` whole directories
//!    ([`Session::upload_dir`], [`Session::download_dir`]), SFTP only.
//! 8. `sftp/` ([`sftp`]): the [`Sftp`] handle and file-system operations
//!    (`mod.rs`), [`TransferOptions`] (`options.rs`), its channel's stream
//!    (`stream.rs`), the pipelined engines (`upload.rs`,
//!    `download.rs`), temporary names and cleanup (`atomic.rs`), directory
//!    trees walked and recreated, several files in flight (`tree.rs`).
//! 9. `provision/` ([`provision`]): the steps
//!    ([`ProvisionDef`](provision::ProvisionDef), `step.rs`), the
//!    [`Sink`](provision::Sink)s that receive their events (`sink.rs`,
//!    `sinks/`), output cut into lines (`lines.rs`), and the
//!    [`Provisioner`](provision::Provisioner) with the one step loop that
//!    runs a plan to typed outcomes, for one VM and for each VM of a fleet
//!    (`runner.rs`). `plan/` ([`plan`]) reads plans from vmctl's
//!    `VMFile.kdl` (the model in `mod.rs`, vmctl's reading in `parse.rs`,
//!    extension values in `value.rs`, `warning.rs`). `vmctl/`
//!    ([`vmctl`]) holds the rest of vmctl's ways: its VMs from its state
//!    file (`mod.rs`), its `provision.log` layout (`log.rs`), its `~`
//!    rule (`home.rs`) and its `run_provisions` (`run.rs`, also at
//!    [`provision::run_provisions`]).
//! 10. `fleet/` ([`fleet`]): many VMs at once ([`Fleet`](fleet::Fleet)):
//!     connecting each, then provisioning's step loop; stopping early
//!     (`stop.rs`).
//! 11. `report/` ([`report`]): what a run produces, as data, in one
//!     schema: the [`Event`](report::Event)s, the step, VM and fleet
//!     reports and why a VM failed ([`Failure`](report::Failure)).
//!
//! `error.rs` ([`error`]) holds the one [`Error`] for all of it, with
//! [`is_retryable`](Error::is_retryable) and the other predicates.
//!
//! Beside this crate, in the same workspace: the embedded SSH server that
//! tests and demos run against (`vmssh-testkit`) and the `vmssh` command
//! (`vmssh-cli`), built on this crate's public API alone.
//!
//! # What it does
//!
//! - **Connect**: keys from files or memory (OpenSSH, PEM, PKCS#8; ed25519,
//!   ECDSA, RSA with rsa-sha2-256/512; encrypted with a passphrase), ssh-agent,
//!   password. Host keys verified against known_hosts (plain, `[host]:port`,
//!   hashed, wildcards, `@revoked`), pinned keys, or trust-on-first-use;
//!   accepting anything is spelled `insecure_accept_any()`. Host certificates
//!   through `@cert-authority` lines; user certificates (`KEY-cert.pub`);
//!   keyboard-interactive (PAM logins). Connect timeout,
//!   keepalive (on by default: a frozen VM does not hang its orchestrator),
//!   inactivity timeout. `connect_with_retry` retries only what is worth
//!   retrying (refused, reset, timed out, closed before the handshake) and fails
//!   at once on host key errors, and on authentication errors unless asked to
//!   wait for a key that a booting VM installs late
//!   (`RetryPolicy::retry_auth_failures`).
//! - **Exec**: `exec` collects stdout, stderr and the exit status (with a cap on
//!   collected bytes); `exec_streaming` is a `Stream` of chunks in arrival order,
//!   every byte once, read until the channel closes, then the exit code or
//!   signal. Never an invented exit code. `Command` adds environment, stdin
//!   (bytes or any `AsyncRead`), a PTY, a timeout, and root through sudo,
//!   with a password where sudoers asks for one (`Command::sudo_password`:
//!   over stdin only, only when sudo asks, the command's own stdin intact;
//!   a wrong one is `Error::SudoPasswordRejected`). `Session::shell` gives an
//!   interactive login shell on a pseudo-terminal (type, size, modes),
//!   resizable, as a byte stream both ways. Channels per session are
//!   limited (default 10, OpenSSH's `MaxSessions`); extra callers wait. Dropping
//!   a stream closes its channel.
//! - **SFTP**: streaming, pipelined uploads and downloads in constant memory,
//!   atomic replace, modes, parent directories, progress, plus an `Sftp` handle
//!   for `mkdir_all`, `stat`, `remove`, `rename`, `read_dir`, `set_mode`,
//!   `symlink`, `read_link`. Whole directories (`upload_dir`,
//!   `download_dir`): several files in flight on one channel, each atomic,
//!   empty directories, modes (setuid dropped), links kept as links and
//!   never followed, progress over the tree.
//! - **Provisioning**: inline, script and file steps; output streamed to sinks
//!   (terminal with VM prefix, raw, `provision.log`, tracing, a bounded
//!   channel); the first failure stops the plan with the step, status and
//!   the tails of its stdout and stderr. `run_provisions` is vmctl's.
//! - **Fleets**: many VMs concurrently from one runtime, VMs and connects in
//!   flight bounded separately, fail-fast or isolated failures, a serializable
//!   report.
//! - **Reach**: jump hosts (`connect_via`, chains, many sessions on one jump
//!   connection), any byte stream (`connect_stream`: unix sockets, vsock,
//!   `ProxyCommand`), TCP through the session (`open_tcp`, `forward_local`,
//!   `forward_remote`), `~/.ssh/config` resolved as `ssh -G` does.
//!
//! # Examples
//!
//! Provisioning one VM, and many ([`provision`], [`fleet`]):
//!
//! ```no_run
//! use std::path::Path;
//! use vmssh::fleet::{Fleet, Target};
//! use vmssh::provision::{run_provisions, ProvisionDef};
//!
//! # async fn demo(sess: vmssh::Session, cfg: vmssh::SshConfig) -> Result<(), vmssh::Error> {
//! let steps = [
//!     ProvisionDef::inline("apt-get update"),
//!     ProvisionDef::script("setup.sh"),
//!     ProvisionDef::file("nginx.conf", "/etc/nginx/nginx.conf"),
//! ];
//! run_provisions(&sess, &steps, Path::new("."), "vm1", Some(Path::new("logs"))).await?;
//!
//! let targets = vec![Target::new("vm1", "10.0.0.5", 22, cfg.clone(), steps.to_vec())];
//! let report = Fleet::new().concurrency(64).fail_fast(false).provision(targets).await;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```
//!
//! Through a jump host, a port forward, and a host from `~/.ssh/config`
//! ([`Session::connect_via`], [`forward`], [`ssh_config`]):
//!
//! ```no_run
//! use vmssh::{Session, SshConfig};
//!
//! # async fn demo(bastion_cfg: SshConfig, vm_cfg: SshConfig) -> Result<(), vmssh::Error> {
//! // One connection to the bastion carries every session behind it.
//! let bastion = Session::connect("bastion.example.com", 22, &bastion_cfg.max_channels(64)).await?;
//! let vm = Session::connect_via(&bastion, "10.0.0.7", 22, &vm_cfg).await?;
//!
//! // The VM's port 80 on a local port; dropping `web` stops it.
//! let web = vm.forward_local("127.0.0.1:0", "127.0.0.1", 80).await?;
//! println!("http://{}/", web.local_addr());
//!
//! // `ssh web1` resolved as `ssh -G web1` would (HostName, User, IdentityFile,
//! // ProxyJump, known_hosts, HostKeyAlias...), then connected the same way.
//! let web1 = vmssh::ssh_config::resolve("web1").await?;
//! for w in web1.warnings() {
//!     eprintln!("warning: {w}"); // options vmssh does not apply, with FILE:LINE
//! }
//! let sess = web1.connect().await?;
//! # let _ = sess; Ok(()) }
//! ```
//!
//! A fleet behind a bastion: `Target::new(..).via(bastion.clone())` for
//! each VM. The plans and state files of vmctl are read by [`plan`] and
//! [`vmctl`].
//!
//! # Backpressure
//!
//! Flow control is per channel on the wire, but russh reads each
//! connection from one task: when a consumer stops reading one stream, the
//! session's per-channel queue fills and the whole connection pauses,
//! including other channels of the same session. Consume streams promptly
//! or give independent consumers their own sessions.
//!
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod agent_forward;
mod algorithms;
pub mod auth;
mod channel;
pub mod cipher;
pub mod config;
mod connection;
mod dial;
pub mod error;
pub mod exec;
pub mod fleet;
pub mod forward;
pub mod host_key;
mod local_file;
pub mod plan;
pub mod provision;
mod proxy_command;
mod quote;
pub mod report;
mod retry;
mod secret;
pub mod session;
pub mod sftp;
pub mod shell;
pub mod ssh_config;
mod status;
mod sudo;
mod transfer;
pub mod vmctl;

pub use auth::Auth;
pub use cipher::Cipher;
pub use config::{ConnectRetry, RetryPolicy, SshConfig};
pub use error::AlgorithmKind;
pub use error::{
    AuthFailure, Error, HostCertificateProblem, KeyErrorKind, Result, SftpErrorKind,
    TunnelErrorKind, VmctlErrorKind,
};
pub use exec::{Chunk, Command, ExecStream, Output};
pub use forward::{LocalForward, RemoteForward, Tunnel};
pub use host_key::HostKeyPolicy;
pub use secret::Secret;
pub use session::Session;
pub use sftp::{Sftp, TransferOptions, TreeSummary};
pub use shell::{PtyOptions, Shell, ShellReader, ShellWriter, TerminalMode};
pub use status::ExitStatus;

// The README's examples compile too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
