//! SFTP uploads and downloads against real OpenSSH sftp-server (under sshd
//! and under dropbear): byte-exact round trips, modes, parents, odd paths,
//! atomic replace, failures that leave the destination intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use vmssh::sftp::TransferOptions;
use vmssh::{Error, SftpErrorKind};

fn random_file(path: &Path, len: usize) -> [u8; 32] {
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(path, &data).unwrap();
    Sha256::digest(&data).into()
}

fn digest(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The servers run on this machine, so the "remote" side is a local
/// directory we can inspect directly.
fn remote_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vmssh-sftp-")
        .tempdir()
        .unwrap()
}

async fn round_trips(srv: &support::Server) {
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    for (i, len) in [0usize, 1, 1_000_003, 64 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let src = local.path().join(format!("src{i}"));
        let want = random_file(&src, len);
        let dst = remote.path().join(format!("dst{i}"));
        let sent = sess.upload(&src, dst.to_str().unwrap()).await.unwrap();
        assert_eq!(sent, len as u64);
        assert_eq!(digest(&dst), want, "upload of {len} bytes differs");
        let back = local.path().join(format!("back{i}"));
        let got = sess.download(dst.to_str().unwrap(), &back).await.unwrap();
        assert_eq!(got, len as u64);
        assert_eq!(digest(&back), want, "download of {len} bytes differs");
    }
    // No temporary files left next to the destinations.
    let leftovers: Vec<_> = std::fs::read_dir(remote.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("vmssh-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
on_both_servers!(round_trips);

async fn modes_parents_and_odd_names(srv: &support::Server) {
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let src = local.path().join("tool");
    random_file(&src, 4096);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o751)).unwrap();

    // The local mode is kept by default.
    let kept = remote.path().join("kept");
    sess.upload(&src, kept.to_str().unwrap()).await.unwrap();
    assert_eq!(mode(&kept), 0o751);

    // An explicit mode wins; parents are created on request.
    let odd = remote
        .path()
        .join("a dir/with 'quotes' and \"double\"/ünïcödé $(touch /tmp/vmssh-pwned)/f i le.txt");
    let err = sess.upload(&src, odd.to_str().unwrap()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }
        ),
        "missing parent should be NotFound: {err:?}"
    );
    let opts = TransferOptions::new().mode(0o640).create_parents(true);
    sess.upload_with(&src, odd.to_str().unwrap(), &opts)
        .await
        .unwrap();
    assert_eq!(mode(&odd), 0o640);
    assert_eq!(digest(&odd), digest(&src));
    assert!(
        !Path::new("/tmp/vmssh-pwned").exists(),
        "a path was run through a shell"
    );

    // A download keeps the remote mode.
    let back = local.path().join("back");
    sess.download(odd.to_str().unwrap(), &back).await.unwrap();
    assert_eq!(mode(&back), 0o640);

    // Reader uploads default to 0644.
    let from_reader = remote.path().join("generated.conf");
    sess.upload_from_reader(
        std::io::Cursor::new(b"key = value\n".to_vec()),
        None,
        from_reader.to_str().unwrap(),
        &TransferOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&from_reader).unwrap(), b"key = value\n");
    assert_eq!(mode(&from_reader), 0o644);
}
on_both_servers!(modes_parents_and_odd_names);

async fn replace_and_refuse(srv: &support::Server) {
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let dst = remote.path().join("config");
    std::fs::write(&dst, b"old").unwrap();
    let src = local.path().join("new");
    std::fs::write(&src, b"new contents").unwrap();

    let refuse = TransferOptions::new().overwrite(false);
    let err = sess
        .upload_with(&src, dst.to_str().unwrap(), &refuse)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::AlreadyExists,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&dst).unwrap(), b"old");

    sess.upload(&src, dst.to_str().unwrap()).await.unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), b"new contents");

    // Non-atomic mode writes in place.
    std::fs::write(&src, b"in place").unwrap();
    sess.upload_with(
        &src,
        dst.to_str().unwrap(),
        &TransferOptions::new().atomic(false),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), b"in place");
}
on_both_servers!(replace_and_refuse);

