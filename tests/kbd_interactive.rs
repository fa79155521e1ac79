//! keyboard-interactive against sshd with `UsePAM yes`, logging in as a
//! user made for the test: a responder answering PAM's prompts, and
//! `Auth::password` answering the single password prompt on a server that
//! has password authentication off (PAM only), as OpenSSH's client does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use support::pam::TestUser;
use vmssh::auth::Challenge;
use vmssh::{Auth, Error, HostKeyPolicy, Session, SshConfig};

fn pam_sshd() -> support::Server {
    support::Sshd::builder()
        .pam(true)
        .password_auth(false)
        .start()
}

fn config(srv: &support::Server, user: &TestUser) -> SshConfig {
    SshConfig::new(user.name()).host_key(HostKeyPolicy::pinned(srv.host_key_line()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn responder_answers_pam_prompts() {
    let srv = pam_sshd();
    let user = TestUser::create();
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let seen2 = seen.clone();
    let password = user.password().to_string();
    let cfg = config(&srv, &user).auth(Auth::keyboard_interactive(move |c: &Challenge| {
        let mut seen = seen2.lock().unwrap();
        c.prompts()
            .iter()
            .map(|p| {
                seen.push((p.text().to_string(), p.echo()));
                password.clone()
            })
            .collect()
    }));
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    let out = sess.exec("id -un").await.unwrap();
    assert_eq!(out.stdout, format!("{}\n", user.name()).as_bytes());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].0.to_lowercase().contains("password"), "{seen:?}");
    assert!(!seen[0].1, "a password prompt must not echo");
}

/// `PasswordAuthentication no`, `KbdInteractiveAuthentication yes`: the
/// password goes through keyboard-interactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn password_through_pam_only_server() {
    let srv = pam_sshd();
    let user = TestUser::create();
    let cfg = config(&srv, &user).auth(Auth::password(user.password()));
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    let out = sess.exec("id -un").await.unwrap();
    assert_eq!(out.stdout, format!("{}\n", user.name()).as_bytes());
}

/// A wrong password is an authentication failure, not retryable, and the
/// password appears nowhere in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn wrong_password_is_rejected() {
    let srv = pam_sshd();
    let user = TestUser::create();
    let wrong = "wrong-password-7d1f";
    let cfg = config(&srv, &user).auth(Auth::password(wrong));
    let err = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let shown = format!("{err} {err:?} {cfg:?}");
    assert!(!shown.contains(wrong), "password shown: {shown}");
    assert!(!shown.contains(user.password()), "password shown: {shown}");
}
