//! `vmssh report merge A.json B.json ... > ALL.json` and `vmssh report
//! show FILE.json`.
//!
//! Shards have no common order, so a merged report lists its hosts by
//! name; its wall time is the longest shard's. A host in two reports is
//! an error: shards partition the hosts.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::Path;

use vmssh::fleet::FleetReport;

use crate::args::{MergeArgs, ShowArgs};
use crate::render::{Verb, summary};
use crate::usage::{Exit, Usage};

pub(crate) async fn read(path: &Path) -> Result<FleetReport, Usage> {
    let text = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| Usage(format!("{}: not a vmssh report: {e}", path.display())))
}

/// The reports merged, hosts by name.
pub(crate) async fn merged(paths: &[impl AsRef<Path>]) -> Result<FleetReport, Usage> {
    let mut all = FleetReport::default();
    let mut from: HashMap<String, String> = HashMap::new();
    for p in paths {
        let p = p.as_ref();
        let report = read(p).await?;
        for v in &report.vms {
            if let Some(first) = from.insert(v.name.clone(), p.display().to_string()) {
                return Err(Usage(format!(
                    "host {} is in both {first} and {}: shards do not overlap",
                    v.name,
                    p.display()
                )));
            }
        }
        all.merge(report);
    }
    all.vms.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

pub(crate) async fn merge(a: MergeArgs) -> Result<Exit, Usage> {
    let all = merged(&a.reports).await?;
    let json = serde_json::to_string_pretty(&all)
        .map_err(|e| Usage(format!("cannot encode the merged report: {e}")))?;
    println!("{json}");
    Ok(Exit::Ok)
}

pub(crate) async fn show(a: ShowArgs) -> Result<Exit, Usage> {
    let report = read(&a.report).await?;
    let color = std::io::stdout().is_terminal() && console::colors_enabled();
    // A report does not say which verb wrote it: a plan's words.
    print!("{}", summary::render(&report, color, Verb::Provision));
    Ok(if report.all_succeeded() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}
