//! Channels (private): open one under the session's limit, make requests on
//! it, and own it until it is closed.
//!
//! [`ChannelLease`] is the one owner of a channel, from the moment the
//! server confirms it. Whatever drops it (a finished command, a dropped
//! stream, a cancelled setup, an SFTP session ending) closes the channel
//! the same way and frees its slot, and the end-of-file and close messages
//! go out at most once each. Dropping a bare russh channel sends nothing,
//! so no other code in the crate holds one.
//!
//! Inside: this file holds the lease, opening and requests; `slots.rs`
//! the channel limit and the live-channel count; `closing.rs` the
//! closings that new channels wait for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::AsyncWrite;

use crate::connection::Connection;
use crate::error::{Error, TunnelErrorKind};

mod ahead;
mod closing;
mod process;
mod stream;

use crate::connection::{AgentAsk, Slot};
pub(crate) use ahead::{Ahead, open_ahead, opens_ahead};
pub(crate) use closing::{ClosingGuard, Release, ReleaseOnDrop, wait_for_closing, winding_down};
pub(crate) use process::ANNOUNCE;
use process::PidReader;
pub(crate) use stream::ChannelStream;

/// How long an abandoned command gets to end after SIGTERM before its
/// channel is closed from this side.
const ABANDON_GRACE: Duration = Duration::from_millis(500);

/// How long an abandoned command gets to end once it was stopped through
/// a second channel ([`process::stop_line`]: SIGTERM, SIGKILL a second
/// later) before its channel is closed from this side.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long a subsystem (SFTP) gets to exit after end-of-file before its
/// channel is closed from this side.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// How long a refused open is retried when a slot of this session may be
/// being freed on the server (see [`open`]).
const FREEING_LIMIT: Duration = Duration::from_secs(2);

/// What a channel runs once its requests are accepted, which decides how
/// it is closed when its lease is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// A command: when abandoned before it ended, the server is asked to
    /// send it SIGTERM; then the channel is drained until the server closes
    /// it, for at most [`ABANDON_GRACE`], before this side closes it.
    Terminate,
    /// A subsystem that ends at end-of-file (SFTP): end-of-file, then wait
    /// (at most [`DRAIN_GRACE`]) for the server to close the channel.
    /// Dropbear frees a channel whose subprocess is still running and can
    /// then deliver that process's exit to the next channel given the same
    /// number.
    Drain,
}

