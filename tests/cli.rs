//! The `vmssh` command run as a subprocess against testkit servers (one per
//! host) and real sshd and dropbear: every subcommand, every exit code,
//! piped lines, `--json`, `--collect`, a terminal, the inventory, the
//! auth and host-key flags, and usage errors that run nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;
use std::time::Duration;
use support::on_both_servers;

use cli_harness::{Hosts, assert_exit, json_lines, run, stderr, stdout};
use vmssh::fleet::{FleetReport, Outcome};

/// Piped, `exec` keeps the hosts' output on standard output, one
/// prefixed line each, and nothing else; their stderr, the progress and
/// the summary go to standard error. Its words are of commands and hosts:
/// no steps, no VMs, no provisioning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_piped_prints_plain_prefixed_lines_and_exits_1_on_a_failure() {
    let hosts = Hosts::start(&["web", "db", "cache"]).await;
    let o = run(hosts.verb(
        "exec",
        &[
            "--",
            "echo hello from $HOSTNAME; echo warn-$HOSTNAME >&2; test $HOSTNAME != db || exit 3",
        ],
    ))
    .await;
    assert_exit(&o, 1);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(!out.contains('\x1b'), "escapes in piped output:\n{out}");
    assert!(!err.contains('\x1b'), "escapes in piped output:\n{err}");
    // Standard output: what the hosts printed, and only that.
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "[cache] hello from cache",
            "[db] hello from db",
            "[web] hello from web"
        ],
        "{out}"
    );
    for name in ["web", "db", "cache"] {
        assert!(err.contains(&format!("[{name}] ! warn-{name}\n")), "{err}");
    }
    assert!(err.contains("[db] FAILED in "), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("[db] FAILED in ") && l.ends_with("s: exit status 3")),
        "{err}"
    );
    // The summary: one line per host, the failure and why on its line.
    assert!(err.contains("\nHOST   RESULT "), "{err}");
    let db = err
        .lines()
        .find(|l| l.starts_with("db ") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("no summary line for db:\n{err}"));
    assert!(db.ends_with("  exit status 3"), "{db}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("web ") && l.contains(" ok ") && l.ends_with("  exit status 0")),
        "{err}"
    );
    assert!(err.contains("2 succeeded, 1 failed in "), "{err}");
    // A command, not a plan.
    for plan_word in ["step", "VM", "provisioning", "==>", "<=="] {
        assert!(!err.contains(plan_word), "{plan_word:?} in:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_json_is_one_event_per_line() {
    let hosts = Hosts::start(&["a", "b"]).await;
    let o = run(hosts.verb(
        "exec",
        &["--json", "--", "printf 'one\\ntwo\\n'; printf '\\377' >&2"],
    ))
    .await;
    assert_exit(&o, 0);
    let events = json_lines(&o);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["succeeded"], serde_json::json!(["a", "b"]));
    assert_eq!(last["stopped"], false);
    for vm in ["a", "b"] {
        let kinds: Vec<&str> = events
            .iter()
            .filter(|e| e["vm"] == vm)
            .map(|e| e["event"].as_str().unwrap())
            .filter(|k| *k != "output")
            .collect();
        assert_eq!(
            kinds,
            [
                "connecting",
                "connected",
                "step_started",
                "step_finished",
                "vm_finished"
            ],
            "{vm}"
        );
        let text: String = events
            .iter()
            .filter(|e| e["vm"] == vm && e["event"] == "output" && e["stream"] == "stdout")
            .map(|e| e["data"].as_str().unwrap())
            .collect();
        assert_eq!(text, "one\ntwo\n");
        // Bytes that are not UTF-8 come as base64, not mangled.
        let err: Vec<&str> = events
            .iter()
            .filter(|e| e["vm"] == vm && e["stream"] == "stderr")
            .map(|e| e["data_base64"].as_str().unwrap())
            .collect();
        assert_eq!(err, ["/w=="]);
        let finished = events
            .iter()
            .find(|e| e["vm"] == vm && e["event"] == "step_finished")
            .unwrap();
        assert_eq!(finished["status"], serde_json::json!({"code": 0}));
        assert_eq!(finished["ok"], true);
    }
}

