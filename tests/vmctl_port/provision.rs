//! Provisioning, on vmssh: vmctl's terminal output, log and script paths.

use std::path::Path;

use vmssh::Session;
use vmssh::provision::ProvisionDef as Step;

use crate::error::{Result, VmError};
use crate::vmfile::ProvisionDef;

/// Run all provision steps: output streamed to stdout/stderr, and appended to `provision.log`.
pub async fn run_provisions(
    sess: &Session,
    provisions: &[ProvisionDef],
    base_dir: &Path,
    vm_name: &str,
    log_dir: Option<&Path>,
) -> Result<()> {
    let step = |p: &ProvisionDef| match p {
        ProvisionDef::Shell(s) => match (&s.inline, &s.script) {
            (Some(cmd), _) => Step::inline(cmd),
            (None, script) => Step::script(script.clone().unwrap_or_default()),
        },
        ProvisionDef::File(f) => Step::file(&f.source, &f.destination),
    };
    let steps: Vec<Step> = provisions.iter().map(step).collect();
    let ran = vmssh::provision::run_provisions(sess, &steps, base_dir, vm_name, log_dir).await;
    let Err(e) = ran else { return Ok(()) };
    match e {
        vmssh::Error::ProvisionFailed {
            vm,
            step,
            reason,
            stdout_tail,
            stderr_tail,
            source,
            ..
        } => {
            let detail = match source {
                Some(cause) => format!("{reason}: {}", cause.chain()),
                None => format!("{reason}\nstdout: {stdout_tail}\nstderr: {stderr_tail}"),
            };
            Err(VmError::ProvisionFailed { vm, step, detail })
        }
        other => {
            let detail = other.chain().to_string();
            Err(VmError::SshFailed { detail })
        }
    }
}
