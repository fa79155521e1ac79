//! Moving files: the one upload/download façade that
//! [`Session`]'s transfer methods and provisioning use. It speaks SFTP
//! where the server has it, and otherwise streams through `cat` over an
//! exec channel (minimal images running dropbear alone).

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, SftpErrorKind};
use crate::session::Session;
use crate::sftp::TransferOptions;
use crate::sftp::fallback;
use crate::sftp::upload::open_local;

impl Session {
    /// Uploads a local file to `remote`, with the default
    /// [`TransferOptions`] (atomic, keeps the local mode).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the local file cannot be read (before anything is
    /// sent); [`Error::Sftp`] naming the remote path on a remote failure;
    /// [`Error::ConnectionLost`] when the connection ends mid-transfer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the transfer; with atomic replace the
    /// destination is untouched (a temporary file may remain if the
    /// connection is gone).
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<u64, Error> {
        self.upload_with(local, remote, &TransferOptions::default())
            .await
    }

    /// Uploads a local file with options. Returns the bytes sent.
    ///
    /// On a server without an SFTP subsystem (minimal images running
    /// dropbear alone), the file is streamed through `cat` over an exec
    /// channel instead, with the same atomic rename and mode.
    ///
    /// # Errors
    ///
    /// As [`upload`](Self::upload).
    ///
    /// # Cancel safety
    ///
    /// As [`upload`](Self::upload).
    pub async fn upload_with(
        &self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        match self.sftp().await {
            Ok(sftp) => sftp.upload_with(local, remote, opts).await,
            Err(e) if is_unsupported(&e) => {
                let (file, len, mode) = open_local(local).await?;
                let mode = opts.mode.unwrap_or(mode);
                fallback::upload(self, file, Some(len), remote, mode, opts).await
            }
            Err(e) => Err(e),
        }
    }

    /// Uploads everything `reader` yields to `remote` (mode 0644 unless
    /// set). Returns the bytes sent. Falls back to `cat` over exec like
    /// [`upload_with`](Self::upload_with).
    ///
    /// # Errors
    ///
    /// As [`upload`](Self::upload).
    ///
    /// # Cancel safety
    ///
    /// As [`upload`](Self::upload).
    pub async fn upload_from_reader<R>(
        &self,
        reader: R,
        size_hint: Option<u64>,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        match self.sftp().await {
            Ok(sftp) => {
                sftp.upload_from_reader(reader, size_hint, remote, opts)
                    .await
            }
            Err(e) if is_unsupported(&e) => {
                let mode = opts.mode.unwrap_or(0o644);
                fallback::upload(self, reader, size_hint, remote, mode, opts).await
            }
            Err(e) => Err(e),
        }
    }

    /// Downloads `remote` to a local file (atomically, keeping the remote
    /// mode). Returns the bytes received.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] when the remote file cannot be read; [`Error::Io`]
    /// when the local file cannot be written; [`Error::ConnectionLost`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the transfer; the local destination is
    /// untouched, the temporary file is removed where possible.
    pub async fn download(&self, remote: &str, local: &Path) -> Result<u64, Error> {
        self.download_with(remote, local, &TransferOptions::default())
            .await
    }

    /// Downloads `remote` to a local file, with options.
    ///
    /// # Errors
    ///
    /// As [`download`](Self::download).
    ///
    /// # Cancel safety
    ///
    /// As [`download`](Self::download).
    pub async fn download_with(
        &self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        self.sftp().await?.download_with(remote, local, opts).await
    }

    /// Streams a remote file through `cat` over exec: the download path for
    /// servers without SFTP.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] with the remote `cat` error when it fails; errors of
    /// [`exec_streaming`](Self::exec_streaming).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the channel.
    pub async fn download_via_exec<W>(&self, remote: &str, writer: &mut W) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        fallback::download(self, remote, writer).await
    }

    /// Streams `remote` into `writer`. Returns the bytes written.
    ///
    /// # Errors
    ///
    /// As [`download`](Self::download).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the transfer.
    pub async fn download_to_writer<W>(
        &self,
        remote: &str,
        writer: &mut W,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        self.sftp()
            .await?
            .download_to_writer(remote, writer, opts)
            .await
    }
}

fn is_unsupported(e: &Error) -> bool {
    matches!(
        e,
        Error::Sftp {
            kind: SftpErrorKind::Unsupported,
            ..
        }
    )
}
