//! Authentication against real servers: key types and formats, from files
//! and from text, encrypted keys, ssh-agent, rejected credentials, and no
//! secret ever in an error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::{Duration, Instant};

use support::{KeyFormat, KeyType, Server};
use vmssh::{Auth, Error, KeyErrorKind, Session};

const PASSPHRASE: &str = "correct-horse-battery-staple-42";

/// Connects with exactly `auth`, panicking with the server log on failure.
async fn login(srv: &Server, auth: Auth, what: &str) {
    let cfg = srv.config_without_auth().auth(auth);
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: {what}: {e} ({e:?})\nserver log:\n{}",
                srv.name(),
                srv.log()
            )
        });
    let out = sess.exec("echo in").await.unwrap();
    assert_eq!(out.stdout, b"in\n", "{}: {what}", srv.name());
}

/// Connects with exactly `auth` and returns the error.
async fn login_error(srv: &Server, auth: Auth) -> Error {
    let cfg = srv.config_without_auth().auth(auth);
    match Session::connect(srv.host(), srv.port(), &cfg).await {
        Ok(_) => panic!("{}: login unexpectedly succeeded", srv.name()),
        Err(e) => e,
    }
}

/// ed25519, ECDSA and RSA keys, in OpenSSH, PEM and PKCS#8 formats, read
/// from a file and given as text.
async fn key_types_and_formats(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (KeyType::Ed25519, KeyFormat::OpenSsh),
        (KeyType::Ecdsa, KeyFormat::OpenSsh),
        (KeyType::Ecdsa, KeyFormat::Pem),
        (KeyType::Ecdsa, KeyFormat::Pkcs8),
        (KeyType::Rsa, KeyFormat::OpenSsh),
        (KeyType::Rsa, KeyFormat::Pem),
        (KeyType::Rsa, KeyFormat::Pkcs8),
    ];
    for (i, (ty, fmt)) in cases.into_iter().enumerate() {
        let key = support::keygen(dir.path(), &format!("key{i}"), ty, fmt, None);
        let text = key.private_text();
        match fmt {
            KeyFormat::OpenSsh => assert!(text.contains("BEGIN OPENSSH PRIVATE KEY")),
            KeyFormat::Pem => assert!(
                text.contains("BEGIN RSA PRIVATE KEY") || text.contains("BEGIN EC PRIVATE KEY")
            ),
            KeyFormat::Pkcs8 => assert!(text.contains("BEGIN PRIVATE KEY"), "{text}"),
        }
        srv.authorize(&key.public_line);
        login(
            srv,
            Auth::key_file(&key.private),
            &format!("{ty:?} {fmt:?} file"),
        )
        .await;
        login(srv, Auth::key_pem(text), &format!("{ty:?} {fmt:?} text")).await;
    }
}
on_both_servers!(key_types_and_formats);

/// The secret must not show in an error or in the config's Debug output.
fn assert_no_secret(err: &Error, cfg_debug: &str) {
    let shown = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    let mut chain = String::new();
    while let Some(s) = source {
        chain.push_str(&format!("{s} {s:?} "));
        source = s.source();
    }
    for text in [&shown, &chain, &cfg_debug.to_string()] {
        assert!(!text.contains(PASSPHRASE), "secret leaked: {text}");
        assert!(!text.contains("correct-horse"), "secret leaked: {text}");
    }
}

