//! The server matrix: the same core operations against every kind of
//! server a fleet runs (OpenSSH's sshd, hardened and trimmed sshd
//! configurations, dropbear, asyncssh, tinysshd), each started by the test
//! on loopback. One test per cell, named `<server>::<operation>`:
//!
//! - `exec_codes`: exit codes, stdout and stderr kept apart, two commands
//!   on one session;
//! - `streamed_checksum`: 2 MB of output through `exec_streaming`,
//!   checksummed;
//! - `upload_download`: a file up and back, checksummed, then a command on
//!   the same session;
//! - `provision`: a plan with inline, script and file steps.
//!
//! A cell passes, or fails with the typed error that names a real
//! limitation of that server (see each row's comment); nothing is skipped
//! silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::endpoint::Endpoint;
use vmssh::provision::{ProvisionDef, Provisioner};

/// Hang guard: generous, only there so a bug fails instead of hanging.
async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(120), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result after 120 s"),
    }
}

/// Deterministic bytes that no compressor can shortcut.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// What a server cannot do

/// The real limitations of a row's server: where an operation runs into
/// one, the cell expects the typed error that names it instead of success.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// The server ends the connection when its one channel closes
    /// (tinysshd): a second channel on a session finds the connection lost,
    /// and the error says why.
    one_channel: bool,
    /// The server has an SFTP subsystem (without it uploads stream through
    /// `cat` over exec, and SFTP downloads are refused as unsupported).
    sftp: bool,
}

/// A server with no limitation the operations run into.
const FULL: Limits = Limits {
    one_channel: false,
    sftp: true,
};

/// The error of an operation on a one-channel server's session after its
/// one channel: the connection is lost, and the reason names the
/// limitation.
#[track_caller]
fn assert_one_channel(srv: &impl Endpoint, what: &str, e: &vmssh::Error) {
    assert!(
        matches!(e, vmssh::Error::ConnectionLost { .. })
            && e.to_string().contains("one channel per connection"),
        "{}: {what}: expected the connection lost after its one channel, got {e} ({e:?})\n{}",
        srv.label(),
        srv.log()
    );
}

// ---------------------------------------------------------------------------
// The operations

async fn exec_codes(srv: &impl Endpoint, limits: Limits) {
    let sess = srv.connect_with(&srv.config()).await;
    let out = guard("exec", sess.exec("echo out; echo err >&2; exit 3"))
        .await
        .unwrap_or_else(|e| panic!("{}: exec: {e} ({e:?})\n{}", srv.label(), srv.log()));
    assert_eq!(out.status.code(), Some(3), "{}", srv.label());
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    let again = guard("second exec", sess.exec("true")).await;
    if limits.one_channel {
        assert_one_channel(srv, "second exec", &again.unwrap_err());
        return;
    }
    let again = again
        .unwrap_or_else(|e| panic!("{}: second exec: {e} ({e:?})\n{}", srv.label(), srv.log()));
    assert!(again.status.success());
}

async fn streamed_checksum(srv: &impl Endpoint, _limits: Limits) {
    const N: u32 = 300_000;
    let sess = srv.connect_with(&srv.config()).await;
    let mut s = guard("start", sess.exec_streaming(&format!("seq 1 {N}")))
        .await
        .unwrap_or_else(|e| panic!("{}: exec_streaming: {e} ({e:?})", srv.label()));
    let mut hash = Sha256::new();
    let mut total = 0usize;
    guard("stream", async {
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            assert!(!c.is_stderr(), "{}: {c:?}", srv.label());
            total += c.bytes().len();
            hash.update(c.bytes());
        }
    })
    .await;
    let want: String = (1..=N).map(|i| format!("{i}\n")).collect();
    assert_eq!(total, want.len(), "{}", srv.label());
    assert_eq!(hash.finalize(), Sha256::digest(want.as_bytes()));
    assert!(guard("status", s.exit_status()).await.unwrap().success());
}

