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

/// A plan for hosts `names`: a shared inline step, then each host's
/// script `script`.
fn write_plan(hosts: &Hosts, names: &[&str], script: &str) -> std::path::PathBuf {
    let mut text = String::from("provision \"shell\" {\n    inline \"echo shared\"\n}\n");
    for n in names {
        text.push_str(&format!(
            "vm \"{n}\" {{\n    provision \"shell\" {{\n        script \"{script}\"\n    }}\n}}\n"
        ));
    }
    let plan = hosts.path("VMFile.kdl");
    std::fs::write(&plan, text).unwrap();
    plan
}

/// `--dry-run` resolves every host and step, prints them and connects
/// nowhere, not even to the jump host: no server sees a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_connects_nowhere() {
    let hosts = Hosts::start(&["d0", "d1", "bastion"]).await;
    std::fs::write(hosts.path("setup.sh"), "#!/bin/sh\necho setup\n").unwrap();
    let plan = write_plan(&hosts, &["d0", "d1"], "setup.sh");
    let d0 = &hosts.hosts[0];
    let d1 = &hosts.hosts[1];
    let bastion = &hosts.hosts[2];
    let inventory = hosts.path("dry-hosts");
    std::fs::write(
        &inventory,
        format!(
            "d0 {}@127.0.0.1:{} key={}\nd1 127.0.0.1:{} key={} jump=jumper@127.0.0.1:{}\n",
            d0.server.user(),
            d0.server.port(),
            d0.key.display(),
            d1.server.port(),
            d1.key.display(),
            bastion.server.port(),
        ),
    )
    .unwrap();
    let args = |json: bool| {
        let mut args = vec![
            "provision".to_string(),
            "--dry-run".into(),
            "--plan".into(),
            plan.display().to_string(),
            "--hosts".into(),
            inventory.display().to_string(),
            "--key".into(),
            bastion.key.display().to_string(),
            "--known-hosts".into(),
            hosts.known_hosts().display().to_string(),
            "--serial".into(),
            "1".into(),
        ];
        if json {
            args.push("--json".into());
        }
        args
    };
    let a = args(false);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(hosts.cmd(&a)).await;
    assert_exit(&o, 0);
    let out = cli_harness::stdout(&o);
    let known = hosts.known_hosts().display().to_string();
    for want in [
        format!("d0 ({}:1)\n", inventory.display()),
        format!(
            "  address    {}@127.0.0.1:{}\n",
            d0.server.user(),
            d0.server.port()
        ),
        format!(
            "  auth       key {}, key {}\n",
            d0.key.display(),
            bastion.key.display()
        ),
        format!("  host keys  known_hosts {known}\n"),
        "  jump       none\n".to_string(),
        format!(
            "  jump       jumper@127.0.0.1:{} (auth: key {}; host keys: known_hosts {known})\n",
            bastion.server.port(),
            bastion.key.display()
        ),
        "  steps      1. inline: echo shared\n".to_string(),
        format!(
            "             2. script: setup.sh ({})\n",
            hosts.path("setup.sh").display()
        ),
        "  batch      2\n".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} not in:\n{out}");
    }
    assert!(stderr(&o).contains("nothing connected"), "{}", stderr(&o));

    let a = args(true);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(hosts.cmd(&a)).await;
    assert_exit(&o, 0);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["batches"], serde_json::json!([1, 1]));
    assert_eq!(doc["problems"], serde_json::json!([]));
    let h = &doc["hosts"][1];
    assert_eq!(h["name"], "d1");
    assert_eq!(h["port"], d1.server.port());
    assert_eq!(h["host_key"], format!("known_hosts {known}"));
    assert_eq!(h["jump"].as_array().unwrap().len(), 1);
    assert_eq!(h["steps"][1]["description"], "script: setup.sh");
    for h in &hosts.hosts {
        assert_eq!(
            h.server.connections_accepted(),
            0,
            "{} was connected to",
            h.name
        );
    }
}

