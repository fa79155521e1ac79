//! Side-by-side benchmarks: vmssh vs OpenSSH's client binaries (`ssh`,
//! `sftp`, `scp`: the practical ceiling) vs the old blocking design
//! (libssh2 + spawn_blocking + 50 ms polling, rebuilt in
//! `benches/old-design`), all against the same loopback sshd.
//!
//! ```text
//! cargo bench -p vmssh-benches --bench compare                             # full run
//! cargo bench -p vmssh-benches --bench compare -- --quick                  # smaller, for CI
//! cargo bench -p vmssh-benches --bench compare -- --scenario sftp_upload --rounds 5
//! cargo bench -p vmssh-benches --bench compare -- --no-old                 # skip the libssh2 build
//! cargo bench -p vmssh-benches --bench compare -- --rtt 2,20,50            # + the rtt_* scenarios through a delaying relay
//! cargo bench -p vmssh-benches --bench compare -- --scenario rtt_upload --rtt 50 --upload-variant channels=2
//!                                                                          # the upload's variant row: other settings
//! ```
//!
//! Each scenario runs every contender once per round, in rotating order,
//! for several rounds; the table shows medians. Every contender runs in its
//! own process (vmssh: this binary re-executed with `--child`), so that CPU
//! time and peak RSS are its own. Results also go to
//! `target/bench-report.json` (and the table to `target/bench-report.txt`).
//! See BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "compare/child.rs"]
mod child;
#[path = "compare/fleet_cost.rs"]
mod fleet_cost;
#[path = "compare/fleet_testkit.rs"]
mod fleet_testkit;
#[path = "compare/measure.rs"]
mod measure;
#[path = "compare/peers.rs"]
mod peers;
#[path = "compare/rtt.rs"]
mod rtt;
#[path = "compare/sshd.rs"]
mod sshd;
#[path = "compare/vm_wake.rs"]
mod vm_wake;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use support::{relay, sshd_config};

use crate::measure::{LatencyMeter, SlowConsumer};
use crate::sshd::{HOST, Keys, Sshd};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const AES: &str = "aes128-gcm@openssh.com";
const CHACHA: &str = "chacha20-poly1305@openssh.com";

// ---------------------------------------------------------------------------
// Command line

#[derive(Debug)]
struct Opts {
    quick: bool,
    rounds: Option<usize>,
    scenarios: Vec<String>,
    old: bool,
    /// `--rtt`: round-trip times (ms) for the `rtt_*` scenarios.
    rtts: Vec<u64>,
    /// `--peers`: the peers to run (default: all).
    peers: Vec<&'static str>,
    /// `--upload-variant k=v,...`: the settings of `rtt_upload`'s variant
    /// row (default `channels=1`: the one-channel upload).
    upload_variant: Vec<(String, String)>,
}

const SCENARIOS: &[&str] = &[
    "stdout_throughput",
    "delivery_latency_p99",
    "slow_consumer_rss",
    "sftp_upload",
    "sftp_download",
    "connect_wake",
    "concurrent_sessions",
    "fleet",
    "fleet_server_cost",
    "rtt_stdout",
    "rtt_upload",
    "rtt_download",
    "rtt_small_steps",
    "fleet_testkit",
    "vm_wake",
];

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--child") {
        let scenario = argv.get(1).cloned().unwrap_or_default();
        if let Err(e) = child::main(&scenario, &child::Args::parse(&argv[2..])) {
            eprintln!("vmssh child: {scenario}: {e}");
            std::process::exit(1);
        }
        return;
    }
    // The relay's own figures, without servers or contenders.
    if argv.first().map(String::as_str) == Some("--relay-selftest") {
        rtt::relay_selftest(&argv[1..]);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs the
    // binary bare. Minutes of benchmarking are not a test: say so and stop.
    if argv.is_empty() {
        eprintln!(
            "compare: a benchmark; run it with `cargo bench -p vmssh-benches --bench compare [-- --quick]`"
        );
        return;
    }
    let mut opts = Opts {
        quick: false,
        rounds: None,
        scenarios: Vec::new(),
        old: true,
        rtts: Vec::new(),
        peers: peers::parse("all").unwrap_or_default(),
        upload_variant: vec![("channels".to_string(), "1".to_string())],
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--no-old" => opts.old = false,
            "--rounds" => opts.rounds = it.next().and_then(|v| v.parse().ok()),
            "--peers" => match peers::parse(it.next().map_or("", String::as_str)) {
                Ok(p) => opts.peers = p,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            },
            "--rtt" => opts.rtts.extend(
                it.next()
                    .into_iter()
                    .flat_map(|v| v.split(',').filter_map(|r| r.trim().parse::<u64>().ok())),
            ),
            "--upload-variant" => {
                let v = it.next().map_or("", String::as_str);
                let pairs: Option<Vec<_>> = v
                    .split(',')
                    .map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect();
                match pairs {
                    Some(p) if !v.is_empty() => opts.upload_variant = p,
                    _ => {
                        eprintln!(
                            "--upload-variant takes KEY=VALUE[,KEY=VALUE...], such as channels=2"
                        );
                        std::process::exit(2);
                    }
                }
            }
            "--scenario" => opts.scenarios.extend(
                it.next()
                    .into_iter()
                    .flat_map(|v| v.split(',').map(str::to_string)),
            ),
            // Passed by `cargo bench`; filters are not used here.
            "--bench" => {}
            other if other.starts_with('-') => {
                eprintln!(
                    "unknown option {other}; scenarios: {}",
                    SCENARIOS.join(", ")
                );
                std::process::exit(2);
            }
            _ => {}
        }
    }
    for s in &opts.scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            eprintln!("unknown scenario {s}; scenarios: {}", SCENARIOS.join(", "));
            std::process::exit(2);
        }
    }
    run(opts);
}

// ---------------------------------------------------------------------------
// Results

#[derive(Clone, Copy, Debug, PartialEq)]
enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Copy, Debug)]
enum Goal {
    /// No target: a measurement to learn from.
    Info,
    /// vmssh at least this fraction of OpenSSH's figure (higher is better).
    AtLeastOpenssh(f64),
    /// vmssh below this absolute value.
    Below(f64),
}

#[derive(Debug)]
struct Row {
    scenario: String,
    unit: &'static str,
    vmssh: Option<f64>,
    openssh: Option<f64>,
    old: Option<f64>,
    /// The peers' figures, by column name.
    peers: Vec<(&'static str, Option<f64>)>,
    better: Better,
    goal: Goal,
}

impl Row {
    fn new(scenario: impl Into<String>, unit: &'static str, better: Better, goal: Goal) -> Row {
        Row {
            scenario: scenario.into(),
            unit,
            vmssh: None,
            openssh: None,
            old: None,
            peers: Vec::new(),
            better,
            goal,
        }
    }