/// `--json` and the report file share one schema, the library's: every
/// line reads back as a `vmssh::report::Event`, the report as a
/// `FleetReport`, and a VM's `vm_finished` event carries the same failure
/// as its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_and_the_report_read_back_with_the_library_types() {
    use vmssh::report::{Event, Failure};

    let hosts = Hosts::start(&["ok1", "bad"]).await;
    let report = hosts.path("r.json");
    let command = "echo out; if [ $HOSTNAME = bad ]; then echo boom >&2; exit 3; fi";
    let o = run(hosts.verb(
        "exec",
        &[
            "--json",
            "--report",
            report.to_str().unwrap(),
            "--",
            command,
        ],
    ))
    .await;
    assert_exit(&o, 1);
    let events: Vec<Event> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let r: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let bad = r.get("bad").unwrap();
    match &bad.failure {
        Some(Failure::Step {
            step: 1, status, ..
        }) => assert_eq!(status.as_ref().and_then(|s| s.code()), Some(3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(bad.stderr_tail.as_deref(), Some("boom"));
    let finished = events
        .iter()
        .find_map(|e| match e {
            Event::VmFinished {
                vm,
                failure,
                stderr_tail,
                ..
            } if &**vm == "bad" => Some((failure.clone(), stderr_tail.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(finished, (bad.failure.clone(), bad.stderr_tail.clone()));
    match events.last() {
        Some(Event::Finished {
            succeeded, failed, ..
        }) => {
            assert_eq!(succeeded, &["ok1"]);
            assert_eq!(failed, &["bad"]);
        }
        other => panic!("{other:?}"),
    }
    // Durations are seconds, the same in both.
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(raw["wall"].is_f64(), "{raw}");
    assert!(raw["vms"][0]["total"].is_f64(), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_collect_groups_output_per_host() {
    let hosts = Hosts::start(&["h1", "h2", "h3"]).await;
    let o = run(hosts.verb(
        "exec",
        &[
            "--collect",
            "--",
            "for i in 1 2 3; do echo $HOSTNAME line $i; sleep 0.05; done; echo oops >&2",
        ],
    ))
    .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    for name in ["h1", "h2", "h3"] {
        let block = format!(
            "=== {name}: ok in " // then the time
        );
        let start = out
            .find(&block)
            .unwrap_or_else(|| panic!("no block for {name}:\n{out}"));
        let body = &out[start..];
        let body = &body[body.find('\n').unwrap() + 1..];
        assert!(
            body.starts_with(&format!(
                "{name} line 1\n{name} line 2\n{name} line 3\n--- {name}: stderr\noops\n"
            )),
            "{name}'s block is not whole:\n{out}"
        );
    }
    assert!(!out.contains("[h1]"), "live lines with --collect:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_output_shows_guest_escapes() {
    let hosts = Hosts::start(&["e1"]).await;
    let o = run(hosts.verb(
        "exec",
        &[
            "--collect",
            "--",
            "printf 'a\\033[2Jb\\r\\n'; printf 'c\\033]52;c;Zm9v\\007d\\n' >&2",
        ],
    ))
    .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("a^[[2Jb\n--- e1: stderr\nc^[]52;c;Zm9v^Gd\n"),
        "{out:?}"
    );
    assert!(
        !out.contains('\x1b'),
        "a guest escape reached the output: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_download_one_file_per_host() {
    let hosts = Hosts::start_with(&["u1", "u2"], true).await;
    let local = hosts.path("app.conf");
    std::fs::write(&local, "listen 8080;\n").unwrap();
    let o = run(hosts.verb("upload", &[local.to_str().unwrap(), "/etc/app/"])).await;
    assert_exit(&o, 0);
    for h in &hosts.hosts {
        let root = h.root.as_ref().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/app/app.conf")).unwrap(),
            "listen 8080;\n"
        );
        // Make the copies differ, to see each come back to its own file.
        std::fs::write(root.join("etc/app/app.conf"), format!("on {}\n", h.name)).unwrap();
    }
    let into = hosts.path("fetched");
    let o = run(hosts.verb("download", &["/etc/app/app.conf", into.to_str().unwrap()])).await;
    assert_exit(&o, 0);
    // Each host's copy keeps the remote name, as pssh's pslurp does.
    for h in &hosts.hosts {
        assert_eq!(
            std::fs::read_to_string(into.join(&h.name).join("app.conf")).unwrap(),
            format!("on {}\n", h.name)
        );
    }
    // A file missing on the hosts: each host fails, exit 1.
    let o = run(hosts.verb("download", &["/no/such/file", into.to_str().unwrap()])).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("0 succeeded, 2 failed"),
        "{}",
        stderr(&o)
    );
    // A REMOTE that names no file is refused before anything runs.
    let o = run(hosts.verb("download", &["/etc/app/", into.to_str().unwrap()])).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("/etc/app/ does not name a file"),
        "{}",
        stderr(&o)
    );
}

/// `--channels N` moves one file over up to N SFTP channels of the
/// connection, even on loopback (where the automatic choice is one), and
/// `--channels 1` over one: counted in sshd's log as SFTP sessions. A
/// 64 MiB file keeps the transfer going while the extra channels open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn upload_and_download_over_chosen_channels() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let local = dir.path().join("big.bin");
    let mut data = vec![0u8; 64 * 1024 * 1024];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut data);
    std::fs::write(&local, &data).unwrap();
    let remote = tempfile::tempdir().unwrap();
    let dst = remote.path().join("big.bin");
    let target = format!("{}@127.0.0.1:{}", srv.user(), srv.port());
    let vmssh = |verb: &str, rest: &[&str]| {
        let mut c = cli_harness::command(dir.path());
        c.arg(verb)
            .args(["--host", &target, "--known-hosts"])
            .arg(&known)
            .arg("--key")
            .arg(&srv.client_key().private)
            .args(rest);
        c
    };
    let needle = "Starting session: subsystem 'sftp'";
    let sessions = || srv.log().matches(needle).count();

    let o = run(vmssh(
        "upload",
        &[
            "--channels",
            "1",
            local.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 0);
    assert!(std::fs::read(&dst).unwrap() == data, "the upload differs");
    srv.log_count(needle, 1, Duration::from_secs(20)).await;
    assert_eq!(sessions(), 1, "upload --channels 1 took more channels");

    let o = run(vmssh(
        "upload",
        &[
            "--channels",
            "4",
            local.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 0);
    assert!(std::fs::read(&dst).unwrap() == data, "the upload differs");
    let after_upload = srv.log_count(needle, 3, Duration::from_secs(20)).await;
    assert!(
        after_upload >= 3,
        "upload --channels 4 took one channel: {after_upload} SFTP sessions in all"
    );

    let back = dir.path().join("back");
    let o = run(vmssh(
        "download",
        &[
            "--channels",
            "4",
            dst.to_str().unwrap(),
            back.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 0);
    // LOCAL_DIR/HOST/NAME, HOST as the run names it.
    let hosts: Vec<_> = std::fs::read_dir(&back)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let got = std::fs::read(hosts[0].join("big.bin")).unwrap();
    assert!(got == data, "the download differs");
    let after_download = srv
        .log_count(needle, after_upload + 2, Duration::from_secs(20))
        .await;
    assert!(
        after_download > after_upload + 1,
        "download --channels 4 took one channel: {after_download} SFTP sessions in all, {after_upload} before"
    );
}

/// `upload -r` copies a tree to every host (modes, empty directories,
/// links as links); `download -r` brings each host's copy back into
/// LOCAL_DIR/HOST/NAME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_download_a_directory_per_host() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let hosts = Hosts::start_with(&["d1", "d2"], true).await;
    let site = hosts.path("site");
    std::fs::create_dir_all(site.join("conf/empty")).unwrap();
    std::fs::write(site.join("conf/app.conf"), "listen 8080;\n").unwrap();
    std::fs::write(site.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(site.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("conf/app.conf", site.join("current")).unwrap();

    // Without -r a directory is refused before anything runs.
    let o = run(hosts.verb("upload", &[site.to_str().unwrap(), "/srv/site"])).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("is a directory (use -r)"),
        "{}",
        stderr(&o)
    );

    let o = run(hosts.verb("upload", &["-r", site.to_str().unwrap(), "/srv/site"])).await;
    assert_exit(&o, 0);
    for h in &hosts.hosts {
        let root = h.root.as_ref().unwrap().join("srv/site");
        assert_eq!(
            std::fs::read_to_string(root.join("conf/app.conf")).unwrap(),
            "listen 8080;\n"
        );
        assert_eq!(mode(&root.join("run.sh")), 0o755);
        assert!(root.join("conf/empty").is_dir());
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            std::path::Path::new("conf/app.conf")
        );
        std::fs::write(root.join("conf/app.conf"), format!("on {}\n", h.name)).unwrap();
    }

    let into = hosts.path("fetched");
    let o = run(hosts.verb("download", &["-r", "/srv/site/", into.to_str().unwrap()])).await;
    assert_exit(&o, 0);
    for h in &hosts.hosts {
        let back = into.join(&h.name).join("site");
        assert_eq!(
            std::fs::read_to_string(back.join("conf/app.conf")).unwrap(),
            format!("on {}\n", h.name)
        );
        assert_eq!(mode(&back.join("run.sh")) & 0o700, 0o700);
        assert!(back.join("conf/empty").is_dir());
        assert_eq!(
            std::fs::read_link(back.join("current")).unwrap(),
            std::path::Path::new("conf/app.conf")
        );
    }
}

/// A plan with a top-level step for every host, a vm block per host, a
/// script, and a marker touched by every step that runs.
fn write_plan(
    dir: &std::path::Path,
    marker: &std::path::Path,
    fail: Option<&str>,
) -> std::path::PathBuf {
    let m = marker.display();
    let mut text =
        format!("provision \"shell\" {{\n    inline \"echo shared on $HOSTNAME; touch {m}\"\n}}\n");
    for vm in ["p1", "p2"] {
        let step = if fail == Some(vm) {
            "exit 4"
        } else {
            "echo own step"
        };
        text.push_str(&format!(
            "vm \"{vm}\" {{\n    provision \"shell\" {{\n        inline \"{step}\"\n    }}\n    provision \"shell\" {{\n        script \"setup.sh\"\n    }}\n}}\n"
        ));
    }
    std::fs::write(
        dir.join("setup.sh"),
        "#!/bin/sh\necho script on $HOSTNAME\n",
    )
    .unwrap();
    let plan = dir.join("VMFile.kdl");
    std::fs::write(&plan, text).unwrap();
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_runs_the_plan_writes_logs_and_report_and_report_show_reads_it() {
    let hosts = Hosts::start(&["p1", "p2"]).await;
    let marker = hosts.path("ran");
    let plan = write_plan(hosts.dir.path(), &marker, None);
    let report = hosts.path("report.json");
    let logs = hosts.path("logs");
    let o = run(hosts.verb(
        "provision",
        &[
            "--plan",
            plan.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("[p1] shared on p1") && out.contains("[p2] script on p2"),
        "{out}"
    );
    let r: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r.succeeded(), ["p1", "p2"]);
    assert_eq!(r.get("p1").unwrap().steps.len(), 3);
    let log = std::fs::read_to_string(logs.join("p2/provision.log")).unwrap();
    assert!(log.contains("script on p2"), "{log}");

    let o = run(hosts.cmd(&["report", "show", report.to_str().unwrap()])).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("2 succeeded, 0 failed"),
        "{}",
        stdout(&o)
    );

    // A failing step: exit 1, and `report show` says so with exit 1 too.
    let plan = write_plan(hosts.dir.path(), &marker, Some("p2"));
    let o = run(hosts.verb(
        "provision",
        &[
            "--plan",
            plan.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    ))
    .await;
    assert_exit(&o, 1);
    let r: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r.failed(), ["p2"]);
    assert_eq!(r.get("p2").unwrap().failed_step(), Some(2));
    let o = run(hosts.cmd(&["report", "show", report.to_str().unwrap()])).await;
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("p2") && stdout(&o).contains("exit status 4"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_and_max_fail_stop_the_rest() {
    let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hosts = Hosts::start(&names).await;
    let command = "if [ $HOSTNAME = f0 ]; then exit 1; fi; sleep 600";
    let report = hosts.path("r.json");
    let r = report.to_str().unwrap();
    let o = run(hosts.verb("exec", &["--fail-fast", "--report", r, "--", command])).await;
    assert_exit(&o, 1);
    let rep: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep.failed(), ["f0"]);
    assert_eq!(rep.cancelled().len(), 5, "{}", rep.summary());
    assert!(
        stderr(&o).contains("another host failed (--fail-fast)"),
        "{}",
        stderr(&o)
    );

    // 1 failure of 6 is within 20 %: the others run to the end.
    let command = "if [ $HOSTNAME = f0 ]; then exit 1; fi; true";
    let o = run(hosts.verb("exec", &["--max-fail", "20", "--report", r, "--", command])).await;
    assert_exit(&o, 1);
    let rep: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!((rep.failed().len(), rep.succeeded().len()), (1, 5));
    // 2 of 6 is more than 20 % (limit: 1): the sleepers are stopped.
    let command = "case $HOSTNAME in f0|f1) exit 1;; esac; sleep 600";
    let o = run(hosts.verb("exec", &["--max-fail", "20", "--report", r, "--", command])).await;
    assert_exit(&o, 1);
    let rep: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep.failed(), ["f0", "f1"]);
    assert_eq!(rep.cancelled().len(), 4);
    for v in rep.vms.iter().filter(|v| v.outcome == Outcome::Cancelled) {
        assert!(
            v.failure
                .as_ref()
                .unwrap()
                .to_string()
                .contains("max_failures"),
            "{:?}",
            v.failure
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_flags_ssh_config_and_host_key_flags() {
    let hosts = Hosts::start(&["one"]).await;
    let h = &hosts.hosts[0];
    let spec = format!("one={}@127.0.0.1:{}", h.server.user(), h.server.port());
    let key = h.key.to_str().unwrap();
    let known = hosts.known_hosts();
    let k = known.to_str().unwrap();
    // --host with --key and --known-hosts.
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        key,
        "--known-hosts",
        k,
        "--",
        "echo via host flag",
    ]))
    .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[one] via host flag"), "{}", stdout(&o));

    // --accept-new records the key; a later run trusts the file alone.
    let fresh = hosts.path("fresh_known_hosts");
    let f = fresh.to_str().unwrap();
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        key,
        "--known-hosts",
        f,
        "--accept-new",
        "--",
        "true",
    ]))
    .await;
    assert_exit(&o, 0);
    let recorded = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        recorded.contains(
            h.server
                .host_public_key_line()
                .split_whitespace()
                .nth(1)
                .unwrap()
        )
    );
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        key,
        "--known-hosts",
        f,
        "--",
        "true",
    ]))
    .await;
    assert_exit(&o, 0);

    // An unknown host key is refused by default (HOME's known_hosts is
    // empty): the host fails, exit 1, and the message names the file
    // checked and the way out.
    let o = run(hosts.cmd(&["exec", "--host", &spec, "--key", key, "--", "true"])).await;
    assert_exit(&o, 1);
    let home_known = hosts.dir.path().join("home/.ssh/known_hosts");
    let err = stderr(&o);
    assert!(
        err.contains("[one] FAILED in ")
            && err.contains("is unknown (SHA256:")
            && err.contains(&format!(
                "): not in {}; refusing to connect",
                home_known.display()
            )),
        "{err}"
    );
    assert!(
        err.contains("vmssh: hint: the host key of a host was refused")
            && err.contains("run again with --accept-new"),
        "{err}"
    );
    // The same with --known-hosts FILE: that file is named.
    let other = hosts.path("other_known_hosts");
    std::fs::write(&other, "").unwrap();
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        key,
        "--known-hosts",
        other.to_str().unwrap(),
        "--",
        "true",
    ]))
    .await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("not in {};", other.display()))
            && stderr(&o).contains("--accept-new"),
        "{}",
        stderr(&o)
    );
    // ... unless any is accepted, spelled out.
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        key,
        "--insecure-accept-any",
        "--",
        "true",
    ]))
    .await;
    assert_exit(&o, 0);

    // --ssh-config: an alias from a config file, with its own key and
    // known_hosts.
    let config = hosts.path("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host web\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {k}\n  StrictHostKeyChecking yes\n\
             Host inner\n  HostName 10.0.0.7\n  ProxyCommand nc %h %p\n",
            h.server.port(),
            h.server.user()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let o = run(hosts.cmd(&[
        "exec",
        "--ssh-config-file",
        c,
        "--ssh-config",
        "web",
        "--",
        "echo via alias",
    ]))
    .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[web] via alias"), "{}", stdout(&o));
    // A ProxyCommand host is refused, not silently reached directly.
    let o = run(hosts.cmd(&[
        "exec",
        "--ssh-config-file",
        c,
        "--ssh-config",
        "inner",
        "--",
        "true",
    ]))
    .await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("ProxyCommand is not supported"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_the_environment() {
    let server = vmssh_testkit::TestServer::builder()
        .password("s3cret pw")
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("pw={}@127.0.0.1:{}", server.user(), server.port());
    let mut c = cli_harness::command(dir.path());
    c.args([
        "exec",
        "--host",
        &spec,
        "--password-env",
        "VMSSH_TEST_PW",
        "--insecure-accept-any",
        "--",
        "echo in",
    ])
    .env("VMSSH_TEST_PW", "s3cret pw");
    let o = run(c).await;
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("s3cret") && !stderr(&o).contains("s3cret"));
    // The wrong password: the host fails, the password never shows.
    let mut c = cli_harness::command(dir.path());
    c.args([
        "exec",
        "--host",
        &spec,
        "--password-env",
        "VMSSH_TEST_PW",
        "--insecure-accept-any",
        "--",
        "echo in",
    ])
    .env("VMSSH_TEST_PW", "wrong s3cret");
    let o = run(c).await;
    assert_exit(&o, 1);
    assert!(!stdout(&o).contains("s3cret") && !stderr(&o).contains("s3cret"));
}

/// Every usage error exits 2 with a clear message and runs nothing on any
/// host (each command would touch the marker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_run_nothing() {
    let hosts = Hosts::start(&["p1", "p2"]).await;
    let marker = hosts.path("touched");
    let m = marker.to_str().unwrap().to_string();
    let touch = format!("touch {m}");
    let inventory = hosts.inventory();
    let inv = inventory.to_str().unwrap().to_string();
    let known = hosts.known_hosts();
    let k = known.to_str().unwrap().to_string();
    let good_plan = write_plan(hosts.dir.path(), &marker, None);
    let gp = good_plan.to_str().unwrap().to_string();

    let bad_inventory = hosts.path("bad_hosts");
    std::fs::write(
        &bad_inventory,
        format!(
            "{}\n# fine so far\nweb 10.0.0.5:99999\n",
            std::fs::read_to_string(&inventory)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
        ),
    )
    .unwrap();
    let jump_inventory = hosts.path("jump_hosts");
    std::fs::write(
        &jump_inventory,
        format!(
            "web 10.0.0.5 key={} jump=bastion\n",
            hosts.hosts[0].key.display()
        ),
    )
    .unwrap();
    let missing_script_dir = hosts.path("plan-missing-script");
    std::fs::create_dir_all(&missing_script_dir).unwrap();
    std::fs::write(
        missing_script_dir.join("VMFile.kdl"),
        format!("provision \"shell\" {{\n    inline \"{touch}\"\n}}\nvm \"p1\" {{\n    provision \"shell\" {{\n        script \"nope.sh\"\n    }}\n}}\n"),
    )
    .unwrap();
    let msp = missing_script_dir.join("VMFile.kdl");
    let garbage_key = hosts.path("garbage_key");
    std::fs::write(&garbage_key, "not a key\n").unwrap();
    let ssh_config = hosts.path("empty_ssh_config");
    std::fs::write(&ssh_config, "Host known\n  HostName 127.0.0.1\n").unwrap();
    let bi = bad_inventory.display().to_string();
    let ji = jump_inventory.display().to_string();
    let bad_line = format!("{bi}:3: invalid port");
    let jump_line = format!("no way to authenticate to the jump host bastion of web ({ji}:1)");

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "exec".into(),
                "--no-such-flag".into(),
                "--".into(),
                touch.clone(),
            ],
            "--no-such-flag",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--sudo-password-env".into(),
                "HOME".into(),
                "--".into(),
                touch.clone(),
            ],
            "a sudo password is for a command run with --sudo",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--sudo".into(),
                "--sudo-password-env".into(),
                "VMSSH_NO_SUCH_VARIABLE".into(),
                "--".into(),
                touch.clone(),
            ],
            "--sudo-password-env VMSSH_NO_SUCH_VARIABLE: the variable is not set",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--sudo".into(),
                "--sudo-password-env".into(),
                "HOME".into(),
                "--ask-sudo-password".into(),
                "--".into(),
                touch.clone(),
            ],
            "cannot be used with",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--fail-fast".into(),
                "--max-fail".into(),
                "5".into(),
                "--".into(),
                touch.clone(),
            ],
            "cannot be used with",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--shard".into(),
                "4/4".into(),
                "--".into(),
                touch.clone(),
            ],
            "K/N",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--max-fail".into(),
                "101".into(),
                "--".into(),
                touch.clone(),
            ],
            "101",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                bi.clone(),
                "--".into(),
                touch.clone(),
            ],
            &bad_line,
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                hosts.path("no-such-inventory").display().to_string(),
                "--".into(),
                touch.clone(),
            ],
            "cannot read inventory",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                ji.clone(),
                "--".into(),
                touch.clone(),
            ],
            &jump_line,
        ),
        (
            vec!["exec".into(), "--".into(), touch.clone()],
            "no hosts: give --host, --hosts FILE or --ssh-config ALIAS\n",
        ),
        // --vmctl is provision's alone: exec does not know it.
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--vmctl".into(),
                "--".into(),
                touch.clone(),
            ],
            "unexpected argument '--vmctl'",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--host".into(),
                "p1=127.0.0.1".into(),
                "--".into(),
                touch.clone(),
            ],
            "host name \"p1\" is given twice",
        ),
        (
            vec![
                "exec".into(),
                "--ssh-config-file".into(),
                ssh_config.display().to_string(),
                "--ssh-config".into(),
                "no-such-alias.invalid".into(),
                "--".into(),
                touch.clone(),
            ],
            "unknown host alias",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--key".into(),
                "/no/such/key".into(),
                "--".into(),
                touch.clone(),
            ],
            "--key: private key /no/such/key: cannot read the key file",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--key".into(),
                garbage_key.display().to_string(),
                "--".into(),
                touch.clone(),
            ],
            "not a valid private key",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--password-env".into(),
                "VMSSH_NO_SUCH_VAR".into(),
                "--".into(),
                touch.clone(),
            ],
            "VMSSH_NO_SUCH_VAR: the variable is not set",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--agent".into(),
                "--".into(),
                touch.clone(),
            ],
            "SSH_AUTH_SOCK",
        ),
        (
            vec![
                "exec".into(),
                "--host".into(),
                "x=127.0.0.1".into(),
                "--".into(),
                touch.clone(),
            ],
            "no way to authenticate to x",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--known-hosts".into(),
                "/no/such/known_hosts".into(),
                "--".into(),
                touch.clone(),
            ],
            "--known-hosts /no/such/known_hosts",
        ),
        (
            vec![
                "exec".into(),
                "--hosts".into(),
                inv.clone(),
                "--report".into(),
                "/no/such/dir/r.json".into(),
                "--".into(),
                touch.clone(),
            ],
            "is not a directory",
        ),
        (
            vec![
                "provision".into(),
                "--hosts".into(),
                inv.clone(),
                "--plan".into(),
                hosts.path("NoSuch.kdl").display().to_string(),
            ],
            "NoSuch.kdl",
        ),
        (
            vec![
                "provision".into(),
                "--hosts".into(),
                inv.clone(),
                "--plan".into(),
                msp.display().to_string(),
            ],
            "nope.sh",
        ),
        (
            vec![
                "provision".into(),
                "--host".into(),
                format!("stranger={}@127.0.0.1:1", hosts.hosts[0].server.user()),
                "--key".into(),
                hosts.hosts[0].key.display().to_string(),
                "--plan".into(),
                gp.clone(),
            ],
            "stranger",
        ),
        (
            vec![
                "upload".into(),
                "--hosts".into(),
                inv.clone(),
                "/no/such/local".into(),
                "/tmp/x".into(),
            ],
            "/no/such/local",
        ),
        (
            vec![
                "report".into(),
                "show".into(),
                "/no/such/report.json".into(),
            ],
            "cannot read",
        ),
    ];
    // The good plan with a host it does not know only needs top-level
    // steps to be usable; make sure that case is really an error.
    std::fs::write(
        &good_plan,
        format!(
            "vm \"p1\" {{\n    provision \"shell\" {{\n        inline \"{touch}\"\n    }}\n}}\n"
        ),
    )
    .unwrap();
    for (args, want) in &cases {
        let mut c = cli_harness::command(hosts.dir.path());
        c.arg(&args[0]);
        // Host keys come from the test's known_hosts unless the case is
        // about them (before `--`: after it, words are the command).
        if args[0] != "report"
            && !args
                .iter()
                .any(|a| a.starts_with("--known-hosts") || a.starts_with("--ssh-config"))
        {
            c.args(["--known-hosts", &k]);
        }
        c.args(&args[1..]);
        let o = run(c).await;
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: exit {:?}\n{}\n{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(want),
            "{args:?}: message lacks {want:?}:\n{}",
            stderr(&o)
        );
        assert!(!marker.exists(), "{args:?} ran something");
    }
}

