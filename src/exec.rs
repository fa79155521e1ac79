//! Running commands: collected ([`Session::exec`]) or streamed
//! ([`Session::exec_streaming`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agent_forward::push_agent_request;
/// Why a command did not start, and whether its request went out.
pub(crate) use crate::channel::StartError;
use crate::channel::{self, ChannelLease, ChannelWriter, Closing, Request};
use crate::error::Error;
pub(crate) use crate::quote::shell_quote;
use crate::secret::Secret;
use crate::session::Session;
pub use crate::status::ExitStatus;
use crate::sudo::{Gate, GateEvent, Markers};

/// A piece of a command's output, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Chunk {
    /// Bytes the command wrote to its standard output.
    Stdout(Bytes),
    /// Bytes the command wrote to its standard error.
    Stderr(Bytes),
}

impl Chunk {
    /// The bytes, whichever stream they came from.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Chunk::Stdout(b) | Chunk::Stderr(b) => b,
        }
    }

    /// Whether this chunk came from standard error.
    pub fn is_stderr(&self) -> bool {
        matches!(self, Chunk::Stderr(_))
    }
}

/// The collected result of [`Session::exec`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// Everything the command wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to standard error.
    pub stderr: Vec<u8>,
    /// How the command ended.
    pub status: ExitStatus,
}

impl Output {
    /// Standard output as text, with invalid UTF-8 replaced.
    pub fn stdout_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// Standard error as text, with invalid UTF-8 replaced.
    pub fn stderr_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// A command with what [`Session::exec`] cannot say: environment, stdin,
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
    env: Vec<(String, String)>,
    stdin: Option<Stdin>,
    pty: bool,
    sudo: bool,
    sudo_password: Option<Secret>,
    timeout: Option<Duration>,
    idempotent: bool,
    stoppable: bool,
    max_output: Option<usize>,
    forward_agent: Option<bool>,
}

enum Stdin {
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