/// A channel request.
/// A terminal as `pty-req` asks for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PtyRequest<'a> {
    /// `TERM`.
    pub(crate) term: &'a str,
    /// Size in characters.
    pub(crate) cols: u32,
    pub(crate) rows: u32,
    /// Size in pixels (0 when unknown).
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Terminal modes, as on the wire.
    pub(crate) modes: &'a [(russh::Pty, u32)],
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Request<'a> {
    /// `env NAME VALUE`.
    Env(&'a str, &'a str),
    /// `pty-req` for an 80x24 `xterm`.
    Pty,
    /// `pty-req` as given (an interactive shell's terminal).
    PtyWith(PtyRequest<'a>),
    /// `shell`: the user's login shell.
    Shell,
    /// `exec COMMAND`: the request that runs something.
    Exec(&'a str),
    /// `exec COMMAND` for a command that is harmless to run twice
    /// ([`Command::idempotent`](crate::Command::idempotent)): when the
    /// server closes the channel without answering, it is sent again on a
    /// fresh channel like a request that never went out.
    ExecIdempotent(&'a str),
    /// `subsystem NAME`.
    Subsystem(&'a str),
    /// `auth-agent-req@openssh.com`: the server may open agent channels
    /// while this channel is open (see `agent_forward.rs`). A refusal is
    /// logged, not an error: the program then runs without an agent, as
    /// with OpenSSH.
    AgentForward,
}

impl Request<'_> {
    /// The request's name in errors.
    fn name(&self) -> String {
        match self {
            Request::Env(..) => "env".to_string(),
            Request::Pty | Request::PtyWith(_) => "pty-req".to_string(),
            Request::Shell => "shell".to_string(),
            Request::Exec(_) | Request::ExecIdempotent(_) => "exec".to_string(),
            Request::Subsystem(name) => format!("subsystem {name}"),
            Request::AgentForward => "auth-agent-req@openssh.com".to_string(),
        }
    }

    /// Whether the request starts a program on the server.
    fn starts_program(&self) -> bool {
        matches!(
            self,
            Request::Exec(_) | Request::ExecIdempotent(_) | Request::Subsystem(_) | Request::Shell
        )
    }
}

/// The sending side of a leased channel, shareable with a task that feeds
/// the channel (a command's stdin). End-of-file goes out at most once.
pub(crate) struct ChannelWriter {
    half: ChannelWriteHalf<Msg>,
    eof_sent: AtomicBool,
    conn: Arc<Connection>,
}

impl ChannelWriter {
    /// A send's outcome; one the connection took no more is the
    /// connection's loss, with its reason once its end has told it (see
    /// [`Connection::lost_after_end`]).
    async fn sent<E>(&self, sent: Result<(), E>) -> Result<(), Error> {
        match sent {
            Ok(()) => Ok(()),
            Err(_) => Err(self.conn.lost_after_end("connection closed").await),
        }
    }

    /// Sends bytes, waiting for window space.
    pub(crate) async fn data(&self, data: Bytes) -> Result<(), Error> {
        self.sent(self.half.data_bytes(data).await).await
    }

    /// Sends end-of-file, unless it was sent already.
    pub(crate) async fn eof(&self) -> Result<(), Error> {
        if self.eof_sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.sent(self.half.eof().await).await
    }

    /// Asks the server to send `sig` to the channel's program.
    pub(crate) async fn signal(&self, sig: Sig) -> Result<(), Error> {
        self.sent(self.half.signal(sig).await).await
    }

    /// Tells the server the terminal's new size (`window-change`).
    pub(crate) async fn window_change(
        &self,
        (cols, rows): (u32, u32),
        (width, height): (u32, u32),
    ) -> Result<(), Error> {
        self.sent(self.half.window_change(cols, rows, width, height).await)
            .await
    }

    /// An [`AsyncWrite`] of the channel's data whose shutdown is the one
    /// end-of-file.
    pub(crate) fn writer(self: &Arc<Self>) -> LeaseWriter {
        LeaseWriter {
            inner: Box::pin(self.half.make_writer()),
            writer: self.clone(),
            shutting_down: false,
        }
    }
}

/// See [`ChannelWriter::writer`].
pub(crate) struct LeaseWriter {
    inner: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    writer: Arc<ChannelWriter>,
    shutting_down: bool,
}

impl AsyncWrite for LeaseWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.shutting_down {
            // Claimed before sending: a second shutdown, or the lease's
            // drop, must not send another end-of-file.
            if self.writer.eof_sent.swap(true, Ordering::AcqRel) {
                return Poll::Ready(Ok(()));
            }
            self.shutting_down = true;
        }
        self.inner.as_mut().poll_shutdown(cx)
    }
}

/// The one owner of an open channel; dropping it closes the channel (see
/// [`Closing`]) and then frees its slot under the session's limit.
pub(crate) struct ChannelLease {
    conn: Arc<Connection>,
    read: Option<ChannelReadHalf>,
    write: Arc<ChannelWriter>,
    slot: Option<Slot>,
    closing: Closing,
    /// A program-starting request was sent: something may be running.
    started: bool,
    /// An exec request was sent: the command may have run, so it is never
    /// sent again (a subsystem, which does nothing until spoken to, may, as
    /// may an idempotent command).
    exec_sent: bool,
    /// The program's exit status arrived: it must not be signalled (its
    /// PID may already belong to another process).
    ended: bool,
    /// The server closed the channel (russh answers that close itself).
    server_closed: bool,
    /// Reads the command's PID off its stderr ([`ANNOUNCE`]).
    pid_reader: Option<PidReader>,
    /// The command's PID on the server, once announced.
    pid: Option<u32>,
    /// A message held back while held stderr bytes go out first.
    stashed: Option<ChannelMsg>,
    /// The channel asked for an agent: agent channels are accepted until
    /// it is closed.
    agent: Option<AgentAsk>,
    /// How long the server took to confirm the open: a round trip, with no
    /// process started on the server yet.
    opened_in: Option<Duration>,
}

impl std::fmt::Debug for ChannelLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelLease")
            .field("id", &self.write.half.id())
            .field("closing", &self.closing)
            .field("started", &self.started)
            .field("exec_sent", &self.exec_sent)
            .field("ended", &self.ended)
            .field("server_closed", &self.server_closed)
            .field("pid", &self.pid)
            .field("agent", &self.agent.is_some())
            .finish()
    }
}

