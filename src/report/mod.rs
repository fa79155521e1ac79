//! What a run produces, as data: the [`Event`]s of provisioning as they
//! happen, and the results of each step ([`StepReport`]), VM
//! ([`VmReport`]) and fleet run ([`FleetReport`]), with why a VM did not
//! succeed ([`Failure`]).
//!
//! One schema for all of it: the sinks receive these events, the JSON
//! report file is a [`FleetReport`], and `vmssh --json` prints one
//! [`Event`] per line, each serialized with serde_json and readable back
//! with the same types. In JSON:
//!
//! - an event is an object whose `"event"` names it in snake case
//!   (`"step_started"`), with the variant's fields beside it;
//! - output is `"stream"` (`"stdout"` or `"stderr"`) and `"data"` (text),
//!   or `"data_base64"` for bytes that are not UTF-8;
//! - a duration is a number of seconds (`"duration": 1.25`), everywhere;
//! - an exit status is `{"code": 0}` or
//!   `{"signal": "TERM", "core_dumped": false, "message": ""}`;
//! - a failure is an object whose `"kind"` names it (`"connect"`,
//!   `"authentication"`, `"host_key"`, `"step"`, `"cancelled"`, ...).
//!
//! ```
//! use vmssh::report::Event;
//!
//! let line = r#"{"event":"output","vm":"web","step":1,"stream":"stdout","data":"hi\n"}"#;
//! let event: Event = serde_json::from_str(line)?;
//! assert_eq!(event.vm(), Some("web"));
//! assert_eq!(serde_json::to_string(&event)?, line);
//! # Ok::<_, serde_json::Error>(())
//! ```
//!
//! Inside: `event.rs` holds [`Event`], `failure.rs` [`Failure`] and
//! [`CancelReason`], `fleet.rs` the step, VM and fleet reports.

mod event;
mod failure;
mod fleet;

pub use event::Event;
pub use failure::{CancelReason, Failure};
pub(crate) use failure::{stderr_tail, stdout_tail};
pub use fleet::{FleetReport, Outcome, StepReport, VmReport};

/// Durations as a number of seconds in JSON.
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }

    /// The same for an optional duration (`null` when absent).
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<f64>::deserialize(d)?
                .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