    /// Sets the most bytes [`Session::exec_command`] collects for this
    /// command (stdout and stderr together) before failing with
    /// [`Error::OutputTooLarge`] and closing its channel, instead of the
    /// session's [`SshConfig::max_output`](crate::SshConfig::max_output).
    /// Streamed output ([`Session::exec_streaming_command`]) is never
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
    fn check(&self) -> Result<(), Error> {
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
    fn sudo_markers(&self) -> Option<Markers> {
        (self.sudo && self.sudo_password.is_some()).then(Markers::new)
    }

    /// The remote command line and the bytes to send ahead of stdin.
    fn remote_line(&self, markers: Option<&Markers>) -> (String, Option<Bytes>) {
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
fn env_preamble(env: &[(String, String)]) -> Bytes {
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

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Session {
    /// Runs `command` and collects its output and exit status.
    ///
    /// # Errors
    ///
    /// [`Error::OutputTooLarge`] when stdout and stderr together exceed
    /// [`SshConfig::max_output`](crate::SshConfig::max_output) (for one
    /// command: [`Command::max_output`]);
    /// [`Error::ConnectionLost`] when the connection ends first;
    /// [`Error::MissingExitStatus`] when the server reports no status. A
    /// non-zero exit status is not an error: check `status`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the command's channel; output is lost.
    pub async fn exec(&self, command: &str) -> Result<Output, Error> {
        self.exec_command(Command::new(command)).await
    }

    /// Runs a [`Command`] and collects its output, as [`exec`](Self::exec).
    ///
    /// # Errors
    ///
    /// As [`exec`](Self::exec), plus [`Error::CommandTimeout`].
    ///
    /// # Cancel safety
    ///
    /// As [`exec`](Self::exec).
    pub async fn exec_command(&self, command: Command) -> Result<Output, Error> {
        self.exec_command_on(None, command).await
    }

    /// [`exec_command`](Self::exec_command), on `spare` when given: a
    /// channel whose program request was refused (see
    /// [`Started::Refused`](crate::channel::Started::Refused)).
    pub(crate) async fn exec_command_on(
        &self,
        spare: Option<ChannelLease>,
        command: Command,
    ) -> Result<Output, Error> {
        let limit = command.max_output.unwrap_or(self.inner.max_output);
        let mut stream = self.start_command_on(spare, command).await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if stdout.len() + stderr.len() + chunk.bytes().len() > limit {
                return Err(Error::OutputTooLarge {
                    host: self.host().to_string(),
                    port: self.port(),
                    limit,
                });
            }
            match chunk {
                Chunk::Stdout(b) => stdout.extend_from_slice(&b),
                Chunk::Stderr(b) => stderr.extend_from_slice(&b),
            }
        }
        let status = stream.exit_status().await?;
        Ok(Output {
            stdout,
            stderr,
            status,
        })
    }

    /// Starts `command` and returns its output as a stream of [`Chunk`]s.
    ///
    /// The stream yields every byte exactly once, in arrival order, until
    /// the server closes the channel (data sent after the exit status
    /// included); then [`ExecStream::exit_status`] tells how it ended.
    /// While the stream is not polled nothing more is read: the SSH window
    /// is not refilled and the remote process blocks on write.
    ///
    /// # Errors
    ///
    /// [`Error::ChannelOpen`] / [`Error::RequestRefused`] when the server
    /// will not run it; [`Error::ConnectionLost`] when the connection is
    /// gone. Errors after the start arrive through the stream.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the channel.
    pub async fn exec_streaming(&self, command: &str) -> Result<ExecStream, Error> {
        self.exec_streaming_command(Command::new(command)).await
    }

    /// Starts a [`Command`] and streams its output, as
    /// [`exec_streaming`](Self::exec_streaming).
    ///
    /// # Errors
    ///
    /// As [`exec_streaming`](Self::exec_streaming).
    ///
    /// # Cancel safety
    ///
    /// As [`exec_streaming`](Self::exec_streaming).
    pub async fn exec_streaming_command(&self, command: Command) -> Result<ExecStream, Error> {
        Ok(self.start_command(command).await?)
    }

    /// Starts a command, telling a failure before the exec request was
    /// sent (nothing ran) from one after it (the command may have run).
    pub(crate) async fn start_command(&self, command: Command) -> Result<ExecStream, StartError> {
        self.start_command_on(None, command).await
    }

    /// [`start_command`](Self::start_command), on `spare` when given: a
    /// channel whose program request was refused (see
    /// [`Started::Refused`](crate::channel::Started::Refused)).
    pub(crate) async fn start_command_on(
        &self,
        spare: Option<ChannelLease>,
        command: Command,
    ) -> Result<ExecStream, StartError> {
        command
            .check()
            .map_err(|error| StartError { error, sent: false })?;
        let markers = command.sudo_markers();
        let (line, preamble) = command.remote_line(markers.as_ref());
        let mut requests = Vec::new();
        push_agent_request(self.connection(), command.forward_agent, &mut requests);
        if command.pty {
            requests.extend(command.env.iter().map(|(k, v)| Request::Env(k, v)));
            requests.push(Request::Pty);
        }
        requests.push(match command.idempotent {
            true => Request::ExecIdempotent(&line),
            false => Request::Exec(&line),
        });
        let lease = match spare {
            Some(lease) => lease.restart(Closing::Terminate, &requests).await?,
            None => channel::start(self.connection(), Closing::Terminate, &requests).await?,
        };
        let writer = lease.writer().clone();
        let (sudo, password) = match (markers, command.sudo_password) {
            (Some(markers), Some(password)) => {
                // At most two events: a prompt, then a start or a second prompt.
                let (events, rx) = mpsc::channel(2);
                let gate = SudoGate {
                    gate: Gate::new(&markers),
                    events,
                };
                (Some(gate), Some((password, rx)))
            }
            _ => (None, None),
        };
        let stdin_task = match (preamble, command.stdin, password) {
            (None, None, None) => {
                writer
                    .eof()
                    .await
                    .map_err(|error| StartError { error, sent: true })?;
                None
            }
            (preamble, stdin, password) => Some(tokio::spawn(feed_stdin(
                writer.clone(),
                password,
                preamble,
                stdin,
            ))),
        };
        Ok(ExecStream {
            lease: Some(lease),
            writer,
            session: self.clone(),
            status: None,
            finished: false,
            sudo,
            sudo_rejected: false,
            closed: false,
            stdin_task,
            deadline: command
                .timeout
                .map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        })
    }
}

/// Answers sudo (with a password: see `sudo.rs`), then copies the env
/// preamble and stdin to the channel, then sends end-of-file. A read error
/// ends the task with that error and no end-of-file: the command must not
/// take a truncated input for a complete one. (A failed send means the
/// channel is gone; the stream reports that.)
async fn feed_stdin(
    writer: Arc<ChannelWriter>,
    sudo: Option<(Secret, mpsc::Receiver<GateEvent>)>,
    preamble: Option<Bytes>,
    stdin: Option<Stdin>,
) -> Result<(), std::io::Error> {
    let sent = async {
        if let Some((password, mut events)) = sudo {
            loop {
                match events.recv().await {
                    Some(GateEvent::Prompted) => {
                        let mut line = Vec::with_capacity(password.expose().len() + 1);
                        line.extend_from_slice(password.expose().as_bytes());
                        line.push(b'\n');
                        writer.data(Bytes::from(line)).await?;
                    }
                    Some(GateEvent::Started) => break,
                    // Wrong: end-of-file makes `sudo -S` give up.
                    Some(GateEvent::Rejected) => {
                        writer.eof().await?;
                        return Ok(Ok(()));
                    }
                    // The stream is gone.
                    None => return Ok(Ok(())),
                }
            }
        }
        if let Some(p) = preamble {
            writer.data(p).await?;
        }
        match stdin {
            None => {}
            Some(Stdin::Bytes(b)) => writer.data(b).await?,
            Some(Stdin::Reader(mut r)) => {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let n = match r.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => return Ok(Err(e)),
                    };
                    writer.data(Bytes::copy_from_slice(&buf[..n])).await?;
                }
            }
        }
        writer.eof().await?;
        Ok::<_, Error>(Ok(()))
    };
    sent.await.unwrap_or(Ok(()))
}

/// The live output of a remote command: a [`Stream`] of [`Chunk`]s, then
/// the exit status.
///
/// The stream is fused: after it returned `None` (or an error) it keeps
/// returning `None`.
///
/// # Drop behavior
///
/// Dropping the stream before it ended abandons the command: the server is
/// asked to send it SIGTERM, and the channel is closed in the background
/// once the server has closed it or after half a second. What reaches the
/// command depends on the server: dropbear delivers the signal; OpenSSH
/// delivers it only to non-root logins, but closes the command's pipes, so
/// a writer dies of SIGPIPE (a silent command runs on).
#[must_use = "a command's output must be read, or the command blocks"]
pub struct ExecStream {
    /// The channel, until the stream ended; dropping it closes the channel.
    lease: Option<ChannelLease>,
    writer: Arc<ChannelWriter>,
    session: Session,
    status: Option<ExitStatus>,
    finished: bool,
    /// Reading sudo's side off stderr, until the command starts.
    sudo: Option<SudoGate>,
    /// sudo asked for the password twice: the stream ends in an error.
    sudo_rejected: bool,
    /// The channel closed; held stderr was handed out first.
    closed: bool,
    stdin_task: Option<JoinHandle<Result<(), std::io::Error>>>,
    deadline: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

/// A command's sudo gate and the way to the task that answers sudo.
struct SudoGate {
    gate: Gate,
    events: mpsc::Sender<GateEvent>,
}

impl SudoGate {
    /// Takes stderr bytes; returns the caller's, whether the gate is done
    /// (the command started, or sudo gave up) and whether sudo rejected
    /// the password.
    fn feed(&mut self, data: &[u8]) -> (Bytes, bool, bool) {
        let (out, events) = self.gate.feed(data);
        let mut done = false;
        let mut rejected = false;
        for event in events {
            done |= event != GateEvent::Prompted;
            rejected |= event == GateEvent::Rejected;
            // Never full (two events at most); closed when the task is gone.
            let _ = self.events.try_send(event);
        }
        (out, done, rejected)
    }
}

impl fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecStream")
            .field("host", &self.session.host())
            .field("finished", &self.finished)
            .field("status", &self.status)
            .finish()
    }
}

