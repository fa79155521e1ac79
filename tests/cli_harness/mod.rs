//! Runs the `vmssh` binary as a subprocess against hosts that are testkit
//! servers started by the test (one per host, HOSTNAME set to the host's
//! name), with their client keys and host keys written to files the way a
//! user's would be.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::Read as _;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};

use tempfile::TempDir;
use vmssh_testkit::TestServer;

/// The binary under test.
pub const VMSSH: &str = env!("CARGO_BIN_EXE_vmssh-under-test");

/// One host: its name and its server.
pub struct Host {
    pub name: String,
    pub server: TestServer,
    pub key: PathBuf,
    /// The server's file system root for SFTP (`/` on the host), when it
    /// has one of its own.
    pub root: Option<PathBuf>,
}

/// Hosts, a HOME for the command with their keys and known_hosts, an
/// inventory naming them.
pub struct Hosts {
    pub dir: TempDir,
    pub hosts: Vec<Host>,
}

impl Hosts {
    /// One testkit server per name.
    pub async fn start(names: &[&str]) -> Hosts {
        Self::start_with(names, false).await
    }

    /// As [`start`](Self::start); with `own_roots`, each host's SFTP sees
    /// its own directory as `/` (uploads to the same path stay apart).
    pub async fn start_with(names: &[&str], own_roots: bool) -> Hosts {
        let dir = tempfile::Builder::new()
            .prefix("vmssh-cli-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
        let mut hosts = Vec::new();
        for name in names {
            let mut b = TestServer::builder().env("HOSTNAME", *name);
            let root = own_roots.then(|| {
                let r = dir.path().join("roots").join(name);
                std::fs::create_dir_all(&r).unwrap();
                r
            });
            if let Some(r) = &root {
                b = b.sftp_root(r).working_dir(r);
            }
            let server = b.start().await.unwrap();
            let key = dir.path().join(format!("key-{name}"));
            std::fs::write(&key, server.client_private_key_pem()).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            hosts.push(Host {
                name: name.to_string(),
                server,
                key,
                root,
            });
        }
        let known: String = hosts
            .iter()
            .map(|h| {
                format!(
                    "[127.0.0.1]:{} {}\n",
                    h.server.port(),
                    h.server.host_public_key_line()
                )
            })
            .collect();
        std::fs::write(dir.path().join("known_hosts"), known).unwrap();
        Hosts { dir, hosts }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.path("known_hosts")
    }

    /// An inventory of every host, `NAME USER@127.0.0.1:PORT key=FILE`.
    pub fn inventory(&self) -> PathBuf {
        let text: String = self
            .hosts
            .iter()
            .map(|h| {
                format!(
                    "{}  {}@127.0.0.1:{}  key={}\n",
                    h.name,
                    h.server.user(),
                    h.server.port(),
                    h.key.display()
                )
            })
            .collect();
        let path = self.path("hosts");
        std::fs::write(&path, format!("# test inventory\n{text}")).unwrap();
        path
    }

    /// `vmssh ARGS` with this HOME, the inventory and known_hosts already
    /// given when `with_hosts`.
    pub fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = command(self.dir.path());
        c.args(args);
        c
    }

    /// `vmssh VERB --hosts INVENTORY --known-hosts FILE REST...`.
    pub fn verb(&self, verb: &str, rest: &[&str]) -> tokio::process::Command {
        let inventory = self.inventory();
        let known = self.known_hosts();
        let mut c = command(self.dir.path());
        c.arg(verb)
            .arg("--hosts")
            .arg(inventory)
            .arg("--known-hosts")
            .arg(known)
            .args(rest);
        c
    }
}

/// `vmssh` with HOME in `dir/home` (no user's ~/.ssh leaks in),
/// nothing on stdin, and no USER or LOGNAME, as in a container (the
/// local user comes from the password database, as ssh finds it).
pub fn command(dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(VMSSH);
    c.env("HOME", dir.join("home"))
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs to the end, with output captured.
pub async fn run(mut c: tokio::process::Command) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    tokio::time::timeout(std::time::Duration::from_secs(120), c.output())
        .await
        .expect("vmssh did not finish in 120 s")
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The JSON lines of `--json` output, each parsed.
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The shell command lines of the fenced `sh` blocks of a document of
/// this repository (`README.md`, `docs/sharding.md`), as a user would
/// copy them: continuation lines joined, comment lines left out.
pub fn doc_commands(doc: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut current = String::new();
    for line in text.lines() {
        let fence = line.trim_start();
        if let Some(info) = fence.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

/// The one command line of `doc` that starts with `prefix`.
#[track_caller]
pub fn doc_command(doc: &str, prefix: &str) -> String {
    let all = doc_commands(doc);
    let found: Vec<&String> = all.iter().filter(|c| c.starts_with(prefix)).collect();
    assert_eq!(
        found.len(),
        1,
        "{doc}: {} command lines start with {prefix:?}: {all:#?}",
        found.len()
    );
    found[0].clone()
}

/// `sh -c LINE` in `cwd`, as [`command`] runs vmssh (HOME in
/// `dir/home`), with `vmssh` on PATH being the binary under test.
pub fn shell(dir: &Path, cwd: &Path, line: &str) -> tokio::process::Command {
    let bin = dir.join("bin");
    if !bin.join("vmssh").exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(VMSSH, bin.join("vmssh")).unwrap();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&path).collect::<Vec<_>>()),
    )
    .unwrap();
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        .env("HOME", dir.join("home"))
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

impl Hosts {
    /// An ssh-agent holding every host's key (for `--agent`).
    pub fn agent(&self) -> support::Agent {
        let agent = support::agent();
        for h in &self.hosts {
            agent.add(&support::KeyPair {
                private: h.key.clone(),
                public_line: h.server.client_public_key_line().to_string(),
            });
        }
        agent
    }

    /// The first host's key as `~/.ssh/id_ed25519` and every host key in
    /// `~/.ssh/known_hosts`, where a user keeps theirs (HOME is
    /// `dir/home`).
    pub fn user_files(&self) {
        let ssh = self.dir.path().join("home/.ssh");
        let key = ssh.join("id_ed25519");
        std::fs::copy(&self.hosts[0].key, &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::copy(self.known_hosts(), ssh.join("known_hosts")).unwrap();
    }
}

/// Runs `c` with a terminal (a new pty) as its standard output and
/// error; returns what it wrote there and how it ended.
pub async fn run_on_pty(mut c: tokio::process::Command) -> (String, ExitStatus) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors; no name, termios or
    // size is passed.
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
    c.stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = c.spawn().unwrap();
    // The parent's copies of the slave are gone once `c` is dropped.
    drop(c);
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last slave descriptor closes: the end.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let status = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait())
        .await
        .expect("vmssh on a terminal did not finish")
        .unwrap();
    (reader.join().unwrap(), status)
}
