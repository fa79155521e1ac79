//! Sessions through jump hosts (`Session::connect_via`): a jump to a
//! second server, a chain of two jumps, twenty sessions over one jump
//! connection, a lost jump ending the sessions inside it, and the typed
//! errors for a jump that refuses forwarding or cannot reach the target.
//! OpenSSH's sshd and dropbear both serve as jump hosts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use support::Server;
use vmssh::{Error, Session};

/// An inner session runs commands, and it really is carried by the jump:
/// when the jump connection ends, so does the inner session, with
/// `ConnectionLost`.
async fn through(jump_srv: &Server) {
    let target = support::sshd();
    let jump = jump_srv.connect().await;
    let inner = Session::connect_via(&jump, target.host(), target.port(), &target.config())
        .await
        .unwrap_or_else(|e| panic!("{}: {e} ({e:?})\n{}", jump_srv.name(), jump_srv.log()));
    assert_eq!(inner.host(), target.host());
    assert_eq!(inner.port(), target.port());
    let out = inner.exec("echo inner").await.unwrap();
    assert_eq!(out.stdout, b"inner\n");
    // The jump session stays usable beside it.
    assert_eq!(jump.exec("echo outer").await.unwrap().stdout, b"outer\n");

    jump.close().await;
    inner.closed().await;
    let err = inner.exec("echo after").await.unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn through_sshd() {
    through(&support::sshd()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn through_dropbear() {
    through(&support::dropbear()).await;
}

/// sshd -> dropbear -> sshd: a session made by `connect_via` is itself a
/// jump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn chain_of_two_jumps() {
    let first = support::sshd();
    let second = support::dropbear();
    let target = support::sshd();
    let a = first.connect().await;
    let b = Session::connect_via(&a, second.host(), second.port(), &second.config())
        .await
        .unwrap();
    let c = Session::connect_via(&b, target.host(), target.port(), &target.config())
        .await
        .unwrap();
    let out = c.exec("echo three-deep").await.unwrap();
    assert_eq!(out.stdout, b"three-deep\n");
    // Losing the first hop ends both sessions behind it.
    a.close().await;
    b.closed().await;
    c.closed().await;
    assert!(c.exec("true").await.unwrap_err().is_connection_lost());
}

/// Twenty sessions share one connection to the jump host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn twenty_sessions_over_one_jump() {
    let jump_srv = support::sshd();
    let target = support::sshd();
    // Each inner session holds one tunnel on the jump for its lifetime.
    let jump = jump_srv
        .connect_with(&jump_srv.config().max_channels(32))
        .await;
    let cfg = target.config();
    let sessions = futures::future::try_join_all(
        (0..20).map(|_| Session::connect_via(&jump, target.host(), target.port(), &cfg)),
    )
    .await
    .unwrap();
    let outs = futures::future::try_join_all(
        sessions
            .iter()
            .enumerate()
            .map(|(i, s)| async move { s.exec(&format!("echo {i}")).await }),
    )
    .await
    .unwrap();
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
    let connections = jump_srv
        .log()
        .lines()
        .filter(|l| l.contains("Connection from"))
        .count();
    assert_eq!(connections, 1, "{}", jump_srv.log());
}

/// `AllowTcpForwarding no`: the error names the jump and the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn jump_refusing_forwarding() {
    let jump_srv = support::Sshd::builder()
        .config_line("AllowTcpForwarding no")
        .start();
    let target = support::sshd();
    let jump = jump_srv.connect().await;
    let err = Session::connect_via(&jump, target.host(), target.port(), &target.config())
        .await
        .unwrap_err();
    let Error::Tunnel {
        host,
        port,
        to_host,
        to_port,
        kind,
    } = &err
    else {
        panic!("expected Error::Tunnel, got {err:?}");
    };
    assert_eq!((host.as_str(), *port), (jump_srv.host(), jump_srv.port()));
    assert_eq!((to_host.as_str(), *to_port), (target.host(), target.port()));
    assert_eq!(*kind, vmssh::TunnelErrorKind::Prohibited, "{err}");
    assert!(!err.is_retryable());
    // The jump session is unharmed.
    assert_eq!(jump.exec("echo ok").await.unwrap().stdout, b"ok\n");
}

/// A target the jump cannot reach (nothing listens there).
async fn target_unreachable(jump_srv: &Server) {
    let jump = jump_srv.connect().await;
    let dead = support::free_port();
    let cfg = jump_srv.config().connect_timeout(Duration::from_secs(20));
    let err = Session::connect_via(&jump, "127.0.0.1", dead, &cfg)
        .await
        .unwrap_err();
    match &err {
        Error::Tunnel { to_port, kind, .. } => {
            assert_eq!(*to_port, dead);
            assert_eq!(*kind, vmssh::TunnelErrorKind::ConnectFailed, "{err}");
        }
        other => panic!("{}: expected Error::Tunnel, got {other:?}", jump_srv.name()),
    }
    assert!(err.to_string().contains(&dead.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn target_unreachable_from_sshd() {
    target_unreachable(&support::sshd()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn target_unreachable_from_dropbear() {
    target_unreachable(&support::dropbear()).await;
}

/// The inner session's host key is checked against the target, not the
/// jump: a target presenting another key is refused, naming the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn inner_host_key_is_the_targets() {
    let jump_srv = support::sshd();
    let target = support::sshd();
    let jump = jump_srv.connect().await;
    let wrong = target
        .config()
        .host_key(vmssh::HostKeyPolicy::pinned(jump_srv.host_key_line()));
    let err = Session::connect_via(&jump, target.host(), target.port(), &wrong)
        .await
        .unwrap_err();
    match &err {
        Error::HostKeyChanged { port, .. } => assert_eq!(*port, target.port()),
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
}
