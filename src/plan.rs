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

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use crate::error::Error;
use crate::provision::ProvisionDef;
use crate::provision::VmctlLabel;

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

/// Something in the plan that vmctl and vmssh read differently from what
/// it looks like, or that vmctl would not accept. Displays as
/// `FILE:LINE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    file: String,
    line: usize,
    kind: WarningKind,
    message: String,
}

/// What a [`Warning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// Ignored, by vmctl and by vmssh alike: an unknown node, a repeated
    /// field, an extra argument, a value of the wrong type.
    Ignored,
    /// A vmssh extension: vmssh uses it, vmctl ignores it.
    Extension,
    /// vmctl would refuse the file or the VM (no image, a provisioned VM
    /// without an `ssh` block, ...); vmssh does not need what is missing.
    VmctlRefuses,
}

impl Warning {
    /// The plan's file name, as given to [`Plan::load`] or [`Plan::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What kind of warning this is.
    pub fn kind(&self) -> WarningKind {
        self.kind
    }

    /// The message, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A local file the plan refers to, with where it was named.
#[derive(Clone, Debug, PartialEq)]
struct LocalFile {
    what: &'static str,
    path: PathBuf,
    line: usize,
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
    /// exists as a regular file, so that a typo in a path is reported before
    /// anything runs on any host.
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
            let problem = match tokio::fs::metadata(&full).await {
                Ok(m) if m.is_file() => continue,
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

/// A mistake in the plan, before it is given the plan's name.
struct Invalid {
    line: usize,
    reason: String,
}

/// Byte offsets of line starts, for line numbers of spans.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// Parsing context: where the plan came from, and what was found so far.
struct Cx<'a> {
    origin: &'a str,
    base_dir: &'a Path,
    lines: LineIndex,
    warnings: Vec<Warning>,
    local_files: Vec<LocalFile>,
}

/// The steps of a block and their vmctl log labels.
type Steps = (Vec<ProvisionDef>, Vec<VmctlLabel>);

/// A node's name as vmctl's `doc.get(...)` matches it (the value).
fn name(node: &KdlNode) -> &str {
    node.name().value()
}

/// Whether vmctl's loops over `vm` and `provision` nodes see `node` as
/// `want`: they compare the name as written, so `"vm"` in quotes is not
/// `vm`.
fn written_as(node: &KdlNode, want: &str) -> bool {
    node.name().to_string() == want
}

/// Nodes vmctl reads inside `vm` that plans leave to vmctl; of each, vmctl
/// reads the first.
const VMCTL_VM_NODES: &[&str] = &[
    "image",
    "image-url",
    "vcpus",
    "memory",
    "disk",
    "network",
    "cloud-init",
];

const TOP_NODES: &[&str] = &["vm", "provision"];
const VM_NODES: &[&str] = &[
    "provision",
    "ssh",
    "image",
    "image-url",
    "vcpus",
    "memory",
    "disk",
    "network",
    "cloud-init",
];
const SSH_NODES: &[&str] = &["user", "private-key", "port"];
const SHELL_NODES: &[&str] = &["inline", "script", "timeout", "env", "sudo"];
const FILE_NODES: &[&str] = &["source", "destination", "mode"];
const MODE_EXPECTS: &str = "an octal mode string, e.g. mode \"0644\"";
const MODE_WARNING: &str = "mode is a vmssh extension: vmctl ignores it and uploads with mode 0755";

impl Cx<'_> {
    fn error(&self, bad: Invalid) -> Error {
        Error::Plan {
            origin: format!("{}:{}", self.origin, bad.line),
            reason: bad.reason,
        }
    }

