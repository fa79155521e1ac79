//! One real guest per SSH server (OpenSSH's sshd, dropbear) and Debian
//! release (12: OpenSSH 9.2p1, dropbear 2022.83; 13: OpenSSH 10.0p2 with
//! its default `PerSourcePenalties`, dropbear 2025.89), booted in QEMU:
//! connect while it boots, exec, a checksummed stream, SFTP both ways, a
//! provisioning plan, then a reboot during a streaming command and one
//! while idle, each noticed (no hang) and followed by a new session to the
//! new boot; and a guest that installs its key after sshd starts.
//!
//! The cases share one guest per server: a boot costs seconds under TCG.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use vmssh::provision::{ProvisionDef, run_provisions};
use vmssh::{Chunk, Error, Session};
use vmssh_testkit::qemu::{Guest, GuestSsh};

use support::qemu::{self, Release};

/// A guard against hangs, not a timing assertion: every wait below ends
/// long before it on a working client.
const HANG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]
async fn openssh_guest() {
    guest_life(Release::Bookworm, GuestSsh::OpenSsh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]
async fn dropbear_guest() {
    guest_life(Release::Bookworm, GuestSsh::Dropbear).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_qemu_trixie),
    ignore = "needs QEMU and the Debian 13 VM image"
)]
async fn openssh10_guest() {
    guest_life(Release::Trixie, GuestSsh::OpenSsh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_qemu_trixie),
    ignore = "needs QEMU and the Debian 13 VM image"
)]
async fn dropbear_trixie_guest() {
    guest_life(Release::Trixie, GuestSsh::Dropbear).await;
}

async fn guest_life(release: Release, ssh: GuestSsh) {
    // connect_with_retry starts together with QEMU: refused, then silent,
    // then reset, then the banner.
    let hostname = format!("vm-{ssh:?}").to_lowercase();
    let guest = release.boot(ssh, &hostname).await;
    let cfg = qemu::config(&guest);
    let sess = qemu::connect(&guest, &cfg).await;
    eprintln!(
        "{release:?} {ssh:?}: first session {:.1} s after QEMU started",
        guest.started_at().elapsed().as_secs_f64()
    );

    exec(&sess, &hostname).await;
    streaming(&sess).await;
    sftp(&sess).await;
    provisioning(&sess).await;
    let sess = reboot_during_streaming(&guest, sess).await;
    reboot_while_idle(&guest, sess).await;
}

async fn exec(sess: &Session, hostname: &str) {
    let out = sess
        .exec("uname -n; echo out; echo err >&2; exit 3")
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), format!("{hostname}\nout\n"));
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
}

/// 8 MiB of random bytes streamed out, checksummed on both sides.
async fn streaming(sess: &Session) {
    let made = sess
        .exec("head -c 8388608 /dev/urandom > /tmp/stream && sha256sum /tmp/stream")
        .await
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let remote_sum = made
        .stdout_lossy()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let mut stream = sess
        .exec_streaming("cat /tmp/stream; echo done >&2")
        .await
        .unwrap();
    let mut hash = Sha256::new();
    let (mut bytes, mut chunks) = (0usize, 0usize);
    let mut stderr = Vec::new();
    while let Some(c) = tokio::time::timeout(HANG, stream.next()).await.unwrap() {
        match c.unwrap() {
            Chunk::Stdout(b) => {
                hash.update(&b);
                bytes += b.len();
                chunks += 1;
            }
            Chunk::Stderr(b) => stderr.extend_from_slice(&b),
            other => panic!("unexpected chunk {other:?}"),
        }
    }
    assert!(stream.exit_status().await.unwrap().success());
    assert_eq!(bytes, 8 << 20);
    assert!(chunks > 1, "the output came in {chunks} chunk(s)");
    assert_eq!(hex(&hash.finalize()), remote_sum);
    assert_eq!(stderr, b"done\n");
}

