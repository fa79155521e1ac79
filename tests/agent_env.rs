//! `Auth::agent()` finds the ssh-agent through `SSH_AUTH_SOCK`.
//!
//! The variable is process-wide, so this test has a binary of its own:
//! even under plain `cargo test` (threads, not processes) nothing else
//! runs beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::{KeyFormat, KeyType};
use vmssh::{Auth, Error, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn agent_from_environment() {
    let srv = support::sshd();
    let agent = support::agent();
    let dir = tempfile::tempdir().unwrap();
    let key = support::keygen(
        dir.path(),
        "agent_ecdsa",
        KeyType::Ecdsa,
        KeyFormat::OpenSsh,
        None,
    );
    agent.add(&key);
    srv.authorize(&key.public_line);
    let cfg = srv.config_without_auth().auth(Auth::agent());

    // SAFETY: the only test in this process, and no other thread touches
    // the environment while the variable is set or removed.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", agent.socket()) };
    let sess = srv.connect_with(&cfg).await;
    assert_eq!(sess.exec("echo in").await.unwrap().stdout, b"in\n");

    // SAFETY: as above.
    unsafe { std::env::remove_var("SSH_AUTH_SOCK") };
    let err = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Agent { .. }), "{err:?}");
    assert!(err.to_string().contains("SSH_AUTH_SOCK"), "{err}");
}
