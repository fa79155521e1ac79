//! No secret (password, passphrase, private key) appears in an error, a
//! `Debug` output or a log line, russh's own `log` records included, at
//! TRACE level.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

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

/// Every process whose command line holds `needle`, as `ps` would show it
/// to any user of the machine (the servers run on this host).
fn processes_whose_argv_holds(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// An environment value never reaches a remote command line, whether the
/// server takes `env` requests (dropbear) or refuses them (OpenSSH's
/// default): the command's argv is read from `/proc` while it runs.
async fn env_values_stay_out_of_remote_argv(srv: &support::Server) {
    use futures::StreamExt;
    let sess = srv.connect().await;
    let secret = format!("env-Secret-{}-{}", std::process::id(), srv.port());
    // stdin stays open until the check is done, so the command is running.
    let (stdin, remote_stdin) = tokio::io::duplex(64);
    let mut stream = sess
        .exec_streaming_command(
            vmssh::Command::new(r#"echo ready; cat; printf '%s' "$TOKEN""#)
                .env("TOKEN", secret.clone())
                .stdin_reader(remote_stdin),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while !out.ends_with(b"ready\n") {
        match stream.next().await.unwrap().unwrap() {
            vmssh::Chunk::Stdout(b) => out.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    let leaks = processes_whose_argv_holds(&secret);
    drop(stdin);
    assert!(
        leaks.is_empty(),
        "{}: the env value is on a command line: {leaks:?}",
        srv.name()
    );
    out.clear();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(chunk.unwrap().bytes());
    }
    assert!(stream.exit_status().await.unwrap().success());
    assert_eq!(String::from_utf8_lossy(&out), secret, "{}", srv.name());
}
on_both_servers!(env_values_stay_out_of_remote_argv);
