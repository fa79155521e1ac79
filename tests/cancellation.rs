//! Cancellation: dropping an upload, a provisioning run or a whole fleet
//! mid-flight closes their channels, leaves the session usable and leaves
//! no task behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vmssh::fleet::{Fleet, Target};
use vmssh::provision::{ProvisionDef, Provisioner};
use vmssh::sftp::TransferOptions;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (bounded) until the runtime is back to `baseline` tasks: channel
/// closes finish in the background once the server confirms.
async fn settles_to(baseline: usize) {
    let start = Instant::now();
    while alive_tasks() > baseline {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} tasks still alive, {baseline} expected",
            alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Commands still running under the server for this test's marker.
fn remote_sleepers(marker: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The names in `dir` other than `keep`: temporary files left behind.
fn leftovers(dir: &std::path::Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// Dropped uploads leave the destination as it was and, once the drop has
/// been dealt with, no temporary file beside it; over SFTP and over the
/// `cat` fallback of servers without SFTP.
async fn dropped_upload_leaves_destination_and_session_intact(srv: &support::Server) {
    let sess = srv.connect().await;
    let baseline = alive_tasks();
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let src = local.path().join("big");
    std::fs::write(&src, vec![42u8; 64 * 1024 * 1024]).unwrap();
    let dst = remote.path().join("dst");
    std::fs::write(&dst, b"old").unwrap();
    for _ in 0..5 {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let opts = TransferOptions::new().on_progress(move |p| {
            if p.done > 0 {
                flag.store(true, Ordering::SeqCst);
            }
        });
        let upload = sess.upload_with(&src, dst.to_str().unwrap(), &opts);
        tokio::select! {
            r = upload => panic!("upload finished before it was cancelled: {r:?}"),
            _ = async {
                while !started.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            } => {}
        }
        assert!(
            std::fs::read(&dst).unwrap() == b"old",
            "{}: the destination was replaced by a cancelled upload",
            srv.name()
        );
    }
    settles_to(baseline).await;
    assert_eq!(
        leftovers(remote.path(), &["dst"]),
        Vec::<String>::new(),
        "{}: temporary files left behind",
        srv.name()
    );
    // The session still works, channel slots were given back.
    for _ in 0..12 {
        assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
    }
    sess.upload(&src, dst.to_str().unwrap()).await.unwrap();
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), 64 * 1024 * 1024);
    assert_eq!(leftovers(remote.path(), &["dst"]), Vec::<String>::new());
}

mod dropped_upload_leaves_destination_and_session_intact {
    use super::support::{Dropbear, Sshd};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd() {
        super::dropped_upload_leaves_destination_and_session_intact(&Sshd::builder().start()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear() {
        super::dropped_upload_leaves_destination_and_session_intact(&Dropbear::builder().start())
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd_without_sftp() {
        super::dropped_upload_leaves_destination_and_session_intact(
            &Sshd::builder().no_sftp().start(),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear_without_sftp() {
        super::dropped_upload_leaves_destination_and_session_intact(
            &Dropbear::builder().no_sftp().start(),
        )
        .await;
    }
}

/// A provisioning run dropped while its script runs leaves no script on
/// the guest.
async fn dropped_script_step_leaves_no_script(srv: &support::Server) {
    let sess = srv.connect().await;
    let baseline = alive_tasks();
    let plan = tempfile::tempdir().unwrap();
    let marker = format!("vmssh-script-{}-{}", std::process::id(), srv.port());
    std::fs::write(
        plan.path().join("long.sh"),
        format!("#!/bin/sh\necho started\nexec sh -c 'while true; do echo working; sleep 0.1; done' {marker}\n"),
    )
    .unwrap();
    let vm = format!("cancel-script-{}", srv.port());
    let p = Provisioner::new(vm.clone()).base_dir(plan.path());
    let steps = [ProvisionDef::script("long.sh")];
    let mut run = Box::pin(p.run(&sess, &steps));
    // Until the script runs (its marker process exists), then drop.
    let start = Instant::now();
    while remote_sleepers(&marker) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the script never ran"
        );
        if tokio::time::timeout(Duration::from_millis(20), &mut run)
            .await
            .is_ok()
        {
            panic!("the step ended before it was cancelled");
        }
    }
    drop(run);
    settles_to(baseline).await;
    let scripts: Vec<String> = leftovers(std::path::Path::new("/tmp"), &[])
        .into_iter()
        .filter(|n| n.starts_with(&format!("vmssh-{vm}-")))
        .collect();
    assert!(
        scripts.is_empty(),
        "{}: script left behind: {scripts:?}",
        srv.name()
    );
    assert_eq!(
        sess.exec("echo still here").await.unwrap().stdout,
        b"still here\n"
    );
}
on_both_servers!(dropped_script_step_leaves_no_script);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn dropped_provisioning_closes_its_channel() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    let baseline = alive_tasks();
    let marker = format!("vmssh-cancel-{}", std::process::id());
    // A command that keeps writing, as provisioning commands do: once its
    // channel is closed its next write fails and it dies of SIGPIPE. (A
    // silent command would run on: sshd refuses signal requests for root
    // sessions, so only a PTY session is reliably hung up.)
    let steps = [ProvisionDef::inline(format!(
        "exec -a {marker} sh -c 'while true; do echo working; sleep 0.1; done'"
    ))];
    let p = Provisioner::new("cancel");
    let run = p.run(&sess, &steps);
    let cancelled = tokio::time::timeout(Duration::from_millis(500), run).await;
    assert!(
        cancelled.is_err(),
        "the step should still have been running"
    );
    settles_to(baseline).await;
    assert_eq!(
        sess.exec("echo still here").await.unwrap().stdout,
        b"still here\n"
    );
    // The remote command does not outlive its channel.
    let start = Instant::now();
    while remote_sleepers(&marker) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the remote command outlived its channel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn dropped_fleet_leaves_no_task() {
    let srv = support::sshd();
    let baseline = alive_tasks();
    let targets: Vec<Target> = (0..20)
        .map(|i| {
            Target::new(
                format!("vm{i}"),
                support::HOST,
                srv.port(),
                srv.config(),
                vec![ProvisionDef::inline("sleep 30")],
            )
        })
        .collect();
    let fleet = Fleet::new().concurrency(20);
    let run = fleet.provision(targets);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), run)
            .await
            .is_err()
    );
    settles_to(baseline).await;
}
