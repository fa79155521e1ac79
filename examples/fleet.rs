//! Provisions a fleet of VMs from a vmctl `VMFile.kdl` plan, with live
//! prefixed output, a progress bar per VM and a summary table.
//!
//! ```text
//! # Demo: the plan in examples/plans/demo on 8 embedded VMs (in-process SSH servers)
//! cargo run --example fleet --features testkit
//! cargo run --example fleet --features testkit -- --vms 40
//!
//! # Real VMs: the demo plan on 2 QEMU guests booted here (QEMU and the
//! # image: scripts/deps/40-qemu.sh), stopped at the end
//! cargo run --example fleet --features testkit -- --qemu 2
//!
//! # Real hosts: matched to the plan's `vm` blocks by name; the plan's
//! # top-level `provision` steps run on every host
//! cargo run --example fleet --features testkit -- --plan VMFile.kdl \
//!     --host web=10.0.0.5 --host db=10.0.0.6:2222 --user ubuntu --key ~/.ssh/id_ed25519
//!
//! # The VMs vmctl runs (its state, $XDG_DATA_HOME/vmctl/vms.json, or
//! # STATE), from their VMFile.kdl (--plan, default ./VMFile.kdl), as
//! # vmctl provisions them: its keys, file modes and provision.log; host
//! # keys trusted on first use per VM instance
//! cargo run --example fleet --features testkit -- --vmctl [STATE] [--plan VMFile.kdl]
//!
//! # Hosts behind a bastion: one connection to it carries every VM's session
//! cargo run --example fleet --features testkit -- --plan VMFile.kdl \
//!     --jump ops@bastion.example.com --host web=10.0.0.5 --host db=10.0.0.6 --key ~/.ssh/id_ed25519
//! ```
//!
//! Exits 0 when every VM succeeded, 1 when one failed, 2 on a usage or plan
//! error, 130 when interrupted.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures::future::BoxFuture;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vmssh::fleet::{Fleet, FleetReport, Outcome, Target};
use vmssh::plan::Plan;
use vmssh::provision::{Event, Sink, TerminalSink};
use vmssh::vmctl::Inventory;
use vmssh::{Auth, HostKeyPolicy, SshConfig};

/// Provision VMs from a vmctl VMFile.kdl plan.
///
/// Without --plan, runs a demo plan on embedded VMs started in this process.
#[derive(Parser, Debug)]
#[command(version, about)]
#[command(group = clap::ArgGroup::new("targets").args(["hosts", "vmctl"]).multiple(false))]
struct Args {
    /// The plan (a vmctl VMFile.kdl).
    #[arg(long, value_name = "VMFILE", requires = "targets")]
    plan: Option<PathBuf>,

    /// A host to provision, named like a `vm` block of the plan (repeatable).
    #[arg(long = "host", value_name = "NAME=HOST[:PORT]", value_parser = parse_host, requires = "plan")]
    hosts: Vec<HostArg>,

    /// Reach every host through this jump host (a bastion), as `ssh -J`
    /// does: one connection to it, the hosts' addresses as it sees them.
    /// It is authenticated and its host key checked like the hosts.
    #[arg(long, value_name = "[USER@]HOST[:PORT]", value_parser = parse_jump, requires = "plan")]
    jump: Option<JumpArg>,

