//! Finds the real servers the integration tests start, so that a test whose
//! server is missing is reported by the test runner as *ignored* (skipped),
//! never as a pass. It is the tests package's alone: the library has no
//! build script.
//!
//! Each probe sets `cfg(vmssh_have_NAME)` when all of its binaries exist.
//! Tests that need one carry
//! `#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]`.
//! With `VMSSH_REQUIRE_SERVERS=1` (as `scripts/test.sh` sets) a missing
//! probe fails the build instead: CI never skips.
//!
//! The library itself uses none of these cfgs.

use std::path::{Path, PathBuf};

/// `(cfg name, what it is, binaries that must all exist)`. A binary is
/// looked up on `PATH` and in the system directories, or taken as given
/// when it is a path (relative paths are relative to the workspace: the
/// guest image and the Python environments are built under `target/`).
const PROBES: &[(&str, &str, &[&str])] = &[
    (
        "sshd",
        "OpenSSH sshd (Debian: openssh-server)",
        &["sshd", "ssh-keygen"],
    ),
    (
        "dropbear",
        "dropbear (Debian: dropbear-bin)",
        &["dropbear", "dropbearkey", "ssh-keygen"],
    ),
    (
        "agent",
        "ssh-agent (Debian: openssh-client)",
        &["ssh-agent", "ssh-add"],
    ),
    (
        "openssh_client",
        "OpenSSH's clients (Debian: openssh-client)",
        &["ssh", "sftp", "scp", "ssh-keygen"],
    ),
    (
        "qemu",
        "QEMU and the real-VM image (scripts/deps/40-qemu.sh installs and builds both)",
        &[
            "qemu-system-x86_64",
            "target/vm-image/vmlinuz",
            "target/vm-image/initrd.img",
            "target/vm-image/id_ed25519",
        ],
    ),
    (
        "qemu_trixie",
        "QEMU and the Debian 13 real-VM image (scripts/deps/40-qemu.sh installs and builds both)",
        &[
            "qemu-system-x86_64",
            "target/vm-image-trixie/vmlinuz",
            "target/vm-image-trixie/initrd.img",
            "target/vm-image-trixie/id_ed25519",
        ],
    ),
    (
        "asyncssh",
        "asyncssh's server (PyPI, in target/asyncssh: scripts/deps/30-asyncssh.sh)",
        &[
            "target/asyncssh/bin/python3",
            "target/asyncssh/installed",
            "ssh-keygen",
        ],
    ),
    (
        "sudo",
        "sudo and OpenSSH sshd (Debian: sudo, openssh-server)",
        &["sudo", "visudo", "sshd", "ssh-keygen"],
    ),
    (
        "parallel",
        "GNU parallel (Debian: parallel), for docs/sharding.md's commands",
        &["parallel"],
    ),
    (
        "kubernetes_validate",
        "kubernetes-validate (PyPI, in target/kubernetes-validate: scripts/deps/60-kubernetes-validate.sh)",
        &[
            "target/kubernetes-validate/bin/kubernetes-validate",
            "target/kubernetes-validate/installed",
        ],
    ),
    (
        "tinysshd",
        "tinysshd (Debian: tinysshd)",
        &[
            "tinysshd",
            "tinysshd-makekey",
            "tinysshd-printkey",
            "ssh-keygen",
        ],
    ),
];

const SYSTEM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/lib/openssh"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=VMSSH_REQUIRE_SERVERS");
    println!("cargo::rerun-if-env-changed=PATH");
    let required =
        std::env::var_os("VMSSH_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty() && v != "0");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut missing_required = Vec::new();
    for (name, what, bins) in PROBES {
        println!("cargo::rustc-check-cfg=cfg(vmssh_have_{name})");
        let mut missing = Vec::new();
        for bin in *bins {
            match find(bin, &workspace) {
                Some(path) => println!("cargo::rerun-if-changed={}", path.display()),
                None => missing.push(*bin),
            }
        }
        if missing.is_empty() {
            println!("cargo::rustc-cfg=vmssh_have_{name}");
        } else {
            // Installing the binary changes its directory: probe again then.
            for dir in watch_dirs(bins, &workspace) {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
            println!(
                "cargo::warning=tests needing {what} will be reported as ignored: {} not found",
                missing.join(", ")
            );
            missing_required.push(format!("{what}: {} not found", missing.join(", ")));
        }
    }
    if required && !missing_required.is_empty() {
        eprintln!(
            "VMSSH_REQUIRE_SERVERS is set but some test servers are missing:\n  {}\n\
             run ./scripts/test.sh (it installs them) or install them by hand",
            missing_required.join("\n  ")
        );
        std::process::exit(1);
    }
}

fn find(bin: &str, workspace: &Path) -> Option<PathBuf> {
    if bin.contains('/') {
        let p = workspace.join(bin);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

/// What to watch for a binary that is missing, so that installing it
/// probes again. Never a path that may not exist: cargo counts a missing
/// path as changed, and would rerun this script (and rebuild every test)
/// at every build. A missing file under `target/` is watched through its
/// directory, created here when absent (the scripts that build the guest
/// image and the Python environments write into it); never `target/`
/// itself, which every build changes.
///
/// A directory created here is dated back to the epoch: cargo reruns a
/// script when a watched path is newer than the script's start, so a
/// directory made during the run would cost the second build of a fresh
/// checkout a rebuild of every test. Installing into it dates it anew.
fn watch_dirs(bins: &[&str], workspace: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut created: Vec<PathBuf> = Vec::new();
    for bin in bins {
        if bin.contains('/') {
            if let Some(dir) = workspace.join(bin).parent() {
                if !dir.exists() {
                    created.push(dir.to_path_buf());
                }
                dirs.push(dir.to_path_buf());
            }
        } else {
            dirs.extend(["/usr/sbin", "/usr/bin"].map(PathBuf::from));
        }
    }
    // Create them all first: making one may change another's parent.
    for dir in &created {
        let _ = std::fs::create_dir_all(dir);
    }
    for dir in &created {
        let _ = std::fs::File::open(dir)
            .and_then(|d| d.set_modified(std::time::SystemTime::UNIX_EPOCH));
    }
    dirs.retain(|d| d.is_dir());
    dirs.sort();
    dirs.dedup();
    dirs
}
