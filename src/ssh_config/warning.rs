//! Warnings: options that apply to a host but that vmssh does not (fully)
//! apply, each naming its file and line.

use std::fmt;
use std::path::{Path, PathBuf};

/// An option that applies to the host but is not (fully) applied by vmssh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    path: PathBuf,
    line: usize,
    kind: WarningKind,
    option: String,
}

/// What a [`Warning`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// An OpenSSH option vmssh does not apply.
    Unsupported,
    /// An option OpenSSH itself no longer applies.
    Deprecated,
    /// An `IdentityFile` that does not exist; skipped, as OpenSSH does.
    MissingIdentity(PathBuf),
    /// A known_hosts file after the first; vmssh consults only the first.
    ExtraKnownHostsFile(PathBuf),
    /// `StrictHostKeyChecking no`: vmssh still refuses changed host keys.
    StillRefusesChangedKeys,
    /// An algorithm OpenSSH knows and vmssh does not implement (such as
    /// `sntrup761x25519-sha512@openssh.com` or `umac-128-etm@openssh.com`),
    /// left out of its list.
    AlgorithmNotImplemented(String),
}

impl Warning {
    /// A warning for `option` at `path:line`.
    pub(super) fn new(path: PathBuf, line: usize, option: &str, kind: WarningKind) -> Warning {
        Warning {
            path,
            line,
            kind,
            option: option.to_string(),
        }
    }

    /// The file the option is in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The option's 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What the warning is about.
    pub fn kind(&self) -> &WarningKind {
        &self.kind
    }

    /// The option, lowercased as OpenSSH compares it (`sendenv`).
    pub fn option(&self) -> &str {
        &self.option
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: ",
            self.path.display(),
            self.line,
            self.option
        )?;
        match &self.kind {
            WarningKind::Unsupported => f.write_str("not supported by vmssh; ignored"),
            WarningKind::Deprecated => f.write_str("deprecated; ignored, as OpenSSH does"),
            WarningKind::MissingIdentity(p) => write!(f, "{} does not exist; skipped", p.display()),
            WarningKind::ExtraKnownHostsFile(p) => write!(
                f,
                "{} is not consulted (vmssh reads only the first file)",
                p.display()
            ),
            WarningKind::StillRefusesChangedKeys => {
                f.write_str("unknown keys are accepted, changed keys are still refused")
            }
            WarningKind::AlgorithmNotImplemented(name) => {
                write!(f, "{name} is not implemented by vmssh; left out")
            }
        }
    }
}
