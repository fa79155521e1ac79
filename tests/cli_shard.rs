//! `--shard K/N` across processes: four shard runs against one testkit
//! server, merged with `vmssh report merge`, give the report of one
//! unsharded run, timings aside.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::time::Duration;

use cli_harness::{Hosts, assert_exit, run, stderr, stdout};
use vmssh::fleet::FleetReport;

/// Timings differ between runs; everything else must not.
fn without_timings(mut r: FleetReport) -> FleetReport {
    r.wall = Duration::ZERO;
    for v in &mut r.vms {
        v.total = Duration::ZERO;
        v.connect = v.connect.map(|_| Duration::ZERO);
        for s in &mut v.steps {
            s.duration = Duration::ZERO;
        }
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_merge_into_the_unsharded_report() {
    let hosts = Hosts::start(&["server"]).await;
    let h = &hosts.hosts[0];
    // Twenty hosts, all on the one server, one of them failing.
    let inventory = hosts.path("fleet");
    let lines: String = (0..20)
        .map(|i| {
            format!(
                "vm-{i:02} {}@127.0.0.1:{} key={}\n",
                h.server.user(),
                h.server.port(),
                h.key.display()
            )
        })
        .collect();
    std::fs::write(&inventory, lines).unwrap();
    let plan = hosts.path("VMFile.kdl");
    std::fs::write(
        &plan,
        "provision \"shell\" {\n    inline \"echo shared step\"\n}\n\
         vm \"vm-07\" {\n    provision \"shell\" {\n        inline \"echo failing >&2; exit 4\"\n    }\n}\n",
    )
    .unwrap();
    let known = hosts.known_hosts();
    let args = |report: &std::path::Path, shard: Option<String>| {
        let mut c = hosts.cmd(&["provision"]);
        c.arg("--plan")
            .arg(&plan)
            .arg("--hosts")
            .arg(&inventory)
            .arg("--known-hosts")
            .arg(&known)
            .arg("--report")
            .arg(report);
        if let Some(s) = shard {
            c.arg("--shard").arg(s);
        }
        c
    };

    let whole = hosts.path("whole.json");
    let o = run(args(&whole, None)).await;
    assert_exit(&o, 1);

    let shards: Vec<_> = (0..4)
        .map(|k| hosts.path(&format!("shard-{k}.json")))
        .collect();
    let runs = shards
        .iter()
        .enumerate()
        .map(|(k, path)| run(args(path, Some(format!("{k}/4")))));
    let outputs = futures::future::join_all(runs).await;
    let mut counted = 0;
    for (k, o) in outputs.iter().enumerate() {
        let report: FleetReport =
            serde_json::from_slice(&std::fs::read(&shards[k]).unwrap()).unwrap();
        counted += report.vms.len();
        // The shard holding vm-07 fails; the others succeed.
        let code = if report.get("vm-07").is_some() { 1 } else { 0 };
        assert_exit(o, code);
        assert!(
            stderr(o).contains(&format!("shard {k}/4: ")),
            "{}",
            stderr(o)
        );
    }
    assert_eq!(counted, 20, "the shards do not partition the hosts");

    let mut merge = hosts.cmd(&["report", "merge"]);
    merge.args(&shards);
    let o = run(merge).await;
    assert_exit(&o, 0);
    let merged: FleetReport = serde_json::from_str(&stdout(&o)).unwrap();

    let mut unsharded: FleetReport =
        serde_json::from_slice(&std::fs::read(&whole).unwrap()).unwrap();
    unsharded.vms.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(without_timings(merged.clone()), without_timings(unsharded));
    assert_eq!(merged.failed(), ["vm-07"]);
    assert_eq!(merged.get("vm-07").unwrap().failed_step(), Some(2));

    // Shards never overlap: a host in two reports is refused.
    let mut overlap = hosts.cmd(&["report", "merge"]);
    overlap.arg(&shards[0]).arg(&shards[1]).arg(&shards[0]);
    let o = run(overlap).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("shards do not overlap"),
        "{}",
        stderr(&o)
    );
}
