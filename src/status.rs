//! How a remote command ended: [`ExitStatus`].
//!
//! A leaf module: errors carry an exit status, and commands produce one,
//! without either depending on the other.

use std::fmt;

use russh::{ChannelMsg, Sig};
use serde::{Deserialize, Serialize};

/// How a remote command ended: an exit code or a signal, as the server
/// reported it. Nothing is invented: a command that ended without a report
/// yields [`Error::MissingExitStatus`](crate::Error::MissingExitStatus)
/// instead.
///
/// # Serialization
///
/// As an object with either a `code` or a `signal` (reports are plain
/// data, so shards of a fleet run can be merged):
///
/// ```json
/// {"code": 0}
/// {"signal": "TERM", "core_dumped": false, "message": ""}
/// ```
///
/// # Example
///
/// ```
/// use vmssh::ExitStatus;
///
/// let status = ExitStatus::from_code(3);
/// assert_eq!(status.code(), Some(3));
/// assert!(!status.success());
/// assert_eq!(status.to_string(), "exit status 3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExitStatus {
    // Boxed: keeps `ExitStatus`, and the errors that carry one, small.
    kind: Box<StatusKind>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum StatusKind {
    Code {
        code: u32,
    },
    Signal {
        signal: String,
        #[serde(default)]
        core_dumped: bool,
        #[serde(default)]
        message: String,
    },
}

impl ExitStatus {
    /// An exit status with this code.
    pub fn from_code(code: u32) -> Self {
        ExitStatus {
            kind: Box::new(StatusKind::Code { code }),
        }
    }

    /// An exit status for death by the signal `name` (without `SIG`).
    pub fn from_signal(name: impl Into<String>) -> Self {
        Self::signalled(name.into(), false, String::new())
    }

    /// How a command ended, from the channel message that says so
    /// (`exit-status` or `exit-signal`); `None` for any other message.
    pub(crate) fn from_msg(msg: ChannelMsg) -> Option<Self> {
        match msg {
            ChannelMsg::ExitStatus { exit_status } => Some(Self::from_code(exit_status)),
            ChannelMsg::ExitSignal {
                signal_name: sig,
                core_dumped,
                error_message,
                ..
            } => Some(Self::signalled(
                signal_name(&sig),
                core_dumped,
                error_message,
            )),
            _ => None,
        }
    }

    /// Death by a signal, as the server described it.
    pub(crate) fn signalled(name: String, core_dumped: bool, message: String) -> Self {
        let name = match name.strip_prefix("SIG") {
            Some(rest) => rest.to_string(),
            None => name,
        };
        ExitStatus {
            kind: Box::new(StatusKind::Signal {
                signal: name,
                core_dumped,
                message,
            }),
        }
    }

    /// The exit code, unless the command was killed by a signal.
    pub fn code(&self) -> Option<u32> {
        match *self.kind {
            StatusKind::Code { code } => Some(code),
            StatusKind::Signal { .. } => None,
        }
    }

    /// The signal that killed the command, without the `SIG` prefix (`"TERM"`).
    pub fn signal(&self) -> Option<&str> {
        match &*self.kind {
            StatusKind::Code { .. } => None,
            StatusKind::Signal { signal, .. } => Some(signal),
        }
    }

    /// Whether the process dumped core when it was killed.
    pub fn core_dumped(&self) -> bool {
        matches!(
            *self.kind,
            StatusKind::Signal {
                core_dumped: true,
                ..
            }
        )
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code() == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            StatusKind::Code { code } => write!(f, "exit status {code}"),
            StatusKind::Signal {
                signal,
                core_dumped,
                message,
            } => {
                write!(f, "killed by signal {signal}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
        }
    }
}

/// The name of a signal as SSH sends it (without `SIG`).
fn signal_name(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_accessors() {
        assert_eq!(ExitStatus::from_code(7).to_string(), "exit status 7");
        assert_eq!(
            ExitStatus::from_signal("TERM").to_string(),
            "killed by signal TERM"
        );
        assert!(ExitStatus::from_code(0).success());
        assert!(!ExitStatus::from_signal("KILL").success());
        assert_eq!(ExitStatus::from_signal("KILL").signal(), Some("KILL"));
        assert_eq!(ExitStatus::from_signal("SIGKILL").signal(), Some("KILL"));
        let s = ExitStatus::signalled("SEGV".into(), true, "boom".into());
        assert_eq!(s.to_string(), "killed by signal SEGV (core dumped): boom");
    }

    #[test]
    fn json_shape_is_documented_and_round_trips() {
        let code = ExitStatus::from_code(0);
        assert_eq!(serde_json::to_string(&code).unwrap(), r#"{"code":0}"#);
        let sig = ExitStatus::from_signal("TERM");
        assert_eq!(
            serde_json::to_string(&sig).unwrap(),
            r#"{"signal":"TERM","core_dumped":false,"message":""}"#
        );
        for s in [code, sig] {
            let back: ExitStatus =
                serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
        let short: ExitStatus = serde_json::from_str(r#"{"signal":"KILL"}"#).unwrap();
        assert_eq!(short.signal(), Some("KILL"));
    }
}
