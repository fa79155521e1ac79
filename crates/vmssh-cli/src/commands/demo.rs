//! `vmssh demo`: the demo plan (examples/plans/demo, built into the
//! command) on embedded VMs, SSH servers inside this process from the
//! library's `testkit` (which is why the `cli` feature enables it), or
//! with `--qemu N` on real QEMU guests booted here.

use std::path::{Path, PathBuf};

use vmssh::fleet::Target;
use vmssh::plan::Plan;
use vmssh::provision::{ProvisionDef, StepKind};
use vmssh_testkit::TestServer;
use vmssh_testkit::qemu::{Guest, GuestSsh, Image};

use crate::args::DemoArgs;
use crate::commands::provision::load_plan;
use crate::render::Verb;
use crate::run::Look;
use crate::usage::{Exit, Usage};

/// The demo plan's files, written out at each run so that an installed
/// command needs no source tree.
const PLAN_FILES: [(&str, &str); 3] = [
    (
        "VMFile.kdl",
        include_str!("../../../../examples/plans/demo/VMFile.kdl"),
    ),
    (
        "scripts/setup.sh",
        include_str!("../../../../examples/plans/demo/scripts/setup.sh"),
    ),
    (
        "files/motd",
        include_str!("../../../../examples/plans/demo/files/motd"),
    ),
];

pub(crate) async fn run(a: DemoArgs) -> Result<Exit, Usage> {
    if a.run.rerun_failed.is_some() {
        return Err(Usage(
            "demo: no --rerun-failed (its VMs are new at each run); reruns are for provision, exec, upload and download".into(),
        ));
    }
    if a.run.dry_run {
        return Err(Usage(
            "demo: no --dry-run (its VMs exist only while it runs); dry runs are for provision, exec, upload and download".into(),
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("vmssh-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let plan = write_plan(&dir.path().join("plan")).await?;
    // Servers and guests live until the run ends (guests are killed, by
    // PID, when dropped).
    let (targets, _servers, _guests) = match a.qemu {
        Some(n) => {
            let (targets, guests) = qemu_targets(&plan, n).await?;
            (targets, Vec::new(), guests)
        }
        None => {
            let (targets, servers) = embedded_targets(&plan, &a, dir.path()).await?;
            (targets, servers, Vec::new())
        }
    };
    crate::run::run(targets, &a.run, Look::new(Verb::Provision)).await
}

async fn write_plan(dir: &Path) -> Result<Plan, Usage> {
    for (name, text) in PLAN_FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    load_plan(&dir.join("VMFile.kdl"), false).await
}

/// `n` embedded VMs taking the plan's `vm` blocks in turn (web-01, db-02,
/// ...), each running commands in its own directory under `root` with
/// HOSTNAME set to its name; file destinations are moved under that
/// directory.
async fn embedded_targets(
    plan: &Plan,
    a: &DemoArgs,
    root: &Path,
) -> Result<(Vec<Target>, Vec<TestServer>), Usage> {
    if a.vms == 0 {
        return Err(Usage("demo: --vms needs at least one VM".into()));
    }
    let width = a.vms.to_string().len().max(2);
    let mut servers = Vec::with_capacity(a.vms);
    let mut targets = Vec::with_capacity(a.vms);
    for i in 1..=a.vms {
        let block = &plan.vms[(i - 1) % plan.vms.len()];
        let name = format!("{}-{i:0width$}", block.name);
        let home = root.join("vms").join(&name);
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        let server = TestServer::builder()
            .working_dir(&home)
            .env("HOSTNAME", &name)
            .start()
            .await
            .map_err(|e| format!("cannot start embedded VM {name}: {}", e.chain()))?;
        let mut steps: Vec<ProvisionDef> = plan
            .steps_for(&block.name)
            .into_iter()
            .map(|s| under(&home, s))
            .collect();
        if a.break_vm.as_deref() == Some(name.as_str()) {
            let fail = "echo 'about to fail'; echo 'disk full (not really)' >&2; exit 3";
            steps.insert(steps.len().min(2), ProvisionDef::inline(fail));
        }
        targets.push(
            Target::new(&name, server.host(), server.port(), server.config(), steps)
                .base_dir(&plan.base_dir),
        );
        servers.push(server);
    }
    if let Some(b) = &a.break_vm
        && !targets.iter().any(|t| t.name() == b)
    {
        return Err(Usage(format!("demo: --break {b}: no such VM")));
    }
    Ok((targets, servers))
}

/// A file step's absolute destination moved under `root`.
fn under(root: &Path, step: ProvisionDef) -> ProvisionDef {
    match step.kind() {
        StepKind::File {
            source,
            destination,
        } if destination.starts_with('/') => {
            let moved = root.join(destination.trim_start_matches('/'));
            ProvisionDef::file(source.clone(), moved.to_string_lossy().into_owned())
        }
        _ => step,
    }
}

/// `--qemu N`: builds (or reuses) the image with scripts/vm-image.sh from
/// this source tree, boots `n` guests through `vmssh_testkit::qemu` (the
/// launcher the real-VM tests use), OpenSSH's sshd and dropbear
/// alternately, and targets them with the demo plan; the fleet connects
/// while they boot.
async fn qemu_targets(plan: &Plan, n: usize) -> Result<(Vec<Target>, Vec<Guest>), Usage> {
    if n == 0 {
        return Err(Usage("demo: --qemu needs at least one VM".into()));
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if n > cores {
        eprintln!(
            "vmssh: note: {n} guests on {cores} cores: each guest emulates its CPU (TCG) and needs a core to boot in seconds"
        );
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm-image.sh");
    eprintln!(
        "vmssh: building or reusing the VM image ({})",
        script.display()
    );
    let built = tokio::process::Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !built.status.success() {
        return Err(Usage(format!(
            "{} failed ({})",
            script.display(),
            built.status
        )));
    }
    let image_dir = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let image = Image::open(&image_dir).map_err(|e| e.chain().to_string())?;
    let boots = (1..=n).map(|i| {
        let ssh = if i % 2 == 1 {
            GuestSsh::OpenSsh
        } else {
            GuestSsh::Dropbear
        };
        // The guests take the plan's vm blocks in turn, as embedded VMs do.
        let block = &plan.vms[(i - 1) % plan.vms.len()].name;
        let name = format!("{block}-{i}");
        let guest = image.guest().ssh(ssh).hostname(&name);
        async move { (name, block, ssh, guest.boot().await) }
    });
    let mut guests = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    for (name, block, ssh, booted) in futures::future::join_all(boots).await {
        let guest = booted.map_err(|e| format!("cannot boot {name}: {}", e.chain()))?;
        eprintln!(
            "vmssh: {name}: QEMU pid {} running {ssh:?}, ssh on {}:{}",
            guest.pid().unwrap_or(0),
            guest.host(),
            guest.port()
        );
        let steps = plan.steps_for(block);
        // A booting guest may refuse the login for a while, as vmctl's do.
        let config = guest.config();
        let config = config
            .clone()
            .retry(config.retry_policy().clone().retry_auth_failures(true));
        targets.push(
            Target::new(&name, guest.host(), guest.port(), config, steps).base_dir(&plan.base_dir),
        );
        guests.push(guest);
    }
    Ok((targets, guests))
}