    fn parse_kdl(&self, text: &str) -> Result<KdlDocument, Invalid> {
        // The parser is third-party code fed untrusted text: a panic inside it
        // becomes a plan error instead of taking the caller down.
        let parsed = std::panic::catch_unwind(|| KdlDocument::parse_v2(text));
        match parsed {
            Ok(Ok(doc)) => Ok(doc),
            Ok(Err(e)) => {
                let Some(first) = e.diagnostics.first() else {
                    return Err(self.err_at(0, "invalid KDL".into()));
                };
                let mut reason = format!(
                    "invalid KDL: {}",
                    first.message.as_deref().unwrap_or("syntax error")
                );
                if let Some(help) = &first.help {
                    reason.push_str(&format!(" ({help})"));
                }
                if e.diagnostics.len() > 1 {
                    let more = e.diagnostics.len() - 1;
                    reason.push_str(&format!(
                        " and {more} more error{}",
                        if more == 1 { "" } else { "s" }
                    ));
                }
                Err(self.err_at(first.span.offset(), reason))
            }
            Err(_) => Err(self.err_at(0, "invalid KDL: the parser failed on this input".into())),
        }
    }

    fn line(&self, node: &KdlNode) -> usize {
        self.lines.line(node.name().span().offset())
    }

    fn err_at(&self, offset: usize, reason: String) -> Invalid {
        Invalid {
            line: self.lines.line(offset),
            reason,
        }
    }

    fn err(&self, node: &KdlNode, reason: String) -> Invalid {
        self.err_at(node.name().span().offset(), reason)
    }

    fn err_entry(&self, entry: &KdlEntry, reason: String) -> Invalid {
        self.err_at(entry.span().offset(), reason)
    }

