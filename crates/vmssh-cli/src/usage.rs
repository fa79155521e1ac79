//! Usage errors (exit code 2, nothing ran on any host) and exit codes.

use std::fmt;

/// How the command ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Every host succeeded.
    Ok = 0,
    /// A host failed (or was cancelled by `--fail-fast` / `--max-fail`).
    Failed = 1,
    /// Bad flags, an unreadable plan, inventory or key, an unknown alias:
    /// nothing ran on any host.
    Usage = 2,
    /// Interrupted (Ctrl-C or SIGTERM); the summary and report were still
    /// written.
    Interrupted = 130,
}

/// A usage error: a clear message, exit code 2, and nothing ran.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Usage {
    fn from(s: String) -> Self {
        Usage(s)
    }
}

impl From<&str> for Usage {
    fn from(s: &str) -> Self {
        Usage(s.to_string())
    }
}
