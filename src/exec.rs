//! Running commands: collected ([`Session::exec`]) or streamed
//! ([`Session::exec_streaming`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::AsyncRead;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::session::{Session, wait_reply};

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

/// How a remote command ended: an exit code or a signal, as the server
/// reported it. Nothing is invented: a command that ended without a report
/// yields [`Error::MissingExitStatus`] instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    // Boxed: keeps `ExitStatus`, and the errors that carry one, small.
    kind: Box<StatusKind>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum StatusKind {
    Code(u32),
    Signal {
        name: String,
        core_dumped: bool,
        message: String,
    },
}

impl ExitStatus {
    /// An exit status with this code.
    pub fn from_code(code: u32) -> Self {
        ExitStatus {
            kind: Box::new(StatusKind::Code(code)),
        }
    }

    /// An exit status for death by the signal `name` (without `SIG`).
    pub fn from_signal(name: impl Into<String>) -> Self {
        ExitStatus {
            kind: Box::new(StatusKind::Signal {
                name: name.into(),
                core_dumped: false,
                message: String::new(),
            }),
        }
    }

    /// The exit code, unless the command was killed by a signal.
    pub fn code(&self) -> Option<u32> {
        match *self.kind {
            StatusKind::Code(c) => Some(c),
            StatusKind::Signal { .. } => None,
        }
    }

    /// The signal that killed the command, without the `SIG` prefix (`"TERM"`).
    pub fn signal(&self) -> Option<&str> {
        match &*self.kind {
            StatusKind::Code(_) => None,
            StatusKind::Signal { name, .. } => Some(name),
        }
    }