    /// Provision the VMs vmctl runs, found in its state file (default:
    /// $XDG_DATA_HOME/vmctl/vms.json), with the plan (default:
    /// ./VMFile.kdl), as vmctl does: its keys, file modes and
    /// provision.log in each VM's work directory; each VM instance's host
    /// key trusted on first use and checked after.
    #[arg(long, value_name = "STATE", num_args = 0..=1,
          conflicts_with_all = ["jump", "user", "key", "host_key"])]
    vmctl: Option<Option<PathBuf>>,

    /// User to log in as (overrides the plan's `ssh { user }`).
    #[arg(long)]
    user: Option<String>,

    /// Private key (overrides the plan's `ssh { private-key }`); the agent
    /// is also tried when SSH_AUTH_SOCK is set.
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,

    /// Trust host keys in this known_hosts file only [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "PATH", group = "host_key")]
    known_hosts: Option<PathBuf>,

    /// Trust new hosts on first use and record them in this known_hosts file.
    #[arg(long, value_name = "PATH", group = "host_key")]
    accept_new: Option<PathBuf>,

    /// Accept any host key (throwaway test machines only).
    #[arg(long, group = "host_key")]
    insecure_accept_any: bool,

    /// VMs provisioned at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    concurrency: usize,

    /// How long each VM may take to accept a connection (a VM still booting), in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    connect_deadline: u64,

    /// Cancel the other VMs as soon as one fails.
    #[arg(long)]
    fail_fast: bool,

    /// Write each VM's output to DIR/<vm>/provision.log.
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Demo: how many embedded VMs to start.
    #[arg(long, default_value_t = 8, value_name = "N", conflicts_with_all = ["plan", "vmctl"])]
    vms: usize,

    /// Demo: make this VM's script step fail (to see a failure).
    #[arg(long, value_name = "VM", conflicts_with_all = ["plan", "vmctl"], hide = true)]
    break_vm: Option<String>,

    /// Demo on real VMs: boot N QEMU guests (image from scripts/vm-image.sh,
    /// built on first use) and provision them with the demo plan.
    #[arg(long, value_name = "N", conflicts_with_all = ["plan", "vms", "vmctl"])]
    qemu: Option<usize>,
}

#[derive(Clone, Debug)]
struct HostArg {
    name: String,
    host: String,
    port: Option<u16>,
}

#[derive(Clone, Debug)]
struct JumpArg {
    user: Option<String>,
    host: String,
    port: u16,
}

fn parse_jump(s: &str) -> Result<JumpArg, String> {
    let (user, addr) = match s.rsplit_once('@') {
        Some((u, a)) if !u.is_empty() => (Some(u.to_string()), a),
        Some(_) => return Err(format!("empty user in {s:?}")),
        None => (None, s),
    };
    let h = parse_host(&format!("jump={addr}"))?;
    Ok(JumpArg {
        user,
        host: h.host,
        port: h.port.unwrap_or(22),
    })
}

fn parse_host(s: &str) -> Result<HostArg, String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=HOST[:PORT], got {s:?}"))?;
    if name.is_empty() || addr.is_empty() {
        return Err(format!("expected NAME=HOST[:PORT], got {s:?}"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} in {s:?}"))
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        // [v6]:port
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {s:?}"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(port(p)?)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected {after:?} after ] in {s:?}")),
        }
    } else {
        match addr.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(port(p)?)),
            _ => (addr, None), // bare IPv6 address
        }
    };
    Ok(HostArg {
        name: name.to_string(),
        host: host.to_string(),
        port,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Real guests, stopped (killed by PID) when this drops at the end.
    let mut _guests = Vec::new();
    let prepared = if let Some(n) = args.qemu {
        qemu_vms::targets(n).await.map(|(targets, sizes, guests)| {
            _guests = guests;
            (targets, sizes, demo::Servers::default())
        })
    } else if let Some(state) = &args.vmctl {
        vmctl_targets(args.plan.as_deref(), state.as_deref()).await
    } else if args.plan.is_some() {
        hosts_targets(&args).await
    } else {
        demo::targets(&args).await
    };
    let (targets, plan_sizes, _servers) = match prepared {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::from(2);
        }
    };

    let ui = Ui::new(&plan_sizes);
    let mut fleet = Fleet::new()
        .concurrency(args.concurrency)
        .fail_fast(args.fail_fast)
        .connect_deadline(Duration::from_secs(args.connect_deadline));
    fleet = match &ui {
        Some(ui) => fleet.shared_sink(ui.clone()),
        None => fleet.sink(TerminalSink::new()),
    };
    if let Some(dir) = &args.log_dir {
        fleet = fleet.log_dir(dir);
    }

    let report = tokio::select! {
        r = fleet.provision(targets) => r,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the provision future cancels every VM and closes its session.
            if let Some(ui) = &ui {
                ui.abandon("interrupted");
            }
            eprintln!("fleet: interrupted");
            return ExitCode::from(130);
        }
    };
    if let Some(ui) = &ui {
        ui.finish(&report);
    }
    print_report(&report, ui.is_some());

    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            eprintln!("fleet: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.all_succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_report(report: &FleetReport, tty: bool) {
    println!();
    if tty {
        println!();
    }
    println!("{}", report.summary());
    // The table shows each error's first line; the stderr tails follow it.
    let detailed: Vec<_> = report
        .vms
        .iter()
        .filter_map(|v| Some((&v.name, v.error.as_ref()?)))
        .filter(|(_, e)| e.contains('\n'))
        .collect();
    for (name, error) in detailed {
        println!();
        println!("{name}: {error}");
    }
}