impl ExecStream {
    /// Waits for the command to end and returns how it ended. Output not
    /// yet read is discarded.
    ///
    /// # Errors
    ///
    /// [`Error::MissingExitStatus`] when the channel closed without a
    /// status; any error the stream would have returned.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: call it again to keep waiting.
    pub async fn exit_status(&mut self) -> Result<ExitStatus, Error> {
        while let Some(chunk) = self.next().await {
            chunk?;
        }
        self.status.clone().ok_or_else(|| Error::MissingExitStatus {
            host: self.session.host().to_string(),
            port: self.session.port(),
        })
    }

    /// The exit status if it has arrived already, without waiting.
    pub fn try_exit_status(&self) -> Option<&ExitStatus> {
        self.status.as_ref()
    }

    /// Sends a signal to the remote command (`"TERM"`, `"INT"`, `"KILL"`...).
    /// OpenSSH's sshd honours this since 7.9; others may ignore it.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the connection is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn signal(&self, name: &str) -> Result<(), Error> {
        let sig = match name.trim_start_matches("SIG") {
            "ABRT" => Sig::ABRT,
            "ALRM" => Sig::ALRM,
            "FPE" => Sig::FPE,
            "HUP" => Sig::HUP,
            "ILL" => Sig::ILL,
            "INT" => Sig::INT,
            "KILL" => Sig::KILL,
            "PIPE" => Sig::PIPE,
            "QUIT" => Sig::QUIT,
            "SEGV" => Sig::SEGV,
            "TERM" => Sig::TERM,
            "USR1" => Sig::USR1,
            other => Sig::Custom(other.to_string()),
        };
        self.writer.signal(sig).await
    }

    /// Ends the stream; dropping the lease closes the channel as its
    /// state says (answered, drained or abandoned).
    fn finish(&mut self) {
        self.finished = true;
        self.lease = None;
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
    }

    /// Ends the stream once the channel closed: with the error of a
    /// rejected sudo password, or plainly.
    fn closed(&mut self) -> Poll<Option<Result<Chunk, Error>>> {
        self.finish();
        if self.sudo_rejected {
            return Poll::Ready(Some(Err(Error::SudoPasswordRejected {
                host: self.session.host().to_string(),
                port: self.session.port(),
                user: self.session.user().to_string(),
            })));
        }
        Poll::Ready(None)
    }

    /// Ends the stream early with an error, abandoning the command.
    fn fail(&mut self, err: Error) -> Poll<Option<Result<Chunk, Error>>> {
        self.finish();
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for ExecStream {
    type Item = Result<Chunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if this.closed {
            return this.closed();
        }
        if let Some((after, sleep)) = this.deadline.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            let err = Error::CommandTimeout {
                host: this.session.host().to_string(),
                port: this.session.port(),
                after: *after,
            };
            return this.fail(err);
        }
        if let Some(task) = this.stdin_task.as_mut()
            && let Poll::Ready(done) = Pin::new(task).poll(cx)
        {
            this.stdin_task = None;
            if let Ok(Err(source)) = done {
                return this.fail(Error::Io {
                    context: "cannot read the command's stdin".to_string(),
                    source,
                });
            }
        }
        loop {
            let Some(lease) = this.lease.as_mut() else {
                return Poll::Ready(None);
            };
            let msg = match lease.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(m) => m,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    return Poll::Ready(Some(Ok(Chunk::Stdout(data))));
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let data = match this.sudo.as_mut() {
                        None => data,
                        Some(sudo) => {
                            let (out, done, rejected) = sudo.feed(&data);
                            if done {
                                this.sudo = None;
                            }
                            this.sudo_rejected |= rejected;
                            out
                        }
                    };
                    if !data.is_empty() {
                        return Poll::Ready(Some(Ok(Chunk::Stderr(data))));
                    }
                }
                Some(msg @ (ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. })) => {
                    if let Some(status) = ExitStatus::from_msg(msg) {
                        this.status.get_or_insert(status);
                    }
                }
                Some(ChannelMsg::Close) => {
                    this.closed = true;
                    if let Some(held) = this.sudo.as_mut().map(|s| s.gate.flush())
                        && !held.is_empty()
                    {
                        return Poll::Ready(Some(Ok(Chunk::Stderr(held))));
                    }
                    return this.closed();
                }
                Some(_) => {}
                None => {
                    let err = this.session.lost("channel ended without close");
                    this.finish();
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }
}

