//! `vmssh::provision::run_provisions` in a process of its own, so that a
//! test can read what it writes to standard output and standard error,
//! byte for byte (tests/vmctl_provision.rs).
//!
//! Its one argument is a JSON object: `host`, `port`, `user`, `key` (a
//! private key file), `host_key` (the server's OpenSSH public key line),
//! `base`, `log_dir` (or null), `vm`, `steps` (serialized `ProvisionDef`s)
//! and `result` (a file). It writes nothing of its own to stdout or
//! stderr: the outcome goes to `result` as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::{Value, json};
use vmssh::provision::{ProvisionDef, run_provisions};
use vmssh::{Auth, Error, HostKeyPolicy, Session, SshConfig};

#[tokio::main]
async fn main() {
    let arg = std::env::args().nth(1).expect("one JSON argument");
    let a: Value = serde_json::from_str(&arg).unwrap();
    let s = |k: &str| a[k].as_str().unwrap().to_string();
    let cfg = SshConfig::new(s("user"))
        .auth(Auth::key_file(s("key")))
        .host_key(HostKeyPolicy::pinned(s("host_key")));
    let steps: Vec<ProvisionDef> = serde_json::from_value(a["steps"].clone()).unwrap();
    let log_dir = a["log_dir"].as_str().map(PathBuf::from);
    let sess = Session::connect(&s("host"), a["port"].as_u64().unwrap() as u16, &cfg)
        .await
        .unwrap();
    let result = run_provisions(
        &sess,
        &steps,
        &PathBuf::from(s("base")),
        &s("vm"),
        log_dir.as_deref(),
    )
    .await;
    let outcome = match result {
        Ok(reports) => json!({ "ok": true, "steps": reports.len() }),
        Err(e) => {
            let mut v = json!({ "ok": false, "display": e.to_string() });
            if let Error::ProvisionFailed {
                step,
                status,
                stdout_tail,
                stderr_tail,
                ..
            } = &e
            {
                v["step"] = json!(step);
                v["code"] = json!(status.as_ref().and_then(|s| s.code()));
                v["stdout_tail"] = json!(stdout_tail);
                v["stderr_tail"] = json!(stderr_tail);
            }
            v
        }
    };
    std::fs::write(s("result"), outcome.to_string()).unwrap();
}
