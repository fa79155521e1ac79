//! vmctl's `run_provisions`, for a program that replaces vmctl's SSH
//! layer: vmssh's step loop with vmctl's output, log and staging.

use std::path::Path;

use super::home::expand;
use super::log::VmctlLogSink;
use crate::error::Error;
use crate::provision::runner::Provisioner;
use crate::provision::sinks::raw::RawSink;
use crate::provision::sinks::tracing::TracingSink;
use crate::provision::staging::ScriptStaging;
use crate::provision::step::{ProvisionDef, StepKind};
use crate::report::StepReport;
use crate::session::Session;

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
        StepKind::Script(p) => StepKind::Script(expand(p)),
        StepKind::File {
            source,
            destination,
        } => StepKind::File {
            source: expand(source),
            destination: destination.clone(),
        },
        other => other.clone(),
    };
    ProvisionDef {
        kind,
        ..step.clone()
    }
}
