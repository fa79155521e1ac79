//! Real VMs for tests and demos: QEMU guests booted from the image that
//! `scripts/vm-image.sh` builds from Debian's packages (the cloud kernel,
//! busybox, OpenSSH's sshd or dropbear, and `sftp-server`).
//!
//! A guest runs as vmctl runs its VMs: QEMU under software emulation
//! (`-accel tcg -machine q35 -cpu max -m 512`), on QEMU's user-mode network
//! with the guest's port 22 forwarded to `127.0.0.1:PORT`
//! (`-netdev user,hostfwd=...`, `-device virtio-net-pci`). That network
//! accepts TCP on the host port before the guest's sshd is up: a client
//! first sees refusals, then accepted connections that stay silent for
//! seconds, then resets, then the banner.
//!
//! QEMU reports to this process over its QMP socket, so
//! [`Guest::resets`] counts the guest's reboots as they happen, without
//! polling.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use vmssh::Session;
//! use vmssh_testkit::qemu::{GuestSsh, Image};
//!
//! # async fn demo() -> Result<(), vmssh::Error> {
//! let image = Image::open("target/vm-image")?;
//! let guest = image.guest().ssh(GuestSsh::Dropbear).boot().await?;
//! let sess = Session::connect_with_retry(guest.host(), guest.port(), &guest.config(),
//!     Duration::from_secs(120)).await?;
//! assert!(sess.exec("uname -r").await?.status.success());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use vmssh::Error;
use vmssh::{Auth, HostKeyPolicy, Session, SshConfig};

/// The address every guest's SSH port is forwarded to.
const HOST: &str = "127.0.0.1";

/// How long QEMU may take to start and report over QMP.
const START_LIMIT: Duration = Duration::from_secs(30);

/// How long [`Guest::reboot`] keeps trying to connect to the guest.
pub const REBOOT_CONNECT_DEADLINE: Duration = Duration::from_secs(60);

/// The guest image: kernel, initramfs and the keys made with it.
#[derive(Clone, Debug)]
pub struct Image {
    dir: PathBuf,
    host_key_line: String,
}

impl Image {
    /// Opens an image directory made by `scripts/vm-image.sh`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file of the image is missing or unreadable
    /// (build it with `scripts/vm-image.sh`).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Image, Error> {
        let dir = dir.into();
        for f in ["vmlinuz", "initrd.img", "id_ed25519"] {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(crate::io_error(
                    format!(
                        "VM image file {} is missing (build the image with scripts/vm-image.sh)",
                        p.display()
                    ),
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
        }
        let pub_path = dir.join("host_key.pub");
        let host_key_line = std::fs::read_to_string(&pub_path)
            .map_err(|e| crate::io_error(format!("cannot read {}", pub_path.display()), e))?
            .trim()
            .to_string();
        Ok(Image { dir, host_key_line })
    }

    /// The image directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Root's private key in the guest (authorized there).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The guest's host key, an OpenSSH public key line (the same for
    /// every guest and both servers).
    pub fn host_key_line(&self) -> &str {
        &self.host_key_line
    }

    /// Settings that log in as root with [`key_path`](Self::key_path) and
    /// trust exactly the guest's host key.
    pub fn config(&self) -> SshConfig {
        SshConfig::new("root")
            .auth(Auth::key_file(self.key_path()))
            .host_key(HostKeyPolicy::pinned(&self.host_key_line))
    }

    /// Options for a guest of this image.
    pub fn guest(&self) -> GuestBuilder {
        GuestBuilder {
            image: self.clone(),
            ssh: GuestSsh::OpenSsh,
            hostname: "vmssh-guest".to_string(),
            network_delay: None,
            key_delay: None,
            port: None,
            sshd_log: None,
        }
    }
}

/// The SSH server a guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestSsh {
    /// OpenSSH's sshd, with `sftp-server`.
    OpenSsh,
    /// dropbear, with OpenSSH's `sftp-server`.
    Dropbear,
}

