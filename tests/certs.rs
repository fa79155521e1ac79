//! OpenSSH user certificates, with CAs made by `ssh-keygen -s`, accepted
//! through sshd's `TrustedUserCAKeys` (next to the key or given
//! explicitly), and the typed errors for expired and wrongly signed ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::certs::Ca;
use support::{KeyFormat, KeyType, Server};
use vmssh::{Auth, Error, Session};

/// An sshd trusting `ca` for user certificates.
fn sshd_trusting(ca: &Ca) -> Server {
    support::Sshd::builder()
        .config_line(&format!("TrustedUserCAKeys {}", ca.public_file().display()))
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn user_certificate_next_to_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "user_ca");
    let srv = sshd_trusting(&ca);
    // Not in authorized_keys: only the certificate can get it in.
    let key = support::ed25519_key(dir.path(), "id_cert");
    ca.sign_user(&key, srv.user(), "-5m:+1h");
    let cfg = srv.config_without_auth().auth(key.auth());
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!(sess.exec("echo cert").await.unwrap().stdout, b"cert\n");
    assert!(srv.log().contains("ED25519-CERT"), "{}", srv.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn user_certificate_given_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "user_ca");
    let srv = sshd_trusting(&ca);
    let key = support::keygen(
        dir.path(),
        "id_rsa_cert",
        KeyType::Ecdsa,
        KeyFormat::OpenSsh,
        None,
    );
    let cert = ca.sign_user(&key, srv.user(), "-5m:+1h");
    let elsewhere = dir.path().join("elsewhere.pub");
    std::fs::rename(&cert, &elsewhere).unwrap();
    let cfg = srv
        .config_without_auth()
        .auth(Auth::key_file(&key.private).certificate(&elsewhere));
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!(sess.exec("echo cert").await.unwrap().stdout, b"cert\n");
}

/// An expired certificate is not offered; the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn expired_user_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "user_ca");
    let srv = sshd_trusting(&ca);
    let key = support::ed25519_key(dir.path(), "id_old");
    ca.sign_user(&key, srv.user(), "-2d:-1d");
    let cfg = srv.config_without_auth().auth(key.auth());
    let err = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AuthFailed { .. } | Error::Key { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(!err.is_retryable());
}

/// A certificate signed by a CA the server does not trust is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn wrongly_signed_user_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "user_ca");
    let other = Ca::new(dir.path(), "other_ca");
    let srv = sshd_trusting(&ca);
    let key = support::ed25519_key(dir.path(), "id_other");
    other.sign_user(&key, srv.user(), "-5m:+1h");
    let cfg = srv.config_without_auth().auth(key.auth());
    let err = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
}
