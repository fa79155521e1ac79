//! Connecting: retry until a late server comes up, fail fast on what
//! retrying cannot fix, and classify errors as retryable or not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::{Duration, Instant};

use support::{HOST, Server};
use tokio::io::AsyncWriteExt;
use vmssh::{Error, HostKeyPolicy, Session, SshConfig};

/// A server that starts listening about a second after the client began
/// trying: `connect_with_retry` gets through.
async fn server_starts_late(kind: support::Kind) {
    let port = support::reserve_port();
    let builder = match kind {
        support::Kind::OpenSsh => support::Sshd::builder(),
        support::Kind::Dropbear => support::Dropbear::builder(),
    };
    let prepared = builder.port(port).prepare();
    let cfg = prepared.config();
    let start = Instant::now();
    let server = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(1));
        prepared.start()
    });
    let sess = Session::connect_with_retry(HOST, port, &cfg, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: {e} ({e:?})"));
    let waited = start.elapsed();
    let server = server.await.unwrap();
    assert!(
        waited >= Duration::from_millis(900),
        "connected before the server started?"
    );
    assert!(waited < Duration::from_secs(30), "took {waited:?}");
    assert_eq!(sess.exec("echo up").await.unwrap().stdout, b"up\n");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn retry_until_sshd_starts() {
    server_starts_late(support::Kind::OpenSsh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn retry_until_dropbear_starts() {
    server_starts_late(support::Kind::Dropbear).await;
}

/// Wrong credentials and untrusted host keys are not retried: the error
/// comes back long before the deadline.
async fn fails_fast_on_permanent_errors(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let stranger = support::ed25519_key(dir.path(), "stranger");
    let deadline = Duration::from_secs(120);

    let cfg = srv.config_without_auth().auth(stranger.auth());
    let start = Instant::now();
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AuthFailed { .. }),
        "{}: {err:?}",
        srv.name()
    );
    assert!(!err.is_retryable());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );

    let wrong = support::ed25519_key(dir.path(), "wrong-host");
    let cfg = srv
        .config()
        .host_key(HostKeyPolicy::pinned(wrong.public_line));
    let start = Instant::now();
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::HostKeyChanged { .. }),
        "{}: {err:?}",
        srv.name()
    );
    assert!(err.is_host_key() && !err.is_retryable());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );

    let cfg = srv
        .config()
        .host_key(HostKeyPolicy::known_hosts(dir.path().join("empty")));
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::HostKeyUnknown { .. }),
        "{}: {err:?}",
        srv.name()
    );
    assert!(!err.is_retryable());

    // No authentication method at all: a configuration error, at once.
    let err = Session::connect_with_retry(HOST, srv.port(), &srv.config_without_auth(), deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(!err.is_retryable());
}
on_both_servers!(fails_fast_on_permanent_errors);

fn any_config() -> SshConfig {
    // Never gets as far as authenticating.
    SshConfig::new("root")
        .auth(vmssh::Auth::password("unused"))
        .host_key(HostKeyPolicy::insecure_accept_any())
}

/// Nothing listens: refused, retryable; with retries, the last error
/// comes back once the deadline has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retryable() {
    let port = support::reserve_port();
    let err = Session::connect(HOST, port, &any_config())
        .await
        .unwrap_err();
    match &err {
        Error::Connect {
            source, port: p, ..
        } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            assert_eq!(*p, port);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert!(!err.is_timeout());

    let start = Instant::now();
    let err = Session::connect_with_retry(HOST, port, &any_config(), Duration::from_millis(1500))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        took >= Duration::from_millis(700),
        "gave up early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "overran its deadline: {took:?}"
    );
}

/// A peer that accepts and says nothing: the connect timeout fires, and
/// that is retryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out() {
    let listener = tokio::net::TcpListener::bind((HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let cfg = any_config().connect_timeout(Duration::from_secs(1));
    let start = Instant::now();
    let err = Session::connect(HOST, port, &cfg).await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectTimeout { after, .. } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(err.is_timeout() && err.is_retryable());
    assert!(start.elapsed() < Duration::from_secs(15));
    hold.abort();
}

/// A peer that closes at once (a VM whose sshd is still starting):
/// an early-close handshake error, retryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_close_is_retryable() {
    let listener = tokio::net::TcpListener::bind((HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.shutdown().await;
        }
    });
    let err = Session::connect(HOST, port, &any_config())
        .await
        .unwrap_err();
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
    assert!(err.is_retryable());
    closer.abort();
}

/// A server that refuses this client for now writes one line instead of
/// its banner and closes (OpenSSH's sshd under `MaxStartups` or
/// `PerSourcePenalties`: "Not allowed at this time"): the error names it
/// and is retryable; retrying ends with it once the deadline has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_before_the_banner_is_named() {
    let listener = tokio::net::TcpListener::bind((HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refuser = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.write_all(b"Not allowed at this time\r\n").await;
            let _ = sock.shutdown().await;
        }
    });
    let err = Session::connect(HOST, port, &any_config())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Handshake { reason, early_close: true, .. }
                if reason.contains("\"Not allowed at this time\"")
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let err = Session::connect_with_retry(HOST, port, &any_config(), Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Not allowed at this time"),
        "{err}"
    );
    refuser.abort();
}

/// Text before the banner that the server does not close after is allowed
/// (RFC 4253, section 4.2): the session is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_before_the_banner_are_skipped() {
    let server = vmssh_testkit::TestServer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind((HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = server.port();
    let front = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = sock.write_all(b"Welcome.\r\nPlease wait.\r\n").await;
                let mut up = tokio::net::TcpStream::connect((HOST, target))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
            });
        }
    });
    let sess = Session::connect(HOST, port, &server.config())
        .await
        .unwrap();
    assert_eq!(sess.exec("echo hi").await.unwrap().stdout, b"hi\n");
    front.abort();
}

/// After `close`, the session's clones and running commands fail with
/// `SessionClosed` (this side ended it), not as a lost connection.
async fn closed_session_says_so(srv: &Server) {
    use futures::StreamExt;
    let sess = srv.connect().await;
    let clone = sess.clone();
    let mut running = sess.exec_streaming("echo up; sleep 30").await.unwrap();
    assert!(running.next().await.unwrap().is_ok());
    sess.close().await;
    clone.closed().await;
    assert!(clone.is_closed());
    let err = loop {
        match running.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert!(matches!(err, Error::SessionClosed { .. }), "{err:?}");
    let err = clone.exec("true").await.unwrap_err();
    assert!(matches!(err, Error::SessionClosed { .. }), "{err:?}");
    assert!(!err.is_connection_lost() && !err.is_retryable());
    // Closing again is harmless.
    sess.close().await;
}
on_both_servers!(closed_session_says_so);

/// The server's identification string, as it sent it.
async fn server_id_is_the_servers(srv: &Server) {
    let sess = srv.connect().await;
    let id = sess.server_id().expect("no identification string noted");
    let software = if srv.is_openssh() {
        "SSH-2.0-OpenSSH_"
    } else {
        "SSH-2.0-dropbear"
    };
    assert!(id.starts_with(software), "{id:?}");
    assert!(!id.ends_with('\r') && !id.ends_with('\n'), "{id:?}");
}
on_both_servers!(server_id_is_the_servers);