/// A typo in a plan is a usage error by default, every mistake named
/// with its line and a "did you mean", and nothing runs; `--lenient`
/// reads the plan as vmctl does, with warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_typo_is_a_usage_error_unless_lenient() {
    let hosts = Hosts::start(&["p1"]).await;
    let ran = |n: u32| hosts.path(&format!("ran-{n}"));
    let motd = hosts.path("motd");
    std::fs::write(&motd, "hello\n").unwrap();
    let plan = hosts.path("VMFile.kdl");
    let p = plan.display().to_string();
    let write = |second: &str| {
        std::fs::write(
            &plan,
            format!(
                "vm \"p1\" {{\n    provision \"shell\" {{\n        inline \"touch {}\"\n    }}\n\
                 {second}\n    provision \"shell\" {{\n        inline \"touch {}\"\n    }}\n}}\n",
                ran(1).display(),
                ran(3).display()
            ),
        )
        .unwrap();
    };
    let unknown_node = format!(
        "    provison \"file\" {{\n        source \"{}\"\n        destination \"/tmp/x\"\n    }}",
        motd.display()
    );
    let misspelt_field = format!(
        "    provision \"shell\" {{\n        inlne \"touch {}\"\n    }}",
        ran(2).display()
    );
    for (second, want) in [
        (
            &unknown_node,
            format!(
                "vmssh: error: {p}:5: unknown node \"provison\" in vm \"p1\" ignored (did you mean provision?)\n"
            ),
        ),
        (
            &misspelt_field,
            format!(
                "vmssh: error: invalid plan {p}:5: provision \"shell\" needs exactly one of inline or script (found neither) (did you mean inline? line 6 has \"inlne\")\n"
            ),
        ),
    ] {
        write(second);
        let o = run(hosts.verb("provision", &["--plan", &p])).await;
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
        for n in 1..=3 {
            assert!(!ran(n).exists(), "step {n} ran:\n{}", stderr(&o));
        }
    }
    write(&unknown_node);
    let o = run(hosts.verb("provision", &["--plan", &p])).await;
    assert!(stderr(&o).contains("--lenient"), "{}", stderr(&o));

    // Leniently, as vmctl: the misspelt node is skipped, with a warning.
    let o = run(hosts.verb("provision", &["--plan", &p, "--lenient"])).await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains(&format!(
            "vmssh: warning: {p}:5: unknown node \"provison\" in vm \"p1\" ignored (did you mean provision?)"
        )),
        "{}",
        stderr(&o)
    );
    assert!(ran(1).exists() && ran(3).exists());
}