/// Runs a channel open to its end even when the caller's future is
/// dropped: the server may confirm a channel after the caller is gone, and
/// only a lease can close it. (russh forgets an open whose future was
/// dropped, and the server's channel then stays open, holding one of its
/// `MaxSessions` slots, until the connection ends.) A lease nobody
/// receives is dropped, which closes its channel.
async fn detached(
    conn: &Arc<Connection>,
    open: impl Future<Output = Result<ChannelLease, Error>> + Send + 'static,
) -> Result<ChannelLease, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(open.await);
    });
    rx.await
        .unwrap_or_else(|_| Err(conn.lost("the channel open was interrupted")))
}

/// Opens a session channel, waiting for a free slot under the session's
/// channel limit; the slot is held until the lease has closed the channel.
///
/// A refusal while other channels of the session are open shows the
/// server's limit: the session learns it and this open waits for one of
/// them to close (see [`Slots`]). A refusal with fewer channels open than
/// the session had before may come from a slot the server is still
/// freeing (OpenSSH frees a closed channel's slot only at the end of its
/// event-loop pass): that is retried briefly. A refusal with no channel of
/// the session open cannot be waited out: it is returned at once.
pub(crate) async fn open(conn: &Arc<Connection>, closing: Closing) -> Result<ChannelLease, Error> {
    let owned = conn.clone();
    let open = closing::carrying_own(async move { open_now(&owned, closing).await });
    detached(conn, open).await
}