async fn upload_download(srv: &impl Endpoint, limits: Limits) {
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("up.bin");
    let data = noise(3 * 1024 * 1024 + 123, 5);
    std::fs::write(&src, &data).unwrap();
    let remote = srv.dir().join("up.bin");
    let sess = srv.connect_with(&srv.config()).await;
    // Without SFTP, through `cat` on the channel the subsystem was refused
    // on.
    guard("upload", sess.upload(&src, path_str(&remote)))
        .await
        .unwrap_or_else(|e| panic!("{}: upload: {e} ({e:?})\n{}", srv.label(), srv.log()));
    assert_eq!(
        Sha256::digest(std::fs::read(&remote).unwrap()),
        Sha256::digest(&data)
    );
    let back = local.path().join("back.bin");
    let sess = if limits.one_channel {
        let e = guard("download", sess.download(path_str(&remote), &back))
            .await
            .unwrap_err();
        assert_one_channel(srv, "download after upload", &e);
        srv.connect_with(&srv.config()).await
    } else {
        sess
    };
    // Without SFTP, through `cat` as well.
    guard("download", sess.download(path_str(&remote), &back))
        .await
        .unwrap_or_else(|e| panic!("{}: download: {e} ({e:?})\n{}", srv.label(), srv.log()));
    let got = std::fs::read(&back).unwrap();
    if !limits.sftp {
        let sess = if limits.one_channel {
            srv.connect_with(&srv.config()).await
        } else {
            sess.clone()
        };
        let e = guard("sftp", sess.sftp()).await.unwrap_err();
        assert!(
            matches!(
                e,
                vmssh::Error::Sftp {
                    kind: vmssh::SftpErrorKind::Unsupported,
                    ..
                }
            ),
            "{}: SFTP without SFTP: {e} ({e:?})",
            srv.label()
        );
    }
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
    if limits.one_channel {
        return;
    }
    // The session is still good after SFTP (asyncssh dropped it once).
    let out = guard(
        "exec after sftp",
        sess.exec(&format!("wc -c < '{}'", remote.display())),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{}: exec after SFTP: {e} ({e:?})\n{}",
            srv.label(),
            srv.log()
        )
    });
    assert_eq!(out.stdout_lossy().trim(), data.len().to_string());
}

async fn provision(srv: &impl Endpoint, limits: Limits) {
    let base = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = srv.dir().join("out");
    std::fs::create_dir(&out).unwrap();
    let out_s = path_str(&out);
    std::fs::write(
        base.path().join("setup.sh"),
        format!("#!/bin/sh\nset -e\necho script-ran > '{out_s}/script.txt'\necho from-script\n"),
    )
    .unwrap();
    std::fs::write(base.path().join("app.conf"), b"key = value\n").unwrap();
    let steps = [
        ProvisionDef::inline(format!("echo inline > '{out_s}/inline.txt'")),
        ProvisionDef::script("setup.sh"),
        ProvisionDef::file("app.conf", format!("{out_s}/app.conf")),
        ProvisionDef::inline(format!("cat '{out_s}/app.conf'")),
    ];
    let sess = srv.connect_with(&srv.config()).await;
    let result = guard(
        "provision",
        Provisioner::new("vm")
            .base_dir(base.path())
            .log_dir(logs.path())
            .run(&sess, &steps),
    )
    .await;
    if limits.one_channel {
        // The first step takes the one channel; the second finds the
        // connection gone, and says why.
        let e = result.unwrap_err();
        let vmssh::Error::ProvisionFailed {
            step,
            source: Some(cause),
            ..
        } = &e
        else {
            panic!(
                "{}: expected ProvisionFailed with a cause, got {e} ({e:?})",
                srv.label()
            );
        };
        assert_eq!(*step, 2, "{e}");
        assert_one_channel(srv, "provisioning step 2", cause);
        assert_eq!(std::fs::read(out.join("inline.txt")).unwrap(), b"inline\n");
        return;
    }
    let reports =
        result.unwrap_or_else(|e| panic!("{}: provision: {e} ({e:?})\n{}", srv.label(), srv.log()));
    assert_eq!(reports.len(), steps.len());
    assert_eq!(std::fs::read(out.join("inline.txt")).unwrap(), b"inline\n");
    assert_eq!(
        std::fs::read(out.join("script.txt")).unwrap(),
        b"script-ran\n"
    );
    assert_eq!(
        std::fs::read(out.join("app.conf")).unwrap(),
        b"key = value\n"
    );
    let log = std::fs::read_to_string(logs.path().join("provision.log")).unwrap_or_default();
    assert!(log.contains("from-script"), "{log}");
    assert!(log.contains("key = value"), "{log}");
}

