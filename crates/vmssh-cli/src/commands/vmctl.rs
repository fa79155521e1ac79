//! `vmssh provision --vmctl[=STATE]`: the plan's VMs that vmctl runs,
//! found in its state file and reached as vmctl reaches them
//! ([`vmssh::vmctl::Inventory::targets`]): 127.0.0.1 and the VM's
//! forwarded port, the plan's user, its `private-key` or the key vmctl
//! generated, host keys per instance in the VM's work directory, and
//! `provision.log` in vmctl's layout there.

use std::path::Path;

use vmssh::fleet::Target;
use vmssh::plan::Plan;
use vmssh::vmctl::Inventory;

use crate::args::ProvisionArgs;
use crate::targets;
use crate::usage::Usage;

/// The targets of this shard; `state` is vmctl's own file when `None`.
pub(crate) async fn targets(
    plan: &Plan,
    state: Option<&Path>,
    a: &ProvisionArgs,
) -> Result<Vec<Target>, Usage> {
    let t = &a.targets;
    if !t.hosts.is_empty() || !t.inventories.is_empty() || !t.aliases.is_empty() {
        return Err(Usage(
            "--vmctl cannot be combined with --host, --hosts or --ssh-config".into(),
        ));
    }
    let auth = &a.auth;
    if !auth.keys.is_empty()
        || auth.agent
        || auth.password_env.is_some()
        || auth.known_hosts.is_some()
        || auth.accept_new
        || auth.insecure_accept_any
        || t.user.is_some()
        || t.jump.is_some()
    {
        return Err(Usage(
            "--vmctl: vmctl's VMs are reached with vmctl's user, keys and host keys; drop --user, --jump and the authentication and host-key flags".into(),
        ));
    }
    let inventory = match state {
        None => Inventory::load_default().await,
        Some(state) => Inventory::load(state).await,
    }
    .map_err(|e| format!("--vmctl: {}", e.chain()))?;
    let all = inventory
        .targets(plan)
        .map_err(|e| format!("--vmctl: {}", e.chain()))?;
    if all.is_empty() {
        return Err(Usage(format!(
            "--vmctl: no vm of the plan has provision steps (vmctl state {})",
            inventory.path().display()
        )));
    }
    let all = crate::rerun::select(all, &a.run, |t| t.name()).await?;
    let total = all.len();
    let mine: Vec<Target> = all
        .into_iter()
        .filter(|target| targets::in_shard(t, target.name()))
        .collect();
    if let Some(shard) = t.shard {
        eprintln!("vmssh: shard {shard}: {} of {total} hosts", mine.len());
    }
    Ok(mine)
}