    fn warn_line(&mut self, line: usize, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            file: self.origin.to_string(),
            line,
            kind,
            message,
        });
    }

    fn warn(&mut self, node: &KdlNode, kind: WarningKind, message: String) {
        let line = self.line(node);
        self.warn_line(line, kind, message);
    }

    fn warn_entry(&mut self, entry: &KdlEntry, kind: WarningKind, message: String) {
        let line = self.lines.line(entry.span().offset());
        self.warn_line(line, kind, message);
    }

    fn extension(&mut self, node: &KdlNode) {
        let field = name(node).to_string();
        self.warn(
            node,
            WarningKind::Extension,
            format!("{field} is a vmssh extension: vmctl ignores it"),
        );
    }

    /// An unknown node: ignored, with a hint when it looks like a known one.
    fn unknown(&mut self, node: &KdlNode, place: &str, known: &[&str]) {
        let found = name(node);
        let hint = match suggest(found, known) {
            Some(g) => format!(" (did you mean {g}?)"),
            None => String::new(),
        };
        let message = format!("unknown node \"{found}\" {place} ignored{hint}");
        self.warn(node, WarningKind::Ignored, message);
    }

    /// A repeated field: vmctl reads the first.
    fn repeated(&mut self, node: &KdlNode, place: &str, first: usize) {
        let message = format!(
            "{} repeated {place}: vmctl reads only the first (line {first}); this one is ignored",
            name(node)
        );
        self.warn(node, WarningKind::Ignored, message);
    }

    /// Arguments after the first `keep`, properties (except those named in
    /// `props`) and a child block of a node that takes none: ignored.
    fn extras(&mut self, node: &KdlNode, keep: usize, props: &[&str], block: bool) {
        let field = name(node).to_string();
        let mut args = 0;
        for e in node.entries() {
            match e.name() {
                None => {
                    args += 1;
                    if args > keep {
                        self.warn_entry(
                            e,
                            WarningKind::Ignored,
                            format!("extra argument {} of {field} ignored", show(e.value())),
                        );
                    }
                }
                Some(p) if props.contains(&p.value()) => {}
                Some(_) => self.warn_entry(
                    e,
                    WarningKind::Ignored,
                    format!("property {} of {field} ignored", entry_text(e)),
                ),
            }
        }
        if !block && node.children().is_some() {
            self.warn(
                node,
                WarningKind::Ignored,
                format!("the block of {field} is ignored"),
            );
        }
    }

    /// The first argument of a field as vmctl reads it
    /// (`get(0).as_string()`): a missing or non-string value counts as no
    /// value at all.
    fn string_field(&mut self, node: &KdlNode, absent: &str) -> Option<String> {
        self.extras(node, 1, &[], false);
        let field = name(node).to_string();
        match node.get(0) {
            Some(KdlValue::String(s)) => Some(s.clone()),
            Some(other) => {
                let shown = show(other);
                self.warn(
                    node,
                    WarningKind::Ignored,
                    format!("{field} {shown} is not a string: vmctl ignores it ({absent})"),
                );
                None
            }
            None => {
                self.warn(
                    node,
                    WarningKind::Ignored,
                    format!("{field} without a value: vmctl ignores it ({absent})"),
                );
                None
            }
        }
    }

    fn plan(&mut self, doc: &KdlDocument) -> Result<(Vec<VmPlan>, Steps), Invalid> {
        let mut vms: Vec<VmPlan> = Vec::new();
        let mut shared = Vec::new();
        let mut shared_labels = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for node in doc.nodes() {
            if written_as(node, "vm") {
                let vm_name = self.vm_name(node)?;
                let line = self.line(node);
                if let Some(first) = seen.get(&vm_name) {
                    return Err(self.err(
                        node,
                        format!("duplicate vm name \"{vm_name}\" (first defined at line {first})"),
                    ));
                }
                seen.insert(vm_name.clone(), line);
                vms.push(self.vm(node, vm_name)?);
                continue;
            }
            match name(node) {
                "vm" => self.quoted(node),
                "provision" => {
                    let line = self.line(node);
                    self.warn_line(
                        line,
                        WarningKind::Extension,
                        "provision outside a vm block is a vmssh extension: vmctl ignores it, \
                         vmssh runs it on every host before the host's own steps"
                            .into(),
                    );
                    let (step, label) = self.provision(node)?;
                    shared.push(step);
                    shared_labels.push(label);
                }
                "ssh" => self.warn(
                    node,
                    WarningKind::Ignored,
                    "ssh outside a vm block ignored (it belongs inside vm \"NAME\" { ... })".into(),
                ),
                _ => self.unknown(node, "at the top level", TOP_NODES),
            }
        }
        if vms.is_empty() {
            return Err(Invalid {
                line: 1,
                reason: "no vm block found (expected vm \"NAME\" { ... }; vmctl refuses a file \
                         without one)"
                    .into(),
            });
        }
        Ok((vms, (shared, shared_labels)))
    }

    /// A `vm` or `provision` node whose name is written in quotes: vmctl
    /// does not see it.
    fn quoted(&mut self, node: &KdlNode) {
        let message = format!(
            "node name {} is written in quotes: vmctl does not read it as {}, so it is ignored",
            node.name(),
            name(node)
        );
        self.warn(node, WarningKind::Ignored, message);
    }

    fn vm_name(&mut self, node: &KdlNode) -> Result<String, Invalid> {
        match node.get(0) {
            Some(KdlValue::String(s)) => {
                let s = s.clone();
                self.extras(node, 1, &[], true);
                Ok(s)
            }
            found => {
                let found = found.map_or_else(|| "no argument".to_string(), show);
                Err(self.err(
                    node,
                    format!("vm expects a name string, e.g. vm \"web\" {{ ... }} (found {found})"),
                ))
            }
        }
    }

    fn vm(&mut self, node: &KdlNode, vm_name: String) -> Result<VmPlan, Invalid> {
        let Some(children) = node.children() else {
            return Err(self.err(
                node,
                format!("vm \"{vm_name}\" needs a body: vm \"{vm_name}\" {{ ... }}"),
            ));
        };
        let mut vm = VmPlan {
            name: vm_name,
            ssh: SshSettings::default(),
            steps: Vec::new(),
            labels: Vec::new(),
        };
        let place = format!("in vm \"{}\"", vm.name);
        let mut first: HashMap<&str, usize> = HashMap::new();
        for child in children.nodes() {
            if written_as(child, "provision") {
                let (step, label) = self.provision(child)?;
                vm.steps.push(step);
                vm.labels.push(label);
                continue;
            }
            let field = name(child);
            match field {
                "provision" => self.quoted(child),
                "ssh" => match first.get("ssh") {
                    Some(line) => {
                        let line = *line;
                        self.repeated(child, &place, line);
                    }
                    None => {
                        first.insert("ssh", self.line(child));
                        vm.ssh = self.ssh(child)?;
                    }
                },
                known if VMCTL_VM_NODES.contains(&known) => match first.get(known) {
                    Some(line) => {
                        let line = *line;
                        self.repeated(child, &place, line);
                    }
                    None => {
                        first.insert(known, self.line(child));
                    }
                },
                _ => self.unknown(child, &place, VM_NODES),
            }
        }
        self.vmctl_checks(node, children, &vm);
        Ok(vm)
    }

    /// What vmctl refuses in parts of a `vm` block that vmssh does not
    /// read: reported, not enforced.
    fn vmctl_checks(&mut self, node: &KdlNode, children: &KdlDocument, vm: &VmPlan) {
        let refuses = |what: String| format!("vm \"{}\": {what}", vm.name);
        let image = children.get_arg("image").and_then(KdlValue::as_string);
        let url = children.get_arg("image-url").and_then(KdlValue::as_string);
        match (image, url) {
            (None, None) => self.warn(
                node,
                WarningKind::VmctlRefuses,
                refuses("no image or image-url: vmctl refuses this file".into()),
            ),
            (Some(_), Some(_)) => self.warn(
                node,
                WarningKind::VmctlRefuses,
                refuses("both image and image-url: vmctl refuses this file".into()),
            ),
            _ => {}
        }
        if let Some(net) = children.get("network") {
            let mode = net.get(0).and_then(KdlValue::as_string).unwrap_or("user");
            let problem = match mode {
                "user" | "tap" | "none" => None,
                "vnic" if net.get("name").and_then(KdlValue::as_string).is_some() => None,
                "vnic" => Some("network \"vnic\" without name=\"...\"".to_string()),
                other => Some(format!("unknown network type \"{other}\"")),
            };
            if let Some(p) = problem {
                self.warn(
                    net,
                    WarningKind::VmctlRefuses,
                    refuses(format!("{p}: vmctl refuses this file")),
                );
            }
            if net.children().is_some() {
                // vmctl's documentation shows `network "tap" { bridge "br0" }`,
                // but its parser reads only the properties.
                self.warn(
                    net,
                    WarningKind::Ignored,
                    refuses(format!(
                        "the block of network is ignored by vmctl, which reads properties \
                         only (network \"{mode}\" bridge=\"...\" name=\"...\")"
                    )),
                );
            }
        }
        if !vm.steps.is_empty() && children.get("ssh").is_none() {
            self.warn(
                node,
                WarningKind::VmctlRefuses,
                refuses(format!(
                    "provision steps but no ssh block: vmctl refuses to provision it; \
                     vmssh logs in as \"{DEFAULT_USER}\""
                )),
            );
        }
    }

    fn ssh(&mut self, node: &KdlNode) -> Result<SshSettings, Invalid> {
        self.extras(node, 0, &[], true);
        let Some(children) = node.children() else {
            return Err(self.err(
                node,
                "ssh needs a body: ssh { user \"...\" } (vmctl refuses a bare ssh)".into(),
            ));
        };
        let mut ssh = SshSettings::default();
        let mut first: HashMap<&str, usize> = HashMap::new();
        for child in children.nodes() {
            let field = name(child);
            if !SSH_NODES.contains(&field) {
                self.unknown(child, "in ssh", SSH_NODES);
                continue;
            }
            if let Some(line) = first.get(field) {
                let line = *line;
                self.repeated(child, "in ssh", line);
                continue;
            }
            first.insert(field, self.line(child));
            match field {
                "user" => {
                    ssh.user = self.string_field(child, &format!("user \"{DEFAULT_USER}\""));
                }
                "private-key" => {
                    if let Some(raw) = self.string_field(child, "the key vmctl generated") {
                        let path = expand_tilde(&raw);
                        let line = self.line(child);
                        self.local_files.push(LocalFile {
                            what: "private-key",
                            path: path.clone(),
                            line,
                        });
                        ssh.private_key = Some(self.base_dir.join(path));
                    }
                }
                _ => {
                    self.extension(child);
                    ssh.port = Some(self.port_arg(child)?);
                }
            }
        }
        Ok(ssh)
    }

    /// One `provision` node: the step and vmctl's log label for it.
    fn provision(&mut self, node: &KdlNode) -> Result<(ProvisionDef, VmctlLabel), Invalid> {
        // vmctl: `get(0).and_then(as_string).unwrap_or("shell")`.
        let kind = match node.get(0) {
            Some(KdlValue::String(s)) => s.clone(),
            Some(other) => {
                let shown = show(other);
                self.warn(
                    node,
                    WarningKind::Ignored,
                    format!("provision type {shown} is not a string: vmctl runs it as \"shell\""),
                );
                "shell".to_string()
            }
            None => "shell".to_string(),
        };
        let props: &[&str] = if kind == "file" { &["mode"] } else { &[] };
        self.extras(node, 1, props, true);
        if kind != "shell" && kind != "file" {
            return Err(self.err(
                node,
                format!("unknown provision type \"{kind}\" (expected \"shell\" or \"file\")"),
            ));
        }
        let Some(children) = node.children() else {
            let example = if kind == "shell" {
                "inline \"...\""
            } else {
                "source \"...\" destination \"...\""
            };
            return Err(self.err(
                node,
                format!("provision \"{kind}\" needs a body: provision \"{kind}\" {{ {example} }}"),
            ));
        };
        if kind == "file" {
            self.file_step(node, children)
        } else {
            self.shell_step(node, children)
        }
    }

    fn shell_step(
        &mut self,
        node: &KdlNode,
        children: &KdlDocument,
    ) -> Result<(ProvisionDef, VmctlLabel), Invalid> {
        const PLACE: &str = "in provision \"shell\"";
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut inline: Option<(String, usize)> = None;
        let mut script: Option<(String, usize)> = None;
        let mut timeout = None;
        let mut env = Vec::new();
        let mut sudo = false;
        for child in children.nodes() {
            let field = name(child);
            if !SHELL_NODES.contains(&field) {
                self.unknown(child, PLACE, SHELL_NODES);
                continue;
            }
            if field == "env" {
                self.extension(child);
                env.extend(self.env_props(child)?);
                continue;
            }
            if let Some(line) = first.get(field) {
                let line = *line;
                self.repeated(child, PLACE, line);
                continue;
            }
            let line = self.line(child);
            first.insert(field, line);
            match field {
                "inline" => {
                    inline = self.string_field(child, "no command").map(|s| (s, line));
                }
                "script" => {
                    script = self.string_field(child, "no script").map(|s| (s, line));
                }
                "timeout" => {
                    self.extension(child);
                    timeout = Some(self.seconds_arg(child)?);
                }
                _ => {
                    self.extension(child);
                    sudo = self.flag_arg(child)?;
                }
            }
        }
        let (step, label) = match (inline, script) {
            (Some((cmd, _)), None) => (ProvisionDef::inline(cmd.clone()), VmctlLabel::Command(cmd)),
            (None, Some((raw, line))) => {
                let path = expand_tilde(&raw);
                self.local_files.push(LocalFile {
                    what: "script",
                    path: path.clone(),
                    line,
                });
                (ProvisionDef::script(path), VmctlLabel::Command(raw))
            }
            (Some((_, a)), Some((_, b))) => {
                return Err(Invalid {
                    line: a.max(b),
                    reason: format!(
                        "provision \"shell\" needs exactly one of inline or script (found both; \
                         first at line {})",
                        a.min(b)
                    ),
                });
            }
            (None, None) => {
                return Err(self.err(
                    node,
                    "provision \"shell\" needs exactly one of inline or script (found neither)"
                        .into(),
                ));
            }
        };
        let mut step = step.sudo(sudo);
        if let Some(t) = timeout {
            step = step.timeout(t);
        }
        for (k, v) in env {
            step = step.env(k, v);
        }
        Ok((step, label))
    }

    fn file_step(
        &mut self,
        node: &KdlNode,
        children: &KdlDocument,
    ) -> Result<(ProvisionDef, VmctlLabel), Invalid> {
        const PLACE: &str = "in provision \"file\"";
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut source = None;
        let mut destination = None;
        // vmctl uploads every file with mode 0755; `mode` is vmssh's.
        let mut mode = 0o755;
        if let Some(entry) = node
            .entries()
            .iter()
            .find(|e| e.name().is_some_and(|n| n.value() == "mode"))
        {
            self.warn_entry(entry, WarningKind::Extension, MODE_WARNING.into());
            mode = self.mode_value(entry)?;
        }
        for child in children.nodes() {
            let field = name(child);
            if !FILE_NODES.contains(&field) {
                self.unknown(child, PLACE, FILE_NODES);
                continue;
            }
            if let Some(line) = first.get(field) {
                let line = *line;
                self.repeated(child, PLACE, line);
                continue;
            }
            let line = self.line(child);
            first.insert(field, line);
            match field {
                "source" => source = self.string_field(child, "no source").map(|s| (s, line)),
                "destination" => destination = self.string_field(child, "no destination"),
                _ => {
                    self.warn(child, WarningKind::Extension, MODE_WARNING.into());
                    let entry = self.single_arg(child, MODE_EXPECTS)?;
                    mode = self.mode_value(entry)?;
                }
            }
        }
        match (source, destination) {
            (Some((source, line)), Some(destination)) => {
                let source = expand_tilde(&source);
                self.local_files.push(LocalFile {
                    what: "source",
                    path: source.clone(),
                    line,
                });
                let label = VmctlLabel::Upload(format!(
                    "{} -> {destination}",
                    self.base_dir.join(&source).display()
                ));
                Ok((ProvisionDef::file(source, destination).mode(mode), label))
            }
            (s, d) => {
                let missing = match (s.is_none(), d.is_none()) {
                    (true, true) => "missing both",
                    (true, false) => "missing source",
                    _ => "missing destination",
                };
                Err(self.err(
                    node,
                    format!("provision \"file\" needs source and destination ({missing})"),
                ))
            }
        }
    }

    /// An octal mode string (`"0644"`), as `mode` takes.
    fn mode_value(&self, entry: &KdlEntry) -> Result<u32, Invalid> {
        if let KdlValue::String(s) = entry.value()
            && (1..=5).contains(&s.len())
            && let Ok(m) = u32::from_str_radix(s, 8)
            && m <= 0o7777
        {
            return Ok(m);
        }
        Err(self.err_entry(
            entry,
            format!(
                "mode expects {MODE_EXPECTS} (found {})",
                show(entry.value())
            ),
        ))
    }

    /// The single argument of an extension field, with no properties or
    /// children.
    fn single_arg<'n>(&self, node: &'n KdlNode, expects: &str) -> Result<&'n KdlEntry, Invalid> {
        let field = name(node);
        if node.children().is_some() {
            return Err(self.err(node, format!("{field} expects {expects} (found a block)")));
        }
        if let Some(p) = node.entries().iter().find(|e| e.name().is_some()) {
            return Err(self.err_entry(
                p,
                format!(
                    "{field} expects {expects} (found property {})",
                    entry_text(p)
                ),
            ));
        }
        match node.entries() {
            [e] => Ok(e),
            [] => Err(self.err(
                node,
                format!("{field} expects {expects} (found no argument)"),
            )),
            many => Err(self.err(
                node,
                format!("{field} expects {expects} (found {} arguments)", many.len()),
            )),
        }
    }

    fn port_arg(&self, node: &KdlNode) -> Result<u16, Invalid> {
        const EXPECTS: &str = "an integer from 1 to 65535";
        let e = self.single_arg(node, EXPECTS)?;
        match e.value() {
            KdlValue::Integer(n) => match u16::try_from(*n) {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(self.err_entry(e, format!("port expects {EXPECTS} (found {n})"))),
            },
            v => Err(self.err_entry(e, format!("port expects {EXPECTS} (found {})", show(v)))),
        }
    }

    fn seconds_arg(&self, node: &KdlNode) -> Result<Duration, Invalid> {
        const EXPECTS: &str = "a positive number of seconds, e.g. timeout 300";
        let e = self.single_arg(node, EXPECTS)?;
        let secs = match e.value() {
            KdlValue::Integer(n) => *n as f64,
            KdlValue::Float(f) => *f,
            v => {
                return Err(
                    self.err_entry(e, format!("timeout expects {EXPECTS} (found {})", show(v)))
                );
            }
        };
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.err_entry(
                e,
                format!("timeout expects {EXPECTS} (found {})", show(e.value())),
            )),
        }
    }

    fn flag_arg(&self, node: &KdlNode) -> Result<bool, Invalid> {
        if node.entries().is_empty() && node.children().is_none() {
            return Ok(true);
        }
        let e = self.single_arg(node, "#true or #false")?;
        match e.value() {
            KdlValue::Bool(b) => Ok(*b),
            v => Err(self.err_entry(
                e,
                format!("sudo expects #true or #false (found {})", show(v)),
            )),
        }
    }

    fn env_props(&self, node: &KdlNode) -> Result<Vec<(String, String)>, Invalid> {
        const EXPECTS: &str =
            "NAME=\"value\" properties, e.g. env DEBIAN_FRONTEND=\"noninteractive\"";
        if node.children().is_some() {
            return Err(self.err(node, format!("env expects {EXPECTS} (found a block)")));
        }
        if node.entries().is_empty() {
            return Err(self.err(node, format!("env expects {EXPECTS} (found nothing)")));
        }
        let mut vars = Vec::new();
        for e in node.entries() {
            let Some(key) = e.name() else {
                return Err(self.err_entry(
                    e,
                    format!("env expects {EXPECTS} (found {})", show(e.value())),
                ));
            };
            let key = key.value();
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.err_entry(
                    e,
                    format!(
                        "env variable name \"{key}\" is not valid (expected letters, digits and _)"
                    ),
                ));
            }
            let value = match e.value() {
                KdlValue::String(s) => s.clone(),
                KdlValue::Integer(n) => n.to_string(),
                KdlValue::Float(f) => f.to_string(),
                KdlValue::Bool(b) => b.to_string(),
                KdlValue::Null => {
                    return Err(self
                        .err_entry(e, format!("env {key} expects a string value (found #null)")));
                }
            };
            vars.push((key.to_string(), value));
        }
        Ok(vars)
    }
}

