//! `sudo` with a password ([`Command::sudo_password`]), against sshd and
//! dropbear, logged into as users made for the test whose sudoers rule asks
//! for their password (or, to prove the password never reaches a command,
//! does not): the command runs as root with its own stdin and environment,
//! a wrong password is [`Error::SudoPasswordRejected`], and the password is
//! in no process's command line or environment on either end, no error,
//! log or report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::path::Path;

use futures::StreamExt;
use support::pam::SudoUser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use vmssh::provision::{ProvisionDef, Provisioner};
use vmssh::{Auth, Chunk, Command, Error, HostKeyPolicy, Secret, Session, SshConfig};

fn sshd() -> support::Server {
    support::Sshd::builder().password_auth(true).start()
}

fn dropbear() -> support::Server {
    support::Dropbear::builder().password_auth(true).start()
}

/// Runs `$body(&server)` on sshd and on dropbear, both taking passwords.
macro_rules! on_both_servers {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(vmssh_have_sudo), ignore = "needs sudo and OpenSSH sshd")]
            async fn sshd() {
                super::$body(&super::sshd()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(vmssh_have_sudo), ignore = "needs sudo")]
            #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
            async fn dropbear() {
                super::$body(&super::dropbear()).await;
            }
        }
    };
}

fn config(srv: &support::Server, user: &SudoUser) -> SshConfig {
    SshConfig::new(user.name())
        .auth(Auth::password(user.password()))
        .host_key(HostKeyPolicy::pinned(srv.host_key_line()))
}

async fn login(srv: &support::Server, user: &SudoUser) -> Session {
    assert!(
        support::is_root(),
        "sudo tests create users and sudoers rules: run them as root"
    );
    Session::connect(srv.host(), srv.port(), &config(srv, user))
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()))
}

/// Every process of this machine (both ends of the connection) whose
/// command line, or environment unless its PID is in `env_ok`, holds
/// `needle`.
fn processes_showing(needle: &str, env_ok: &[u32]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        for what in ["cmdline", "environ"] {
            if what == "environ" && env_ok.contains(&pid) {
                continue;
            }
            let Ok(bytes) = std::fs::read(entry.path().join(what)) else {
                continue; // gone, or not ours to read
            };
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!(
                    "{pid} {what}: {}",
                    String::from_utf8_lossy(&bytes).replace('\0', " ")
                ));
            }
        }
    }
    found
}

/// The right password: the command runs as root; its environment and its
/// own stdin arrive whole (sent only once the command started: the first
/// line is written before sudo has even asked, and still reaches the
/// command, not sudo); sudo's prompt is not in stderr; and while the
/// command runs, no process on either end shows the password.
async fn right_password_runs_as_root_with_its_stdin(srv: &support::Server) {
    let user = SudoUser::with_password();
    let sess = login(srv, &user).await;
    let (mut to_cmd, stdin) = tokio::io::duplex(64);
    to_cmd.write_all(b"first\n").await.unwrap();
    let cmd = Command::new(
        "id -u; printf 'env:%s\\n' \"$K\"; IFS= read -r a; printf 'got:%s\\n' \"$a\"; \
         IFS= read -r b; printf 'end:%s\\n' \"$b\"",
    )
    .env("K", "v a'l")
    .stdin_reader(stdin)
    .sudo_password(Secret::new(user.password()));
    let mut s = sess.exec_streaming_command(cmd).await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while !out.ends_with(b"got:first\n") {
        match s.next().await {
            Some(Ok(Chunk::Stdout(b))) => out.extend_from_slice(&b),
            Some(Ok(Chunk::Stderr(b))) => err.extend_from_slice(&b),
            other => panic!(
                "{other:?} before the first line came back; stdout {:?} stderr {:?}\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err),
                srv.log()
            ),
        }
    }
    // The command waits for its second line: sudo and the shells run, and
    // the scan sees them (sudo's prompt is on its command line).
    let sudo = processes_showing("vmssh-sudo-prompt", &[]);
    assert!(!sudo.is_empty(), "the scan finds no sudo process");
    let shown = processes_showing(user.password(), &[]);
    assert!(shown.is_empty(), "password visible in: {shown:#?}");
    to_cmd.write_all(b"second\n").await.unwrap();
    drop(to_cmd);
    while let Some(c) = s.next().await {
        match c.unwrap() {
            Chunk::Stdout(b) => out.extend_from_slice(&b),
            Chunk::Stderr(b) => err.extend_from_slice(&b),
            _ => {}
        }
    }
    let status = s.exit_status().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "0\nenv:v a'l\ngot:first\nend:second\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&err),
        "",
        "stderr: no prompt, no marker"
    );
    assert!(status.success(), "{status}");
}
on_both_servers!(right_password_runs_as_root_with_its_stdin);

