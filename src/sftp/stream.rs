//! The SFTP channel as the byte stream russh-sftp reads and writes.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::channel::{ChannelStream, Release};

/// The SFTP channel as a byte stream for russh-sftp. Its
/// [`ended`](ChannelStream::ended) token fires when the server ends it, so
/// pending requests fail at once instead of timing out. Its lease closes
/// the channel when russh-sftp drops the stream; russh-sftp's shutdown is
/// the channel's one end-of-file. From the moment the
/// [`Sftp`](super::Sftp) handle is dropped until russh-sftp drops the
/// stream, `_release` counts the channel as closing.
pub(crate) struct SftpStream {
    /// Dropped first: its closing takes over from `_release`'s.
    pub(crate) stream: ChannelStream,
    /// Held, never read; dropped last (fields drop in declaration order).
    pub(crate) _release: Release,
}

impl AsyncRead for SftpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SftpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
