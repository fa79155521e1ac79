//! Interactive shells: the remote user's login shell on a pseudo-terminal
//! ([`Session::shell`]), or on plain pipes ([`Session::shell_without_pty`]),
//! as `ssh HOST` and `ssh -T HOST` start them.
//!
//! A [`Shell`] is a byte stream both ways: what is written is typed into
//! the terminal, what is read is the screen's output. Its terminal can be
//! resized ([`Shell::resize`], SSH's `window-change`), and once the shell
//! has ended, [`Shell::exit_status`] tells how. [`Shell::split`] gives a
//! reading and a writing half for two tasks (or one `select!` loop).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(sess: vmssh::Session) -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use vmssh::PtyOptions;
//!
//! let mut sh = sess.shell(PtyOptions::new("xterm-256color", 120, 40)).await?;
//! sh.resize(100, 30).await?;
//! sh.write_all(b"stty size; exit 3\n").await?;
//! let mut screen = Vec::new();
//! sh.read_to_end(&mut screen).await?; // "30 100" among the rest
//! assert_eq!(sh.exit_status().await?.code(), Some(3));
//! # Ok(()) }
//! ```
//!
//! # Backpressure
//!
//! Output is read from the channel only as the shell (or its reading
//! half) is read: a shell nobody reads pauses, after the session's
//! per-channel queue fills, every channel of its session (see the crate
//! docs). Read it promptly, and from a task of its own when writes may
//! wait for the server's window.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use russh::{ChannelMsg, Pty};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::agent_forward::push_agent_request;
use crate::channel::{
    self, ChannelLease, ChannelWriter, Closing, LeaseWriter, PtyRequest, Request,
};
use crate::error::Error;
use crate::exec::Chunk;
use crate::session::Session;
use crate::status::ExitStatus;

/// The terminal a [`Shell`] runs on: its type (`TERM`), size and modes.
///
/// # Example
///
/// ```
/// use vmssh::{PtyOptions, TerminalMode};
///
/// let pty = PtyOptions::new("xterm-256color", 120, 40)
///     .pixels(960, 640)
///     .mode(TerminalMode::Verase, 0x7f)
///     .mode(TerminalMode::Iutf8, 1);
/// assert_eq!(pty.term(), "xterm-256color");
/// assert_eq!((pty.cols(), pty.rows()), (120, 40));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct PtyOptions {
    term: String,
    cols: u32,
    rows: u32,
    width: u32,
    height: u32,
    modes: Vec<(TerminalMode, u32)>,
}

impl PtyOptions {
    /// A terminal of type `term` (the remote `TERM`, e.g.
    /// `xterm-256color`), `cols` characters wide and `rows` lines high.
    pub fn new(term: impl Into<String>, cols: u32, rows: u32) -> Self {
        PtyOptions {
            term: term.into(),
            cols,
            rows,
            width: 0,
            height: 0,
            modes: Vec::new(),
        }
    }

