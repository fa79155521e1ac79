//! `--dry-run`: every host resolved (address, user, port, keys, jump
//! hosts, where host keys are trusted from) and every step with its local
//! input, printed (as JSON with `--json`); nothing connects, not even a
//! jump host. Exit 0, or 2 with every problem found: a key that cannot be
//! read, a host with no way to authenticate, a missing script or file.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vmssh::SshConfig;
use vmssh::fleet::{Batch, Target};
use vmssh::provision::{ProvisionDef, Provisioner, StepKind};
use vmssh::ssh_config::{Proxy, ResolvedHost};

use crate::args::RunArgs;
use crate::credentials::{Endpoint, Jump};
use crate::usage::{Exit, Usage};

/// One host as the run would reach it and what it would run there.
#[derive(Debug)]
pub(crate) struct Row {
    name: String,
    origin: String,
    /// Where and as whom, or why that cannot be known.
    reach: Result<Reach, String>,
    steps: Vec<ProvisionDef>,
    base_dir: PathBuf,
}

#[derive(Debug)]
struct Reach {
    host: String,
    port: u16,
    config: SshConfig,
    /// The jump hosts, the first one connected first.
    jumps: Vec<String>,
}

impl Row {
    /// A host of `--host`, `--hosts` or `--ssh-config`, running `steps`
    /// from `base_dir`.
    pub(crate) fn resolved(
        r: Resolved,
        steps: impl FnOnce(&str) -> Vec<ProvisionDef>,
        base_dir: &Path,
    ) -> Row {
        let steps = steps(&r.name);
        let reach = match r.endpoint {
            Ok(e) => {
                let jumps = e.jump.as_ref().map(hops).unwrap_or_default();
                let reach = Reach {
                    host: e.host,
                    port: e.port,
                    config: e.config,
                    jumps,
                };
                Ok(reach)
            }
            Err(u) => Err(u.0),
        };
        Row {
            name: r.name,
            origin: r.origin,
            reach,
            steps,
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// A target made elsewhere (`--vmctl`), given from `origin`.
    pub(crate) fn target(t: &Target, origin: &str, base_dir: &Path) -> Row {
        Row {
            name: t.name().to_string(),
            origin: origin.to_string(),
            reach: Ok(Reach {
                host: t.host().to_string(),
                port: t.port(),
                config: t.config().clone(),
                jumps: Vec::new(),
            }),
            steps: t.steps().to_vec(),
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// This host's problems: how it is reached, then each step's input.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = &self.reach {
            out.push(e.clone());
        }
        let p = Provisioner::new(self.name.clone()).base_dir(self.base_dir.clone());
        out.extend(
            p.input_problems(&self.steps)
                .iter()
                .map(|e| e.chain().to_string()),
        );
        out
    }

    /// The local file a step reads or writes, as the run resolves it.
    fn local(&self, step: &ProvisionDef) -> Option<PathBuf> {
        match step.kind() {
            StepKind::Script(p) | StepKind::File { source: p, .. } => Some(self.base_dir.join(p)),
            StepKind::Download { destination, .. } | StepKind::DownloadDir { destination, .. } => {
                Some(self.base_dir.join(destination))
            }
            _ => None,
        }
    }
}

/// A jump chain, the host connected first leading.
fn hops(jump: &Jump) -> Vec<String> {
    match jump {
        Jump::Direct { host, port, config } => vec![format!(
            "{}@{host}:{port} (auth: {}; host keys: {})",
            config.user_name(),
            list(config.auth_methods()),
            config.host_key_policy()
        )],
        Jump::Alias(r) => alias_hops(r),
    }
}

fn alias_hops(r: &ResolvedHost) -> Vec<String> {
    let mut chain = match r.proxy() {
        Some(Proxy::Jump(outer)) => alias_hops(outer),
        Some(Proxy::Command(c)) => vec![format!("ProxyCommand {c}")],
        _ => Vec::new(),
    };
    let cfg = r.ssh_config();
    chain.push(format!(
        "{} = {}@{}:{} (ssh_config; auth: {}; host keys: {})",
        r.alias(),
        r.user(),
        r.host(),
        r.port(),
        list(cfg.auth_methods()),
        cfg.host_key_policy()
    ));
    chain
}

fn list(items: &[impl ToString]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints `rows` (this shard's hosts, in run order) and every problem of
/// `rows` and of `others` (hosts of other shards, which would stop the
/// run as well) and `extra` (the verb's own), and ends: exit 0, or a usage
/// error listing the problems.
pub(crate) fn show(
    rows: &[Row],
    others: &[Row],
    extra: Vec<String>,
    run: &RunArgs,
    verb: &str,
) -> Result<Exit, Usage> {
    let sizes = (!run.serial.is_empty()).then(|| Batch::sizes(&run.serial, rows.len()));
    let batch_of: Vec<Option<usize>> = match &sizes {
        Some(sizes) => sizes
            .iter()
            .enumerate()
            .flat_map(|(b, &n)| std::iter::repeat_n(Some(b + 1), n))
            .collect(),
        None => vec![None; rows.len()],
    };
    let mut problems = extra;
    // Each names its host already.
    for row in rows.iter().chain(others) {
        problems.extend(row.problems());
    }
    if run.json {
        let hosts: Vec<Value> = rows
            .iter()
            .zip(&batch_of)
            .map(|(row, batch)| host_json(row, *batch))
            .collect();
        let doc = json!({
            "dry_run": true,
            "verb": verb,
            "hosts": hosts,
            "batches": sizes,
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        let mut text = String::new();
        for (row, batch) in rows.iter().zip(&batch_of) {
            host_text(&mut text, row, *batch);
        }
        print!("{text}");
    }
    if problems.is_empty() {
        let batches = sizes.map_or(String::new(), |s| format!(" in {} batches", s.len()));
        eprintln!(
            "vmssh: dry run: {} hosts{batches}, nothing connected; no problem found",
            rows.len()
        );
        Ok(Exit::Ok)
    } else {
        problems.push(format!(
            "dry run: {} problem{} found; nothing connected",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ));
        Err(Usage(problems.join("\n")))
    }
}

fn host_text(text: &mut String, row: &Row, batch: Option<usize>) {
    use std::fmt::Write as _;
    let _ = writeln!(text, "{} ({})", row.name, row.origin);
    match &row.reach {
        Ok(r) => {
            let c = &r.config;
            let _ = writeln!(
                text,
                "  address    {}@{}:{}",
                c.user_name(),
                bracket(&r.host),
                r.port
            );
            let _ = writeln!(text, "  auth       {}", list(c.auth_methods()));
            let _ = writeln!(text, "  host keys  {}", c.host_key_policy());
            if c.forwards_agent() {
                let _ = writeln!(text, "  agent      forwarded");
            }
            if r.jumps.is_empty() {
                let _ = writeln!(text, "  jump       none");
            }
            for (i, hop) in r.jumps.iter().enumerate() {
                let label = if i == 0 { "jump" } else { "then" };
                let _ = writeln!(text, "  {label:<10} {hop}");
            }
        }
        Err(e) => {
            let _ = writeln!(text, "  PROBLEM    {e}");
        }
    }
    if let Some(b) = batch {
        let _ = writeln!(text, "  batch      {b}");
    }
    for (i, step) in row.steps.iter().enumerate() {
        let label = if i == 0 { "steps" } else { "" };
        let _ = write!(text, "  {label:<10} {}. {}", i + 1, step.describe());
        if let Some(local) = row.local(step) {
            let _ = write!(text, " ({})", local.display());
        }
        text.push('\n');
    }
}

fn host_json(row: &Row, batch: Option<usize>) -> Value {
    let steps: Vec<Value> = row
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "step": i + 1,
                "description": s.describe(),
                "local": row.local(s).map(|p| p.display().to_string()),
            })
        })
        .collect();
    let mut v = json!({
        "name": row.name,
        "origin": row.origin,
        "batch": batch,
        "steps": steps,
        "problems": row.problems(),
    });
    if let Ok(r) = &row.reach {
        let c = &r.config;
        let auth: Vec<String> = c.auth_methods().iter().map(ToString::to_string).collect();
        v["host"] = json!(r.host);
        v["port"] = json!(r.port);
        v["user"] = json!(c.user_name());
        v["auth"] = json!(auth);
        v["host_key"] = json!(c.host_key_policy().to_string());
        v["forward_agent"] = json!(c.forwards_agent());
        v["jump"] = json!(r.jumps);
    }
    v
}

/// An IPv6 address in brackets, as `[::1]:22`.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// One host resolved: its connection settings, or why they cannot be
/// made (a missing key, no way to authenticate).
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) endpoint: Result<Endpoint, Usage>,
    /// Whether it runs in this `--shard`.
    pub(crate) in_shard: bool,
}
