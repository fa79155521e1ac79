//! Provisioning plans read from vmctl's `VMFile.kdl`, meaning what they mean
//! to vmctl.
//!
//! A plan is the `ssh` and `provision` parts of a VMFile. Everything else
//! vmctl reads (`image`, `vcpus`, `cloud-init { ... }`, ...) is left to
//! vmctl.
//!
//! ```kdl
//! vm "webserver" {
//!     image-url "https://example.com/noble.img"   // vmctl's business
//!     ssh {
//!         user "ubuntu"                        // "vm" when not given
//!         private-key "keys/id_ed25519"        // relative to the VMFile's directory
//!     }
//!     provision "shell" {
//!         inline "sudo apt-get update && sudo apt-get install -y nginx"
//!     }
//!     provision "shell" {
//!         script "scripts/setup.sh"
//!     }
//!     provision "file" {
//!         source "nginx.conf"
//!         destination "/etc/nginx/nginx.conf"
//!     }
//! }
//! ```
//!
//! # Read as vmctl reads it
//!
//! The syntax is KDL 2, what vmctl's `kdl` 6 parser reads, and the reading
//! is vmctl's:
//!
//! - only top-level `vm` nodes are VMs, each needs a name, names are
//!   unique, and a file without one is refused;
//! - of a repeated field (`ssh`, `user`, `inline`, `source`, ...) the first
//!   counts; a field whose value is not a string counts as absent;
//! - unknown nodes, extra arguments and properties are ignored;
//! - `ssh { user }` defaults to `"vm"` ([`VmPlan::user`]), `provision`
//!   without a type is a shell step;
//! - a shell step needs exactly one of `inline` and `script`, a file step
//!   both `source` and `destination`; `provision` and `ssh` need a body;
//! - a node name in quotes (`"vm"`, `"provision"`) is not a `vm` or
//!   `provision` node to vmctl, and is ignored here too.
//!
//! Everything ignored is reported in [`Plan::warnings`], with its line, so
//! a typo stays visible.
//!
//! # vmssh extensions
//!
//! vmctl ignores these; vmssh uses them, and each use is a warning:
//! `timeout 300` (seconds), `env NAME="value" ...` and `sudo #true` in a
//! shell step (see [`ProvisionDef::timeout`], [`ProvisionDef::env`],
//! [`ProvisionDef::sudo`]), `port` in `ssh`, and `provision` nodes at the
//! top level, which run on every host before its own steps. Their values
//! are checked: a malformed extension is an error, not a warning.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//! use vmssh::plan::Plan;
//!
//! let plan = Plan::parse(
//!     r#"
//!     vm "web" {
//!         image "noble.qcow2"
//!         ssh { port 2222; }
//!         provision "shell" { inline "echo hello"; }
//!         provision "shell" { inline "echo twice"; }
//!     }
//!     "#,
//!     "VMFile.kdl",
//!     Path::new("."),
//! )?;
//! let web = plan.vm("web").unwrap();
//! assert_eq!(web.user(), "vm");
//! assert_eq!(web.steps.len(), 2);
//! assert_eq!(
//!     plan.warnings()[0].to_string(),
//!     "VMFile.kdl:4: port is a vmssh extension: vmctl ignores it"
//! );
//! # Ok::<(), vmssh::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::provision::ProvisionDef;
use crate::vmctl::log::VmctlLabel;

mod parse;
mod value;
mod warning;

use parse::{Cx, LineIndex};
pub use warning::{Warning, WarningKind};

/// The user vmctl logs in as when the VMFile names none.
pub const DEFAULT_USER: &str = "vm";

/// A parsed plan: per-VM steps and SSH settings, plus steps for every host.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// The `vm` blocks, in file order.
    pub vms: Vec<VmPlan>,
    /// Top-level `provision` nodes (a vmssh extension): run on every host,
    /// before a matching VM's own steps.
    pub shared: Vec<ProvisionDef>,
    /// The directory `script` and `file` sources are relative to (the
    /// VMFile's directory).
    pub base_dir: PathBuf,
    origin: String,
    local_files: Vec<LocalFile>,
    warnings: Vec<Warning>,
    shared_labels: Vec<VmctlLabel>,
}

/// One `vm` block.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct VmPlan {
    /// The VM's name (`vm "NAME"`).
    pub name: String,
    /// Its `ssh` block; all fields unset when it has none.
    pub ssh: SshSettings,
    /// Its `provision` steps, in order.
    pub steps: Vec<ProvisionDef>,
    labels: Vec<VmctlLabel>,
}

/// The `ssh` block of a `vm`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SshSettings {
    /// `user`, as written; see [`VmPlan::user`] for the effective one.
    pub user: Option<String>,
    /// `private-key`, resolved against the plan's directory (`~/` is the
    /// home directory).
    pub private_key: Option<PathBuf>,
    /// `port` (a vmssh extension).
    pub port: Option<u16>,
}

