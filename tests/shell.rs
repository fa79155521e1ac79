//! Interactive shells on real servers: typed commands and their output,
//! the terminal's type and size, a resize seen inside, the exit status;
//! and a shell without a terminal, its stdout and stderr apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::StreamExt;
use support::{Server, on_both_servers};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use vmssh::{Chunk, PtyOptions, TerminalMode};

/// Reads `from` until `needle` has appeared in what was read since the
/// last call (kept in `seen`); panics with the screen when the shell ends
/// first or nothing matches within 60 s.
async fn read_until(from: &mut (impl AsyncRead + Unpin), seen: &mut String, needle: &str) {
    let found = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = seen.find(needle) {
                seen.drain(..at + needle.len());
                return true;
            }
            let n = from.read(&mut buf).await.unwrap();
            if n == 0 {
                return false;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    let found = tokio::time::timeout(Duration::from_secs(60), found)
        .await
        .unwrap_or(false);
    assert!(found, "{needle:?} never appeared; the screen has: {seen:?}");
}

async fn typed_commands_resize_and_exit(srv: &Server) {
    let sess = srv.connect().await;
    let pty = PtyOptions::new("xterm-256color", 80, 24).mode(TerminalMode::Iutf8, 1);
    let mut sh = sess.shell(pty).await.unwrap();
    let mut seen = String::new();
    // The echoed line shows the arithmetic, the output its result: the
    // marker appears only once the shell ran the line.
    sh.write_all(b"echo \"typed-$((40+2))-$TERM\"\n")
        .await
        .unwrap();
    read_until(&mut sh, &mut seen, "typed-42-xterm-256color").await;
    sh.write_all(b"echo \"size-$((0+1)) $(stty size)\"\n")
        .await
        .unwrap();
    read_until(&mut sh, &mut seen, "size-1 24 80").await;
    sh.resize(132, 43).await.unwrap();
    sh.write_all(b"echo \"size-$((1+1)) $(stty size)\"\n")
        .await
        .unwrap();
    read_until(&mut sh, &mut seen, "size-2 43 132").await;
    sh.write_all(b"exit 3\n").await.unwrap();
    let mut rest = Vec::new();
    sh.read_to_end(&mut rest).await.unwrap();
    let status = sh.exit_status().await.unwrap();
    assert_eq!(status.code(), Some(3), "{}: {status:?}", srv.name());
    assert_eq!(sh.try_exit_status().and_then(|s| s.code()), Some(3));
}
on_both_servers!(typed_commands_resize_and_exit);

/// Split halves: one task types, another reads (the way a terminal
/// client runs them), and the writing half resizes.
async fn split_halves(srv: &Server) {
    let sess = srv.connect().await;
    let sh = sess.shell(PtyOptions::new("vt100", 80, 24)).await.unwrap();
    let (mut reader, mut writer) = sh.split();
    let typing = tokio::spawn(async move {
        writer.resize(90, 20).await.unwrap();
        writer
            .write_all(b"echo \"split-$((2+3)) $(stty size)\"; exit 0\n")
            .await
            .unwrap();
        writer
    });
    let mut seen = String::new();
    read_until(&mut reader, &mut seen, "split-5 20 90").await;
    let _writer = typing.await.unwrap();
    assert_eq!(reader.exit_status().await.unwrap().code(), Some(0));
}
on_both_servers!(split_halves);

/// Without a terminal: commands from what is written, stdout and stderr
/// apart, the end at end-of-file.
async fn without_a_pty(srv: &Server) {
    let sess = srv.connect().await;
    let mut sh = sess.shell_without_pty().await.unwrap();
    sh.write_all(b"echo out; echo err >&2; test -t 0 || echo no-tty\n")
        .await
        .unwrap();
    sh.write_all(b"exit 5\n").await.unwrap();
    sh.shutdown().await.unwrap();
    let (mut reader, _writer) = sh.split();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = reader.next().await {
        match chunk.unwrap() {
            Chunk::Stdout(b) => out.extend_from_slice(&b),
            Chunk::Stderr(b) => err.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&out),
        "out\nno-tty\n",
        "{}",
        srv.name()
    );
    assert_eq!(String::from_utf8_lossy(&err), "err\n", "{}", srv.name());
    assert_eq!(reader.exit_status().await.unwrap().code(), Some(5));
}
on_both_servers!(without_a_pty);
