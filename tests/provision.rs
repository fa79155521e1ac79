//! Provisioning one VM with vmssh's `Provisioner` against real servers:
//! inline, script and file steps,
//! provision.log, precise failures, nothing run after a failure or before
//! a missing input, sinks that are awaited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use vmssh::Error;
use vmssh::Session;
use vmssh::provision::{ChannelSink, Event, ProvisionDef, Provisioner, Sink, StepReport};

/// vmssh's own runner ([`Provisioner`] with its defaults: its log, scripts
/// removed), with `run_provisions`' arguments; vmctl's behaviour of
/// `run_provisions` is tested in tests/vmctl_provision.rs.
async fn provisioner_run(
    sess: &Session,
    steps: &[ProvisionDef],
    base: &Path,
    vm: &str,
    logs: Option<&Path>,
) -> Result<Vec<StepReport>, Error> {
    let mut p = Provisioner::new(vm).base_dir(base);
    if let Some(dir) = logs {
        p = p.log_dir(dir);
    }
    p.run(sess, steps).await
}

fn plan_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vmssh-plan-")
        .tempdir()
        .unwrap();
    std::fs::write(
        dir.path().join("setup.sh"),
        "#!/bin/sh\nset -e\necho \"script ran as $(id -un)\"\necho 'to stderr' >&2\necho done > \"$MARKER_DIR/script-marker\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("app.conf"), "listen 8080;\n").unwrap();
    dir
}

fn leftover_scripts(vm: &str) -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("vmssh-{vm}-")))
        .collect()
}

async fn full_plan(srv: &support::Server) {
    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::Builder::new()
        .prefix("vmssh-guest-")
        .tempdir()
        .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let vm = format!("plan-{}", srv.name());
    let steps = [
        ProvisionDef::inline(format!("echo hello from inline; touch '{g}/inline-marker'")),
        ProvisionDef::script("setup.sh").env("MARKER_DIR", g.clone()),
        ProvisionDef::file("app.conf", format!("{g}/etc/app/app.conf")),
        ProvisionDef::download(format!("{g}/etc/app/app.conf"), "fetched.conf"),
    ];
    let reports = provisioner_run(&sess, &steps, plan.path(), &vm, Some(logs.path()))
        .await
        .unwrap();
    assert_eq!(reports.len(), 4);
    assert!(reports.iter().all(|r| r.ok));
    assert_eq!(reports[0].status.as_ref().and_then(|s| s.code()), Some(0));
    assert!(guest.path().join("inline-marker").exists());
    assert_eq!(
        std::fs::read_to_string(guest.path().join("script-marker")).unwrap(),
        "done\n"
    );
    assert_eq!(
        std::fs::read_to_string(guest.path().join("etc/app/app.conf")).unwrap(),
        "listen 8080;\n"
    );
    assert_eq!(
        std::fs::read_to_string(plan.path().join("fetched.conf")).unwrap(),
        "listen 8080;\n"
    );
    assert!(
        leftover_scripts(&vm).is_empty(),
        "script left behind: {:?}",
        leftover_scripts(&vm)
    );

    let log = std::fs::read_to_string(logs.path().join("provision.log")).unwrap();
    for needle in [
        "step 1/4: inline: echo hello from inline",
        "hello from inline\n",
        "step 2/4: script: setup.sh",
        "script ran as",
        "to stderr\n",
        "step 3/4: file: app.conf ->",
        "step 3 ok",
        "step 4/4: download: ",
        "step 4 ok",
    ] {
        assert!(
            log.contains(needle),
            "provision.log lacks {needle:?}:\n{log}"
        );
    }
    // Headers come before their output.
    assert!(log.find("step 1/4").unwrap() < log.find("hello from inline").unwrap());
}
on_both_servers!(full_plan);