/// Encrypted keys: the right passphrase logs in, a wrong or missing one is
/// a key error of the right kind, and the passphrase is never shown.
async fn encrypted_keys(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        support::keygen(
            dir.path(),
            "enc_ed25519",
            KeyType::Ed25519,
            KeyFormat::OpenSsh,
            Some(PASSPHRASE),
        ),
        support::keygen(
            dir.path(),
            "enc_ecdsa",
            KeyType::Ecdsa,
            KeyFormat::OpenSsh,
            Some(PASSPHRASE),
        ),
    ];
    for key in &keys {
        let text = key.private_text();
        assert!(!text.contains(PASSPHRASE));
        srv.authorize(&key.public_line);
        login(
            srv,
            Auth::key_file(&key.private).passphrase(PASSPHRASE),
            "right passphrase, file",
        )
        .await;
        login(
            srv,
            Auth::key_pem(text.clone()).passphrase(PASSPHRASE),
            "right passphrase, text",
        )
        .await;

        let wrong = Auth::key_file(&key.private).passphrase("correct-horse-but-wrong");
        let cfg_debug = format!("{:?}", srv.config_without_auth().auth(wrong.clone()));
        let err = login_error(srv, wrong).await;
        assert!(
            matches!(
                err,
                Error::Key {
                    kind: KeyErrorKind::WrongPassphrase,
                    ..
                }
            ),
            "{}: wrong passphrase gave {err:?}",
            srv.name()
        );
        assert!(!err.is_retryable());
        assert_no_secret(&err, &cfg_debug);
        assert!(!format!("{err} {err:?}").contains("correct-horse-but-wrong"));

        let err = login_error(srv, Auth::key_pem(text)).await;
        assert!(
            matches!(
                err,
                Error::Key {
                    kind: KeyErrorKind::PassphraseRequired,
                    ..
                }
            ),
            "{}: missing passphrase gave {err:?}",
            srv.name()
        );
        assert!(err.to_string().contains("<in-memory>"), "{err}");

        let cfg = srv
            .config_without_auth()
            .auth(Auth::key_file(&key.private).passphrase(PASSPHRASE));
        assert_no_secret(
            &login_error(srv, Auth::key_file(dir.path().join("missing"))).await,
            &format!("{cfg:?}"),
        );
    }
}
on_both_servers!(encrypted_keys);