/// Collected, with stdin bytes or none at all (end-of-file only after
/// sudo read the password).
async fn collected_commands_with_and_without_stdin(srv: &support::Server) {
    let user = SudoUser::with_password();
    let sess = login(srv, &user).await;
    let pw = Secret::new(user.password());
    let out = sess
        .exec_command(
            Command::new("id -u; cat")
                .stdin_bytes("line1\nline2\n")
                .sudo(true)
                .sudo_password(pw.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "0\nline1\nline2\n");
    assert_eq!(out.stderr_lossy(), "");
    assert!(out.status.success());
    let out = sess
        .exec_command(Command::new("id -un; cat").sudo_password(pw))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "root\n");
    assert_eq!(out.stderr_lossy(), "");
}
on_both_servers!(collected_commands_with_and_without_stdin);

/// Where sudo asks for no password (`NOPASSWD`), the password is never
/// sent: the command's stdin is exactly its own.
async fn nopasswd_never_sends_the_password(srv: &support::Server) {
    let user = SudoUser::without_password();
    let sess = login(srv, &user).await;
    let out = sess
        .exec_command(
            Command::new("id -u; cat")
                .stdin_bytes("only this\n")
                .sudo_password("not-asked-for-0f9e"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "0\nonly this\n");
    assert_eq!(out.stderr_lossy(), "");
}
on_both_servers!(nopasswd_never_sends_the_password);

/// A wrong password is a typed error naming sudo (not the command), and
/// the command did not run; the password is in neither its Display nor
/// its Debug. Streamed, the same error ends the stream.
async fn wrong_password_is_a_typed_error(srv: &support::Server) {
    let user = SudoUser::with_password();
    let sess = login(srv, &user).await;
    let wrong = format!("wrong-{}", user.password());
    let ran = srv.dir().join("ran");
    let line = format!("touch '{}'", ran.display());
    let err = sess
        .exec_command(
            Command::new(line.clone())
                .stdin_bytes("data\n")
                .sudo_password(wrong.as_str()),
        )
        .await
        .unwrap_err();
    match &err {
        Error::SudoPasswordRejected { user: u, port, .. } => {
            assert_eq!(u, user.name());
            assert_eq!(*port, srv.port());
        }
        other => panic!("{other:?}"),
    }
    let shown = format!("{err} | {err:?}");
    assert!(shown.contains("sudo"), "{shown}");
    assert!(
        !shown.contains("touch"),
        "the command is not named: {shown}"
    );
    assert!(!shown.contains(&wrong), "password shown: {shown}");
    assert!(!shown.contains(user.password()), "password shown: {shown}");
    assert!(!err.is_retryable());
    assert!(!ran.exists(), "the command ran");

    let mut s = sess
        .exec_streaming_command(Command::new(line).sudo_password(wrong.as_str()))
        .await
        .unwrap();
    let mut last = None;
    while let Some(c) = s.next().await {
        if let Err(e) = c {
            last = Some(e);
        }
    }
    assert!(
        matches!(last, Some(Error::SudoPasswordRejected { .. })),
        "{last:?}"
    );
    assert!(!ran.exists(), "the command ran");
    // The session is still usable.
    let out = sess.exec("id -un").await.unwrap();
    assert_eq!(out.stdout_lossy(), format!("{}\n", user.name()));
}
on_both_servers!(wrong_password_is_a_typed_error);

/// Provisioning: `sudo` steps (inline and script) get the password from
/// the provisioner; the log has their output and not the password; a
/// wrong password fails the step with the typed cause.
async fn provisioning_sudo_steps(srv: &support::Server) {
    let user = SudoUser::with_password();
    let sess = login(srv, &user).await;
    let plan = tempfile::tempdir().unwrap();
    std::fs::write(
        plan.path().join("whoami.sh"),
        "#!/bin/sh\necho script:$(id -u)\n",
    )
    .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let steps = [
        ProvisionDef::inline("echo inline:$(id -u):$K")
            .env("K", "v")
            .sudo(true),
        ProvisionDef::script("whoami.sh").sudo(true),
        ProvisionDef::inline("echo plain:$(id -u)"),
    ];
    let report = Provisioner::new("sudo")
        .base_dir(plan.path())
        .log_dir(logs.path())
        .sudo_password(Secret::new(user.password()))
        .run(&sess, &steps)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})"));
    assert!(report.iter().all(|r| r.ok), "{report:?}");
    let log = read_all(logs.path());
    assert!(log.contains("inline:0:v"), "{log}");
    assert!(log.contains("script:0"), "{log}");
    let uid = String::from_utf8(sess.exec("id -u").await.unwrap().stdout).unwrap();
    assert!(log.contains(&format!("plain:{}", uid.trim())), "{log}");
    assert!(!log.contains(user.password()), "password in the log: {log}");

    let logs = tempfile::tempdir().unwrap();
    let wrong = format!("wrong-{}", user.password());
    let err = Provisioner::new("sudo")
        .base_dir(plan.path())
        .log_dir(logs.path())
        .sudo_password(wrong.as_str())
        .run(&sess, &steps[..1])
        .await
        .unwrap_err();
    let Error::ProvisionFailed { source, reason, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(reason, "sudo rejected the password");
    assert!(
        matches!(source.as_deref(), Some(Error::SudoPasswordRejected { .. })),
        "{err:?}"
    );
    let shown = format!("{err} | {err:?} | {}", read_all(logs.path()));
    assert!(!shown.contains(&wrong), "password shown: {shown}");
}
on_both_servers!(provisioning_sudo_steps);

