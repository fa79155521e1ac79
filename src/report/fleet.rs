//! The results of a run: each step's [`StepReport`], each VM's
//! [`VmReport`], the fleet's [`FleetReport`]; plain serializable data.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::secs;
use crate::status::ExitStatus;

/// The result of one step that ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepReport {
    /// 1-based index.
    pub step: usize,
    /// [`ProvisionDef::describe`](crate::provision::ProvisionDef::describe).
    pub description: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How a command step ended (see [`ExitStatus`] for its JSON shape);
    /// `None` for file steps and for commands that did not complete.
    pub status: Option<ExitStatus>,
    /// How long it ran.
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// How one VM's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// Connecting or a step failed.
    Failed,
    /// Stopped before it finished, or not started: too many other VMs
    /// failed ([`Fleet::fail_fast`](crate::fleet::Fleet::fail_fast),
    /// [`Fleet::max_failures`](crate::fleet::Fleet::max_failures)) or the
    /// run was stopped ([`StopHandle`](crate::fleet::StopHandle)).
    /// [`Failure::Cancelled`] says which.
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
    /// Why it did not succeed.
    pub failure: Option<Failure>,
    /// The last lines of the failing step's stderr, when it wrote any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// The last lines of the failing step's stdout, when it wrote any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_tail: Option<String>,
    /// When connecting was retried until the connect deadline passed
    /// (the failure is the last attempt's): that deadline.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "secs::option"
    )]
    pub deadline_passed: Option<Duration>,
    /// Time to connect, retries included, when it connected.
    #[serde(with = "secs::option")]
    pub connect: Option<Duration>,
    /// The steps that ran.
    pub steps: Vec<StepReport>,
    /// Total time for this VM.
    #[serde(with = "secs")]
    pub total: Duration,
    /// The 1-based batch it ran in (or would have), in a rolling run
    /// ([`Fleet::batches`](crate::fleet::Fleet::batches)); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
}

impl VmReport {
    /// A report of a VM that has not run (yet): failed, with no failure
    /// recorded, no time.
    pub(crate) fn new(name: &str, host: &str, port: u16) -> VmReport {
        VmReport {
            name: name.to_string(),
            host: host.to_string(),
            port,
            outcome: Outcome::Failed,
            failure: None,
            stderr_tail: None,
            stdout_tail: None,
            deadline_passed: None,
            connect: None,
            steps: Vec::new(),
            total: Duration::ZERO,
            batch: None,
        }
    }

    /// The 1-based step that failed, or that was running when the VM was
    /// cancelled.
    pub fn failed_step(&self) -> Option<usize> {
        self.failure.as_ref().and_then(Failure::step)
    }
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
    #[serde(with = "secs")]
    pub wall: Duration,
    /// The report this run was a rerun of (its failed and cancelled VMs
    /// run again), as its writer named it; `None` for a first run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<PathBuf>,
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

    /// Names of the VMs that failed or were cancelled, in report order:
    /// what a rerun runs again.
    pub fn failed_or_cancelled(&self) -> Vec<&str> {
        self.vms
            .iter()
            .filter(|v| v.outcome != Outcome::Succeeded)
            .map(|v| v.name.as_str())
            .collect()
    }

    /// The report of the VM called `name`.
    pub fn get(&self, name: &str) -> Option<&VmReport> {
        self.vms.iter().find(|v| v.name == name)
    }

    /// Whether every VM succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.vms.iter().all(|v| v.outcome == Outcome::Succeeded)
    }

    /// Adds another shard's results (wall time: the longer of the two;
    /// [`rerun_of`](Self::rerun_of): this one's, else the other's).
    pub fn merge(&mut self, other: FleetReport) {
        self.vms.extend(other.vms);
        self.wall = self.wall.max(other.wall);
        if self.rerun_of.is_none() {
            self.rerun_of = other.rerun_of;
        }
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
            let detail = match &v.failure {
                Some(f) => f.to_string(),
                None if v.steps.len() == 1 => "1 step".to_string(),
                None => format!("{} steps", v.steps.len()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reruns_take_the_failed_and_cancelled_and_say_so() {
        let vm = |name: &str, outcome| VmReport {
            outcome,
            ..VmReport::new(name, "h", 22)
        };
        let mut r = FleetReport {
            vms: vec![
                vm("a", Outcome::Succeeded),
                vm("b", Outcome::Failed),
                vm("c", Outcome::Cancelled),
            ],
            ..FleetReport::default()
        };
        assert_eq!(r.failed_or_cancelled(), ["b", "c"]);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("rerun_of").is_none(), "{v}");
        assert!(v["vms"][0].get("batch").is_none(), "{v}");
        let rerun = FleetReport {
            rerun_of: Some(PathBuf::from("first.json")),
            ..FleetReport::default()
        };
        r.merge(rerun);
        assert_eq!(
            r.rerun_of.as_deref(),
            Some(std::path::Path::new("first.json"))
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["rerun_of"], "first.json");
        assert_eq!(serde_json::from_value::<FleetReport>(v).unwrap(), r);
    }
}