/// Reads a plan, prints its warnings and checks its local files.
async fn load_plan(path: &Path) -> Result<Plan, String> {
    let plan = Plan::load(path).await.map_err(|e| chain(&e))?;
    for w in plan.warnings() {
        eprintln!("fleet: warning: {w}");
    }
    plan.check_local_files().await.map_err(|e| chain(&e))?;
    Ok(plan)
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// The targets, each VM's step count, and the servers to keep alive.
type Prepared = (Vec<Target>, Vec<(String, usize)>, demo::Servers);

/// Targets for `--vmctl`: the plan's VMs that vmctl's state knows.
async fn vmctl_targets(plan: Option<&Path>, state: Option<&Path>) -> Result<Prepared, String> {
    // vmctl looks for VMFile.kdl in the current directory.
    let plan = load_plan(plan.unwrap_or(Path::new("VMFile.kdl"))).await?;
    let inventory = match state {
        Some(path) => Inventory::load(path).await,
        None => Inventory::load_default().await,
    }
    .map_err(|e| chain(&e))?;
    let targets = inventory.targets(&plan).map_err(|e| chain(&e))?;
    if targets.is_empty() {
        return Err(format!(
            "no vm of the plan has provision steps (vmctl state {})",
            inventory.path().display()
        ));
    }
    let sizes = targets
        .iter()
        .map(|t| (t.name().to_string(), t.steps().len()))
        .collect();
    Ok((targets, sizes, demo::Servers::default()))
}

/// Targets for `--plan` and `--host`.
async fn hosts_targets(args: &Args) -> Result<Prepared, String> {
    let Some(plan_path) = &args.plan else {
        return Err("--plan is required with --host".into());
    };
    let plan = load_plan(plan_path).await?;

    let mut seen = HashSet::new();
    for h in &args.hosts {
        if !seen.insert(h.name.as_str()) {
            return Err(format!("--host {} given twice", h.name));
        }
    }
    for vm in &plan.vms {
        if !seen.contains(vm.name.as_str()) {
            eprintln!(
                "fleet: note: vm \"{}\" of the plan has no --host, skipped",
                vm.name
            );
        }
    }

    let host_key = match (
        &args.known_hosts,
        &args.accept_new,
        args.insecure_accept_any,
    ) {
        (Some(p), _, _) => HostKeyPolicy::known_hosts(p),
        (_, Some(p), _) => HostKeyPolicy::accept_new(p),
        (_, _, true) => HostKeyPolicy::insecure_accept_any(),
        _ => HostKeyPolicy::default(),
    };
    let agent = std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty());

    let jump = match &args.jump {
        Some(j) => {
            let user = j
                .user
                .clone()
                .or_else(|| args.user.clone())
                .unwrap_or_else(|| vmssh::plan::DEFAULT_USER.to_string());
            let mut cfg = SshConfig::new(user)
                .host_key(host_key.clone())
                // One tunnel per VM session: as many as run at once.
                .max_channels(args.concurrency);
            if let Some(k) = &args.key {
                cfg = cfg.auth(Auth::key_file(k));
            }
            if agent {
                cfg = cfg.auth(Auth::agent());
            }
            let session = vmssh::Session::connect(&j.host, j.port, &cfg)
                .await
                .map_err(|e| format!("jump host {}:{}: {}", j.host, j.port, chain(&e)))?;
            Some(session)
        }
        None => None,
    };

    let mut targets = Vec::new();
    let mut sizes = Vec::new();
    for h in &args.hosts {
        let vm = plan.vm(&h.name);
        if vm.is_none() && plan.shared.is_empty() {
            let known: Vec<&str> = plan.vms.iter().map(|v| v.name.as_str()).collect();
            return Err(format!(
                "host {} matches no vm block of {} (it has: {}) and the plan has no top-level provision",
                h.name,
                plan_path.display(),
                known.join(", ")
            ));
        }
        let ssh = vm.map(|v| v.ssh.clone()).unwrap_or_default();
        // vmctl's default user when the plan names none.
        let user = args.user.clone().unwrap_or_else(|| {
            vm.map_or(vmssh::plan::DEFAULT_USER, |v| v.user())
                .to_string()
        });
        let mut cfg = SshConfig::new(user).host_key(host_key.clone());
        let key = args.key.clone().or(ssh.private_key);
        if let Some(k) = &key {
            cfg = cfg.auth(Auth::key_file(k));
        }
        if agent {
            cfg = cfg.auth(Auth::agent());
        }
        if key.is_none() && !agent {
            return Err(format!(
                "no way to authenticate to {}: pass --key, set ssh {{ private-key \"...\" }} in its vm block, or run an ssh-agent",
                h.name
            ));
        }
        let port = h.port.or(ssh.port).unwrap_or(22);
        let steps = plan.steps_for(&h.name);
        sizes.push((h.name.clone(), steps.len()));
        let mut target = Target::new(&h.name, &h.host, port, cfg, steps).base_dir(&plan.base_dir);
        if let Some(j) = &jump {
            target = target.via(j.clone());
        }
        targets.push(target);
    }
    Ok((targets, sizes, demo::Servers::default()))
}