async fn failure_stops_the_plan(srv: &support::Server) {
    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let steps = [
        ProvisionDef::inline(format!("touch '{g}/one'")),
        ProvisionDef::inline("echo line1 >&2; echo 'the real reason' >&2; echo out; exit 3"),
        ProvisionDef::inline(format!("touch '{g}/three'")),
    ];
    let err = provisioner_run(&sess, &steps, plan.path(), "failing", None)
        .await
        .unwrap_err();
    match &err {
        Error::ProvisionFailed {
            vm,
            step,
            status,
            stderr_tail,
            stdout_tail,
            ..
        } => {
            assert_eq!(vm, "failing");
            assert_eq!(*step, 2);
            assert_eq!(status.as_ref().and_then(|s| s.code()), Some(3));
            assert_eq!(stderr_tail.as_str(), "line1\nthe real reason");
            assert_eq!(stdout_tail.as_str(), "out");
        }
        other => panic!("expected ProvisionFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("step 2"), "{err}");
    assert!(guest.path().join("one").exists());
    assert!(
        !guest.path().join("three").exists(),
        "a step after the failure ran"
    );

    // Death by signal is reported as such.
    let err = provisioner_run(
        &sess,
        &[ProvisionDef::inline("kill -TERM $$")],
        plan.path(),
        "sig",
        None,
    )
    .await
    .unwrap_err();
    match err {
        Error::ProvisionFailed {
            status: Some(s), ..
        } if srv.is_openssh() => assert_eq!(s.signal(), Some("TERM")),
        Error::ProvisionFailed {
            status: Some(s), ..
        } => assert!(!s.success()),
        other => panic!("expected ProvisionFailed with a status, got {other:?}"),
    }
}
on_both_servers!(failure_stops_the_plan);

/// Where scripts go, their mode, and whether they stay, are the
/// provisioner's to choose (ScriptStaging).
async fn script_staging_is_configurable(srv: &support::Server) {
    use std::os::unix::fs::PermissionsExt as _;
    use vmssh::provision::ScriptStaging;

    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let steps = [
        ProvisionDef::inline("true"),
        ProvisionDef::script("setup.sh").env("MARKER_DIR", g.clone()),
    ];
    let kept = ScriptStaging::new(format!("{g}/staged-{{vm}}-{{step}}.sh"))
        .mode(0o750)
        .keep(true);
    for _ in 0..2 {
        // A kept script's path is reused: the second run overwrites it.
        Provisioner::new("vm 1")
            .base_dir(plan.path())
            .script_staging(kept.clone())
            .run(&sess, &steps)
            .await
            .unwrap();
    }
    let path = guest.path().join("staged-vm_1-2.sh");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(plan.path().join("setup.sh")).unwrap()
    );

    let removed = ScriptStaging::new(format!("{g}/gone-{{rand}}.sh"));
    Provisioner::new("vm")
        .base_dir(plan.path())
        .script_staging(removed)
        .run(&sess, &steps)
        .await
        .unwrap();
    let left: Vec<_> = std::fs::read_dir(guest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gone-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
on_both_servers!(script_staging_is_configurable);

async fn missing_inputs_run_nothing(srv: &support::Server) {
    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    for missing in [
        ProvisionDef::script("no-such-script.sh"),
        ProvisionDef::file("no-such-file", format!("{g}/x")),
    ] {
        let steps = [ProvisionDef::inline(format!("touch '{g}/first'")), missing];
        let err = provisioner_run(&sess, &steps, plan.path(), "missing", None)
            .await
            .unwrap_err();
        match &err {
            Error::ProvisionFailed { step, reason, .. } => {
                assert_eq!(*step, 2);
                assert!(reason.contains("no-such"), "{reason}");
            }
            other => panic!("expected ProvisionFailed, got {other:?}"),
        }
        assert!(
            !guest.path().join("first").exists(),
            "a step ran before the input check"
        );
    }
}
on_both_servers!(missing_inputs_run_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn events_arrive_in_order() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    let plan = plan_dir();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    let steps = [
        ProvisionDef::inline("echo a; echo b >&2"),
        ProvisionDef::inline("echo c; echo d >&2; echo e"),
        ProvisionDef::inline("true"),
    ];
    Provisioner::new("ev")
        .base_dir(plan.path())
        .sink(ChannelSink::new(tx))
        .run(&sess, &steps)
        .await
        .unwrap();
    let events = collector.await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::StepStarted { step, .. } => format!("start{step}"),
            Event::Output { chunk, .. } => {
                format!(
                    "{}:{}",
                    if chunk.is_stderr() { "err" } else { "out" },
                    String::from_utf8_lossy(chunk.bytes()).trim()
                )
            }
            Event::StepFinished { step, ok, .. } => format!("end{step}:{ok}"),
            Event::VmFinished { ok, .. } => format!("vm:{ok}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("start1"));
    assert_eq!(kinds.last().map(String::as_str), Some("vm:true"));
    // Steps follow each other, and each step's output falls between its
    // own start and end.
    let at = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    let bounds: Vec<(usize, usize)> = (1..=3)
        .map(|s| (at(&format!("start{s}")), at(&format!("end{s}:true"))))
        .collect();
    for w in bounds.windows(2) {
        assert!(w[0].1 < w[1].0, "steps overlap: {kinds:?}");
    }
    let mut outputs = 0;
    for (i, e) in events.iter().enumerate() {
        if let Event::Output { step, .. } = e {
            let (start, end) = bounds[*step - 1];
            assert!(
                start < i && i < end,
                "output of step {step} at {i} outside its start {start} and end {end}: {kinds:?}"
            );
            outputs += 1;
        }
    }
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            Event::Output { chunk, .. } => {
                Some(String::from_utf8_lossy(chunk.bytes()).into_owned())
            }
            _ => None,
        })
        .collect();
    for line in ["a", "b", "c", "d", "e"] {
        assert!(text.lines().any(|l| l == line), "{line} missing: {kinds:?}");
    }
    assert!(outputs >= 2, "{kinds:?}");
    assert!(events.iter().all(|e| e.vm() == Some("ev")));
}

/// A `sudo` step keeps its environment: the variables reach the command
/// that runs under sudo (Debian's sudoers resets the environment), in
/// inline and script steps alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sudo), ignore = "needs sudo and OpenSSH sshd")]
async fn sudo_steps_keep_their_env() {
    assert!(
        support::is_root(),
        "this test logs in as the current user and needs `sudo -n` to work: run it as root"
    );
    let srv = support::sshd();
    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let d = guest.path().display();
    let probe =
        |out: &str| format!("printf '%s|%s|%s' \"$K\" \"$SUDO_USER\" \"$(id -u)\" > '{d}/{out}'");
    std::fs::write(
        plan.path().join("sudo.sh"),
        format!("#!/bin/sh\n{}\n", probe("script")),
    )
    .unwrap();
    let value = "v a'l $(x)";
    let steps = [
        ProvisionDef::inline(probe("inline"))
            .env("K", value)
            .sudo(true),
        ProvisionDef::script("sudo.sh").env("K", value).sudo(true),
    ];
    Provisioner::new("sudo")
        .base_dir(plan.path())
        .run(&sess, &steps)
        .await
        .unwrap();
    for out in ["inline", "script"] {
        let got = std::fs::read_to_string(guest.path().join(out)).unwrap();
        // SUDO_USER shows the command ran under sudo.
        assert_eq!(
            got,
            format!("{value}|{}|0", support::current_user()),
            "{out}"
        );
    }
}

/// Guest output reaches the terminal with its colours and nothing else:
/// any other escape sequence or control character is shown, not executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn terminal_sink_shows_controls_and_keeps_colours() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    let plan = plan_dir();
    let out_dir = tempfile::tempdir().unwrap();
    let path = out_dir.path().join("terminal");
    let file = tokio::fs::File::create(&path).await.unwrap();
    let steps = [ProvisionDef::inline(
        r"printf '\033[1;31mred\033[0m plain\n'; \
          printf '\033]0;title\007\033[2J\033[H\033]52;c;aGk=\033\\ \r\n'; \
          printf 'oops\033[6n\n' >&2",
    )];
    Provisioner::new("tty")
        .base_dir(plan.path())
        .sink(vmssh::provision::TerminalSink::with_writer(file, true))
        .run(&sess, &steps)
        .await
        .unwrap();
    let shown = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&shown);
    // Colours kept, and reset at the end of the line.
    assert!(
        text.contains("[tty] \x1b[1;31mred\x1b[0m plain\x1b[0m\n"),
        "{text:?}"
    );
    // Title, clear screen, cursor home, clipboard, cursor report: shown.
    assert!(
        text.contains("[tty] ^[]0;title^G^[[2J^[[H^[]52;c;aGk=^[\\ \n"),
        "{text:?}"
    );
    assert!(text.contains("! oops^[[6n"), "{text:?}");
    // The only escapes left are colour sequences.
    let mut rest = &shown[..];
    while let Some(at) = rest.iter().position(|b| *b == 0x1b) {
        rest = &rest[at + 1..];
        let n = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b';' || **b == b'[')
            .count();
        assert_eq!(rest.get(n), Some(&b'm'), "a non-SGR escape: {text:?}");
    }
    assert!(
        !shown.iter().any(|b| *b < 0x20 && *b != b'\n' && *b != 0x1b),
        "{text:?}"
    );
}

