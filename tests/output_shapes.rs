//! Awkward output and input: a single 100 MiB line, a million
//! of tiny flushed writes, stdout and stderr interleaved at full speed, and
//! command lines or values full of quotes, `$()`, newlines and non-ASCII.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use futures::StreamExt;
use vmssh::{Chunk, Command};

async fn one_huge_line(srv: &support::Server) {
    let sess = srv.connect().await;
    const LEN: usize = 100 * 1024 * 1024;
    let mut stream = sess
        .exec_streaming(&format!("head -c {LEN} /dev/zero | tr '\\0' 'a'"))
        .await
        .unwrap();
    let mut n = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_stderr());
        assert!(chunk.bytes().iter().all(|b| *b == b'a'));
        n += chunk.bytes().len();
    }
    assert_eq!(n, LEN);
    assert!(stream.exit_status().await.unwrap().success());
}
on_both_servers!(one_huge_line);

async fn many_tiny_writes(srv: &support::Server) {
    let sess = srv.connect().await;
    const LINES: u32 = 1_000_000;
    let mut stream = sess
        .exec_streaming(&format!(
            "awk 'BEGIN {{ for (i = 0; i < {LINES}; i++) {{ print i; fflush() }} }}'"
        ))
        .await
        .unwrap();
    let mut text = Vec::new();
    let mut chunks = 0u32;
    while let Some(chunk) = stream.next().await {
        text.extend_from_slice(chunk.unwrap().bytes());
        chunks += 1;
    }
    assert!(stream.exit_status().await.unwrap().success());
    let text = String::from_utf8(text).unwrap();
    let mut expected = 0u32;
    for line in text.lines() {
        assert_eq!(
            line.parse::<u32>().unwrap(),
            expected,
            "out of order or lost"
        );
        expected += 1;
    }
    assert_eq!(expected, LINES);
    assert!(chunks > 1, "output arrived in {chunks} chunk(s)");
}
on_both_servers!(many_tiny_writes);

async fn interleaved_stdout_and_stderr(srv: &support::Server) {
    let sess = srv.connect().await;
    const N: u32 = 100_000;
    let mut stream = sess
        .exec_streaming(&format!(
            "awk 'BEGIN {{ for (i = 0; i < {N}; i++) {{ print \"o\" i; print \"e\" i > \"/dev/stderr\" }} }}'"
        ))
        .await
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            Chunk::Stdout(b) => out.extend_from_slice(&b),
            Chunk::Stderr(b) => err.extend_from_slice(&b),
            other => panic!("unexpected chunk {other:?}"),
        }
    }
    assert!(stream.exit_status().await.unwrap().success());
    for (prefix, bytes) in [("o", out), ("e", err)] {
        let text = String::from_utf8(bytes).unwrap();
        let mut expected = 0u32;
        for line in text.lines() {
            assert_eq!(line, format!("{prefix}{expected}"));
            expected += 1;
        }
        assert_eq!(expected, N, "{prefix}: lines lost");
    }
}
on_both_servers!(interleaved_stdout_and_stderr);

async fn hostile_command_lines_and_values(srv: &support::Server) {
    let sess = srv.connect().await;
    let nasty =
        "quote\" single' dollar $(echo INJECTED) `echo INJECTED` back\\slash\nnew line ünïcödé *";
    // The value travels as an env request or, where refused, quoted for the
    // shell by the crate: either way it arrives byte for byte.
    let out = sess
        .exec_command(Command::new("printf '%s' \"$NASTY\"").env("NASTY", nasty))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), nasty);
    // A command line is passed to the remote shell as given.
    let out = sess
        .exec("printf '%s|' 'a b' \"c'd\" 'ü' \"$(printf x)\"")
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "a b|c'd|ü|x|");
    // Stdin bytes arrive exactly, including NUL and invalid UTF-8.
    let bytes: Vec<u8> = (0u8..=255).chain([0, 0xff, b'\n']).collect();
    let out = sess
        .exec_command(Command::new("cat").stdin_bytes(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(out.stdout, bytes);
}
on_both_servers!(hostile_command_lines_and_values);
