//! The embedded test server (`vmssh::testkit`): real commands, SFTP, flow
//! control, every fault knob, and a thousand connections to one process.
//! Each test starts its own server through the `TestServer` API; no sshd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use vmssh::{Chunk, Command, Error, Session, SftpErrorKind, TransferOptions};
use vmssh_testkit::TestServer;

/// Hang guard: generous, only there so a bug fails instead of hanging.
async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    guard_for(60, what, fut).await
}

async fn guard_for<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result after {secs} s"),
    }
}

async fn connect(server: &TestServer) -> Session {
    guard("connect", server.connect()).await.unwrap()
}

// ---------------------------------------------------------------------------
// exec

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    let ok = guard("exit 0", sess.exec("exit 0")).await.unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(ok.status.success());
    let seven = guard("exit 7", sess.exec("echo before; exit 7"))
        .await
        .unwrap();
    assert_eq!(seven.status.code(), Some(7));
    assert_eq!(seven.stdout, b"before\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_by_a_signal() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    // The shell kills itself: exit-signal, not an exit code.
    let out = guard("kill -TERM $$", sess.exec("kill -TERM $$"))
        .await
        .unwrap();
    assert_eq!(out.status.signal(), Some("TERM"));
    assert_eq!(out.status.code(), None);

    // A signal request from the client reaches the command.
    let mut s = guard(
        "start",
        sess.exec_streaming("echo ready; sleep 30; echo not reached"),
    )
    .await
    .unwrap();
    let first = guard("first chunk", s.next()).await.unwrap().unwrap();
    assert_eq!(first, Chunk::Stdout("ready\n".into()));
    s.signal("TERM").await.unwrap();
    let status = guard("status", s.exit_status()).await.unwrap();
    assert_eq!(status.signal(), Some("TERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_apart() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    let out = guard("exec", sess.exec("echo out; echo err >&2; echo out2"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out\nout2\n");
    assert_eq!(out.stderr, b"err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_round_trip() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    let out = guard(
        "cat",
        sess.exec_command(Command::new("cat").stdin_bytes("hello\nworld\n")),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, b"hello\nworld\n");

    // Larger than every window and queue on the way: 3 MiB through cat and
    // back, checksummed. EOF from the client ends cat.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    let out = guard(
        "cat 3 MiB",
        sess.exec_command(Command::new("cat").stdin_bytes(data.clone())),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout.len(), data.len());
    assert_eq!(Sha256::digest(&out.stdout), Sha256::digest(&data));
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let server = TestServer::builder()
        .working_dir(&dir)
        .env("FROM_SERVER", "s")
        .start()
        .await
        .unwrap();
    let sess = connect(&server).await;
    let cmd = Command::new(r#"pwd; echo "$FROM_SERVER $FOO""#).env("FOO", "bar baz");
    let out = guard("exec", sess.exec_command(cmd)).await.unwrap();
    assert_eq!(
        out.stdout_lossy(),
        format!("{}\ns bar baz\n", dir.display())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_merges_stderr() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    let out = guard(
        "pty",
        sess.exec_command(Command::new("echo out; echo err >&2; echo $TERM").pty(true)),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, b"out\nerr\nxterm\n");
    assert!(out.stderr.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_channels_on_one_connection() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    let runs = (0..8).map(|i| {
        let sess = sess.clone();
        async move { sess.exec(&format!("sleep 0.2; echo {i}")).await }
    });
    let outs = guard("8 channels", futures::future::join_all(runs)).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap().stdout_lossy(), format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_16_mib_checksummed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    let mut data = vec![0u8; 16 * 1024 * 1024];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&file, &data).unwrap();

    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    let mut s = guard(
        "start",
        sess.exec_streaming(&format!("cat '{}'", file.display())),
    )
    .await
    .unwrap();
    let mut hash = Sha256::new();
    let mut total = 0usize;
    let mut chunks = 0usize;
    guard("stream", async {
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            assert!(!c.is_stderr());
            total += c.bytes().len();
            chunks += 1;
            hash.update(c.bytes());
        }
    })
    .await;
    assert_eq!(total, data.len());
    assert_eq!(hash.finalize(), Sha256::digest(&data));
    assert!(
        chunks >= data.len() / (32 * 1024),
        "output arrives in bounded chunks"
    );
    assert!(guard("status", s.exit_status()).await.unwrap().success());
}

fn read_progress(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the child's progress counter stops moving: sampled every
/// 250 ms, stable for 1 s.
async fn wait_until_stalled(path: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = read_progress(path);
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = read_progress(path);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if last > 0 && stable_since.elapsed() >= Duration::from_secs(1) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "progress never stalled (at {last})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_blocks_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("progress");
    let server = TestServer::builder()
        .working_dir(dir.path())
        .start()
        .await
        .unwrap();
    let sess = connect(&server).await;
    // 1024 blocks of 64 KiB (64 MiB); the count of blocks written so far
    // goes to a file after each one.
    const BLOCKS: u64 = 1024;
    let script = format!(
        "i=0; while [ $i -lt {BLOCKS} ]; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > progress; done"
    );
    let mut s = guard("start", sess.exec_streaming(&script)).await.unwrap();
    let first = guard("first chunk", s.next()).await.unwrap().unwrap();
    let mut total = first.bytes().len() as u64;

    // The consumer stops polling: the command must block once the window,
    // the client's bounded queue and the socket buffers are full.
    let stalled = wait_until_stalled(&progress).await;
    assert!(
        stalled < BLOCKS / 4,
        "the command wrote {stalled} of {BLOCKS} blocks with nobody reading"
    );
    eprintln!(
        "backpressure: command blocked after {stalled} blocks ({} KiB in flight at most)",
        stalled * 64
    );

    // Reading again lets it finish, and every byte arrives.
    guard("drain", async {
        while let Some(c) = s.next().await {
            total += c.unwrap().bytes().len() as u64;
        }
    })
    .await;
    assert_eq!(total, BLOCKS * 65536);
    assert_eq!(read_progress(&progress), BLOCKS);
    assert!(guard("status", s.exit_status()).await.unwrap().success());
}

// ---------------------------------------------------------------------------
// sftp

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_under_a_root() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .sftp_root(root.path())
        .start()
        .await
        .unwrap();
    let sess = connect(&server).await;

    let src = local.path().join("src.bin");
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let opts = TransferOptions::new().create_parents(true).mode(0o640);
    let n = guard("upload", sess.upload_with(&src, "/dir/up.bin", &opts))
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    // The root is `/`.
    let uploaded = root.path().join("dir/up.bin");
    assert_eq!(std::fs::read(&uploaded).unwrap(), data);
    let mode = std::fs::metadata(&uploaded).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640);

    // Replacing an existing file (atomic: a temporary file renamed over it).
    std::fs::write(&src, b"second version").unwrap();
    guard("upload again", sess.upload(&src, "/dir/up.bin"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&uploaded).unwrap(), b"second version");
    std::fs::write(&src, &data).unwrap();
    guard("upload a third time", sess.upload(&src, "/dir/up.bin"))
        .await
        .unwrap();

    let back = local.path().join("back.bin");
    guard("download", sess.download("/dir/up.bin", &back))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), data);

    let sftp = guard("sftp", sess.sftp()).await.unwrap();
    let meta = guard("stat", sftp.stat("/dir/up.bin")).await.unwrap();
    assert_eq!(meta.size, Some(data.len() as u64));
    assert!(meta.is_file());
    let names: Vec<String> = guard("read_dir", sftp.read_dir("/dir"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != "." && n != "..")
        .collect();
    assert_eq!(names, ["up.bin"]);
    guard("rename", sftp.rename("/dir/up.bin", "/dir/moved.bin"))
        .await
        .unwrap();
    assert!(root.path().join("dir/moved.bin").exists());
    guard("remove", sftp.remove("/dir/moved.bin"))
        .await
        .unwrap();
    guard("rmdir", sftp.remove_dir("/dir")).await.unwrap();
    assert!(!root.path().join("dir").exists());

    // `..` does not climb out of the root, and errors carry SFTP codes.
    match guard("missing", sess.download("/../../etc/hostname", &back)).await {
        Err(Error::Sftp { kind, .. }) => assert_eq!(kind, SftpErrorKind::NotFound),
        other => panic!("expected a not-found SFTP error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_after_a_delay() {
    let server = TestServer::builder()
        .listen_after(Duration::from_millis(1500))
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    // Still booting: refused, and worth retrying.
    let err = guard("connect", server.connect()).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());

    let sess = guard(
        "connect_with_retry",
        Session::connect_with_retry(
            server.host(),
            server.port(),
            &server.config(),
            Duration::from_secs(30),
        ),
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(
        guard("exec", sess.exec("true"))
            .await
            .unwrap()
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried() {
    let server = TestServer::builder()
        .drop_first_connections(3)
        .start()
        .await
        .unwrap();
    let err = guard("connect", server.connect()).await.unwrap_err();
    assert!(
        err.is_retryable(),
        "closed before the banner must be retryable: {err:?}"
    );
    assert!(
        matches!(
            err,
            Error::Handshake {
                early_close: true,
                ..
            }
        ),
        "{err:?}"
    );

    let sess = guard(
        "connect_with_retry",
        Session::connect_with_retry(
            server.host(),
            server.port(),
            &server.config(),
            Duration::from_secs(30),
        ),
    )
    .await
    .unwrap();
    assert_eq!(server.connections_accepted(), 4);
    assert_eq!(
        guard("exec", sess.exec("echo up")).await.unwrap().stdout,
        b"up\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_authentication() {
    let server = TestServer::builder().reject_auth().start().await.unwrap();
    let err = guard("connect", server.connect()).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication() {
    let server = TestServer::builder()
        .password("s3cret")
        .start()
        .await
        .unwrap();
    let cfg = vmssh::SshConfig::new(server.user())
        .auth(vmssh::Auth::password("wrong"))
        .host_key(vmssh::HostKeyPolicy::pinned(server.host_public_key_line()));
    let err = guard(
        "wrong password",
        Session::connect(server.host(), server.port(), &cfg),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    let cfg = cfg.auth(vmssh::Auth::password("s3cret"));
    let sess = guard(
        "password",
        Session::connect(server.host(), server.port(), &cfg),
    )
    .await
    .unwrap();
    assert!(
        guard("exec", sess.exec("true"))
            .await
            .unwrap()
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostor_host_key() {
    let server = TestServer::builder()
        .different_host_key()
        .start()
        .await
        .unwrap();
    let err = guard("connect", server.connect()).await.unwrap_err();
    assert!(matches!(err, Error::HostKeyChanged { .. }), "{err:?}");
    assert!(err.is_host_key());
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_output() {
    const LIMIT: u64 = 100_000;
    let server = TestServer::builder()
        .close_after_output_bytes(LIMIT)
        .start()
        .await
        .unwrap();
    let sess = connect(&server).await;
    let mut s = guard("start", sess.exec_streaming("head -c 10000000 /dev/zero"))
        .await
        .unwrap();
    let mut received = 0u64;
    let end = guard("stream", async {
        while let Some(c) = s.next().await {
            match c {
                Ok(c) => received += c.bytes().len() as u64,
                Err(e) => return Some(e),
            }
        }
        None
    })
    .await;
    let err = end.expect("the stream must end with an error, not quietly");
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    assert!(received <= LIMIT, "received {received} bytes");
    // The session knows, and later commands fail the same way.
    guard("closed", sess.closed()).await;
    let err = guard("exec after", sess.exec("true")).await.unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
}

/// A server that runs its first command without answering the exec
/// request, a session to it, and a directory for the commands to mark.
async fn unanswered_once() -> (TestServer, tempfile::TempDir, Session) {
    let server = TestServer::builder()
        .unanswered_execs(1)
        .start()
        .await
        .unwrap();
    let sess = connect(&server).await;
    (server, tempfile::tempdir().unwrap(), sess)
}

/// A channel closed after its exec request was sent, without an answer,
/// may have run the command (dropbear 2022.83 does run it): the exec is
/// not sent again, and the error is not retryable.
#[tokio::test]
async fn unanswered_exec_is_not_sent_again() {
    let (_server, dir, sess) = unanswered_once().await;
    let ran = dir.path().join("ran");
    let cmd = format!("echo ran >> '{}'", ran.display());
    let err = guard("exec", sess.exec(&cmd)).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\n");
    // The session is fine: the next command is answered and runs once.
    let out = guard("exec after", sess.exec(&cmd)).await.unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\nran\n");
}

/// A command declared idempotent is started again on a fresh channel when
/// its exec goes unanswered: it ran twice, and the caller gets the second
/// run's output.
#[tokio::test]
async fn unanswered_idempotent_exec_is_started_again() {
    let (_server, dir, sess) = unanswered_once().await;
    let ran = dir.path().join("ran");
    let cmd = format!("echo ran >> '{0}'; wc -l < '{0}'", ran.display());
    let out = guard(
        "exec",
        sess.exec_command(Command::new(cmd).idempotent(true)),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout_lossy().trim(), "2");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\nran\n");
}

fn keepalive_config(server: &TestServer) -> vmssh::SshConfig {
    server
        .config()
        .keepalive_interval(Some(Duration::from_secs(1)))
        .keepalive_max(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_after_auth() {
    let server = TestServer::builder()
        .freeze_after_auth()
        .start()
        .await
        .unwrap();
    let cfg = keepalive_config(&server);
    let started = Instant::now();
    let sess = guard(
        "connect",
        Session::connect(server.host(), server.port(), &cfg),
    )
    .await
    .unwrap();
    let err = guard("exec on a frozen server", sess.exec("echo hi"))
        .await
        .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_at_runtime() {
    let server = TestServer::start().await.unwrap();
    let cfg = keepalive_config(&server);
    let sess = guard(
        "connect",
        Session::connect(server.host(), server.port(), &cfg),
    )
    .await
    .unwrap();
    assert_eq!(
        guard("exec", sess.exec("echo 1")).await.unwrap().stdout,
        b"1\n"
    );

    server.freeze();
    assert!(server.is_frozen());
    let started = Instant::now();
    let mut s = guard("start", sess.exec_streaming("echo 2")).await;
    // The exec may fail to start or its stream may fail: either way the
    // connection is reported lost, by keepalive, within a few seconds.
    let err = match &mut s {
        Err(e) => e,
        Ok(stream) => &guard("status", stream.exit_status()).await.unwrap_err(),
    };
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // Thawed, the server serves new connections again.
    server.unfreeze();
    let sess = connect(&server).await;
    assert_eq!(
        guard("exec", sess.exec("echo 3")).await.unwrap().stdout,
        b"3\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_keepalives() {
    let server = TestServer::builder()
        .ignore_keepalives()
        .start()
        .await
        .unwrap();
    let cfg = keepalive_config(&server);
    let started = Instant::now();
    let sess = guard(
        "connect",
        Session::connect(server.host(), server.port(), &cfg),
    )
    .await
    .unwrap();
    guard("session declared lost", sess.closed()).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = guard("exec after", sess.exec("true")).await.unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
}

fn alive(pid: u32) -> bool {
    // A zombie is dead; it only waits to be reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_server_kills_commands() {
    let server = TestServer::start().await.unwrap();
    let sess = connect(&server).await;
    // A background job in the command's process group.
    let mut s = guard("start", sess.exec_streaming("sleep 300 & echo $!; wait"))
        .await
        .unwrap();
    let first = guard("pid", s.next()).await.unwrap().unwrap();
    let pid: u32 = String::from_utf8_lossy(first.bytes())
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    drop(server);
    let err = guard("stream after drop", s.exit_status())
        .await
        .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    guard("background job killed", async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// scale

fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_connections() {
    raise_nofile_limit();
    let server = TestServer::start().await.unwrap();
    let cfg = server.config();
    let port = server.port();
    let started = Instant::now();
    // Generous: a loaded machine or a build without the crypto crates
    // optimized (see Cargo.toml) takes several times longer.
    let outcomes: Vec<Result<(), String>> = guard_for(
        300,
        "1000 connections",
        futures::stream::iter(0..1000u32)
            .map(|n| {
                let cfg = cfg.clone();
                async move {
                    let sess = Session::connect("127.0.0.1", port, &cfg)
                        .await
                        .map_err(|e| format!("{n}: connect: {e}"))?;
                    let out = sess
                        .exec(&format!("echo {n}"))
                        .await
                        .map_err(|e| format!("{n}: exec: {e}"))?;
                    if out.stdout != format!("{n}\n").as_bytes() || !out.status.success() {
                        return Err(format!(
                            "{n}: got {:?} ({})",
                            out.stdout_lossy(),
                            out.status
                        ));
                    }
                    sess.close().await;
                    Ok(())
                }
            })
            .buffer_unordered(200)
            .collect(),
    )
    .await;
    let elapsed = started.elapsed();
    let failures: Vec<&String> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(outcomes.len(), 1000);
    assert_eq!(server.connections_accepted(), 1000);
    eprintln!("thousand_connections: 1000 connect + exec in {elapsed:.2?}");
}
