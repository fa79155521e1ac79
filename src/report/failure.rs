//! [`Failure`]: why a VM did not succeed, as data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Chain, Error};
use crate::status::ExitStatus;

/// Why a VM did not succeed. Each variant carries `message`, the error
/// and its causes as one line; the failing step's stderr and stdout tails
/// are kept apart (in [`VmReport::stderr_tail`](super::VmReport::stderr_tail),
/// [`VmReport::stdout_tail`](super::VmReport::stdout_tail) and
/// [`Event::VmFinished`](super::Event::VmFinished)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Failure {
    /// The VM could not be reached: refused, timed out, lost during the
    /// handshake, a jump host that failed, a key that could not be read.
    Connect {
        /// The error and its causes.
        message: String,
    },
    /// The server refused every authentication method.
    Authentication {
        /// The error and its causes.
        message: String,
    },
    /// The server's host key was unknown, changed or revoked.
    HostKey {
        /// The error and its causes.
        message: String,
    },
    /// A step failed: it ran and failed, or could not be started.
    Step {
        /// 1-based index of the step.
        step: usize,
        /// What the step was (`inline: apt-get update`, ...).
        description: String,
        /// Why, without the VM and step: `exit status 3`, `timed out`,
        /// `cannot upload to /etc/x: ...` (with its causes).
        reason: String,
        /// The exit status, when the step was a command that ran to the end.
        status: Option<ExitStatus>,
        /// The error and its causes.
        message: String,
    },
    /// The run stopped before this VM finished.
    Cancelled {
        /// Why the run stopped.
        reason: CancelReason,
        /// Whether the VM had started (connecting or running its plan).
        started: bool,
        /// The 1-based step that was running, if one was.
        step: Option<usize>,
    },
    /// The run was refused before anything ran: two targets had the same
    /// name.
    DuplicateName {
        /// The error.
        message: String,
    },
    /// The VM's task panicked.
    Panicked,
}

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelReason {
    /// Its [`StopHandle`](crate::fleet::StopHandle) was used (Ctrl-C, a
    /// deadline, a shutdown).
    Stopped,
    /// Another VM failed and the run was
    /// [`fail_fast`](crate::fleet::Fleet::fail_fast).
    FailFast,
    /// More VMs failed than [`max_failures`](crate::fleet::Fleet::max_failures)
    /// allows.
    TooManyFailures {
        /// The limit.
        limit: usize,
    },
    /// The VM's batch of a rolling run ([`Fleet::batches`](crate::fleet::Fleet::batches))
    /// was never started: an earlier batch ended with more VMs failed than
    /// [`max_failures`](crate::fleet::Fleet::max_failures) allows
    /// (any, with [`fail_fast`](crate::fleet::Fleet::fail_fast)).
    BatchFailed {
        /// The 1-based batch in which the limit was passed.
        batch: usize,
        /// The limit (0 for fail-fast).
        limit: usize,
    },
}

impl Failure {
    /// The failure of connecting: authentication, host key or the rest.
    pub(crate) fn connect(e: &Error) -> Failure {
        let message = Chain(e).to_string();
        if e.is_host_key() {
            Failure::HostKey { message }
        } else if e.is_auth() {
            Failure::Authentication { message }
        } else {
            Failure::Connect { message }
        }
    }

    /// The failure of a plan: a step, or (before any step) the plan's input.
    pub(crate) fn plan(e: &Error) -> Failure {
        match e {
            Error::ProvisionFailed {
                step,
                description,
                reason,
                status,
                source,
                ..
            } => Failure::Step {
                step: *step,
                description: description.clone(),
                reason: match source {
                    Some(s) => format!("{reason}: {}", Chain(s.as_ref())),
                    None => reason.clone(),
                },
                status: status.clone(),
                message: Chain(e).to_string(),
            },
            Error::DuplicateTarget { .. } => Failure::DuplicateName {
                message: e.to_string(),
            },
            other => Failure::connect(other),
        }
    }

