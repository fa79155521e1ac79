//! The round-trip scenarios: the loopback sshd reached through a
//! [`Relay`] that adds a fixed RTT (`--rtt 2,20,50`), so that the figures
//! show what windows and requests in flight do on a real link.
//!
//! - `rtt_stdout`: the throughput command's stdout; vmssh, `ssh`, old.
//! - `rtt_upload` / `rtt_download`: one file over SFTP; vmssh, `sftp -b`,
//!   `scp`, old.
//! - `rtt_small_steps`: a plan of ten small steps (five `inline "true"`,
//!   five file steps of 2 bytes, alternating) after the session is up,
//!   reported as round trips per step; vmssh and old.

use std::path::Path;
use std::time::Duration;

use crate::relay::{self, Link, Relay};
use crate::{
    Better, Env, Goal, MIB, Report, Row, RunFn, Sample, med, rounds, run_child, run_timed,
    scp_transfer, sftp_transfer, spread, ssh_stdout,
};

/// The label of the rows run with OpenSSH's (and russh's) default
/// window, beside vmssh's own default.
const WINDOW_2M: &str = "window=2MiB";

/// The RTTs (ms) the scenarios run at when none are given.
pub(crate) const DEFAULT_RTTS: &[u64] = &[2, 20, 50];

/// One relay per RTT, with what it really adds (timer error included).
struct LinkedRelay {
    rtt_ms: u64,
    measured_ms: f64,
    relay: Relay,
}

fn paths(env: &Env) -> Vec<LinkedRelay> {
    env.rtts
        .iter()
        .map(|&rtt_ms| {
            let link = Link::rtt(Duration::from_millis(rtt_ms));
            LinkedRelay {
                rtt_ms,
                measured_ms: relay::measured_rtt_ms(link),
                relay: Relay::start(env.main.port, link),
            }
        })
        .collect()
}

/// Bytes moved at `rtt_ms`: fewer on long links, where the slowest
/// contenders need minutes for the loopback sizes.
fn transfer_bytes(env: &Env, rtt_ms: u64) -> u64 {
    let full = match rtt_ms {
        0..=5 => 64,
        6..=25 => 32,
        _ => 16,
    };
    if env.quick {
        full / 4 * MIB
    } else {
        full * MIB
    }
}

/// The long-link ratio goals: at least OpenSSH at every RTT, twice it
/// (stdout, download) or 1.2x (upload) from 20 ms on.
fn goal(rtt_ms: u64, long_link: f64) -> Goal {
    Goal::AtLeastOpenssh(if rtt_ms >= 20 { long_link } else { 1.0 })
}

/// Measures the relay itself once per run: its ceiling with no delay and
/// at the longest RTT, and the RTT it really adds.
pub(crate) fn relay_notes(env: &Env, report: &mut Report) {
    let max = env.rtts.iter().copied().max().unwrap_or(0);
    let flat = relay::ceiling(Link::rtt(Duration::ZERO));
    let long = relay::ceiling(Link::rtt(Duration::from_millis(max)));
    let measured: Vec<String> = env
        .rtts
        .iter()
        .map(|&r| {
            format!(
                "{r} ms -> {:.2} ms",
                relay::measured_rtt_ms(Link::rtt(Duration::from_millis(r)))
            )
        })
        .collect();
    report.notes.push(format!(
        "relay (tests/support/relay.rs, tokio, own thread): ceiling {flat:.2} GB/s with no delay, {long:.2} GB/s at \
         {max} ms RTT (1 GiB, plain TCP both ends, loopback); 64 MiB in flight per direction at most; RTT through it \
         (median of 21 one-byte pings): {}",
        measured.join(", ")
    ));
}

/// `--relay-selftest [RTT,...]`: prints the relay's ceiling and the RTT it
/// adds, for checking the relay alone.
pub(crate) fn relay_selftest(argv: &[String]) {
    let rtts: Vec<u64> = argv
        .first()
        .map(|v| v.split(',').filter_map(|r| r.parse().ok()).collect())
        .unwrap_or_else(|| DEFAULT_RTTS.to_vec());
    for r in rtts {
        let link = Link::rtt(Duration::from_millis(r));
        println!(
            "rtt {r} ms: measured {:.2} ms, ceiling {:.2} GB/s",
            relay::measured_rtt_ms(link),
            relay::ceiling(link)
        );
    }
}

