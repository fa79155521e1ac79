//! Provisioning one VM: a plan of shell and file steps, run in order, with
//! live output to sinks and a precise error at the first failure.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
//! use std::path::Path;
//! use vmssh::provision::{run_provisions, ProvisionDef};
//!
//! let steps = [
//!     ProvisionDef::inline("apt-get update"),
//!     ProvisionDef::script("setup.sh"),
//!     ProvisionDef::file("nginx.conf", "/etc/nginx/nginx.conf"),
//! ];
//! run_provisions(&sess, &steps, Path::new("."), "vm1", Some(Path::new("logs"))).await?;
//! # Ok(()) }
//! ```
//!
//! # Round trips
//!
//! On a long link each sequential request costs a round trip (RTT), so a
//! plan of small steps is bound by how many it makes. A plan opens one
//! SFTP channel and keeps it for the steps that move files; opening it
//! costs 3 RTTs (channel open, subsystem, then the SFTP init and the
//! limits request together). Where the server keeps a channel that has
//! had no request yet (OpenSSH, dropbear from 2024.86:
//! [`Session::server_id`](crate::Session::server_id) tells), the plan
//! opens channels ahead: the next command step's while the current step
//! runs, and the SFTP channel while the steps before the first file step
//! run; such a channel gives way when the server turns out to allow
//! fewer channels, and is closed when the plan ends early. Elsewhere each
//! is opened when needed, and so in a fleet allowed to reconnect a VM
//! ([`Fleet::reconnects`](crate::fleet::Fleet::reconnects)): a command
//! sent on a channel opened before a reboot could not be told from one
//! that ran, so its step could not be resumed. Per step:
//!
//! - inline: 1 RTT and the command's own run time when its channel was
//!   opened ahead (the exec request; the output and exit status follow as
//!   they come), 2 otherwise (the channel open first);
//! - file: 3 RTTs (open; the writes, fsync, mode and close together; the
//!   rename into place), plus 2 per missing parent directory, created only
//!   when the open reports them missing. SFTP has no conditional rename,
//!   so the rename cannot be sent before the writes are answered without
//!   risking a partial file in place;
//! - script: 2 RTTs to upload (open; writes, mode and close together),
//!   the inline step's 1 or 2 to run it; its removal is sent after the
//!   run and not waited for (the plan waits for it before it returns);
//! - download: 2 RTTs and the reads (the open and a stat together, the
//!   reads in flight; the close is sent and not waited for).
//!
//! Measured through the bench's relay at 20 / 50 / 100 ms (BENCHMARKS.md,
//! "Full run, 2026-12-07"), in a plan alternating inline and file steps:
//! inline 1.36 / 1.27 / 1.23 RTTs per step, file 3.22 / 3.24 / 3.20; and
//! script steps after an inline one: 3.37 / 3.30 / 3.23.
//!
//! `cargo bench -p vmssh-benches --bench compare -- --scenario rtt_small_steps` measures
//! them through a delaying relay (BENCHMARKS.md).
//!
//! Inside: `step.rs` holds the step model ([`ProvisionDef`]), `sink.rs`
//! the [`Sink`] trait that receives the [`Event`]s (whose schema is in
//! [`report`](crate::report)), `runner.rs` the [`Provisioner`] and the
//! one step loop that runs a plan, for one VM and for each VM of a fleet,
//! `staging.rs` where scripts go ([`ScriptStaging`]), `tail.rs` the
//! stdout and stderr tails of a failure, `lines.rs` the
//! [`LineSplitter`] that cuts output into lines, and `sinks/` the sinks
//! the crate ships.

mod lines;
pub(crate) mod runner;
pub(crate) mod sink;
pub(crate) mod sinks;
pub(crate) mod staging;
pub(crate) mod step;
mod tail;

pub use crate::report::{Event, StepReport};
pub use crate::vmctl::VmctlLogSink;
pub use crate::vmctl::run::run_provisions;
pub use lines::LineSplitter;
pub use runner::Provisioner;
pub(crate) use runner::{PlanEnd, PlanRun};
pub use sink::Sink;
pub(crate) use sink::emit as emit_to;
pub use sinks::{ChannelSink, LogFileSink, RawSink, TerminalSink, TracingSink, visible};
pub use staging::ScriptStaging;
pub use step::{ProvisionDef, StepKind};