/// More concurrent commands on one session than sshd allows channels
/// (`MaxSessions 2`): sshd refuses the extra opens ("no more sessions"),
/// the session learns the limit and queues them instead of failing or
/// retrying in a loop; all six run once the first ones end.
async fn six_concurrent_commands(srv: &support::Server, _limits: Limits) {
    let refusals = || srv.log().matches("no more sessions").count();
    let dir = srv.dir().join("gate");
    std::fs::create_dir(&dir).unwrap();
    let gate = dir.join("open");
    let sess = srv.connect_with(&srv.config()).await;
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let sess = sess.clone();
            let cmd = format!(
                "touch '{d}/started.{i}'; while [ ! -e '{g}' ]; do sleep 0.05; done; echo {i}",
                d = dir.display(),
                g = gate.display()
            );
            tokio::spawn(async move { sess.exec(&cmd).await })
        })
        .collect();
    let started = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("started.")
            })
            .count()
    };
    // Two commands hold sshd's two slots, and sshd refused at least one
    // more open: the session learnt the limit from it. How many of the
    // other four were sent before that refusal came back is the
    // scheduler's (all of them on an idle machine, one under load); the
    // rest wait for a slot without asking.
    guard("two running, one refused", async {
        while started() < 2 || refusals() < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let burst = refusals();
    assert_eq!(started(), 2, "{}", srv.log());
    // While the slots stay taken, the queued opens wait: no more refusals.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        refusals(),
        burst,
        "the session kept retrying refused opens:\n{}",
        srv.log()
    );
    std::fs::write(&gate, b"").unwrap();
    for (i, run) in runs.into_iter().enumerate() {
        let out = guard("command", run)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("command {i}: {e} ({e:?})\n{}", srv.log()));
        assert_eq!(out.stdout_lossy(), format!("{i}\n"));
    }
    assert_eq!(started(), 6);
    assert_eq!(
        sess.channel_limit(),
        2,
        "the session learnt sshd's MaxSessions"
    );
}

/// The algorithm settings against an sshd restricted to some algorithms:
/// `works` names the server's own, as OpenSSH names them, and connects;
/// `fails` names none of them and fails the handshake.
async fn works_and_fails(srv: &support::Server, works: vmssh::SshConfig, fails: vmssh::SshConfig) {
    let sess = srv.connect_with(&works).await;
    assert!(
        guard("exec", sess.exec("true"))
            .await
            .unwrap()
            .status
            .success()
    );
    let e = guard(
        "connect",
        vmssh::Session::connect(srv.host(), srv.port(), &fails),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, vmssh::Error::Handshake { .. }),
        "no common algorithm: {e} ({e:?})"
    );
}

async fn kex_lists(srv: &support::Server, _limits: Limits) {
    works_and_fails(
        srv,
        srv.config().kex_algorithms(["ecdh-sha2-nistp256"]),
        srv.config()
            .kex_algorithms(["curve25519-sha256", "diffie-hellman-group14-sha256"]),
    )
    .await;
    // OpenSSH's list syntax: the defaults without the NIST curves.
    let e = guard(
        "connect",
        vmssh::Session::connect(
            srv.host(),
            srv.port(),
            &srv.config()
                .kex_algorithms(["-ecdh-sha2-nistp256,ecdh-sha2-nistp384"]),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, vmssh::Error::Handshake { .. }), "{e}");
    // OpenSSH knows sntrup761 and umac; this crate does not: refused
    // before connecting, with a typed error.
    for cfg in [
        srv.config()
            .kex_algorithms(["sntrup761x25519-sha512@openssh.com"]),
        srv.config().macs(["umac-64-etm@openssh.com"]),
    ] {
        let e = guard(
            "connect",
            vmssh::Session::connect(srv.host(), srv.port(), &cfg),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                &e,
                vmssh::Error::UnsupportedAlgorithm { name, .. }
                    if name.starts_with("sntrup761") || name.starts_with("umac-64")
            ),
            "{e} ({e:?})"
        );
    }
}

async fn cipher_lists(srv: &support::Server, _limits: Limits) {
    works_and_fails(
        srv,
        srv.config()
            .ciphers(["aes256-ctr"])
            .macs(["hmac-sha2-256-etm@openssh.com"]),
        srv.config()
            .ciphers(["aes128-gcm@openssh.com,chacha20-poly1305@openssh.com"]),
    )
    .await;
}

async fn host_key_lists(srv: &support::Server, _limits: Limits) {
    works_and_fails(
        srv,
        srv.config().host_key_algorithms(["rsa-sha2-256"]),
        srv.config()
            .host_key_algorithms(["ssh-ed25519", "ecdsa-sha2-nistp256"]),
    )
    .await;
}

