//! `vmssh provision --plan VMFile.kdl TARGETS`: hosts matched to the
//! plan's `vm` blocks by name; the plan's top-level steps run on every
//! host, before its own.

use std::path::Path;

use vmssh::plan::{DEFAULT_USER, Plan, WarningKind};

use crate::args::ProvisionArgs;
use crate::credentials::Defaults;
use crate::dry_run::Row;
use crate::render::Verb;
use crate::run::Look;
use crate::targets;
use crate::usage::{Exit, Usage};

pub(crate) async fn run(a: ProvisionArgs) -> Result<Exit, Usage> {
    // A dry run lists missing files among its problems, per host.
    let plan = match a.run.dry_run {
        true => read_plan(&a.plan, a.lenient).await?,
        false => load_plan(&a.plan, a.lenient).await?,
    };
    if let Some(state) = &a.vmctl {
        let targets = super::vmctl::targets(&plan, state.as_deref(), &a).await?;
        if a.run.dry_run {
            let origin = "vmctl state";
            let rows: Vec<Row> = targets
                .iter()
                .map(|t| Row::target(t, origin, &plan.base_dir))
                .collect();
            return crate::dry_run::show(&rows, &[], Vec::new(), &a.run, "provision");
        }
        let targets = super::with_sudo_password(targets, a.sudo.password().await?);
        // vmctl's VMs are trusted per instance: a refused key has changed.
        return crate::run::run(targets, &a.run, Look::new(Verb::Provision)).await;
    }
    let hosts = targets::collect(&a.targets, Some("--vmctl")).await?;
    for h in &hosts {
        if plan.vm(&h.name).is_none() && plan.shared.is_empty() {
            let known: Vec<&str> = plan.vms.iter().map(|v| v.name.as_str()).collect();
            return Err(Usage(format!(
                "{} ({}) matches no vm block of {} (it has: {}) and the plan has no top-level provision steps",
                h.name,
                h.origin,
                a.plan.display(),
                known.join(", ")
            )));
        }
    }
    for vm in &plan.vms {
        if !hosts.iter().any(|h| h.name == vm.name) {
            eprintln!(
                "vmssh: note: vm \"{}\" of {} has no host; skipped",
                vm.name,
                a.plan.display()
            );
        }
    }
    let hosts = crate::rerun::select(hosts, &a.run, |h| &h.name).await?;
    let defaults = |name: &str| {
        let vm = plan.vm(name);
        Defaults {
            // vmctl's default user when the plan names none.
            user: Some(vm.map_or(DEFAULT_USER, |v| v.user()).to_string()),
            key: vm.and_then(|v| v.ssh.private_key.clone()),
            port: vm.and_then(|v| v.ssh.port),
        }
    };
    if a.run.dry_run {
        let resolved = super::resolve(hosts, &a.targets, &a.auth, defaults).await?;
        let steps = |name: &str| plan.steps_for(name);
        return super::dry_run(
            resolved,
            steps,
            &plan.base_dir,
            &a.run,
            "provision",
            Vec::new(),
        );
    }
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, defaults).await?;
    let password = a.sudo.password().await?;
    match super::targets(endpoints, &a.run, |e| plan.steps_for(&e.name)).await {
        Ok(targets) => {
            let targets = targets
                .into_iter()
                .map(|t| t.base_dir(&plan.base_dir))
                .collect();
            let targets = super::with_sudo_password(targets, password);
            let look = Look {
                host_key_hint: super::host_key_hint(&a.auth),
                ..Look::new(Verb::Provision)
            };
            crate::run::run(targets, &a.run, look).await
        }
        Err(exit) => Ok(exit),
    }
}

/// Reads a plan, prints its warnings and checks its local files (scripts,
/// sources, keys): a missing one is a usage error before anything runs.
///
/// Unless `lenient`, what vmctl would skip (an unknown node, a misspelt
/// or repeated field, a value it cannot read: the library's
/// [`WarningKind::Ignored`]) is a usage error too, every one listed: a
/// typo must not silently drop a step. Leniently, it is a warning, and
/// the plan runs as vmctl reads it.
pub(crate) async fn load_plan(path: &Path, lenient: bool) -> Result<Plan, Usage> {
    let plan = read_plan(path, lenient).await?;
    plan.check_local_files()
        .await
        .map_err(|e| e.chain().to_string())?;
    Ok(plan)
}

/// [`load_plan`] without the check of its local files.
pub(crate) async fn read_plan(path: &Path, lenient: bool) -> Result<Plan, Usage> {
    let plan = Plan::load(path).await.map_err(|e| e.chain().to_string())?;
    let skipped: Vec<_> = plan
        .warnings()
        .iter()
        .filter(|w| w.kind() == WarningKind::Ignored)
        .collect();
    if !lenient && !skipped.is_empty() {
        let mut lines: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        lines.push(format!(
            "nothing ran: vmctl would skip {} of {} (listed above); fix the plan, or run it as \
             vmctl reads it with --lenient",
            if skipped.len() == 1 {
                "this part".to_string()
            } else {
                format!("these {} parts", skipped.len())
            },
            path.display()
        ));
        return Err(Usage(lines.join("\n")));
    }
    for w in plan.warnings() {
        eprintln!("vmssh: warning: {w}");
    }
    Ok(plan)
}