/// A failure whose text spans lines (here a remote path with a line
/// break in it) is shown on real lines, continued under the host's
/// prefix and in the summary's column, never as a literal `^J`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_text_keeps_its_line_breaks() {
    let hosts = Hosts::start(&["nl"]).await;
    let into = hosts.path("fetched");
    let o = run(hosts.verb(
        "download",
        &["/no/such\nplace/file", into.to_str().unwrap()],
    ))
    .await;
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(!err.contains("^J"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("[nl] FAILED in ") && l.ends_with(": cannot download /no/such"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(lines[at + 1].starts_with("[nl]   place/file to "), "{err}");
    let row = lines
        .iter()
        .position(|l| l.starts_with("nl ") && l.ends_with("  cannot download /no/such"))
        .unwrap_or_else(|| panic!("{err}"));
    let column = lines[row].find("cannot download").unwrap();
    assert_eq!(lines[row + 1].find("place/file to "), Some(column), "{err}");
}

/// `--vmctl` is on `provision` alone: other verbs neither list it nor
/// suggest it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmctl_is_a_flag_of_provision_only() {
    let dir = tempfile::tempdir().unwrap();
    for verb in ["exec", "upload", "download"] {
        let mut c = cli_harness::command(dir.path());
        c.args([verb, "--help"]);
        let o = run(c).await;
        assert_exit(&o, 0);
        assert!(
            !stdout(&o).contains("vmctl"),
            "{verb} --help:\n{}",
            stdout(&o)
        );
    }
    let mut c = cli_harness::command(dir.path());
    c.args(["provision", "--help"]);
    let o = run(c).await;
    assert!(stdout(&o).contains("--vmctl[=<STATE>]"), "{}", stdout(&o));
    let mut c = cli_harness::command(dir.path());
    c.args(["provision", "--plan", "VMFile.kdl"])
        .current_dir(dir.path());
    std::fs::write(
        dir.path().join("VMFile.kdl"),
        "vm \"a\" {\n    provision \"shell\" {\n        inline \"true\"\n    }\n}\n",
    )
    .unwrap();
    let o = run(c).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("no hosts: give --host, --hosts FILE, --ssh-config ALIAS or --vmctl"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_embedded_vms_and_shows_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cli_harness::command(dir.path());
    c.args(["demo", "--vms", "3", "--json"]);
    let o = run(c).await;
    assert_exit(&o, 0);
    let events = json_lines(&o);
    assert_eq!(
        events.last().unwrap()["succeeded"],
        serde_json::json!(["web-01", "db-02", "web-03"])
    );
    let mut c = cli_harness::command(dir.path());
    c.args(["demo", "--vms", "2", "--break", "db-02"]);
    let o = run(c).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("[db-02] ! disk full (not really)"),
        "{}",
        stderr(&o)
    );
}

/// On a terminal: colours and progress bars, then the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_output_has_colours_and_bars() {
    let hosts = Hosts::start(&["t1", "t2"]).await;
    // The guest also tries to retitle the window (OSC 0): shown, not run.
    let mut c = hosts.verb(
        "exec",
        &[
            "--",
            "echo terminal output; printf 'x\\033]0;pwned\\007y\\n'",
        ],
    );
    c.env_remove("NO_COLOR").env("TERM", "xterm");
    let (out, status) = cli_harness::run_on_pty(c).await;
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("\x1b["), "no escapes on a terminal:\n{out}");
    assert!(out.contains("terminal output"), "{out}");
    assert!(
        out.contains("x^[]0;pwned^Gy"),
        "guest escape not made visible:\n{out}"
    );
    assert!(
        !out.contains("\x1b]0;pwned"),
        "guest escape reached the terminal:\n{out}"
    );
    assert!(out.contains("hosts done"), "no fleet bar:\n{out}");
    assert!(out.contains("2 succeeded, 0 failed"), "{out}");
    // A command on hosts, not a plan's steps on VMs.
    for plan_word in ["step", "inline:", "VM ", "provisioning"] {
        assert!(
            !out.contains(plan_word),
            "{plan_word:?} on the terminal:\n{out}"
        );
    }
    assert!(out.contains("HOST "), "{out}");
}