    /// The median of `key` (scaled by `f`) for each of `names` in `res`.
    fn peers_from(
        mut self,
        names: &[&'static str],
        res: &HashMap<&str, Vec<Sample>>,
        key: &str,
        f: impl Fn(f64) -> f64,
    ) -> Row {
        for n in names {
            self.peers.push((n, med(res, n, key).map(&f)));
        }
        self
    }

    fn peer(&self, name: &str) -> Option<f64> {
        self.peers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }

    /// The best peer's figure on this row among `columns`, and its name.
    fn best_peer(&self, columns: &[&'static str]) -> Option<(&'static str, f64)> {
        columns
            .iter()
            .filter_map(|n| Some((*n, self.peer(n).filter(|v| v.is_finite())?)))
            .reduce(|a, b| {
                let b_better = match self.better {
                    Better::Higher => b.1 > a.1,
                    Better::Lower => b.1 < a.1,
                };
                if b_better { b } else { a }
            })
    }

    fn vals(mut self, vmssh: Option<f64>, openssh: Option<f64>, old: Option<f64>) -> Row {
        self.vmssh = vmssh;
        self.openssh = openssh;
        self.old = old;
        self
    }

    fn target_text(&self) -> String {
        match self.goal {
            Goal::Info => "-".to_string(),
            Goal::AtLeastOpenssh(x) => format!(">= {x}x openssh"),
            Goal::Below(x) => format!("< {x} {}", self.unit),
        }
    }

    fn verdict(&self) -> &'static str {
        let Some(v) = self.vmssh else {
            return if matches!(self.goal, Goal::Info) {
                "-"
            } else {
                "n/a"
            };
        };
        match self.goal {
            Goal::Info => "-",
            Goal::AtLeastOpenssh(x) => match self.openssh {
                Some(o) if v >= x * o => "met",
                Some(_) => "MISSED",
                None => "n/a",
            },
            Goal::Below(x) => {
                if v < x {
                    "met"
                } else {
                    "MISSED"
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    /// Peer columns (those `--peers` selected), in order.
    peer_columns: Vec<&'static str>,
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() && v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "-".to_string(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    }
}

impl Report {
    fn table(&self) -> String {
        let peers = &self.peer_columns;
        let mut header: Vec<String> = ["scenario", "unit", "better", "vmssh", "openssh", "old"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        header.extend(peers.iter().map(|p| p.to_string()));
        header.extend(["vs openssh", "vs old"].map(String::from));
        if !peers.is_empty() {
            header.push("vs best peer".into());
        }
        header.extend(["target", "verdict"].map(String::from));
        // Right-aligned: the figures and ratios.
        let numeric = 3..header.len() - 2;
        let mut lines: Vec<Vec<String>> = vec![header.clone()];
        for r in &self.rows {
            let mut l = vec![
                r.scenario.clone(),
                r.unit.to_string(),
                if r.better == Better::Higher {
                    "higher"
                } else {
                    "lower"
                }
                .to_string(),
                fmt_num(r.vmssh),
                fmt_num(r.openssh),
                fmt_num(r.old),
            ];
            l.extend(peers.iter().map(|p| fmt_num(r.peer(p))));
            l.push(ratio(r.vmssh, r.openssh));
            l.push(ratio(r.vmssh, r.old));
            if !peers.is_empty() {
                l.push(match r.best_peer(peers) {
                    Some((name, v)) => format!("{} ({name})", ratio(r.vmssh, Some(v))),
                    None => "-".into(),
                });
            }
            l.push(r.target_text());
            l.push(r.verdict().to_string());
            lines.push(l);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (n, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if numeric.contains(&i) {
                        format!("{c:>w$}", w = widths[i])
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
            if n == 0 {
                let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                let _ = writeln!(out, "|-{}-|", dashes.join("-|-"));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }

    fn json(&self) -> String {
        let num = |v: Option<f64>| match v {
            Some(v) if v.is_finite() => format!("{v}"),
            _ => "null".to_string(),
        };
        let items: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let peers: String = self
                    .peer_columns
                    .iter()
                    .map(|p| format!(", \"{p}\": {}", num(r.peer(p))))
                    .collect();
                format!(
                    "  {{\"scenario\": \"{}\", \"unit\": \"{}\", \"vmssh\": {}, \"openssh\": {}, \"old\": {}{peers}, \"better\": \"{}\"}}",
                    r.scenario.replace('"', "'"),
                    r.unit,
                    num(r.vmssh),
                    num(r.openssh),
                    num(r.old),
                    if r.better == Better::Higher { "higher" } else { "lower" },
                )
            })
            .collect();
        format!("[\n{}\n]\n", items.join(",\n"))
    }
}

// ---------------------------------------------------------------------------
// Running contenders

/// One run's numbers: what the contender printed (`RESULT name value`) or
/// what the harness measured, plus `wait4` figures of the process.
type Sample = HashMap<String, f64>;

/// CPU seconds and peak RSS of a finished child, from `wait4` (which also
/// counts the descendants it waited for: `sftp`'s `ssh`).
#[derive(Debug, Default, Clone, Copy)]
struct Reaped {
    ok: bool,
    cpu: f64,
    max_rss_kib: u64,
}

fn reap(child: &Child) -> Reaped {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes into the two locals.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: as above; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Reaped::default();
    }
    Reaped {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        cpu: measure::tv_secs(ru.ru_utime) + measure::tv_secs(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
    }
}

/// Reads a contender's `RESULT` lines until it exits, then reaps it.
fn collect(mut child: Child, label: &str) -> Option<(HashMap<String, String>, Reaped)> {
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        let _ = so.read_to_string(&mut out);
    }
    let reaped = reap(&child);
    if !reaped.ok {
        eprintln!("    {label}: failed");
        return None;
    }
    let map = out
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("RESULT ")?.splitn(2, ' ');
            Some((f.next()?.to_string(), f.next()?.trim().to_string()))
        })
        .collect();
    Some((map, reaped))
}

fn numeric(map: &HashMap<String, String>) -> Sample {
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.parse::<f64>().ok()?)))
        .collect()
}

fn median(samples: &[Sample], key: &str) -> Option<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.get(key).copied())
        .filter(|v| v.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

type RunFn<'a> = Box<dyn FnMut() -> Option<Sample> + 'a>;

/// Runs every contender once per round, rotating who goes first, and
/// returns each one's samples (failed runs are left out).
fn rounds<'a>(
    title: &str,
    n: usize,
    contenders: Vec<(&'a str, RunFn<'a>)>,
    show: &str,
) -> HashMap<&'a str, Vec<Sample>> {
    let mut out: HashMap<&str, Vec<Sample>> = HashMap::new();
    let mut contenders = contenders;
    let len = contenders.len();
    for r in 0..n {
        for i in 0..len {
            let idx = (i + r) % len;
            let (name, f) = &mut contenders[idx];
            let name: &'a str = name;
            if let Some(s) = f() {
                eprintln!(
                    "  {title} round {}/{n} {name}: {show} = {}",
                    r + 1,
                    s.get(show).map_or("?".to_string(), |v| format!("{v:.3}"))
                );
                out.entry(name).or_default().push(s);
            } else {
                eprintln!("  {title} round {}/{n} {name}: failed", r + 1);
            }
        }
    }
    out
}

/// "name min-max" of `key` for every contender, for the notes: how far
/// apart the rounds were.
fn spread(title: &str, results: &HashMap<&str, Vec<Sample>>, order: &[&str], key: &str) -> String {
    let parts: Vec<String> = order
        .iter()
        .filter_map(|name| {
            let v: Vec<f64> = results
                .get(name)?
                .iter()
                .filter_map(|s| s.get(key).copied())
                .collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some(format!(
                "{name} {}-{}",
                fmt_num(Some(lo)),
                fmt_num(Some(hi))
            ))
        })
        .collect();
    format!("{title} {key} range over rounds: {}", parts.join(", "))
}

/// `base` contenders followed by `peers`, for the notes.
fn and_peers<'a>(base: &[&'a str], peers: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(peers).copied().collect()
}

fn med(results: &HashMap<&str, Vec<Sample>>, name: &str, key: &str) -> Option<f64> {
    results.get(name).and_then(|s| median(s, key))
}

// ---------------------------------------------------------------------------
// The environment: keys, servers, data, contenders' commands

struct Env {
    quick: bool,
    rounds: Option<usize>,
    /// RTTs (ms) of the `rtt_*` scenarios.
    rtts: Vec<u64>,
    /// Settings of `rtt_upload`'s variant row.
    upload_variant: Vec<(String, String)>,
    keys: Keys,
    data: PathBuf,
    host_key_file: PathBuf,
    exe: PathBuf,
    main: Sshd,
    chacha: Sshd,
    old_bin: Option<PathBuf>,
    /// The peers that were built or installed.
    peers: peers::Peers,
    /// Peak RSS of `ssh ... true`: the baseline for OpenSSH's RSS growth.
    ssh_base_kib: u64,
    /// CPU seconds of `ssh ... true`.
    ssh_base_cpu: f64,
    /// Wall time, CPU and peak RSS of an `sftp -b` batch that transfers
    /// nothing.
    sftp_base: (f64, f64, u64),
    /// Wall time of an `scp` of an empty file.
    scp_base: f64,
    _tmp: tempfile::TempDir,
}

