//! Peers that are not SSH servers, or stop being one: garbage instead of a
//! banner, an endless banner, a close in the middle of the key exchange, a
//! TCP relay that turns into a black hole. Each ends in a typed error within
//! a bounded time, with bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vmssh::{Auth, Error, HostKeyPolicy, Session, SshConfig};

fn cfg() -> SshConfig {
    SshConfig::new("root")
        .auth(Auth::password("not-a-secret"))
        .host_key(HostKeyPolicy::insecure_accept_any())
        .connect_timeout(Duration::from_secs(5))
}

/// A one-connection fake server running `behave` on each accepted socket.
async fn fake_server<F, Fut>(behave: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((support::HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(behave(sock));
        }
    });
    port
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kib / 1024
}

async fn connect_fails(port: u16) -> (Error, Duration) {
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        Session::connect(support::HOST, port, &cfg()),
    )
    .await
    .expect("connect hung past its own timeout");
    (result.unwrap_err(), start.elapsed())
}

#[tokio::test]
async fn garbage_instead_of_a_banner() {
    let port = fake_server(|mut sock| async move {
        let _ = sock
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n<html>nope</html>\r\n")
            .await;
        let _ = sock.shutdown().await;
    })
    .await;
    let (err, _) = connect_fails(port).await;
    assert!(
        matches!(err, Error::Handshake { .. }),
        "expected a handshake error, got {err:?}"
    );
}

#[tokio::test]
async fn endless_banner_is_bounded() {
    let before = peak_rss_mib();
    let port = fake_server(|mut sock| async move {
        // Pre-banner lines forever (RFC 4253 allows some), at full speed.
        let line = vec![b'x'; 200];
        let mut chunk = Vec::new();
        for _ in 0..1000 {
            chunk.extend_from_slice(&line);
            chunk.extend_from_slice(b"\r\n");
        }
        while sock.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let (err, took) = connect_fails(port).await;
    assert!(
        matches!(err, Error::Handshake { .. } | Error::ConnectTimeout { .. }),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let growth = peak_rss_mib().saturating_sub(before);
    assert!(
        growth < 64,
        "memory grew by {growth} MiB reading an endless banner"
    );
}

#[tokio::test]
async fn close_in_the_middle_of_key_exchange() {
    let port = fake_server(|mut sock| async move {
        let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.2p1 fake\r\n").await;
        // Read the client's banner and the start of its KEXINIT (they may
        // arrive in one segment or several), then hang up.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let kexinit_started = seen
                .windows(2)
                .position(|w| w == b"\r\n")
                .is_some_and(|end| seen.len() > end + 2 + 5);
            if kexinit_started {
                break;
            }
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        drop(sock);
    })
    .await;
    let (err, _) = connect_fails(port).await;
    match &err {
        Error::Handshake { early_close, .. } => assert!(*early_close, "{err:?}"),
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(
        err.is_retryable(),
        "a server closing during key exchange may be booting: {err:?}"
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let port = fake_server(|sock| async move {
        // Accept and say nothing, ever.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(sock);
    })
    .await;
    let (err, took) = connect_fails(port).await;
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

/// Forwards between a client and `target` until `cut` fires, then stops
/// forwarding both ways while keeping both sockets open: a black hole.
async fn relay(target: u16, cut: tokio_util::sync::CancellationToken) -> u16 {
    let listener = TcpListener::bind((support::HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let server = TcpStream::connect((support::HOST, target)).await.unwrap();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let pump = |mut from: tokio::net::tcp::OwnedReadHalf,
                    mut to: tokio::net::tcp::OwnedWriteHalf,
                    cut: tokio_util::sync::CancellationToken| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tokio::select! {
                    r = from.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
                    _ = cut.cancelled() => break,
                };
                if cut.is_cancelled() || to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            // Hold both halves open and silent until the test ends.
            cut.cancelled().await;
            tokio::time::sleep(Duration::from_secs(120)).await;
            drop((from, to));
        };
        let a = tokio::spawn(pump(cr, sw, cut.clone()));
        let b = tokio::spawn(pump(sr, cw, cut.clone()));
        let _ = (a.await, b.await);
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn black_hole_mid_transfer_is_detected_by_keepalive() {
    let srv = support::sshd();
    let cut = tokio_util::sync::CancellationToken::new();
    let port = relay(srv.port(), cut.clone()).await;
    let cfg = srv
        .config()
        .keepalive_interval(Some(Duration::from_secs(1)))
        .keepalive_max(2);
    let sess = Session::connect(support::HOST, port, &cfg).await.unwrap();
    let mut stream = sess
        .exec_streaming("while true; do echo tick; sleep 0.05; done")
        .await
        .unwrap();
    // Let some output through, then cut the wire silently.
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.bytes().is_empty());
    cut.cancel();
    let start = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Some(e);
            }
        }
        None
    })
    .await
    .expect("the stream hung after the network went silent");
    let err = outcome.expect("the stream ended without an error");
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(sess.is_closed());
}