pub(crate) fn rtt_stdout(env: &Env, report: &mut Report) {
    for p in paths(env) {
        let (port, rtt) = (p.relay.port, p.rtt_ms);
        let bytes = transfer_bytes(env, rtt);
        let b = || vec![("bytes", bytes.to_string())];
        let contenders: Vec<(&str, RunFn<'_>)> = vec![
            (
                "vmssh",
                Box::new(|| {
                    run_child(Some(env.vmssh("stdout_throughput", &[port], &b())), "vmssh")
                }),
            ),
            ("ssh", Box::new(|| ssh_stdout(env, port, crate::AES, bytes))),
            (
                "old",
                Box::new(|| run_child(env.old("stdout_throughput", &[port], &b()), "old")),
            ),
            (
                "win2m",
                Box::new(|| {
                    let mut x = b();
                    x.push(("window", (2 * MIB).to_string()));
                    run_child(Some(env.vmssh("stdout_throughput", &[port], &x)), "vmssh")
                }),
            ),
        ];
        let title = format!("rtt_stdout[rtt={rtt}ms]");
        let res = rounds(&title, env.rounds(3, 1), contenders, "mbps");
        report.notes.push(spread(
            &title,
            &res,
            &["vmssh", "ssh", "old", "win2m"],
            "mbps",
        ));
        report.rows.push(
            Row::new(title.clone(), "MB/s", Better::Higher, goal(rtt, 2.0)).vals(
                med(&res, "vmssh", "mbps"),
                med(&res, "ssh", "mbps"),
                med(&res, "old", "mbps"),
            ),
        );
        report.rows.push(
            Row::new(
                format!("{title}[{WINDOW_2M}]"),
                "MB/s",
                Better::Higher,
                Goal::Info,
            )
            .vals(med(&res, "win2m", "mbps"), med(&res, "ssh", "mbps"), None),
        );
    }
    report.notes.push(format!(
        "rtt_stdout: the stdout_throughput command through the relay ({}); openssh = `ssh -c {}`; [{WINDOW_2M}]: vmssh \
         with OpenSSH's default window, the default before it was sized for long links",
        sizes(env),
        crate::AES
    ));
}

pub(crate) fn rtt_upload(env: &Env, report: &mut Report) {
    rtt_transfer(env, report, true);
}

pub(crate) fn rtt_download(env: &Env, report: &mut Report) {
    rtt_transfer(env, report, false);
}

