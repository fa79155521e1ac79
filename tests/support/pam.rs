//! A local user made for one test, with a password, for PAM logins
//! (keyboard-interactive). Created with `useradd`, removed with `userdel`
//! when dropped; real users are never touched. Needs root.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A throwaway local user.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    password: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestUser {
    /// Creates a user `vmsshtNNNN_K` (no home directory, `/bin/sh`) with a
    /// random password. Panics when not root or when `useradd` fails.
    pub fn create() -> TestUser {
        assert!(
            super::is_root(),
            "PAM tests create a local user and must run as root"
        );
        let name = format!(
            "vmsshkbd{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let password = format!("pw-{:016x}", rand_u64());
        run(
            "useradd",
            &["-M", "-N", "-d", "/", "-s", "/bin/sh", &name],
            None,
        );
        let user = TestUser { name, password };
        run(
            "chpasswd",
            &[],
            Some(&format!("{}:{}\n", user.name, user.password)),
        );
        user
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Only ever this user, created above.
        let _ = Command::new("userdel")
            .arg("-f")
            .arg(&self.name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

fn run(bin: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A [`TestUser`] with a rule of its own in `/etc/sudoers.d`, removed
/// (before the user) when dropped.
#[derive(Debug)]
pub struct SudoUser {
    user: TestUser,
    rule: std::path::PathBuf,
}

impl SudoUser {
    /// A user whom sudo lets run anything as root after asking for the
    /// user's password (`USER ALL=(ALL) ALL`).
    pub fn with_password() -> SudoUser {
        Self::with_rule("ALL=(ALL) ALL")
    }

    /// A user whom sudo lets run anything as root without a password
    /// (`USER ALL=(ALL) NOPASSWD: ALL`).
    pub fn without_password() -> SudoUser {
        Self::with_rule("ALL=(ALL) NOPASSWD: ALL")
    }

    fn with_rule(rule: &str) -> SudoUser {
        let user = TestUser::create();
        let dir = std::path::Path::new("/etc/sudoers.d");
        // sudo skips names with a dot: the file appears whole, by rename,
        // so that a sudo running meanwhile (another test) never reads half
        // a rule. `visudo -c` checks it first.
        let name = format!("vmssh-test-{}", user.name());
        let staged = dir.join(format!("{name}.new"));
        std::fs::write(&staged, format!("{} {rule}\n", user.name())).unwrap();
        std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o440))
            .unwrap();
        run(
            "visudo",
            &["-c", "-q", "-f", &staged.display().to_string()],
            None,
        );
        let path = dir.join(name);
        std::fs::rename(&staged, &path).unwrap();
        SudoUser { user, rule: path }
    }

    /// The user name.
    pub fn name(&self) -> &str {
        self.user.name()
    }

    /// The password (the user's own, which sudo asks for).
    pub fn password(&self) -> &str {
        self.user.password()
    }
}

impl Drop for SudoUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rule);
    }
}