impl Env {
    fn rounds(&self, full: usize, quick: usize) -> usize {
        self.rounds.unwrap_or(if self.quick { quick } else { full })
    }

    /// How the contenders log in to the bench's sshds.
    fn login(&self) -> peers::Login<'_> {
        peers::Login {
            user: &self.keys.user,
            key: &self.keys.client_key,
            host_key_file: &self.host_key_file,
        }
    }

    fn vmssh(&self, scenario: &str, ports: &[u16], extra: &[(&str, String)]) -> Command {
        self.vmssh_as(&self.login(), scenario, ports, extra)
    }

    fn vmssh_as(
        &self,
        login: &peers::Login<'_>,
        scenario: &str,
        ports: &[u16],
        extra: &[(&str, String)],
    ) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("--child").arg(scenario);
        c.arg("--user").arg(login.user);
        c.arg("--key").arg(login.key);
        c.arg("--host-key").arg(login.host_key_file);
        c.arg("--ports").arg(join_ports(ports));
        for (k, v) in extra {
            c.arg(format!("--{k}")).arg(v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        c
    }

    fn old(&self, scenario: &str, ports: &[u16], extra: &[(&str, String)]) -> Option<Command> {
        self.old_as(&self.login(), scenario, ports, extra)
    }

    fn old_as(
        &self,
        login: &peers::Login<'_>,
        scenario: &str,
        ports: &[u16],
        extra: &[(&str, String)],
    ) -> Option<Command> {
        let mut c = Command::new(self.old_bin.as_ref()?);
        c.arg(scenario);
        c.arg("--host").arg(HOST);
        c.arg("--user").arg(login.user);
        c.arg("--key").arg(login.key);
        c.arg("--ports").arg(join_ports(ports));
        for (k, v) in extra {
            c.arg(format!("--{k}")).arg(v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Some(c)
    }

    /// `peer`'s command for `scenario`, or `None` when it is not ready.
    fn peer(
        &self,
        peer: &str,
        scenario: &str,
        ports: &[u16],
        extra: &[(&str, String)],
    ) -> Option<Command> {
        self.peers
            .command(peer, scenario, &self.login(), ports, extra)
    }

    /// A contender closure for each ready peer of `scenario`, run with the
    /// arguments `extra()` gives.
    fn peer_contenders<'a>(
        &'a self,
        scenario: &'a str,
        ports: &'a [u16],
        extra: impl Fn() -> Vec<(&'static str, String)> + Clone + 'a,
        after: impl Fn() + Clone + 'a,
    ) -> Vec<(&'static str, RunFn<'a>)> {
        self.peers
            .for_scenario(scenario)
            .into_iter()
            .map(|p| {
                let (extra, after) = (extra.clone(), after.clone());
                let f: RunFn<'a> = Box::new(move || {
                    let s = run_child(self.peer(p, scenario, ports, &extra()), p);
                    after();
                    s
                });
                (p, f)
            })
            .collect()
    }

    fn common_opts(&self, c: &mut Command) {
        c.args(["-F", "/dev/null", "-q", "-i"])
            .arg(&self.keys.client_key);
        for o in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "LogLevel=ERROR",
        ] {
            c.arg("-o").arg(o);
        }
    }

    fn ssh(&self, port: u16, opts: &[&str], remote: &str) -> Command {
        let mut c = Command::new("ssh");
        self.common_opts(&mut c);
        c.arg("-p").arg(port.to_string()).args(opts);
        c.arg(format!("{}@{HOST}", self.keys.user)).arg(remote);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        c
    }

    fn sftp_batch(&self, port: u16, batch: &str) -> Command {
        let file = self.data.join(format!("batch-{}", rand::random::<u32>()));
        std::fs::write(&file, batch).unwrap();
        let mut c = Command::new("sftp");
        self.common_opts(&mut c);
        c.arg("-P")
            .arg(port.to_string())
            .args(["-c", AES, "-b"])
            .arg(&file);
        c.arg(format!("{}@{HOST}", self.keys.user));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        c
    }

    fn scp(&self, port: u16, from: &str, to: &str) -> Command {
        let mut c = Command::new("scp");
        self.common_opts(&mut c);
        c.arg("-P")
            .arg(port.to_string())
            .args(["-c", AES])
            .arg(from)
            .arg(to);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        c
    }

    fn remote(&self, path: &Path) -> String {
        format!("{}@{HOST}:{}", self.keys.user, path.display())
    }
}

fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs a contender child process and returns its numbers.
fn run_child(cmd: Option<Command>, label: &str) -> Option<Sample> {
    let mut cmd = cmd?;
    let machine0 = measure::machine_cpu_secs();
    let child = cmd.spawn().ok()?;
    let (map, reaped) = collect(child, label)?;
    let mut s = numeric(&map);
    s.insert("process_cpu".into(), reaped.cpu);
    s.insert("machine_cpu".into(), measure::machine_cpu_secs() - machine0);
    Some(s)
}

/// Runs a command to completion, timing it from spawn to exit.
fn run_timed(mut cmd: Command) -> Option<(f64, Reaped)> {
    let start = Instant::now();
    let child = cmd.spawn().ok()?;
    let r = reap(&child);
    let secs = start.elapsed().as_secs_f64();
    r.ok.then_some((secs, r))
}

/// Starts `ssh`, hands its stdout to `read`, reaps it.
fn run_ssh<T>(mut cmd: Command, read: impl FnOnce(&mut dyn Read) -> T) -> Option<(T, Reaped)> {
    let mut child = cmd.spawn().ok()?;
    let mut so = child.stdout.take()?;
    let t = read(&mut so);
    drop(so);
    let r = reap(&child);
    r.ok.then_some((t, r))
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn setup(opts: &Opts) -> Env {
    for bin in [sshd::SSHD, "/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
        if !Path::new(bin).exists() {
            eprintln!(
                "compare: {bin} is missing (Debian: apt-get install openssh-server openssh-client; scripts/test.sh installs them)"
            );
            std::process::exit(1);
        }
    }
    // Data on tmpfs when there is one: the bench measures SSH, not the disk.
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let tmp = tempfile::Builder::new()
        .prefix("vmssh-bench-")
        .tempdir_in(base)
        .unwrap();
    let keys = Keys::create(tmp.path());
    let host_key_file = tmp.path().join("host_key_line");
    std::fs::write(&host_key_file, &keys.host_key_line).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let main = Sshd::start(&keys, None, &[]);
    // Both sides of the cipher comparison are pinned by the server.
    let chacha = Sshd::start(&keys, None, &[&format!("Ciphers {CHACHA}")]);
    let exe = std::env::current_exe().unwrap();
    let old_bin = if opts.old { build_old(&exe) } else { None };
    let target = exe.parent().and_then(Path::parent).and_then(Path::parent);
    let peers = match target {
        Some(t) => peers::Peers::setup(opts.peers.clone(), t, |s| opts.wanted(s)),
        None => peers::Peers::default(),
    };
    let mut env = Env {
        quick: opts.quick,
        rounds: opts.rounds,
        rtts: if opts.rtts.is_empty() {
            rtt::DEFAULT_RTTS.to_vec()
        } else {
            opts.rtts.clone()
        },
        upload_variant: opts.upload_variant.clone(),
        keys,
        data,
        host_key_file,
        exe,
        main,
        chacha,
        old_bin,
        peers,
        ssh_base_kib: 0,
        ssh_base_cpu: 0.0,
        sftp_base: (0.0, 0.0, 0),
        scp_base: 0.0,
        _tmp: tmp,
    };
    // Baselines for OpenSSH's clients: a connection that moves nothing.
    let port = env.main.port;
    let (mut ssh_rss, mut ssh_cpu) = (Vec::new(), Vec::new());
    let (mut sftp_secs, mut sftp_cpu, mut sftp_rss, mut scp_secs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let empty = env.data.join("empty");
    std::fs::write(&empty, b"").unwrap();
    for _ in 0..3 {
        if let Some((_, r)) = run_ssh(env.ssh(port, &["-c", AES], "true"), |_| ()) {
            ssh_rss.push(r.max_rss_kib as f64);
            ssh_cpu.push(r.cpu);
        }
        if let Some((s, r)) = run_timed(env.sftp_batch(port, "pwd\n")) {
            sftp_secs.push(s);
            sftp_cpu.push(r.cpu);
            sftp_rss.push(r.max_rss_kib as f64);
        }
        let to = env.remote(&env.data.join("empty.copy"));
        if let Some((s, _)) = run_timed(env.scp(port, &empty.display().to_string(), &to)) {
            scp_secs.push(s);
        }
    }
    env.ssh_base_kib = median_of(ssh_rss) as u64;
    env.ssh_base_cpu = median_of(ssh_cpu);
    env.sftp_base = (
        median_of(sftp_secs),
        median_of(sftp_cpu),
        median_of(sftp_rss) as u64,
    );
    env.scp_base = median_of(scp_secs);
    env
}

/// Builds the old-design contender (libssh2, vendored OpenSSL) into
/// `target/old-design`; `None` with a message when it cannot be built.
fn build_old(exe: &Path) -> Option<PathBuf> {
    // exe: <target>/release/deps/compare-<hash>
    let target = exe.parent()?.parent()?.parent()?.to_path_buf();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("old-design/Cargo.toml");
    let target_dir = target.join("old-design");
    let bin = target_dir.join("release/old-ssh-bench");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "compare: building the old-design contender (first build compiles libssh2 and OpenSSL: minutes)"
    );
    let log = target.join("old-design-build.log");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&log)
                .ok()
                .map_or(Stdio::null(), Stdio::from),
        )
        .status();
    match status {
        Ok(s) if s.success() && bin.exists() => Some(bin),
        _ => {
            eprintln!(
                "compare: the old-design contender could not be built (see {}); its column will be empty",
                log.display()
            );
            None
        }
    }
}

