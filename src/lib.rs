#![doc = include_str!("../README.md")]
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
//! 2. `session.rs` ([`session`]): one connection per VM ([`Session`]):
//!    connect, retry, keepalive, close; over any byte stream
//!    ([`Session::connect_stream`]) or through a jump host
//!    ([`Session::connect_via`]).
//! 3. `host_key/` ([`host_key`]): how to trust the server during key
//!    exchange ([`HostKeyPolicy`], known_hosts).
//! 4. `auth/` ([`auth`]): how to prove who we are ([`Auth`]: key file
//!    with its certificate, in-memory key, agent, password,
//!    keyboard-interactive) and the loop that tries the methods in order.
//! 5. `channel/` (private): channels opened under the session's limit,
//!    their requests and replies, and the one lease whose drop closes a
//!    channel.
//!    `forward.rs` ([`forward`]): TCP through a session ([`Tunnel`],
//!    [`LocalForward`], [`RemoteForward`]); `proxy_command.rs` (private):
//!    a session over a `ProxyCommand` child's standard input and output.
//! 6. `exec.rs` ([`exec`]): commands on channels ([`Command`]), collected
//!    ([`Output`]) or streamed ([`ExecStream`] of [`Chunk`]s), then
//!    `status.rs`'s [`ExitStatus`].
//! 7. `transfer.rs`: the one upload/download façade ([`Session::upload`],
//!    [`Session::download`], ...), SFTP where the server has it, else the
//!    exec fallback.
//! 8. `sftp/` ([`sftp`]): the [`Sftp`] handle and file-system operations
//!    (`mod.rs`), [`TransferOptions`] (`options.rs`), the channel as a byte
//!    stream (`stream.rs`), the pipelined engines (`upload.rs`,
//!    `download.rs`), temporary names and cleanup (`atomic.rs`), `cat` over
//!    exec for servers without SFTP (`fallback.rs`).
//! 9. `provision/` ([`provision`]): the steps
//!    ([`ProvisionDef`](provision::ProvisionDef), `step.rs`), their events
//!    and sinks ([`Event`](provision::Event), `event.rs`, `sinks/`), and the
//!    [`Provisioner`](provision::Provisioner) that runs them to typed
//!    outcomes (`runner.rs`). `plan/` ([`plan`]) reads plans from
//!    vmctl's `VMFile.kdl` (the model in `mod.rs`, vmctl's reading in
//!    `parse.rs`, extension values in `value.rs`, `warning.rs`),
//!    `vmctl.rs` ([`vmctl`]) vmctl's VMs from its state file.
//! 10. `fleet/` ([`fleet`]): many VMs at once ([`Fleet`](fleet::Fleet)),
//!     reported from the runner's results
//!     ([`FleetReport`](fleet::FleetReport)).
//! 11. `testkit/` (feature `testkit`): an in-process SSH server for tests
//!     and demos, with fault injection.
//!
//! `error.rs` ([`error`]) holds the one [`Error`] for all of it, with
//! [`is_retryable`](Error::is_retryable) and the other predicates.
#![deny(missing_docs, missing_debug_implementations)]
#![warn(unreachable_pub, rust_2018_idioms)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod algorithms;
pub mod auth;
mod channel;
pub mod cipher;
pub mod config;
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
pub mod session;
pub mod sftp;
pub mod ssh_config;
mod status;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod transfer;
pub mod vmctl;

pub use algorithms::AlgorithmKind;
pub use auth::Auth;
pub use cipher::Cipher;
pub use config::{RetryPolicy, SshConfig};
pub use error::{
    AuthFailure, Error, HostCertificateProblem, KeyErrorKind, Result, SftpErrorKind,
    TunnelErrorKind, VmctlErrorKind,
};
pub use exec::{Chunk, Command, ExecStream, Output};
pub use forward::{LocalForward, RemoteForward, Tunnel};
pub use host_key::HostKeyPolicy;
pub use session::Session;
pub use sftp::{Sftp, TransferOptions};
pub use status::ExitStatus;