/// A sink that counts bytes and stalls now and then.
struct SlowSink {
    bytes: Arc<AtomicU64>,
}

impl Sink for SlowSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Event::Output { chunk, .. } = event {
                let data = chunk.bytes();
                let before = self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                // Pause for 50 ms every 8 MiB.
                if before / (8 << 20) != (before + data.len() as u64) / (8 << 20) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn slow_sink_bounds_memory() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    let bytes = Arc::new(AtomicU64::new(0));
    let before = peak_rss_kib();
    const TOTAL: u64 = 256 * 1024 * 1024;
    Provisioner::new("slow")
        .base_dir(Path::new("."))
        .sink(SlowSink {
            bytes: bytes.clone(),
        })
        .run(
            &sess,
            &[ProvisionDef::inline(format!("head -c {TOTAL} /dev/zero"))],
        )
        .await
        .unwrap();
    assert_eq!(
        bytes.load(Ordering::Relaxed),
        TOTAL,
        "bytes lost or duplicated"
    );
    let growth_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    // The window (2 MiB) plus russh's queue (100 messages of 32 KiB) bound
    // what can pile up; a design that buffered output would hold 256 MiB.
    assert!(
        growth_mib < 64,
        "peak RSS grew by {growth_mib} MiB while streaming 256 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn server_killed_during_a_step() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    let plan = plan_dir();
    let steps = [
        ProvisionDef::inline("echo started; sleep 30"),
        ProvisionDef::inline("echo never"),
    ];
    let run = provisioner_run(&sess, &steps, plan.path(), "killed", None);
    tokio::pin!(run);
    // Let the step start, then kill every server process.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut run)
            .await
            .is_err()
    );
    srv.kill_all("KILL");
    let err = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("provisioning hung after the server died")
        .unwrap_err();
    match &err {
        Error::ProvisionFailed {
            step,
            status,
            source,
            ..
        } => {
            assert_eq!(*step, 1);
            assert!(status.is_none(), "no exit status can have been reported");
            assert!(
                source.as_deref().is_some_and(Error::is_connection_lost),
                "expected a lost connection as the cause: {err:?}"
            );
        }
        other => panic!("expected ProvisionFailed, got {other:?}"),
    }
}