impl Opts {
    /// Loopback scenarios run unless others are named; the `rtt_*` ones
    /// when named or when `--rtt` is given.
    fn wanted(&self, s: &str) -> bool {
        self.scenarios.iter().any(|w| w == s)
            || (self.scenarios.is_empty() && (!s.starts_with("rtt_") || !self.rtts.is_empty()))
    }
}

fn run(opts: Opts) {
    let wanted = |s: &str| opts.wanted(s);
    let started = Instant::now();
    let env = setup(&opts);
    let mut report = Report {
        peer_columns: opts.peers.clone(),
        ..Report::default()
    };
    report.notes.extend(env.peers.notes.iter().cloned());
    if env.old_bin.is_none() {
        report.notes.push(
            "old: not built (--no-old, or the libssh2/OpenSSL build failed); its column is empty"
                .into(),
        );
    }
    report.notes.push(format!(
        "mode: {}; data on {}",
        if opts.quick { "--quick" } else { "full" },
        env.data
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("?"))
            .display()
    ));
    report
        .notes
        .push(format!("load average at start: {}", loadavg()));
    cipher_probe(&env, &mut report);
    type Scenario = fn(&Env, &mut Report);
    let all: [(&str, Scenario); 15] = [
        ("stdout_throughput", stdout_throughput),
        ("delivery_latency_p99", delivery_latency),
        ("slow_consumer_rss", slow_consumer),
        ("sftp_upload", sftp_upload),
        ("sftp_download", sftp_download),
        ("connect_wake", connect_wake),
        ("concurrent_sessions", concurrent_sessions),
        ("fleet", fleet),
        ("fleet_server_cost", fleet_cost::fleet_server_cost),
        ("fleet_testkit", fleet_testkit::fleet_testkit),
        ("rtt_stdout", rtt::rtt_stdout),
        ("rtt_upload", rtt::rtt_upload),
        ("rtt_download", rtt::rtt_download),
        ("rtt_small_steps", rtt::rtt_small_steps),
        ("vm_wake", vm_wake::vm_wake),
    ];
    if all.iter().any(|(n, _)| n.starts_with("rtt_") && wanted(n)) {
        rtt::relay_notes(&env, &mut report);
    }
    for (name, f) in all {
        if wanted(name) {
            let t = Instant::now();
            eprintln!("== {name}");
            f(&env, &mut report);
            eprintln!("== {name} took {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    report.notes.push(format!(
        "total bench time {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    let table = report.table();
    println!("\n{table}");
    let target = env
        .exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent);
    if let Some(target) = target {
        let json = target.join("bench-report.json");
        if std::fs::write(&json, report.json()).is_ok() {
            eprintln!("wrote {}", json.display());
        }
        let _ = std::fs::write(target.join("bench-report.txt"), &table);
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews
/// every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Which cipher vmssh negotiates with sshd's defaults (from sshd's debug log).
fn cipher_probe(env: &Env, report: &mut Report) {
    let probe = Sshd::start(&env.keys, None, &["LogLevel DEBUG1"]);
    let ok = run_child(Some(env.vmssh("connect_wake", &[probe.port], &[])), "probe").is_some();
    std::thread::sleep(Duration::from_millis(200));
    let log = probe.log();
    let cipher = log
        .lines()
        .find_map(|l| l.split("kex: client->server cipher: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("unknown");
    report.notes.push(format!(
        "vmssh negotiated cipher with a default sshd: {cipher}{}",
        if ok { "" } else { " (probe failed)" }
    ));
}

// ---------------------------------------------------------------------------
// Scenarios

fn mib(quick: bool, full: u64, q: u64) -> u64 {
    if quick { q * MIB } else { full * MIB }
}

fn stdout_throughput(env: &Env, report: &mut Report) {
    let bytes = mib(env.quick, 256, 64);
    let (port, chacha) = (env.main.port, env.chacha.port);
    let b = || ("bytes", bytes.to_string());
    let vm = move |port: u16, extra: Vec<(&'static str, String)>| -> RunFn<'_> {
        Box::new(move || {
            let mut x = vec![b()];
            x.extend(extra.clone());
            run_child(Some(env.vmssh("stdout_throughput", &[port], &x)), "vmssh")
        })
    };
    let ssh = |port: u16, cipher: &'static str| -> RunFn<'_> {
        Box::new(move || ssh_stdout(env, port, cipher, bytes))
    };
    let old: RunFn<'_> =
        Box::new(|| run_child(env.old("stdout_throughput", &[port], &[b()]), "old"));
    let kv = |k: &'static str, v: u64| (k, v.to_string());
    let ports = [port];
    let peer_names = env.peers.for_scenario("stdout_throughput");
    let mut contenders: Vec<(&str, RunFn<'_>)> = vec![
        ("vmssh", vm(port, vec![])),
        ("ssh", ssh(port, AES)),
        ("old", old),
        ("win8m", vm(port, vec![kv("window", 8 * MIB)])),
        ("win16m", vm(port, vec![kv("window", 16 * MIB)])),
        ("pkt64k", vm(port, vec![kv("packet", 64 * 1024)])),
        (
            "win16m_pkt64k",
            vm(port, vec![kv("window", 16 * MIB), kv("packet", 64 * 1024)]),
        ),
        ("nodelay_off", vm(port, vec![kv("nodelay", 0)])),
        (
            "multi_thread",
            vm(port, vec![("rt", "multi_thread".into())]),
        ),
        ("vmssh_chacha", vm(chacha, vec![])),
        ("ssh_chacha", ssh(chacha, CHACHA)),
    ];
    contenders.extend(env.peer_contenders("stdout_throughput", &ports, move || vec![b()], || {}));
    let res = rounds("stdout_throughput", env.rounds(5, 3), contenders, "mbps");
    report.notes.push(spread(
        "stdout_throughput",
        &res,
        &and_peers(&["vmssh", "ssh", "old"], &peer_names),
        "mbps",
    ));
    let m = |n: &str, k: &str| med(&res, n, k);
    let ssh_mbps = m("ssh", "mbps");
    report.rows.push(
        Row::new(
            "stdout_throughput",
            "MB/s",
            Better::Higher,
            Goal::AtLeastOpenssh(0.9),
        )
        .vals(m("vmssh", "mbps"), ssh_mbps, m("old", "mbps"))
        .peers_from(&peer_names, &res, "mbps", |v| v),
    );
    let per_gib = |n: &str| m(n, "cpu").map(|c| c * GIB / bytes as f64);
    report.rows.push(
        Row::new(
            "stdout_throughput client CPU",
            "s/GiB",
            Better::Lower,
            Goal::Info,
        )
        .vals(per_gib("vmssh"), per_gib("ssh"), per_gib("old"))
        .peers_from(&peer_names, &res, "cpu", |c| c * GIB / bytes as f64),
    );
    for (name, label) in [
        ("win8m", "window=8MiB"),
        ("win16m", "window=16MiB"),
        ("pkt64k", "packet=64KiB"),
        ("win16m_pkt64k", "window=16MiB,packet=64KiB"),
        ("nodelay_off", "nodelay=off"),
        ("multi_thread", "runtime=multi_thread(2)"),
    ] {
        report.rows.push(
            Row::new(
                format!("stdout_throughput[{label}]"),
                "MB/s",
                Better::Higher,
                Goal::Info,
            )
            .vals(m(name, "mbps"), ssh_mbps, None),
        );
    }
    report.rows.push(
        Row::new(
            "stdout_throughput[chacha20-poly1305]",
            "MB/s",
            Better::Higher,
            Goal::Info,
        )
        .vals(m("vmssh_chacha", "mbps"), m("ssh_chacha", "mbps"), None),
    );
    report.rows.push(
        Row::new(
            "stdout_throughput[chacha20-poly1305] client CPU",
            "s/GiB",
            Better::Lower,
            Goal::Info,
        )
        .vals(per_gib("vmssh_chacha"), per_gib("ssh_chacha"), None),
    );
    report.notes.push(format!(
        "stdout_throughput: {} MiB; openssh = `ssh -c {AES}` (same cipher as vmssh) to /dev/null; MB/s from the remote \
         command's start (it prints the time) to the client having all bytes (ssh: exiting); client CPU of the ssh \
         process minus that of `ssh true`, of the transfer only for vmssh and old; \
         vmssh defaults: window 16 MiB, packet 32 KiB, nodelay on, current_thread runtime; \
         [chacha20-poly1305] rows use an sshd restricted to that cipher",
        bytes / MIB
    ));
}

/// `ssh` running the throughput command, stdout to /dev/null: MB/s from
/// the remote command's start to ssh's exit, CPU net of `ssh true`.
fn ssh_stdout(env: &Env, port: u16, cipher: &str, bytes: u64) -> Option<Sample> {
    let mut c = env.ssh(port, &["-c", cipher], &measure::throughput_command(bytes));
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().ok()?;
    let mut stderr = Vec::new();
    child.stderr.take()?.read_to_end(&mut stderr).ok()?;
    let r = reap(&child);
    let end = measure::now_ns();
    let start = measure::parse_start(&stderr)?;
    let secs = (end - start) as f64 / 1e9;
    let cpu = (r.cpu - env.ssh_base_cpu).max(0.0);
    r.ok.then(|| {
        Sample::from([
            ("mbps".into(), bytes as f64 / 1e6 / secs),
            ("cpu".into(), cpu),
        ])
    })
}

fn delivery_latency(env: &Env, report: &mut Report) {
    let lines: u64 = if env.quick { 200 } else { 500 };
    let port = env.main.port;
    let l = || ("lines", lines.to_string());
    let ssh: RunFn<'_> = Box::new(|| {
        let (meter, _) = run_ssh(
            env.ssh(port, &["-c", AES], &measure::latency_command(lines)),
            |so| {
                let mut meter = LatencyMeter::default();
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k) = so.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    meter.feed(&buf[..k], measure::now_ns());
                }
                meter
            },
        )?;
        Some(Sample::from([
            ("p50_ms".into(), measure::percentile(&meter.samples, 50.0)),
            ("p99_ms".into(), measure::percentile(&meter.samples, 99.0)),
            ("samples".into(), meter.samples.len() as f64),
        ]))
    });
    let mut contenders: Vec<(&str, RunFn<'_>)> = vec![
        (
            "vmssh",
            Box::new(|| {
                run_child(
                    Some(env.vmssh("delivery_latency", &[port], &[l()])),
                    "vmssh",
                )
            }),
        ),
        ("ssh", ssh),
        (
            "old",
            Box::new(|| run_child(env.old("delivery_latency", &[port], &[l()]), "old")),
        ),
    ];
    let ports = [port];
    let peer_names = env.peers.for_scenario("delivery_latency");
    contenders.extend(env.peer_contenders("delivery_latency", &ports, move || vec![l()], || {}));
    let res = rounds("delivery_latency", env.rounds(3, 2), contenders, "p99_ms");
    report.notes.push(spread(
        "delivery_latency",
        &res,
        &and_peers(&["vmssh", "ssh", "old"], &peer_names),
        "p99_ms",
    ));
    let m = |n: &str, k: &str| med(&res, n, k);
    report.rows.push(
        Row::new(
            "delivery_latency_p99",
            "ms",
            Better::Lower,
            Goal::Below(5.0),
        )
        .vals(m("vmssh", "p99_ms"), m("ssh", "p99_ms"), m("old", "p99_ms"))
        .peers_from(&peer_names, &res, "p99_ms", |v| v),
    );
    report.rows.push(
        Row::new("delivery_latency_p50", "ms", Better::Lower, Goal::Info)
            .vals(m("vmssh", "p50_ms"), m("ssh", "p50_ms"), m("old", "p50_ms"))
            .peers_from(&peer_names, &res, "p50_ms", |v| v),
    );
    report.notes.push(format!(
        "delivery_latency: {lines} timestamps (perl, every 10 ms); ms from the remote write to the chunk's arrival \
         (ssh: to the harness reading ssh's stdout pipe); p99/p50 per run, median over runs"
    ));
}

fn slow_consumer(env: &Env, report: &mut Report) {
    let bytes = mib(env.quick, 1024, 256);
    let pause_ms: u64 = if env.quick { 1000 } else { 2000 };
    let port = env.main.port;
    let extra = || {
        vec![
            ("bytes", bytes.to_string()),
            ("pause-ms", pause_ms.to_string()),
        ]
    };
    let ssh: RunFn<'_> = Box::new(|| {
        let cmd = format!("head -c {bytes} /dev/zero");
        let (n, r) = run_ssh(env.ssh(port, &["-c", AES], &cmd), |so| {
            let mut slow = SlowConsumer::new(bytes, Duration::from_millis(pause_ms));
            let mut buf = vec![0u8; 32 * 1024];
            let mut n = 0u64;
            while let Ok(k) = so.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k as u64;
                if let Some(d) = slow.consumed(k as u64) {
                    std::thread::sleep(d);
                }
            }
            n
        })?;
        (n == bytes).then(|| {
            Sample::from([(
                "rss_growth_mib".into(),
                r.max_rss_kib.saturating_sub(env.ssh_base_kib) as f64 / 1024.0,
            )])
        })
    });
    let contenders: Vec<(&str, RunFn<'_>)> = vec![
        (
            "vmssh",
            Box::new(|| {
                run_child(
                    Some(env.vmssh("slow_consumer_rss", &[port], &extra())),
                    "vmssh",
                )
            }),
        ),
        ("ssh", ssh),
        (
            "old",
            Box::new(|| run_child(env.old("slow_consumer_rss", &[port], &extra()), "old")),
        ),
    ];
    let res = rounds(
        "slow_consumer_rss",
        env.rounds(2, 2),
        contenders,
        "rss_growth_mib",
    );
    report.notes.push(spread(
        "slow_consumer",
        &res,
        &["vmssh", "ssh", "old"],
        "rss_growth_mib",
    ));
    report.rows.push(
        Row::new("slow_consumer_rss", "MiB", Better::Lower, Goal::Below(32.0)).vals(
            med(&res, "vmssh", "rss_growth_mib"),
            med(&res, "ssh", "rss_growth_mib"),
            med(&res, "old", "rss_growth_mib"),
        ),
    );
    report.notes.push(format!(
        "slow_consumer_rss: {} MiB through a consumer that sleeps 1 ms per 2 MiB and pauses {pause_ms} ms at 1/4, 1/2, 3/4; \
         peak RSS growth over the connected baseline (ssh: peak minus the peak of `ssh true`)",
        bytes / MIB
    ));
}