/// Terminal UI: one bar per VM (as many as fit) above a fleet bar, output
/// lines printed above the bars. Every method is quick and synchronous, so
/// awaiting the sink costs nothing.
#[derive(Clone)]
struct Ui {
    mp: MultiProgress,
    state: Arc<Mutex<UiState>>,
}

struct UiState {
    overall: ProgressBar,
    /// VMs with a bar; finished ones keep theirs when every VM fits.
    bars: HashMap<String, ProgressBar>,
    /// Steps in each VM's plan.
    totals: HashMap<String, u64>,
    /// Steps done, per VM (kept when a VM has no bar yet).
    done: HashMap<String, u64>,
    /// The running step's description, per VM.
    current: HashMap<String, String>,
    /// VMs connecting or provisioning.
    running: HashSet<String>,
    finished: HashSet<String>,
    failed: usize,
    max_bars: usize,
    all_fit: bool,
    width: usize,
    color: bool,
    partial: HashMap<(String, usize, bool), Vec<u8>>,
}

const MAX_LINE: usize = 16 * 1024;

impl Ui {
    /// `None` when stderr is not a terminal: bars would not show, so plain
    /// prefixed lines are used instead.
    fn new(vms: &[(String, usize)]) -> Option<Arc<Ui>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(15));
        let rows = console::Term::stderr().size().0 as usize;
        let max_bars = (rows / 2).clamp(3, 30);
        let overall = mp.add(ProgressBar::new(vms.len() as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix:.bold} [{bar:30.green/white}] {pos}/{len} VMs done {wide_msg} {elapsed:.dim}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.set_prefix("fleet");
        overall.enable_steady_tick(Duration::from_millis(200));
        let width = vms.iter().map(|(n, _)| n.len()).max().unwrap_or(2);
        let ui = Arc::new(Ui {
            mp,
            state: Arc::new(Mutex::new(UiState {
                overall,
                bars: HashMap::new(),
                totals: vms.iter().map(|(n, t)| (n.clone(), *t as u64)).collect(),
                done: HashMap::new(),
                current: HashMap::new(),
                running: HashSet::new(),
                finished: HashSet::new(),
                failed: 0,
                max_bars,
                all_fit: vms.len() <= max_bars,
                width,
                color: console::colors_enabled_stderr(),
                partial: HashMap::new(),
            })),
        });
        // When every VM fits, bars appear in target order from the start.
        if let Ok(mut st) = ui.state.lock()
            && st.all_fit
        {
            for (name, _) in vms {
                if let Some(b) = ui.bar(&mut st, name) {
                    b.set_message("waiting");
                }
            }
        }
        Some(ui)
    }

    fn vm_style(width: usize) -> ProgressStyle {
        let template = format!(
            "{{spinner:.cyan}} {{prefix:>{width}.bold}} [{{bar:20.cyan/blue}}] {{pos}}/{{len}} {{wide_msg}}"
        );
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
    }

    /// The VM's bar, created when there is room.
    fn bar(&self, st: &mut UiState, vm: &str) -> Option<ProgressBar> {
        if let Some(b) = st.bars.get(vm) {
            return Some(b.clone());
        }
        let active = st.bars.values().filter(|b| !b.is_finished()).count();
        if st.finished.contains(vm)
            || active >= st.max_bars
            || (!st.all_fit && st.bars.len() >= st.max_bars)
        {
            return None;
        }
        let total = st.totals.get(vm).copied().unwrap_or(0);
        let pb = self.mp.insert_before(&st.overall, ProgressBar::new(total));
        pb.set_style(Self::vm_style(st.width));
        pb.set_prefix(vm.to_string());
        pb.set_position(st.done.get(vm).copied().unwrap_or(0));
        pb.enable_steady_tick(Duration::from_millis(100));
        st.bars.insert(vm.to_string(), pb.clone());
        Some(pb)
    }

    fn println(&self, st: &UiState, vm: &str, text: &str, style: Style) {
        let width = st.width;
        let line = if st.color {
            let (pre, post) = match style {
                Style::Plain => ("", ""),
                Style::Dim => ("\x1b[2m", "\x1b[0m"),
                Style::Err => ("\x1b[31m", "\x1b[0m"),
                Style::Ok => ("\x1b[32m", "\x1b[0m"),
            };
            format!("\x1b[36m{vm:>width$}\x1b[0m │ {pre}{text}{post}")
        } else {
            format!("{vm:>width$} │ {text}")
        };
        let _ = self.mp.println(line);
    }

    fn output(&self, st: &mut UiState, vm: &str, step: usize, err: bool, data: &[u8]) {
        let key = (vm.to_string(), step, err);
        let mut buf = st.partial.remove(&key).unwrap_or_default();
        buf.extend_from_slice(data);
        let mut start = 0;
        let mut lines = Vec::new();
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            lines.push(String::from_utf8_lossy(&buf[start..start + pos]).into_owned());
            start += pos + 1;
        }
        buf.drain(..start);
        if buf.len() >= MAX_LINE {
            lines.push(String::from_utf8_lossy(&buf).into_owned());
            buf.clear();
        }
        if !buf.is_empty() {
            st.partial.insert(key, buf);
        }
        for l in lines {
            self.output_line(st, vm, err, &l);
        }
    }

    fn output_line(&self, st: &UiState, vm: &str, err: bool, line: &str) {
        let line = line.trim_end_matches('\r');
        if err {
            self.println(st, vm, &format!("! {line}"), Style::Err);
        } else {
            self.println(st, vm, line, Style::Plain);
        }
    }

    fn flush(&self, st: &mut UiState, vm: &str, step: usize) {
        for err in [false, true] {
            if let Some(buf) = st.partial.remove(&(vm.to_string(), step, err)) {
                self.output_line(st, vm, err, &String::from_utf8_lossy(&buf));
            }
        }
    }

    fn overall_message(st: &UiState) {
        let running = st.running.len();
        let shown = st.bars.values().filter(|b| !b.is_finished()).count();
        let mut msg = format!("{running} running");
        if shown < running {
            msg.push_str(&format!(" ({shown} shown)"));
        }
        if st.failed > 0 {
            msg.push_str(&format!(", {} failed", st.failed));
        }
        st.overall.set_message(msg);
    }

    fn handle(&self, event: &Event) {
        let Ok(mut guard) = self.state.lock() else {
            return;
        };
        let st = &mut *guard;
        let vm = event.vm().to_string();
        match event {
            Event::Connecting { .. } => {
                st.running.insert(vm.clone());
                if let Some(b) = self.bar(st, &vm) {
                    b.set_message("connecting");
                }
            }
            Event::Connected { duration, .. } => {
                if let Some(b) = self.bar(st, &vm) {
                    b.set_message(format!("connected in {duration:.2?}"));
                }
            }
            Event::StepStarted {
                step,
                total,
                description,
                ..
            } => {
                self.println(
                    st,
                    &vm,
                    &format!("==> step {step}/{total}: {description}"),
                    Style::Dim,
                );
                st.current.insert(vm.clone(), description.clone());
                if let Some(b) = self.bar(st, &vm) {
                    b.set_length(*total as u64);
                    b.set_message(description.clone());
                }
            }
            Event::Output { step, chunk, .. } => {
                self.output(st, &vm, *step, chunk.is_stderr(), chunk.bytes());
            }
            Event::Upload { done, total, .. } => {
                if let Some(b) = self.bar(st, &vm) {
                    let current = st.current.get(&vm).cloned().unwrap_or_default();
                    if Some(*done) == *total {
                        // Uploaded: a script now runs.
                        b.set_message(current);
                    } else {
                        let total = total
                            .map(|t| format!("/{}", HumanBytes(t)))
                            .unwrap_or_default();
                        b.set_message(format!(
                            "{current} (uploading {}{total})",
                            HumanBytes(*done)
                        ));
                    }
                }
            }
            Event::StepFinished {
                step,
                status,
                ok,
                duration,
                ..
            } => {
                self.flush(st, &vm, *step);
                if *ok {
                    *st.done.entry(vm.clone()).or_default() += 1;
                    if let Some(b) = self.bar(st, &vm) {
                        b.inc(1);
                    }
                } else {
                    let what = status
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "error".into());
                    self.println(
                        st,
                        &vm,
                        &format!("<== step {step} failed ({what}) after {duration:.2?}"),
                        Style::Err,
                    );
                    if let Some(b) = self.bar(st, &vm) {
                        b.set_message(format!("✗ step {step} failed: {what}"));
                    }
                }
            }
            Event::VmFinished {
                ok,
                error,
                duration,
                ..
            } => {
                st.running.remove(&vm);
                st.finished.insert(vm.clone());
                st.overall.inc(1);
                if *ok {
                    self.println(st, &vm, &format!("succeeded in {duration:.2?}"), Style::Ok);
                } else {
                    st.failed += 1;
                    let first = error
                        .as_deref()
                        .and_then(|e| e.lines().next())
                        .unwrap_or("failed");
                    self.println(st, &vm, &format!("FAILED: {first}"), Style::Err);
                }
                if let Some(b) = st.bars.get(&vm).cloned() {
                    if st.all_fit {
                        if *ok {
                            b.finish_with_message(format!("✓ done in {duration:.2?}"));
                        } else if b.message().starts_with('✗') {
                            b.abandon();
                        } else {
                            let first = error
                                .as_deref()
                                .and_then(|e| e.lines().next())
                                .unwrap_or("failed");
                            b.abandon_with_message(format!("✗ {first}"));
                        }
                    } else {
                        // Make room for the VMs still waiting for a bar.
                        b.finish_and_clear();
                        self.mp.remove(&b);
                        st.bars.remove(&vm);
                    }
                }
            }
            _ => {}
        }
        Self::overall_message(st);
    }

    /// Closes the bars of VMs that never finished (cancelled by fail-fast).
    fn finish(&self, report: &FleetReport) {
        let Ok(st) = self.state.lock() else { return };
        for v in &report.vms {
            if let Some(b) = st.bars.get(&v.name)
                && !b.is_finished()
            {
                b.abandon_with_message(match v.outcome {
                    Outcome::Cancelled => "cancelled",
                    _ => "stopped",
                });
            }
        }
        let msg = if report.all_succeeded() {
            "all succeeded".to_string()
        } else {
            format!(
                "{} failed, {} cancelled",
                report.failed().len(),
                report.cancelled().len()
            )
        };
        st.overall.finish_with_message(msg);
    }

    fn abandon(&self, why: &'static str) {
        let Ok(st) = self.state.lock() else { return };
        for b in st.bars.values() {
            if !b.is_finished() {
                b.abandon_with_message(why);
            }
        }
        st.overall.abandon_with_message(why);
    }
}

