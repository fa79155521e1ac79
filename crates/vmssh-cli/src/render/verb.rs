//! [`Verb`]: what a run does on each host, which decides its words. A
//! plan (`provision`, `demo`) has steps and VMs; `exec`, `upload` and
//! `download` do one thing on each host, and speak of that thing.

use std::time::Duration;

use vmssh::fleet::VmReport;
use vmssh::report::{CancelReason, Failure, StepReport};

/// What the run does on each host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// A plan's steps (`provision`, `demo`).
    Provision,
    /// One command (`exec`).
    Exec,
    /// One file to each host (`upload`).
    Upload,
    /// One file from each host (`download`).
    Download,
}

impl Verb {
    /// Whether hosts run plans of steps (numbered, one header each).
    pub(crate) fn has_steps(self) -> bool {
        self == Verb::Provision
    }

    /// The first column of the summary.
    pub(crate) fn column(self) -> &'static str {
        if self.has_steps() { "VM" } else { "HOST" }
    }

    /// What a host is doing once connected, on its bar.
    pub(crate) fn doing(self) -> &'static str {
        match self {
            Verb::Provision | Verb::Exec => "running",
            Verb::Upload => "uploading",
            Verb::Download => "downloading",
        }
    }

    /// Why a host failed, in this verb's words: the failed step's reason
    /// (`exit status 3`) rather than the plan's sentence (`provisioning
    /// web: step 1 (inline: uptime) failed: exit status 3`). For a host
    /// the run stopped, what it was doing and why, when that is more than
    /// the run's own "interrupted" line says (may be empty). May span
    /// lines.
    pub(crate) fn failure(self, f: &Failure) -> String {
        match f {
            Failure::Cancelled { reason, step, .. } => {
                let during = step
                    .filter(|_| self.has_steps())
                    .map(|n| format!("during step {n}"));
                let why = match reason {
                    CancelReason::Stopped => None,
                    CancelReason::FailFast => Some("another host failed (--fail-fast)".into()),
                    CancelReason::TooManyFailures { limit } => {
                        Some(format!("more than {limit} hosts failed (--max-fail)"))
                    }
                    other => Some(other.to_string()),
                };
                [during, why]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
            }
            _ if self.has_steps() => f.to_string(),
            Failure::Step { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// A host's result in a word: `ok`, `FAILED`, or for a host the run
    /// stopped, `stopped` (it had started) or `not started`.
    pub(crate) fn verdict(failure: Option<&Failure>) -> &'static str {
        match failure {
            None => "ok",
            Some(Failure::Cancelled { started: true, .. }) => "stopped",
            Some(Failure::Cancelled { started: false, .. }) => "not started",
            Some(_) => "FAILED",
        }
    }

    /// How a host that did not succeed ended: its verdict, then why
    /// (`FAILED: exit status 3`, `stopped`, `not started: another host
    /// failed (--fail-fast)`). May span lines.
    pub(crate) fn ended(self, f: &Failure, deadline_passed: Option<Duration>) -> String {
        let verdict = Self::verdict(Some(f));
        let why = self.failure_after(f, deadline_passed);
        if why.is_empty() {
            verdict.to_string()
        } else {
            format!("{verdict}: {why}")
        }
    }

    /// [`failure`](Self::failure), saying when connecting was retried
    /// until `--connect-deadline` passed (`deadline_passed`).
    pub(crate) fn failure_after(self, f: &Failure, deadline_passed: Option<Duration>) -> String {
        let mut text = self.failure(f);
        if let Some(d) = deadline_passed {
            text.push_str(&format!(
                " (retried until --connect-deadline {} s passed)",
                d.as_secs()
            ));
        }
        text
    }

    /// What a host that succeeded did, for the summary.
    pub(crate) fn success(self, v: &VmReport) -> String {
        match self {
            Verb::Provision if v.steps.len() == 1 => "1 step".into(),
            Verb::Provision => format!("{} steps", v.steps.len()),
            Verb::Exec => v
                .steps
                .first()
                .and_then(|s: &StepReport| s.status.as_ref())
                .map_or_else(|| "done".into(), ToString::to_string),
            Verb::Upload => "uploaded".into(),
            Verb::Download => "downloaded".into(),
        }
    }
}

/// A connect retry, with the flag that bounds it: `retrying (connection
/// refused), 12 s of 120 s (--connect-deadline)`.
pub(crate) fn retry_line(reason: &str, elapsed: Duration, deadline: Duration) -> String {
    let reason = vmssh::provision::visible(reason.as_bytes(), false);
    format!(
        "retrying ({reason}), {} s of {} s (--connect-deadline)",
        elapsed.as_secs(),
        deadline.as_secs()
    )
}

/// `text`'s lines for a terminal or a pipe: guest bytes made visible
/// (no escape runs), one entry per line, never empty.
pub(crate) fn lines_of(text: &str) -> Vec<String> {
    let shown = vmssh::provision::visible(text.as_bytes(), false);
    let mut lines: Vec<String> = shown
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thing_per_host_has_no_steps() {
        let f = Failure::Step {
            step: 1,
            description: "inline: uptime".into(),
            reason: "exit status 3".into(),
            status: None,
            message: "provisioning alpha: step 1 (inline: uptime) failed: exit status 3".into(),
        };
        assert_eq!(Verb::Exec.failure(&f), "exit status 3");
        assert!(Verb::Provision.failure(&f).contains("step 1"));
    }

    #[test]
    fn a_stopped_host_is_stopped_once() {
        let f = Failure::Cancelled {
            reason: CancelReason::Stopped,
            started: true,
            step: Some(2),
        };
        assert_eq!(Verb::verdict(Some(&f)), "stopped");
        assert_eq!(Verb::Exec.failure(&f), "");
        assert_eq!(Verb::Provision.failure(&f), "during step 2");
        let f = Failure::Cancelled {
            reason: CancelReason::FailFast,
            started: false,
            step: None,
        };
        assert_eq!(Verb::verdict(Some(&f)), "not started");
        assert_eq!(Verb::Exec.failure(&f), "another host failed (--fail-fast)");
    }

    #[test]
    fn a_failure_at_the_deadline_names_the_flag() {
        let f = Failure::Connect {
            message: "cannot connect to 127.0.0.1:9: Connection refused".into(),
        };
        assert_eq!(
            Verb::Exec.failure_after(&f, Some(Duration::from_secs(3))),
            "connect failed: cannot connect to 127.0.0.1:9: Connection refused (retried until --connect-deadline 3 s passed)"
        );
        assert!(!Verb::Exec.failure_after(&f, None).contains("deadline"));
        assert_eq!(
            retry_line(
                "connection refused",
                Duration::from_millis(12_400),
                Duration::from_secs(120)
            ),
            "retrying (connection refused), 12 s of 120 s (--connect-deadline)"
        );
    }

    #[test]
    fn lines_are_real_lines() {
        assert_eq!(lines_of("a\n  b\x1b[2J\n"), ["a", "  b^[[2J"]);
        assert_eq!(lines_of(""), [""]);
    }
}
