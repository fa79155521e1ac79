//! One file per verb. Each checks everything it was given (plan, hosts,
//! keys, local files) before anything connects, then hands its targets to
//! [`crate::run::run`].

pub(crate) mod copy;
pub(crate) mod demo;
pub(crate) mod exec;
pub(crate) mod provision;
pub(crate) mod report;
pub(crate) mod shell;
pub(crate) mod vmctl;

use std::path::Path;
use std::time::Duration;

use vmssh::Secret;
use vmssh::fleet::Target;
use vmssh::provision::ProvisionDef;

use crate::args::{AuthArgs, RunArgs, TargetArgs};
use crate::credentials::{Credentials, Defaults, Endpoint};
use crate::dry_run::{self, Resolved, Row};
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

/// Every host resolved, each on its own (a dry run lists every problem).
pub(crate) async fn resolve(
    hosts: Vec<Host>,
    targets_args: &TargetArgs,
    auth: &AuthArgs,
    defaults: impl Fn(&str) -> Defaults,
) -> Result<Vec<Resolved>, Usage> {
    let mut creds = Credentials::new(auth).await?;
    let mut all = Vec::with_capacity(hosts.len());
    for h in hosts {
        let (name, origin) = (h.name.clone(), h.origin.clone());
        let endpoint = creds
            .endpoint(h, targets_args.user.as_deref(), &defaults)
            .await;
        all.push(Resolved {
            in_shard: targets::in_shard(targets_args, &name),
            name,
            origin,
            endpoint,
        });
    }
    Ok(all)
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
    let all = resolve(hosts, targets_args, auth, defaults).await?;
    let total = all.len();
    let mut mine = Vec::new();
    for r in all {
        let endpoint = r.endpoint?;
        if r.in_shard {
            mine.push(endpoint);
        }
    }
    if let Some(shard) = targets_args.shard {
        eprintln!("vmssh: shard {shard}: {} of {total} hosts", mine.len());
    }
    Ok(mine)
}

/// `--dry-run`: the hosts of this shard running `steps` from `base_dir`,
/// printed with every problem found (`extra`: the verb's own), nothing
/// connected (not even a jump host).
pub(crate) fn dry_run(
    resolved: Vec<Resolved>,
    steps: impl Fn(&str) -> Vec<ProvisionDef>,
    base_dir: &Path,
    run: &RunArgs,
    verb: &str,
    extra: Vec<String>,
) -> Result<Exit, Usage> {
    let (mine, others): (Vec<Resolved>, Vec<Resolved>) =
        resolved.into_iter().partition(|r| r.in_shard);
    let row = |r| Row::resolved(r, &steps, base_dir);
    let rows: Vec<Row> = mine.into_iter().map(row).collect();
    let others: Vec<Row> = others.into_iter().map(row).collect();
    dry_run::show(&rows, &others, extra, run, verb)
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