fn random_file(path: &Path, bytes: u64) {
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(bytes) {
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut buf = vec![0u8; MIB as usize];
    let mut f = std::fs::File::create(path).unwrap();
    for _ in 0..bytes / MIB {
        rng.fill_bytes(&mut buf);
        std::io::Write::write_all(&mut f, &buf).unwrap();
    }
}

fn sftp_upload(env: &Env, report: &mut Report) {
    sftp_scenario(env, report, true);
}

fn sftp_download(env: &Env, report: &mut Report) {
    sftp_scenario(env, report, false);
}

/// (label, chunk size, requests in flight, plain = no fsync, no atomic rename)
const SFTP_VARIANTS: &[(&str, u32, usize, bool)] = &[
    ("chunk=32KiB,in_flight=16", 32 * 1024, 16, false),
    ("chunk=32KiB,in_flight=128", 32 * 1024, 128, false),
    ("chunk=64KiB,in_flight=64", 64 * 1024, 64, false),
    ("chunk=128KiB,in_flight=32", 128 * 1024, 32, false),
    ("chunk=255KiB,in_flight=16", 255 * 1024, 16, false),
    // 0: the direction's default chunk size and requests in flight.
    ("plain: fsync=off,atomic=off", 0, 0, true),
];

fn sftp_scenario(env: &Env, report: &mut Report, up: bool) {
    let name = if up { "sftp_upload" } else { "sftp_download" };
    let bytes = mib(env.quick, 256, 64);
    let port = env.main.port;
    let src = env.data.join("source.bin");
    random_file(&src, bytes);
    let dest = |who: &str| env.data.join(format!("{name}-{who}.bin"));
    // Checks the copy and removes it (tmpfs space).
    let check = |p: &Path| -> bool {
        let ok = std::fs::metadata(p).map(|m| m.len()).ok() == Some(bytes);
        let _ = std::fs::remove_file(p);
        ok
    };
    let paths = |who: &str| -> (String, String) {
        // (local, remote) as the contender sees them; both on this machine.
        let d = dest(who).display().to_string();
        let s = src.display().to_string();
        if up { (s, d) } else { (d, s) }
    };
    let vm = |who: &'static str, extra: Vec<(&'static str, String)>| -> RunFn<'_> {
        Box::new(move || {
            let (local, remote) = paths(who);
            let mut x = vec![("local", local), ("remote", remote)];
            x.extend(extra.clone());
            let s = run_child(Some(env.vmssh(name, &[port], &x)), who)?;
            check(&dest(who)).then_some(s)
        })
    };
    let sftp: RunFn<'_> = Box::new(|| {
        let (local, remote) = paths("sftp");
        let s = sftp_transfer(env, port, up, &local, &remote, bytes)?;
        check(&dest("sftp")).then_some(s)
    });
    let scp: RunFn<'_> = Box::new(|| {
        let (local, remote) = paths("scp");
        let s = scp_transfer(env, port, up, &local, &remote, bytes, env.scp_base)?;
        check(&dest("scp")).then_some(s)
    });
    let old: RunFn<'_> = Box::new(|| {
        let (local, remote) = paths("old");
        let s = run_child(
            env.old(name, &[port], &[("local", local), ("remote", remote)]),
            "old",
        )?;
        check(&dest("old")).then_some(s)
    });
    let mut contenders: Vec<(&str, RunFn<'_>)> = vec![
        ("vmssh", vm("vmssh", vec![])),
        ("sftp", sftp),
        ("scp", scp),
        ("old", old),
    ];
    let peer_names = env.peers.for_scenario(name);
    for p in &peer_names {
        let p: &'static str = p;
        contenders.push((
            p,
            Box::new(move || {
                let (local, remote) = paths(p);
                let s = run_child(
                    env.peer(p, name, &[port], &[("local", local), ("remote", remote)]),
                    p,
                )?;
                check(&dest(p)).then_some(s)
            }),
        ));
    }
    for (i, (label, chunk, inflight, plain)) in SFTP_VARIANTS.iter().enumerate() {
        let who: &'static str = ["v0", "v1", "v2", "v3", "v4", "v5"][i];
        let _ = label;
        contenders.push((
            who,
            vm(who, {
                let mut x = vec![("plain", u8::from(*plain).to_string())];
                if *chunk > 0 {
                    x.push(("chunk", chunk.to_string()));
                }
                if *inflight > 0 {
                    x.push(("inflight", inflight.to_string()));
                }
                x
            }),
        ));
    }
    let res = rounds(name, env.rounds(5, 3), contenders, "mbps");
    report.notes.push(spread(
        name,
        &res,
        &and_peers(
            &[
                "vmssh", "sftp", "scp", "old", "v0", "v1", "v2", "v3", "v4", "v5",
            ],
            &peer_names,
        ),
        "mbps",
    ));
    let m = |n: &str, k: &str| med(&res, n, k);
    let sftp_mbps = m("sftp", "mbps");
    report.rows.push(
        Row::new(name, "MB/s", Better::Higher, Goal::AtLeastOpenssh(0.9))
            .vals(m("vmssh", "mbps"), sftp_mbps, m("old", "mbps"))
            .peers_from(&peer_names, &res, "mbps", |v| v),
    );
    report.rows.push(
        Row::new(format!("{name} vs scp"), "MB/s", Better::Higher, Goal::Info).vals(
            m("vmssh", "mbps"),
            m("scp", "mbps"),
            None,
        ),
    );
    report.rows.push(
        Row::new(
            format!("{name}_rss"),
            "MiB",
            Better::Lower,
            Goal::Below(24.0),
        )
        .vals(
            m("vmssh", "rss_growth_mib"),
            m("sftp", "rss_growth_mib"),
            m("old", "rss_growth_mib"),
        )
        .peers_from(&peer_names, &res, "rss_growth_mib", |v| v),
    );
    let per_gib = |n: &str| m(n, "cpu").map(|c| c * GIB / bytes as f64);
    report.rows.push(
        Row::new(
            format!("{name} client CPU"),
            "s/GiB",
            Better::Lower,
            Goal::Info,
        )
        .vals(per_gib("vmssh"), per_gib("sftp"), per_gib("old"))
        .peers_from(&peer_names, &res, "cpu", |c| c * GIB / bytes as f64),
    );
    let legend: Vec<String> = SFTP_VARIANTS
        .iter()
        .enumerate()
        .map(|(i, (label, ..))| format!("v{i} = {label}"))
        .collect();
    report
        .notes
        .push(format!("{name} variants: {}", legend.join("; ")));
    for (i, (label, ..)) in SFTP_VARIANTS.iter().enumerate() {
        let who = ["v0", "v1", "v2", "v3", "v4", "v5"][i];
        report.rows.push(
            Row::new(
                format!("{name}[{label}]"),
                "MB/s",
                Better::Higher,
                Goal::Info,
            )
            .vals(m(who, "mbps"), sftp_mbps, None),
        );
    }
    report.notes.push(format!(
        "{name}: {} MiB random file, tmpfs on both ends; vmssh defaults: {} in flight, atomic rename, \
         fsync (v5: the same without them); openssh = `sftp -b` ({}) timed by `!date` lines around it in the batch, CPU and RSS growth of sftp+ssh \
         minus an empty batch's; `scp` (SFTP protocol since OpenSSH 9.0): wall time minus an empty file's ({:.0} ms)",
        bytes / MIB,
        if up {
            "28 requests x 64 KiB"
        } else {
            "32 requests x 128 KiB"
        },
        if up { "put" } else { "get" },
        env.scp_base * 1e3,
    ));
}

