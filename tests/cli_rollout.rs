//! The command's rollout tools, run as a subprocess against testkit
//! servers (one per host), each checked on the server side: rolling
//! batches (`--serial`) that stop after a failed batch, reruns of a
//! report's failed hosts (`--rerun-failed`), and dry runs (`--dry-run`)
//! that connect nowhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use cli_harness::{Hosts, assert_exit, json_lines, run, stderr};
use vmssh::fleet::FleetReport;
use vmssh::report::{CancelReason, Failure};

fn read_report(path: &std::path::Path) -> FleetReport {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn names(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// `--serial 1,2 --fail-fast`: the canary fails, so no later batch
/// starts: their servers never see a connection, and the report says
/// each of their hosts was cancelled before it started because batch 1
/// failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_stops_the_later_batches() {
    let names = names(5, "s");
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hosts = Hosts::start(&names).await;
    let report = hosts.path("r.json");
    let command = "if [ $HOSTNAME = s0 ]; then exit 1; fi; true";
    let o = run(hosts.verb(
        "exec",
        &[
            "--serial",
            "1,2",
            "--fail-fast",
            "--report",
            report.to_str().unwrap(),
            "--",
            command,
        ],
    ))
    .await;
    assert_exit(&o, 1);
    assert_eq!(hosts.hosts[0].server.connections_accepted(), 1);
    for h in &hosts.hosts[1..] {
        assert_eq!(
            h.server.connections_accepted(),
            0,
            "{} was connected to after batch 1 failed",
            h.name
        );
    }
    let r = read_report(&report);
    assert_eq!(r.failed(), ["s0"], "{}", r.summary());
    assert_eq!(r.cancelled(), ["s1", "s2", "s3", "s4"]);
    let batches: Vec<Option<usize>> = r.vms.iter().map(|v| v.batch).collect();
    assert_eq!(batches, [Some(1), Some(2), Some(2), Some(3), Some(3)]);
    for v in &r.vms[1..] {
        assert_eq!(
            v.failure,
            Some(Failure::Cancelled {
                reason: CancelReason::BatchFailed { batch: 1, limit: 0 },
                started: false,
                step: None,
            }),
            "{}",
            v.name
        );
    }
    let err = stderr(&o);
    assert!(err.contains("vmssh: batch 1/3: s0\n"), "{err}");
    assert!(!err.contains("batch 2/3"), "{err}");
    assert!(
        err.contains("a VM of batch 1 failed (fail_fast): later batches were not started"),
        "{err}"
    );
}

/// Without a failure, `--serial 1,2` runs every host, batch after batch:
/// on the server side, each batch's commands start only after every
/// command of the previous batch has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_run_one_after_the_other() {
    let names = names(5, "b");
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hosts = Hosts::start(&names).await;
    let log = hosts.path("order.log");
    let l = log.display();
    let command = format!("echo start $HOSTNAME >> {l}; sleep 0.3; echo end $HOSTNAME >> {l}");
    let o = run(hosts.verb("exec", &["--serial", "1,2", "--json", "--", &command])).await;
    assert_exit(&o, 0);
    let events = json_lines(&o);
    let started: Vec<(u64, Vec<String>)> = events
        .iter()
        .filter(|e| e["event"] == "batch_started")
        .map(|e| {
            assert_eq!(e["batches"], 3);
            let vms = e["vms"].as_array().unwrap();
            let vms = vms.iter().map(|v| v.as_str().unwrap().to_string());
            (e["batch"].as_u64().unwrap(), vms.collect())
        })
        .collect();
    assert_eq!(
        started,
        [
            (1, vec!["b0".to_string()]),
            (2, vec!["b1".into(), "b2".into()]),
            (3, vec!["b3".into(), "b4".into()]),
        ]
    );
    let batch_of = |name: &str| match name {
        "b0" => 1,
        "b1" | "b2" => 2,
        _ => 3,
    };
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<(&str, &str)> = text.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(lines.len(), 10, "{text}");
    for (i, (what, host)) in lines.iter().enumerate() {
        if *what != "start" {
            continue;
        }
        // Every host of an earlier batch has ended before this start.
        for earlier in names.iter().filter(|n| batch_of(n) < batch_of(host)) {
            let ended = lines[..i].contains(&("end", earlier));
            assert!(ended, "{host} started before {earlier} ended:\n{text}");
        }
    }
    for h in &hosts.hosts {
        assert_eq!(h.server.connections_accepted(), 1, "{}", h.name);
    }
}
