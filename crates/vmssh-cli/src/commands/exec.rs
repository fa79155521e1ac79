//! `vmssh exec TARGETS -- COMMAND...`: one command on every host, as a
//! one-step plan.

use std::path::Path;
use std::time::Duration;

use vmssh::provision::ProvisionDef;

use crate::args::ExecArgs;
use crate::credentials::Defaults;
use crate::render::Verb;
use crate::run::Look;
use crate::targets;
use crate::usage::{Exit, Usage};

pub(crate) async fn run(a: ExecArgs) -> Result<Exit, Usage> {
    // As ssh does: the words joined by spaces, for the remote shell.
    let command = a.command.join(" ");
    if command.trim().is_empty() {
        return Err(Usage("exec: the command is empty".into()));
    }
    let sudo = &a.sudo_password;
    if !a.sudo && (sudo.sudo_password_env.is_some() || sudo.ask_sudo_password) {
        return Err(Usage(
            "exec: a sudo password is for a command run with --sudo".into(),
        ));
    }
    let hosts = targets::collect(&a.targets, None).await?;
    let hosts = crate::rerun::select(hosts, &a.run, |h| &h.name).await?;
    let mut step = ProvisionDef::inline(command).sudo(a.sudo);
    if let Some(secs) = a.timeout {
        step = step.timeout(Duration::from_secs(secs));
    }
    if a.run.dry_run {
        let resolved = super::resolve(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
        let steps = |_: &str| vec![step.clone()];
        return super::dry_run(resolved, steps, Path::new("."), &a.run, "exec", Vec::new());
    }
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
    let password = sudo.password().await?;
    match super::targets(endpoints, &a.run, |_| vec![step.clone()]).await {
        Ok(targets) => {
            let targets = super::with_sudo_password(targets, password);
            let look = Look {
                verb: Verb::Exec,
                collect: a.collect,
                host_key_hint: super::host_key_hint(&a.auth),
            };
            crate::run::run(targets, &a.run, look).await
        }
        Err(exit) => Ok(exit),
    }
}
