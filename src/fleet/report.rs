//! The result of a fleet run: one [`VmReport`] per VM in a
//! [`FleetReport`], plain serializable data.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::provision::StepReport;

/// How one VM's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// Connecting or a step failed.
    Failed,
    /// Stopped before it finished, or not started: too many other VMs
    /// failed ([`Fleet::fail_fast`](super::Fleet::fail_fast), [`Fleet::max_failures`](super::Fleet::max_failures)) or the run
    /// was stopped ([`StopHandle`](super::StopHandle)). The error says which.
    Cancelled,
}

/// What happened on one VM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VmReport {
    /// VM name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// 1-based index of the failing step, when a step failed.
    pub failed_step: Option<usize>,
    /// The error, as text, when it failed.
    pub error: Option<String>,
    /// Time to connect, retries included, when it connected.
    pub connect: Option<Duration>,
    /// The steps that ran.
    pub steps: Vec<StepReport>,
    /// Total time for this VM.
    pub total: Duration,
}

/// The result of a fleet run: one [`VmReport`] per target, in target order.
///
/// Plain serializable data: shards run elsewhere can be merged with
/// [`merge`](Self::merge).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FleetReport {
    /// Per-VM results.
    pub vms: Vec<VmReport>,
    /// Wall time of the run.
    pub wall: Duration,
}

impl FleetReport {
    fn names(&self, outcome: Outcome) -> Vec<&str> {
        self.vms
            .iter()
            .filter(|v| v.outcome == outcome)
            .map(|v| v.name.as_str())
            .collect()
    }

    /// Names of the VMs whose plan succeeded.
    pub fn succeeded(&self) -> Vec<&str> {
        self.names(Outcome::Succeeded)
    }

    /// Names of the VMs that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.names(Outcome::Failed)
    }

    /// Names of the VMs cancelled (fail-fast, failure limit or stop).
    pub fn cancelled(&self) -> Vec<&str> {
        self.names(Outcome::Cancelled)
    }

    /// The report of the VM called `name`.
    pub fn get(&self, name: &str) -> Option<&VmReport> {
        self.vms.iter().find(|v| v.name == name)
    }

    /// Whether every VM succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.vms.iter().all(|v| v.outcome == Outcome::Succeeded)
    }

    /// Adds another shard's results (wall time: the longer of the two).
    pub fn merge(&mut self, other: FleetReport) {
        self.vms.extend(other.vms);
        self.wall = self.wall.max(other.wall);
    }

    /// A human summary table: one line per VM, then totals.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let width = self
            .vms
            .iter()
            .map(|v| v.name.len())
            .max()
            .unwrap_or(2)
            .max(2);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<width$}  {:<9}  {:>9}  {:>9}  detail",
            "VM", "RESULT", "CONNECT", "TOTAL"
        );
        for v in &self.vms {
            let result = match v.outcome {
                Outcome::Succeeded => "ok",
                Outcome::Failed => "FAILED",
                Outcome::Cancelled => "cancelled",
            };
            let connect = v
                .connect
                .map(|d| format!("{:.2}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            let detail = match (&v.error, v.failed_step) {
                (Some(e), _) => e.lines().next().unwrap_or_default().to_string(),
                (None, _) => format!("{} steps", v.steps.len()),
            };
            let _ = writeln!(
                s,
                "{:<width$}  {:<9}  {:>9}  {:>8.2}s  {detail}",
                v.name,
                result,
                connect,
                v.total.as_secs_f64()
            );
        }
        let _ = write!(
            s,
            "{} succeeded, {} failed, {} cancelled in {:.2}s",
            self.succeeded().len(),
            self.failed().len(),
            self.cancelled().len(),
            self.wall.as_secs_f64()
        );
        s
    }
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}