impl GuestSsh {
    fn cmdline(self) -> &'static str {
        match self {
            GuestSsh::OpenSsh => "openssh",
            GuestSsh::Dropbear => "dropbear",
        }
    }
}

/// Options for one guest, from [`Image::guest`].
#[derive(Clone, Debug)]
#[must_use]
pub struct GuestBuilder {
    image: Image,
    ssh: GuestSsh,
    hostname: String,
    network_delay: Option<Duration>,
    key_delay: Option<Duration>,
    port: Option<u16>,
    sshd_log: Option<String>,
}

impl GuestBuilder {
    /// The SSH server the guest runs.
    ///
    /// Default: [`GuestSsh::OpenSsh`].
    pub fn ssh(mut self, ssh: GuestSsh) -> Self {
        self.ssh = ssh;
        self
    }

    /// The guest's host name.
    ///
    /// Default: `vmssh-guest`.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Brings the guest's network up this long after its kernel started
    /// (a slow cloud-init, a late DHCP lease): QEMU keeps accepting
    /// connections meanwhile and leaves them silent.
    ///
    /// Default: none.
    pub fn network_delay(mut self, delay: Duration) -> Self {
        self.network_delay = Some(delay);
        self
    }

    /// Installs root's key (the image's [`Image::key_path`]) this long
    /// after the guest's SSH server starts listening, as cloud-init writes
    /// `authorized_keys` after sshd is up: until then every login is
    /// refused. The console says when it lands ([`Guest::console`]).
    ///
    /// Default: none (the key is there from the start).
    pub fn key_delay(mut self, delay: Duration) -> Self {
        self.key_delay = Some(delay);
        self
    }

    /// Runs OpenSSH's sshd at this `LogLevel` (`VERBOSE` shows the
    /// penalties that `PerSourcePenalties` hands out, `DEBUG1` and up why
    /// each connection ended), each console line prefixed with the guest's
    /// uptime in seconds: read it with [`Guest::console`]. dropbear logs
    /// as it always does.
    ///
    /// Default: sshd's own (`INFO`), unprefixed.
    pub fn sshd_log_level(mut self, level: impl Into<String>) -> Self {
        self.sshd_log = Some(level.into());
        self
    }

