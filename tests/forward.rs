//! TCP through a session: `open_tcp`, local and remote forwards. Bulk data
//! checksummed both ways, several tunnels at once, a forward dropped while
//! a tunnel carries data, a stalled tunnel next to a busy one, the channel
//! limit held only while a tunnel is open, and a bind address in use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sha2::{Digest, Sha256};
use support::Server;
use support::tcp::{Behaviour, TcpServer, pattern};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vmssh::Error;

/// A generous bound for "this must not hang", never a performance claim.
const HANG: Duration = Duration::from_secs(60);

/// Writes `len` pattern bytes into `stream` while reading everything that
/// comes back; returns the SHA-256 of what was read. Writing and reading
/// run together, so an echo needs no buffering beyond the tunnel's own.
async fn round_trip<S>(stream: S, len: usize) -> [u8; 32]
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async move {
        let mut sent = 0;
        while sent < len {
            let chunk = pattern(sent, (len - sent).min(100_000));
            wr.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
        wr.shutdown().await.unwrap();
    };
    let read = async move {
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n;
        }
        assert_eq!(total, len, "bytes back");
        <[u8; 32]>::from(hash.finalize())
    };
    let ((), got) = tokio::time::timeout(HANG, futures::future::join(write, read))
        .await
        .expect("round trip hung");
    got
}

fn expected(len: usize) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut off = 0;
    while off < len {
        let chunk = pattern(off, (len - off).min(100_000));
        hash.update(&chunk);
        off += chunk.len();
    }
    hash.finalize().into()
}

const BULK: usize = 24 * 1024 * 1024;