/// [`open`], attached to the caller.
async fn open_now(conn: &Arc<Connection>, closing: Closing) -> Result<ChannelLease, Error> {
    let slots = conn.slots.clone();
    let mut delay = Duration::from_millis(2);
    let mut freeing_since: Option<Instant> = None;
    loop {
        let slot = free_slot(conn).await?;
        wait_for_closing(conn).await;
        let reason = loop {
            let asked = Instant::now();
            let reason = match conn.handle.channel_open_session().await {
                Ok(channel) => {
                    let mut lease = lease(conn, channel, Some(slot), closing);
                    lease.opened_in = Some(asked.elapsed());
                    return Ok(lease);
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => reason,
                Err(e) => return Err(open_error(conn, e).await),
            };
            let live = conn.live_channels();
            let (others, peak) = (live.count(), live.peak());
            if others > 0 && others >= peak {
                break None;
            }
            let since = *freeing_since.get_or_insert_with(Instant::now);
            if peak > 0 && since.elapsed() + delay < FREEING_LIMIT && !conn.is_closed() {
                tracing::debug!(host = %conn.host, ?reason, "channel open refused, retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(200));
                continue;
            }
            break Some((reason, others));
        };
        match reason {
            // The server's limit: wait for a channel to close.
            None => {
                let others = conn.live_channels().count();
                if slots.learn(others) {
                    tracing::debug!(
                        host = %conn.host,
                        "the server allows {others} channel(s) per connection; further opens wait"
                    );
                }
                drop(slot);
                freeing_since = None;
                delay = Duration::from_millis(2);
            }
            Some((reason, others)) => {
                return Err(Error::ChannelOpen {
                    host: conn.host.clone(),
                    port: conn.port,
                    reason: if others == 0 {
                        format!("{reason:?}, with no other channel of this session open")
                    } else {
                        format!("{reason:?}, with {others} other channel(s) of this session open")
                    },
                });
            }
        }
    }
}

/// A channel that could not be started, and whether a program-starting
/// request (exec, subsystem) had been sent on it: if so, the program may
/// be running or have run.
#[derive(Debug)]
pub(crate) struct StartError {
    pub(crate) error: Error,
    pub(crate) sent: bool,
}

impl From<StartError> for Error {
    fn from(e: StartError) -> Self {
        e.error
    }
}

/// Opens a TCP tunnel from the server to `host:port` (`direct-tcpip`),
/// under the session's channel limit like any channel. A refusal is final:
/// unlike a session channel's, it does not depend on other channels.
pub(crate) async fn open_tunnel(
    conn: &Arc<Connection>,
    host: &str,
    port: u16,
    from: Option<std::net::SocketAddr>,
) -> Result<ChannelLease, Error> {
    let (owned, host) = (conn.clone(), host.to_string());
    detached(conn, async move {
        open_tunnel_now(&owned, &host, port, from).await
    })
    .await
}

/// [`open_tunnel`], attached to the caller.
async fn open_tunnel_now(
    conn: &Arc<Connection>,
    host: &str,
    port: u16,
    from: Option<std::net::SocketAddr>,
) -> Result<ChannelLease, Error> {
    let slot = free_slot(conn).await?;
    let (from_host, from_port) = match from {
        Some(a) => (a.ip().to_string(), u32::from(a.port())),
        None => ("127.0.0.1".to_string(), 0),
    };
    match conn
        .handle
        .channel_open_direct_tcpip(host, u32::from(port), from_host, from_port)
        .await
    {
        Ok(channel) => Ok(lease(conn, channel, Some(slot), Closing::Terminate)),
        Err(russh::Error::ChannelOpenFailure(reason)) => {
            use russh::ChannelOpenFailure as F;
            Err(Error::Tunnel {
                host: conn.host.clone(),
                port: conn.port,
                to_host: host.to_string(),
                to_port: port,
                kind: match reason {
                    F::AdministrativelyProhibited => TunnelErrorKind::Prohibited,
                    F::ConnectFailed => TunnelErrorKind::ConnectFailed,
                    F::ResourceShortage => TunnelErrorKind::ResourceShortage,
                    _ => TunnelErrorKind::Unsupported,
                },
            })
        }
        Err(e) => Err(open_error(conn, e).await),
    }
}

/// Takes ownership of a channel the server opened (a remote forward's
/// tunnel), once a channel slot is free for it, holding the slot until it
/// is closed.
pub(crate) async fn adopt(
    conn: &Arc<Connection>,
    channel: Channel<Msg>,
) -> Result<ChannelLease, Error> {
    let slot = free_slot(conn).await?;
    Ok(lease(conn, channel, Some(slot), Closing::Terminate))
}

/// Takes ownership of an agent channel the server opened, outside the
/// session's channel limit: the limit counts session channels (sshd's
/// `MaxSessions`), and a command waiting on the agent holds one of them,
/// so waiting for a slot could wait forever.
pub(crate) fn adopt_agent(conn: &Arc<Connection>, channel: Channel<Msg>) -> ChannelLease {
    lease(conn, channel, None, Closing::Terminate)
}

/// A free slot under the session's channel limit. A channel parked
/// between uses gives way when none is free.
async fn free_slot(conn: &Arc<Connection>) -> Result<Slot, Error> {
    if conn.slots.free() == 0 {
        conn.clear_idle();
    }
    let slot = conn
        .slots
        .acquire()
        .await
        .ok_or_else(|| conn.lost("session closed"))?;
    if conn.is_closed() {
        return Err(conn.lost_after_end("connection closed").await);
    }
    Ok(slot)
}

fn lease(
    conn: &Arc<Connection>,
    channel: Channel<Msg>,
    slot: Option<Slot>,
    closing: Closing,
) -> ChannelLease {
    let (read, write) = channel.split();
    ChannelLease {
        conn: conn.clone(),
        read: Some(read),
        write: Arc::new(ChannelWriter {
            half: write,
            eof_sent: AtomicBool::new(false),
            conn: conn.clone(),
        }),
        slot,
        closing,
        started: false,
        exec_sent: false,
        ended: false,
        server_closed: false,
        pid_reader: None,
        pid: None,
        stashed: None,
        agent: None,
        opened_in: None,
    }
}

async fn open_error(conn: &Arc<Connection>, e: russh::Error) -> Error {
    if conn.is_closed() {
        return conn.lost_after_end(&e.to_string()).await;
    }
    Error::Protocol {
        host: conn.host.clone(),
        port: conn.port,
        reason: "channel open failed".to_string(),
        source: Some(Box::new(e)),
    }
}

/// Opens a channel and makes `requests` on it, in order, each answered
/// before the next is sent. A channel the server closed before its exec
/// request was sent ran nothing: that is retried on a fresh channel a few
/// times (dropbear up to 2024.85 closes fresh channels when an unrelated
/// child exits), as is a subsystem request (an SFTP server does nothing
/// until spoken to). An exec request is never sent again: the command may
/// be running or have run (dropbear 2022.83 runs a command on a channel it
/// closes unanswered).
pub(crate) async fn start(
    conn: &Arc<Connection>,
    closing: Closing,
    requests: &[Request<'_>],
) -> Result<ChannelLease, StartError> {
    match try_start(conn, closing, requests).await? {
        Started::Running(lease) => Ok(lease),
        // Refused: nothing ran.
        Started::Refused { error, .. } => Err(StartError { error, sent: false }),
    }
}

/// What [`try_start`] got.
pub(crate) enum Started {
    /// Every request was accepted.
    Running(ChannelLease),
    /// The server refused the program request ([`Error::RequestRefused`]):
    /// nothing runs on the channel, which can take another program request
    /// ([`ChannelLease::restart`]), sparing a channel open (and keeping the
    /// connection of a server that serves one channel per connection).
    Refused {
        /// The open channel.
        lease: ChannelLease,
        /// The refusal.
        error: Error,
    },
}

/// As [`start`], but a refused program request hands the channel back.
pub(crate) async fn try_start(
    conn: &Arc<Connection>,
    closing: Closing,
    requests: &[Request<'_>],
) -> Result<Started, StartError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut lease = open(conn, closing)
            .await
            .map_err(|error| StartError { error, sent: false })?;
        match lease.request_all(requests).await {
            Ok(()) => return Ok(Started::Running(lease)),
            // Only reported before an exec request went out (wait_reply):
            // nothing ran.
            Err(Error::ChannelOpen { .. }) if attempt < 5 && !conn.is_closed() => continue,
            Err(error @ Error::RequestRefused { .. }) if !lease.started => {
                return Ok(Started::Refused { lease, error });
            }
            Err(error) => {
                return Err(StartError {
                    error,
                    sent: lease.started,
                });
            }
        }
    }
}

impl ChannelLease {
    /// How long the server took to confirm this channel's open (a round
    /// trip, before any process starts there); `None` for a channel the
    /// server opened.
    pub(crate) fn opened_in(&self) -> Option<Duration> {
        self.opened_in
    }

    /// The connection the channel belongs to.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// Makes `requests` on a channel whose program request was refused
    /// (see [`Started::Refused`]), to be closed as `closing` says.
    pub(crate) async fn restart(
        mut self,
        closing: Closing,
        requests: &[Request<'_>],
    ) -> Result<ChannelLease, StartError> {
        self.closing = closing;
        match self.request_all(requests).await {
            Ok(()) => Ok(self),
            Err(error) => Err(StartError {
                error,
                sent: self.started,
            }),
        }
    }

    /// Closes a channel that has run nothing, now: unlike a drop, the
    /// close is sent (and the channel no longer counted among the live
    /// ones) when this returns.
    pub(crate) async fn close_unstarted(mut self) {
        if self.started || self.server_closed {
            return;
        }
        let _ = self.write.half.close().await;
        self.conn.live_channels().closed(self.write.half.id());
        // Closed: the drop only frees the slot.
        self.server_closed = true;
    }

    /// The sending side, shareable with a feeding task.
    pub(crate) fn writer(&self) -> &Arc<ChannelWriter> {
        &self.write
    }

    async fn request_all(&mut self, requests: &[Request<'_>]) -> Result<(), Error> {
        for request in requests {
            self.request(request).await?;
        }
        Ok(())
    }

    /// Sends one request with `want_reply` and waits for the answer.
    async fn request(&mut self, request: &Request<'_>) -> Result<(), Error> {
        let half = &self.write.half;
        let sent = match request {
            Request::Env(key, value) => half.set_env(true, *key, *value).await,
            Request::Pty => half.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await,
            Request::PtyWith(pty) => {
                half.request_pty(
                    true, pty.term, pty.cols, pty.rows, pty.width, pty.height, pty.modes,
                )
                .await
            }
            Request::Shell => half.request_shell(true).await,
            Request::Exec(line) | Request::ExecIdempotent(line) => {
                half.exec(true, line.as_bytes()).await
            }
            Request::Subsystem(name) => half.request_subsystem(true, *name).await,
            Request::AgentForward => {
                // Counted before the server can act on it.
                self.agent = Some(AgentAsk::new(self.conn.agent()));
                half.agent_forward(true).await
            }
        };
        if request.starts_program() {
            self.started = true;
        }
        if matches!(request, Request::Exec(_)) {
            self.exec_sent = true;
        }
        if let Request::Exec(line) | Request::ExecIdempotent(line) = request
            && line.starts_with(ANNOUNCE)
        {
            self.pid_reader = Some(PidReader::default());
        }
        if sent.is_err() {
            return Err(self.conn.lost_after_end("connection closed").await);
        }
        let reply = self.wait_reply(&request.name()).await;
        if let (Request::AgentForward, Err(Error::RequestRefused { .. })) = (request, &reply) {
            tracing::warn!(host = %self.conn.host, "the server refused agent forwarding; the command runs without an agent");
            self.agent = None;
            return Ok(());
        }
        if let Err(Error::RequestRefused { .. }) = reply
            && request.starts_program()
        {
            // Refused: nothing runs, and the channel can take another
            // program request.
            self.started = false;
        }
        reply
    }

    /// Waits for the reply to a `want_reply` channel request.
    async fn wait_reply(&mut self, request: &str) -> Result<(), Error> {
        loop {
            match self.recv().await {
                Some(ChannelMsg::Success) => return Ok(()),
                Some(ChannelMsg::Failure) => {
                    return Err(Error::RequestRefused {
                        host: self.conn.host.clone(),
                        port: self.conn.port,
                        request: request.to_string(),
                    });
                }
                Some(ChannelMsg::Close) | None if self.conn.is_closed() => {
                    return Err(self
                        .conn
                        .lost_after_end("connection closed during a channel request")
                        .await);
                }
                // The command may have run: dropbear 2022.83 runs a
                // command on a channel it then closes without an answer.
                // Not a refusal, not retryable.
                Some(ChannelMsg::Close) | None if self.exec_sent => {
                    return Err(Error::Protocol {
                        host: self.conn.host.clone(),
                        port: self.conn.port,
                        reason: format!(
                            "the server closed the channel without answering the {request} \
                             request; it may have run"
                        ),
                        source: None,
                    });
                }
                // No command was sent (dropbear up to 2024.85 closes fresh
                // channels when an unrelated child exits): callers may open
                // a new channel and try again.
                Some(ChannelMsg::Close) | None => {
                    return Err(Error::ChannelOpen {
                        host: self.conn.host.clone(),
                        port: self.conn.port,
                        reason: format!(
                            "the server closed the channel before accepting the {request} request"
                        ),
                    });
                }
                Some(_) => {}
            }
        }
    }

    /// Polls for the next message; `None` once the channel is gone. The
    /// command's PID announcement is taken off its stderr here.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChannelMsg>> {
        if let Some(msg) = self.stashed.take() {
            return Poll::Ready(Some(msg));
        }
        loop {
            let msg = match self.poll_raw(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(m) => m,
            };
            let Some(reader) = self.pid_reader.as_mut() else {
                return Poll::Ready(msg);
            };
            match msg {
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let (pid, rest) = reader.feed(data);
                    if pid.is_some() {
                        self.pid = pid;
                    }
                    if !rest.is_empty() {
                        return Poll::Ready(Some(ChannelMsg::ExtendedData { data: rest, ext: 1 }));
                    }
                }
                // Stderr ends before a whole announcement: what was held
                // is the command's, and goes first. (An exit status does
                // not end it: sshd may send it before the last of the
                // command's output, the announcement included.)
                other @ (Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => {
                    let held = reader.flush();
                    self.pid_reader = None;
                    if held.is_empty() {
                        return Poll::Ready(other);
                    }
                    self.stashed = other;
                    return Poll::Ready(Some(ChannelMsg::ExtendedData { data: held, ext: 1 }));
                }
                other => return Poll::Ready(other),
            }
        }
    }

    /// [`poll_recv`](Self::poll_recv) without the announcement's reading.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChannelMsg>> {
        let Some(read) = self.read.as_mut() else {
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
        match &msg {
            Some(ChannelMsg::Close) | None => {
                self.server_closed = true;
                // Not kept: a full queue would keep russh from reading.
                self.read = None;
                // The server stops offering the agent with the channel.
                self.agent = None;
            }
            Some(ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }) => {
                self.ended = true;
            }
            _ => {}
        }
        Poll::Ready(msg)
    }

    /// The next message; `None` once the channel is gone.
    pub(crate) async fn recv(&mut self) -> Option<ChannelMsg> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for ChannelLease {
    fn drop(&mut self) {
        let slot = self.slot.take();
        // Agent channels are accepted until this one is closed.
        let agent = self.agent.take();
        if self.server_closed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let write = self.write.clone();
        let read = if self.started { self.read.take() } else { None };
        let (terminate, eof, grace) = match self.closing {
            Closing::Terminate => (!self.ended, false, ABANDON_GRACE),
            Closing::Drain => (false, true, DRAIN_GRACE),
        };
        let mut pid = self.pid;
        let mut pid_reader = self.pid_reader.take();
        // A channel that never ran anything is closed at once; others hold
        // back new channels until the server has closed them.
        let guard = read.is_some().then(|| ClosingGuard::new(&self.conn));
        let body = async move {
            let mut server_closed = false;
            if let Some(mut read) = read {
                if terminate {
                    let _ = write.signal(Sig::TERM).await;
                }
                if eof {
                    let _ = write.eof().await;
                }
                // Only a close that comes from the server can be waited
                // for: once this side has sent CHANNEL_CLOSE, russh forgets
                // the channel and drops the server's reply. Closing alone
                // is not enough either: OpenSSH closes the command's pipes
                // (a writer dies of SIGPIPE, a silent command runs on),
                // dropbear keeps them open (even a writer blocks forever,
                // holding its channel).
                let drained = drain(&mut read, &mut pid, &mut pid_reader);
                server_closed = tokio::time::timeout(grace, drained).await.unwrap_or(false);
                // Servers that ignore the signal request (OpenSSH for root
                // logins, asyncssh by default): the command is stopped
                // through a second channel. (tinysshd, which ignores it
                // too, serves one channel per connection: its commands
                // outlive an abandonment.)
                if !server_closed
                    && terminate
                    && let Some(known) = pid
                    && !write.conn.is_closed()
                {
                    tracing::debug!(host = %write.conn.host, pid = known, "the abandoned command outlived SIGTERM; stopping its process group");
                    // Drained meanwhile: a full channel queue of this one
                    // would keep russh from reading the stopping channel's
                    // replies (a flooding command stalled each stop until
                    // its bound).
                    let stopping = stop_process(&write.conn, known);
                    let drained = drain(&mut read, &mut pid, &mut pid_reader);
                    let both = async { tokio::join!(stopping, drained).1 };
                    server_closed = tokio::time::timeout(STOP_GRACE, both)
                        .await
                        .unwrap_or(false);
                }
                // The read half is dropped here, before closing: a full
                // channel queue would otherwise keep russh from reading.
            }
            if !server_closed {
                let _ = write.half.close().await;
                // russh forgets a channel this side closes: the server's
                // reply never reaches the handler.
                write.conn.live_channels().closed(write.half.id());
            }
            drop(agent);
            drop(slot);
        };
        rt.spawn(async move {
            match guard {
                // The stopping channel is this closing's own work: it does
                // not wait for it.
                Some(guard) => winding_down(guard, body).await,
                None => body.await,
            }
        });
    }
}

/// Reads a channel until the server closes it (true) or it is gone,
/// taking the command's PID announcement when it comes.
async fn drain(
    read: &mut ChannelReadHalf,
    pid: &mut Option<u32>,
    reader: &mut Option<PidReader>,
) -> bool {
    while let Some(msg) = read.wait().await {
        match msg {
            ChannelMsg::Close => return true,
            ChannelMsg::ExtendedData { data, ext: 1 } if pid.is_none() => {
                if let Some(r) = reader.as_mut() {
                    *pid = r.feed(data).0;
                }
            }
            _ => {}
        }
    }
    false
}

/// Stops process `pid`'s group through a command on a channel of its own
/// ([`process::stop_line`]), waiting (bounded) for that command to end.
async fn stop_process(conn: &Arc<Connection>, pid: u32) {
    let line = process::stop_line(pid);
    let stopping = async {
        let Ok(mut lease) = start(conn, Closing::Terminate, &[Request::Exec(&line)]).await else {
            return;
        };
        let _ = lease.writer().eof().await;
        while lease.recv().await.is_some() {}
    };
    if tokio::time::timeout(STOP_GRACE, stopping).await.is_err() {
        tracing::debug!(host = %conn.host, pid, "stopping the abandoned command did not finish");
    }
}