/// A script step's upload shows its progress on the host's bar, and the
/// label goes once the script speaks: no `(uploading 0 B/321 B)` left on
/// the bar while the script's output prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upload_label_outlives_the_upload() {
    let names: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hosts = Hosts::start(&names).await;
    let script = hosts.path("setup.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{}echo script-started\nsleep 0.3\necho script-done\n",
            "# padding, to make the upload a few hundred bytes long\n".repeat(6)
        ),
    )
    .unwrap();
    let mut plan = String::new();
    for n in &names {
        plan.push_str(&format!(
            "vm \"{n}\" {{\n    provision \"shell\" {{\n        script \"setup.sh\"\n    }}\n}}\n"
        ));
    }
    let plan_file = hosts.path("VMFile.kdl");
    std::fs::write(&plan_file, plan).unwrap();
    let mut c = hosts.verb("provision", &["--plan", plan_file.to_str().unwrap()]);
    c.env("TERM", "xterm");
    let (out, status) = cli_harness::run_on_pty(c).await;
    assert_eq!(status.code(), Some(0), "{out}");
    for n in &names {
        let spoke = out
            .find(&format!("{n} │ script-started"))
            .unwrap_or_else(|| panic!("no output from {n}:\n{out}"));
        // Every drawing of this host's bar from then on: bars start with
        // a spinner and are padded to the terminal's width.
        let spinner = |c: char| ('\u{2800}'..='\u{28ff}').contains(&c);
        let stale: Vec<&str> = out[spoke..]
            .split(|c: char| spinner(c) || c == '\n' || c == '\r' || c == '\x1b')
            .filter(|seg| seg.starts_with(&format!(" {n} [")) && seg.contains("(uploading"))
            .collect();
        assert!(
            stale.is_empty(),
            "{n}'s bar still says it is uploading after its script spoke: {stale:?}"
        );
    }
}

