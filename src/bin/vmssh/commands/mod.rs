//! One file per verb. Each checks everything it was given (plan, hosts,
//! keys, local files) before anything connects, then hands its targets to
//! [`crate::run::run`].

pub(crate) mod copy;
pub(crate) mod demo;
pub(crate) mod exec;
pub(crate) mod provision;
pub(crate) mod report;

use vmssh::fleet::Target;
use vmssh::provision::ProvisionDef;

use crate::args::{AuthArgs, TargetArgs};
use crate::credentials::{Credentials, Defaults, Endpoint};
use crate::targets::{self, Host};
use crate::usage::Usage;

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

/// Every endpoint with the same steps (exec, upload).
pub(crate) fn same_steps(endpoints: Vec<Endpoint>, steps: &[ProvisionDef]) -> Vec<Target> {
    endpoints
        .into_iter()
        .map(|e| Target::new(e.name, e.host, e.port, e.config, steps.to_vec()))
        .collect()
}
