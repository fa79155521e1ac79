//! Running commands on real servers: exit codes and signals, stdout and
//! stderr kept apart, binary output, environment, stdin, pty, timeouts and
//! the output cap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::Server;
use vmssh::{Command, Error};

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn exit_codes(srv: &Server) {
    let sess = srv.connect().await;
    for code in [0u32, 7, 255] {
        let out = sess.exec(&format!("exit {code}")).await.unwrap();
        assert_eq!(out.status.code(), Some(code), "{}: exit {code}", srv.name());
        assert_eq!(out.status.signal(), None);
        assert_eq!(out.status.success(), code == 0);
    }
    let out = sess.exec("false").await.unwrap();
    assert_eq!(out.status.code(), Some(1));
}
on_both_servers!(exit_codes);

async fn killed_by_signal(srv: &Server) {
    let sess = srv.connect().await;
    let out = sess
        .exec("echo before; kill -TERM $$; echo after")
        .await
        .unwrap();
    assert_eq!(out.stdout, b"before\n");
    // Both OpenSSH and dropbear send exit-signal for a command killed by a
    // signal; nothing may turn it into an invented exit code.
    assert_eq!(
        out.status.signal(),
        Some("TERM"),
        "{}: {:?}",
        srv.name(),
        out.status
    );
    assert_eq!(out.status.code(), None);
    assert!(!out.status.success());
    assert_eq!(out.status.to_string(), "killed by signal TERM");

    let out = sess.exec("kill -KILL $$").await.unwrap();
    assert_eq!(
        out.status.signal(),
        Some("KILL"),
        "{}: {:?}",
        srv.name(),
        out.status
    );
}
on_both_servers!(killed_by_signal);

async fn stdout_and_stderr_kept_apart(srv: &Server) {
    let sess = srv.connect().await;
    let out = sess
        .exec("printf out1; printf err1 >&2; printf out2; printf err2 >&2; exit 3")
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out1out2");
    assert_eq!(out.stderr, b"err1err2");
    assert_eq!(out.status.code(), Some(3));

    let mut stream = sess
        .exec_streaming("echo to-out; echo to-err >&2")
        .await
        .unwrap();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            vmssh::Chunk::Stdout(b) => o.extend_from_slice(&b),
            vmssh::Chunk::Stderr(b) => e.extend_from_slice(&b),
            other => panic!("unexpected chunk {other:?}"),
        }
    }
    assert_eq!(o, b"to-out\n");
    assert_eq!(e, b"to-err\n");
    assert!(stream.exit_status().await.unwrap().success());
}
on_both_servers!(stdout_and_stderr_kept_apart);

async fn binary_and_non_utf8_output(srv: &Server) {
    let sess = srv.connect().await;
    // printf octal escapes: NUL, invalid UTF-8, a lone continuation byte.
    let out = sess
        .exec(r"printf '\000\001\377\376\200a\000'")
        .await
        .unwrap();
    assert_eq!(out.stdout, [0u8, 1, 0xff, 0xfe, 0x80, b'a', 0]);
    assert_eq!(out.stdout_lossy(), "\0\u{1}\u{fffd}\u{fffd}\u{fffd}a\0");

    // Every byte value, many times, through cat: nothing translated.
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    let out = sess
        .exec_command(Command::new("cat; cat >&2 </dev/null").stdin_bytes(all.clone()))
        .await
        .unwrap();
    assert!(out.stdout == all, "{}: binary stdout altered", srv.name());
    let out = sess
        .exec_command(Command::new("cat >&2").stdin_bytes(all.clone()))
        .await
        .unwrap();
    assert!(out.stderr == all, "{}: binary stderr altered", srv.name());
    assert!(out.stdout.is_empty());
}
on_both_servers!(binary_and_non_utf8_output);

