//! Reading a VMFile as vmctl reads it: the walk over its nodes, what is
//! kept, what is ignored (and warned about), what is refused.

use std::collections::HashMap;
use std::path::Path;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use super::warning::suggest;
use super::{DEFAULT_USER, LocalFile, SshSettings, VmPlan, Warning, WarningKind};
use crate::error::Error;
use crate::provision::ProvisionDef;
use crate::vmctl::home::expand_tilde;
use crate::vmctl::log::VmctlLabel;

/// A mistake in the plan, before it is given the plan's name.
pub(super) struct Invalid {
    pub(super) line: usize,
    pub(super) reason: String,
}

/// A node of a step that looks like a misspelling of one of its fields.
struct Misspelt {
    found: String,
    meant: &'static str,
    line: usize,
}

/// " (did you mean inline? line 4 has \"inlne\")" for the first of
/// `misspelt` that meant one of `wanted`, else nothing.
fn did_you_mean(misspelt: &[Misspelt], wanted: &[&str]) -> String {
    misspelt
        .iter()
        .find(|m| wanted.contains(&m.meant))
        .map(|m| {
            format!(
                " (did you mean {}? line {} has \"{}\")",
                m.meant, m.line, m.found
            )
        })
        .unwrap_or_default()
}

/// Byte offsets of line starts, for line numbers of spans.
pub(super) struct LineIndex(Vec<usize>);

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    /// The 1-based line of a byte offset.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// Parsing context: where the plan came from, and what was found so far.
pub(super) struct Cx<'a> {
    pub(super) origin: &'a str,
    pub(super) base_dir: &'a Path,
    pub(super) lines: LineIndex,
    pub(super) warnings: Vec<Warning>,
    pub(super) local_files: Vec<LocalFile>,
}

/// The steps of a block and their vmctl log labels.
type Steps = (Vec<ProvisionDef>, Vec<VmctlLabel>);

