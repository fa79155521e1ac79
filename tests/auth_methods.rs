//! Several authentication methods: tried in the order added, an unusable
//! one (no agent, unreadable key, missing passphrase) recorded and skipped,
//! the final error listing why each failed; and a server that disconnects
//! after authentication began (MaxAuthTries) is an authentication failure,
//! not something to retry until the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use support::{KeyFormat, KeyType, Server};
use vmssh::{Auth, Error, Session};

/// Methods that cannot be used, before the one that works.
async fn unusable_methods_are_skipped(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let encrypted = support::keygen(
        dir.path(),
        "enc",
        KeyType::Ed25519,
        KeyFormat::OpenSsh,
        Some("secret-passphrase"),
    );
    srv.authorize(&encrypted.public_line);
    let cfg = srv
        .config_without_auth()
        .auth(Auth::agent_at(dir.path().join("no-agent.sock")))
        .auth(Auth::key_file(dir.path().join("missing_key")))
        .auth(encrypted.auth())
        .auth(srv.client_key().auth());
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{}: {e} ({e:?})\n{}", srv.name(), srv.log()));
    assert_eq!(sess.exec("echo in").await.unwrap().stdout, b"in\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn unusable_methods_are_skipped_by_sshd() {
    unusable_methods_are_skipped(&support::sshd()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn unusable_methods_are_skipped_by_dropbear() {
    unusable_methods_are_skipped(&support::dropbear()).await;
}

/// When every method fails, the error says why each one did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn every_failure_is_listed() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let stranger = support::ed25519_key(dir.path(), "stranger");
    let missing = dir.path().join("missing_key");
    let cfg = srv
        .config_without_auth()
        .auth(Auth::agent_at(dir.path().join("no-agent.sock")))
        .auth(Auth::key_file(&missing))
        .auth(stranger.auth());
    let err = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_err();
    let Error::AuthFailed { tried, .. } = &err else {
        panic!("expected AuthFailed, got {err:?}");
    };
    assert_eq!(tried.len(), 3, "{err}");
    let shown = err.to_string();
    assert!(shown.contains("no-agent.sock"), "{shown}");
    assert!(shown.contains(&missing.display().to_string()), "{shown}");
    assert!(shown.contains("cannot read"), "{shown}");
    assert!(shown.contains("rejected"), "{shown}");
    assert!(!err.is_retryable());
}

/// sshd with `MaxAuthTries 2` and three unauthorized keys before the right
/// one: the server disconnects during authentication. That is an
/// authentication failure: not retryable, one connection, no retry storm.
/// (dropbear's `-T` does not count keys it does not know, so it never
/// disconnects in this case.)
async fn max_auth_tries(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.config_without_auth();
    for i in 0..3 {
        cfg = cfg.auth(support::ed25519_key(dir.path(), &format!("wrong{i}")).auth());
    }
    cfg = cfg.auth(srv.client_key().auth());
    let err = Session::connect_with_retry(srv.host(), srv.port(), &cfg, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AuthFailed { .. }),
        "{}: expected AuthFailed, got {err:?}",
        srv.name()
    );
    assert!(!err.is_retryable(), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("disconnected"), "{}: {shown}", srv.name());
    let connections = srv
        .log()
        .lines()
        .filter(|l| l.contains("Connection from") || l.contains("Child connection from"))
        .count();
    assert_eq!(connections, 1, "{}: retried:\n{}", srv.name(), srv.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn max_auth_tries_sshd() {
    max_auth_tries(
        &support::Sshd::builder()
            .config_line("MaxAuthTries 2")
            .start(),
    )
    .await;
}