    /// The host port forwarded to the guest's port 22.
    ///
    /// Default: a free port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts QEMU and returns once it runs the guest (long before the
    /// guest's sshd answers: connect with
    /// [`Session::connect_with_retry`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when QEMU (`qemu-system-x86_64`) cannot be started,
    /// exits at once (with its message) or does not report within 30 s.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the QEMU process it started.
    pub async fn boot(self) -> Result<Guest, Error> {
        // A free port can be taken by someone else before QEMU binds it.
        let mut attempts = 0;
        loop {
            let port = match self.port {
                Some(p) => p,
                None => free_port()?,
            };
            attempts += 1;
            match self.boot_on(port).await {
                Ok(g) => return Ok(g),
                Err((e, collision)) if collision && self.port.is_none() && attempts < 5 => {
                    tracing::debug!(port, error = %e, "guest port taken, trying another");
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Boots on `port`; the flag says whether the port was taken.
    async fn boot_on(&self, port: u16) -> Result<Guest, (Error, bool)> {
        let fail = |what: String, e: std::io::Error| (crate::io_error(what, e), false);
        let dir = GuestDir::create()
            .map_err(|e| fail("cannot create a directory for the guest".into(), e))?;
        let qmp_path = dir.0.join("qmp.sock");
        let console = dir.0.join("console.log");
        let qmp = UnixListener::bind(&qmp_path)
            .map_err(|e| fail(format!("cannot listen on {}", qmp_path.display()), e))?;

        let mut append = format!(
            "console=ttyS0 quiet panic=-1 vmssh.sshd={} vmssh.hostname={}",
            self.ssh.cmdline(),
            self.hostname
        );
        if let Some(d) = self.network_delay {
            append.push_str(&format!(" vmssh.netdelay={:.1}", d.as_secs_f64()));
        }
        if let Some(level) = &self.sshd_log {
            append.push_str(&format!(" vmssh.sshdlog={level}"));
        }
        if let Some(d) = self.key_delay {
            // An image from before the option would install the key at once.
            let features =
                std::fs::read_to_string(self.image.dir.join("features")).unwrap_or_default();
            if !features.split_whitespace().any(|f| f == "keydelay") {
                return Err(fail(
                    format!(
                        "the VM image in {} cannot delay its key (rebuild it with scripts/vm-image.sh)",
                        self.image.dir.display()
                    ),
                    std::io::Error::from(std::io::ErrorKind::Unsupported),
                ));
            }
            append.push_str(&format!(" vmssh.keydelay={:.1}", d.as_secs_f64()));
        }
        let image = &self.image.dir;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-accel", "tcg", "-machine", "q35", "-cpu", "max", "-m", "512",
        ])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .arg("-append")
        .arg(&append)
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-qmp")
        .arg(format!("unix:{}", qmp_path.display()))
        .arg("-netdev")
        .arg(format!("user,id=net0,hostfwd=tcp:{HOST}:{port}-:22"))
        .args(["-device", "virtio-net-pci,netdev=net0"])
        .args(["-device", "virtio-rng-pci"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            fail(
                "cannot start qemu-system-x86_64 (Debian: qemu-system-x86)".into(),
                e,
            )
        })?;
        let mut stderr = child.stderr.take();

        // QEMU answers QMP commands from its main loop, which runs only
        // once every device and forwarding rule is set up.
        let ready = tokio::time::timeout(START_LIMIT, qmp_handshake(&qmp));
        let early_exit = child.wait();
        let (qmp_lines, qmp_write) = tokio::select! {
            r = ready => match r {
                Ok(Ok(qmp)) => qmp,
                Ok(Err(e)) => return Err(fail("QMP handshake with QEMU failed".into(), e)),
                Err(_) => return Err(fail(
                    format!("QEMU did not report within {START_LIMIT:?}"),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                )),
            },
            status = early_exit => {
                let mut msg = String::new();
                if let Some(mut s) = stderr.take() {
                    use tokio::io::AsyncReadExt as _;
                    let _ = s.read_to_string(&mut msg).await;
                }
                let collision = msg.contains("host forwarding");
                let status = status.map(|s| s.to_string()).unwrap_or_default();
                return Err((
                    crate::io_error(
                        format!("QEMU exited at start ({status}): {}", msg.trim()),
                        std::io::Error::other("qemu exited"),
                    ),
                    collision,
                ));
            }
        };
        if let Some(s) = stderr {
            // Keep draining so QEMU never blocks on a full pipe.
            tokio::spawn(async move {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "vmssh_testkit::qemu", "qemu: {line}");
                }
            });
        }
        let (resets_tx, resets) = watch::channel(0u64);
        let events = tokio::spawn(count_resets(qmp_lines, resets_tx));
        Ok(Guest {
            child,
            port,
            ssh: self.ssh,
            image: self.image.clone(),
            started,
            console,
            resets,
            events,
            _qmp: qmp_write,
            _dir: dir,
        })
    }
}

type QmpLines = tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>;

/// Accepts QEMU's QMP connection and leaves command mode negotiated; the
/// returned lines carry QMP events from then on. The write half must stay
/// open, or QEMU takes the monitor as gone.
async fn qmp_handshake(listener: &UnixListener) -> std::io::Result<(QmpLines, OwnedWriteHalf)> {
    let (stream, _) = listener.accept().await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    // The greeting, then the answer to qmp_capabilities.
    next_line(&mut lines).await?;
    write
        .write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .await?;
    loop {
        let line = next_line(&mut lines).await?;
        if line.contains("\"return\"") {
            break;
        }
        if line.contains("\"error\"") {
            return Err(std::io::Error::other(line));
        }
    }
    Ok((lines, write))
}

