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
//! SFTP channel, on its first step that moves a file, and keeps it for
//! the later ones: that first step pays 3 RTTs more (channel open,
//! subsystem, then the SFTP init and the limits request together). After
//! that, per step:
//!
//! - inline: 2 RTTs and the command's own run time (channel open, then
//!   the exec request; the output and exit status follow as they come);
//! - file: 3 RTTs (open; the writes, fsync, mode and close together; the
//!   rename into place), plus 2 per missing parent directory, created only
//!   when the open reports them missing;
//! - script: 2 RTTs to upload (open; writes, mode and close together), the
//!   inline step's 2, and 1 to remove the script (none when it is kept, as
//!   [`run_provisions`] keeps it);
//! - download: 3 RTTs and the reads (open, fstat, the reads in flight,
//!   close).
//!
//! `cargo bench --bench compare -- --scenario rtt_small_steps` measures
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
