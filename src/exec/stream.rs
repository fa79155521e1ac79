//! [`ExecStream`]: the live output of a running command.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use russh::{ChannelMsg, Sig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::channel::{ChannelLease, ChannelWriter};
use crate::error::Error;
use crate::session::Session;

use super::Chunk;
pub(super) use crate::status::ExitStatus;
use crate::sudo::{Gate, GateEvent};

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
    pub(super) lease: Option<ChannelLease>,
    pub(super) writer: Arc<ChannelWriter>,
    pub(super) session: Session,
    pub(super) status: Option<ExitStatus>,
    pub(super) finished: bool,
    /// Reading sudo's side off stderr, until the command starts.
    pub(super) sudo: Option<SudoGate>,
    /// sudo asked for the password twice: the stream ends in an error.
    pub(super) sudo_rejected: bool,
    /// The channel closed; held stderr was handed out first.
    pub(super) closed: bool,
    pub(super) stdin_task: Option<JoinHandle<Result<(), std::io::Error>>>,
    pub(super) deadline: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

/// A command's sudo gate and the way to the task that answers sudo.
pub(super) struct SudoGate {
    pub(super) gate: Gate,
    pub(super) events: mpsc::Sender<GateEvent>,
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
