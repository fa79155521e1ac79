//! asyncssh's SSH server (Python, from PyPI) as a test server: exec and
//! shell through `/bin/sh`, SFTP by asyncssh's own SFTP server
//! (`asyncssh_server.py` next to this file). It runs from the virtual
//! environment `scripts/deps/30-asyncssh.sh` installs under
//! `target/asyncssh`; tests that need it carry
//! `#[cfg_attr(not(vmssh_have_asyncssh), ignore = "...")]`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use vmssh::SshConfig;

use super::endpoint::Endpoint;
use super::{KeyPair, client_config, current_user, descendants, drain, ed25519_key, signal_pids};

/// The virtual environment's interpreter (build.rs probes this path).
pub fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/asyncssh/bin/python3")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support/asyncssh_server.py")
}

/// A running asyncssh server, stopped (with every command it runs) on
/// drop.
pub struct AsyncSsh {
    dir: TempDir,
    port: u16,
    user: String,
    client_key: KeyPair,
    host_key_line: String,
    child: Child,
    /// Held open: the server exits when it closes (the test process died).
    _stdin: ChildStdin,
    log: Arc<Mutex<Vec<u8>>>,
}

impl std::fmt::Debug for AsyncSsh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSsh")
            .field("port", &self.port)
            .field("pid", &self.child.id())
            .finish()
    }
}

/// Starts an asyncssh server and waits until it listens.
pub fn asyncssh() -> AsyncSsh {
    AsyncSsh::start()
}

impl AsyncSsh {
    /// Starts the server; panics (with its log) when it does not listen.
    pub fn start() -> AsyncSsh {
        let python = python();
        assert!(
            python.is_file(),
            "{} is missing: run scripts/deps/30-asyncssh.sh (and mark the test \
             cfg_attr(not(vmssh_have_asyncssh), ignore))",
            python.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("vmssh-asyncssh-")
            .tempdir()
            .unwrap();
        let client_key = ed25519_key(dir.path(), "id_ed25519");
        let host_key = ed25519_key(dir.path(), "host_key");
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, format!("{}\n", client_key.public_line)).unwrap();
        let mut child = Command::new(&python)
            .arg(script())
            .arg(&host_key.private)
            .arg(&authorized_keys)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let echo = std::env::var_os("VMSSH_TEST_SERVER_LOG").is_some();
        let log = drain(child.stderr.take().unwrap(), echo);
        let stdin = child.stdin.take().unwrap();
        // The server prints its port once it accepts connections.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
            panic!(
                "asyncssh server did not start (printed {line:?}); log:\n{}",
                String::from_utf8_lossy(&log.lock().unwrap())
            );
        };
        AsyncSsh {
            dir,
            port,
            user: current_user(),
            client_key,
            host_key_line: host_key.public_line,
            child,
            _stdin: stdin,
            log,
        }
    }

    /// The server's host public key as an OpenSSH line.
    pub fn host_key_line(&self) -> &str {
        &self.host_key_line
    }

    /// The server process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Endpoint for AsyncSsh {
    fn label(&self) -> &str {
        "asyncssh"
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
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for AsyncSsh {
    fn drop(&mut self) {
        // Commands run in sessions of their own: kill them by PID too.
        let mut pids = descendants(self.child.id());
        pids.push(self.child.id());
        signal_pids("KILL", &pids);
        let _ = self.child.wait();
    }
}
