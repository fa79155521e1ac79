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
//! the later ones: that first step pays 4 RTTs more (channel open,
//! subsystem, SFTP init, limits). After that, per step:
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

use std::path::Path;

use crate::error::Error;
use crate::session::Session;

mod lines;
mod runner;
mod sink;
mod sinks;
mod staging;
mod step;
mod tail;

pub use crate::report::{Event, StepReport};
pub use lines::LineSplitter;
pub use runner::Provisioner;
pub(crate) use runner::{PlanEnd, PlanRun};
pub use sink::Sink;
pub(crate) use sink::emit as emit_to;
pub(crate) use sinks::VmctlLabel;
pub use sinks::{
    ChannelSink, LogFileSink, RawSink, TerminalSink, TracingSink, VmctlLogSink, visible,
};
pub use staging::ScriptStaging;
pub use step::{ProvisionDef, StepKind};

/// Runs `steps` on one VM the way vmctl's `run_provisions` does (same
/// name, same arguments), for a program that replaces vmctl's SSH layer:
///
/// - each step's output goes to this process's stdout and stderr as it
///   arrives, untouched ([`RawSink`]); nothing else is printed;
/// - with `log_dir`, `log_dir/provision.log` is appended in vmctl's layout
///   ([`VmctlLogSink`]);
/// - scripts are uploaded to `/tmp/vmctl-provision-<step>.sh` with mode
///   0755 and left there ([`ScriptStaging::vmctl`]); files are uploaded
///   with mode 0755 unless their step sets one;
/// - a script or file source starting with `~` is in the home directory;
/// - steps and results go to `tracing` at `INFO`, output lines do not
///   ([`TracingSink::steps_only`]).
///
/// Where vmssh differs from vmctl, and why, is in the guide's "Porting
/// vmctl" page (a step killed by a signal fails, a missing script is
/// caught before the plan starts, parent directories are created, files
/// are replaced atomically). [`Provisioner`] runs plans with vmssh's own
/// defaults (prefixed terminal output, its own log, scripts removed after
/// the run).
///
/// # Errors
///
/// [`Error::ProvisionFailed`] at the first failing step, with the last
/// lines of its stdout and stderr; see [`Provisioner::run`].
///
/// # Cancel safety
///
/// As [`Provisioner::run`].
pub async fn run_provisions(
    session: &Session,
    steps: &[ProvisionDef],
    base_dir: &Path,
    vm_name: &str,
    log_dir: Option<&Path>,
) -> Result<Vec<StepReport>, Error> {
    let resolved: Vec<ProvisionDef> = steps.iter().map(with_home).collect();
    let mut p = Provisioner::new(vm_name)
        .base_dir(base_dir)
        .script_staging(ScriptStaging::vmctl())
        .file_mode(0o755)
        .sink(RawSink::new())
        .sink(TracingSink::steps_only());
    if let Some(dir) = log_dir {
        // Labelled from the steps as given: a script as written.
        p = p.sink(VmctlLogSink::new(dir, steps, base_dir));
    }
    p.run(session, &resolved).await
}

/// `step` with a script or file source under `~` in the home directory.
fn with_home(step: &ProvisionDef) -> ProvisionDef {
    let kind = match &step.kind {
        StepKind::Script(p) => StepKind::Script(sinks::expand(p)),
        StepKind::File {
            source,
            destination,
        } => StepKind::File {
            source: sinks::expand(source),
            destination: destination.clone(),
        },
        other => other.clone(),
    };
    ProvisionDef {
        kind,
        ..step.clone()
    }
}