    /// Whether the process dumped core when it was killed.
    pub fn core_dumped(&self) -> bool {
        matches!(
            *self.kind,
            StatusKind::Signal {
                core_dumped: true,
                ..
            }
        )
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code() == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            StatusKind::Code(c) => write!(f, "exit status {c}"),
            StatusKind::Signal {
                name,
                core_dumped,
                message,
            } => {
                write!(f, "killed by signal {name}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
        }
    }
}

/// The collected result of [`Session::exec`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
    timeout: Option<Duration>,
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
            .field("timeout", &self.timeout)
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
            timeout: None,
        }
    }

    /// Sets an environment variable for the command. Sent as an SSH `env`
    /// request; where the server refuses it (OpenSSH's default `AcceptEnv`
    /// lets few through), the variable is exported by the command line
    /// instead, quoted for a POSIX shell.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Bytes to write to the command's stdin, followed by end-of-file.
    ///
    /// Default: empty stdin (end-of-file at once).
    pub fn stdin_bytes(mut self, data: impl Into<Bytes>) -> Self {
        self.stdin = Some(Stdin::Bytes(data.into()));
        self
    }

    /// A reader copied to the command's stdin as the command runs, followed
    /// by end-of-file.
    pub fn stdin_reader(mut self, reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.stdin = Some(Stdin::Reader(Box::new(reader)));
        self
    }

    /// Runs the command on a pseudo-terminal (stderr then arrives merged
    /// into stdout, with terminal line endings).
    ///
    /// Default: no pseudo-terminal.
    pub fn pty(mut self, on: bool) -> Self {
        self.pty = on;
        self
    }

    /// Fails with [`Error::CommandTimeout`] and closes the channel when the
    /// command has not finished after `timeout`.
    ///
    /// Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Quotes `s` for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
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
    /// [`SshConfig::max_output`](crate::SshConfig::max_output);
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
        let limit = self.inner.max_output;
        let mut stream = self.exec_streaming_command(command).await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if stdout.len() + stderr.len() + chunk.bytes().len() > limit {
                return Err(Error::OutputTooLarge {
                    host: self.inner.host.clone(),
                    port: self.inner.port,
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
        for (key, _) in &command.env {
            if !valid_env_name(key) {
                return Err(Error::Config {
                    reason: format!("invalid environment variable name {key:?}"),
                });
            }
        }
        // A channel the server closed before accepting the request ran
        // nothing: retry it on a fresh channel a few times.
        let mut attempt = 0;
        let (channel, permit) = loop {
            attempt += 1;
            match self
                .start_command(&command.command, &command.env, command.pty)
                .await
            {
                Err(Error::ChannelOpen { .. }) if attempt < 5 && !self.is_closed() => continue,
                other => break other?,
            }
        };

        let (read, write) = channel.split();
        let write = std::sync::Arc::new(write);
        let stdin_task = match command.stdin {
            None => {
                write
                    .eof()
                    .await
                    .map_err(|_| self.lost("connection closed"))?;
                None
            }
            Some(stdin) => Some(tokio::spawn(feed_stdin(write.clone(), stdin))),
        };
        Ok(ExecStream {
            read: Some(read),
            write,
            session: self.clone(),
            status: None,
            finished: false,
            permit: Some(permit),
            stdin_task,
            deadline: command
                .timeout
                .map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        })
    }
}

impl Session {
    /// Opens a channel and sends the env, pty and exec requests.
    async fn start_command(
        &self,
        command_line: &str,
        env: &[(String, String)],
        pty: bool,
    ) -> Result<(russh::Channel<Msg>, OwnedSemaphorePermit), Error> {
        let (channel, permit) = self.open_channel().await?;
        // Until setup completes, an early return or cancellation must close
        // the channel: the guard does it unless defused.
        let mut guard = ChannelGuard(Some((channel, permit)), self.clone());
        let Some((channel, _)) = guard.0.as_mut() else {
            return Err(self.lost("channel vanished"));
        };
        let mut line = String::new();
        for (key, value) in env {
            channel
                .set_env(true, key.as_str(), value.as_str())
                .await
                .map_err(|_| self.lost("connection closed"))?;
            match wait_reply(self, channel, "env").await {
                Ok(()) => {}
                Err(Error::RequestRefused { .. }) => {
                    line.push_str(&format!("export {key}={}; ", shell_quote(value)));
                }
                Err(e) => return Err(e),
            }
        }
        if pty {
            channel
                .request_pty(true, "xterm", 80, 24, 0, 0, &[])
                .await
                .map_err(|_| self.lost("connection closed"))?;
            wait_reply(self, channel, "pty-req").await?;
        }
        line.push_str(command_line);
        channel
            .exec(true, line.into_bytes())
            .await
            .map_err(|_| self.lost("connection closed"))?;
        wait_reply(self, channel, "exec").await?;
        guard.0.take().ok_or_else(|| self.lost("channel vanished"))
    }
}

/// Closes a half-set-up channel when setup is abandoned.
struct ChannelGuard(Option<(russh::Channel<Msg>, OwnedSemaphorePermit)>, Session);

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        if let Some((channel, permit)) = self.0.take() {
            let (read, write) = channel.split();
            close_in_background(
                &self.1,
                std::sync::Arc::new(write),
                Some(read),
                Some(permit),
                true,
            );
        }
    }
}

/// How long an abandoned command gets to end after SIGTERM before its
/// channel is closed from this side.
const ABANDON_GRACE: Duration = Duration::from_millis(500);

/// Ends a channel in the background and frees its slot (dropping a russh
/// channel sends nothing).
///
/// Without `read`, the server has closed the channel already: answering
/// is all that is left. With `read`, the command is being abandoned
/// (stream dropped, timeout, output cap, setup cut short): unless it has
/// ended already (`terminate` false), the server is asked to send it
/// SIGTERM; then the channel is drained until the server closes it, for at
/// most [`ABANDON_GRACE`], before this side closes it.
/// Only a close that comes from the server can be waited for: once this
/// side has sent CHANNEL_CLOSE, russh forgets the channel and drops the
/// server's reply. Closing alone is not enough either: OpenSSH closes the
/// command's pipes (a writer dies of SIGPIPE, a silent command runs on),
/// dropbear keeps them open (even a writer blocks forever, holding its
/// channel), and dropbear before 2024.86 mishandles channels opened while
/// an abandoned command is still exiting. Servers that refuse signal
/// requests (OpenSSH for root logins) cost the grace period.
pub(crate) fn close_in_background(
    session: &Session,
    write: std::sync::Arc<ChannelWriteHalf<Msg>>,
    read: Option<ChannelReadHalf>,
    permit: Option<OwnedSemaphorePermit>,
    terminate: bool,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let guard = read.is_some().then(|| session.closing_guard());
    rt.spawn(async move {
        let _guard = guard;
        let server_closed = match read {
            None => false,
            Some(mut read) => {
                if terminate {
                    let _ = write.signal(Sig::TERM).await;
                }
                let drain = async {
                    while let Some(msg) = read.wait().await {
                        if matches!(msg, ChannelMsg::Close) {
                            return true;
                        }
                    }
                    false
                };
                // The read half is dropped here, before closing: a full
                // channel queue would otherwise keep russh from reading.
                tokio::time::timeout(ABANDON_GRACE, drain)
                    .await
                    .unwrap_or(false)
            }
        };
        // russh has answered a server's close itself.
        if !server_closed {
            let _ = write.close().await;
        }
        drop(permit);
    });
}

