//! No secret (password, passphrase, private key) appears in an error, a
//! `Debug` output or a log line, russh's own `log` records included, at
//! TRACE level.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use vmssh::provision::ProvisionDef;
use vmssh::{Auth, Session};

const PASSWORD: &str = "pw-Secret-7f3a9c";
const PASSPHRASE: &str = "pp-Secret-51e2b8";
const WRONG_PASSPHRASE: &str = "pp-Wrong-0c77d1";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn secrets_never_reach_errors_or_logs() {
    let srv = support::sshd();
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let key = support::keygen(
        dir.path(),
        "enc",
        support::KeyType::Ed25519,
        support::KeyFormat::OpenSsh,
        Some(PASSPHRASE),
    );
    srv.authorize(&key.public_line);
    let key_text = key.private_text();
    let key_body: Vec<&str> = key_text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();

    let mut seen = Vec::new();
    // Wrong password.
    let cfg = srv.config_without_auth().auth(Auth::password(PASSWORD));
    seen.push(format!("{cfg:?}"));
    let err = Session::connect(support::HOST, srv.port(), &cfg)
        .await
        .unwrap_err();
    seen.push(format!("{err} {err:?}"));
    // Wrong passphrase, from memory and from a file.
    for auth in [
        Auth::key_pem(key_text.clone()).passphrase(WRONG_PASSPHRASE),
        Auth::key_file(&key.private).passphrase(WRONG_PASSPHRASE),
    ] {
        let cfg = srv.config_without_auth().auth(auth);
        seen.push(format!("{cfg:?}"));
        let err = Session::connect(support::HOST, srv.port(), &cfg)
            .await
            .unwrap_err();
        seen.push(format!("{err} {err:?}"));
    }
    // The right passphrase, then a provisioning run and a fleet with it.
    let cfg = srv
        .config_without_auth()
        .auth(Auth::key_pem(key_text.clone()).passphrase(PASSPHRASE));
    seen.push(format!("{cfg:?}"));
    let sess = Session::connect(support::HOST, srv.port(), &cfg)
        .await
        .unwrap();
    seen.push(format!("{sess:?}"));
    let err = vmssh::provision::run_provisions(
        &sess,
        &[ProvisionDef::inline("exit 3")],
        dir.path(),
        "vm",
        None,
    )
    .await
    .unwrap_err();
    seen.push(format!("{err} {err:?}"));
    let report = vmssh::fleet::Fleet::new()
        .provision(vec![vmssh::fleet::Target::new(
            "vm",
            support::HOST,
            srv.port(),
            cfg.clone(),
            vec![ProvisionDef::inline("true")],
        )])
        .await;
    assert!(report.all_succeeded(), "{}", report.summary());
    seen.push(format!("{report:?}"));

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        !logs.is_empty(),
        "nothing was logged: the capture is not working"
    );
    assert!(
        logs.contains("russh"),
        "russh's log records are not captured"
    );
    seen.push(logs);
    for text in &seen {
        for secret in [PASSWORD, PASSPHRASE, WRONG_PASSPHRASE] {
            assert!(
                !text.contains(secret),
                "secret {secret:?} leaked into:\n{text}"
            );
        }
        for line in &key_body {
            assert!(
                !text.contains(line),
                "private key material leaked into:\n{text}"
            );
        }
    }
}