/// A dry run finds every problem before anything connects, and exits 2:
/// here a missing script (for every host that runs it) and a missing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_exits_2_with_the_problems_found() {
    let hosts = Hosts::start(&["m0", "m1"]).await;
    let plan = write_plan(&hosts, &["m0", "m1"], "missing.sh");
    let inventory = hosts.path("missing-key-hosts");
    let m0 = &hosts.hosts[0];
    std::fs::write(
        &inventory,
        format!(
            "m0 127.0.0.1:{} key={}\nm1 127.0.0.1:{} key=no-such-key\n",
            m0.server.port(),
            m0.key.display(),
            hosts.hosts[1].server.port()
        ),
    )
    .unwrap();
    let o = run(hosts.cmd(&[
        "provision",
        "--dry-run",
        "--plan",
        plan.to_str().unwrap(),
        "--hosts",
        inventory.to_str().unwrap(),
        "--known-hosts",
        hosts.known_hosts().to_str().unwrap(),
    ]))
    .await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    let script = hosts.path("missing.sh").display().to_string();
    for h in ["m0", "m1"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("vmssh: error: provisioning ")
                    && l.contains(&format!("{h}: step 2 (script: missing.sh)"))
                    && l.contains(&script)),
            "{h}: {err}"
        );
    }
    assert!(
        err.lines().any(|l| l.starts_with("vmssh: error: m1 (")
            && l.contains("no-such-key: cannot read the key file")),
        "{err}"
    );
    assert!(
        err.contains("vmssh: error: dry run: 3 problems found; nothing connected"),
        "{err}"
    );
    // Still, what could be resolved is shown.
    assert!(
        cli_harness::stdout(&o).contains("m0 ("),
        "{}",
        cli_harness::stdout(&o)
    );
    for h in &hosts.hosts {
        assert_eq!(
            h.server.connections_accepted(),
            0,
            "{} was connected to",
            h.name
        );
    }
    // Without --dry-run, the same plan is refused before anything runs.
    let o = run(hosts.cmd(&[
        "provision",
        "--plan",
        plan.to_str().unwrap(),
        "--hosts",
        inventory.to_str().unwrap(),
    ]))
    .await;
    assert_exit(&o, 2);
}

/// `provision --rerun-failed REPORT`: only the hosts the report lists as
/// failed run again (the servers of the others see no new connection),
/// and the new report says whose rerun it is. A report host missing from
/// today's hosts is an error naming it, before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_runs_only_the_failed_hosts() {
    let names = names(4, "r");
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hosts = Hosts::start(&names).await;
    let fixed = hosts.path("fixed");
    let ran = hosts.path("ran.log");
    let plan = hosts.path("VMFile.kdl");
    std::fs::write(
        &plan,
        format!(
            "provision \"shell\" {{\n    inline \"if [ ! -e {f} ]; then case $HOSTNAME in r1|r2) exit 3;; esac; fi; echo $HOSTNAME >> {r}\"\n}}\nvm \"r0\" {{\n}}\n",
            f = fixed.display(),
            r = ran.display()
        ),
    )
    .unwrap();
    let first = hosts.path("first.json");
    let second = hosts.path("second.json");
    let p = plan.to_str().unwrap();
    let o = run(hosts.verb(
        "provision",
        &["--plan", p, "--report", first.to_str().unwrap()],
    ))
    .await;
    assert_exit(&o, 1);
    assert_eq!(read_report(&first).failed(), ["r1", "r2"]);
    let connections = |hosts: &Hosts| -> Vec<u64> {
        hosts
            .hosts
            .iter()
            .map(|h| h.server.connections_accepted())
            .collect()
    };
    assert_eq!(connections(&hosts), [1, 1, 1, 1]);

    std::fs::write(&fixed, "").unwrap();
    let o = run(hosts.verb(
        "provision",
        &[
            "--plan",
            p,
            "--rerun-failed",
            first.to_str().unwrap(),
            "--report",
            second.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 0);
    // On the server side: r1 and r2 ran again, and only they.
    assert_eq!(connections(&hosts), [1, 2, 2, 1]);
    let mut lines: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines, ["r0", "r1", "r2", "r3"]);
    let r = read_report(&second);
    assert_eq!(r.succeeded(), ["r1", "r2"], "{}", r.summary());
    assert_eq!(r.vms.len(), 2);
    assert_eq!(r.rerun_of.as_deref(), Some(first.as_path()));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("vmssh: rerun of {}: r1, r2 ", first.display())),
        "{err}"
    );

    // A rerun of a rerun that succeeded runs nothing, and says so.
    let third = hosts.path("third.json");
    let o = run(hosts.verb(
        "provision",
        &[
            "--plan",
            p,
            "--rerun-failed",
            second.to_str().unwrap(),
            "--report",
            third.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("nothing to run"), "{}", stderr(&o));
    assert!(read_report(&third).vms.is_empty());
    assert_eq!(connections(&hosts), [1, 2, 2, 1]);

    // Today's hosts without r1 and r2: an error naming them.
    let r0 = &hosts.hosts[0];
    let spec = format!("r0=127.0.0.1:{}", r0.server.port());
    let o = run(hosts.cmd(&[
        "provision",
        "--plan",
        p,
        "--host",
        &spec,
        "--key",
        r0.key.to_str().unwrap(),
        "--known-hosts",
        hosts.known_hosts().to_str().unwrap(),
        "--rerun-failed",
        first.to_str().unwrap(),
    ]))
    .await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("hosts r1, r2 failed or cancelled there but are not among the hosts given"),
        "{err}"
    );
    assert_eq!(connections(&hosts), [1, 2, 2, 1]);
}
