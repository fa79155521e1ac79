//! One file per verb. Each checks everything it was given (plan, hosts,
//! keys, local files) before anything connects, then hands its targets to
//! [`crate::run::run`].

pub(crate) mod copy;
pub(crate) mod demo;
pub(crate) mod exec;
pub(crate) mod provision;
pub(crate) mod report;
pub(crate) mod vmctl;

use std::time::Duration;

use vmssh::Secret;
use vmssh::fleet::Target;
use vmssh::provision::ProvisionDef;

use crate::args::{AuthArgs, RunArgs, TargetArgs};
use crate::credentials::{Credentials, Defaults, Endpoint};
use crate::jumps::Jumps;
use crate::targets::{self, Host};
use crate::usage::{Exit, Usage};

/// What to do when a host key is refused, unless the flags already
/// trust new keys.
pub(crate) fn host_key_hint(auth: &AuthArgs) -> Option<&'static str> {
    (!auth.accept_new && !auth.insecure_accept_any).then_some(
        "Check that the key is the host's, then run again with --accept-new to record the key of a host seen for the first time (a changed key is still refused), or give the file that has it with --known-hosts.",
    )
}

/// The targets, each given the sudo password when there is one (clones of
/// one [`Secret`]: one copy in memory).
pub(crate) fn with_sudo_password(targets: Vec<Target>, password: Option<Secret>) -> Vec<Target> {
    match password {
        None => targets,
        Some(p) => targets
            .into_iter()
            .map(|t| t.sudo_password(p.clone()))
            .collect(),
    }
}

/// The endpoints of this shard, every host checked whatever the shard.
pub(crate) async fn endpoints(
    hosts: Vec<Host>,
    targets_args: &TargetArgs,
    auth: &AuthArgs,
    defaults: impl Fn(&str) -> Defaults,
) -> Result<Vec<Endpoint>, Usage> {
    let mut creds = Credentials::new(auth).await?;
    let all = creds
        .endpoints(hosts, targets_args.user.as_deref(), defaults)
        .await?;
    let total = all.len();
    let mine: Vec<Endpoint> = all
        .into_iter()
        .filter(|e| targets::in_shard(targets_args, &e.name))
        .collect();
    if let Some(shard) = targets_args.shard {
        eprintln!("vmssh: shard {shard}: {} of {total} hosts", mine.len());
    }
    Ok(mine)
}

/// The endpoints as fleet targets, `steps` for each, once their jump hosts
/// are connected. A jump host that cannot be reached ends the command with
/// exit code 1 (its hosts cannot run) before anything runs.
pub(crate) async fn targets(
    endpoints: Vec<Endpoint>,
    run: &RunArgs,
    mut steps: impl FnMut(&Endpoint) -> Vec<ProvisionDef>,
) -> Result<Vec<Target>, Exit> {
    let deadline = Duration::from_secs(run.connect_deadline);
    let jumps = match Jumps::connect(&endpoints, run.concurrency, deadline).await {
        Ok(j) => j,
        Err(e) => {
            eprintln!("vmssh: {e}: nothing ran");
            return Err(Exit::Failed);
        }
    };
    Ok(endpoints
        .into_iter()
        .map(|e| {
            let steps = steps(&e);
            jumps.target(e, steps)
        })
        .collect())
}
