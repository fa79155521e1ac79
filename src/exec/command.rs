//! The [`Command`] builder: what to run and how.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::channel;
use crate::error::Error;
use crate::quote::shell_quote;
use crate::secret::Secret;
use crate::sudo::Markers;

/// A command with what [`Session::exec`](crate::Session::exec) cannot say: environment, stdin,
/// a pseudo-terminal, a timeout.
///
/// # Example
///
/// ```no_run
/// # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
/// use std::time::Duration;
/// use vmssh::Command;
///
/// let cmd = Command::new("sort")
///     .env("LC_ALL", "C")
///     .stdin_bytes("b\na\n")
///     .timeout(Duration::from_secs(30));
/// let out = sess.exec_command(cmd).await?;
/// assert_eq!(out.stdout, b"a\nb\n");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Command {
    command: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) stdin: Option<Stdin>,
    pub(super) pty: bool,
    pub(super) sudo: bool,
    pub(super) sudo_password: Option<Secret>,
    pub(super) timeout: Option<Duration>,
    pub(super) idempotent: bool,
    stoppable: bool,
    pub(super) max_output: Option<usize>,
    pub(super) forward_agent: Option<bool>,
}

pub(super) enum Stdin {
    Bytes(Bytes),
    Reader(Box<dyn AsyncRead + Send + Unpin + 'static>),
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command", &self.command)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("stdin", &self.stdin.is_some())
            .field("pty", &self.pty)
            .field("sudo", &self.sudo)
            .field("sudo_password", &self.sudo_password)
            .field("timeout", &self.timeout)
            .field("idempotent", &self.idempotent)
            .field("stoppable", &self.stoppable)
            .field("max_output", &self.max_output)
            .field("forward_agent", &self.forward_agent)
            .finish()
    }
}

impl Command {
    /// A command line, run by the remote user's shell.
    pub fn new(command: impl Into<String>) -> Self {
        Command {
            command: command.into(),
            env: Vec::new(),
            stdin: None,
            pty: false,
            sudo: false,
            sudo_password: None,
            timeout: None,
            idempotent: false,
            stoppable: true,
            max_output: None,
            forward_agent: None,
        }
    }

    /// Sets whether this command gets the forwarded agent, whatever the
    /// session's [`SshConfig::forward_agent`](crate::SshConfig::forward_agent)
    /// says (its security note applies). The agent is reachable from the
    /// server while the command runs, and no longer once its channel is
    /// closed.
    ///
    /// Default: the session's setting.
    pub fn forward_agent(mut self, on: bool) -> Self {
        self.forward_agent = Some(on);
        self
    }

    /// Adds an environment variable for the command.
    ///
    /// The value never appears on a remote command line (where any user
    /// of the VM could read it in `ps`): it travels over the command's
    /// stdin, ahead of the data, to a few lines of POSIX shell that export
    /// it before the command runs. With a [`pty`](Self::pty), where stdin
    /// passes through a terminal, variables are sent as SSH `env` requests
    /// instead, and a server that refuses one (OpenSSH's default
    /// `AcceptEnv` lets few through) fails the command with
    /// [`Error::RequestRefused`].
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets bytes to write to the command's stdin, followed by end-of-file.
    ///
    /// Default: empty stdin (end-of-file at once).
    pub fn stdin_bytes(mut self, data: impl Into<Bytes>) -> Self {
        self.stdin = Some(Stdin::Bytes(data.into()));
        self
    }

    /// Sets a reader copied to the command's stdin as the command runs,
    /// followed by end-of-file.
    pub fn stdin_reader(mut self, reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.stdin = Some(Stdin::Reader(Box::new(reader)));
        self
    }

    /// Sets whether the command runs on a pseudo-terminal (stderr then
    /// arrives merged into stdout, with terminal line endings).
    ///
    /// Default: no pseudo-terminal.
    pub fn pty(mut self, on: bool) -> Self {
        self.pty = on;
        self
    }