async fn feed_stdin(write: std::sync::Arc<ChannelWriteHalf<Msg>>, stdin: Stdin) {
    let result = match stdin {
        Stdin::Bytes(b) => write.data_bytes(b).await,
        Stdin::Reader(r) => write.data(r).await,
    };
    if result.is_ok() {
        let _ = write.eof().await;
    }
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
    read: Option<ChannelReadHalf>,
    write: std::sync::Arc<ChannelWriteHalf<Msg>>,
    session: Session,
    status: Option<ExitStatus>,
    finished: bool,
    permit: Option<OwnedSemaphorePermit>,
    stdin_task: Option<JoinHandle<()>>,
    deadline: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
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
        self.write
            .signal(sig)
            .await
            .map_err(|_| self.session.lost("connection closed"))
    }

    fn finish(&mut self) {
        self.finished = true;
        self.read = None;
        self.permit = None;
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
    }

    /// Ends the stream early with an error and closes the channel.
    fn fail(&mut self, err: Error) -> Poll<Option<Result<Chunk, Error>>> {
        self.spawn_close();
        self.finish();
        Poll::Ready(Some(Err(err)))
    }

    /// Abandons the command and closes the channel in the background.
    fn spawn_close(&mut self) {
        // A command whose exit status arrived has ended: no signal (its PID
        // may already belong to another process).
        let terminate = self.status.is_none();
        close_in_background(
            &self.session,
            self.write.clone(),
            self.read.take(),
            self.permit.take(),
            terminate,
        );
    }
}

fn signal_name(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(s) => s.trim_start_matches("SIG").to_string(),
    }
}

impl Stream for ExecStream {
    type Item = Result<Chunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
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
        loop {
            let Some(read) = this.read.as_mut() else {
                return Poll::Ready(None);
            };
            // `wait` is a thin wrapper over a cancel-safe mpsc receive, so a
            // fresh future per poll loses nothing.
            let msg = {
                let fut = std::pin::pin!(read.wait());
                match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(m) => m,
                }
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    return Poll::Ready(Some(Ok(Chunk::Stdout(data))));
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    return Poll::Ready(Some(Ok(Chunk::Stderr(data))));
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    this.status
                        .get_or_insert(ExitStatus::from_code(exit_status));
                }
                Some(ChannelMsg::ExitSignal {
                    signal_name: sig,
                    core_dumped,
                    error_message,
                    ..
                }) => {
                    this.status.get_or_insert(ExitStatus {
                        kind: Box::new(StatusKind::Signal {
                            name: signal_name(&sig),
                            core_dumped,
                            message: error_message,
                        }),
                    });
                }
                Some(ChannelMsg::Close) => {
                    // Answer the server's close so the channel is freed on
                    // both sides; russh does not do it for us.
                    close_in_background(
                        &this.session,
                        this.write.clone(),
                        None,
                        this.permit.take(),
                        false,
                    );
                    this.finish();
                    return Poll::Ready(None);
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
        if !self.finished {
            self.spawn_close();
        }
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
    fn status_display() {
        assert_eq!(ExitStatus::from_code(7).to_string(), "exit status 7");
        assert_eq!(
            ExitStatus::from_signal("TERM").to_string(),
            "killed by signal TERM"
        );
        assert!(ExitStatus::from_code(0).success());
        assert!(!ExitStatus::from_signal("KILL").success());
        assert_eq!(ExitStatus::from_signal("KILL").signal(), Some("KILL"));
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("LC_ALL"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A;B"));
    }
}