async fn next_line(lines: &mut QmpLines) -> std::io::Result<String> {
    lines
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
}

async fn count_resets(mut lines: QmpLines, resets: watch::Sender<u64>) {
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("\"event\": \"RESET\"") || line.contains("\"event\":\"RESET\"") {
            resets.send_modify(|n| *n += 1);
        }
    }
}

fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| crate::io_error("cannot find a free port", e))
}

/// A running QEMU guest, killed (by PID) when dropped.
///
/// # Drop behavior
///
/// Dropping the guest kills its QEMU process at once, like pulling the
/// power: sessions to it see the connection lost.
pub struct Guest {
    child: Child,
    port: u16,
    ssh: GuestSsh,
    image: Image,
    started: Instant,
    console: PathBuf,
    resets: watch::Receiver<u64>,
    events: tokio::task::JoinHandle<()>,
    _qmp: OwnedWriteHalf,
    _dir: GuestDir,
}

impl fmt::Debug for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guest")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .field("ssh", &self.ssh)
            .finish_non_exhaustive()
    }
}

impl Guest {
    /// Where the guest's SSH port is forwarded: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The forwarded host port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SSH server the guest runs.
    pub fn ssh(&self) -> GuestSsh {
        self.ssh
    }

    /// QEMU's process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// When QEMU was started.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// [`Image::config`]: root with the image's key, the host key pinned.
    pub fn config(&self) -> SshConfig {
        self.image.config()
    }

    /// The guest's serial console so far (kernel and init messages, the
    /// SSH server's log).
    pub fn console(&self) -> String {
        std::fs::read(&self.console)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// How many times the guest has reset (rebooted) so far.
    pub fn resets(&self) -> u64 {
        *self.resets.borrow()
    }

    /// Resolves once the guest has reset more than `seen` times in total
    /// (pass [`resets`](Self::resets) taken before causing the reboot).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when QEMU has gone away first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_reset(&self, seen: u64) -> Result<(), Error> {
        let mut rx = self.resets.clone();
        rx.wait_for(|n| *n > seen)
            .await
            .map(|_| ())
            .map_err(|_| crate::io_error("waiting for the guest to reset", gone()))
    }

    /// Reboots the guest from inside (`reboot -f` over a session of its
    /// own) and resolves once QEMU reports the reset. Sessions to the guest
    /// are not told: they find out when they next send something.
    ///
    /// The session is made with [`Session::connect_with_retry`] (within
    /// [`REBOOT_CONNECT_DEADLINE`]): a guest still booting, or whose sshd
    /// refuses this host for a while (OpenSSH 10's `PerSourcePenalties`),
    /// is waited for as any client waits for it.
    ///
    /// # Errors
    ///
    /// Connecting errors, or [`Error::Io`] when QEMU has gone away.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the reboot requested or not.
    pub async fn reboot(&self) -> Result<(), Error> {
        let seen = self.resets();
        let sess =
            Session::connect_with_retry(HOST, self.port, &self.config(), REBOOT_CONNECT_DEADLINE)
                .await?;
        // The command never ends: the kernel goes away under it.
        let stream = sess.exec_streaming("reboot -f").await?;
        let reset = self.wait_reset(seen).await;
        drop(stream);
        drop(sess);
        reset
    }

    /// Kills QEMU and waits for it to exit.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the process cannot be killed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the process is killed when the guest is dropped anyway.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.child
            .kill()
            .await
            .map_err(|e| crate::io_error("cannot kill QEMU", e))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.events.abort();
    }
}

/// The guest's console log and QMP socket, removed on drop.
#[derive(Debug)]
struct GuestDir(PathBuf);

impl GuestDir {
    fn create() -> std::io::Result<GuestDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vmssh-guest-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        Ok(GuestDir(dir))
    }
}

impl Drop for GuestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "QEMU has exited")
}
