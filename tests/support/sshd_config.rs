//! The sshd_config every OpenSSH test server starts from: loopback only,
//! its own host key and authorized_keys, no PAM, root allowed, public keys
//! only unless asked, and `PermitUserEnvironment SHLVL` (with
//! `environment="SHLVL=1"` in authorized_keys: root's slow `.bashrc` is not
//! sourced for every command, see DESIGN.md).
//!
//! Shared by the test fixtures (`tests/support`) and the benches
//! (`benches/compare/sshd.rs` includes this file by path), so it uses
//! nothing but std.

use std::fmt::Write as _;
use std::path::Path;

/// What differs between the servers built on the common config.
#[derive(Debug, Clone)]
pub struct SshdConfig<'a> {
    /// `ListenAddress` host (the tests' and benches' `127.0.0.1`).
    pub host: &'a str,
    pub port: u16,
    pub host_key: &'a Path,
    pub authorized_keys: &'a Path,
    /// `Subsystem sftp` program; `None`: no SFTP subsystem.
    pub sftp_server: Option<&'a Path>,
    pub password_auth: bool,
    /// `MaxStartups` (the tests: `200`; the benches' bursts: more).
    pub max_startups: &'a str,
    /// `MaxSessions` (OpenSSH's default is 10).
    pub max_sessions: u32,
    pub log_level: &'a str,
}

impl SshdConfig<'_> {
    /// The config text. sshd keeps the first value it reads of a keyword:
    /// `first` lines override the common ones, later lines only add.
    pub fn render(&self, first: &[&str]) -> String {
        let mut c = String::new();
        for line in first {
            let _ = writeln!(c, "{line}");
        }
        let _ = write!(
            c,
            "ListenAddress {host}:{port}\n\
             HostKey {hk}\n\
             PidFile none\n\
             UsePAM no\n\
             StrictModes no\n\
             AuthorizedKeysFile {ak}\n\
             PermitRootLogin yes\n\
             PermitUserEnvironment SHLVL\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication {pw}\n\
             KbdInteractiveAuthentication no\n\
             MaxStartups {mst}\n\
             MaxSessions {ms}\n\
             LogLevel {ll}\n",
            host = self.host,
            port = self.port,
            hk = self.host_key.display(),
            ak = self.authorized_keys.display(),
            pw = if self.password_auth { "yes" } else { "no" },
            mst = self.max_startups,
            ms = self.max_sessions,
            ll = self.log_level,
        );
        if let Some(sftp) = self.sftp_server {
            let _ = writeln!(c, "Subsystem sftp {}", sftp.display());
        }
        c
    }
}