/// `sftp -b` putting (`up`) or getting one file, timed by `!date` lines
/// around the transfer in its batch; CPU and RSS growth of sftp+ssh net of
/// an empty batch's.
fn sftp_transfer(
    env: &Env,
    port: u16,
    up: bool,
    local: &str,
    remote: &str,
    bytes: u64,
) -> Option<Sample> {
    // sftp runs `!` lines locally: the dates around the transfer time it
    // without the connection setup.
    let op = if up {
        format!("put {local} {remote}")
    } else {
        format!("get {remote} {local}")
    };
    let mut c = env.sftp_batch(port, &format!("!date +%s%N\n{op}\n!date +%s%N\n"));
    c.stdout(Stdio::piped());
    let mut child = c.spawn().ok()?;
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let r = reap(&child);
    let stamps: Vec<u128> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let secs = (*stamps.last()? - *stamps.first()?) as f64 / 1e9;
    (r.ok && stamps.len() == 2).then(|| {
        Sample::from([
            ("mbps".into(), bytes as f64 / 1e6 / secs),
            ("cpu".into(), (r.cpu - env.sftp_base.1).max(0.0)),
            (
                "rss_growth_mib".into(),
                r.max_rss_kib.saturating_sub(env.sftp_base.2) as f64 / 1024.0,
            ),
        ])
    })
}