    /// Sets the terminal's size in pixels, for programs that draw.
    ///
    /// Default: 0 x 0 (unknown).
    pub fn pixels(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Sets a terminal mode: a control character (its byte, e.g. `0x7f`
    /// for [`Verase`](TerminalMode::Verase)), a flag (1 on, 0 off) or a
    /// speed in baud. A mode set twice keeps the last value.
    ///
    /// Default: none; the server's own defaults (a "sane" terminal:
    /// echo, canonical input, signals, `^C`, `^?` or `^H` to erase).
    pub fn mode(mut self, mode: TerminalMode, value: u32) -> Self {
        self.modes.retain(|(m, _)| *m != mode);
        self.modes.push((mode, value));
        self
    }

    /// The terminal type.
    pub fn term(&self) -> &str {
        &self.term
    }

    /// The width in characters.
    pub fn cols(&self) -> u32 {
        self.cols
    }

    /// The height in lines.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// The modes set, in the order set.
    pub fn modes(&self) -> &[(TerminalMode, u32)] {
        &self.modes
    }

    pub(crate) fn size(&self) -> (u32, u32) {
        (self.cols, self.rows)
    }

    pub(crate) fn pixels_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The modes as the `pty-req` request encodes them.
    pub(crate) fn wire_modes(&self) -> Vec<(Pty, u32)> {
        self.modes.iter().map(|&(m, v)| (m.wire(), v)).collect()
    }
}

/// A terminal mode of a `pty-req` request ([RFC 4254, section
/// 8](https://www.rfc-editor.org/rfc/rfc4254#section-8)), named as the
/// POSIX `termios` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TerminalMode {
    /// The interrupt character (`^C`): SIGINT.
    Vintr,
    /// The quit character (`^\`): SIGQUIT.
    Vquit,
    /// The erase character (`^?` or `^H`).
    Verase,
    /// The kill-line character (`^U`).
    Vkill,
    /// The end-of-file character (`^D`).
    Veof,
    /// The suspend character (`^Z`): SIGTSTP.
    Vsusp,
    /// The word-erase character (`^W`).
    Vwerase,
    /// Map CR to NL on input.
    Icrnl,
    /// Output flow control (`^S`/`^Q`).
    Ixon,
    /// Input is UTF-8 (erase removes whole characters).
    Iutf8,
    /// The interrupt, quit and suspend characters send signals.
    Isig,
    /// Canonical (line-at-a-time) input.
    Icanon,
    /// Echo input characters.
    Echo,
    /// Erase echoes as backspace-space-backspace.
    Echoe,
    /// Echo NL after the kill character.
    Echok,
    /// Echo control characters as `^X`.
    Echoctl,
    /// Implementation-defined input processing (`^V`, `^W`).
    Iexten,
    /// Output processing.
    Opost,
    /// Map NL to CR-NL on output.
    Onlcr,
    /// 8-bit characters.
    Cs8,
    /// Input speed, in baud.
    InputSpeed,
    /// Output speed, in baud.
    OutputSpeed,
}

impl TerminalMode {
    fn wire(self) -> Pty {
        match self {
            TerminalMode::Vintr => Pty::VINTR,
            TerminalMode::Vquit => Pty::VQUIT,
            TerminalMode::Verase => Pty::VERASE,
            TerminalMode::Vkill => Pty::VKILL,
            TerminalMode::Veof => Pty::VEOF,
            TerminalMode::Vsusp => Pty::VSUSP,
            TerminalMode::Vwerase => Pty::VWERASE,
            TerminalMode::Icrnl => Pty::ICRNL,
            TerminalMode::Ixon => Pty::IXON,
            TerminalMode::Iutf8 => Pty::IUTF8,
            TerminalMode::Isig => Pty::ISIG,
            TerminalMode::Icanon => Pty::ICANON,
            TerminalMode::Echo => Pty::ECHO,
            TerminalMode::Echoe => Pty::ECHOE,
            TerminalMode::Echok => Pty::ECHOK,
            TerminalMode::Echoctl => Pty::ECHOCTL,
            TerminalMode::Iexten => Pty::IEXTEN,
            TerminalMode::Opost => Pty::OPOST,
            TerminalMode::Onlcr => Pty::ONLCR,
            TerminalMode::Cs8 => Pty::CS8,
            TerminalMode::InputSpeed => Pty::TTY_OP_ISPEED,
            TerminalMode::OutputSpeed => Pty::TTY_OP_OSPEED,
        }
    }
}

/// An interactive shell on the server: write to type, read to see the
/// output, then [`exit_status`](Self::exit_status).
///
/// Reads return the shell's output (on a pseudo-terminal, standard
/// output and standard error arrive merged, with terminal line endings;
/// without one, both are read in arrival order: [`split`](Self::split)'s
/// reading half can tell them apart) and end (`Ok(0)`) when the server
/// closes the channel, after the shell ended; a read after the
/// connection was lost fails with [`io::ErrorKind::ConnectionAborted`].
/// Shutting down the write side sends end-of-file (once): a shell without
/// a terminal then ends; on a terminal, type `exit` (or `^D`).
///
/// # Drop behavior
///
/// Dropping the shell (its reading half, once split) closes its channel:
/// the server is asked to send the shell SIGTERM (which an interactive
/// shell ignores), then the channel is closed, which hangs up the
/// terminal.
pub struct Shell {
    reader: ShellReader,
    writer: ShellWriter,
}

impl fmt::Debug for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shell")
            .field("host", &self.reader.session.host())
            .field("pty", &self.writer.pty)
            .field("status", &self.reader.status)
            .field("closed", &self.reader.closed)
            .finish()
    }
}