/// A node's name as vmctl's `doc.get(...)` matches it (the value).
pub(super) fn name(node: &KdlNode) -> &str {
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
pub(super) const MODE_EXPECTS: &str = "an octal mode string, e.g. mode \"0644\"";
const MODE_WARNING: &str = "mode is a vmssh extension: vmctl ignores it and uploads with mode 0755";

impl Cx<'_> {
    pub(super) fn error(&self, bad: Invalid) -> Error {
        Error::Plan {
            origin: format!("{}:{}", self.origin, bad.line),
            reason: bad.reason,
        }
    }

    pub(super) fn parse_kdl(&self, text: &str) -> Result<KdlDocument, Invalid> {
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

    pub(super) fn line(&self, node: &KdlNode) -> usize {
        self.lines.line(node.name().span().offset())
    }

    pub(super) fn err_at(&self, offset: usize, reason: String) -> Invalid {
        Invalid {
            line: self.lines.line(offset),
            reason,
        }
    }

    pub(super) fn err(&self, node: &KdlNode, reason: String) -> Invalid {
        self.err_at(node.name().span().offset(), reason)
    }

    pub(super) fn err_entry(&self, entry: &KdlEntry, reason: String) -> Invalid {
        self.err_at(entry.span().offset(), reason)
    }

    pub(super) fn warn_line(&mut self, line: usize, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            file: self.origin.to_string(),
            line,
            kind,
            message,
        });
    }

    pub(super) fn warn(&mut self, node: &KdlNode, kind: WarningKind, message: String) {
        let line = self.line(node);
        self.warn_line(line, kind, message);
    }

    pub(super) fn warn_entry(&mut self, entry: &KdlEntry, kind: WarningKind, message: String) {
        let line = self.lines.line(entry.span().offset());
        self.warn_line(line, kind, message);
    }

    pub(super) fn extension(&mut self, node: &KdlNode) {
        let field = name(node).to_string();
        self.warn(
            node,
            WarningKind::Extension,
            format!("{field} is a vmssh extension: vmctl ignores it"),
        );
    }

    /// An unknown node: ignored, with a hint when it looks like a known one.
    pub(super) fn unknown(&mut self, node: &KdlNode, place: &str, known: &[&str]) {
        let found = name(node);
        let hint = match suggest(found, known) {
            Some(g) => format!(" (did you mean {g}?)"),
            None => String::new(),
        };
        let message = format!("unknown node \"{found}\" {place} ignored{hint}");
        self.warn(node, WarningKind::Ignored, message);
    }

    /// An unknown field of a step, as [`unknown`](Self::unknown), kept in
    /// `misspelt` when it looks like one of `fields`: a step missing
    /// that field says so.
    fn unknown_field(
        &mut self,
        node: &KdlNode,
        place: &str,
        fields: &[&'static str],
        misspelt: &mut Vec<Misspelt>,
    ) {
        self.unknown(node, place, fields);
        let found = name(node);
        if let Some(meant) = suggest(found, fields) {
            misspelt.push(Misspelt {
                found: found.to_string(),
                meant,
                line: self.line(node),
            });
        }
    }

    /// The line of `field`'s first occurrence, recorded in `first`; `None`
    /// (with a warning) when it occurred before: vmctl reads the first.
    pub(super) fn first_time<'n>(
        &mut self,
        first: &mut HashMap<&'n str, usize>,
        field: &'n str,
        node: &KdlNode,
        place: &str,
    ) -> Option<usize> {
        if let Some(line) = first.get(field) {
            let line = *line;
            self.repeated(node, place, line);
            return None;
        }
        let line = self.line(node);
        first.insert(field, line);
        Some(line)
    }

    /// A repeated field: vmctl reads the first.
    pub(super) fn repeated(&mut self, node: &KdlNode, place: &str, first: usize) {
        let message = format!(
            "{} repeated {place}: vmctl reads only the first (line {first}); this one is ignored",
            name(node)
        );
        self.warn(node, WarningKind::Ignored, message);
    }

    /// Arguments after the first `keep`, properties (except those named in
    /// `props`) and a child block of a node that takes none: ignored.
    pub(super) fn extras(&mut self, node: &KdlNode, keep: usize, props: &[&str], block: bool) {
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
    pub(super) fn string_field(&mut self, node: &KdlNode, absent: &str) -> Option<String> {
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

    pub(super) fn plan(&mut self, doc: &KdlDocument) -> Result<(Vec<VmPlan>, Steps), Invalid> {
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
    pub(super) fn quoted(&mut self, node: &KdlNode) {
        let message = format!(
            "node name {} is written in quotes: vmctl does not read it as {}, so it is ignored",
            node.name(),
            name(node)
        );
        self.warn(node, WarningKind::Ignored, message);
    }

    pub(super) fn vm_name(&mut self, node: &KdlNode) -> Result<String, Invalid> {
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

    pub(super) fn vm(&mut self, node: &KdlNode, vm_name: String) -> Result<VmPlan, Invalid> {
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
    pub(super) fn vmctl_checks(&mut self, node: &KdlNode, children: &KdlDocument, vm: &VmPlan) {
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

    pub(super) fn ssh(&mut self, node: &KdlNode) -> Result<SshSettings, Invalid> {
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
            if self
                .first_time(&mut first, field, child, "in ssh")
                .is_none()
            {
                continue;
            }
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
                            may_be_dir: false,
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
    pub(super) fn provision(
        &mut self,
        node: &KdlNode,
    ) -> Result<(ProvisionDef, VmctlLabel), Invalid> {
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

    pub(super) fn shell_step(
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
        let mut misspelt = Vec::new();
        for child in children.nodes() {
            let field = name(child);
            if !SHELL_NODES.contains(&field) {
                self.unknown_field(child, PLACE, SHELL_NODES, &mut misspelt);
                continue;
            }
            if field == "env" {
                self.extension(child);
                env.extend(self.env_props(child)?);
                continue;
            }
            let Some(line) = self.first_time(&mut first, field, child, PLACE) else {
                continue;
            };
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
                    may_be_dir: false,
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
                let hint = did_you_mean(&misspelt, &["inline", "script"]);
                return Err(self.err(
                    node,
                    format!(
                        "provision \"shell\" needs exactly one of inline or script (found \
                         neither){hint}"
                    ),
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

    pub(super) fn file_step(
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
        let mut misspelt = Vec::new();
        for child in children.nodes() {
            let field = name(child);
            if !FILE_NODES.contains(&field) {
                self.unknown_field(child, PLACE, FILE_NODES, &mut misspelt);
                continue;
            }
            let Some(line) = self.first_time(&mut first, field, child, PLACE) else {
                continue;
            };
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
                    may_be_dir: true,
                });
                let label = VmctlLabel::Upload(format!(
                    "{} -> {destination}",
                    self.base_dir.join(&source).display()
                ));
                Ok((ProvisionDef::file(source, destination).mode(mode), label))
            }
            (s, d) => {
                let (missing, wanted): (_, &[&str]) = match (s.is_none(), d.is_none()) {
                    (true, true) => ("missing both", &["source", "destination"]),
                    (true, false) => ("missing source", &["source"]),
                    _ => ("missing destination", &["destination"]),
                };
                let hint = did_you_mean(&misspelt, wanted);
                Err(self.err(
                    node,
                    format!("provision \"file\" needs source and destination ({missing}){hint}"),
                ))
            }
        }
    }
}

pub(super) fn entry_text(e: &KdlEntry) -> String {
    match e.name() {
        Some(n) => format!("{}={}", n.value(), show(e.value())),
        None => show(e.value()),
    }
}

/// A value as written in KDL, strings always quoted.
pub(super) fn show(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
