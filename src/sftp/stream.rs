//! The SFTP channel as the byte stream russh-sftp reads and writes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::channel::{ChannelLease, LeaseWriter, Release};

/// The SFTP channel as a byte stream for russh-sftp, firing `closed` when
/// the server ends it so pending requests fail at once instead of timing
/// out. Its lease closes the channel when russh-sftp drops the stream;
/// russh-sftp's shutdown is the channel's one end-of-file. From the moment
/// the [`Sftp`](super::Sftp) handle is dropped until russh-sftp drops the
/// stream, `_release` counts the channel as closing.
pub(crate) struct SftpStream {
    /// Dropped first: its closing takes over from `_release`'s.
    pub(crate) lease: ChannelLease,
    pub(crate) pending: Bytes,
    pub(crate) eof: bool,
    pub(crate) writer: LeaseWriter,
    pub(crate) closed: CancellationToken,
    /// Held, never read; dropped last (fields drop in declaration order).
    pub(crate) _release: Release,
}

impl AsyncRead for SftpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
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
            let msg = match this.lease.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(m) => m,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => this.pending = data,
                Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => {
                    this.eof = true;
                    this.closed.cancel();
                }
                Some(_) => {}
            }
        }
    }
}

impl AsyncWrite for SftpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.writer).poll_write(cx, buf);
        if let Poll::Ready(Err(_)) = &r {
            self.closed.cancel();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}