fn entry_text(e: &KdlEntry) -> String {
    match e.name() {
        Some(n) => format!("{}={}", n.value(), show(e.value())),
        None => show(e.value()),
    }
}

/// A value as written in KDL, strings always quoted.
fn show(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `~` and `~/...` name the home directory, as in vmctl.
pub(crate) fn expand_tilde(raw: &str) -> PathBuf {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    if raw == "~"
        && let Some(h) = home()
    {
        return h;
    }
    if let Some(rest) = raw.strip_prefix("~/")
        && let Some(h) = home()
    {
        return h.join(rest);
    }
    PathBuf::from(raw)
}

/// The known name `found` is probably a misspelling of, if any.
fn suggest<'k>(found: &str, known: &[&'k str]) -> Option<&'k str> {
    let found_len = found.chars().count();
    known
        .iter()
        .map(|k| (edit_distance(found, k), *k))
        .filter(|(d, k)| {
            // Short names need a closer match to be a plausible typo.
            let limit = if k.len() <= 4 || found_len <= 3 { 1 } else { 2 };
            *d > 0 && *d <= limit
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, for "did you mean" hints on short node names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("provison", "provision"), 1);
        assert_eq!(edit_distance("provisoin", "provision"), 2);
        assert_eq!(edit_distance("ssh", "ssh"), 0);
        assert_eq!(edit_distance("", "ssh"), 3);
        assert!(edit_distance("memory", "provision") > 2);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("provison", VM_NODES), Some("provision"));
        assert_eq!(suggest("shh", VM_NODES), Some("ssh"));
        assert_eq!(suggest("inlne", SHELL_NODES), Some("inline"));
        assert_eq!(suggest("gpu", VM_NODES), None);
        assert_eq!(suggest("ssh", VM_NODES), None);
    }

    #[test]
    fn lines_count_bytes() {
        let lines = LineIndex::new("a\né\nc");
        assert_eq!(lines.line(0), 1);
        assert_eq!(lines.line(1), 1);
        assert_eq!(lines.line(2), 2);
        assert_eq!(lines.line(5), 3);
        assert_eq!(lines.line(500), 3);
    }

    #[test]
    fn tilde() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(expand_tilde("~/k"), PathBuf::from(home).join("k"));
        }
        assert_eq!(expand_tilde("k/~"), PathBuf::from("k/~"));
    }
}
