//! Provisioning plans read from vmctl's `VMFile.kdl`.
//!
//! A plan is the `ssh` and `provision` parts of a VMFile, so existing
//! VMFiles work unchanged; everything else vmctl reads (`image-url`,
//! `vcpus`, `cloud-init { ... }`, ...) is ignored here.
//!
//! ```kdl
//! vm "webserver" {
//!     image-url "https://example.com/noble.img"   // ignored
//!     ssh {
//!         user "ubuntu"
//!         private-key "keys/id_ed25519"   // relative to the VMFile's directory
//!         port 22
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
//!
//! // Outside any vm block: applied to every host.
//! provision "shell" {
//!     inline "uptime"
//! }
//! ```
//!
//! The syntax is KDL 2 (what vmctl's `kdl` 6 parser reads). Beyond vmctl, a
//! `provision "shell"` block may also hold `timeout 300` (seconds),
//! `env NAME="value" ...` and `sudo #true`
//! (see [`ProvisionDef::timeout`], [`ProvisionDef::env`],
//! [`ProvisionDef::sudo`]), and `ssh` may hold `port`.
//!
//! # Validation
//!
//! Mistakes are reported as [`Error::Plan`] with `origin` set to
//! `FILE:LINE`. Unknown nodes inside `provision` and `ssh` are errors, so a
//! typo cannot pass silently. Unknown nodes at the top level and inside
//! `vm` are ignored (vmctl has many), except near-misspellings of
//! `provision` and `ssh`.
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
//!         ssh { user "ubuntu" }
//!         provision "shell" { inline "echo hello" }
//!     }
//!     "#,
//!     "VMFile.kdl",
//!     Path::new("."),
//! )?;
//! assert_eq!(plan.vms[0].name, "web");
//! assert_eq!(plan.vms[0].ssh.user.as_deref(), Some("ubuntu"));
//! assert_eq!(plan.steps_for("web").len(), 1);
//! # Ok::<(), vmssh::Error>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use crate::error::Error;
use crate::provision::ProvisionDef;

/// A parsed plan: per-VM steps and SSH settings, plus steps for every host.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// The `vm` blocks, in file order.
    pub vms: Vec<VmPlan>,
    /// Top-level `provision` nodes: run on every host, before a matching
    /// VM's own steps.
    pub shared: Vec<ProvisionDef>,
    /// The directory `script` and `file` sources are relative to (the
    /// VMFile's directory).
    pub base_dir: PathBuf,
    origin: String,
    local_files: Vec<LocalFile>,
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
}

/// The `ssh` block of a `vm`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SshSettings {
    /// `user`.
    pub user: Option<String>,
    /// `private-key`, resolved against the plan's directory (`~/` is the
    /// home directory).
    pub private_key: Option<PathBuf>,
    /// `port`.
    pub port: Option<u16>,
}

/// A local file the plan refers to, with where it was named.
#[derive(Clone, Debug, PartialEq)]
struct LocalFile {
    what: &'static str,
    path: PathBuf,
    line: usize,
}

impl Plan {
    /// Parses a VMFile's text. `origin` names it in errors (usually its
    /// path); `base_dir` is where relative paths in it are resolved.
    ///
    /// Nothing is read from disk: see
    /// [`check_local_files`](Self::check_local_files).
    ///
    /// # Errors
    ///
    /// [`Error::Plan`] with `origin` set to `ORIGIN:LINE`: KDL syntax errors,
    /// unknown provision types, missing or repeated fields, values of the
    /// wrong type, unknown nodes inside `provision` or `ssh`, duplicate VM
    /// names, and a plan with neither a `vm` block nor a top-level
    /// `provision`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Plan, Error> {
        let cx = Cx {
            text,
            origin,
            base_dir,
        };
        cx.plan().map_err(|bad| Error::Plan {
            origin: format!("{origin}:{}", bad.line),
            reason: bad.reason,
        })
    }

    /// Reads and parses the VMFile at `path`; relative paths in it are
    /// resolved against its directory.
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