/// 4 MiB up and back down over SFTP, checksummed in the guest too.
async fn sftp(sess: &Session) {
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; 4 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let src = dir.path().join("up");
    std::fs::write(&src, &data).unwrap();
    let want = hex(&Sha256::digest(&data));

    assert_eq!(
        sess.upload(&src, "/tmp/sftp-up").await.unwrap(),
        data.len() as u64
    );
    let sum = sess.exec("sha256sum /tmp/sftp-up").await.unwrap();
    assert!(sum.stdout_lossy().starts_with(&want), "{sum:?}");

    let back = dir.path().join("back");
    assert_eq!(
        sess.download("/tmp/sftp-up", &back).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(hex(&Sha256::digest(std::fs::read(&back).unwrap())), want);
}

/// A plan of an inline command, a script and a file, with its log.
async fn provisioning(sess: &Session) {
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("setup.sh"),
        "#!/bin/sh\nset -eu\necho \"setup on $(uname -n)\"\necho warn >&2\nmkdir -p /opt/app\n",
    )
    .unwrap();
    std::fs::write(base.path().join("app.conf"), "port = 8080\n").unwrap();
    let steps = [
        ProvisionDef::inline("echo first"),
        ProvisionDef::script("setup.sh"),
        ProvisionDef::file("app.conf", "/opt/app/app.conf"),
        ProvisionDef::inline("cat /opt/app/app.conf"),
    ];
    let logs = tempfile::tempdir().unwrap();
    run_provisions(sess, &steps, base.path(), "guest", Some(logs.path()))
        .await
        .unwrap();
    let log = std::fs::read_to_string(logs.path().join("provision.log")).unwrap();
    for want in ["echo first", "first", "setup on vm-", "warn", "port = 8080"] {
        assert!(log.contains(want), "{want:?} missing from the log:\n{log}");
    }
}

/// The guest reboots under a command that prints every 200 ms: the stream
/// ends with the connection lost (no hang), and a new session reaches the
/// new boot.
async fn reboot_during_streaming(guest: &Guest, sess: Session) -> Session {
    let before = qemu::boot_id(&sess).await;
    let mut stream = sess
        .exec_streaming("while :; do echo tick; sleep 0.2; done")
        .await
        .unwrap();
    let first = tokio::time::timeout(HANG, stream.next()).await.unwrap();
    assert!(matches!(first, Some(Ok(Chunk::Stdout(_)))), "{first:?}");

    tokio::time::timeout(HANG, guest.reboot())
        .await
        .unwrap()
        .unwrap();
    let end = tokio::time::timeout(HANG, async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream hung after the guest rebooted");
    match end {
        Some(Err(e)) => assert!(e.is_connection_lost(), "{e} ({e:?})"),
        other => panic!("the stream ended with {other:?}, not a lost connection"),
    }
    assert!(sess.is_closed());

    let sess = qemu::connect(guest, &qemu::config(guest)).await;
    assert_ne!(qemu::boot_id(&sess).await, before, "not a new boot");
    sess
}

/// The guest reboots while the session is idle: keepalives notice, the
/// session closes, the next exec says the connection is lost, and a new
/// session reaches the new boot.
async fn reboot_while_idle(guest: &Guest, sess: Session) {
    let before = qemu::boot_id(&sess).await;
    tokio::time::timeout(HANG, guest.reboot())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(HANG, sess.closed())
        .await
        .expect("an idle session to a rebooted guest never closed");
    match sess.exec("true").await {
        Err(e) => assert!(
            matches!(
                e,
                Error::ConnectionLost { .. } | Error::SessionClosed { .. }
            ),
            "{e} ({e:?})"
        ),
        Ok(out) => panic!("exec on a dead session returned {out:?}"),
    }
    let sess = qemu::connect(guest, &qemu::config(guest)).await;
    assert_ne!(qemu::boot_id(&sess).await, before, "not a new boot");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Debian 13 guest whose network comes up 10 s late (a slow cloud-init):
/// QEMU accepts connections all that time and leaves them silent, and
/// `connect_with_retry` opens more beside them. Each one it closes still
/// reaches the guest's sshd once the network is up (QEMU keeps retrying
/// it for up to 75 s), and OpenSSH 10 counts every such connection
/// against this host (`PerSourcePenalties`, `noauth:1s`, enforced beyond
/// `min:15s`). The boot-time connect must not cost this host its access:
/// sessions right after it are not refused, and sshd never activates a
/// penalty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_qemu_trixie),
    ignore = "needs QEMU and the Debian 13 VM image"
)]
async fn openssh10_late_network_keeps_access() {
    let guest = Release::Trixie
        .image()
        .guest()
        .hostname("vm-late")
        .network_delay(Duration::from_secs(10))
        .sshd_log_level("VERBOSE")
        .boot()
        .await
        .unwrap();
    let cfg = qemu::config(&guest);
    let sess = qemu::connect(&guest, &cfg).await;
    eprintln!(
        "late network: first session {:.1} s after QEMU started",
        guest.started_at().elapsed().as_secs_f64()
    );
    // Plain connects, one after the other, while the closed connections
    // land on sshd: none may be refused.
    for i in 0..5 {
        let s = Session::connect(guest.host(), guest.port(), &cfg)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connect {i} after the boot-time connect: {}\nconsole:\n{}",
                    e.chain(),
                    guest.console()
                )
            });
        assert!(s.exec("true").await.unwrap().status.success());
        s.close().await;
    }
    drop(sess);
    let console = guest.console();
    for line in console.lines() {
        assert!(
            !(line.contains("activating") || line.contains(" active ")),
            "sshd penalised this host: {line}\nconsole:\n{console}"
        );
    }
}