impl VmPlan {
    /// The user to log in as: `ssh { user }`, or `"vm"` (vmctl's default)
    /// when the VMFile names none.
    pub fn user(&self) -> &str {
        self.ssh.user.as_deref().unwrap_or(DEFAULT_USER)
    }
}

/// A local file the plan refers to, with where it was named.
#[derive(Clone, Debug, PartialEq)]
struct LocalFile {
    what: &'static str,
    path: PathBuf,
    line: usize,
    /// A file step's source: a directory is uploaded as a tree.
    may_be_dir: bool,
}

impl Plan {
    /// Parses a VMFile's text. `origin` names it in errors and warnings
    /// (usually its path); `base_dir` is where relative paths in it are
    /// resolved.
    ///
    /// Nothing is read from disk: see
    /// [`check_local_files`](Self::check_local_files).
    ///
    /// # Errors
    ///
    /// [`Error::Plan`] with `origin` set to `ORIGIN:LINE` where vmctl
    /// refuses the file too: KDL syntax errors, no `vm` block, a `vm`
    /// without a name or body, duplicate VM names, `ssh` or `provision`
    /// without a body, unknown provision types, a shell step without
    /// exactly one of `inline`/`script`, a file step without `source` or
    /// `destination`. Also malformed vmssh extensions (`timeout "5m"`).
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Plan, Error> {
        let mut cx = Cx {
            origin,
            base_dir,
            lines: LineIndex::new(text),
            warnings: Vec::new(),
            local_files: Vec::new(),
        };
        let doc = cx.parse_kdl(text).map_err(|bad| cx.error(bad))?;
        match cx.plan(&doc) {
            Ok((vms, (shared, shared_labels))) => Ok(Plan {
                vms,
                shared,
                base_dir: base_dir.to_path_buf(),
                origin: origin.to_string(),
                local_files: cx.local_files,
                warnings: cx.warnings,
                shared_labels,
            }),
            Err(bad) => Err(cx.error(bad)),
        }
    }

    /// Reads and parses the VMFile at `path`; relative paths in it are
    /// resolved against its directory (`.` for a bare file name, as
    /// vmctl does).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read (or is not UTF-8), and
    /// the errors of [`parse`](Self::parse).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn load(path: &Path) -> Result<Plan, Error> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| Error::io(format!("cannot read plan {}", path.display()), e))?;
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Plan::parse(&text, &path.display().to_string(), &base_dir)
    }

    /// What the plan holds that is ignored, a vmssh extension, or not
    /// accepted by vmctl, in file order. Each displays as
    /// `FILE:LINE: message`.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The `vm` block called `name`.
    pub fn vm(&self, name: &str) -> Option<&VmPlan> {
        self.vms.iter().find(|v| v.name == name)
    }

    /// The steps for the host called `name`: the top-level steps, then those
    /// of the `vm` block of that name, if any.
    pub fn steps_for(&self, name: &str) -> Vec<ProvisionDef> {
        let mut steps = self.shared.clone();
        if let Some(vm) = self.vm(name) {
            steps.extend(vm.steps.iter().cloned());
        }
        steps
    }

    /// vmctl's `provision.log` labels for [`steps_for`](Self::steps_for).
    pub(crate) fn vmctl_labels_for(&self, name: &str) -> Vec<VmctlLabel> {
        let mut labels = self.shared_labels.clone();
        if let Some(vm) = self.vm(name) {
            labels.extend(vm.labels.iter().cloned());
        }
        labels
    }

    /// Checks that every script, file source and private key the plan names
    /// exists as a regular file (a file source may also be a directory,
    /// uploaded as a tree: a vmssh extension), so that a typo in a path is
    /// reported before anything runs on any host.
    ///
    /// # Errors
    ///
    /// [`Error::Plan`] with `origin` set to `ORIGIN:LINE` for the first
    /// missing file.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads metadata.
    pub async fn check_local_files(&self) -> Result<(), Error> {
        for f in &self.local_files {
            let full = self.base_dir.join(&f.path);
            let problem = match crate::local_file::metadata(&full) {
                Ok(m) if m.is_file() => continue,
                Ok(m) if m.is_dir() && f.may_be_dir => continue,
                Ok(_) => "is not a regular file".to_string(),
                Err(e) => format!("cannot be read ({e})"),
            };
            return Err(Error::Plan {
                origin: format!("{}:{}", self.origin, f.line),
                reason: format!(
                    "{} {} {problem} (looked at {})",
                    f.what,
                    f.path.display(),
                    full.display()
                ),
            });
        }
        Ok(())
    }
}