/// `scp` of one file: wall time minus `base` (an empty file's).
fn scp_transfer(
    env: &Env,
    port: u16,
    up: bool,
    local: &str,
    remote: &str,
    bytes: u64,
    base: f64,
) -> Option<Sample> {
    let remote = env.remote(Path::new(remote));
    let cmd = if up {
        env.scp(port, local, &remote)
    } else {
        env.scp(port, &remote, local)
    };
    let (secs, _) = run_timed(cmd)?;
    let secs = (secs - base).max(1e-6);
    Some(Sample::from([("mbps".into(), bytes as f64 / 1e6 / secs)]))
}

fn connect_wake(env: &Env, report: &mut Report) {
    /// Starts `client` (retrying against a port where nothing listens yet),
    /// starts sshd there 0.3-1.5 s later, and returns ms from "listening"
    /// to "connected" (the contender's `connected_ns`).
    fn wake(env: &Env, client: impl FnOnce(u16) -> Option<Child>, label: &str) -> Option<Sample> {
        let port = sshd::free_port();
        let child = client(port)?;
        std::thread::sleep(Duration::from_millis(
            rand::thread_rng().gen_range(300..1500),
        ));
        let server = Sshd::spawn(&env.keys, port, &[]);
        let give_up = Instant::now() + Duration::from_secs(10);
        while !sshd::listening(port) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_micros(200));
        }
        let listen_ns = measure::now_ns();
        let (map, _) = collect(child, label)?;
        drop(server);
        let connected: u128 = map.get("connected_ns")?.parse().ok()?;
        Some(Sample::from([(
            "wake_ms".into(),
            (connected as f64 - listen_ns as f64) / 1e6,
        )]))
    }
    let contenders: Vec<(&str, RunFn<'_>)> = vec![
        (
            "vmssh",
            Box::new(|| {
                wake(
                    env,
                    |p| env.vmssh("connect_wake", &[p], &[]).spawn().ok(),
                    "vmssh",
                )
            }),
        ),
        (
            "ssh",
            Box::new(|| {
                wake(
                    env,
                    |p| {
                        // ssh's own retry: ConnectionAttempts, one second apart.
                        let mut c = env.ssh(
                            p,
                            &["-c", AES, "-o", "ConnectionAttempts=30"],
                            "echo RESULT connected_ns $(date +%s%N)",
                        );
                        c.stderr(Stdio::null());
                        c.spawn().ok()
                    },
                    "ssh",
                )
            }),
        ),
        (
            "old",
            Box::new(|| {
                wake(
                    env,
                    |p| env.old("connect_wake", &[p], &[])?.spawn().ok(),
                    "old",
                )
            }),
        ),
    ];
    let res = rounds("connect_wake", env.rounds(5, 3), contenders, "wake_ms");
    report.notes.push(spread(
        "connect_wake",
        &res,
        &["vmssh", "ssh", "old"],
        "wake_ms",
    ));
    report.rows.push(
        Row::new("connect_wake", "ms", Better::Lower, Goal::Below(250.0)).vals(
            med(&res, "vmssh", "wake_ms"),
            med(&res, "ssh", "wake_ms"),
            med(&res, "old", "wake_ms"),
        ),
    );
    report.notes.push(
        "connect_wake: sshd starts 0.3-1.5 s after the client; ms from the port listening (polled in /proc/net/tcp) \
         to the session established (ssh: `-o ConnectionAttempts=30`, time taken by the remote `date`)"
            .into(),
    );
}

/// Several sshds: one cannot accept connections fast enough on 2 cores.
fn server_pool(env: &Env, n: usize) -> Vec<Sshd> {
    (0..n).map(|_| Sshd::start(&env.keys, None, &[])).collect()
}

fn concurrent_sessions(env: &Env, report: &mut Report) {
    let sessions: u64 = if env.quick { 200 } else { 1000 };
    let pool = server_pool(env, 4);
    let ports: Vec<u16> = pool.iter().map(|s| s.port).collect();
    let extra = || {
        vec![
            ("sessions", sessions.to_string()),
            ("connect-cap", "32".to_string()),
        ]
    };
    let settle = || std::thread::sleep(Duration::from_secs(1));
    #[allow(unused_mut)]
    let mut contenders: Vec<(&str, RunFn<'_>)> = vec![
        (
            "vmssh",
            Box::new(|| {
                let s = run_child(
                    Some(env.vmssh("concurrent_sessions", &ports, &extra())),
                    "vmssh",
                );
                settle();
                s
            }),
        ),
        (
            "old",
            Box::new(|| {
                let s = run_child(env.old("concurrent_sessions", &ports, &extra()), "old");
                settle();
                s
            }),
        ),
    ];
    let peer_names = env.peers.for_scenario("concurrent_sessions");
    contenders.extend(env.peer_contenders("concurrent_sessions", &ports, extra, settle));
    // The same sessions against vmssh's own server (vmssh_testkit), in the
    // vmssh process, on the same current_thread runtime.
    contenders.push((
        "testkit",
        Box::new(|| {
            let s = run_child(
                Some(env.vmssh("concurrent_sessions_testkit", &[], &extra())),
                "testkit",
            );
            settle();
            s
        }),
    ));
    let res = rounds("concurrent_sessions", env.rounds(2, 1), contenders, "secs");
    report.notes.push(spread(
        "concurrent_sessions",
        &res,
        &and_peers(&["vmssh", "old", "testkit"], &peer_names),
        "secs",
    ));
    let m = |n: &str, k: &str| med(&res, n, k);
    report.rows.push(
        Row::new("concurrent_sessions wall", "s", Better::Lower, Goal::Info)
            .vals(m("vmssh", "secs"), None, m("old", "secs"))
            .peers_from(&peer_names, &res, "secs", |v| v),
    );
    report.rows.push(
        Row::new("concurrent_sessions_rss", "MiB", Better::Lower, Goal::Info)
            .vals(
                m("vmssh", "rss_growth_mib"),
                None,
                m("old", "rss_growth_mib"),
            )
            .peers_from(&peer_names, &res, "rss_growth_mib", |v| v),
    );
    report.rows.push(
        Row::new(
            "concurrent_sessions threads",
            "peak",
            Better::Lower,
            Goal::Info,
        )
        .vals(m("vmssh", "threads_peak"), None, m("old", "threads_peak"))
        .peers_from(&peer_names, &res, "threads_peak", |v| v),
    );
    report.rows.push(
        Row::new(
            "concurrent_sessions client CPU",
            "s",
            Better::Lower,
            Goal::Info,
        )
        .vals(m("vmssh", "cpu"), None, m("old", "cpu"))
        .peers_from(&peer_names, &res, "cpu", |v| v),
    );
    report.rows.push(
        Row::new(
            "concurrent_sessions machine CPU",
            "s",
            Better::Lower,
            Goal::Info,
        )
        .vals(m("vmssh", "machine_cpu"), None, m("old", "machine_cpu"))
        .peers_from(&peer_names, &res, "machine_cpu", |v| v),
    );
    {
        let label = "concurrent_sessions[testkit server]";
        report.rows.push(
            Row::new(format!("{label} wall"), "s", Better::Lower, Goal::Info).vals(
                m("testkit", "secs"),
                None,
                None,
            ),
        );
        report.rows.push(
            Row::new(format!("{label} RSS"), "MiB", Better::Lower, Goal::Info).vals(
                m("testkit", "rss_growth_mib"),
                None,
                None,
            ),
        );
        report.rows.push(
            Row::new(
                format!("{label} threads"),
                "peak",
                Better::Lower,
                Goal::Info,
            )
            .vals(m("testkit", "threads_peak"), None, None),
        );
        report.rows.push(
            Row::new(format!("{label} CPU"), "s", Better::Lower, Goal::Info).vals(
                m("testkit", "cpu"),
                None,
                None,
            ),
        );
    }
    let failed: f64 = and_peers(&["vmssh", "old", "testkit"], &peer_names)
        .iter()
        .filter_map(|n| res.get(n))
        .flatten()
        .filter_map(|s| s.get("failed"))
        .sum();
    let testkit = "[testkit server] rows: the same sessions against one vmssh_testkit::TestServer started inside \
         the vmssh process, clients and server on its one current_thread runtime (the commands' shells are child \
         processes); RSS growth, threads and CPU are client and server together";
    report.notes.push(format!(
        "concurrent_sessions: {sessions} sessions over {} sshds, 32 connects in flight, each runs `echo N`, all held \
         open until the last is done; vmssh on one current_thread runtime, old on tokio's multi-thread runtime and \
         default blocking pool; failed sessions over all runs: {failed}; {testkit}",
        ports.len()
    ));
}