impl Shell {
    /// Splits the shell into a reading and a writing half, each usable
    /// from a task of its own.
    pub fn split(self) -> (ShellReader, ShellWriter) {
        (self.reader, self.writer)
    }

    /// Tells the server the terminal is now `cols` x `rows` characters
    /// (SSH's `window-change`); programs on it get SIGWINCH. Ignored by
    /// the server for a shell without a terminal.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the connection is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the request is sent whole or not at all.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), Error> {
        self.writer.resize(cols, rows).await
    }

    /// Waits for the shell to end and its channel to close, and returns
    /// how it ended. Output not yet read is discarded.
    ///
    /// # Errors
    ///
    /// As [`ShellReader::exit_status`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: call it again to keep waiting.
    pub async fn exit_status(&mut self) -> Result<ExitStatus, Error> {
        self.reader.exit_status().await
    }

    /// The exit status if it has arrived already, without waiting.
    pub fn try_exit_status(&self) -> Option<&ExitStatus> {
        self.reader.try_exit_status()
    }
}

impl AsyncRead for Shell {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shell {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// The reading half of a [`Shell`]: its output as bytes
/// ([`AsyncRead`]: standard output and standard error merged, in arrival
/// order) or as [`Chunk`]s ([`Stream`]: kept apart, for a shell without a
/// terminal), then its exit status. Read it one way or the other: bytes
/// of a chunk partly read as bytes are not given again as a chunk.
///
/// The stream is fused: after it returned `None` (or an error) it keeps
/// returning `None`.
///
/// # Drop behavior
///
/// Dropping it closes the shell's channel, as dropping a [`Shell`] does;
/// the writing half's writes then fail.
pub struct ShellReader {
    /// The channel, until the server closed it (or it failed).
    lease: Option<ChannelLease>,
    session: Session,
    /// Output received and not yet read as bytes.
    pending: Bytes,
    status: Option<ExitStatus>,
    /// The server closed the channel: the stream has ended.
    closed: bool,
}

impl fmt::Debug for ShellReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellReader")
            .field("host", &self.session.host())
            .field("status", &self.status)
            .field("closed", &self.closed)
            .finish()
    }
}

impl ShellReader {
    /// Waits for the shell to end and its channel to close, and returns
    /// how it ended. Output not yet read is discarded.
    ///
    /// # Errors
    ///
    /// [`Error::MissingExitStatus`] when the channel closed without a
    /// status; [`Error::ConnectionLost`] when the connection ended first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: call it again to keep waiting.
    pub async fn exit_status(&mut self) -> Result<ExitStatus, Error> {
        self.pending = Bytes::new();
        while let Some(chunk) = std::future::poll_fn(|cx| self.poll_chunk(cx)).await {
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

    /// The next piece of output; `None` once the server closed the
    /// channel.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, Error>>> {
        loop {
            let Some(lease) = self.lease.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(lease.poll_recv(cx)) {
                Some(ChannelMsg::Data { data }) => {
                    return Poll::Ready(Some(Ok(Chunk::Stdout(data))));
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    return Poll::Ready(Some(Ok(Chunk::Stderr(data))));
                }
                Some(msg @ (ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. })) => {
                    if let Some(status) = ExitStatus::from_msg(msg) {
                        self.status.get_or_insert(status);
                    }
                }
                Some(ChannelMsg::Close) => {
                    self.closed = true;
                    // Answered by russh: dropping the lease sends nothing.
                    self.lease = None;
                    return Poll::Ready(None);
                }
                Some(_) => {}
                None => {
                    self.lease = None;
                    return Poll::Ready(Some(Err(self
                        .session
                        .lost("channel ended without close"))));
                }
            }
        }
    }
}

impl Stream for ShellReader {
    type Item = Result<Chunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            let rest = std::mem::take(&mut this.pending);
            return Poll::Ready(Some(Ok(Chunk::Stdout(rest))));
        }
        this.poll_chunk(cx)
    }
}

impl futures::stream::FusedStream for ShellReader {
    fn is_terminated(&self) -> bool {
        self.lease.is_none() && self.pending.is_empty()
    }
}

