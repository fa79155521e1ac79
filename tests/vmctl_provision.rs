//! `run_provisions` is vmctl's: run in a process of its own against sshd
//! and dropbear, its standard output and error are the steps' output and
//! nothing else, and `provision.log` is what vmctl's
//! `append_provision_log` appends, byte for byte, for inline, script and
//! file steps and the failing step; scripts stay at
//! `/tmp/vmctl-provision-<step>.sh`, mode 0755; files get mode 0755.
//!
//! The expected bytes are written from vmctl's code
//! (vm-manager `crates/vm-manager/src/{ssh,provision}.rs`): output is
//! written to the terminal as read; each step that ran a command appends
//! `=== Step N: LABEL ===`, then `--- stdout ---` and the text (a newline
//! added if missing) unless empty, the same for stderr, then an empty
//! line; a file step appends `file-upload` with `SOURCE -> DESTINATION` as
//! its stdout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{Value, json};
use support::{Server, on_both_servers};
use vmssh::provision::ProvisionDef;

const CHILD: &str = env!("CARGO_BIN_EXE_run-provisions");

/// Runs `run_provisions` in a child process; its stdout, stderr and
/// outcome.
async fn run_in_child(
    srv: &Server,
    steps: &[ProvisionDef],
    base: &Path,
    vm: &str,
    log_dir: Option<&Path>,
) -> (Vec<u8>, Vec<u8>, Value) {
    let result = tempfile::NamedTempFile::new().unwrap();
    let arg = json!({
        "host": srv.host(),
        "port": srv.port(),
        "user": srv.user(),
        "key": srv.client_key().private,
        "host_key": srv.host_key_line(),
        "base": base,
        "log_dir": log_dir,
        "vm": vm,
        "steps": steps,
        "result": result.path(),
    });
    let out = tokio::process::Command::new(CHILD)
        .arg(arg.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{CHILD}: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = serde_json::from_slice(&std::fs::read(result.path()).unwrap()).unwrap();
    (out.stdout, out.stderr, outcome)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

async fn output_and_log_are_vmctls(srv: &Server) {
    let plan = tempfile::tempdir().unwrap();
    std::fs::create_dir(plan.path().join("scripts")).unwrap();
    let script_text = "#!/bin/sh\necho \"script $0\"\necho script-err >&2\n";
    std::fs::write(plan.path().join("scripts/setup.sh"), script_text).unwrap();
    std::fs::write(plan.path().join("app.conf"), "listen 8080;\n").unwrap();
    std::fs::set_permissions(
        plan.path().join("app.conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let logs = tempfile::tempdir().unwrap();
    // vmctl appends to the log of earlier runs.
    std::fs::write(logs.path().join("provision.log"), "earlier run\n").unwrap();

    // The script goes to /tmp/vmctl-provision-<step>.sh on this machine,
    // shared by both servers' tests: a different step number for each.
    let mut steps = Vec::new();
    let mut stdout = Vec::new();
    let mut log = String::from("earlier run\n");
    if !srv.is_openssh() {
        steps.push(ProvisionDef::inline("echo dropbear"));
        stdout.extend_from_slice(b"dropbear\n");
        log.push_str("=== Step 1: echo dropbear ===\n--- stdout ---\ndropbear\n\n");
    }
    let first = steps.len() + 1;
    let (a, b, c, d, e) = (first, first + 1, first + 2, first + 3, first + 4);
    steps.extend([
        ProvisionDef::inline("echo out1; echo err1 >&2; printf 'no newline\\377'"),
        ProvisionDef::inline("true"),
        ProvisionDef::script("scripts/setup.sh"),
        ProvisionDef::file("app.conf", format!("{g}/app.conf")),
        ProvisionDef::inline("echo partial; echo 'it broke' >&2; exit 3"),
        ProvisionDef::inline(format!("touch '{g}/after'")),
    ]);
    let remote_script = format!("/tmp/vmctl-provision-{c}.sh");
    let _ = std::fs::remove_file(&remote_script);

    let (out, err, outcome) =
        run_in_child(srv, &steps, plan.path(), "vm1", Some(logs.path())).await;

    // The terminal: each stream's bytes as the steps wrote them, no more.
    stdout.extend_from_slice(b"out1\nno newline\xff");
    stdout.extend_from_slice(format!("script {remote_script}\n").as_bytes());
    stdout.extend_from_slice(b"partial\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&stdout),
        "{}: stdout",
        srv.name()
    );
    assert_eq!(out, stdout, "{}: stdout bytes", srv.name());
    assert_eq!(
        String::from_utf8_lossy(&err),
        "err1\nscript-err\nit broke\n",
        "{}: stderr",
        srv.name()
    );

    // provision.log, as vmctl appends it: output decoded lossily, a
    // newline added where missing, empty sections left out, the failing
    // step logged, nothing after it.
    let base = plan.path().display();
    log.push_str(&format!(
        "=== Step {a}: echo out1; echo err1 >&2; printf 'no newline\\377' ===\n\
         --- stdout ---\n\
         out1\n\
         no newline\u{FFFD}\n\
         --- stderr ---\n\
         err1\n\
         \n\
         === Step {b}: true ===\n\
         \n\
         === Step {c}: scripts/setup.sh ===\n\
         --- stdout ---\n\
         script {remote_script}\n\
         --- stderr ---\n\
         script-err\n\
         \n\
         === Step {d}: file-upload ===\n\
         --- stdout ---\n\
         {base}/app.conf -> {g}/app.conf\n\
         \n\
         === Step {e}: echo partial; echo 'it broke' >&2; exit 3 ===\n\
         --- stdout ---\n\
         partial\n\
         --- stderr ---\n\
         it broke\n\
         \n"
    ));
    let written = std::fs::read_to_string(logs.path().join("provision.log")).unwrap();
    assert_eq!(written, log, "{}: provision.log", srv.name());

    // The failure: the step, its status, both tails.
    assert_eq!(outcome["ok"], false, "{outcome}");
    assert_eq!(outcome["step"], e, "{outcome}");
    assert_eq!(outcome["code"], 3, "{outcome}");
    assert_eq!(outcome["stdout_tail"], "partial", "{outcome}");
    assert_eq!(outcome["stderr_tail"], "it broke", "{outcome}");
    assert!(
        !guest.path().join("after").exists(),
        "a step ran after the failure"
    );

    // Files as vmctl leaves them: the script kept, 0755; the file 0755.
    assert_eq!(
        std::fs::read_to_string(&remote_script).unwrap(),
        script_text
    );
    assert_eq!(mode_of(Path::new(&remote_script)), 0o755);
    assert_eq!(
        std::fs::read_to_string(guest.path().join("app.conf")).unwrap(),
        "listen 8080;\n"
    );
    assert_eq!(mode_of(&guest.path().join("app.conf")), 0o755);
    let _ = std::fs::remove_file(&remote_script);
}
on_both_servers!(output_and_log_are_vmctls);

/// Without a log directory nothing is written but the output; a
/// successful plan prints nothing of its own either.
async fn without_a_log_dir_only_output(srv: &Server) {
    let plan = tempfile::tempdir().unwrap();
    let steps = [
        ProvisionDef::inline("echo one"),
        ProvisionDef::inline("echo two >&2"),
    ];
    let (out, err, outcome) = run_in_child(srv, &steps, plan.path(), "vm1", None).await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(out, b"one\n");
    assert_eq!(err, b"two\n");
    assert_eq!(std::fs::read_dir(plan.path()).unwrap().count(), 0);
}
on_both_servers!(without_a_log_dir_only_output);
