//! Running commands: collected ([`Session::exec`]) or streamed
//! ([`Session::exec_streaming`]).
//!
//! Inside: this file holds the output types and the exec methods of
//! [`Session`]; `command.rs` the [`Command`] builder; `stream.rs` the
//! [`ExecStream`] of a running command.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::agent_forward::push_agent_request;
/// Why a command did not start, and whether its request went out.
pub(crate) use crate::channel::StartError;
use crate::channel::{self, ChannelLease, ChannelWriter, Closing, Request};
use crate::error::Error;
pub(crate) use crate::quote::shell_quote;
use crate::secret::Secret;
use crate::session::Session;
pub use crate::status::ExitStatus;
use crate::sudo::{Gate, GateEvent};

mod command;
mod stream;

pub use command::Command;
use command::Stdin;
pub use stream::ExecStream;
use stream::SudoGate;

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

#[cfg(test)]
mod tests {
    use super::command::valid_env_name;
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
