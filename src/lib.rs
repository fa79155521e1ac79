#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! The data path, one module per step:
//!
//! 1. [`config`]: who to connect as, timeouts, keepalive, retry policy
//!    ([`SshConfig`], [`RetryPolicy`]).
//! 2. [`auth`]: how to prove it ([`Auth`]: key file, in-memory key, agent,
//!    password).
//! 3. [`host_key`]: how to trust the server ([`HostKeyPolicy`]).
//! 4. [`session`]: one connection per VM ([`Session`]), channels limited
//!    per session.
//! 5. [`exec`]: commands on channels, collected ([`Output`]) or streamed
//!    ([`ExecStream`] of [`Chunk`]s), then [`ExitStatus`].
//! 6. [`sftp`]: files over the SFTP subsystem ([`Sftp`]), streaming and
//!    pipelined, atomic, with modes and progress ([`TransferOptions`]).
//! 7. [`provision`]: a plan of steps run on one VM
//!    ([`ProvisionDef`](provision::ProvisionDef),
//!    [`Provisioner`](provision::Provisioner)), output to sinks.
//! 8. [`plan`]: plans read from vmctl's `VMFile.kdl`.
//! 9. [`fleet`]: many VMs at once ([`Fleet`](fleet::Fleet),
//!    [`FleetReport`](fleet::FleetReport)).
//! 10. `testkit` (feature `testkit`): an in-process SSH server for tests
//!     and demos, with fault injection.
//!
//! [`ssh_config`] turns an OpenSSH `~/.ssh/config` alias into the
//! [`SshConfig`] and address (or jump hosts) for step 4.
//!
//! [`error`] holds the one [`Error`] for all of it, with
//! [`is_retryable`](Error::is_retryable).
#![deny(missing_docs, missing_debug_implementations)]
#![warn(unreachable_pub, rust_2018_idioms)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
mod channel;
pub mod config;
pub mod error;
pub mod exec;
pub mod fleet;
pub mod host_key;
pub mod plan;
pub mod provision;
pub mod session;
pub mod sftp;
pub mod ssh_config;
mod status;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod transfer;

pub use auth::Auth;
pub use config::{RetryPolicy, SshConfig};
pub use error::{Error, KeyErrorKind, Result, SftpErrorKind};
pub use exec::{Chunk, Command, ExecStream, Output};
pub use host_key::HostKeyPolicy;
pub use session::Session;
pub use sftp::{Sftp, TransferOptions, UploadOptions};
pub use status::ExitStatus;