/// A plan opens one SFTP channel for all its transfer steps and keeps it
/// between them (sshd logs each session it starts), and closes it when the
/// plan ends: on a server allowing two channels per connection, the plan
/// runs (SFTP and exec side by side), and afterwards two commands can run
/// at once on the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn one_sftp_channel_per_plan() {
    let srv = support::Sshd::builder().max_sessions(2).start();
    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let steps = [
        ProvisionDef::file("app.conf", format!("{g}/a/app.conf")),
        ProvisionDef::inline("true"),
        ProvisionDef::file("app.conf", format!("{g}/b/app.conf")),
        ProvisionDef::script("setup.sh").env("MARKER_DIR", g.clone()),
        ProvisionDef::download(format!("{g}/b/app.conf"), "fetched.conf"),
        ProvisionDef::file("app.conf", format!("{g}/a/again.conf")),
    ];
    let reports = provisioner_run(&sess, &steps, plan.path(), "one-sftp", None)
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
    for f in ["a/app.conf", "b/app.conf", "a/again.conf"] {
        assert_eq!(
            std::fs::read_to_string(guest.path().join(f)).unwrap(),
            "listen 8080;\n"
        );
    }
    let opened = srv
        .log()
        .matches("Starting session: subsystem 'sftp'")
        .count();
    assert_eq!(
        opened,
        1,
        "SFTP channels opened by one plan:\n{}",
        srv.log()
    );

    // The plan's SFTP channel is closed: both of the server's slots are free.
    let (a, b) = tokio::join!(sess.exec("sleep 0.5; echo a"), sess.exec("echo b"));
    assert_eq!(a.unwrap().stdout, b"a\n");
    assert_eq!(b.unwrap().stdout, b"b\n");
}

