//! The testkit server stands in for sshd in users' own tests, so OpenSSH's
//! own clients must be able to use it as they use sshd: `ssh` (exec, exit
//! codes, stdin, the sftp subsystem's exit status), `sftp -b` (directory
//! listings with `.` and `..`, symlinks, `realpath`, `df`, renames, modes)
//! and `scp` (checksummed transfers both ways, recursive copies), each run
//! as a subprocess against an in-process [`TestServer`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use vmssh_testkit::{TestServer, TestServerBuilder};

/// Hang guard: generous, only there so a bug fails instead of hanging.
async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result after 60 s"),
    }
}

/// A testkit server and what OpenSSH's clients need to log in to it: the
/// client key in a file and the host key in a known_hosts file, with every
/// user and system configuration file left out (`-F /dev/null`).
struct Clients {
    server: TestServer,
    dir: TempDir,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Clients {
    async fn start() -> Clients {
        Self::with(TestServer::builder()).await
    }

    async fn with(builder: TestServerBuilder) -> Clients {
        let server = builder.start().await.unwrap();
        let dir = tempfile::Builder::new()
            .prefix("vmssh-openssh-clients-")
            .tempdir()
            .unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, server.client_private_key_pem()).unwrap();
        // ssh refuses a private key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!(
                "[{}]:{} {}\n",
                server.host(),
                server.port(),
                server.host_public_key_line()
            ),
        )
        .unwrap();
        Clients {
            server,
            dir,
            key,
            known_hosts,
        }
    }

    /// A scratch directory on the "remote" side (the server runs here).
    fn remote_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    /// The options all three clients share: no configuration files, this
    /// key only, this host key only, no prompts.
    fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = vec!["-F".into(), "/dev/null".into()];
        for opt in [
            "BatchMode=yes".to_string(),
            "IdentitiesOnly=yes".to_string(),
            format!("IdentityFile={}", self.key.display()),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            "LogLevel=ERROR".to_string(),
            format!("User={}", self.server.user()),
        ] {
            o.push("-o".into());
            o.push(opt);
        }
        o
    }

    fn ssh(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(self.options())
            .arg("-p")
            .arg(self.server.port().to_string())
            .kill_on_drop(true);
        c
    }

    fn sftp(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sftp");
        c.args(self.options())
            .arg("-P")
            .arg(self.server.port().to_string())
            .kill_on_drop(true);
        c
    }

    fn scp(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("scp");
        c.args(self.options())
            .arg("-P")
            .arg(self.server.port().to_string())
            .kill_on_drop(true);
        c
    }

    /// `HOST:path` for scp.
    fn remote(&self, path: &Path) -> String {
        format!("{}:{}", self.server.host(), path.display())
    }

    /// Runs `sftp -b -` with `batch` on stdin.
    async fn sftp_batch(&self, batch: &str) -> Output {
        let mut cmd = self.sftp();
        cmd.arg("-b").arg("-").arg(self.server.host());
        run(cmd, Some(batch.as_bytes().to_vec())).await
    }
}

