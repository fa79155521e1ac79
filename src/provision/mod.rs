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
//! Inside: `step.rs` holds the step model ([`ProvisionDef`]), `event.rs`
//! the [`Event`]s and the [`Sink`] trait, `runner.rs` the [`Provisioner`]
//! that runs the steps, `tail.rs` the stderr tail of a failure, and
//! `sinks/` the sinks the crate ships.

use std::path::Path;

use crate::error::Error;
use crate::session::Session;

mod event;
mod runner;
mod sinks;
mod step;
mod tail;

pub use event::{Event, Sink};
pub use runner::{Provisioner, StepReport};
pub(crate) use sinks::VmctlLabel;
pub use sinks::{ChannelSink, LogFileSink, TerminalSink, TracingSink, VmctlLogSink};
pub use step::{ProvisionDef, StepKind};

/// Runs `steps` on one VM: output goes to `log_dir/provision.log` (when
/// given) and to `tracing`. See [`Provisioner`] for other sinks.
///
/// # Errors
///
/// [`Error::ProvisionFailed`] at the first failing step; see
/// [`Provisioner::run`].
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
    let mut p = Provisioner::new(vm_name)
        .base_dir(base_dir)
        .sink(TracingSink::new());
    if let Some(dir) = log_dir {
        p = p.log_dir(dir);
    }
    p.run(session, steps).await
}
