//! Real QEMU guests for the real-VM tests (`tests/vm_*.rs`): the images
//! built by `scripts/vm-image.sh` (Debian 12's under `target/vm-image`,
//! Debian 13's under `target/vm-image-trixie`), booted through
//! [`vmssh_testkit::qemu`] (the same launcher as the fleet example's
//! `--qemu`), killed by PID when dropped.
//!
//! Tests that boot guests carry
//! `#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]`
//! (or `vmssh_have_qemu_trixie` for the Debian 13 image; build.rs probes
//! for QEMU and each image); run under nextest's `vm` test group, at most
//! two guests run at once.

use std::path::PathBuf;
use std::time::Duration;

use vmssh::{Session, SshConfig};
use vmssh_testkit::qemu::{Guest, GuestSsh, Image};

/// The deadline for a guest's first session (boot under TCG takes a few
/// seconds; a loaded machine takes longer).
pub const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// The Debian release a guest image is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Debian 12: OpenSSH 9.2p1, dropbear 2022.83.
    Bookworm,
    /// Debian 13: OpenSSH 10.0p2 (`PerSourcePenalties` on, as shipped),
    /// dropbear 2025.89.
    Trixie,
}

impl Release {
    /// The image directory, as `scripts/vm-image.sh --suite SUITE` writes it.
    pub fn image_dir(self) -> PathBuf {
        let dir = match self {
            Release::Bookworm => "vm-image",
            Release::Trixie => "vm-image-trixie",
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(dir)
    }

    /// The image, panicking with what to do when it has not been built.
    pub fn image(self) -> Image {
        Image::open(self.image_dir()).unwrap_or_else(|e| {
            panic!("{e}: run ./scripts/deps/40-qemu.sh (installs QEMU, builds the images)")
        })
    }

    /// Boots a guest running `ssh`, panicking (with QEMU's message) on
    /// failure. Debian 13's sshd logs at `VERBOSE`, so that its console
    /// (printed when a test fails) shows every penalty it hands out.
    pub async fn boot(self, ssh: GuestSsh, hostname: &str) -> Guest {
        let mut guest = self.image().guest().ssh(ssh).hostname(hostname);
        if self == Release::Trixie {
            guest = guest.sshd_log_level("VERBOSE");
        }
        guest
            .boot()
            .await
            .unwrap_or_else(|e| panic!("cannot boot a {self:?} {ssh:?} guest: {e}"))
    }
}

/// The Debian 12 image directory.
pub fn image_dir() -> PathBuf {
    Release::Bookworm.image_dir()
}

/// The Debian 12 image, panicking with what to do when it has not been
/// built.
pub fn image() -> Image {
    Release::Bookworm.image()
}

/// Both servers a guest can run, for tests that cover each.
pub const BOTH: [GuestSsh; 2] = [GuestSsh::OpenSsh, GuestSsh::Dropbear];

/// Boots a Debian 12 guest running `ssh`, panicking (with QEMU's message)
/// on failure.
pub async fn boot(ssh: GuestSsh, hostname: &str) -> Guest {
    Release::Bookworm.boot(ssh, hostname).await
}

/// Settings for tests: the image's key and pinned host key, keepalives
/// every 2 s so that a rebooted guest is noticed within seconds.
pub fn config(guest: &Guest) -> SshConfig {
    guest
        .config()
        .keepalive_interval(Some(Duration::from_secs(2)))
        .keepalive_max(3)
}

/// Connects with retry (the guest may still be booting), panicking with
/// the guest's console on failure.
pub async fn connect(guest: &Guest, cfg: &SshConfig) -> Session {
    match Session::connect_with_retry(guest.host(), guest.port(), cfg, BOOT_DEADLINE).await {
        Ok(s) => s,
        Err(e) => panic!(
            "no session to the {:?} guest within {BOOT_DEADLINE:?}: {e}\nconsole:\n{}",
            guest.ssh(),
            guest.console()
        ),
    }
}

/// The guest's boot id: a new one after every reboot.
pub async fn boot_id(sess: &Session) -> String {
    let out = sess
        .exec("cat /proc/sys/kernel/random/boot_id")
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