/// sshd and dropbear as targets: exec, upload and download through the
/// command, with the server's own key file and host key.
async fn real_server_targets(srv: &support::Server) {
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let spec = format!("srv={}@127.0.0.1:{}", srv.user(), srv.port());
    let key = srv.client_key().private.display().to_string();
    let k = known.display().to_string();
    let base = [
        "--host",
        spec.as_str(),
        "--key",
        key.as_str(),
        "--known-hosts",
        k.as_str(),
    ];
    let mut c = cli_harness::command(dir.path());
    c.arg("exec").args(base).args(["--", "echo", "from", "$0"]);
    let o = run(c).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[srv] from "), "{}", stdout(&o));

    let local = dir.path().join("payload");
    std::fs::write(&local, vec![7u8; 300_000]).unwrap();
    let remote = srv.dir().join("uploaded").display().to_string();
    let mut c = cli_harness::command(dir.path());
    c.arg("upload").args(base).arg(&local).arg(&remote);
    assert_exit(&run(c).await, 0);
    let back = dir.path().join("back");
    let mut c = cli_harness::command(dir.path());
    c.arg("download").args(base).arg(&remote).arg(&back);
    assert_exit(&run(c).await, 0);
    assert_eq!(
        std::fs::read(back.join("srv/uploaded")).unwrap(),
        vec![7u8; 300_000]
    );
}
on_both_servers!(real_server_targets);

/// Hosts behind a bastion (OpenSSH's sshd, forwarding to the testkit
/// hosts): from an inventory's `jump=`, from `--jump`, and from an
/// `--ssh-config` `ProxyJump`. An unreachable bastion fails the run (exit
/// 1) before anything runs, which shows the hosts are reached through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn hosts_behind_a_jump_host() {
    let bastion = support::sshd();
    let hosts = Hosts::start(&["b1", "b2"]).await;
    let known = hosts.known_hosts();
    let mut lines = std::fs::read_to_string(&known).unwrap();
    lines.push_str(&format!(
        "[127.0.0.1]:{} {}\n",
        bastion.port(),
        bastion.host_key_line()
    ));
    std::fs::write(&known, lines).unwrap();
    let k = known.display().to_string();
    let jump = format!("{}@127.0.0.1:{}", bastion.user(), bastion.port());
    let bkey = bastion.client_key().private.display().to_string();

    // jump= in the inventory; --key authenticates to the bastion.
    let inventory = hosts.path("behind");
    let text: String = hosts
        .hosts
        .iter()
        .map(|h| {
            format!(
                "{} {}@127.0.0.1:{} key={} jump={jump}\n",
                h.name,
                h.server.user(),
                h.server.port(),
                h.key.display()
            )
        })
        .collect();
    std::fs::write(&inventory, text).unwrap();
    let inv = inventory.display().to_string();
    let o = run(hosts.cmd(&[
        "exec",
        "--hosts",
        &inv,
        "--key",
        &bkey,
        "--known-hosts",
        &k,
        "--",
        "echo via $HOSTNAME",
    ]))
    .await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("[b1] via b1") && stdout(&o).contains("[b2] via b2"),
        "{}",
        stdout(&o)
    );

    // --jump for --host hosts; a bastion that is not there fails the run
    // and nothing runs.
    let h = &hosts.hosts[0];
    let spec = format!("b1={}@127.0.0.1:{}", h.server.user(), h.server.port());
    let key = h.key.display().to_string();
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        &key,
        "--key",
        &bkey,
        "--known-hosts",
        &k,
        "--jump",
        &jump,
        "--",
        "echo flag",
    ]))
    .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[b1] flag"), "{}", stdout(&o));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("{}@{}", bastion.user(), closed.local_addr().unwrap());
    drop(closed);
    let marker = hosts.path("ran");
    let o = run(hosts.cmd(&[
        "exec",
        "--host",
        &spec,
        "--key",
        &key,
        "--key",
        &bkey,
        "--known-hosts",
        &k,
        "--jump",
        &nowhere,
        "--connect-deadline",
        "1",
        "--",
        &format!("touch {}", marker.display()),
    ]))
    .await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("jump host") && stderr(&o).contains("nothing ran"),
        "{}",
        stderr(&o)
    );
    assert!(!marker.exists());

    // ProxyJump in an ssh_config file.
    let config = hosts.path("jump_ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host bastion\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {bkey}\n  IdentitiesOnly yes\n  UserKnownHostsFile {k}\n\
             Host b1\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {k}\n  ProxyJump bastion\n",
            bastion.port(),
            bastion.user(),
            h.server.port(),
            h.server.user()
        ),
    )
    .unwrap();
    let c = config.display().to_string();
    let o = run(hosts.cmd(&[
        "exec",
        "--ssh-config-file",
        &c,
        "--ssh-config",
        "b1",
        "--",
        "echo alias $HOSTNAME",
    ]))
    .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[b1] alias b1"), "{}", stdout(&o));
}