/// How long after its sshd listens a late-key guest installs root's key.
const KEY_DELAY: Duration = Duration::from_secs(15);

/// A guest that installs its key after sshd starts (cloud-init does), one
/// boot: connecting without `retry_auth_failures` ends with the typed
/// refusal as soon as sshd answers; with it, login is retried until the
/// key lands and the session works. Debian 13's sshd penalises each
/// connection whose login failed (`PerSourcePenalties`, 5 s each, refused
/// past 15 s): at one new connection per 5 s at most, it never refuses
/// this host (its console, at `VERBOSE`, would say so).
async fn late_key(release: Release) {
    let guest = release
        .image()
        .guest()
        .hostname("vm-late-key")
        .key_delay(KEY_DELAY)
        .sshd_log_level("VERBOSE")
        .boot()
        .await
        .unwrap();
    let cfg = qemu::config(&guest);
    let err = Session::connect_with_retry(guest.host(), guest.port(), &cfg, qemu::BOOT_DEADLINE)
        .await
        .err()
        .unwrap_or_else(|| {
            panic!(
                "{release:?}: logged in before the key landed\nconsole:\n{}",
                guest.console()
            )
        });
    assert!(
        matches!(
            err,
            Error::AuthFailed {
                kept_failing: None,
                ..
            }
        ),
        "{release:?}: {err:?}\nconsole:\n{}",
        guest.console()
    );
    assert!(!guest.console().contains("root's key installed"));

    let logins_refused = Arc::new(AtomicU32::new(0));
    let seen = logins_refused.clone();
    let policy = cfg
        .retry_policy()
        .clone()
        .retry_auth_failures(true)
        .on_retry(move |r| {
            if r.is_auth() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        });
    let cfg = cfg.retry(policy);
    let sess = qemu::connect(&guest, &cfg).await;
    let console = guest.console();
    assert!(
        console.contains("root's key installed"),
        "{release:?}: logged in without the key?\nconsole:\n{console}"
    );
    assert!(
        logins_refused.load(Ordering::Relaxed) > 0,
        "{release:?}: no refused login was retried"
    );
    assert!(sess.exec("true").await.unwrap().status.success());
    sess.close().await;
    for line in console.lines() {
        assert!(
            !(line.contains("activating") || line.contains(" active ")),
            "{release:?}: sshd penalised this host: {line}\nconsole:\n{console}"
        );
    }
    eprintln!(
        "{release:?}: {} refused logins retried; session {:.1} s after QEMU started",
        logins_refused.load(Ordering::Relaxed),
        guest.started_at().elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]
async fn openssh_late_key() {
    late_key(Release::Bookworm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_qemu_trixie),
    ignore = "needs QEMU and the Debian 13 VM image"
)]
async fn openssh10_late_key() {
    late_key(Release::Trixie).await;
}
