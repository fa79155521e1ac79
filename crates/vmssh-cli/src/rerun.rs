//! `--rerun-failed REPORT.json`: the hosts an earlier run's report lists
//! as failed or cancelled, run again with today's definitions (the hosts
//! given on this command line); the new report names the old one
//! (`rerun_of`).

use std::collections::HashSet;
use std::path::Path;

use crate::args::RunArgs;
use crate::commands::report;
use crate::usage::Usage;

/// Keeps the items (hosts, targets) whose `name` the report given with
/// `--rerun-failed` lists as failed or cancelled, in their order; all of
/// them without the flag. A host to run again that is not among `items`
/// is an error naming it: today's hosts must still define it.
pub(crate) async fn select<T>(
    items: Vec<T>,
    run: &RunArgs,
    name: impl Fn(&T) -> &str,
) -> Result<Vec<T>, Usage> {
    let Some(path) = &run.rerun_failed else {
        return Ok(items);
    };
    let old = report::read(path).await?;
    let again: Vec<&str> = old.failed_or_cancelled();
    let given: HashSet<&str> = items.iter().map(&name).collect();
    let missing: Vec<&str> = again
        .iter()
        .copied()
        .filter(|h| !given.contains(h))
        .collect();
    if !missing.is_empty() {
        return Err(Usage(format!(
            "--rerun-failed {}: {} {} failed or cancelled there but {} not among the hosts given: {}",
            path.display(),
            if missing.len() == 1 { "host" } else { "hosts" },
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
            "give the same hosts (--host, --hosts, --ssh-config, --vmctl) as the run that wrote it"
        )));
    }
    let again: HashSet<&str> = again.into_iter().collect();
    let kept: Vec<T> = items
        .into_iter()
        .filter(|i| again.contains(name(i)))
        .collect();
    announce(path, &kept, name);
    Ok(kept)
}

fn announce<T>(path: &Path, kept: &[T], name: impl Fn(&T) -> &str) {
    if kept.is_empty() {
        eprintln!(
            "vmssh: rerun of {}: no host failed or was cancelled there; nothing to run",
            path.display()
        );
    } else {
        let names: Vec<&str> = kept.iter().map(name).collect();
        eprintln!(
            "vmssh: rerun of {}: {} (failed or cancelled there)",
            path.display(),
            names.join(", ")
        );
    }
}