fn sizes(env: &Env) -> String {
    env.rtts
        .iter()
        .map(|&r| format!("{} MiB at {r} ms", transfer_bytes(env, r) / MIB))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rtt_transfer(env: &Env, report: &mut Report, up: bool) {
    let name = if up { "rtt_upload" } else { "rtt_download" };
    let scenario = if up { "sftp_upload" } else { "sftp_download" };
    // Uploads: other settings (`--upload-variant`; by default one SFTP
    // channel: what the extra channels gain). Downloads: OpenSSH's
    // default window, the default before it was sized for long links.
    // Both in the same rounds as the defaults.
    let (variant, variant_label): (Vec<(&str, String)>, String) = if up {
        (
            env.upload_variant
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect(),
            env.upload_variant
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    } else {
        (
            vec![("window", (2 * MIB).to_string())],
            WINDOW_2M.to_string(),
        )
    };
    let mut scp_bases = Vec::new();
    for p in paths(env) {
        let (port, rtt) = (p.relay.port, p.rtt_ms);
        let bytes = transfer_bytes(env, rtt);
        let src = env.data.join(format!("{name}-source.bin"));
        crate::random_file(&src, bytes);
        let dest = |who: &str| env.data.join(format!("{name}-{who}.bin"));
        let check = |p: &Path| -> bool {
            let ok = std::fs::metadata(p).map(|m| m.len()).ok() == Some(bytes);
            let _ = std::fs::remove_file(p);
            ok
        };
        let paths = |who: &str| -> (String, String) {
            let d = dest(who).display().to_string();
            let s = src.display().to_string();
            if up { (s, d) } else { (d, s) }
        };
        // scp's cost of an empty file at this RTT: connection and setup.
        let empty = env.data.join("empty");
        let scp_base = crate::median_of(
            (0..3)
                .filter_map(|_| {
                    let to = env.remote(&env.data.join("empty.copy"));
                    run_timed(env.scp(port, &empty.display().to_string(), &to)).map(|(s, _)| s)
                })
                .collect(),
        );
        scp_bases.push(format!("{:.0} ms at {rtt} ms", scp_base * 1e3));
        let contenders: Vec<(&str, RunFn<'_>)> = vec![
            (
                "vmssh",
                Box::new(|| {
                    let (local, remote) = paths("vmssh");
                    let x = vec![("local", local), ("remote", remote)];
                    let s = run_child(Some(env.vmssh(scenario, &[port], &x)), "vmssh")?;
                    check(&dest("vmssh")).then_some(s)
                }),
            ),
            (
                "sftp",
                Box::new(|| {
                    let (local, remote) = paths("sftp");
                    let s = sftp_transfer(env, port, up, &local, &remote, bytes)?;
                    check(&dest("sftp")).then_some(s)
                }),
            ),
            (
                "scp",
                Box::new(|| {
                    let (local, remote) = paths("scp");
                    let s = scp_transfer(env, port, up, &local, &remote, bytes, scp_base)?;
                    check(&dest("scp")).then_some(s)
                }),
            ),
            (
                "variant",
                Box::new(|| {
                    let (local, remote) = paths("variant");
                    let mut x = vec![("local", local), ("remote", remote)];
                    x.extend(variant.iter().map(|(k, v)| (*k, v.clone())));
                    let s = run_child(Some(env.vmssh(scenario, &[port], &x)), "vmssh")?;
                    check(&dest("variant")).then_some(s)
                }),
            ),
            (
                "old",
                Box::new(|| {
                    let (local, remote) = paths("old");
                    let x = [("local", local), ("remote", remote)];
                    let s = run_child(env.old(scenario, &[port], &x), "old")?;
                    check(&dest("old")).then_some(s)
                }),
            ),
        ];
        let title = format!("{name}[rtt={rtt}ms]");
        let res = rounds(&title, env.rounds(3, 1), contenders, "mbps");
        report.notes.push(spread(
            &title,
            &res,
            &["vmssh", "sftp", "scp", "old", "variant"],
            "mbps",
        ));
        let m = |n: &str| med(&res, n, "mbps");
        report.rows.push(
            Row::new(
                title.clone(),
                "MB/s",
                Better::Higher,
                goal(rtt, if up { 1.2 } else { 2.0 }),
            )
            .vals(m("vmssh"), m("sftp"), m("old")),
        );
        report.rows.push(
            Row::new(
                format!("{title} vs scp"),
                "MB/s",
                Better::Higher,
                Goal::Info,
            )
            .vals(m("vmssh"), m("scp"), None),
        );
        report.rows.push(
            Row::new(
                format!("{title}[{variant_label}]"),
                "MB/s",
                Better::Higher,
                Goal::Info,
            )
            .vals(m("variant"), m("sftp"), None),
        );
    }
    report.notes.push(format!(
        "{name}: one random file over SFTP through the relay ({}); vmssh defaults, timed on an open SFTP channel as \
         `sftp`'s put and get are; the [{variant_label}] rows: the same \
         with {}; openssh = `sftp -b` timed by \
         `!date` lines around the {}; `scp`: wall time minus an empty file's at the same RTT ({})",
        sizes(env),
        if up {
            "these settings (`--upload-variant`; channels=1: the upload on one SFTP channel)"
        } else {
            "OpenSSH's default window, the default before it was sized for long links"
        },
        if up { "put" } else { "get" },
        scp_bases.join(", ")
    ));
}

pub(crate) fn rtt_small_steps(env: &Env, report: &mut Report) {
    let file = env.data.join("small-step.txt");
    std::fs::write(&file, b"ok").unwrap();
    let remote_dir = env.data.join("small-steps-remote");
    for p in paths(env) {
        let (port, rtt) = (p.relay.port, p.rtt_ms);
        let x = || {
            vec![
                ("file", file.display().to_string()),
                ("remote-dir", remote_dir.display().to_string()),
            ]
        };
        let per_rtt = |s: Sample| -> Sample {
            let rtt_s = p.measured_ms / 1e3;
            let mut out = Sample::new();
            for (k, n) in [
                ("secs", 10.0),
                ("inline_secs", 5.0),
                ("file_secs", 5.0),
                ("script_secs", 5.0),
                ("plain_secs", 5.0),
                ("plain_fresh_secs", 5.0),
            ] {
                if let Some(v) = s.get(k) {
                    out.insert(k.replace("secs", "rtts"), v / n / rtt_s);
                }
            }
            out
        };
        let contenders: Vec<(&str, RunFn<'_>)> = vec![
            (
                "vmssh",
                Box::new(|| {
                    run_child(Some(env.vmssh("small_steps", &[port], &x())), "vmssh").map(per_rtt)
                }),
            ),
            (
                "old",
                Box::new(|| run_child(env.old("small_steps", &[port], &x()), "old").map(per_rtt)),
            ),
        ];
        let title = format!("rtt_small_steps[rtt={rtt}ms]");
        let res = rounds(&title, env.rounds(3, 1), contenders, "rtts");
        let _ = std::fs::remove_dir_all(&remote_dir);
        report
            .notes
            .push(spread(&title, &res, &["vmssh", "old"], "rtts"));
        let m = |n: &str, k: &str| med(&res, n, k);
        report.rows.push(
            Row::new(title.clone(), "RTTs", Better::Lower, Goal::Below(3.0)).vals(
                m("vmssh", "rtts"),
                None,
                m("old", "rtts"),
            ),
        );
        // The goals per kind of step (issue 28).
        for (kind, goal) in [("inline", 1.5), ("file", 2.0), ("script", 2.5)] {
            let k = format!("{kind}_rtts");
            report.rows.push(
                Row::new(
                    format!("{title} {kind}"),
                    "RTTs",
                    Better::Lower,
                    Goal::Below(goal),
                )
                .vals(m("vmssh", &k), None, m("old", &k)),
            );
        }
        // Plain `Session::upload`s on the session's kept SFTP channel, and
        // each on a channel of its own; the old design's column is its
        // upload (a file step there).
        report.rows.push(
            Row::new(
                format!("{title} plain upload"),
                "RTTs",
                Better::Lower,
                Goal::Info,
            )
            .vals(m("vmssh", "plain_rtts"), None, m("old", "file_rtts")),
        );
        report.rows.push(
            Row::new(
                format!("{title} plain upload[sftp_idle_timeout=0]"),
                "RTTs",
                Better::Lower,
                Goal::Info,
            )
            .vals(m("vmssh", "plain_fresh_rtts"), None, m("old", "file_rtts")),
        );
    }
    report.notes.push(
        "rtt_small_steps: one session (connect not counted), then ten steps alternating `inline \"true\"` and a file \
         step of 2 bytes (the script row: a second plan, `inline \"true\"` then five steps of a two-line script, \
         each uploaded, run and removed; the plain upload rows: five `Session::upload`s of the 2-byte file back to \
         back after a command, on the session's kept SFTP channel, and [sftp_idle_timeout=0] on a session that \
         keeps none, each opening its own); round trips per step = time per step / the RTT measured through the \
         relay; vmssh = vmssh::provision::Provisioner (inline/file/script rows from its step durations), old = exec and whole-file upload \
         of the old design, each timed"
            .into(),
    );
}