async fn bad_paths(srv: &support::Server) {
    let sess = srv.connect().await;
    let remote = remote_dir();
    // Missing local file: reported before anything is sent.
    let err = sess
        .upload(
            Path::new("/nonexistent/vmssh/local"),
            remote.path().join("x").to_str().unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/vmssh/local"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(remote.path()).unwrap().count(), 0);

    // Unwritable remote path (even root cannot create files in /proc).
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("f");
    std::fs::write(&src, b"x").unwrap();
    let err = sess.upload(&src, "/proc/vmssh-test/f").await.unwrap_err();
    match &err {
        Error::Sftp { path, .. } => assert_eq!(path, "/proc/vmssh-test/f"),
        other => panic!("expected an SFTP error naming the path, got {other:?}"),
    }

    // Missing remote file on download: typed, and no local file appears.
    let dst = local.path().join("never");
    let err = sess
        .download("/nonexistent/vmssh/remote", &dst)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!dst.exists());
    let names: Vec<_> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        1,
        "a temporary download file was left: {names:?}"
    );
}
on_both_servers!(bad_paths);

async fn sftp_handle_operations(srv: &support::Server) {
    let sess = srv.connect().await;
    let sftp = sess.sftp().await.unwrap();
    let remote = remote_dir();
    let base = remote.path().to_str().unwrap();
    sftp.mkdir_all(&format!("{base}/a/b/c")).await.unwrap();
    sftp.mkdir_all(&format!("{base}/a/b/c")).await.unwrap(); // idempotent
    assert!(sftp.stat(&format!("{base}/a/b/c")).await.unwrap().is_dir());
    std::fs::write(remote.path().join("a/f1"), b"12345").unwrap();
    let meta = sftp.stat(&format!("{base}/a/f1")).await.unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.size, Some(5));
    sftp.set_mode(&format!("{base}/a/f1"), 0o600).await.unwrap();
    assert_eq!(mode(&remote.path().join("a/f1")), 0o600);
    let mut names: Vec<_> = sftp
        .read_dir(&format!("{base}/a"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, ["b", "f1"]);
    std::fs::write(remote.path().join("a/f2"), b"other").unwrap();
    sftp.rename(&format!("{base}/a/f1"), &format!("{base}/a/f2"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(remote.path().join("a/f2")).unwrap(), b"12345");
    sftp.remove(&format!("{base}/a/f2")).await.unwrap();
    assert!(!sftp.exists(&format!("{base}/a/f2")).await.unwrap());
    sftp.remove_dir(&format!("{base}/a/b/c")).await.unwrap();
    let err = sftp.stat(&format!("{base}/a/b/c")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );
}
on_both_servers!(sftp_handle_operations);

async fn concurrent_transfers(srv: &support::Server) {
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let src = local.path().join("src");
    let want = random_file(&src, 3 * 1024 * 1024 + 17);
    // Eight at once on one session, then eight spread over four sessions.
    // Dropbear before 2024.86 aborts a connection whose channels open and
    // close concurrently (its issue #321, "Failed assertion ...
    // !channel->sent_close"): there, one transfer per session.
    let mut sessions = Vec::new();
    if srv.is_openssh() {
        sessions = vec![srv.connect().await; 8];
    } else {
        for _ in 0..8 {
            sessions.push(srv.connect().await);
        }
    }
    for _ in 0..4 {
        let s = srv.connect().await;
        sessions.push(s.clone());
        sessions.push(if srv.is_openssh() {
            s
        } else {
            srv.connect().await
        });
    }
    let jobs = sessions.into_iter().enumerate().map(|(i, sess)| {
        let src = src.clone();
        let dst = remote.path().join(format!("copy{i}"));
        let back = local.path().join(format!("back{i}"));
        async move {
            sess.upload(&src, dst.to_str().unwrap()).await.unwrap();
            sess.download(dst.to_str().unwrap(), &back).await.unwrap();
            (dst, back)
        }
    });
    for (dst, back) in futures::future::join_all(jobs).await {
        assert_eq!(digest(&dst), want);
        assert_eq!(digest(&back), want);
    }
}
on_both_servers!(concurrent_transfers);

async fn upload_cut_by_server_death(srv: &support::Server) {
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let dst = remote.path().join("important.conf");
    std::fs::write(&dst, b"the old, intact contents").unwrap();
    let src = local.path().join("big");
    random_file(&src, 64 * 1024 * 1024);

    // Kill every server process once a few MiB have gone through.
    let pids = srv.connection_pids();
    assert!(!pids.is_empty());
    let killed = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let opts = {
        let killed = killed.clone();
        let seen = seen.clone();
        TransferOptions::new().on_progress(move |p| {
            seen.store(p.done, Ordering::SeqCst);
            if p.done > 4 * 1024 * 1024 && !killed.swap(true, Ordering::SeqCst) {
                support::signal_pids("KILL", &pids);
            }
        })
    };
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        sess.upload_with(&src, dst.to_str().unwrap(), &opts),
    )
    .await
    .expect("the upload hung after the server died");
    assert!(killed.load(Ordering::SeqCst), "the server was never killed");
    let err = result.unwrap_err();
    assert!(
        err.is_connection_lost(),
        "expected ConnectionLost, got {err:?}"
    );
    assert_eq!(std::fs::read(&dst).unwrap(), b"the old, intact contents");
}
on_both_servers!(upload_cut_by_server_death);