/// Compression is used when asked for, and only then: sshd (at `DEBUG1`)
/// logs what each connection negotiated.
async fn compression_requested(srv: &support::Server, _limits: Limits) {
    let negotiated = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("kex: client->server cipher:"))
            .map(|l| {
                // "... compression: zlib@openssh.com [preauth]"
                l.rsplit("compression: ")
                    .next()
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let plain = srv.connect_with(&srv.config()).await;
    assert!(
        guard("exec", plain.exec("true"))
            .await
            .unwrap()
            .status
            .success()
    );
    assert_eq!(negotiated(&srv.log()), ["none"], "{}", srv.log());
    let zipped = srv.connect_with(&srv.config().compression(true)).await;
    // Compressible output, checksummed on the way.
    let out = guard("exec", zipped.exec("yes vmssh | head -n 200000"))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 200_000 * 6);
    assert!(out.stdout.chunks(6).all(|c| c == b"vmssh\n"));
    assert_eq!(
        negotiated(&srv.log()),
        ["none", "zlib@openssh.com"],
        "{}",
        srv.log()
    );
}

/// A server that refuses a session channel while none of the session's
/// is open (sshd with `MaxSessions 0`): nothing can be waited for, so the
/// command fails at once, after one refusal, with the reason, and the
/// session stays usable for what the server does allow.
async fn refused_with_none_open(srv: &support::Server, _limits: Limits) {
    let refusals = |n| srv.log_count("no more sessions", n, Duration::from_secs(5));
    let sess = srv.connect_with(&srv.config()).await;
    let e = guard("exec", sess.exec("true")).await.unwrap_err();
    assert!(
        matches!(&e, vmssh::Error::ChannelOpen { reason, .. }
            if reason.contains("no other channel of this session open")),
        "{e} ({e:?})\n{}",
        srv.log()
    );
    assert_eq!(
        refusals(1).await,
        1,
        "one open, not a retry loop:\n{}",
        srv.log()
    );
    // The connection survives the refusal.
    assert!(!sess.is_closed());
    let e = guard("second exec", sess.exec("true")).await.unwrap_err();
    assert!(matches!(e, vmssh::Error::ChannelOpen { .. }), "{e}");
    assert_eq!(refusals(2).await, 2, "{}", srv.log());
}

/// Processes on this machine whose command line is `words`, exactly (the
/// servers run here, so the remote side's processes are local ones).
fn processes(words: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = words.iter().flat_map(|w| w.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Waits (at most 20 s) until `processes(words)` is empty or not, as
/// `present` says; false when it never was.
async fn await_processes(words: &[&str], present: bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if processes(words).is_empty() != present {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A command abandoned (its stream dropped, or its timeout reached) does
/// not outlive the session's close, whatever the server does with the
/// `signal` request: OpenSSH refuses it for root logins (as these tests
/// log in), asyncssh ignores it unless the application handles it.
async fn abandoned_command_stopped(srv: &impl Endpoint, _limits: Limits) {
    for how in ["dropped", "timed out"] {
        let sess = srv.connect_with(&srv.config()).await;
        let secs = format!("{}", 7_000_000 + rand::random::<u32>() % 1_000_000);
        let words = ["sleep", secs.as_str()];
        let cmd = vmssh::Command::new(format!("sleep {secs}"));
        if how == "dropped" {
            let stream = guard("start", sess.exec_streaming_command(cmd))
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}\n{}", srv.label(), srv.log()));
            assert!(
                await_processes(&words, true).await,
                "{}: the command never ran",
                srv.label()
            );
            drop(stream);
        } else {
            let cmd = cmd.timeout(Duration::from_secs(2));
            let err = guard("exec", sess.exec_command(cmd)).await.unwrap_err();
            assert!(
                matches!(err, vmssh::Error::CommandTimeout { .. }),
                "{}: {err:?}",
                srv.label()
            );
        }
        sess.close().await;
        assert!(
            await_processes(&words, false).await,
            "{} ({how}): the remote command outlived the session: {:?}\n{}",
            srv.label(),
            processes(&words),
            srv.log()
        );
    }
}

// ---------------------------------------------------------------------------
// The matrix

/// One cell: `$op` against the row's server (`start()` in the row module),
/// ignored when the row's server is not installed (`$have`), or for a
/// known failure not fixed yet (`known = "why"`).
macro_rules! cell {
    ($op:ident, $have:ident, $need:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not($have), ignore = $need)]
        async fn $op() {
            super::$op(&start(), LIMITS).await;
        }
    };
    ($op:ident, $have:ident, $need:literal, known = $why:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = $why]
        async fn $op() {
            super::$op(&start(), LIMITS).await;
        }
    };
}

