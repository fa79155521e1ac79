//! Cancellation: dropping an upload, a provisioning run or a whole fleet
//! mid-flight closes their channels, leaves the session usable and leaves
//! no task behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

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
    for i in 0..5 {
        // Every other upload over three SFTP channels, dropped once the
        // extra channels are likely writing too (or still opening).
        let (channels, after) = if i % 2 == 0 { (1, 0) } else { (3, 8 << 20) };
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let opts = TransferOptions::new()
            .channels(channels)
            .on_progress(move |p| {
                if p.done > after {
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
    use support::{Dropbear, Sshd};

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

/// Drives `fut` for at most `polls` polls (each one woken by real I/O),
/// then drops it: `None` when it was dropped before it completed.
async fn cancel_after<F: std::future::Future + Unpin>(
    mut fut: F,
    polls: usize,
) -> Option<F::Output> {
    let mut left = polls;
    std::future::poll_fn(move |cx| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        left -= 1;
        std::pin::Pin::new(&mut fut).poll(cx).map(Some)
    })
    .await
}

/// Calls `start` with a future dropped after 1, 2, 3... polls, so that it
/// is dropped at each of its await points in turn (right after the channel
/// was set up among them), until one completes. The server allows one
/// session channel: after each drop the next command gets it, or the
/// dropped future leaked its channel. Returns how many drops there were.
async fn drops_at_every_point<F, Fut, T>(sess: &vmssh::Session, start: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, vmssh::Error>> + Send,
{
    for polls in 1..100 {
        let fut = Box::pin(start());
        if cancel_after(fut, polls).await.is_some() {
            return polls - 1;
        }
        let out = tokio::time::timeout(Duration::from_secs(30), sess.exec("echo free"))
            .await
            .expect("the next command hung")
            .unwrap_or_else(|e| panic!("dropped after {polls} polls, its channel leaked: {e}"));
        assert_eq!(out.stdout, b"free\n");
    }
    panic!("never completed");
}

/// A command or SFTP session whose future is dropped at any point of its
/// setup gives its channel back to the server (sshd with MaxSessions 1),
/// and leaves no task behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn setup_dropped_at_any_point_closes_its_channel() {
    let srv = support::Sshd::builder().max_sessions(1).start();
    let sess = srv.connect().await;
    let baseline = alive_tasks();
    let execs = drops_at_every_point(&sess, || {
        sess.exec_command(vmssh::Command::new("cat").env("K", "v"))
    })
    .await;
    let streams = drops_at_every_point(&sess, || async {
        // Setup only: the stream itself is dropped at once.
        sess.exec_streaming("cat").await.map(drop)
    })
    .await;
    let sftps = drops_at_every_point(&sess, || async { sess.sftp().await.map(drop) }).await;
    // How many await points a setup passes through depends on how the
    // server's replies fall into reads (one poll can take several): each
    // setup must have been dropped at least once before it completed.
    assert!(
        execs >= 1 && streams >= 1 && sftps >= 1,
        "drops before completing: exec {execs}, streaming {streams}, sftp {sftps}"
    );
    settles_to(baseline).await;
}

/// An `sftp()` that fails (no SFTP subsystem: sshd refuses it, dropbear
/// accepts it and the channel closes) leaves no task and no channel.
async fn failed_sftp_leaves_nothing(srv: &support::Server) {
    let sess = srv.connect().await;
    let baseline = alive_tasks();
    for _ in 0..3 {
        let err = sess.sftp().await.unwrap_err();
        assert!(
            matches!(
                err,
                vmssh::Error::Sftp {
                    kind: vmssh::SftpErrorKind::Unsupported,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    settles_to(baseline).await;
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
}

mod failed_sftp_leaves_nothing {
    use support::{Dropbear, Sshd};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd_without_sftp() {
        super::failed_sftp_leaves_nothing(&Sshd::builder().max_sessions(1).no_sftp().start()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear_without_sftp() {
        super::failed_sftp_leaves_nothing(&Dropbear::builder().no_sftp().start()).await;
    }
}

/// A connection cut mid-upload, with no chance for the client to clean up
/// (its runtime is gone), leaves no temporary file where the upload runs
/// through `cat` (no SFTP): the remote command removes its own file when
/// it ends without moving it into place. Before, the file stayed whenever
/// the client's removal could not run, or ran before a command the server
/// started late had created it.
fn cut_connection_leaves_no_temporary_file(srv: &support::Server) {
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let src = local.path().join("big");
    // Sparse: 4 GiB that take no local disk and cannot all be sent before
    // the cut.
    std::fs::File::create(&src)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let dst = remote.path().join("dst");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sess = srv.connect().await;
        let to = dst.to_str().unwrap().to_string();
        let from = src.clone();
        tokio::spawn(async move { sess.upload(&from, &to).await });
        // The temporary file is being written.
        let start = Instant::now();
        while leftovers(remote.path(), &[]).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{}: no temporary file appeared",
                srv.name()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // The client is gone at once: its tasks are dropped, its socket closed.
    rt.shutdown_background();
    let start = Instant::now();
    loop {
        let left = leftovers(remote.path(), &[]);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}: temporary file left after the connection was cut: {left:?}",
            srv.name()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !dst.exists(),
        "{}: the cut upload was committed",
        srv.name()
    );
}

mod cut_connection_leaves_no_temporary_file {
    use support::{Dropbear, Sshd};

    #[test]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    fn sshd_without_sftp() {
        super::cut_connection_leaves_no_temporary_file(&Sshd::builder().no_sftp().start());
    }

    #[test]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    fn dropbear_without_sftp() {
        super::cut_connection_leaves_no_temporary_file(&Dropbear::builder().no_sftp().start());
    }
}
