//! The step model: [`ProvisionDef`] and [`StepKind`], serializable.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One step of a provisioning plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionDef {
    pub(crate) kind: StepKind,
    #[serde(default)]
    pub(crate) timeout: Option<Duration>,
    #[serde(default)]
    pub(crate) env: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) sudo: bool,
    #[serde(default)]
    pub(crate) mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) channels: Option<usize>,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StepKind {
    /// A command line run by the guest's shell.
    Inline(String),
    /// A local script (relative to the plan's base directory), uploaded
    /// and run; where it goes, with which mode, and whether it is removed
    /// after the run is the [`Provisioner`](super::Provisioner)'s
    /// [`ScriptStaging`](super::ScriptStaging) (by default a unique
    /// temporary path, removed).
    Script(PathBuf),
    /// A local file (relative to the base directory) uploaded to a path on
    /// the guest, parents created, atomically replaced. A directory as the
    /// source uploads the whole tree to the destination, as
    /// [`Session::upload_dir`](crate::Session::upload_dir) does (a vmssh
    /// extension: vmctl reads files only); the step's
    /// [`mode`](ProvisionDef::mode) is not used then, each file keeps its
    /// own.
    File {
        /// Local source.
        source: PathBuf,
        /// Remote destination.
        destination: String,
    },
    /// A remote file downloaded to a local path (relative to the base
    /// directory, whose parent must exist), atomically replaced. Not
    /// written in VMFiles: for fleets that collect files from every host.
    Download {
        /// Remote source.
        source: String,
        /// Local destination.
        destination: PathBuf,
    },
    /// A remote directory downloaded, recursively, to a local directory
    /// (relative to the base directory, whose parent must exist), as
    /// [`Session::download_dir`](crate::Session::download_dir) does. Not
    /// written in VMFiles.
    DownloadDir {
        /// Remote source directory.
        source: String,
        /// Local destination directory.
        destination: PathBuf,
    },
}

impl StepKind {
    /// Whether the step runs a command on the guest (inline and script
    /// steps).
    pub(crate) fn runs_command(&self) -> bool {
        matches!(self, StepKind::Inline(_) | StepKind::Script(_))
    }

    /// Whether the step uses the plan's SFTP channel (a script's upload, a
    /// file's, a download; a directory moves on a channel of its own, but
    /// a file step's source is only known to be one when it runs).
    pub(crate) fn uses_sftp(&self) -> bool {
        matches!(
            self,
            StepKind::Script(_) | StepKind::File { .. } | StepKind::Download { .. }
        )
    }
}

impl ProvisionDef {
    /// A shell command.
    pub fn inline(command: impl Into<String>) -> Self {
        Self::new(StepKind::Inline(command.into()))
    }

    /// A local script, relative to the base directory.
    pub fn script(path: impl Into<PathBuf>) -> Self {
        Self::new(StepKind::Script(path.into()))
    }

    /// A file upload: `source` relative to the base directory.
    pub fn file(source: impl Into<PathBuf>, destination: impl Into<String>) -> Self {
        Self::new(StepKind::File {
            source: source.into(),
            destination: destination.into(),
        })
    }

    /// A file download: `destination` relative to the base directory.
    pub fn download(source: impl Into<String>, destination: impl Into<PathBuf>) -> Self {
        Self::new(StepKind::Download {
            source: source.into(),
            destination: destination.into(),
        })
    }

    /// A directory download: `destination` relative to the base
    /// directory.
    pub fn download_dir(source: impl Into<String>, destination: impl Into<PathBuf>) -> Self {
        Self::new(StepKind::DownloadDir {
            source: source.into(),
            destination: destination.into(),
        })
    }

    fn new(kind: StepKind) -> Self {
        ProvisionDef {
            kind,
            timeout: None,
            env: Vec::new(),
            sudo: false,
            mode: None,
            channels: None,
        }
    }

    /// Sets a limit: the step fails when it runs longer than `timeout`.
    ///
    /// Default: none.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds an environment variable for a shell or script step.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets whether a shell or script step runs through `sudo -n` (for
    /// guests where the SSH user is not root), with its
    /// [`env`](Self::env) (see [`Command::sudo`](crate::Command::sudo)),
    /// or through `sudo -S` answering with the provisioner's
    /// [`sudo_password`](super::Provisioner::sudo_password) when it has
    /// one. File steps ignore it.
    ///
    /// Default: false.
    #[must_use]
    pub fn sudo(mut self, on: bool) -> Self {
        self.sudo = on;
        self
    }

    /// Sets the permission bits of a file step's uploaded file (plans read
    /// from a VMFile set 0755, as vmctl does). Other steps, and file steps
    /// whose source is a directory, ignore it.
    ///
    /// Default: the local file's mode.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o7777);
        self
    }

    /// Sets how many SFTP channels of the session a file step's or a
    /// download step's file may move over at once, as
    /// [`TransferOptions::channels`](crate::sftp::TransferOptions::channels)
    /// does (1 to 16). Other steps, and directory steps, ignore it.
    ///
    /// Default: automatic (more than one only for large files on a long
    /// link).
    #[must_use]
    pub fn channels(mut self, n: usize) -> Self {
        self.channels = Some(n.clamp(1, 16));
        self
    }

    /// What the step does.
    pub fn kind(&self) -> &StepKind {
        &self.kind
    }

    /// A one-line description for logs and errors
    /// (`inline: apt-get update`, `script: setup.sh`, `file: a -> /b`,
    /// `download: /b -> a`, `download -r: /b -> a`).
    pub fn describe(&self) -> String {
        match &self.kind {
            StepKind::Inline(cmd) => {
                let first = cmd.lines().next().unwrap_or_default();
                let mut d: String = first.chars().take(60).collect();
                if d.len() < cmd.len() {
                    d.push('…');
                }
                format!("inline: {d}")
            }
            StepKind::Script(p) => format!("script: {}", p.display()),
            StepKind::File {
                source,
                destination,
            } => {
                format!("file: {} -> {destination}", source.display())
            }
            StepKind::Download {
                source,
                destination,
            } => format!("download: {source} -> {}", destination.display()),
            StepKind::DownloadDir {
                source,
                destination,
            } => format!("download -r: {source} -> {}", destination.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_is_one_line() {
        assert_eq!(
            ProvisionDef::inline("echo hi").describe(),
            "inline: echo hi"
        );
        assert!(ProvisionDef::inline("a\nb").describe().ends_with('…'));
        assert_eq!(ProvisionDef::file("a", "/b").describe(), "file: a -> /b");
        assert_eq!(
            ProvisionDef::download("/b", "a").describe(),
            "download: /b -> a"
        );
    }
}