fn fleet(env: &Env, report: &mut Report) {
    let vms: u64 = if env.quick { 50 } else { 200 };
    let pool = server_pool(env, 4);
    let ports: Vec<u16> = pool.iter().map(|s| s.port).collect();
    fleet_run(
        env,
        report,
        &FleetTarget {
            label: "fleet".into(),
            server: format!("{} sshds", ports.len()),
            vms,
            ports: &ports,
            login: env.login(),
            rounds: env.rounds(2, 1),
            peers: env.peers.for_scenario("fleet"),
            old: true,
            server_pids: pool.iter().map(Sshd::pid).collect(),
        },
    );
}

/// Where a fleet scenario provisions its VMs.
#[derive(Debug)]
struct FleetTarget<'a> {
    /// Row prefix (`fleet`, `fleet[testkit]`).
    label: String,
    /// The servers, for the notes.
    server: String,
    vms: u64,
    ports: &'a [u16],
    login: peers::Login<'a>,
    rounds: usize,
    /// The peers that take part.
    peers: Vec<&'static str>,
    /// Whether the old design takes part.
    old: bool,
    /// The servers' listeners, whose reaped children's CPU is the servers'
    /// work (none for a server in the contender's process).
    server_pids: Vec<u32>,
}

/// The fleet plan's local files, named from `prefix`: its 1 MiB payload
/// and its script (printing 100 lines), and the directory its VMs write to.
fn fleet_plan_files(env: &Env, prefix: &str) -> (PathBuf, PathBuf, PathBuf) {
    let payload = env.data.join(format!("{prefix}-payload.bin"));
    random_file(&payload, MIB);
    let script = env.data.join(format!("{prefix}-setup.sh"));
    std::fs::write(
        &script,
        "#!/bin/sh\nfor i in $(seq 1 100); do echo \"step $i\"; done\necho done >&2\n",
    )
    .unwrap();
    (payload, script, env.data.join(format!("{prefix}-remote")))
}

/// The fleet plan (a command, a 1 MiB file, a script printing 100 lines)
/// on `t.vms` VMs by every contender that has a fleet: vmssh's `Fleet`,
/// the old design, the peers.
fn fleet_run(env: &Env, report: &mut Report, t: &FleetTarget<'_>) {
    let vms = t.vms;
    let (payload, script, remote_dir) = fleet_plan_files(env, "fleet");
    let extra = || {
        vec![
            ("vms", vms.to_string()),
            ("concurrency", "64".to_string()),
            ("connect-cap", "32".to_string()),
            ("file", payload.display().to_string()),
            ("script", script.display().to_string()),
            ("remote-dir", remote_dir.display().to_string()),
        ]
    };
    // After the run: the remote files go, and the servers reap what served
    // it (the servers' CPU is read after that).
    let server_cpu = || measure::reaped_tree_cpu_secs(&t.server_pids);
    let cleanup = |s: Option<Sample>, cpu0: f64| {
        let _ = std::fs::remove_dir_all(&remote_dir);
        std::thread::sleep(Duration::from_secs(1));
        s.map(|mut s| {
            if !t.server_pids.is_empty() {
                s.insert("server_cpu".into(), server_cpu() - cpu0);
            }
            s
        })
    };
    let (ports, login) = (t.ports, &t.login);
    let mut contenders: Vec<(&str, RunFn<'_>)> = vec![(
        "vmssh",
        Box::new(|| {
            let cpu0 = server_cpu();
            let s = run_child(Some(env.vmssh_as(login, "fleet", ports, &extra())), "vmssh");
            cleanup(s, cpu0)
        }),
    )];
    if t.old {
        contenders.push((
            "old",
            Box::new(|| {
                let cpu0 = server_cpu();
                let s = run_child(env.old_as(login, "fleet", ports, &extra()), "old");
                cleanup(s, cpu0)
            }),
        ));
    }
    let peer_names = t.peers.clone();
    for p in &peer_names {
        let p: &'static str = p;
        contenders.push((
            p,
            Box::new(move || {
                let cpu0 = server_cpu();
                let cmd = env.peers.command(p, "fleet", login, ports, &extra());
                let s = run_child(cmd, p);
                cleanup(s, cpu0)
            }),
        ));
    }
    let label = &t.label;
    let mut res = rounds(label, t.rounds, contenders, "secs");
    let everyone = and_peers(&["vmssh", "old"], &peer_names);
    let failed: Vec<String> = everyone
        .iter()
        .map(|n| match res.get(n) {
            Some(runs) => {
                let f: f64 = runs.iter().filter_map(|s| s.get("failed")).sum();
                format!("{n} {}", f as u64)
            }
            None => format!("{n} (no run)"),
        })
        .collect();
    // A run in which VMs failed did less work: its figures stay out.
    for runs in res.values_mut() {
        runs.retain(|s| s.get("failed").is_some_and(|f| *f == 0.0));
    }
    report.notes.push(spread(label, &res, &everyone, "secs"));
    let m = |n: &str, k: &str| med(&res, n, k);
    for (suffix, unit, key) in [
        (" wall", "s", "secs"),
        ("_rss", "MiB", "rss_growth_mib"),
        (" threads", "peak", "threads_peak"),
        (" client CPU", "s", "cpu"),
        (" machine CPU", "s", "machine_cpu"),
        (" server CPU", "s", "server_cpu"),
    ] {
        if key == "server_cpu" && t.server_pids.is_empty() {
            continue;
        }
        report.rows.push(
            Row::new(format!("{label}{suffix}"), unit, Better::Lower, Goal::Info)
                .vals(m("vmssh", key), None, m("old", key))
                .peers_from(&peer_names, &res, key, |v| v),
        );
    }
    report.notes.push(format!(
        "{label}: {vms} VMs on {}, 64 at once, 32 connects in flight; plan: a command, a 1 MiB file, a script \
         printing 100 lines; vmssh = vmssh::fleet::Fleet, old = the same steps with the old design, peers as their \
         notes say; {} round(s); failed VMs over all runs (a run with failures is left out of the rows): {}{}",
        t.server,
        t.rounds,
        failed.join(", "),
        if t.server_pids.is_empty() {
            ""
        } else {
            "; server CPU: what the servers' listeners reaped during the run (each connection's sshd and all it ran: \
             shells, sftp-server, the plan's commands), read a second after it: the servers' work, which no client \
             can go under, so on this machine's cores no client's wall time can go under it / the core count"
        }
    ));
}
