//! OpenSSH `sshd` instances for the bench: loopback, own temporary keys and
//! config, killed by PID on drop.
//!
//! The config is the tests' (`tests/support/sshd_config.rs`); the process
//! handling is the bench's own, because it needs what the test fixtures do
//! not: several instances sharing one key pair (every contender gets one
//! key and one host key line), starting on a reserved port at a chosen
//! moment, `MaxStartups 1000:30:1000` and `MaxSessions 100` for bursts,
//! restricted ciphers.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sshd_config::SshdConfig;

pub(crate) const HOST: &str = "127.0.0.1";
pub(crate) const SSHD: &str = "/usr/sbin/sshd";

/// Keys shared by every server and client of one bench run.
#[derive(Debug)]
pub(crate) struct Keys {
    pub(crate) dir: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) host_key: PathBuf,
    pub(crate) host_key_line: String,
    pub(crate) authorized_keys: PathBuf,
    pub(crate) user: String,
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Keys {
    pub(crate) fn create(dir: &Path) -> Keys {
        let keygen = |path: &Path| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "vmssh-bench", "-f"])
                .arg(path));
        };
        let client_key = dir.join("id_ed25519");
        let host_key = dir.join("ssh_host_ed25519_key");
        keygen(&client_key);
        keygen(&host_key);
        let read_pub = |p: &Path| {
            std::fs::read_to_string(p.with_extension("pub"))
                .unwrap()
                .trim()
                .to_string()
        };
        let authorized_keys = dir.join("authorized_keys");
        // SHLVL=1 keeps bash from sourcing root's slow .bashrc for each
        // command (see DESIGN.md).
        std::fs::write(
            &authorized_keys,
            format!("environment=\"SHLVL=1\" {}\n", read_pub(&client_key)),
        )
        .unwrap();
        let user = String::from_utf8(run(Command::new("id").arg("-un")))
            .unwrap()
            .trim()
            .to_string();
        Keys {
            dir: dir.to_path_buf(),
            host_key_line: read_pub(&host_key),
            client_key,
            host_key,
            authorized_keys,
            user,
        }
    }
}

/// A running sshd.
#[derive(Debug)]
pub(crate) struct Sshd {
    child: Child,
    pub(crate) port: u16,
    log: Arc<Mutex<Vec<u8>>>,
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind((HOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (read from
/// `/proc/net/tcp`, so polling it opens no connection).
pub(crate) fn listening(port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        f.nth(1) == Some(local.as_str()) && f.nth(1) == Some("0A")
    })
}

impl Sshd {
    /// The listener's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts sshd on `port` (or a free one) and waits until it listens.
    /// `extra` config lines come first, so they win over the defaults.
    pub(crate) fn start(keys: &Keys, port: Option<u16>, extra: &[&str]) -> Sshd {
        for _ in 0..5 {
            let sshd = Self::spawn(keys, port.unwrap_or_else(free_port), extra);
            match sshd.wait_listening(Duration::from_secs(10)) {
                Ok(_) => return sshd,
                Err(log) if port.is_none() && log.contains("Address already in use") => continue,
                Err(log) => panic!("sshd did not start; log:\n{log}"),
            }
        }
        panic!("sshd: no free port after 5 tries");
    }

    /// Starts sshd without waiting (the caller watches [`listening`]).
    pub(crate) fn spawn(keys: &Keys, port: u16, extra: &[&str]) -> Sshd {
        // Privilege separation directory; Debian creates it only at boot.
        let _ = std::fs::create_dir_all("/run/sshd");
        let sftp_server = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("/usr/lib/openssh/sftp-server");
        let config = SshdConfig {
            host: HOST,
            port,
            host_key: &keys.host_key,
            authorized_keys: &keys.authorized_keys,
            sftp_server: Some(Path::new(sftp_server)),
            password_auth: false,
            max_startups: "1000:30:1000",
            max_sessions: 100,
            log_level: "ERROR",
        }
        .render(extra);
        let config_path = keys.dir.join(format!("sshd_config.{port}"));
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut log = sink.lock().unwrap();
                if log.len() < (1 << 20) {
                    log.extend_from_slice(&buf[..n]);
                }
            }
        });
        Sshd { child, port, log }
    }

    /// Waits until the server listens; its log if it exited or timed out.
    pub(crate) fn wait_listening(&self, limit: Duration) -> Result<Instant, String> {
        let start = Instant::now();
        loop {
            if listening(self.port) {
                return Ok(Instant::now());
            }
            if start.elapsed() > limit || !self.alive() {
                std::thread::sleep(Duration::from_millis(50));
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}/stat", self.child.id())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
                .unwrap_or_default()
                .contains(") Z ")
    }

    pub(crate) fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // By PID only; per-connection children exit with their clients.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
