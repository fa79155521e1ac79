//! The server process killed (SIGKILL) at precise points of the handshake:
//! after its key exchange init, and right after the keys are switched on
//! (the client is then authenticating). A relay between client and sshd
//! reads the server's plaintext packets to find those moments. Each ends in
//! a typed error within a bounded time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vmssh::{Error, Session};

const KEXINIT: u8 = 20;
const NEWKEYS: u8 = 21;

/// Relays one connection to `target`, killing every server process once
/// the server has sent a plaintext packet of type `kill_after`.
async fn killing_relay(target: u16, server: Arc<support::Server>, kill_after: u8) -> u16 {
    let listener = TcpListener::bind((support::HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = TcpStream::connect((support::HOST, target)).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = upstream.into_split();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        // Server to client, watching the plaintext packets.
        let mut seen = Vec::new();
        let mut parsed = 0usize;
        let mut banner_done = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            seen.extend_from_slice(&buf[..n]);
            let mut hit = false;
            loop {
                if !banner_done {
                    match seen[parsed..].windows(2).position(|w| w == b"\r\n") {
                        Some(p) => {
                            let line = &seen[parsed..parsed + p];
                            parsed += p + 2;
                            banner_done = line.starts_with(b"SSH-");
                        }
                        None => break,
                    }
                    continue;
                }
                if seen.len() < parsed + 6 {
                    break;
                }
                let len = u32::from_be_bytes(seen[parsed..parsed + 4].try_into().unwrap()) as usize;
                if seen.len() < parsed + 4 + len {
                    break;
                }
                let kind = seen[parsed + 5];
                parsed += 4 + len;
                if kind == kill_after {
                    hit = true;
                    break;
                }
            }
            if hit {
                // Let the packet through, then kill the server's
                // per-connection processes: the client is mid-handshake.
                let _ = cw.write_all(&buf[..n]).await;
                support::signal_pids("KILL", &server.connection_pids());
                // Keep relaying: the dead server's socket closes, and the
                // relay passes that on to the client, as the network would.
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                return;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    port
}

async fn killed_at(kill_after: u8) -> (Error, Duration) {
    let srv = Arc::new(support::sshd());
    let port = killing_relay(srv.port(), srv.clone(), kill_after).await;
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        Session::connect(support::HOST, port, &srv.config()),
    )
    .await
    .expect("connect hung after the server was killed");
    (result.unwrap_err(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn killed_during_key_exchange() {
    let (err, took) = killed_at(KEXINIT).await;
    match &err {
        Error::Handshake { early_close, .. } => {
            assert!(*early_close, "{err:?}");
            assert!(err.is_retryable(), "{err:?}");
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn killed_during_authentication() {
    let (err, took) = killed_at(NEWKEYS).await;
    assert!(
        matches!(err, Error::Handshake { .. }),
        "expected a handshake error, got {err:?}"
    );
    // Not a rejection: a server dying under authentication (a VM
    // rebooting) is worth retrying.
    assert!(err.is_retryable(), "{err:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
}