/// On a server that allows one channel per connection (sshd's
/// `MaxSessions 1`), the plan's SFTP channel makes room for each command:
/// file and inline steps alternate and all succeed (a held channel would
/// leave the command waiting forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn plan_on_a_one_channel_server() {
    let srv = support::Sshd::builder().max_sessions(1).start();
    let sess = srv.connect().await;
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let steps = [
        ProvisionDef::file("app.conf", format!("{g}/a.conf")),
        ProvisionDef::inline(format!("cat '{g}/a.conf' > '{g}/copy'")),
        ProvisionDef::file("app.conf", format!("{g}/b.conf")),
        ProvisionDef::inline(format!("cat '{g}/b.conf' >> '{g}/copy'")),
    ];
    let reports = tokio::time::timeout(
        Duration::from_secs(60),
        provisioner_run(&sess, &steps, plan.path(), "one-channel", None),
    )
    .await
    .expect("the plan hung on a one-channel server")
    .unwrap();
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
    assert_eq!(
        std::fs::read_to_string(guest.path().join("copy")).unwrap(),
        "listen 8080;\nlisten 8080;\n"
    );
    // A command first: the channels opened ahead (the next command's, the
    // plan's SFTP channel) give way once the server refuses a second.
    let steps = [
        ProvisionDef::inline(format!("rm '{g}/copy'")),
        ProvisionDef::file("app.conf", format!("{g}/c.conf")),
        ProvisionDef::inline(format!("cat '{g}/c.conf' > '{g}/copy'")),
        ProvisionDef::inline(format!("cat '{g}/c.conf' >> '{g}/copy'")),
        ProvisionDef::file("app.conf", format!("{g}/d.conf")),
    ];
    let fresh = srv.connect().await;
    let reports = tokio::time::timeout(
        Duration::from_secs(60),
        provisioner_run(&fresh, &steps, plan.path(), "one-channel", None),
    )
    .await
    .expect("the plan hung on a one-channel server, a command first")
    .unwrap();
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
    assert_eq!(
        std::fs::read_to_string(guest.path().join("copy")).unwrap(),
        "listen 8080;\nlisten 8080;\n"
    );
    assert!(guest.path().join("d.conf").exists());
}

/// On OpenSSH a command step's channel is opened while the step before
/// it runs; a plan that ends early closes the channel opened for a step
/// that never ran. With sshd's `MaxSessions 2`, two commands at once fit
/// afterwards without a refusal: a channel left open would hold one of
/// the two, the second open would be refused, and the session would
/// learn a lower channel limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn a_channel_opened_ahead_is_closed_when_the_plan_ends_early() {
    let srv = support::Sshd::builder().max_sessions(2).start();
    let sess = srv.connect().await;
    let limit = sess.channel_limit();
    assert!(limit > 2, "{limit}");
    let plan = plan_dir();
    let guest = tempfile::tempdir().unwrap();
    let never = guest.path().join("never");
    let steps = [
        ProvisionDef::inline("sleep 0.3; exit 3"),
        ProvisionDef::inline(format!("touch '{}'", never.display())),
    ];
    let err = provisioner_run(&sess, &steps, plan.path(), "ahead", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("step 1"), "{err}");
    assert!(!never.exists(), "the step after the failure ran");
    let both = async {
        tokio::join!(
            sess.exec("sleep 0.5; echo a"),
            sess.exec("sleep 0.5; echo b")
        )
    };
    let (a, b) = tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .expect("two commands after the plan never ran");
    assert_eq!(a.unwrap().stdout, b"a\n");
    assert_eq!(b.unwrap().stdout, b"b\n");
    assert_eq!(
        sess.channel_limit(),
        limit,
        "a channel stayed open after the plan: the server refused a second one"
    );
}