/// Every regular file below `dir` (not the FIFOs), concatenated.
fn read_all(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            text.push_str(&read_all(&p));
        } else if p.is_file() {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    text
}

/// The command: `exec --sudo --sudo-password-env VAR`, piped, with a log
/// directory and a JSON report. While the command runs (it waits on a
/// FIFO), no process on either end shows the password on its command line,
/// nor in its environment but the command's own (where the user put it);
/// the output, the log and the report never hold it. A wrong password
/// fails the host, naming sudo.
async fn the_command_takes_the_password_from_the_environment(srv: &support::Server) {
    let user = SudoUser::with_password();
    let dir = tempfile::tempdir().unwrap();
    let (ready, go) = (dir.path().join("ready"), dir.path().join("go"));
    for fifo in [&ready, &go] {
        support::run(std::process::Command::new("mkfifo").arg(fifo));
    }
    let run = |password: &str, out: &str| {
        let mut c = cli_harness::command(dir.path());
        c.env("VMSSH_T_LOGIN", user.password())
            .env("VMSSH_T_SUDO", password)
            .args(["exec", "--plain", "--insecure-accept-any"])
            .arg("--host")
            .arg(format!("box={}@127.0.0.1:{}", user.name(), srv.port()))
            .args(["--password-env", "VMSSH_T_LOGIN"])
            .args(["--sudo", "--sudo-password-env", "VMSSH_T_SUDO"])
            .arg("--report")
            .arg(dir.path().join(format!("{out}.json")))
            .arg("--log-dir")
            .arg(dir.path().join(out))
            .arg("--")
            .arg(format!(
                "id -u; echo up > '{}'; read x < '{}'; echo done:$x",
                ready.display(),
                go.display()
            ));
        c
    };
    let mut child = run(user.password(), "right")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cli = child.id().unwrap();
    // Both FIFOs opened read-write: no EOF before the command writes, and
    // no wait for it to open its end.
    let from_cmd = pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&ready)
        .unwrap();
    let mut from_cmd = tokio::io::BufReader::new(from_cmd);
    let mut line = String::new();
    tokio::select! {
        r = from_cmd.read_line(&mut line) => { r.unwrap(); }
        status = child.wait() => panic!("vmssh ended before the command ran: {status:?}"),
    }
    assert_eq!(line, "up\n");
    let sudo = processes_showing("vmssh-sudo-prompt", &[]);
    assert!(!sudo.is_empty(), "the scan finds no sudo process");
    let shown = processes_showing(user.password(), &[cli]);
    assert!(shown.is_empty(), "password visible in: {shown:#?}");
    let mut to_cmd = pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(&go)
        .unwrap();
    to_cmd.write_all(b"go\n").await.unwrap();
    let o = child.wait_with_output().await.unwrap();
    let (out, err) = (cli_harness::stdout(&o), cli_harness::stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}\n{}", srv.log());
    assert!(out.contains("[box] 0\n"), "{out}");
    assert!(out.contains("[box] done:go\n"), "{out}");
    let written = read_all(dir.path());
    assert!(written.contains("\"succeeded\""), "no report: {written}");
    for text in [&out, &err, &written] {
        assert!(!text.contains(user.password()), "password shown: {text}");
    }

    let wrong = format!("wrong-{}", user.password());
    let o = cli_harness::run(run(&wrong, "wrong")).await;
    let (out, err) = (cli_harness::stdout(&o), cli_harness::stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("sudo rejected the password"), "{err}");
    let written = read_all(dir.path());
    assert!(written.contains("sudo rejected the password"), "{written}");
    for text in [&out, &err, &written] {
        assert!(!text.contains(&wrong), "password shown: {text}");
    }
}
on_both_servers!(the_command_takes_the_password_from_the_environment);