    /// Sets whether the command runs as root through `sudo -n` (for
    /// guests where the SSH user is not root), environment included:
    /// the variables are exported inside `sudo`, so that its `env_reset`
    /// does not drop them. `sudo -n` fails rather than asking for a
    /// password; give one with [`sudo_password`](Self::sudo_password).
    ///
    /// Default: false.
    pub fn sudo(mut self, on: bool) -> Self {
        self.sudo = on;
        self
    }

    /// Runs the command through sudo (as [`sudo(true)`](Self::sudo)),
    /// answering sudo's password prompt with `password`, for guests whose
    /// sudoers asks for one (Ansible's `become` password).
    ///
    /// The password travels only over the channel's stdin, to `sudo -S`,
    /// and only once sudo has asked for it: never on a command line (where
    /// `ps` shows it), in the environment, a log line, an error or a
    /// report. vmssh holds the command's stdin (and environment) back
    /// until sudo has either asked or started the command, so the command
    /// reads its own stdin, untouched, whether sudo needed the password or
    /// not (`NOPASSWD`). sudo's prompt is taken out of stderr. A cached
    /// sudo timestamp is ignored (`sudo -k`): the password is checked
    /// every time.
    ///
    /// A wrong password ends the command with
    /// [`Error::SudoPasswordRejected`] (sudo asked again; the command did
    /// not run). Anything else sudo refuses (a user not in sudoers, sudo
    /// missing) ends it with sudo's exit status and message, as with
    /// `sudo -n`. Not on a [`pty`](Self::pty) ([`Error::Config`]), and a
    /// password with a line break or a NUL cannot be typed to sudo
    /// ([`Error::Config`]). A sudo that asks something else than the
    /// password (a PAM challenge, or sudoers' `!passprompt_override` with
    /// a PAM prompt of its own) is never answered: set a
    /// [`timeout`](Self::timeout).
    ///
    /// Default: none (`sudo -n`).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
    /// use vmssh::{Command, Secret};
    ///
    /// let password = Secret::new(std::env::var("BECOME_PASS").unwrap_or_default());
    /// let out = sess
    ///     .exec_command(
    ///         Command::new("apt-get update")
    ///             .sudo(true)
    ///             .sudo_password(password.clone()),
    ///     )
    ///     .await?;
    /// assert!(out.status.success());
    /// # Ok(()) }
    /// ```
    pub fn sudo_password(mut self, password: impl Into<Secret>) -> Self {
        self.sudo = true;
        self.sudo_password = Some(password.into());
        self
    }