#[derive(Clone, Copy)]
enum Style {
    Plain,
    Dim,
    Err,
    Ok,
}

impl Sink for Ui {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        self.handle(event);
        Box::pin(std::future::ready(()))
    }
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").finish_non_exhaustive()
    }
}

/// The demo: the plan in examples/plans/demo on embedded SSH servers.
mod demo {
    use super::*;
    use vmssh::provision::{ProvisionDef, StepKind};
    use vmssh::testkit::TestServer;

    /// Keeps the embedded servers and their directories until dropped.
    #[derive(Default)]
    pub(crate) struct Servers {
        _servers: Vec<TestServer>,
        _dir: Option<tempfile::TempDir>,
    }

    pub(crate) async fn targets(args: &Args) -> Result<Prepared, String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plans/demo/VMFile.kdl");
        let plan = load_plan(&path).await?;
        let dir = tempfile::Builder::new()
            .prefix("vmssh-demo-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;

        let width = args.vms.to_string().len().max(2);
        let mut servers = Vec::with_capacity(args.vms);
        let mut targets = Vec::with_capacity(args.vms);
        let mut sizes = Vec::with_capacity(args.vms);
        for i in 1..=args.vms {
            // The embedded VMs take the plan's vm blocks in turn.
            let block = &plan.vms[(i - 1) % plan.vms.len()];
            let name = format!("{}-{i:0width$}", block.name);
            // The servers share this machine: each gets its own directory,
            // and file destinations are placed under it.
            let root = dir.path().join(&name);
            std::fs::create_dir_all(&root)
                .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
            let server = TestServer::builder()
                .working_dir(&root)
                .env("HOSTNAME", &name)
                .start()
                .await
                .map_err(|e| format!("cannot start embedded server {name}: {e}"))?;
            let mut steps: Vec<ProvisionDef> = plan
                .steps_for(&block.name)
                .into_iter()
                .map(|s| under(&root, s))
                .collect();
            if args.break_vm.as_deref() == Some(name.as_str()) {
                steps.insert(
                    2,
                    ProvisionDef::inline(
                        "echo 'about to fail'; echo 'disk full (not really)' >&2; exit 3",
                    ),
                );
            }
            sizes.push((name.clone(), steps.len()));
            targets.push(
                Target::new(&name, server.host(), server.port(), server.config(), steps)
                    .base_dir(&plan.base_dir),
            );
            servers.push(server);
        }
        Ok((
            targets,
            sizes,
            Servers {
                _servers: servers,
                _dir: Some(dir),
            },
        ))
    }