/// Minimal images have no SFTP: sshd without a `Subsystem` line refuses
/// the request; dropbear without `sftp-server` accepts it and the channel
/// closes during init. Either way `sftp()` says Unsupported, and uploads,
/// downloads and provisioning's file and script steps go through `cat`
/// over exec, with the same atomic replace, mode and typed errors.
async fn no_sftp_subsystem_falls_back_to_exec(srv: &support::Server) {
    let sess = srv.connect().await;
    let err = sess.sftp().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::Unsupported,
                ..
            }
        ),
        "{err:?}"
    );
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let src = local.path().join("src");
    let want = random_file(&src, 3 * 1024 * 1024 + 5);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
    let dst = remote.path().join("sub dir/it's here");
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::write(&dst, b"old").unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let seen = done.clone();
    let opts = TransferOptions::new().on_progress(move |p| seen.store(p.done, Ordering::SeqCst));
    let sent = sess
        .upload_with(&src, dst.to_str().unwrap(), &opts)
        .await
        .unwrap();
    assert_eq!(sent, 3 * 1024 * 1024 + 5);
    assert_eq!(done.load(Ordering::SeqCst), sent);
    assert_eq!(digest(&dst), want);
    assert_eq!(mode(&dst), 0o750);
    let names: Vec<_> = std::fs::read_dir(dst.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1, "temporary file left behind");

    let refuse = TransferOptions::new().overwrite(false);
    let err = sess
        .upload_with(&src, dst.to_str().unwrap(), &refuse)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::AlreadyExists,
                ..
            }
        ),
        "{err:?}"
    );
    let err = sess.upload(&src, "/proc/vmssh-test/f").await.unwrap_err();
    assert!(matches!(err, Error::Sftp { .. }), "{err:?}");

    let mut back = Vec::new();
    let n = sess
        .download_via_exec(dst.to_str().unwrap(), &mut back)
        .await
        .unwrap();
    assert_eq!(n, back.len() as u64);
    assert_eq!(<[u8; 32]>::from(Sha256::digest(&back)), want);
    let err = sess
        .download_via_exec("/nonexistent/vmssh", &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );

    // A local read error: the destination is untouched (no `mv` ran) and
    // the temporary file goes away.
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        sess.upload_from_reader(
            support::FailingReader::new(200_000),
            Some(1_000_000),
            dst.to_str().unwrap(),
            &TransferOptions::new(),
        ),
    )
    .await
    .expect("the upload hung after its reader failed")
    .unwrap_err();
    assert!(
        err.chain().to_string().contains("stdin reader broke"),
        "{}: the reader's error is lost: {err:?}",
        srv.name()
    );
    assert_eq!(digest(&dst), want, "{}: destination replaced", srv.name());
    let start = std::time::Instant::now();
    loop {
        let names: Vec<_> = std::fs::read_dir(dst.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if names.len() == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{}: temporary file left behind: {names:?}",
            srv.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The count is what was sent, not the size hint.
    let small = remote.path().join("small");
    let n = sess
        .upload_from_reader(
            &b"0123456789"[..],
            Some(5000),
            small.to_str().unwrap(),
            &TransferOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(std::fs::read(&small).unwrap(), b"0123456789");
    std::fs::remove_file(&small).unwrap();

    // The façade's downloads fall back too.
    let back = local.path().join("back");
    let n = sess.download(dst.to_str().unwrap(), &back).await.unwrap();
    assert_eq!(n, 3 * 1024 * 1024 + 5);
    assert_eq!(digest(&back), want);
    let mut buf = Vec::new();
    sess.download_to_writer(dst.to_str().unwrap(), &mut buf, &TransferOptions::new())
        .await
        .unwrap();
    assert_eq!(<[u8; 32]>::from(Sha256::digest(&buf)), want);
    let err = sess
        .download("/nonexistent/vmssh", &local.path().join("none"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!local.path().join("none").exists());

    // And so do provisioning's file and script steps.
    let plan = tempfile::tempdir().unwrap();
    std::fs::write(plan.path().join("app.conf"), "listen 8080;\n").unwrap();
    let guest = remote.path().display().to_string();
    std::fs::write(
        plan.path().join("setup.sh"),
        format!("#!/bin/sh\necho script ran > '{guest}/script-marker'\n"),
    )
    .unwrap();
    let steps = [
        vmssh::provision::ProvisionDef::file("app.conf", format!("{guest}/etc/app.conf")),
        vmssh::provision::ProvisionDef::script("setup.sh"),
    ];
    vmssh::provision::Provisioner::new("nosftp")
        .base_dir(plan.path())
        .run(&sess, &steps)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(remote.path().join("etc/app.conf")).unwrap(),
        "listen 8080;\n"
    );
    assert_eq!(
        std::fs::read_to_string(remote.path().join("script-marker")).unwrap(),
        "script ran\n"
    );
}

mod no_sftp_subsystem_falls_back_to_exec {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd() {
        let srv = support::Sshd::builder().no_sftp().start();
        super::no_sftp_subsystem_falls_back_to_exec(&srv).await;
    }

    /// dropbear as minimal images run it: no `sftp-server` installed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear() {
        let srv = support::Dropbear::builder().no_sftp().start();
        super::no_sftp_subsystem_falls_back_to_exec(&srv).await;
    }
}

/// Waits (up to a minute) until at least `n` `sftp-server` processes run
/// below the server; panics otherwise.
async fn wait_for_sftp_servers(srv: &support::Server, n: usize) {
    let start = std::time::Instant::now();
    loop {
        let now = srv.processes_named("sftp-server").len();
        if now >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}: {now} sftp-server process(es) after a minute, expected {n}",
            srv.name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A large upload over several SFTP channels (lanes): each writes its
/// chunks of the one temporary file, renamed into place once every lane
/// has written and synced. The reader holds back all but its first MiB
/// until four `sftp-server`s serve the upload, so every lane is open
/// while most of the file is still to be written.
async fn upload_over_several_channels(srv: &support::Server) {
    use tokio::io::AsyncWriteExt as _;
    let sess = srv.connect().await;
    let remote = remote_dir();
    let dst = remote.path().join("lanes.bin");
    std::fs::write(&dst, b"old").unwrap();
    let len = 6 * 1024 * 1024 + 12_345;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    let (mut tx, rx) = tokio::io::duplex(256 * 1024);
    let feed = async {
        tx.write_all(&data[..1 << 20]).await.unwrap();
        wait_for_sftp_servers(srv, 4).await;
        tx.write_all(&data[1 << 20..]).await.unwrap();
        drop(tx);
    };
    let last = Arc::new(AtomicU64::new(0));
    let seen = last.clone();
    let opts = TransferOptions::new()
        .channels(4)
        .mode(0o640)
        .on_progress(move |p| {
            // Progress counts every lane's acknowledged bytes, and only grows.
            assert!(p.done >= seen.swap(p.done, Ordering::SeqCst));
        });
    let upload = sess.upload_from_reader(rx, Some(len as u64), dst.to_str().unwrap(), &opts);
    let (sent, ()) = tokio::join!(upload, feed);
    let sent = sent.unwrap_or_else(|e| panic!("{}: upload over lanes: {e:?}", srv.name()));
    assert_eq!(sent, len as u64);
    assert_eq!(last.load(Ordering::SeqCst), len as u64);
    let got = std::fs::read(&dst).unwrap();
    assert!(
        got == data,
        "{}: the file written over lanes differs",
        srv.name()
    );
    assert_eq!(mode(&dst), 0o640);
    let leftovers: Vec<_> = std::fs::read_dir(remote.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lanes.bin")
        .collect();
    assert!(leftovers.is_empty(), "{}: left: {leftovers:?}", srv.name());
    // The session goes on: the extra channels are gone, a command runs.
    let out = sess
        .exec(&format!("wc -c < '{}'", dst.display()))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy().trim(), len.to_string());
}
on_both_servers!(upload_over_several_channels);

/// Lanes are for long links, and the round trip that decides is the
/// shortest the channel has seen, not the SFTP init's: an `sftp-server`
/// that takes 300 ms to start (a slow guest) on loopback does not make a
/// large download or upload take extra channels. Counted in sshd's log: one SFTP session
/// for both (the second finds the first's channel kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn slow_sftp_server_start_is_not_a_long_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("slow-sftp-server");
    let real = support::find_bin("sftp-server")
        .unwrap_or_else(|| std::path::PathBuf::from("/usr/lib/openssh/sftp-server"));
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nsleep 0.3\nexec '{}' \"$@\"\n", real.display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let srv = support::Sshd::builder()
        .no_sftp()
        .config_line(&format!("Subsystem sftp {}", wrapper.display()))
        .start();
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    // A download first: its open and stat are the round trip it goes by
    // (the channel's own open may wait for sshd's setup after the login,
    // which a loaded machine can make long). Then an upload, on the
    // channel the download kept.
    let src = remote.path().join("big");
    let want = random_file(&src, 16 * 1024 * 1024);
    let back = local.path().join("back");
    sess.download(src.to_str().unwrap(), &back).await.unwrap();
    assert_eq!(digest(&back), want);
    let dst = remote.path().join("again");
    sess.upload(&back, dst.to_str().unwrap()).await.unwrap();
    assert_eq!(digest(&dst), want);
    // The lanes' sessions start before the transfers end; the first line
    // read is the log's reader caught up to them.
    let needle = "Starting session: subsystem 'sftp'";
    srv.log_count(needle, 1, Duration::from_secs(20)).await;
    let requests = srv.log().matches(needle).count();
    assert_eq!(
        requests, 1,
        "a slow sftp-server start made a loopback transfer take extra channels"
    );
}

/// A large download over several SFTP channels (lanes): each reads its
/// parts of the one file, written out in order. The consumer holds back
/// all but its first MiB until four `sftp-server`s serve the download
/// (two parts in flight per lane keep the window small), so every lane is
/// open while most of the file is still to be read. Then the same file to
/// a local file over lanes: byte-identical, nothing else left beside it.
async fn download_over_several_channels(srv: &support::Server) {
    use tokio::io::AsyncReadExt as _;
    let sess = srv.connect().await;
    let remote = remote_dir();
    let src = remote.path().join("lanes.bin");
    let len = 6 * 1024 * 1024 + 12_345;
    let want = random_file(&src, len);
    let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
    let drain = async {
        let mut got = vec![0u8; 1 << 20];
        rx.read_exact(&mut got).await.unwrap();
        wait_for_sftp_servers(srv, 4).await;
        rx.read_to_end(&mut got).await.unwrap();
        got
    };
    let last = Arc::new(AtomicU64::new(0));
    let seen = last.clone();
    let opts = TransferOptions::new()
        .channels(4)
        .requests_in_flight(2)
        .chunk_size(64 * 1024)
        .on_progress(move |p| {
            assert!(p.done >= seen.swap(p.done, Ordering::SeqCst));
        });
    let download = async {
        let n = sess
            .download_to_writer(src.to_str().unwrap(), &mut tx, &opts)
            .await;
        drop(tx);
        n
    };
    let (n, got) = tokio::join!(download, drain);
    let n = n.unwrap_or_else(|e| panic!("{}: download over lanes: {e:?}", srv.name()));
    assert_eq!(n, len as u64);
    assert_eq!(last.load(Ordering::SeqCst), len as u64);
    assert!(
        <[u8; 32]>::from(Sha256::digest(&got)) == want,
        "{}: the bytes read over lanes differ",
        srv.name()
    );

    let local = tempfile::tempdir().unwrap();
    let dst = local.path().join("back.bin");
    let opts = TransferOptions::new().channels(4).chunk_size(32 * 1024);
    let n = sess
        .download_with(src.to_str().unwrap(), &dst, &opts)
        .await
        .unwrap();
    assert_eq!(n, len as u64);
    assert_eq!(
        digest(&dst),
        want,
        "{}: the file read over lanes differs",
        srv.name()
    );
    let names: Vec<_> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["back.bin"]);
    // The session goes on: the extra channels are gone, a command runs.
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
}
on_both_servers!(download_over_several_channels);