/// Encrypted keys in the other formats `ssh-keygen` writes: legacy PEM
/// (`Proc-Type: 4,ENCRYPTED`, RSA) and encrypted PKCS#8. An encrypted
/// legacy PEM EC key cannot be decoded (russh parses decrypted legacy PEM
/// as RSA) and must say so, not blame the passphrase.
async fn encrypted_pem_and_pkcs8(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        support::keygen(
            dir.path(),
            "enc_rsa_pem",
            KeyType::Rsa,
            KeyFormat::Pem,
            Some(PASSPHRASE),
        ),
        support::keygen(
            dir.path(),
            "enc_ecdsa_pkcs8",
            KeyType::Ecdsa,
            KeyFormat::Pkcs8,
            Some(PASSPHRASE),
        ),
    ];
    assert!(keys[0].private_text().contains("Proc-Type: 4,ENCRYPTED"));
    assert!(
        keys[1]
            .private_text()
            .contains("BEGIN ENCRYPTED PRIVATE KEY")
    );
    for key in &keys {
        srv.authorize(&key.public_line);
        login(
            srv,
            Auth::key_file(&key.private).passphrase(PASSPHRASE),
            "right passphrase",
        )
        .await;
        let err = login_error(srv, Auth::key_file(&key.private).passphrase("nope")).await;
        assert!(
            matches!(
                err,
                Error::Key {
                    kind: KeyErrorKind::WrongPassphrase,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = login_error(srv, Auth::key_file(&key.private)).await;
        assert!(
            matches!(
                err,
                Error::Key {
                    kind: KeyErrorKind::PassphraseRequired,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let ec_pem = support::keygen(
        dir.path(),
        "enc_ecdsa_pem",
        KeyType::Ecdsa,
        KeyFormat::Pem,
        Some(PASSPHRASE),
    );
    let err = login_error(srv, Auth::key_file(&ec_pem.private).passphrase(PASSPHRASE)).await;
    assert!(
        matches!(
            err,
            Error::Key {
                kind: KeyErrorKind::Unsupported,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&err, "");
}
on_both_servers!(encrypted_pem_and_pkcs8);

/// A key the server does not know is rejected quickly, naming the method.
async fn unknown_key_rejected(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let stranger = support::ed25519_key(dir.path(), "stranger");
    let start = Instant::now();
    let err = login_error(srv, stranger.auth()).await;
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "rejection took {:?}",
        start.elapsed()
    );
    match &err {
        Error::AuthFailed {
            user, tried, port, ..
        } => {
            assert_eq!(user, srv.user());
            assert_eq!(*port, srv.port());
            assert_eq!(tried, &["publickey".to_string()]);
        }
        other => panic!("{}: expected AuthFailed, got {other:?}", srv.name()),
    }
    assert!(!err.is_retryable());
    assert!(!err.is_host_key());

    // Methods are tried in order: a rejected key, then a good one.
    let cfg = srv
        .config_without_auth()
        .auth(stranger.auth())
        .auth(srv.client_key().auth());
    let sess = srv.connect_with(&cfg).await;
    assert!(sess.exec("true").await.unwrap().status.success());

    // Unreadable key file: a key error, before anything is sent.
    let err = login_error(srv, Auth::key_file(dir.path().join("nope"))).await;
    assert!(
        matches!(
            err,
            Error::Key {
                kind: KeyErrorKind::Unreadable,
                ..
            }
        ),
        "{err:?}"
    );
    let err = login_error(srv, Auth::key_pem("not a key")).await;
    assert!(
        matches!(
            err,
            Error::Key {
                kind: KeyErrorKind::Malformed,
                ..
            }
        ),
        "{err:?}"
    );
}
on_both_servers!(unknown_key_rejected);

/// Password authentication, rejected (no test user with a known password
/// exists: the servers run as root with `UsePAM no`), never echoing the
/// password.
async fn password_rejected(srv: &Server) {
    let secret = format!("{PASSPHRASE}-password");
    let start = Instant::now();
    let err = login_error(srv, Auth::password(secret.clone())).await;
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "rejection took {:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, Error::AuthFailed { ref tried, .. } if tried == &["password".to_string()]),
        "{err:?}"
    );
    let cfg_debug = format!(
        "{:?}",
        srv.config_without_auth().auth(Auth::password(secret))
    );
    assert_no_secret(&err, &cfg_debug);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn password_rejected_by_sshd() {
    let srv = support::Sshd::builder().password_auth(true).start();
    password_rejected(&srv).await;
}

/// dropbear runs with `-s` (no passwords): the method is simply refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn password_rejected_by_dropbear() {
    let srv = support::dropbear();
    password_rejected(&srv).await;
}

/// Keys held by an ssh-agent, through its socket.
async fn agent_at_socket(srv: &Server) {
    let agent = support::agent();
    let dir = tempfile::tempdir().unwrap();
    // A key the server does not know first: the agent offers every identity.
    let stranger = support::ed25519_key(dir.path(), "stranger");
    let rsa = support::keygen(
        dir.path(),
        "agent_rsa",
        KeyType::Rsa,
        KeyFormat::OpenSsh,
        None,
    );
    agent.add(&stranger);
    agent.add(&rsa);
    srv.authorize(&rsa.public_line);
    login(srv, Auth::agent_at(agent.socket()), "agent (rsa)").await;

    // An agent with no key the server accepts: authentication fails.
    let empty = support::agent();
    empty.add(&stranger);
    let err = login_error(srv, Auth::agent_at(empty.socket())).await;
    assert!(
        matches!(err, Error::AuthFailed { ref tried, .. } if tried == &["agent".to_string()]),
        "{err:?}"
    );

    // No agent at that path.
    let err = login_error(srv, Auth::agent_at(dir.path().join("no-agent.sock"))).await;
    assert!(matches!(err, Error::Agent { .. }), "{err:?}");
}
on_both_servers!(agent_at_socket, requires vmssh_have_agent);