    /// A file step's absolute destination moved under `root`.
    fn under(root: &Path, step: ProvisionDef) -> ProvisionDef {
        match step.kind() {
            StepKind::File {
                source,
                destination,
            } if destination.starts_with('/') => {
                let moved = root.join(destination.trim_start_matches('/'));
                ProvisionDef::file(source.clone(), moved.to_string_lossy().into_owned())
            }
            _ => step,
        }
    }
}

/// `--qemu N`: the demo plan on real QEMU guests, booted with
/// [`vmssh::testkit::qemu`] (the launcher the real-VM tests use).
mod qemu_vms {
    use super::*;
    use vmssh::testkit::qemu::{Guest, GuestSsh, Image};

    /// Builds (or reuses) the image, boots `n` guests, alternately running
    /// OpenSSH's sshd and dropbear, and targets them with the demo plan.
    /// The fleet connects while they boot.
    pub(crate) async fn targets(
        n: usize,
    ) -> Result<(Vec<Target>, Vec<(String, usize)>, Vec<Guest>), String> {
        if n == 0 {
            return Err("--qemu needs at least one VM".into());
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if n > cores {
            eprintln!(
                "fleet: note: {n} guests on {cores} cores: each guest emulates its CPU (TCG) and needs a core to boot in seconds"
            );
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        eprintln!("fleet: building or reusing the VM image (scripts/vm-image.sh)");
        let built = tokio::process::Command::new(root.join("scripts/vm-image.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .map_err(|e| format!("cannot run scripts/vm-image.sh: {e}"))?;
        if !built.status.success() {
            return Err(format!("scripts/vm-image.sh failed ({})", built.status));
        }
        let dir = String::from_utf8_lossy(&built.stdout).trim().to_string();
        let image = Image::open(&dir).map_err(|e| chain(&e))?;

        let path = root.join("examples/plans/demo/VMFile.kdl");
        let plan = Plan::load(&path).await.map_err(|e| chain(&e))?;
        plan.check_local_files().await.map_err(|e| chain(&e))?;

        let boots = (1..=n).map(|i| {
            let ssh = if i % 2 == 1 {
                GuestSsh::OpenSsh
            } else {
                GuestSsh::Dropbear
            };
            let name = format!("vm-{i}");
            let guest = image.guest().ssh(ssh).hostname(&name);
            async move { (name, ssh, guest.boot().await) }
        });
        let mut guests = Vec::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        let mut sizes = Vec::with_capacity(n);
        for (name, ssh, booted) in futures::future::join_all(boots).await {
            let guest = booted.map_err(|e| format!("cannot boot {name}: {}", chain(&e)))?;
            eprintln!(
                "fleet: {name}: QEMU pid {} running {ssh:?}, ssh on {}:{}",
                guest.pid().unwrap_or(0),
                guest.host(),
                guest.port()
            );
            let steps = plan.steps_for(&name);
            sizes.push((name.clone(), steps.len()));
            targets.push(
                Target::new(&name, guest.host(), guest.port(), guest.config(), steps)
                    .base_dir(&plan.base_dir),
            );
            guests.push(guest);
        }
        Ok((targets, sizes, guests))
    }
}