/// One lane of a download dies (its `sftp-server` is killed while every
/// lane reads): the download fails, the local destination keeps its old
/// contents, no temporary file is left beside it, and the session goes on
/// (a command, and the same download again).
async fn download_lane_killed(srv: &support::Server) {
    let sess = srv.connect().await;
    let remote = remote_dir();
    let src = remote.path().join("big.bin");
    let len = 32 * 1024 * 1024;
    let want = random_file(&src, len);
    let local = tempfile::tempdir().unwrap();
    let dst = local.path().join("kept.conf");
    std::fs::write(&dst, b"the old, intact contents").unwrap();
    // Small reads, one at a time per lane: the download lasts long enough
    // for every lane to open.
    let seen = Arc::new(AtomicU64::new(0));
    let opts = {
        let seen = seen.clone();
        TransferOptions::new()
            .channels(4)
            .requests_in_flight(1)
            .chunk_size(16 * 1024)
            .on_progress(move |p| seen.store(p.done, Ordering::SeqCst))
    };
    let finished = AtomicBool::new(false);
    let download = async {
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            sess.download_with(src.to_str().unwrap(), &dst, &opts),
        )
        .await
        .expect("the download hung after a lane died");
        finished.store(true, Ordering::SeqCst);
        r
    };
    // Once a MiB is written and four sftp-servers serve the download,
    // kill the newest: an extra lane.
    let kill = async {
        while !finished.load(Ordering::SeqCst) {
            let mut servers = srv.processes_named("sftp-server");
            if seen.load(Ordering::SeqCst) >= 1 << 20 && servers.len() >= 4 {
                servers.sort_unstable();
                support::signal_pids("KILL", &servers[servers.len() - 1..]);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    };
    let (result, killed) = tokio::join!(download, kill);
    assert!(killed, "{}: four lanes never read at once", srv.name());
    let err = result.expect_err("a download with a dead lane succeeded");
    assert!(err.is_connection_lost(), "{}: {err:?}", srv.name());
    assert_eq!(std::fs::read(&dst).unwrap(), b"the old, intact contents");
    let names: Vec<_> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["kept.conf"], "{}: left beside it", srv.name());
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
    sess.download(src.to_str().unwrap(), &dst).await.unwrap();
    assert_eq!(digest(&dst), want);
}
on_both_servers!(download_lane_killed);