impl AsyncRead for ShellReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(this.poll_chunk(cx)) {
                Some(Ok(chunk)) => this.pending = chunk.bytes().clone(),
                Some(Err(e)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        e.to_string(),
                    )));
                }
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// The writing half of a [`Shell`]: what is written is typed into its
/// terminal; [`resize`](Self::resize) changes the terminal's size.
/// Shutting it down sends end-of-file (once). Writes wait for the
/// server's window.
pub struct ShellWriter {
    writer: Arc<ChannelWriter>,
    stream: LeaseWriter,
    pty: bool,
}

impl fmt::Debug for ShellWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellWriter")
            .field("pty", &self.pty)
            .finish_non_exhaustive()
    }
}

impl ShellWriter {
    /// As [`Shell::resize`].
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the connection is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the request is sent whole or not at all.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), Error> {
        self.resize_pixels(cols, rows, 0, 0).await
    }

    /// As [`resize`](Self::resize), with the size in pixels too.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the connection is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn resize_pixels(
        &self,
        cols: u32,
        rows: u32,
        width: u32,
        height: u32,
    ) -> Result<(), Error> {
        self.writer
            .window_change((cols, rows), (width, height))
            .await
    }
}

impl AsyncWrite for ShellWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Session {
    /// Starts the remote user's login shell on a pseudo-terminal, as
    /// `ssh HOST` does (`pty-req`, then `shell`).
    ///
    /// # Errors
    ///
    /// [`Error::ChannelOpen`] when no channel can be opened;
    /// [`Error::RequestRefused`] when the server refuses the terminal or
    /// the shell (OpenSSH's `PermitTTY no`, a forced command's
    /// `no-pty`); [`Error::ConnectionLost`] when the connection is gone.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the channel.
    pub async fn shell(&self, pty: PtyOptions) -> Result<Shell, Error> {
        self.start_shell(Some(&pty)).await
    }

    /// Starts the remote user's login shell without a terminal, as
    /// `ssh -T HOST` does: it reads commands from what is written, and
    /// ends at end-of-file ([`AsyncWriteExt::shutdown`]).
    ///
    /// [`AsyncWriteExt::shutdown`]: tokio::io::AsyncWriteExt::shutdown
    ///
    /// # Errors
    ///
    /// As [`shell`](Self::shell).
    ///
    /// # Cancel safety
    ///
    /// As [`shell`](Self::shell).
    pub async fn shell_without_pty(&self) -> Result<Shell, Error> {
        self.start_shell(None).await
    }

    async fn start_shell(&self, pty: Option<&PtyOptions>) -> Result<Shell, Error> {
        let mut requests = Vec::with_capacity(3);
        // The agent, when the session forwards it (`ssh -A`).
        push_agent_request(self.connection(), None, &mut requests);
        let modes = pty.map(PtyOptions::wire_modes).unwrap_or_default();
        if let Some(pty) = pty {
            let ((cols, rows), (width, height)) = (pty.size(), pty.pixels_size());
            requests.push(Request::PtyWith(PtyRequest {
                term: pty.term(),
                cols,
                rows,
                width,
                height,
                modes: &modes,
            }));
        }
        requests.push(Request::Shell);
        let lease = channel::start(self.connection(), Closing::Terminate, &requests).await?;
        let writer = lease.writer().clone();
        Ok(Shell {
            writer: ShellWriter {
                stream: writer.writer(),
                writer,
                pty: pty.is_some(),
            },
            reader: ShellReader {
                lease: Some(lease),
                session: self.clone(),
                pending: Bytes::new(),
                status: None,
                closed: false,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_set_twice_keeps_the_last_value() {
        let pty = PtyOptions::new("vt100", 80, 24)
            .mode(TerminalMode::Echo, 1)
            .mode(TerminalMode::Verase, 8)
            .mode(TerminalMode::Echo, 0);
        assert_eq!(
            pty.modes(),
            &[(TerminalMode::Verase, 8), (TerminalMode::Echo, 0)]
        );
        assert_eq!(
            pty.wire_modes()
                .iter()
                .map(|(m, v)| (*m as u8, *v))
                .collect::<Vec<_>>(),
            vec![(3, 8), (53, 0)],
            "RFC 4254 opcodes"
        );
    }
}
