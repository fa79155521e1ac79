//! The `vmssh` command while a host is not ready: its connect retries are
//! shown as they happen (piped, on a terminal, as JSON events), a few
//! seconds apart, naming `--connect-deadline`, and so is the failure once
//! the deadline passes; `--retry-auth` waits for a key installed after
//! the server started, which is refused at once without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::time::Duration;

use cli_harness::{assert_exit, json_lines, run, stderr, stdout};
use support::{Server, on_both_servers};
use vmssh::fleet::FleetReport;
use vmssh::report::{Event, Failure};

/// A port nothing listens on (free a moment ago): connecting is refused.
fn refused_port() -> u16 {
    support::free_port()
}

/// `exec --host vm=root@127.0.0.1:PORT` with a key that is never used,
/// and `flags`.
fn exec_refused(
    dir: &std::path::Path,
    port: u16,
    deadline: &str,
    flags: &[&str],
) -> tokio::process::Command {
    let key = support::ed25519_key(dir, "unused");
    let mut c = cli_harness::command(dir);
    c.arg("exec")
        .args(["--host", &format!("vm=root@127.0.0.1:{port}")])
        .arg("--key")
        .arg(&key.private)
        .args(["--insecure-accept-any", "--connect-deadline", deadline])
        .args(flags)
        .args(["--", "true"]);
    c
}

/// The seconds a retry line reports: `[vm] retrying (R), E s of D s
/// (--connect-deadline)` gives (R, E, D).
fn retry_fields(line: &str) -> (String, u64, u64) {
    let rest = line
        .strip_prefix("[vm] retrying (")
        .unwrap_or_else(|| panic!("not a retry line: {line:?}"));
    let (reason, rest) = rest.split_once("), ").unwrap();
    let rest = rest
        .strip_suffix(" s (--connect-deadline)")
        .unwrap_or_else(|| panic!("the flag is not named: {line:?}"));
    let (elapsed, deadline) = rest.split_once(" s of ").unwrap();
    (
        reason.to_string(),
        elapsed.parse().unwrap(),
        deadline.parse().unwrap(),
    )
}

/// Piped: the first retry at once, then one line every 5 s at most, on
/// standard error; the failure says the deadline passed, live and in the
/// summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_shows_its_retries_piped() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(exec_refused(dir.path(), refused_port(), "6", &[])).await;
    assert_exit(&o, 1);
    assert_eq!(stdout(&o), "", "diagnostics went to standard output");
    let err = stderr(&o);
    let retries: Vec<(String, u64, u64)> = err
        .lines()
        .filter(|l| l.starts_with("[vm] retrying "))
        .map(retry_fields)
        .collect();
    // Retried every 250 ms or less: about 24 retries in 6 s, told twice
    // at most (at 0 s and from 5 s).
    assert!(
        !retries.is_empty() && retries.len() <= 2,
        "{retries:?}\n{err}"
    );
    assert_eq!(retries[0], ("connection refused".into(), 0, 6), "{err}");
    if let [(_, first, _), (_, second, _)] = retries[..] {
        assert!(second >= first + 5, "{retries:?}");
    }
    let failed = err
        .lines()
        .find(|l| l.starts_with("[vm] FAILED in "))
        .unwrap_or_else(|| panic!("no failure line:\n{err}"));
    assert!(
        failed.ends_with("(retried until --connect-deadline 6 s passed)"),
        "{failed}"
    );
    let summary = err
        .lines()
        .find(|l| l.starts_with("vm ") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("no summary line:\n{err}"));
    assert!(
        summary.ends_with("(retried until --connect-deadline 6 s passed)"),
        "{summary}"
    );
}

/// `--json`: a retry is a `retrying` event of the library's schema, and
/// `vm_finished` says the deadline passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_retries_as_json_events() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(exec_refused(dir.path(), refused_port(), "2", &["--json"])).await;
    assert_exit(&o, 1);
    let lines = json_lines(&o);
    let kinds: Vec<&str> = lines.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["connecting", "retrying", "vm_finished", "finished"],
        "{lines:#?}"
    );
    let retrying = &lines[1];
    assert_eq!(retrying["vm"], "vm");
    assert_eq!(retrying["reason"], "connection refused");
    assert_eq!(retrying["login_refused"], false);
    assert_eq!(retrying["attempt"], 1);
    assert_eq!(retrying["deadline"], 2.0);
    assert_eq!(lines[2]["deadline_passed"], 2.0);
    // The events read back as the library's types.
    let events: Vec<Event> = lines
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    assert!(matches!(
        &events[1],
        Event::Retrying { login_refused: false, attempt: 1, deadline, .. }
            if *deadline == Duration::from_secs(2)
    ));
    assert!(matches!(
        &events[2],
        Event::VmFinished {
            failure: Some(Failure::Connect { .. }),
            deadline_passed: Some(d),
            ..
        } if *d == Duration::from_secs(2)
    ));
}

/// On a terminal: the first retry is printed above the bars, naming the
/// flag, and so is the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_shows_its_retries_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = exec_refused(dir.path(), refused_port(), "2", &[]);
    c.env("TERM", "xterm");
    let (out, status) = cli_harness::run_on_pty(c).await;
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("retrying (connection refused), 0 s of 2 s (--connect-deadline)"),
        "{out}"
    );
    assert!(
        out.contains("(retried until --connect-deadline 2 s passed)"),
        "{out}"
    );
}

/// When the key lands, after the command started.
const LANDS_AFTER: Duration = Duration::from_secs(3);

/// A key authorized after the command started: refused at once without
/// `--retry-auth`; with it, login is retried (shown as `login refused`)
/// until the key lands, then the command runs.
async fn retry_auth_waits_for_a_late_key(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let late = support::ed25519_key(dir.path(), "late");
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let command = |retry_auth: bool| {
        let mut c = cli_harness::command(dir.path());
        c.arg("exec")
            .args([
                "--host",
                &format!("srv={}@127.0.0.1:{}", srv.user(), srv.port()),
            ])
            .arg("--key")
            .arg(&late.private)
            .arg("--known-hosts")
            .arg(&known)
            .args(["--connect-deadline", "60"]);
        if retry_auth {
            c.arg("--retry-auth");
        }
        c
    };

    let report = dir.path().join("report.json");
    let mut c = command(false);
    c.arg("--report").arg(&report).args(["--", "echo", "in"]);
    let o = run(c).await;
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(!err.contains("retrying"), "{}: {err}", srv.name());
    assert!(!err.contains("--connect-deadline"), "{}: {err}", srv.name());
    let report: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let vm = &report.vms[0];
    assert!(
        matches!(vm.failure, Some(Failure::Authentication { .. })) && vm.deadline_passed.is_none(),
        "{}: {vm:?}",
        srv.name()
    );

    let lands = async {
        tokio::time::sleep(LANDS_AFTER).await;
        srv.authorize(&late.public_line);
    };
    let mut c = command(true);
    c.args(["--", "echo", "in"]);
    let ((), o) = tokio::join!(lands, run(c));
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "[srv] in\n");
    let err = stderr(&o);
    let retries: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("[srv] retrying "))
        .collect();
    assert!(
        !retries.is_empty(),
        "{}: no retry shown:\n{err}",
        srv.name()
    );
    for line in &retries {
        assert!(
            line.starts_with("[srv] retrying (login refused), ")
                && line.ends_with(" of 60 s (--connect-deadline)"),
            "{}: {line}",
            srv.name()
        );
    }
}
on_both_servers!(retry_auth_waits_for_a_late_key);
