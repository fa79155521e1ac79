//! Ctrl-C: SIGINT to the command stops starting hosts, stops the running
//! ones (their remote commands get SIGTERM: no `sleep` is left running),
//! prints the summary and writes the report; a second SIGINT exits at
//! once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::process::Stdio;
use std::time::Duration;

use cli_harness::Hosts;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use vmssh::fleet::{FleetReport, Outcome};

fn sigint(child: &tokio::process::Child) {
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

/// Processes below this test process whose command line has `needle`
/// (the testkit servers run remote commands as our children).
fn running_with(needle: &str) -> Vec<u32> {
    support::descendants(std::process::id())
        .into_iter()
        .filter(|p| {
            let state = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let zombie = state
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_run_and_writes_the_report() {
    let hosts = Hosts::start(&["i1", "i2", "i3"]).await;
    // A duration no other test uses, to find these sleeps.
    let secs = format!("{}.{}", 3000 + std::process::id() % 1000, 17);
    let report = hosts.path("interrupted.json");
    let mut c = hosts.verb(
        "exec",
        &[
            "--json",
            "--concurrency",
            "2",
            "--report",
            report.to_str().unwrap(),
            "--",
            &format!("echo ready; sleep {secs}"),
        ],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });

    // Two hosts run their command (the third waits for a slot).
    let mut ready = 0;
    let mut events = Vec::new();
    while ready < 2 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("vmssh ended early");
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "output" && e["data"] == "ready\n" {
            ready += 1;
        }
        events.push(e);
    }
    // (The shell that runs `sleep` has the duration in its command line
    // too, so this finds the commands whether or not sleep started yet.)
    assert!(
        !running_with(&secs).is_empty(),
        "the remote commands are not running"
    );
    sigint(&child);
    while let Some(line) = lines.next_line().await.unwrap() {
        events.push(serde_json::from_str(&line).unwrap());
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("vmssh did not stop after Ctrl-C")
        .unwrap();
    let stderr = stderr.await.unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");

    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["stopped"], true);
    assert_eq!(last["cancelled"].as_array().unwrap().len(), 3);

    let r: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r.cancelled().len(), 3, "{}", r.summary());
    let during = r
        .vms
        .iter()
        .filter(|v| v.outcome == Outcome::Cancelled && v.connect.is_some())
        .count();
    assert_eq!(during, 2, "{}", r.summary());
    for v in &r.vms {
        let e = v.failure.as_ref().unwrap().to_string();
        assert!(
            e == "cancelled during step 1: the run was stopped"
                || e == "cancelled before it started: the run was stopped",
            "{}: {e}",
            v.name
        );
    }
    // The remote commands were sent SIGTERM: the sleeps end (their
    // signal may still be on its way to them when the command exits).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !running_with(&secs).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "remote sleep left running: {:?}",
            running_with(&secs)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_exits_at_once() {
    let hosts = Hosts::start(&["j1"]).await;
    let report = hosts.path("never.json");
    // Endless output that nobody reads once it started: the run cannot
    // finish its graceful stop (its output sink waits on the full pipe).
    // The command also ignores SIGTERM, so that where the pipe is not full
    // yet when the first Ctrl-C lands (a loaded machine), the stop still
    // waits for the channel to close (up to 5 s) and the second one finds
    // the run still stopping.
    let mut c = hosts.verb(
        "exec",
        &[
            "--json",
            "--report",
            report.to_str().unwrap(),
            "--",
            "trap '' TERM; yes flood",
        ],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = out.next_line().await.unwrap().expect("vmssh ended early");
        if line.contains("\"output\"") {
            break;
        }
    }
    sigint(&child);
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), err.next_line())
            .await
            .expect("no word on the first Ctrl-C")
            .unwrap()
            .expect("vmssh ended without a word");
        if line.contains("interrupt again to exit at once") {
            break;
        }
    }
    sigint(&child);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("a second Ctrl-C did not exit")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    while let Some(l) = err.next_line().await.unwrap() {
        rest.push_str(&l);
    }
    assert!(rest.contains("interrupted again: exiting"), "{rest}");
    assert!(
        !report.exists(),
        "the report of an abandoned run was written"
    );
}

/// Ctrl-C against real servers (OpenSSH's sshd, which refuses signal
/// requests for root, and dropbear): no remote process of the run is left,
/// checked below the server, and each host is said to be stopped once.
async fn ctrl_c_stops_remote_commands(srv: &support::Server) {
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let key = srv.client_key().private.display().to_string();
    let (a, b) = (
        format!("a={}@127.0.0.1:{}", srv.user(), srv.port()),
        format!("b={}@127.0.0.1:{}", srv.user(), srv.port()),
    );
    let secs = format!("{}.{}", 4000 + std::process::id() % 1000, 23);
    let mut c = cli_harness::command(dir.path());
    c.arg("exec")
        .args(["--host", &a, "--host", &b, "--key", &key])
        .arg("--known-hosts")
        .arg(&known)
        .args(["--", &format!("echo ready; sleep {secs}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut ready = 0;
    while ready < 2 {
        let line = tokio::time::timeout(Duration::from_secs(60), out.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("vmssh ended early");
        if line.ends_with("ready") {
            ready += 1;
        }
    }
    // Each host's shell (and its sleep, once started) has the duration in
    // its command line. The whole machine is searched: a command its
    // server left behind is re-parented to init, no longer below it.
    let run = |_: &support::Server| {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains(&secs)
            })
            .count()
    };
    assert!(run(srv) >= 2, "the commands are not running");
    sigint(&child);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("vmssh did not stop after Ctrl-C")
        .unwrap();
    let stderr = stderr.await.unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    // Stopping waits for the process group to end, so nothing is left
    // once the command has exited (but a zombie may still be reaped).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while run(srv) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "remote commands left running below {}\n{stderr}",
            srv.name(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for host in ["a", "b"] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("[{host}]")))
            .collect();
        assert_eq!(
            lines.iter().filter(|l| l.contains("stopped")).count(),
            1,
            "{host} is not said to be stopped once:\n{stderr}"
        );
        let row = stderr
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no summary row for {host}:\n{stderr}"));
        assert!(row.contains(" stopped "), "{row}");
        assert!(
            !row.contains("cancelled") && !row.contains("FAILED"),
            "{row}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| ["done", "succeeded", "FAILED", "cancelled"]
                    .iter()
                    .any(|w| l.contains(w))),
            "{host} is said to be done:\n{stderr}"
        );
    }
}
support::on_both_servers!(ctrl_c_stops_remote_commands);