async fn open_tcp_echo(srv: &Server) {
    let echo = TcpServer::echo();
    let sess = srv.connect().await;
    let tunnel = sess.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    assert_eq!(
        round_trip(tunnel, BULK).await,
        expected(BULK),
        "{}",
        srv.name()
    );
    // Several at once, each intact.
    let sums = futures::future::join_all((0..4).map(|_| async {
        let t = sess.open_tcp("127.0.0.1", echo.port()).await.unwrap();
        round_trip(t, 2 * 1024 * 1024).await
    }))
    .await;
    for s in sums {
        assert_eq!(s, expected(2 * 1024 * 1024));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn open_tcp_sshd() {
    open_tcp_echo(&support::sshd()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn open_tcp_dropbear() {
    open_tcp_echo(&support::dropbear()).await;
}

/// A source that sends known bytes: downstream alone is intact too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn open_tcp_downstream_only() {
    let srv = support::sshd();
    let source = TcpServer::start(Behaviour::Source(BULK));
    let sess = srv.connect().await;
    let mut t = sess.open_tcp("127.0.0.1", source.port()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(HANG, t.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), BULK);
    assert!(got == pattern(0, BULK), "downstream bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn local_forward_carries_bulk_both_ways() {
    let srv = support::sshd();
    let echo = TcpServer::echo();
    let sess = srv.connect().await;
    let fwd = sess
        .forward_local("127.0.0.1:0", "127.0.0.1", echo.port())
        .await
        .unwrap();
    let addr = fwd.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let sums = futures::future::join_all((0..3).map(|_| async move {
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        round_trip(c, BULK / 3).await
    }))
    .await;
    for s in sums {
        assert_eq!(s, expected(BULK / 3));
    }
    assert_eq!(echo.accepted(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn remote_forward_carries_bulk_both_ways() {
    let srv = support::sshd();
    let echo = TcpServer::echo();
    let sess = srv.connect().await;
    let rf = sess
        .forward_remote("127.0.0.1", 0, "127.0.0.1", echo.port())
        .await
        .unwrap();
    let port = rf.remote_port();
    assert_ne!(port, 0);
    // The server listens on its loopback, which is ours too.
    let sums = futures::future::join_all((0..3).map(|_| async move {
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        round_trip(c, BULK / 3).await
    }))
    .await;
    for s in sums {
        assert_eq!(s, expected(BULK / 3));
    }
    // Cancelled: the server stops listening.
    rf.close().await.unwrap();
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(refused.is_err(), "port {port} still open after close");
    // The session carries on.
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
}

/// Dropping a forward while a tunnel carries data: the tunnel ends (the
/// local client sees its connection end), the listener is gone, and the
/// session and its channel slots are intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn dropping_a_local_forward_mid_transfer() {
    let srv = support::sshd();
    let echo = TcpServer::echo();
    let sess = srv.connect_with(&srv.config().max_channels(2)).await;
    let fwd = sess
        .forward_local("127.0.0.1:0", "127.0.0.1", echo.port())
        .await
        .unwrap();
    let addr = fwd.local_addr();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(&pattern(0, 1024 * 1024)).await.unwrap();
    let mut first = vec![0u8; 1024];
    c.read_exact(&mut first).await.unwrap();
    assert_eq!(first, pattern(0, 1024));
    drop(fwd);
    // The client's connection ends: reads reach end-of-file or an error
    // instead of blocking forever.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(HANG, async {
        loop {
            let mut buf = [0u8; 65536];
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "tunnel still open after the forward was dropped"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // Both channel slots are free again.
    let a = sess.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    let b = sess.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    drop((a, b));
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
}

/// A listening forward holds no channel slot; a tunnel holds one while it
/// is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn forwards_hold_a_slot_only_while_a_tunnel_is_open() {
    let srv = support::sshd();
    let echo = TcpServer::echo();
    let sess = srv.connect_with(&srv.config().max_channels(1)).await;
    let _l1 = sess
        .forward_local("127.0.0.1:0", "127.0.0.1", echo.port())
        .await
        .unwrap();
    let _l2 = sess
        .forward_local("127.0.0.1:0", "127.0.0.1", echo.port())
        .await
        .unwrap();
    let _r = sess
        .forward_remote("127.0.0.1", 0, "127.0.0.1", echo.port())
        .await
        .unwrap();
    // Three forwards, one slot: commands still run.
    assert_eq!(sess.exec("echo free").await.unwrap().stdout, b"free\n");
    let tunnel = sess.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    // With the slot taken, a command waits for it...
    let exec = sess.exec("echo after");
    tokio::pin!(exec);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut exec)
            .await
            .is_err(),
        "a command ran while the only slot was held by a tunnel"
    );
    // ...and runs once the tunnel closes.
    drop(tunnel);
    let out = tokio::time::timeout(HANG, exec).await.unwrap().unwrap();
    assert_eq!(out.stdout, b"after\n");
}

/// A tunnel whose far end never reads blocks only its own writer (its
/// window is full); a busy tunnel beside it carries bulk data meanwhile.
/// And a tunnel whose local reader pauses with less unread data than the
/// channel queue holds does not stop the others either. (Beyond that
/// queue, russh stops reading the connection: every channel of the session
/// waits, see `Session`'s backpressure notes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn stalled_tunnel_next_to_a_busy_one() {
    let srv = support::sshd();
    let sink = TcpServer::start(Behaviour::Sink);
    let source = TcpServer::start(Behaviour::Source(256 * 1024));
    let echo = TcpServer::echo();
    let sess = srv.connect().await;

    let mut stalled_up = sess.open_tcp("127.0.0.1", sink.port()).await.unwrap();
    let blocked_write = async {
        let chunk = pattern(0, 1024 * 1024);
        for _ in 0..64 {
            stalled_up.write_all(&chunk).await.unwrap();
        }
    };
    tokio::pin!(blocked_write);
    // The far end never reads, so 64 MiB cannot all go out.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut blocked_write)
            .await
            .is_err()
    );
    // Downstream: unread data waiting in this tunnel.
    let _stalled_down = sess.open_tcp("127.0.0.1", source.port()).await.unwrap();

    let busy = sess.open_tcp("127.0.0.1", echo.port()).await.unwrap();
    assert_eq!(
        round_trip(busy, 16 * 1024 * 1024).await,
        expected(16 * 1024 * 1024)
    );
    assert!(
        futures::poll!(&mut blocked_write).is_pending(),
        "the sink's tunnel accepted 64 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn bind_address_in_use() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = sess.forward_local(addr, "127.0.0.1", 80).await.unwrap_err();
    match &err {
        Error::Listen { addr: a, source } => {
            assert!(a.contains(&addr.port().to_string()), "{err}");
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected Error::Listen, got {other:?}"),
    }
    // Remote side: the server's port is taken by our listener too (both
    // on this machine's loopback).
    let err = sess
        .forward_remote("127.0.0.1", addr.port(), "127.0.0.1", 80)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestRefused { .. }), "{err:?}");
}

/// `AllowTcpForwarding no`: typed errors for both kinds of forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn forwarding_disabled() {
    let srv = support::Sshd::builder()
        .config_line("AllowTcpForwarding no")
        .start();
    let sess = srv.connect().await;
    let err = sess.open_tcp("127.0.0.1", 80).await.unwrap_err();
    assert!(matches!(err, Error::Tunnel { .. }), "{err:?}");
    let err = sess
        .forward_remote("127.0.0.1", 0, "127.0.0.1", 80)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestRefused { .. }), "{err:?}");
}
