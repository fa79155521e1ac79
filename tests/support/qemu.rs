//! Real QEMU guests for the real-VM tests (`tests/vm_*.rs`): the image
//! built by `scripts/vm-image.sh` under `target/vm-image`, booted through
//! [`vmssh_testkit::qemu`] (the same launcher as the fleet example's
//! `--qemu`), killed by PID when dropped.
//!
//! Tests that boot guests carry
//! `#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]`
//! (build.rs probes for both); run under nextest's `vm` test group, at most
//! two guests run at once.

use std::path::PathBuf;
use std::time::Duration;

use vmssh::{Session, SshConfig};
use vmssh_testkit::qemu::{Guest, GuestSsh, Image};

/// The deadline for a guest's first session (boot under TCG takes a few
/// seconds; a loaded machine takes longer).
pub const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// The image directory, as `scripts/vm-image.sh` writes it.
pub fn image_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/vm-image")
}

/// The image, panicking with what to do when it has not been built.
pub fn image() -> Image {
    Image::open(image_dir()).unwrap_or_else(|e| {
        panic!("{e}: run ./scripts/deps/40-qemu.sh (installs QEMU, builds the image)")
    })
}

/// Both servers a guest can run, for tests that cover each.
pub const BOTH: [GuestSsh; 2] = [GuestSsh::OpenSsh, GuestSsh::Dropbear];

/// Boots a guest running `ssh`, panicking (with QEMU's message) on failure.
pub async fn boot(ssh: GuestSsh, hostname: &str) -> Guest {
    image()
        .guest()
        .ssh(ssh)
        .hostname(hostname)
        .boot()
        .await
        .unwrap_or_else(|e| panic!("cannot boot a {ssh:?} guest: {e}"))
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