    /// The 1-based step that failed or was running, if any.
    pub fn step(&self) -> Option<usize> {
        match self {
            Failure::Step { step, .. } => Some(*step),
            Failure::Cancelled { step, .. } => *step,
            _ => None,
        }
    }
}

/// The stderr tail of a failed step, when it has one.
pub(crate) fn stderr_tail(e: &Error) -> Option<String> {
    match e {
        Error::ProvisionFailed { stderr_tail, .. } if !stderr_tail.is_empty() => {
            Some(stderr_tail.to_string())
        }
        _ => None,
    }
}

/// The stdout tail of a failed step, when it has one.
pub(crate) fn stdout_tail(e: &Error) -> Option<String> {
    match e {
        Error::ProvisionFailed { stdout_tail, .. } if !stdout_tail.is_empty() => {
            Some(stdout_tail.to_string())
        }
        _ => None,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect { message }
            | Failure::Authentication { message }
            | Failure::HostKey { message } => write!(f, "connect failed: {message}"),
            Failure::Step { message, .. } | Failure::DuplicateName { message } => {
                f.write_str(message)
            }
            Failure::Cancelled {
                reason,
                started,
                step,
            } => {
                match (step, started) {
                    (Some(n), _) => write!(f, "cancelled during step {n}")?,
                    (None, true) => f.write_str("cancelled")?,
                    (None, false) => f.write_str("cancelled before it started")?,
                }
                write!(f, ": {reason}")
            }
            Failure::Panicked => f.write_str("provisioning task panicked"),
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Stopped => f.write_str("the run was stopped"),
            CancelReason::FailFast => f.write_str("another VM failed (fail_fast)"),
            CancelReason::TooManyFailures { limit } => {
                write!(f, "more than {limit} VMs failed (max_failures)")
            }
            CancelReason::BatchFailed { batch, limit: 0 } => write!(
                f,
                "a VM of batch {batch} failed (fail_fast): later batches were not started"
            ),
            CancelReason::BatchFailed { batch, limit } => write!(
                f,
                "more than {limit} VMs failed by batch {batch} (max_failures): later batches were not started"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_the_kind() {
        let f = Failure::Cancelled {
            reason: CancelReason::TooManyFailures { limit: 2 },
            started: true,
            step: Some(3),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "cancelled", "reason": {"by": "too_many_failures", "limit": 2},
                "started": true, "step": 3})
        );
        assert_eq!(serde_json::from_value::<Failure>(v).unwrap(), f);
        assert_eq!(
            f.to_string(),
            "cancelled during step 3: more than 2 VMs failed (max_failures)"
        );
        let f = Failure::Cancelled {
            reason: CancelReason::BatchFailed { batch: 1, limit: 0 },
            started: false,
            step: None,
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v["reason"],
            serde_json::json!({"by": "batch_failed", "batch": 1, "limit": 0})
        );
        assert_eq!(serde_json::from_value::<Failure>(v).unwrap(), f);
        assert_eq!(
            f.to_string(),
            "cancelled before it started: a VM of batch 1 failed (fail_fast): later batches were not started"
        );
    }

    #[test]
    fn a_step_failure_keeps_its_parts() {
        let e = Error::ProvisionFailed {
            vm: "vm1".into(),
            step: 2,
            description: "inline: false".into(),
            reason: "exit status 1".into(),
            status: Some(ExitStatus::from_code(1)),
            stderr_tail: Box::new("boom".into()),
            stdout_tail: Box::new("half done".into()),
            source: None,
        };
        let f = Failure::plan(&e);
        assert_eq!(f.step(), Some(2));
        match &f {
            Failure::Step { reason, status, .. } => {
                assert_eq!(reason, "exit status 1");
                assert_eq!(status.as_ref().and_then(ExitStatus::code), Some(1));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !f.to_string().contains("boom"),
            "the tail is kept apart: {f}"
        );
        assert_eq!(stderr_tail(&e).as_deref(), Some("boom"));
        assert_eq!(stdout_tail(&e).as_deref(), Some("half done"));
    }
}