async fn environment(srv: &Server) {
    let sess = srv.connect().await;
    // Neither server accepts arbitrary env requests by default, so this
    // goes through the quoted `export` fallback: hostile values included.
    let value = "it's a $(touch /tmp/vmssh-pwned) `x` \"quoted\" \\ value\nline 2";
    let out = sess
        .exec_command(
            Command::new(r#"printf '%s|%s' "$VMSSH_A" "$VMSSH_B""#)
                .env("VMSSH_A", value)
                .env("VMSSH_B", ""),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), format!("{value}|"), "{}", srv.name());
    assert!(out.status.success());

    let err = sess
        .exec_command(Command::new("true").env("BAD;NAME", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    // The session survives a refused setup.
    assert!(sess.exec("true").await.unwrap().status.success());
}
on_both_servers!(environment);

/// With a PTY, variables go as `env` requests (stdin passes through the
/// terminal): accepted where the server allows them, a clear refusal where
/// it does not (never a fallback onto the command line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn environment_accepted_by_sshd() {
    let srv = support::Sshd::builder().accept_env("VMSSH_*").start();
    let sess = srv.connect().await;
    let out = sess
        .exec_command(
            Command::new(r#"printf %s "$VMSSH_X""#)
                .env("VMSSH_X", "a b'c")
                .pty(true),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"a b'c");
    let err = sess
        .exec_command(
            Command::new(r#"printf %s "$OTHER""#)
                .env("OTHER", "x")
                .pty(true),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RequestRefused { request, .. } if request == "env"),
        "{err:?}"
    );
    assert!(sess.exec("true").await.unwrap().status.success());
}

async fn stdin_round_trip(srv: &Server) {
    let sess = srv.connect().await;

    let out = sess
        .exec_command(Command::new("tr a-z A-Z").stdin_bytes("hello\nworld\n"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"HELLO\nWORLD\n");

    // Empty stdin: end-of-file at once, the command must not hang.
    let out = tokio::time::timeout(Duration::from_secs(60), sess.exec("cat; echo done"))
        .await
        .expect("cat on empty stdin hung")
        .unwrap();
    assert_eq!(out.stdout, b"done\n");

    // Several MiB from an AsyncRead, checksummed remotely.
    let data = pseudo_random(6 * 1024 * 1024 + 12345, 42);
    let out = sess
        .exec_command(
            Command::new("sha256sum; echo bytes >&2")
                .stdin_reader(std::io::Cursor::new(data.clone())),
        )
        .await
        .unwrap();
    assert!(out.status.success(), "{}: {:?}", srv.name(), out);
    let remote = out.stdout_lossy();
    assert_eq!(
        remote.split_whitespace().next(),
        Some(sha256_hex(&data).as_str())
    );

    // And back: what goes in comes out byte for byte.
    let data = pseudo_random(3 * 1024 * 1024 + 7, 7);
    let out = sess
        .exec_command(Command::new("cat").stdin_reader(std::io::Cursor::new(data.clone())))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), data.len());
    assert!(
        out.stdout == data,
        "{}: stdin round trip altered the data",
        srv.name()
    );
}
on_both_servers!(stdin_round_trip);

async fn pty(srv: &Server) {
    let sess = srv.connect().await;
    let out = sess
        .exec_command(Command::new("test -t 0 && test -t 1 && echo tty; echo err >&2").pty(true))
        .await
        .unwrap();
    // On a pty stderr is merged into stdout, with terminal line endings.
    assert_eq!(out.stdout_lossy(), "tty\r\nerr\r\n", "{}", srv.name());
    assert!(out.stderr.is_empty());
    assert!(out.status.success());

    let out = sess.exec("test -t 0 || echo notty").await.unwrap();
    assert_eq!(out.stdout, b"notty\n");
}
on_both_servers!(pty);

async fn command_timeout(srv: &Server) {
    let sess = srv.connect().await;
    let start = Instant::now();
    let err = sess
        .exec_command(Command::new("echo started; sleep 30").timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::CommandTimeout { after, .. } if after == Duration::from_secs(1)),
        "{}: {err:?}",
        srv.name()
    );
    assert!(err.is_timeout());
    assert!(!err.is_retryable());
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "timeout fired late: {:?}",
        start.elapsed()
    );
    // The timed-out command is sent SIGTERM. OpenSSH ignores signal
    // requests on root logins (see `send_signal`), so there `sleep` runs on.
    if !(srv.is_openssh() && srv.user() == "root") {
        assert!(
            srv.wait_gone("sleep", Duration::from_secs(20)).await,
            "{}: timed-out command still running",
            srv.name()
        );
    }

    // The session stays usable, and a command within its timeout is fine.
    let out = sess
        .exec_command(Command::new("echo ok").timeout(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");

    // A streamed command times out through the stream.
    let mut stream = sess
        .exec_streaming_command(Command::new("sleep 30").timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("stream timeout did not fire");
    assert!(
        matches!(first, Some(Err(Error::CommandTimeout { .. }))),
        "{first:?}"
    );
    assert!(
        stream.next().await.is_none(),
        "stream is fused after an error"
    );
    if !(srv.is_openssh() && srv.user() == "root") {
        assert!(srv.wait_gone("sleep", Duration::from_secs(20)).await);
    }
    assert!(sess.exec("true").await.unwrap().status.success());
}
on_both_servers!(command_timeout);

async fn output_cap(srv: &Server) {
    let sess = srv.connect_with(&srv.config().max_output(100_000)).await;
    let out = sess.exec("head -c 100000 /dev/zero").await.unwrap();
    assert_eq!(out.stdout.len(), 100_000, "exactly the limit is allowed");

    let err = sess
        .exec("head -c 60000 /dev/zero; head -c 60000 /dev/zero >&2")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::OutputTooLarge { limit: 100_000, .. }),
        "{}: {err:?}",
        srv.name()
    );
    // An endless writer is cut off too, and the session stays usable.
    let err = tokio::time::timeout(Duration::from_secs(60), sess.exec("yes"))
        .await
        .expect("exec of an endless writer hung")
        .unwrap_err();
    assert!(matches!(err, Error::OutputTooLarge { .. }), "{err:?}");
    // The abandoned writer ends (SIGPIPE from sshd, SIGTERM on dropbear).
    // Waiting for it first also keeps dropbear's channel race away (see
    // `Server::max_parallel_channels`).
    assert!(
        srv.wait_gone("yes", Duration::from_secs(20)).await,
        "{}: `yes` still running after its command was abandoned",
        srv.name()
    );
    assert_eq!(
        sess.exec("echo still here").await.unwrap().stdout,
        b"still here\n"
    );

    // One command may collect more (or less) than the session allows.
    let big = "head -c 150000 /dev/zero";
    let out = sess
        .exec_command(Command::new(big).max_output(200_000))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 150_000);
    assert!(matches!(
        sess.exec(big).await.unwrap_err(),
        Error::OutputTooLarge { limit: 100_000, .. }
    ));
    let err = sess
        .exec_command(Command::new("head -c 2000 /dev/zero").max_output(1000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::OutputTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
}
on_both_servers!(output_cap);

/// ExecStream::signal reaches the remote command: on dropbear, and on
/// OpenSSH for ordinary users. OpenSSH (9.2 here) refuses signal requests
/// on root sessions ("session signalling requires privilege separation":
/// a root login runs without a privilege-separated child), so there the
/// test checks that the request reached sshd and that nothing broke.
async fn send_signal(srv: &Server) {
    let sess = srv.connect().await;
    let mut stream = sess
        .exec_streaming("echo ready; exec sleep 30")
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.bytes().as_ref(), b"ready\n");
    stream.signal("TERM").await.unwrap();
    if srv.is_openssh() && srv.user() == "root" {
        let start = Instant::now();
        while !srv.log().contains("session_signal_req") {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "sshd never saw the signal request; log:\n{}",
                srv.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(stream.try_exit_status().is_none(), "sleep should still run");
        drop(stream);
        assert!(sess.exec("true").await.unwrap().status.success());
        return;
    }
    let status = tokio::time::timeout(Duration::from_secs(20), stream.exit_status())
        .await
        .unwrap_or_else(|_| panic!("signalled command did not end; log:\n{}", srv.log()))
        .unwrap();
    assert_eq!(status.signal(), Some("TERM"), "{}: {status:?}", srv.name());
}
on_both_servers!(send_signal);

/// A stdin reader that fails ends the command at once with the reader's
/// error; the session carries on.
async fn failing_stdin_reader_ends_the_command(srv: &Server) -> tempfile::TempDir {
    let sess = srv.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Given end-of-file, wc would count a truncated input and the marker
    // would say it was complete.
    let cmd = Command::new(format!(
        "wc -c > '{d}/count' && echo complete > '{d}/marker'"
    ))
    .stdin_reader(support::FailingReader::new(100_000));
    let err = tokio::time::timeout(Duration::from_secs(15), sess.exec_command(cmd))
        .await
        .expect("the command hung after its stdin reader failed")
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{}: {err:?}", srv.name());
    assert!(
        err.chain().to_string().contains("stdin reader broke"),
        "{}: the reader's error is lost: {}",
        srv.name(),
        err.chain()
    );
    // Reads to end-of-file, so it gets one before it exits: `true` could
    // exit, and sshd close its channel, before the end-of-file arrived.
    assert!(sess.exec("cat > /dev/null").await.unwrap().status.success());
    dir
}

mod failing_stdin_reader_ends_the_command {
    use std::time::{Duration, Instant};

    use support::{Dropbear, Sshd};

    /// sshd logs each end-of-file it receives (LogLevel DEBUG2): none may
    /// arrive for the failed command, only its close.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd() {
        let srv = Sshd::builder().config_line("LogLevel DEBUG2").start();
        // The log shows an end-of-file when one is sent.
        let sess = srv.connect().await;
        let out = sess
            .exec_command(vmssh::Command::new("cat").stdin_bytes("x"))
            .await
            .unwrap();
        assert_eq!(out.stdout, b"x");
        let eofs = |log: &str| log.matches("rcvd eof").count();
        let closes = |log: &str| log.matches("rcvd close").count();
        let start = Instant::now();
        while closes(&srv.log()) < 1 {
            assert!(start.elapsed() < Duration::from_secs(10), "{}", srv.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (eofs_before, closes_before) = (eofs(&srv.log()), closes(&srv.log()));
        assert!(eofs_before >= 1, "sshd logs no end-of-file:\n{}", srv.log());
        drop(sess);

        let _dir = super::failing_stdin_reader_ends_the_command(&srv).await;
        // Its channel was closed (the `cat` that followed closed another).
        let start = Instant::now();
        while closes(&srv.log()) < closes_before + 2 {
            assert!(start.elapsed() < Duration::from_secs(10), "{}", srv.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The `cat` got an end-of-file; the failed command none.
        assert_eq!(
            eofs(&srv.log()),
            eofs_before + 1,
            "an end-of-file followed the read error:\n{}",
            srv.log()
        );
    }

    /// dropbear delivers the signal that ends an abandoned command: the
    /// command never sees end-of-file, so it never marks its input done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn dropbear() {
        let srv = Dropbear::builder().start();
        let dir = super::failing_stdin_reader_ends_the_command(&srv).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !dir.path().join("marker").exists(),
            "the command took a truncated input for a complete one"
        );
    }
}