/// A row whose five cells all run (or, with `abandoned = "why"`, four).
macro_rules! row {
    ($have:ident, $need:literal) => {
        cell!(exec_codes, $have, $need);
        cell!(streamed_checksum, $have, $need);
        cell!(upload_download, $have, $need);
        cell!(provision, $have, $need);
        cell!(abandoned_command_stopped, $have, $need);
    };
    ($have:ident, $need:literal, abandoned = $why:literal) => {
        cell!(exec_codes, $have, $need);
        cell!(streamed_checksum, $have, $need);
        cell!(upload_download, $have, $need);
        cell!(provision, $have, $need);
        cell!(abandoned_command_stopped, $have, $need, known = $why);
    };
}

/// OpenSSH's sshd as the tests configure it everywhere: the control row.
mod sshd {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
}

/// dropbear, with OpenSSH's sftp-server for SFTP.
mod dropbear {
    use super::{FULL, Limits};
    use support::{Dropbear, Server};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Dropbear::start()
    }
    row!(vmssh_have_dropbear, "needs dropbear");
}

/// asyncssh's server: exec through /bin/sh, its own SFTP server.
mod asyncssh {
    use super::{FULL, Limits};
    use support::asyncssh::AsyncSsh;
    const LIMITS: Limits = FULL;
    fn start() -> AsyncSsh {
        AsyncSsh::start()
    }
    row!(
        vmssh_have_asyncssh,
        "needs asyncssh (scripts/deps/30-asyncssh.sh)"
    );
}

/// tinysshd as on a minimal image: no SFTP subsystem, and one channel per
/// connection (it ends the connection when that channel closes).
mod tinysshd {
    use super::Limits;
    use support::tinysshd::{Tinysshd, tinysshd};
    const LIMITS: Limits = Limits {
        one_channel: true,
        sftp: false,
    };
    fn start() -> Tinysshd {
        tinysshd()
    }
    row!(
        vmssh_have_tinysshd,
        "needs tinysshd",
        abandoned = "tinysshd ignores the signal request and serves one channel per connection, \
                     so an abandoned command cannot be stopped from its session; it outlives it"
    );
}

/// sshd allowing no session channel at all (`MaxSessions 0`).
mod sshd_max_sessions_0 {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder().max_sessions(0).start()
    }
    cell!(
        refused_with_none_open,
        vmssh_have_sshd,
        "needs OpenSSH sshd"
    );
}

/// sshd allowing two channels per connection.
mod sshd_max_sessions_2 {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder().max_sessions(2).start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
    cell!(
        six_concurrent_commands,
        vmssh_have_sshd,
        "needs OpenSSH sshd"
    );
}

/// sshd offering one key exchange: ecdh-sha2-nistp256.
mod sshd_kex_nistp256 {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder()
            .config_line("KexAlgorithms ecdh-sha2-nistp256")
            .start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
    cell!(kex_lists, vmssh_have_sshd, "needs OpenSSH sshd");
}

/// sshd offering one cipher and one MAC: aes256-ctr with
/// hmac-sha2-256-etm@openssh.com.
mod sshd_aes256_ctr_etm {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder()
            .config_line("Ciphers aes256-ctr")
            .config_line("MACs hmac-sha2-256-etm@openssh.com")
            .start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
    cell!(cipher_lists, vmssh_have_sshd, "needs OpenSSH sshd");
}

/// sshd whose only host key is RSA.
mod sshd_rsa_host_key {
    use super::{FULL, Limits};
    use support::{KeyType, Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder().host_key_type(KeyType::Rsa).start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
    cell!(host_key_lists, vmssh_have_sshd, "needs OpenSSH sshd");
}

/// sshd serving SFTP in-process (`internal-sftp`).
mod sshd_internal_sftp {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder()
            .no_sftp()
            .config_line("Subsystem sftp internal-sftp")
            .start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
}

/// sshd offering compression (`zlib@openssh.com` after authentication).
mod sshd_compression {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder().config_line("Compression yes").start()
    }
    row!(vmssh_have_sshd, "needs OpenSSH sshd");
}

/// The same sshd logging at `DEBUG1`, which shows what each connection
/// negotiated (and also writes debug lines into sessions' stderr, hence a
/// row of its own).
mod sshd_compression_debug {
    use super::{FULL, Limits};
    use support::{Server, Sshd};
    const LIMITS: Limits = FULL;
    fn start() -> Server {
        Sshd::builder()
            .config_line("Compression yes")
            .config_line("LogLevel DEBUG1")
            .start()
    }
    cell!(compression_requested, vmssh_have_sshd, "needs OpenSSH sshd");
}