/// `--ask-sudo-password` asks once on the controlling terminal, without
/// echo: what is typed is not shown, and the command runs as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sudo), ignore = "needs sudo and OpenSSH sshd")]
async fn the_command_asks_on_the_terminal_without_echo() {
    use std::io::{Read as _, Write as _};
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    let srv = sshd();
    let user = SudoUser::with_password();
    let dir = tempfile::tempdir().unwrap();
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors; nothing else is passed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: both descriptors are fresh and owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut c = cli_harness::command(dir.path());
    c.env("VMSSH_T_LOGIN", user.password())
        .args(["exec", "--plain", "--insecure-accept-any"])
        .arg("--host")
        .arg(format!("box={}@127.0.0.1:{}", user.name(), srv.port()))
        .args(["--password-env", "VMSSH_T_LOGIN"])
        .args(["--sudo", "--ask-sudo-password", "--", "id -u"])
        .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(slave.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(slave.try_clone().unwrap()));
    let tty = slave.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls: a new
    // session whose controlling terminal is the pty (so /dev/tty is it).
    unsafe {
        c.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    drop(c);
    drop(slave);
    let password = user.password().to_string();
    let screen = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut answered = false;
        // EIO once the last slave descriptor closes: the end.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if !answered && out.windows(15).any(|w| w == b"sudo password: ") {
                answered = true;
                f.write_all(format!("{password}\n").as_bytes()).unwrap();
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("vmssh did not finish")
        .unwrap();
    let screen = screen.join().unwrap();
    assert_eq!(status.code(), Some(0), "{screen}\n{}", srv.log());
    assert_eq!(screen.matches("sudo password: ").count(), 1, "{screen}");
    assert!(screen.contains("[box] 0"), "{screen}");
    assert!(!screen.contains(user.password()), "echoed: {screen}");
}
