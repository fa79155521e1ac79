//! tinysshd (Debian package tinysshd), the minimal server of small images,
//! as a test server. tinysshd serves one connection on stdin/stdout, as
//! from inetd; the fixture is the inetd: it listens on 127.0.0.1 and runs
//! one tinysshd per connection, with the socket as its stdin and stdout.
//! Like dropbear it reads `~/.ssh/authorized_keys`, so it runs with a
//! temporary home directory ([`with_home`](super::with_home)) where mount
//! namespaces work. Tests that need it carry
//! `#[cfg_attr(not(vmssh_have_tinysshd), ignore = "...")]`.

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tempfile::TempDir;
use vmssh::SshConfig;

use super::endpoint::Endpoint;
use super::{
    HOST, KeyPair, SharedAuthorizedKeys, client_config, current_user, descendants, drain,
    ed25519_key, find_bin, namespaces_work, real_home, run, signal_pids, with_home,
};

/// The stderr of each connection's tinysshd, collected.
type Logs = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// Options for a [`Tinysshd`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct TinysshdBuilder {
    sftp: bool,
}

impl TinysshdBuilder {
    /// Adds OpenSSH's sftp-server as the `sftp` subsystem (`-x sftp=...`).
    ///
    /// Default: no subsystem, as on a minimal image.
    pub fn sftp(mut self, on: bool) -> Self {
        self.sftp = on;
        self
    }

    /// Makes the keys and starts listening.
    pub fn start(self) -> Tinysshd {
        Tinysshd::spawn(self)
    }
}

/// Per-connection tinysshd processes behind a listener on 127.0.0.1,
/// stopped (with everything they run) on drop.
pub struct Tinysshd {
    dir: TempDir,
    port: u16,
    user: String,
    client_key: KeyPair,
    host_key_line: String,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    children: Arc<Mutex<Vec<Child>>>,
    logs: Logs,
    _shared: Option<SharedAuthorizedKeys>,
}

impl std::fmt::Debug for Tinysshd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tinysshd")
            .field("port", &self.port)
            .finish()
    }
}

/// A tinysshd without subsystems.
pub fn tinysshd() -> Tinysshd {
    Tinysshd::builder().start()
}

impl Tinysshd {
    /// Options for a tinysshd.
    pub fn builder() -> TinysshdBuilder {
        TinysshdBuilder::default()
    }

    fn spawn(opts: TinysshdBuilder) -> Tinysshd {
        let bin = find_bin("tinysshd").expect(
            "tinysshd is not installed (Debian: tinysshd; mark the test \
             cfg_attr(not(vmssh_have_tinysshd), ignore))",
        );
        let dir = tempfile::Builder::new()
            .prefix("vmssh-tinysshd-")
            .tempdir()
            .unwrap();
        let keys = dir.path().join("keys");
        run(Command::new(find_bin("tinysshd-makekey").unwrap())
            .arg("-q")
            .arg(&keys));
        let printed = run(Command::new(find_bin("tinysshd-printkey").unwrap()).arg(&keys));
        let host_key_line = String::from_utf8(printed)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("ssh-ed25519 "))
            .expect("tinysshd-printkey printed no ed25519 key")
            .trim()
            .to_string();
        let client_key = ed25519_key(dir.path(), "id_ed25519");

        let mut args: Vec<String> = vec!["-v".into()];
        if opts.sftp {
            let sftp = find_bin("sftp-server")
                .unwrap_or_else(|| PathBuf::from("/usr/lib/openssh/sftp-server"));
            args.push("-x".into());
            args.push(format!("sftp={}", sftp.display()));
        }
        args.push(keys.display().to_string());

        let home = real_home();
        let (fake_home, shared) = if namespaces_work() {
            let fake = dir.path().join("home");
            std::fs::create_dir_all(fake.join(".ssh")).unwrap();
            std::fs::write(
                fake.join(".ssh/authorized_keys"),
                format!("{}\n", client_key.public_line),
            )
            .unwrap();
            (Some(fake), None)
        } else {
            let shared = SharedAuthorizedKeys::new(&home);
            shared.add(&client_key.public_line);
            (None, Some(shared))
        };
        let command = move || match &fake_home {
            Some(fake) => {
                let mut c = with_home(fake, &home, &bin);
                c.args(&args);
                c
            }
            None => {
                let mut c = Command::new(&bin);
                c.args(&args);
                c
            }
        };

        let listener = TcpListener::bind((HOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let children = Arc::new(Mutex::new(Vec::new()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, children, logs) = (stop.clone(), children.clone(), logs.clone());
            std::thread::spawn(move || {
                accept_loop(&listener, &stop, &children, &logs, command);
            })
        };
        Tinysshd {
            dir,
            port,
            user: current_user(),
            client_key,
            host_key_line,
            stop,
            acceptor: Some(acceptor),
            children,
            logs,
            _shared: shared,
        }
    }

    /// tinysshd processes started so far (one per connection).
    pub fn connections(&self) -> usize {
        self.children.lock().unwrap().len()
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    children: &Mutex<Vec<Child>>,
    logs: &Logs,
    command: impl Fn() -> Command,
) {
    let echo = std::env::var_os("VMSSH_TEST_SERVER_LOG").is_some();
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let out: OwnedFd = conn.try_clone().unwrap().into();
        let input: OwnedFd = conn.into();
        let mut child = command()
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(out))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        logs.lock()
            .unwrap()
            .push(drain(child.stderr.take().unwrap(), echo));
        children.lock().unwrap().push(child);
    }
}

impl Endpoint for Tinysshd {
    fn label(&self) -> &str {
        "tinysshd"
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn config(&self) -> SshConfig {
        client_config(&self.user, &self.host_key_line).auth(self.client_key.auth())
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .map(|l| String::from_utf8_lossy(&l.lock().unwrap()).into_owned())
            .collect()
    }
}

impl Drop for Tinysshd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; the loop sees the flag and ends.
        let _ = TcpStream::connect((HOST, self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for child in self.children.lock().unwrap().iter_mut() {
            let mut pids = descendants(child.id());
            pids.push(child.id());
            signal_pids("KILL", &pids);
            let _ = child.wait();
        }
    }
}