    /// Sets a limit: the command fails with [`Error::CommandTimeout`] and
    /// its channel is closed when it has not finished after `timeout`.
    ///
    /// Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the most bytes [`Session::exec_command`](crate::Session::exec_command) collects for this
    /// command (stdout and stderr together) before failing with
    /// [`Error::OutputTooLarge`] and closing its channel, instead of the
    /// session's [`SshConfig::max_output`](crate::SshConfig::max_output).
    /// Streamed output ([`Session::exec_streaming_command`](crate::Session::exec_streaming_command)) is never
    /// collected, so never capped.
    ///
    /// Default: the session's limit (64 MiB unless set).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
    /// use vmssh::Command;
    ///
    /// // A database dump, collected whole.
    /// let dump = sess
    ///     .exec_command(Command::new("pg_dump app").max_output(1 << 30))
    ///     .await?;
    /// # let _ = dump; Ok(()) }
    /// ```
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = Some(bytes);
        self
    }

    /// Declares that running the command twice is harmless (a read, a
    /// `rm -f`, a `mkdir -p`).
    ///
    /// A server may close a channel without answering its exec request:
    /// dropbear up to 2024.85 does so when another process of the same
    /// connection exits just as the channel opens, and may still run the
    /// command. An idempotent command is then started again on a fresh
    /// channel; any other fails with [`Error::Protocol`], since it may
    /// have run, and is never sent twice.
    ///
    /// Default: false.
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }

    /// Sets whether an abandoned command is stopped even where the server
    /// ignores the SSH `signal` request (OpenSSH for root logins,
    /// tinysshd).
    ///
    /// A command is abandoned when its stream or future is dropped before
    /// it ended: a [`timeout`](Self::timeout), a stopped or failed fleet,
    /// a cancelled task. The server is asked to send it SIGTERM; when the
    /// command is still running half a second later, vmssh stops its
    /// process group (SIGTERM, then SIGKILL a second later) with a command
    /// on a second channel of the session. To know the group, the command
    /// line starts with a POSIX `printf` of the shell's PID on stderr,
    /// which vmssh takes off stderr before you see it. Turn this off for a
    /// login shell that is not POSIX (fish, csh); a command on a
    /// [`pty`](Self::pty) never needs it (the terminal's hang-up stops
    /// it).
    ///
    /// Default: true.
    pub fn stoppable(mut self, on: bool) -> Self {
        self.stoppable = on;
        self
    }

    /// Checks the environment: names a shell accepts, values without NUL,
    /// and a way to reach the command.
    pub(super) fn check(&self) -> Result<(), Error> {
        if let Some(password) = self.sudo_password.as_ref().filter(|_| self.sudo) {
            if self.pty {
                return Err(Error::Config {
                    reason: "a sudo password cannot be given on a pty".to_string(),
                });
            }
            if password.expose().contains(['\n', '\r', '\0']) {
                return Err(Error::Config {
                    reason: "the sudo password contains a line break or a NUL byte".to_string(),
                });
            }
        }
        if self.sudo && self.pty && !self.env.is_empty() {
            // On a pty they go as `env` requests, which sudo drops.
            return Err(Error::Config {
                reason: "environment variables cannot reach a sudo command on a pty".to_string(),
            });
        }
        for (key, value) in &self.env {
            if !valid_env_name(key) {
                return Err(Error::Config {
                    reason: format!("invalid environment variable name {key:?}"),
                });
            }
            if value.contains('\0') {
                return Err(Error::Config {
                    reason: format!("environment variable {key} contains a NUL byte"),
                });
            }
        }
        Ok(())
    }

    /// The markers of a sudo that is given a password.
    pub(super) fn sudo_markers(&self) -> Option<Markers> {
        (self.sudo && self.sudo_password.is_some()).then(Markers::new)
    }

    /// The remote command line and the bytes to send ahead of stdin.
    pub(super) fn remote_line(&self, markers: Option<&Markers>) -> (String, Option<Bytes>) {
        let (line, preamble) = if self.env.is_empty() || self.pty {
            (self.command.clone(), None)
        } else {
            (
                format!("{ENV_READER}{}", self.command),
                Some(env_preamble(&self.env)),
            )
        };
        // The env reader runs inside sudo, past its env_reset.
        let line = match (self.sudo, markers) {
            (true, Some(markers)) => markers.line(&line),
            (true, None) => format!("sudo -n -- sh -c {}", shell_quote(&line)),
            (false, _) => line,
        };
        if self.stoppable && !self.pty {
            // The shell's PID, for stopping its process group (sudo, in
            // it, passes a signal on).
            return (format!("{}{line}", channel::ANNOUNCE), preamble);
        }
        (line, preamble)
    }
}

/// Reads `NAME=VALUE` lines from stdin up to an empty line, each value
/// escaped for `printf %b`, and exports them; byte by byte (as shells read
/// pipes), so the command's own stdin follows untouched. POSIX shell.
const ENV_READER: &str = "while IFS= read -r __vmssh_kv && [ -n \"$__vmssh_kv\" ]; do \
     __vmssh_v=$(printf '%bx' \"${__vmssh_kv#*=}\"); \
     export \"${__vmssh_kv%%=*}=${__vmssh_v%x}\"; done; unset __vmssh_kv __vmssh_v; ";

/// The lines [`ENV_READER`] reads: every byte that is not plainly safe
/// becomes an octal `\0NNN` escape, so a value is one line of ASCII.
pub(super) fn env_preamble(env: &[(String, String)]) -> Bytes {
    let mut out = Vec::new();
    for (key, value) in env {
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        for &b in value.as_bytes() {
            if b.is_ascii_alphanumeric() || b"_-./:,+@".contains(&b) {
                out.push(b);
            } else {
                out.extend_from_slice(format!("\\0{b:03o}").as_bytes());
            }
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

pub(super) fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