/// Runs a client to the end with `stdin` (or none), collecting its output.
async fn run(mut cmd: tokio::process::Command, stdin: Option<Vec<u8>>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let feed = {
        let input = child.stdin.take();
        async move {
            if let (Some(mut w), Some(data)) = (input, stdin) {
                // The client may stop reading early (and fail): not an
                // error here, its exit status tells.
                let _ = w.write_all(&data).await;
            }
        }
    };
    let (out, ()) = guard(&what, async {
        tokio::join!(child.wait_with_output(), feed)
    })
    .await;
    out.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn report(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", report(out));
}

/// Deterministic bytes that no compressor or dedup can shortcut.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

// ---------------------------------------------------------------------------
// ssh

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn ssh_exit_codes_and_output() {
    let c = Clients::start().await;
    let mut cmd = c.ssh();
    cmd.arg(c.server.host())
        .arg("echo out; echo err >&2; exit 7");
    let out = run(cmd, None).await;
    assert_eq!(out.status.code(), Some(7), "{}", report(&out));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");

    let mut cmd = c.ssh();
    cmd.arg(c.server.host()).arg("true");
    assert_ok(&run(cmd, None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn ssh_stdin_checksummed() {
    let c = Clients::start().await;
    // Larger than the windows and queues on the way; EOF ends sha256sum.
    let data = noise(3 * 1024 * 1024 + 17, 7);
    let mut cmd = c.ssh();
    cmd.arg(c.server.host()).arg("sha256sum");
    let out = run(cmd, Some(data.clone())).await;
    assert_ok(&out);
    let want = format!("{:x}  -\n", Sha256::digest(&data));
    assert_eq!(text(&out.stdout), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn ssh_sftp_subsystem_exits_zero() {
    let c = Clients::start().await;
    // No input: the client sends EOF at once; the subsystem ends and, as
    // with sshd's sftp-server, reports exit status 0.
    let mut cmd = c.ssh();
    cmd.arg("-s").arg(c.server.host()).arg("sftp");
    let out = run(cmd, None).await;
    assert_ok(&out);
}

// ---------------------------------------------------------------------------
// scp

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn scp_round_trip_checksummed() {
    let c = Clients::start().await;
    let local = tempfile::tempdir().unwrap();
    let remote = c.remote_dir("remote");
    let src = local.path().join("up.bin");
    std::fs::write(&src, noise(5 * 1024 * 1024 + 3, 11)).unwrap();

    let mut cmd = c.scp();
    cmd.arg(&src).arg(c.remote(&remote.join("up.bin")));
    assert_ok(&run(cmd, None).await);
    assert_eq!(sha(&remote.join("up.bin")), sha(&src));

    let back = local.path().join("back.bin");
    let mut cmd = c.scp();
    cmd.arg(c.remote(&remote.join("up.bin"))).arg(&back);
    assert_ok(&run(cmd, None).await);
    assert_eq!(sha(&back), sha(&src));

    // A missing remote file is an error, not an empty copy.
    let mut cmd = c.scp();
    cmd.arg(c.remote(&remote.join("missing")))
        .arg(local.path().join("x"));
    let out = run(cmd, None).await;
    assert!(!out.status.success(), "{}", report(&out));
    assert!(!local.path().join("x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn scp_recursive_with_modes_and_times() {
    let c = Clients::start().await;
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::write(tree.join("top.txt"), b"top\n").unwrap();
    std::fs::write(tree.join("a/b/deep.bin"), noise(200_000, 3)).unwrap();
    std::fs::write(tree.join("a/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        tree.join("a/run.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let remote = c.remote_dir("remote");

    // -p keeps modes and times (setstat), -r walks directories.
    let mut cmd = c.scp();
    cmd.arg("-rp").arg(&tree).arg(c.remote(&remote));
    assert_ok(&run(cmd, None).await);
    let up = remote.join("tree");
    assert_eq!(std::fs::read(up.join("top.txt")).unwrap(), b"top\n");
    assert_eq!(
        sha(&up.join("a/b/deep.bin")),
        sha(&tree.join("a/b/deep.bin"))
    );
    let mode = std::fs::metadata(up.join("a/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    // SFTP carries whole seconds.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().mtime();
    assert_eq!(mtime(&up.join("top.txt")), mtime(&tree.join("top.txt")));
    assert_eq!(mtime(&up.join("a/b")), mtime(&tree.join("a/b")));

    let back = local.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let mut cmd = c.scp();
    cmd.arg("-rp").arg(c.remote(&up)).arg(&back);
    assert_ok(&run(cmd, None).await);
    let down = back.join("tree");
    assert_eq!(
        sha(&down.join("a/b/deep.bin")),
        sha(&tree.join("a/b/deep.bin"))
    );
    let mode = std::fs::metadata(down.join("a/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
}

// ---------------------------------------------------------------------------
// sftp -b

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn sftp_batch_directory_operations() {
    let c = Clients::start().await;
    let local = tempfile::tempdir().unwrap();
    let remote = c.remote_dir("remote");
    let src = local.path().join("f.bin");
    std::fs::write(&src, noise(300_000, 5)).unwrap();
    let got = local.path().join("via-link.bin");

    let batch = format!(
        "cd {remote}\n\
         mkdir d\n\
         cd d\n\
         pwd\n\
         put {src} f.bin\n\
         ln -s f.bin link\n\
         mkdir sub\n\
         ln -s sub sublink\n\
         ls -la\n\
         get link {got}\n\
         rename f.bin g.bin\n\
         chmod 600 g.bin\n\
         cp g.bin copy.bin\n\
         df .\n\
         cd sublink\n\
         pwd\n\
         cd ..\n\
         rmdir sub\n\
         rm sublink\n",
        remote = remote.display(),
        src = src.display(),
        got = got.display(),
    );
    let out = c.sftp_batch(&batch).await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let d = remote.join("d");

    // pwd prints the realpath of the working directory.
    assert!(
        stdout.contains(&format!("Remote working directory: {}\n", d.display())),
        "{stdout}"
    );
    // ls -la lists . and .., and symlinks as symlinks.
    let listing: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("sftp> ls -la"))
        .skip(1)
        .take_while(|l| !l.starts_with("sftp> "))
        .collect();
    let names: Vec<&str> = listing
        .iter()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for want in [".", "..", "f.bin", "link", "sub", "sublink"] {
        assert!(
            names.contains(&want),
            "{want} missing from ls -la:\n{stdout}"
        );
    }
    let line = |name: &str| {
        *listing
            .iter()
            .find(|l| l.split_whitespace().last() == Some(name))
            .unwrap()
    };
    assert!(line("link").starts_with('l'), "{}", line("link"));
    assert!(line("sub").starts_with('d'), "{}", line("sub"));
    assert!(line(".").starts_with('d'), "{}", line("."));
    assert!(line("f.bin").starts_with("-rw"), "{}", line("f.bin"));
    assert!(line("f.bin").contains(" 300000 "), "{}", line("f.bin"));

    // The link points at the name given (relative), and reads through.
    assert_eq!(
        std::fs::read_link(d.join("link")).unwrap(),
        Path::new("f.bin")
    );
    assert_eq!(sha(&got), sha(&src));
    // rename, chmod.
    assert!(!d.join("f.bin").exists());
    assert_eq!(sha(&d.join("g.bin")), sha(&src));
    let mode = std::fs::metadata(d.join("g.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // cp (copy-data): copied on the server side.
    assert_eq!(sha(&d.join("copy.bin")), sha(&src));
    // df (statvfs@openssh.com) prints a table with a size column.
    assert!(stdout.contains("Size"), "df printed no table:\n{stdout}");
    // cd through a symlink: realpath resolves it, as sshd's does.
    assert!(
        stdout.contains(&format!(
            "Remote working directory: {}\n",
            d.join("sub").display()
        )),
        "{stdout}"
    );
    // rmdir and rm; the link to the renamed file is left dangling.
    assert!(!d.join("sub").exists());
    assert!(std::fs::symlink_metadata(d.join("sublink")).is_err());
    assert!(
        std::fs::symlink_metadata(d.join("link"))
            .unwrap()
            .is_symlink()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn sftp_batch_stops_at_the_first_error() {
    let c = Clients::start().await;
    let remote = c.remote_dir("remote");
    let batch = format!(
        "cd {remote}\n\
         mkdir made\n\
         get {remote}/missing /dev/null\n\
         mkdir not-reached\n",
        remote = remote.display()
    );
    let out = c.sftp_batch(&batch).await;
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));
    assert!(remote.join("made").is_dir());
    assert!(!remote.join("not-reached").exists());
    assert!(text(&out.stderr).contains("not found"), "{}", report(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_openssh_client),
    ignore = "needs OpenSSH's ssh, sftp and scp"
)]
async fn sftp_under_a_root() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("inner")).unwrap();
    std::fs::write(root.path().join("inner/file"), b"x").unwrap();
    let c = Clients::with(TestServer::builder().sftp_root(root.path())).await;
    let out = c
        .sftp_batch("pwd\ncd inner\npwd\ncd ../..\npwd\nls -1\n")
        .await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let pwds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Remote working directory: "))
        .collect();
    assert_eq!(pwds, ["/", "/inner", "/"], "{stdout}");
    assert!(stdout.contains("inner\n"), "{stdout}");
}
