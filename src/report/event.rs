//! [`Event`]: what happens during provisioning, in order, per VM.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::failure::Failure;
use super::secs;
use crate::exec::Chunk;
use crate::status::ExitStatus;

/// What happens during provisioning, in order, per VM; serializable (see
/// the [module docs](super) for the JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A fleet started connecting to the VM.
    Connecting {
        /// VM name.
        vm: Arc<str>,
    },
    /// Connecting to the VM failed and is tried again, until the fleet's
    /// [`connect_deadline`](crate::fleet::Fleet::connect_deadline). A
    /// fleet reports a connect's first retry, then at most one every 5 s
    /// (sooner, at most once a second, when the reason changes): a status
    /// for people and logs, not a count of attempts
    /// ([`RetryPolicy::on_retry`](crate::RetryPolicy::on_retry) sees each
    /// one).
    Retrying {
        /// VM name.
        vm: Arc<str>,
        /// Why the last attempt failed, in a few words
        /// ([`ConnectRetry::reason`](crate::ConnectRetry::reason)):
        /// `connection refused`, `timed out`, `login refused`.
        reason: String,
        /// Whether the server refused the login (it is up, the key is not
        /// accepted yet), as opposed to not answering: retried only with
        /// [`RetryPolicy::retry_auth_failures`](crate::RetryPolicy::retry_auth_failures).
        login_refused: bool,
        /// Failed attempts so far, this one included.
        attempt: u32,
        /// Time since connecting began.
        #[serde(with = "secs")]
        elapsed: Duration,
        /// The connect deadline, from when connecting began.
        #[serde(with = "secs")]
        deadline: Duration,
    },
    /// The VM's session is up.
    Connected {
        /// VM name.
        vm: Arc<str>,
        /// Time to connect, retries included.
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// A step started.
    StepStarted {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Number of steps in the plan.
        total: usize,
        /// [`ProvisionDef::describe`](crate::provision::ProvisionDef::describe).
        description: String,
    },
    /// Output of the running step, as it arrived.
    Output {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// The bytes, and which stream they came from.
        #[serde(flatten)]
        chunk: Chunk,
    },
    /// Progress of a file or script upload.
    Upload {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Bytes sent.
        done: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// Progress of a file download.
    Download {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Bytes received.
        done: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// A step ended.
    StepFinished {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// The exit status of a command step.
        status: Option<ExitStatus>,
        /// Whether the step succeeded.
        ok: bool,
        /// How long it ran.
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// The VM's plan ended.
    VmFinished {
        /// VM name.
        vm: Arc<str>,
        /// Whether every step succeeded.
        ok: bool,
        /// Why it did not, when it did not.
        failure: Option<Failure>,
        /// The last lines of the failing step's stderr, when it wrote any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stderr_tail: Option<String>,
        /// The last lines of the failing step's stdout, when it wrote any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdout_tail: Option<String>,
        /// When connecting was retried until the connect deadline passed
        /// (the failure is the last attempt's): that deadline.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "secs::option"
        )]
        deadline_passed: Option<Duration>,
        /// Total time.
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// A batch of a rolling run ([`Fleet::batches`](crate::fleet::Fleet::batches))
    /// starts: its VMs start now (as many at once as the fleet's
    /// concurrency allows); the previous batch has ended.
    BatchStarted {
        /// 1-based batch number.
        batch: usize,
        /// Number of batches in the run.
        batches: usize,
        /// Names of the batch's VMs.
        vms: Vec<String>,
    },
    /// A fleet run ended (the last event of
    /// [`Fleet::provision`](crate::fleet::Fleet::provision)).
    Finished {
        /// Names of the VMs that succeeded.
        succeeded: Vec<String>,
        /// Names of the VMs that failed.
        failed: Vec<String>,
        /// Names of the VMs cancelled.
        cancelled: Vec<String>,
        /// Whether the run was stopped through its
        /// [`StopHandle`](crate::fleet::StopHandle).
        stopped: bool,
        /// Wall time of the run.
        #[serde(with = "secs")]
        wall: Duration,
    },
}

impl Event {
    /// The VM this event is about; `None` for the start of a batch and the
    /// end of a fleet run.
    pub fn vm(&self) -> Option<&str> {
        match self {
            Event::Connecting { vm }
            | Event::Retrying { vm, .. }
            | Event::Connected { vm, .. }
            | Event::StepStarted { vm, .. }
            | Event::Output { vm, .. }
            | Event::Upload { vm, .. }
            | Event::Download { vm, .. }
            | Event::StepFinished { vm, .. }
            | Event::VmFinished { vm, .. } => Some(vm),
            Event::Finished { .. } | Event::BatchStarted { .. } => None,
        }
    }
}

/// `{"stream": "stdout", "data": TEXT}`, or `"data_base64"` for bytes that
/// are not UTF-8.
impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("stream", if self.is_stderr() { "stderr" } else { "stdout" })?;
        match std::str::from_utf8(self.bytes()) {
            Ok(text) => map.serialize_entry("data", text)?,
            Err(_) => map.serialize_entry(
                "data_base64",
                &base64::engine::general_purpose::STANDARD.encode(self.bytes()),
            )?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Stream {
            Stdout,
            Stderr,
        }
        #[derive(Deserialize)]
        struct Raw {
            stream: Stream,
            data: Option<String>,
            data_base64: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        let bytes = match (raw.data, raw.data_base64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(b64)) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(serde::de::Error::custom)?,
            ),
            _ => {
                return Err(serde::de::Error::custom(
                    "output needs one of data and data_base64",
                ));
            }
        };
        Ok(match raw.stream {
            Stream::Stdout => Chunk::Stdout(bytes),
            Stream::Stderr => Chunk::Stderr(bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: &Event) -> serde_json::Value {
        let v = serde_json::to_value(e).unwrap();
        let back: Event = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(&back, e);
        v
    }

    #[test]
    fn output_that_is_not_utf8_goes_as_base64() {
        let vm: Arc<str> = Arc::from("web");
        let v = round_trip(&Event::Output {
            vm: vm.clone(),
            step: 1,
            chunk: Chunk::Stdout(Bytes::from_static(b"h\xc3\xa9\n")),
        });
        assert_eq!(v["event"], "output");
        assert_eq!(v["data"], "hé\n");
        assert_eq!(v["stream"], "stdout");
        let v = round_trip(&Event::Output {
            vm,
            step: 1,
            chunk: Chunk::Stderr(Bytes::from_static(b"\xff\x00")),
        });
        assert_eq!(v["data_base64"], "/wA=");
        assert_eq!(v["stream"], "stderr");
        assert!(v.get("data").is_none());
    }

    #[test]
    fn durations_are_seconds() {
        let v = round_trip(&Event::StepFinished {
            vm: Arc::from("web"),
            step: 2,
            status: Some(ExitStatus::from_code(3)),
            ok: false,
            duration: Duration::from_millis(1250),
        });
        assert_eq!(
            v,
            serde_json::json!({"event": "step_finished", "vm": "web", "step": 2,
                "status": {"code": 3}, "ok": false, "duration": 1.25})
        );
        let v = round_trip(&Event::Finished {
            succeeded: vec!["a".into()],
            failed: vec![],
            cancelled: vec![],
            stopped: false,
            wall: Duration::from_secs(2),
        });
        assert_eq!(v["wall"], 2.0);
        let v = round_trip(&Event::Retrying {
            vm: Arc::from("web"),
            reason: "connection refused".into(),
            login_refused: false,
            attempt: 3,
            elapsed: Duration::from_millis(12_500),
            deadline: Duration::from_secs(120),
        });
        assert_eq!(
            v,
            serde_json::json!({"event": "retrying", "vm": "web", "reason": "connection refused",
                "login_refused": false, "attempt": 3, "elapsed": 12.5, "deadline": 120.0})
        );
        assert!(
            serde_json::from_str::<Event>(r#"{"event":"connected","vm":"x","duration":-1}"#)
                .is_err()
        );
    }
}