/// `provision --vmctl=STATE`: the plan's VMs found in vmctl's state file
/// (testkit servers on their "forwarded" ports), reached with the key vmctl
/// generated in each work directory, host keys recorded per instance
/// there, `provision.log` in vmctl's layout; other target flags refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_the_vms_vmctl_runs() {
    let hosts = Hosts::start(&["v1", "v2"]).await;
    let mut state = serde_json::Map::new();
    let mut plan = String::new();
    for (i, h) in hosts.hosts.iter().enumerate() {
        let work = hosts.path(&format!("vms/{}", h.name));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::copy(&h.key, work.join("id_ed25519_generated")).unwrap();
        state.insert(
            h.name.clone(),
            serde_json::json!({
                "id": format!("qemu-{i}"), "name": h.name, "backend": "qemu",
                "work_dir": work, "network": {"type": "user"},
                "ssh_host_port": h.server.port(),
            }),
        );
        plan.push_str(&format!(
            "vm \"{}\" {{\n    ssh {{\n        user \"{}\"\n    }}\n    provision \"shell\" {{\n        inline \"echo vmctl $HOSTNAME\"\n    }}\n}}\n",
            h.name,
            h.server.user()
        ));
    }
    let state_file = hosts.path("vms.json");
    std::fs::write(&state_file, serde_json::to_string(&state).unwrap()).unwrap();
    let plan_file = hosts.path("VMFile.kdl");
    std::fs::write(&plan_file, plan).unwrap();
    let vmctl = format!("--vmctl={}", state_file.display());
    let p = plan_file.display().to_string();
    let report = hosts.path("vmctl-report.json");
    let r = report.display().to_string();

    let o = run(hosts.cmd(&["provision", "--plan", &p, &vmctl, "--report", &r])).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("[v1] vmctl v1") && out.contains("[v2] vmctl v2"),
        "{out}"
    );
    let rep: FleetReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep.succeeded(), ["v1", "v2"]);
    for h in &hosts.hosts {
        let work = hosts.path(&format!("vms/{}", h.name));
        let log = std::fs::read_to_string(work.join("provision.log")).unwrap();
        assert!(
            log.starts_with("=== Step 1: ") && log.contains(&format!("vmctl {}\n", h.name)),
            "{log}"
        );
        assert!(work.join("vmssh_known_hosts").is_file());
    }

    // The guide's command as written, a bare --vmctl first: vmctl's own
    // state ($XDG_DATA_HOME/vmctl/vms.json), the plan in the current
    // directory.
    let data = hosts.path("xdg");
    std::fs::create_dir_all(data.join("vmctl")).unwrap();
    std::fs::copy(&state_file, data.join("vmctl/vms.json")).unwrap();
    let line = cli_harness::doc_command("docs/command-line.md", "vmssh provision --vmctl");
    assert_eq!(line, "vmssh provision --vmctl --plan VMFile.kdl");
    let mut c = cli_harness::shell(hosts.dir.path(), hosts.dir.path(), &line);
    c.env("XDG_DATA_HOME", &data);
    let o = run(c).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[v2] vmctl v2"), "{}", stdout(&o));
    // ... and last, after the plan in a directory of its own.
    let sub = hosts.path("plan");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(&plan_file, sub.join("VMFile.kdl")).unwrap();
    let mut c = hosts.cmd(&["provision", "--plan", "plan/VMFile.kdl", "--vmctl"]);
    c.current_dir(hosts.dir.path()).env("XDG_DATA_HOME", &data);
    let o = run(c).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("[v1] vmctl v1"), "{}", stdout(&o));

    // Other target sources, other verbs, and a state that is not there.
    let inv = hosts.inventory().display().to_string();
    for (args, want) in [
        (
            vec!["provision", "--plan", &p, &vmctl, "--hosts", &inv],
            "cannot be combined",
        ),
        (
            vec!["provision", "--plan", &p, &vmctl, "--key", &inv],
            "vmctl's user, keys",
        ),
        (
            vec!["exec", &vmctl, "--", "true"],
            "unexpected argument '--vmctl",
        ),
        (
            vec!["provision", "--plan", &p, "--vmctl=/no/such/vms.json"],
            "/no/such/vms.json",
        ),
    ] {
        let o = run(hosts.cmd(&args)).await;
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

/// The README's command lines, as written (extracted from it, so the
/// README cannot drift): the demo runs; the test command and the install
/// path exist; the command's quick start runs (see [`run_doc_lines`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
async fn readme_commands_run_as_written() {
    let ran = run_doc_lines("README.md").await;
    assert_eq!(
        ran, 7,
        "the README's command lines changed: update this test"
    );
}

/// The manual's command lines, as written: the same as the README's,
/// `report show`, `--collect`, `--ssh-config` and `shell` without a
/// terminal (the `--vmctl` line is
/// run by `provision_the_vms_vmctl_runs`, `demo --qemu` by
/// tests/vm_fleet.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
async fn the_manuals_commands_run_as_written() {
    let ran = run_doc_lines("docs/command-line.md").await;
    assert_eq!(
        ran, 17,
        "docs/command-line.md's command lines changed: update this test"
    );
}

/// Runs `doc`'s shell lines through `sh`, as a user would paste them,
/// against two hosts (one testkit server under two names, `web` and
/// `db`) with the user's key in `~/.ssh/id_ed25519` and
/// `~/.ssh/known_hosts`, an agent, an ssh_config, `hosts.txt`, a
/// `VMFile.kdl` and the files they copy. Only the addresses are
/// rewritten, to 127.0.0.1 and the server's port (a test never leaves the
/// machine), and `--ssh-config` reads the test's file. A line this does not know fails the test. Returns how many
/// lines it checked.
async fn run_doc_lines(doc: &str) -> usize {
    let hosts = Hosts::start_with(&["srv"], true).await;
    let srv = &hosts.hosts[0];
    let root = srv.root.clone().unwrap();
    let port = srv.server.port();
    hosts.user_files();
    let agent = hosts.agent();
    let work = hosts.path("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("hosts.txt"),
        format!("web 127.0.0.1:{port}\ndb 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let ssh_config = hosts.dir.path().join("home/.ssh/config");
    std::fs::write(
        &ssh_config,
        format!(
            "Host web db\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            srv.key.display(),
            hosts.known_hosts().display()
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("VMFile.kdl"),
        "vm \"web\" {\n    provision \"shell\" {\n        inline \"echo web provisioned\"\n    }\n}\n\
         vm \"db\" {\n    provision \"shell\" {\n        inline \"echo db provisioned\"\n    }\n}\n",
    )
    .unwrap();
    std::fs::write(work.join("nginx.conf"), "events {}\n").unwrap();
    std::fs::create_dir_all(root.join("var/log/app")).unwrap();
    std::fs::write(root.join("var/log/cloud-init.log"), "cloud-init done\n").unwrap();
    std::fs::write(root.join("var/log/app/app.log"), "app started\n").unwrap();
    std::fs::create_dir_all(work.join("site/css")).unwrap();
    std::fs::write(work.join("site/index.html"), "<h1>hi</h1>\n").unwrap();
    std::fs::write(work.join("site/css/site.css"), "h1 {}\n").unwrap();
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));

    let shell = |line: &str| {
        let mut c = cli_harness::shell(hosts.dir.path(), &work, line);
        c.env("SSH_AUTH_SOCK", agent.socket());
        c
    };
    let mut ran = 0;
    for line in cli_harness::doc_commands(doc) {
        let unknown = || panic!("{doc}: a command line this test does not know: {line}");
        if let Some(args) = line.strip_prefix("cargo run --release -p vmssh-cli -- ") {
            if args.starts_with("demo --qemu") {
                // Booting QEMU guests: tests/vm_fleet.rs runs this line.
                ran += 1;
                continue;
            }
            // What `cargo run` runs: the command, built from these sources.
            assert_eq!(args, "demo");
            let mut c = cli_harness::command(hosts.dir.path());
            c.args(args.split_whitespace());
            let o = run(c).await;
            assert_exit(&o, 0);
            assert!(
                stderr(&o).contains("8 succeeded, 0 failed"),
                "{}",
                stderr(&o)
            );
        } else if line == "./scripts/test.sh" {
            let script = manifest_dir.join("../scripts/test.sh");
            let mode = std::fs::metadata(&script).unwrap().permissions();
            assert!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0,
                "scripts/test.sh is not executable"
            );
        } else if let Some(path) = line.strip_prefix("cargo install --path ") {
            let manifest = manifest_dir.join("..").join(path).join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap();
            assert!(text.contains("[[bin]]\nname = \"vmssh\""), "{text}");
        } else if line.starts_with("vmssh provision --vmctl") {
            // Needs vmctl's state: provision_the_vms_vmctl_runs runs it.
        } else if line.starts_with("vmssh ") {
            let mut rewritten = line
                .replace("10.0.0.6:2222", &format!("127.0.0.1:{port}"))
                .replace("10.0.0.5", &format!("127.0.0.1:{port}"));
            // ~/.ssh/config is the password database's home, as for ssh,
            // not this test's HOME: the test's file is named instead.
            rewritten = rewritten.replace(
                "--ssh-config ",
                &format!("--ssh-config-file {} --ssh-config ", ssh_config.display()),
            );
            assert!(!rewritten.contains("10.0."), "{rewritten}");
            let o = run(shell(&rewritten)).await;
            let words: Vec<&str> = line.split_whitespace().collect();
            let out = stdout(&o);
            match words[1] {
                "provision" if line.contains("--rerun-failed report.json") => {
                    // The report before it: every host succeeded.
                    assert_exit(&o, 0);
                    assert!(stderr(&o).contains("nothing to run"), "{}", stderr(&o));
                    let r: FleetReport =
                        serde_json::from_slice(&std::fs::read(work.join("rerun.json")).unwrap())
                            .unwrap();
                    assert!(r.vms.is_empty(), "{}", r.summary());
                    assert_eq!(
                        r.rerun_of.as_deref(),
                        Some(std::path::Path::new("report.json"))
                    );
                }
                "provision" if line.contains("--dry-run") => {
                    assert_exit(&o, 0);
                    for want in [
                        format!("web (hosts.txt:1)\n  address    vm@127.0.0.1:{port}\n"),
                        "  auth       agent\n".to_string(),
                        "  steps      1. inline: echo web provisioned\n".to_string(),
                        "db (hosts.txt:2)\n".to_string(),
                    ] {
                        assert!(out.contains(&want), "{want:?} not in:\n{out}");
                    }
                    assert!(stderr(&o).contains("nothing connected"), "{}", stderr(&o));
                }
                "provision" => {
                    assert_exit(&o, 0);
                    if line.contains("--serial 1,20%") {
                        let err = stderr(&o);
                        assert!(err.contains("vmssh: batch 1/2: web\n"), "{err}");
                        assert!(err.contains("vmssh: batch 2/2: db\n"), "{err}");
                    }
                    assert!(
                        out.contains("[web] web provisioned")
                            && out.contains("[db] db provisioned"),
                        "{out}"
                    );
                    let r: FleetReport =
                        serde_json::from_slice(&std::fs::read(work.join("report.json")).unwrap())
                            .unwrap();
                    assert_eq!(r.succeeded(), ["web", "db"]);
                    assert!(work.join("logs/web/provision.log").is_file());
                }
                "report" => {
                    assert_exit(&o, 0);
                    assert!(out.contains("2 succeeded, 0 failed"), "{out}");
                }
                "exec" if line.contains("--collect") => {
                    assert_exit(&o, 0);
                    assert!(
                        out.contains("=== web: ok in ") && out.contains("=== db: ok in "),
                        "{out}"
                    );
                }
                "exec" if line.contains("--ssh-config") => {
                    // Both hosts reached through ~/.ssh/config and the
                    // command run; its verdict is this machine's (no
                    // systemd here, perhaps).
                    let err = stderr(&o);
                    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
                    for h in ["web", "db"] {
                        assert!(err.contains(&format!("[{h}] connected in")), "{err}");
                    }
                    assert!(!err.contains("connect failed"), "{err}");
                }
                "exec" => {
                    assert_exit(&o, 0);
                    assert!(out.contains("[web] ") && out.contains("[db] "), "{out}");
                }
                "upload" if words.contains(&"-r") => {
                    assert_exit(&o, 0);
                    assert_eq!(
                        std::fs::read_to_string(root.join("srv/site/css/site.css")).unwrap(),
                        "h1 {}\n"
                    );
                }
                "download" if words.contains(&"-r") => {
                    assert_exit(&o, 0);
                    for h in ["web", "db"] {
                        assert_eq!(
                            std::fs::read_to_string(work.join(format!("logs/{h}/app/app.log")))
                                .unwrap(),
                            "app started\n"
                        );
                    }
                }
                "shell" => {
                    // Standard input is no terminal (nothing on it): no
                    // pty, the remote shell reads end-of-file and ends.
                    assert_exit(&o, 0);
                }
                "upload" => {
                    assert_exit(&o, 0);
                    assert_eq!(
                        std::fs::read_to_string(root.join("etc/nginx/nginx.conf")).unwrap(),
                        "events {}\n"
                    );
                }
                "download" => {
                    assert_exit(&o, 0);
                    for h in ["web", "db"] {
                        assert_eq!(
                            std::fs::read_to_string(work.join(format!("logs/{h}/cloud-init.log")))
                                .unwrap(),
                            "cloud-init done\n"
                        );
                    }
                }
                _ => unknown(),
            }
        } else {
            unknown();
        }
        ran += 1;
    }
    ran
}