/// Parsing context: the text (for line numbers) and where it came from.
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
    base_dir: &'a Path,
}

fn name(node: &KdlNode) -> &str {
    node.name().value()
}

fn parse_kdl(cx: &Cx<'_>) -> Result<KdlDocument, Invalid> {
    // The parser is third-party code fed untrusted text: a panic inside it
    // becomes a plan error instead of taking the caller down.
    let parsed = std::panic::catch_unwind(|| KdlDocument::parse_v2(cx.text));
    match parsed {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(e)) => {
            let Some(first) = e.diagnostics.first() else {
                return Err(cx.err_at(0, "invalid KDL".into()));
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
            Err(cx.err_at(first.span.offset(), reason))
        }
        Err(_) => Err(cx.err_at(0, "invalid KDL: the parser failed on this input".into())),
    }
}

/// Nodes vmctl reads inside `vm` that plans do not use.
const VMCTL_VM_NODES: &[&str] = &[
    "image",
    "image-url",
    "vcpus",
    "memory",
    "disk",
    "network",
    "cloud-init",
];

impl Cx<'_> {
    fn plan(&self) -> Result<Plan, Invalid> {
        let cx = self;
        let doc = parse_kdl(cx)?;
        let mut plan = Plan {
            vms: Vec::new(),
            shared: Vec::new(),
            base_dir: cx.base_dir.to_path_buf(),
            origin: cx.origin.to_string(),
            local_files: Vec::new(),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for node in doc.nodes() {
            match name(node) {
                "vm" => {
                    let vm = cx.vm(node, &mut plan.local_files)?;
                    let line = cx.line(node);
                    if let Some(first) = seen.insert(vm.name.clone(), line) {
                        return Err(cx.err(
                            node,
                            format!(
                                "duplicate vm name \"{}\" (first defined at line {first})",
                                vm.name
                            ),
                        ));
                    }
                    plan.vms.push(vm);
                }
                "provision" => plan.shared.push(cx.provision(node, &mut plan.local_files)?),
                "ssh" => {
                    return Err(cx.err(
                        node,
                        "ssh at the top level is not supported (expected inside a vm block)"
                            .to_string(),
                    ));
                }
                other => cx.check_typo(node, other, "at the top level")?,
            }
        }
        if plan.vms.is_empty() && plan.shared.is_empty() {
            return Err(Invalid {
                line: 1,
                reason: "no vm block and no top-level provision found (expected vm \"NAME\" { ... } or provision \"shell\" { ... })".into(),
            });
        }
        Ok(plan)
    }

    /// The 1-based line of a byte offset.
    fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn line(&self, node: &KdlNode) -> usize {
        self.line_at(node.name().span().offset())
    }

    fn err_at(&self, offset: usize, reason: String) -> Invalid {
        Invalid {
            line: self.line_at(offset),
            reason,
        }
    }

    fn err(&self, node: &KdlNode, reason: String) -> Invalid {
        self.err_at(node.name().span().offset(), reason)
    }

    fn err_entry(&self, entry: &KdlEntry, reason: String) -> Invalid {
        self.err_at(entry.span().offset(), reason)
    }

    /// Unknown nodes outside `provision`/`ssh` are ignored, unless they look
    /// like a misspelled `provision` or `ssh`.
    fn check_typo(&self, node: &KdlNode, found: &str, place: &str) -> Result<(), Invalid> {
        let guess = if edit_distance(found, "provision") <= 2 {
            Some("provision")
        } else if found.len() >= 3 && edit_distance(found, "ssh") == 1 {
            Some("ssh")
        } else {
            None
        };
        match guess {
            Some(g) => Err(self.err(
                node,
                format!("unknown node \"{found}\" {place} (did you mean {g}?)"),
            )),
            None => Ok(()),
        }
    }

    fn vm(&self, node: &KdlNode, files: &mut Vec<LocalFile>) -> Result<VmPlan, Invalid> {
        let vm_name = match positional(node).as_slice() {
            [e] => match e.value() {
                KdlValue::String(s) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(self.err_entry(
                        e,
                        format!(
                            "vm expects a name string, e.g. vm \"web\" {{ ... }} (found {})",
                            show(e.value())
                        ),
                    ));
                }
            },
            [] => {
                return Err(self.err(
                    node,
                    "vm expects a name string, e.g. vm \"web\" { ... } (found no argument)".into(),
                ));
            }
            many => {
                return Err(self.err(
                    node,
                    format!(
                        "vm expects one name string (found {} arguments)",
                        many.len()
                    ),
                ));
            }
        };
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
        };
        let mut ssh_line = None;
        for child in children.nodes() {
            match name(child) {
                "provision" => vm.steps.push(self.provision(child, files)?),
                "ssh" => {
                    if let Some(first) = ssh_line {
                        return Err(self.err(
                            child,
                            format!(
                                "ssh given twice in vm \"{}\" (first at line {first})",
                                vm.name
                            ),
                        ));
                    }
                    ssh_line = Some(self.line(child));
                    vm.ssh = self.ssh(child, files)?;
                }
                known if VMCTL_VM_NODES.contains(&known) => {}
                other => self.check_typo(child, other, &format!("in vm \"{}\"", vm.name))?,
            }
        }
        Ok(vm)
    }

    fn ssh(&self, node: &KdlNode, files: &mut Vec<LocalFile>) -> Result<SshSettings, Invalid> {
        if let Some(e) = node.entries().first() {
            return Err(self.err_entry(
                e,
                format!(
                    "ssh takes no arguments, only a block {{ user \"...\" }} (found {})",
                    entry_text(e)
                ),
            ));
        }
        let mut ssh = SshSettings::default();
        let mut seen = Seen::default();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let field = name(child);
            match field {
                "user" => {
                    seen.once(self, child)?;
                    ssh.user = Some(self.string_arg(child)?);
                }
                "private-key" => {
                    seen.once(self, child)?;
                    let raw = self.string_arg(child)?;
                    let path = expand_tilde(&raw);
                    files.push(LocalFile {
                        what: "private-key",
                        path: path.clone(),
                        line: self.line(child),
                    });
                    ssh.private_key = Some(self.base_dir.join(path));
                }
                "port" => {
                    seen.once(self, child)?;
                    ssh.port = Some(self.port_arg(child)?);
                }
                other => {
                    return Err(self.err(
                        child,
                        format!(
                            "unknown node \"{other}\" in ssh (expected user, private-key or port)"
                        ),
                    ));
                }
            }
        }
        Ok(ssh)
    }

    fn provision(
        &self,
        node: &KdlNode,
        files: &mut Vec<LocalFile>,
    ) -> Result<ProvisionDef, Invalid> {
        // vmctl treats a provision without a type as a shell step.
        let kind = match positional(node).as_slice() {
            [] => "shell".to_string(),
            [e] => match e.value() {
                KdlValue::String(s) => s.clone(),
                v => {
                    return Err(self.err_entry(
                        e,
                        format!(
                            "provision expects a type string, \"shell\" or \"file\" (found {})",
                            show(v)
                        ),
                    ));
                }
            },
            many => return Err(self.err(
                node,
                format!(
                    "provision takes one type argument, \"shell\" or \"file\" (found {} arguments)",
                    many.len()
                ),
            )),
        };
        if let Some(p) = node.entries().iter().find(|e| e.name().is_some()) {
            return Err(self.err_entry(
                p,
                format!("provision takes no properties (found {})", entry_text(p)),
            ));
        }
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
            return self.file_step(node, children, files);
        }
        let mut seen = Seen::default();
        let mut command: Option<(&str, String, usize)> = None;
        let mut timeout = None;
        let mut env = Vec::new();
        let mut sudo = false;
        for child in children.nodes() {
            let field = name(child);
            match field {
                "inline" | "script" => {
                    if let Some((first, _, line)) = &command {
                        let found = if *first == field {
                            format!("{field} twice")
                        } else {
                            format!("{first} and {field}")
                        };
                        return Err(self.err(
                            child,
                            format!("provision \"shell\" needs exactly one of inline or script (found {found}; first at line {line})"),
                        ));
                    }
                    command = Some((
                        if field == "inline" {
                            "inline"
                        } else {
                            "script"
                        },
                        self.string_arg(child)?,
                        self.line(child),
                    ));
                }
                "timeout" => {
                    seen.once(self, child)?;
                    timeout = Some(self.seconds_arg(child)?);
                }
                "env" => env.extend(self.env_props(child)?),
                "sudo" => {
                    seen.once(self, child)?;
                    sudo = self.flag_arg(child)?;
                }
                other => {
                    return Err(self.err(
                        child,
                        format!("unknown node \"{other}\" in provision \"shell\" (expected inline, script, timeout, env or sudo)"),
                    ));
                }
            }
        }
        let step = match command {
            Some(("inline", cmd, _)) => ProvisionDef::inline(cmd),
            Some((_, path, line)) => {
                let path = expand_tilde(&path);
                files.push(LocalFile {
                    what: "script",
                    path: path.clone(),
                    line,
                });
                ProvisionDef::script(path)
            }
            None => {
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
        Ok(step)
    }

    fn file_step(
        &self,
        node: &KdlNode,
        children: &KdlDocument,
        files: &mut Vec<LocalFile>,
    ) -> Result<ProvisionDef, Invalid> {
        let mut seen = Seen::default();
        let mut source = None;
        let mut destination = None;
        for child in children.nodes() {
            match name(child) {
                "source" => {
                    seen.once(self, child)?;
                    source = Some((self.string_arg(child)?, self.line(child)));
                }
                "destination" => {
                    seen.once(self, child)?;
                    destination = Some(self.string_arg(child)?);
                }
                other => {
                    return Err(self.err(child, format!("unknown node \"{other}\" in provision \"file\" (expected source and destination)")));
                }
            }
        }
        match (source, destination) {
            (Some((source, line)), Some(destination)) => {
                let source = expand_tilde(&source);
                files.push(LocalFile {
                    what: "source",
                    path: source.clone(),
                    line,
                });
                Ok(ProvisionDef::file(source, destination))
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

    /// The single argument of `node`, with no properties or children.
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

    fn string_arg(&self, node: &KdlNode) -> Result<String, Invalid> {
        let field = name(node);
        let e = self.single_arg(node, "a string argument")?;
        match e.value() {
            KdlValue::String(s) if s.trim().is_empty() => {
                Err(self.err_entry(e, format!("{field} expects a non-empty string argument")))
            }
            KdlValue::String(s) => Ok(s.clone()),
            v => Err(self.err_entry(
                e,
                format!("{field} expects a string argument (found {})", show(v)),
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

/// Remembers which fields of a block were given, to refuse repeats.
#[derive(Default)]
struct Seen(HashMap<String, usize>);

impl Seen {
    fn once(&mut self, cx: &Cx<'_>, node: &KdlNode) -> Result<(), Invalid> {
        let line = cx.line(node);
        match self.0.insert(name(node).to_string(), line) {
            Some(first) => Err(cx.err(
                node,
                format!("{} given twice (first at line {first})", name(node)),
            )),
            None => Ok(()),
        }
    }
}

fn positional(node: &KdlNode) -> Vec<&KdlEntry> {
    node.entries()
        .iter()
        .filter(|e| e.name().is_none())
        .collect()
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
fn expand_tilde(raw: &str) -> PathBuf {
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
    fn lines_count_bytes() {
        let cx = Cx {
            text: "a\né\nc",
            origin: "f",
            base_dir: Path::new("."),
        };
        assert_eq!(cx.line_at(0), 1);
        assert_eq!(cx.line_at(2), 2);
        assert_eq!(cx.line_at(5), 3);
        assert_eq!(cx.line_at(500), 3);
    }

    #[test]
    fn tilde() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(expand_tilde("~/k"), PathBuf::from(home).join("k"));
        }
        assert_eq!(expand_tilde("k/~"), PathBuf::from("k/~"));
    }
}