/// Where the server refuses more channels (sshd's `MaxSessions 1`), an
/// upload asked to use four writes over the one it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn lanes_the_server_refuses_are_done_without() {
    let srv = support::Sshd::builder().max_sessions(1).start();
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let src = local.path().join("src");
    let want = random_file(&src, 9 * 1024 * 1024 + 7);
    let dst = remote.path().join("dst");
    let opts = TransferOptions::new().channels(4);
    let sent = sess
        .upload_with(&src, dst.to_str().unwrap(), &opts)
        .await
        .unwrap();
    assert_eq!(sent, 9 * 1024 * 1024 + 7);
    assert_eq!(digest(&dst), want);
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
}

/// A command right after an upload, many times over: the upload's SFTP
/// channel (its `sftp-server` exits once the channel ends, after the
/// caller has its answer) or, without SFTP, the refused attempt at it
/// must not take the next command's channel down with it. Dropbear before
/// 2024.86 closes a channel that has not started its command yet when any
/// child of the connection exits, and may still run the command.
async fn command_right_after_upload(srv: &support::Server) {
    let sess = srv.connect().await;
    let remote = remote_dir();
    for i in 0..40 {
        let dst = remote.path().join(format!("f{i}"));
        sess.upload_from_reader(
            std::io::Cursor::new(vec![b'x'; 1000]),
            Some(1000),
            dst.to_str().unwrap(),
            &TransferOptions::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: upload {i}: {e:?}", srv.name()));
        let out = sess
            .exec(&format!("wc -c < '{}'", dst.display()))
            .await
            .unwrap_or_else(|e| panic!("{}: command after upload {i}: {e:?}", srv.name()));
        assert_eq!(
            out.stdout_lossy().trim(),
            "1000",
            "{}: upload {i}",
            srv.name()
        );
    }
}

mod command_right_after_upload {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd() {
        let srv = support::Sshd::builder().start();
        super::command_right_after_upload(&srv).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear() {
        let srv = support::Dropbear::builder().start();
        super::command_right_after_upload(&srv).await;
    }

    /// Without `sftp-server`: each upload's SFTP attempt runs a shell that
    /// fails at once, just before the fallback's own command.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear_without_sftp() {
        let srv = support::Dropbear::builder().no_sftp().start();
        super::command_right_after_upload(&srv).await;
    }
}

/// The process's umask (read by setting it back).
fn umask() -> u32 {
    // SAFETY: umask only swaps the process's file mode mask; nextest runs
    // each test in its own process.
    let old = unsafe { libc::umask(0o022) };
    unsafe { libc::umask(old) };
    old
}

/// A hostile guest cannot plant setuid files on the orchestrator: a remote
/// file with mode 6775 is downloaded with its permission bits only, and
/// the local umask applied, as OpenSSH's `sftp` does.
async fn download_drops_setuid_bits(srv: &support::Server) {
    let sess = srv.connect().await;
    let remote = remote_dir();
    let planted = remote.path().join("planted");
    std::fs::write(&planted, b"#!/bin/sh\nid\n").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o6775)).unwrap();
    assert_eq!(mode(&planted), 0o6775);
    let local = tempfile::tempdir().unwrap();
    for (name, opts) in [
        ("atomic", TransferOptions::new()),
        ("in place", TransferOptions::new().atomic(false)),
    ] {
        let got = local.path().join(name);
        sess.download_with(planted.to_str().unwrap(), &got, &opts)
            .await
            .unwrap();
        assert_eq!(
            mode(&got),
            0o775 & !umask(),
            "{} ({name}): setuid/setgid kept or umask ignored",
            srv.name()
        );
    }
    // Asked for: the permission bits exactly, then the special bits too.
    let exact = local.path().join("exact");
    sess.download_with(
        planted.to_str().unwrap(),
        &exact,
        &TransferOptions::new().preserve_mode(true),
    )
    .await
    .unwrap();
    assert_eq!(mode(&exact), 0o775);
    let trusted = local.path().join("trusted");
    sess.download_with(
        planted.to_str().unwrap(),
        &trusted,
        &TransferOptions::new().preserve_mode(true).keep_setuid(true),
    )
    .await
    .unwrap();
    assert_eq!(mode(&trusted), 0o6775);
}
on_both_servers!(download_drops_setuid_bits);
