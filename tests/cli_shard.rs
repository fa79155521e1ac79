//! `--shard K/N` across processes: four shard runs against one testkit
//! server, merged with `vmssh report merge`, give the report of one
//! unsharded run, timings aside; and docs/sharding.md's commands (xargs,
//! GNU parallel, the Kubernetes Job's script, `report merge`), run as
//! written; and its Kubernetes Job valid against Kubernetes' own schemas.
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

/// The shell lines of docs/sharding.md, and the shell script of its
/// Kubernetes Job (`args`), as written: with xargs, with GNU parallel,
/// merged, shown, and as the Job's eight pods would run it
/// (`JOB_COMPLETION_INDEX` 0 to 7, each in a container with no USER),
/// then its merge step. Paths of the Job's volumes are rewritten into a
/// temporary directory; `kubectl wait` is not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(vmssh_have_agent, vmssh_have_parallel)),
    ignore = "needs ssh-agent and GNU parallel"
)]
async fn the_sharding_guide_runs_as_written() {
    let hosts = Hosts::start(&["server"]).await;
    let h = &hosts.hosts[0];
    hosts.user_files();
    let agent = hosts.agent();
    let work = hosts.path("work");
    let (plan_dir, keys, reports) = (work.join("plan"), work.join("keys"), work.join("reports"));
    for d in [&plan_dir, &keys, &reports] {
        std::fs::create_dir_all(d).unwrap();
    }
    let names: Vec<String> = (0..12).map(|i| format!("vm-{i:02}")).collect();
    let inventory: String = names
        .iter()
        .map(|n| format!("{n} 127.0.0.1:{}\n", h.server.port()))
        .collect();
    let plan = "provision \"shell\" {\n    inline \"echo provisioned\"\n}\n\
                vm \"vm-03\" {\n    provision \"shell\" {\n        inline \"echo its own step\"\n    }\n}\n";
    for dir in [&work, &plan_dir] {
        std::fs::write(dir.join("hosts.txt"), &inventory).unwrap();
        std::fs::write(dir.join("VMFile.kdl"), plan).unwrap();
    }
    std::fs::copy(hosts.known_hosts(), plan_dir.join("known_hosts")).unwrap();
    std::fs::copy(&h.key, keys.join("id_ed25519")).unwrap();
    let shell = |line: &str| {
        let mut c = cli_harness::shell(hosts.dir.path(), &work, line);
        c.env("SSH_AUTH_SOCK", agent.socket());
        c
    };
    let merged = |path: &std::path::Path| -> FleetReport {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let shard_files = |dir: &std::path::Path| {
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("shard-"))
            .collect();
        found.sort();
        found
    };

    let lines = cli_harness::doc_commands("docs/sharding.md");
    let [xargs, parallel, merge, show, kubectl, job_merge, job_show] = &lines[..] else {
        panic!("docs/sharding.md's command lines changed: update this test: {lines:#?}");
    };
    assert!(xargs.starts_with("seq 0 3 | xargs -P 4 "), "{xargs}");
    assert!(parallel.starts_with("parallel -j 4 "), "{parallel}");
    for runner in [xargs, parallel] {
        for f in shard_files(&work) {
            std::fs::remove_file(work.join(f)).unwrap();
        }
        let o = run(shell(runner)).await;
        assert_exit(&o, 0);
        assert_eq!(
            shard_files(&work),
            [
                "shard-0.json",
                "shard-1.json",
                "shard-2.json",
                "shard-3.json"
            ],
            "{runner}: {}",
            stderr(&o)
        );
        let o = run(shell(merge)).await;
        assert_exit(&o, 0);
        let all = merged(&work.join("all.json"));
        assert_eq!(all.succeeded(), names, "{runner}");
        let o = run(shell(show)).await;
        assert_exit(&o, 0);
        assert!(
            stdout(&o).contains("12 succeeded, 0 failed"),
            "{}",
            stdout(&o)
        );
    }

    // The Job: each pod runs the container's script.
    let job = job_script();
    assert!(
        job.starts_with("vmssh provision ")
            && job.contains(r#"--shard "$JOB_COMPLETION_INDEX/8""#)
            && job.ends_with(r#"[ "$?" -le 1 ]"#),
        "{job}"
    );
    let in_here = |text: &str| {
        text.replace("/plan/", &format!("{}/", plan_dir.display()))
            .replace("/keys/", &format!("{}/", keys.display()))
            .replace("/reports/", &format!("{}/", reports.display()))
    };
    for k in 0..8 {
        let mut c = cli_harness::shell(hosts.dir.path(), &work, &in_here(&job));
        c.env("JOB_COMPLETION_INDEX", k.to_string());
        let o = run(c).await;
        assert_exit(&o, 0);
    }
    assert_eq!(shard_files(&reports).len(), 8);
    assert!(kubectl.starts_with("kubectl wait "), "{kubectl}");
    let o = run(shell(&in_here(job_merge))).await;
    assert_exit(&o, 0);
    assert_eq!(merged(&reports.join("all.json")).succeeded(), names);
    let o = run(shell(&in_here(job_show))).await;
    assert_exit(&o, 0);
}

/// The Job's container script in docs/sharding.md: the folded (`>-`)
/// item under `args:`, its lines joined with spaces as YAML folds them.
fn job_script() -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sharding.md"),
    )
    .unwrap();
    let mut lines = doc.lines().skip_while(|l| l.trim() != "args:");
    assert_eq!(lines.next().map(str::trim), Some("args:"));
    assert_eq!(lines.next().map(str::trim), Some("- >-"));
    let folded: Vec<&str> = lines
        .take_while(|l| !l.trim().ends_with(':') && !l.trim().starts_with("volumeMounts"))
        .map(str::trim)
        .collect();
    folded.join(" ")
}

