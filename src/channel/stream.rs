//! A channel as a byte stream (`AsyncRead` + `AsyncWrite`): the one adapter
//! that tunnels (`forward.rs`) and the SFTP channel (`sftp/stream.rs`) wrap.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::{ChannelLease, LeaseWriter};

/// A channel's data as a byte stream. Reads end (`Ok(0)`) at the server's
/// end-of-file or close; a read after the connection was lost fails with
/// [`io::ErrorKind::ConnectionAborted`] and the reason. Shutting down the
/// write side sends end-of-file (once). Other messages (exit status,
/// stderr) are not part of the stream and are skipped.
///
/// Dropping it drops the lease, which closes the channel.
pub(crate) struct ChannelStream {
    lease: ChannelLease,
    writer: LeaseWriter,
    /// Received data not yet read.
    pending: Bytes,
    eof: bool,
    /// Cancelled when the stream ends: end-of-file, close, a lost
    /// connection or a failed write.
    ended: CancellationToken,
}

impl ChannelStream {
    /// The stream of `lease`'s channel.
    pub(crate) fn new(lease: ChannelLease) -> ChannelStream {
        ChannelStream {
            writer: lease.writer().writer(),
            lease,
            pending: Bytes::new(),
            eof: false,
            ended: CancellationToken::new(),
        }
    }

    /// Cancelled when the stream ends, whichever side ends it.
    pub(crate) fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Whether the read side has ended.
    pub(crate) fn at_eof(&self) -> bool {
        self.eof
    }
}

impl AsyncRead for ChannelStream {
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
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.lease.poll_recv(cx)) {
                Some(ChannelMsg::Data { data }) => this.pending = data,
                Some(ChannelMsg::Eof | ChannelMsg::Close) => {
                    this.eof = true;
                    this.ended.cancel();
                }
                None => {
                    this.eof = true;
                    this.ended.cancel();
                    let connection = this.lease.connection();
                    if connection.is_closed() {
                        let lost = connection.lost("connection closed");
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            lost.to_string(),
                        )));
                    }
                }
                Some(_) => {}
            }
        }
    }
}

impl AsyncWrite for ChannelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.writer).poll_write(cx, buf);
        if let Poll::Ready(Err(_)) = &r {
            self.ended.cancel();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}
