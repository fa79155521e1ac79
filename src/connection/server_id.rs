//! The server's identification string ("SSH-2.0-OpenSSH_9.6p1 ..."), read
//! as it passes through to russh (which keeps it to itself), and what it
//! tells about the server's handling of channels.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much a server may send before its identification line (RFC 4253
/// allows other lines first) before this side stops looking.
const LOOK_LIMIT: usize = 8 * 1024;

/// The connection's stream, noting the server's identification line as
/// the handshake reads it; past that line it only passes bytes through.
pub(crate) struct NoteServerId<S> {
    inner: S,
    /// Where the line goes; `None` once found or given up.
    slot: Option<Arc<OnceLock<String>>>,
    /// The bytes of the line being read.
    line: Vec<u8>,
    /// Bytes looked at so far.
    seen: usize,
}

impl<S> NoteServerId<S> {
    pub(crate) fn new(inner: S, slot: Arc<OnceLock<String>>) -> Self {
        NoteServerId {
            inner,
            slot: Some(slot),
            line: Vec::new(),
            seen: 0,
        }
    }

    fn look(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let Some(slot) = &self.slot else {
                return;
            };
            self.seen += 1;
            if b != b'\n' {
                self.line.push(b);
            } else if self.line.starts_with(b"SSH-") {
                let line = String::from_utf8_lossy(&self.line);
                let _ = slot.set(line.trim_end_matches('\r').to_string());
                self.slot = None;
                self.line = Vec::new();
                return;
            } else {
                self.line.clear();
            }
            if self.seen > LOOK_LIMIT {
                self.slot = None;
                self.line = Vec::new();
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoteServerId<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.slot.is_some() && matches!(polled, Poll::Ready(Ok(()))) {
            self.look(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoteServerId<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether a server keeps a channel that was opened and has had no
/// request yet while other channels' programs end, so that a channel can
/// be opened ahead of its command. OpenSSH does. Dropbear before 2024.86
/// closes such a channel when any child of the connection exits, and
/// still runs a command requested on it after that close, aborting the
/// whole connection at the command's first output (seen with 2022.83;
/// `start` in channel/mod.rs). Others are not known: no.
pub(crate) fn keeps_unstarted_channels(server_id: &str) -> bool {
    let software = server_id
        .strip_prefix("SSH-2.0-")
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or_default();
    if software.starts_with("OpenSSH_") {
        return true;
    }
    let Some(version) = software.strip_prefix("dropbear_") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(year), Some(release)) => (year, release) >= (2024, 86),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[test]
    fn which_servers_keep_unstarted_channels() {
        assert!(keeps_unstarted_channels(
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
        ));
        assert!(keeps_unstarted_channels("SSH-2.0-OpenSSH_10.0"));
        assert!(keeps_unstarted_channels("SSH-2.0-dropbear_2025.89"));
        assert!(keeps_unstarted_channels("SSH-2.0-dropbear_2024.86"));
        assert!(!keeps_unstarted_channels("SSH-2.0-dropbear_2024.85"));
        assert!(!keeps_unstarted_channels("SSH-2.0-dropbear_2022.83"));
        assert!(!keeps_unstarted_channels("SSH-2.0-dropbear"));
        assert!(!keeps_unstarted_channels("SSH-2.0-AsyncSSH_2.14.2"));
        assert!(!keeps_unstarted_channels("SSH-2.0-tinyssh_noversion"));
        assert!(!keeps_unstarted_channels(""));
    }

    #[tokio::test]
    async fn the_identification_line_is_noted_and_every_byte_passes() {
        let sent = b"a line first\r\nSSH-2.0-OpenSSH_9.6 comment\r\n\x00\x01binary\n";
        let slot = Arc::new(OnceLock::new());
        // Read in small pieces: the line spans reads.
        let reader = tokio::io::BufReader::with_capacity(3, &sent[..]);
        let mut noted = NoteServerId::new(reader, slot.clone());
        let mut got = Vec::new();
        noted.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
        assert_eq!(
            slot.get().map(String::as_str),
            Some("SSH-2.0-OpenSSH_9.6 comment")
        );
    }

    #[tokio::test]
    async fn no_line_within_the_limit_is_given_up() {
        let sent = vec![b'x'; LOOK_LIMIT + 100];
        let slot = Arc::new(OnceLock::new());
        let mut noted = NoteServerId::new(&sent[..], slot.clone());
        let mut got = Vec::new();
        noted.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(slot.get().is_none());
        assert!(noted.line.is_empty());
    }
}