/// The Kubernetes Job of docs/sharding.md: its ```` ```yaml ```` block,
/// as written.
fn job_yaml() -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sharding.md"),
    )
    .unwrap();
    let mut lines = doc.lines().skip_while(|l| *l != "```yaml");
    assert_eq!(
        lines.next(),
        Some("```yaml"),
        "docs/sharding.md has no YAML block"
    );
    let yaml: Vec<&str> = lines.take_while(|l| *l != "```").collect();
    assert!(
        yaml.first() == Some(&"apiVersion: batch/v1") && yaml.contains(&"kind: Job"),
        "{yaml:#?}"
    );
    yaml.join("\n") + "\n"
}

/// The Kubernetes versions the Job is checked against: the three minor
/// releases Kubernetes supports, whose schemas the pinned
/// kubernetes-validate (scripts/deps/60-kubernetes-validate.sh) bundles.
const KUBERNETES_VERSIONS: &[&str] = &["1.35.0", "1.36.0", "1.37.0"];

/// Runs `kubernetes-validate --strict` (unknown fields are errors) on
/// `yaml` against Kubernetes `version`: its success and its output.
/// Offline: the schemas are files in its package (it resolves their
/// references as `file://` URLs), and the HTTP proxy variables point at
/// a closed local port, so that a fetch would fail rather than pass.
fn kubernetes_validate(yaml: &str, version: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, yaml).unwrap();
    let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/kubernetes-validate/bin/kubernetes-validate");
    let o = std::process::Command::new(tool)
        .args(["--strict", "-k", version])
        .arg(&file)
        .env("http_proxy", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
#[cfg_attr(
    not(vmssh_have_kubernetes_validate),
    ignore = "needs kubernetes-validate (scripts/deps/60-kubernetes-validate.sh)"
)]
fn the_sharding_guides_job_is_valid_kubernetes() {
    let yaml = job_yaml();
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = kubernetes_validate(&yaml, version);
        assert!(
            ok,
            "Kubernetes {version} refuses docs/sharding.md's Job:\n{out}"
        );
        assert!(out.contains("passed for resource job/provision"), "{out}");
    }
}

/// The validator can fail: the Job with a misspelt field, at the top of
/// its spec and deep in its pod template (a flow mapping), is refused by
/// every version, naming the field.
#[test]
#[cfg_attr(
    not(vmssh_have_kubernetes_validate),
    ignore = "needs kubernetes-validate (scripts/deps/60-kubernetes-validate.sh)"
)]
fn a_misspelt_job_is_refused() {
    let yaml = job_yaml();
    for (right, wrong, named) in [
        (
            "  parallelism: 8",
            "  paralelism: 8",
            "'paralelism' was unexpected",
        ),
        (
            "{ name: keys, mountPath: /keys,",
            "{ name: keys, mountpath: /keys,",
            "'mountPath' is a required property",
        ),
    ] {
        assert_eq!(yaml.matches(right).count(), 1, "{right:?} in {yaml}");
        let broken = yaml.replace(right, wrong);
        for version in KUBERNETES_VERSIONS {
            let (ok, out) = kubernetes_validate(&broken, version);
            assert!(!ok, "Kubernetes {version} accepts {wrong:?}:\n{out}");
            assert!(out.contains(named), "{wrong:?}: {out}");
        }
    }
}