impl futures::stream::FusedStream for ExecStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl Drop for ExecStream {
    fn drop(&mut self) {
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_strings() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("LC_ALL"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A;B"));
    }

    #[test]
    fn env_values_stay_off_the_command_line() {
        let secret = "s3cr3t value\n'$(x)'";
        let cmd = Command::new("env").env("TOKEN", secret);
        let (line, preamble) = cmd.remote_line(None);
        assert!(!line.contains("s3cr3t"), "{line}");
        let preamble = preamble.unwrap();
        assert_eq!(
            &preamble[..],
            &b"TOKEN=s3cr3t\\0040value\\0012\\0047\\0044\\0050x\\0051\\0047\n\n"[..]
        );
        assert!(preamble.is_ascii());
    }

    #[test]
    fn sudo_wraps_the_env_reader() {
        let (line, preamble) = Command::new("env")
            .env("K", "v")
            .sudo(true)
            .stoppable(false)
            .remote_line(None);
        assert!(
            line.starts_with("sudo -n -- sh -c 'while IFS= read"),
            "{line}"
        );
        assert!(line.ends_with("env'"), "{line}");
        assert_eq!(&preamble.unwrap()[..], b"K=v\n\n");
        let (line, preamble) = Command::new("id -u").sudo(true).remote_line(None);
        assert_eq!(
            line,
            format!("{}sudo -n -- sh -c 'id -u'", channel::ANNOUNCE)
        );
        assert!(preamble.is_none());
        let pty = Command::new("env").env("K", "v").sudo(true).pty(true);
        assert!(matches!(pty.check(), Err(Error::Config { .. })));
    }

    #[test]
    fn a_sudo_password_stays_off_the_line_and_out_of_debug() {
        let secret = "pa55 'w0rd";
        let cmd = Command::new("id -u").env("K", "v").sudo_password(secret);
        assert!(cmd.sudo, "a password implies sudo");
        let markers = cmd.sudo_markers();
        assert!(markers.is_some());
        let (line, preamble) = cmd.remote_line(markers.as_ref());
        assert!(line.contains("sudo -S -k -p "), "{line}");
        assert!(!line.contains("pa55"), "{line}");
        assert_eq!(&preamble.unwrap()[..], b"K=v\n\n");
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("pa55"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let pty = Command::new("id").sudo_password(secret).pty(true);
        let err = pty.check().unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        let err = Command::new("id")
            .sudo_password("two\nlines")
            .check()
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("two"), "{err:?}");
        // Turned off again: plain command, no markers.
        let off = Command::new("id").sudo_password(secret).sudo(false);
        assert!(off.sudo_markers().is_none());
        assert!(off.check().is_ok());
    }
}
