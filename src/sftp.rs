//! File transfer over SFTP: streaming, pipelined uploads and downloads with
//! atomic replace, modes and progress, plus an [`Sftp`] handle for file
//! system operations.
//!
//! Throughput comes from requests in flight, not from big buffers: a
//! transfer keeps up to [`TransferOptions::requests_in_flight`] reads or
//! writes outstanding, each at most [`TransferOptions::chunk_size`] bytes
//! (clamped to what the server's `limits@openssh.com` allows). Memory per
//! transfer is bounded by their product whatever the file size.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Future, StreamExt};
use russh::ChannelMsg;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::extensions::HardlinkExtension;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::channel::{self, ChannelLease, Closing, LeaseWriter, Request};
use crate::error::{Error, SftpErrorKind};
use crate::exec::{Command, shell_quote};
use crate::session::Session;

/// Progress of one transfer: bytes acknowledged so far and the total when
/// known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written (upload: acknowledged by the server; download:
    /// written locally).
    pub done: u64,
    /// Total size, when known in advance.
    pub total: Option<u64>,
}

type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Options for uploads and downloads.
///
/// # Example
///
/// ```
/// use vmssh::sftp::TransferOptions;
///
/// let opts = TransferOptions::new()
///     .mode(0o755)
///     .create_parents(true)
///     .on_progress(|p| eprintln!("{} / {:?}", p.done, p.total));
/// # let _ = opts;
/// ```
#[derive(Clone)]
#[must_use]
pub struct TransferOptions {
    mode: Option<u32>,
    create_parents: bool,
    atomic: bool,
    overwrite: bool,
    fsync: bool,
    chunk_size: Option<u32>,
    in_flight: Option<usize>,
    progress: Option<ProgressFn>,
}

/// Defaults per direction, from `cargo bench --bench compare` (BENCHMARKS.md):
/// uploads are bound by client CPU and gained nothing from more than 16
/// writes in flight; downloads gained from larger reads.
const UPLOAD_CHUNK: u32 = 32 * 1024;
const UPLOAD_IN_FLIGHT: usize = 16;
const DOWNLOAD_CHUNK: u32 = 128 * 1024;
const DOWNLOAD_IN_FLIGHT: usize = 32;

/// Options for [`Session::upload_with`]; the same type serves downloads.
pub type UploadOptions = TransferOptions;

impl fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferOptions")
            .field("mode", &self.mode.map(|m| format!("{m:o}")))
            .field("create_parents", &self.create_parents)
            .field("atomic", &self.atomic)
            .field("overwrite", &self.overwrite)
            .field("fsync", &self.fsync)
            .field("chunk_size", &self.chunk_size)
            .field("in_flight", &self.in_flight)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            mode: None,
            create_parents: false,
            atomic: true,
            overwrite: true,
            fsync: true,
            chunk_size: None,
            in_flight: None,
            progress: None,
        }
    }
}

impl TransferOptions {
    /// The defaults: atomic, overwrite, fsync, keep modes; uploads keep 16
    /// writes of 32 KiB in flight, downloads 32 reads of 128 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the destination file.
    ///
    /// Default: an upload from a file keeps the local file's mode, from a
    /// reader 0644; a download keeps the remote file's mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o7777);
        self
    }

    /// Create missing parent directories of the destination.
    ///
    /// Default: false.
    pub fn create_parents(mut self, on: bool) -> Self {
        self.create_parents = on;
        self
    }

    /// Write to a temporary file in the destination's directory, then
    /// rename it over the destination, so readers never see a partial file
    /// and a failed transfer leaves the old one intact.
    ///
    /// Default: true.
    pub fn atomic(mut self, on: bool) -> Self {
        self.atomic = on;
        self
    }

    /// Replace an existing destination. When false, an existing destination
    /// fails the transfer with [`SftpErrorKind::AlreadyExists`].
    ///
    /// Default: true.
    pub fn overwrite(mut self, on: bool) -> Self {
        self.overwrite = on;
        self
    }

    /// Flush the file to disk before the rename, where the server supports
    /// `fsync@openssh.com` (uploads) or locally (downloads).
    ///
    /// Default: true.
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Bytes per read or write request (clamped to the server's limits).
    ///
    /// Default: 32 KiB for uploads, 128 KiB for downloads.
    pub fn chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = Some(bytes.clamp(512, 255 * 1024));
        self
    }

    /// Requests kept outstanding at once.
    ///
    /// Default: 16 for uploads, 32 for downloads.
    pub fn requests_in_flight(mut self, n: usize) -> Self {
        self.in_flight = Some(n.clamp(1, 1024));
        self
    }

    /// Called as the transfer advances (after each acknowledged request).
    /// Keep it cheap: it runs on the transfer's task.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    fn report(&self, done: u64, total: Option<u64>) {
        if let Some(p) = &self.progress {
            p(Progress { done, total });
        }
    }
}

/// Metadata of a remote file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// Size in bytes, when the server reports it.
    pub size: Option<u64>,
    /// Permission bits (`0o7777` part of the mode).
    pub mode: Option<u32>,
    /// Modification time, seconds since the epoch.
    pub mtime: Option<u32>,
    /// Owner and group ids.
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
    file_type: Option<u32>,
}

impl Metadata {
    fn from_attrs(a: &FileAttributes) -> Self {
        Metadata {
            size: a.size,
            mode: a.permissions.map(|p| p & 0o7777),
            mtime: a.mtime,
            uid: a.uid,
            gid: a.gid,
            file_type: a.permissions.map(|p| p & 0o170000),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == Some(0o040000)
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type == Some(0o100000)
    }

    /// Whether this is a symbolic link (from [`Sftp::lstat`]).
    pub fn is_symlink(&self) -> bool {
        self.file_type == Some(0o120000)
    }
}

/// One entry of [`Sftp::read_dir`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirEntry {
    /// The file name (not the full path).
    pub name: String,
    /// Its metadata.
    pub metadata: Metadata,
}

/// An SFTP subsystem channel, for many operations on one channel.
///
/// Cheap to clone; the channel closes when the last clone is dropped.
/// Operations fail with [`Error::ConnectionLost`] as soon as the channel or
/// connection ends, rather than waiting for a request timeout.
#[derive(Clone)]
pub struct Sftp {
    inner: Arc<SftpInner>,
}

struct SftpInner {
    raw: RawSftpSession,
    session: Session,
    closed: CancellationToken,
    max_read: u32,
    max_write: u32,
    fsync: bool,
    posix_rename: bool,
}

impl fmt::Debug for Sftp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sftp")
            .field("host", &self.inner.session.host())
            .field("max_read", &self.inner.max_read)
            .field("max_write", &self.inner.max_write)
            .field("fsync", &self.inner.fsync)
            .field("posix_rename", &self.inner.posix_rename)
            .finish()
    }
}

/// The SFTP channel as a byte stream for russh-sftp, firing `closed` when
/// the server ends it so pending requests fail at once instead of timing
/// out. Its lease closes the channel when russh-sftp drops the stream;
/// russh-sftp's shutdown is the channel's one end-of-file.
struct SftpStream {
    lease: ChannelLease,
    pending: Bytes,
    eof: bool,
    writer: LeaseWriter,
    closed: CancellationToken,
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

impl Session {
    /// Opens an SFTP subsystem channel.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] with [`SftpErrorKind::Unsupported`] when the server
    /// has no SFTP subsystem; [`Error::ConnectionLost`] when the connection
    /// is gone.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-opened channel.
    pub async fn sftp(&self) -> Result<Sftp, Error> {
        let lease = channel::start(self, Closing::Drain, &[Request::Subsystem("sftp")])
            .await
            .map_err(|e| match e {
                Error::RequestRefused { .. } => Error::Sftp {
                    host: self.host().to_string(),
                    port: self.port(),
                    op: "subsystem".to_string(),
                    path: String::new(),
                    kind: SftpErrorKind::Unsupported,
                    source: None,
                },
                other => other,
            })?;
        let closed = CancellationToken::new();
        let stream = SftpStream {
            writer: lease.writer().writer(),
            lease,
            pending: Bytes::new(),
            eof: false,
            closed: closed.clone(),
        };
        let cfg = russh_sftp::client::Config {
            request_timeout_secs: 3600,
            ..Default::default()
        };
        let mut raw = RawSftpSession::new_with_config(stream, cfg);
        let version = tokio::select! {
            v = raw.init() => v.map_err(|e| sftp_error(self, &closed, "init", "", e))?,
            _ = closed.cancelled() => return Err(self.lost("SFTP channel closed during init")),
            _ = self.closed() => return Err(self.lost("SFTP channel closed during init")),
        };
        let has = |name: &str| version.extensions.contains_key(name);
        let (mut max_read, mut max_write) = (255 * 1024u32, 255 * 1024u32);
        if has(russh_sftp::extensions::LIMITS)
            && let Ok(l) = raw.limits().await
        {
            if l.max_read_len > 0 {
                max_read = l.max_read_len.min(u64::from(u32::MAX)) as u32;
            }
            if l.max_write_len > 0 {
                max_write = l.max_write_len.min(u64::from(u32::MAX)) as u32;
            }
            raw.set_limits(russh_sftp::client::rawsession::Limits::from(l));
        }
        Ok(Sftp {
            inner: Arc::new(SftpInner {
                raw,
                session: self.clone(),
                closed,
                max_read,
                max_write,
                fsync: has(russh_sftp::extensions::FSYNC),
                posix_rename: has("posix-rename@openssh.com"),
            }),
        })
    }

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
                self.upload_via_exec(file, Some(len), remote, mode, opts)
                    .await
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
                self.upload_via_exec(reader, size_hint, remote, mode, opts)
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// Uploads through `cat` on an exec channel, for servers without SFTP.
    async fn upload_via_exec<R>(
        &self,
        reader: R,
        total: Option<u64>,
        remote: &str,
        mode: u32,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let dest = shell_quote(remote);
        let tmp = if opts.atomic {
            shell_quote(&temp_name_for(remote))
        } else {
            dest.clone()
        };
        let mut script = String::from("set -e; ");
        if opts.create_parents
            && let Some(dir) = parent_of(remote)
        {
            script.push_str(&format!("mkdir -p -- {}; ", shell_quote(dir)));
        }
        if !opts.overwrite {
            script.push_str(&format!(
                "if [ -e {dest} ]; then echo 'vmssh: destination exists' >&2; exit 17; fi; "
            ));
        }
        if opts.atomic {
            script.push_str(&format!(
                "trap {} EXIT; ",
                shell_quote(&format!("rm -f -- {tmp}"))
            ));
        }
        script.push_str(&format!("umask 077; cat > {tmp}; chmod {mode:o} {tmp}; "));
        if opts.atomic {
            script.push_str(&format!("mv -f -- {tmp} {dest}; trap - EXIT"));
        }
        let counted = CountingReader {
            inner: reader,
            done: 0,
            total,
            progress: opts.progress.clone(),
        };
        let out = self
            .exec_command(Command::new(script).stdin_reader(counted))
            .await?;
        if out.status.success() {
            opts.report(total.unwrap_or(0), total);
            return Ok(total.unwrap_or(0));
        }
        let stderr = out.stderr_lossy();
        let kind = if out.status.code() == Some(17) {
            SftpErrorKind::AlreadyExists
        } else if stderr.contains("Permission denied") {
            SftpErrorKind::PermissionDenied
        } else if stderr.contains("No such file") {
            SftpErrorKind::NotFound
        } else if stderr.contains("No space") {
            SftpErrorKind::NoSpace
        } else {
            SftpErrorKind::Other
        };
        Err(Error::Sftp {
            host: self.host().to_string(),
            port: self.port(),
            op: "upload (exec fallback)".to_string(),
            path: remote.to_string(),
            kind,
            source: Some(format!("{}: {}", out.status, stderr.trim()).into()),
        })
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
        let mut stream = self
            .exec_streaming(&format!("cat -- {}", shell_quote(remote)))
            .await?;
        let mut n = 0u64;
        let mut stderr = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk? {
                crate::Chunk::Stdout(b) => {
                    writer
                        .write_all(&b)
                        .await
                        .map_err(|e| Error::io("cannot write downloaded data", e))?;
                    n += b.len() as u64;
                }
                crate::Chunk::Stderr(b) => {
                    if stderr.len() < 4096 {
                        stderr.extend_from_slice(&b);
                    }
                }
            }
        }
        let status = stream.exit_status().await?;
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr).trim().to_string();
            let kind = if text.contains("No such file") {
                SftpErrorKind::NotFound
            } else if text.contains("Permission denied") {
                SftpErrorKind::PermissionDenied
            } else {
                SftpErrorKind::Other
            };
            return Err(Error::Sftp {
                host: self.host().to_string(),
                port: self.port(),
                op: "download (exec)".to_string(),
                path: remote.to_string(),
                kind,
                source: Some(format!("{status}: {text}").into()),
            });
        }
        writer
            .flush()
            .await
            .map_err(|e| Error::io("cannot write downloaded data", e))?;
        Ok(n)
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

/// Opens a local file for upload: the file, its length and its mode.
async fn open_local(local: &Path) -> Result<(tokio::fs::File, u64, u32), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| Error::io(format!("cannot open local file {}", local.display()), e))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| Error::io(format!("cannot stat local file {}", local.display()), e))?;
    if meta.is_dir() {
        return Err(Error::io(
            format!("local path {} is a directory", local.display()),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    Ok((file, meta.len(), meta.permissions().mode() & 0o7777))
}

/// Counts bytes read and reports progress (exec fallback).
struct CountingReader<R> {
    inner: R,
    done: u64,
    total: Option<u64>,
    progress: Option<ProgressFn>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.done += n;
            if let Some(p) = &self.progress {
                p(Progress {
                    done: self.done,
                    total: self.total,
                });
            }
        }
        r
    }
}

/// Maps a russh-sftp error to ours, naming the operation and path.
fn sftp_error(
    sess: &Session,
    closed: &CancellationToken,
    op: &str,
    path: &str,
    e: SftpError,
) -> Error {
    let kind = match &e {
        SftpError::Status(s) => match s.status_code {
            StatusCode::NoSuchFile => SftpErrorKind::NotFound,
            StatusCode::PermissionDenied => SftpErrorKind::PermissionDenied,
            StatusCode::OpUnsupported => SftpErrorKind::Unsupported,
            StatusCode::NoConnection | StatusCode::ConnectionLost => SftpErrorKind::ConnectionLost,
            _ => {
                let m = s.error_message.to_ascii_lowercase();
                if m.contains("no space") || m.contains("quota") {
                    SftpErrorKind::NoSpace
                } else {
                    SftpErrorKind::Other
                }
            }
        },
        _ if closed.is_cancelled() || sess.is_closed() => {
            return sess.lost("SFTP channel closed");
        }
        _ => SftpErrorKind::Other,
    };
    if kind == SftpErrorKind::ConnectionLost {
        return sess.lost("SFTP channel closed");
    }
    Error::Sftp {
        host: sess.host().to_string(),
        port: sess.port(),
        op: op.to_string(),
        path: path.to_string(),
        kind,
        source: Some(Box::new(e)),
    }
}

fn is_status(e: &SftpError, code: StatusCode) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == code)
}

fn mode_attrs(mode: u32) -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.permissions = Some(mode);
    a
}

fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&trimmed[..i]),
        None => None,
    }
}

fn file_name_of(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

fn temp_name_for(remote: &str) -> String {
    let tag: u64 = rand::random();
    let name = format!(".{}.vmssh-{tag:016x}.tmp", file_name_of(remote));
    match parent_of(remote) {
        Some("/") => format!("/{name}"),
        Some(dir) => format!("{dir}/{name}"),
        None => name,
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl Sftp {
    /// Resolves when the channel or the whole connection has ended.
    async fn gone(&self) {
        tokio::select! {
            _ = self.inner.closed.cancelled() => {}
            _ = self.inner.session.closed() => {}
        }
    }

    /// Whether the channel or the whole connection has ended.
    fn is_gone(&self) -> bool {
        self.inner.closed.is_cancelled() || self.inner.session.is_closed()
    }

    fn err(&self, op: &str, path: &str, e: SftpError) -> Error {
        sftp_error(&self.inner.session, &self.inner.closed, op, path, e)
    }

    /// Runs one request, failing fast when the channel closes.
    async fn call<T>(
        &self,
        op: &str,
        path: &str,
        fut: impl Future<Output = Result<T, SftpError>>,
    ) -> Result<T, Error> {
        tokio::select! {
            r = fut => r.map_err(|e| self.err(op, path, e)),
            _ = self.gone() => Err(self.inner.session.lost("SFTP channel closed")),
        }
    }

    /// Metadata of `path`, following symlinks.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] ([`SftpErrorKind::NotFound`] when it does not exist).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn stat(&self, path: &str) -> Result<Metadata, Error> {
        let a = self.call("stat", path, self.inner.raw.stat(path)).await?;
        Ok(Metadata::from_attrs(&a.attrs))
    }

    /// Metadata of `path` itself (a symlink is not followed).
    ///
    /// # Errors
    ///
    /// As [`stat`](Self::stat).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn lstat(&self, path: &str) -> Result<Metadata, Error> {
        let a = self.call("lstat", path, self.inner.raw.lstat(path)).await?;
        Ok(Metadata::from_attrs(&a.attrs))
    }

    /// Whether `path` exists.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] for failures other than "not found".
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn exists(&self, path: &str) -> Result<bool, Error> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates `path` and any missing parents (like `mkdir -p`), with mode
    /// 0755 for new directories.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] when a component cannot be created or exists as a
    /// non-directory.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; some directories may have been created.
    pub async fn mkdir_all(&self, path: &str) -> Result<(), Error> {
        let mut missing = Vec::new();
        let mut cur = Some(path.trim_end_matches('/'));
        while let Some(p) = cur.filter(|p| !p.is_empty()) {
            match self.stat(p).await {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(Error::Sftp {
                        host: self.inner.session.host().to_string(),
                        port: self.inner.session.port(),
                        op: "mkdir".to_string(),
                        path: p.to_string(),
                        kind: SftpErrorKind::AlreadyExists,
                        source: Some("exists and is not a directory".into()),
                    });
                }
                Err(Error::Sftp {
                    kind: SftpErrorKind::NotFound,
                    ..
                }) => {
                    missing.push(p);
                    cur = parent_of(p);
                }
                Err(e) => return Err(e),
            }
        }
        for dir in missing.into_iter().rev() {
            let r = tokio::select! {
                r = self.inner.raw.mkdir(dir, mode_attrs(0o755)) => r,
                _ = self.gone() => return Err(self.inner.session.lost("SFTP channel closed")),
            };
            if let Err(e) = r {
                // Someone else may have created it meanwhile.
                if !matches!(self.stat(dir).await, Ok(m) if m.is_dir()) {
                    return Err(self.err("mkdir", dir, e));
                }
            }
        }
        Ok(())
    }

    /// Removes a file.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn remove(&self, path: &str) -> Result<(), Error> {
        self.call("remove", path, self.inner.raw.remove(path))
            .await
            .map(drop)
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn remove_dir(&self, path: &str) -> Result<(), Error> {
        self.call("rmdir", path, self.inner.raw.rmdir(path))
            .await
            .map(drop)
    }

    /// Renames `from` to `to`, replacing `to` if it exists (atomically
    /// where the server offers `posix-rename@openssh.com`; otherwise `to`
    /// is removed first).
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        if self.inner.posix_rename {
            let data: Vec<u8> = HardlinkExtension {
                oldpath: from.to_string(),
                newpath: to.to_string(),
            }
            .try_into()
            .map_err(|e| self.err("rename", to, SftpError::from(e)))?;
            let reply = self
                .call(
                    "rename",
                    to,
                    self.inner.raw.extended("posix-rename@openssh.com", data),
                )
                .await?;
            return match reply {
                Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
                Packet::Status(s) => Err(self.err("rename", to, SftpError::Status(s))),
                _ => Err(self.err("rename", to, SftpError::UnexpectedPacket)),
            };
        }
        match self.inner.raw.rename(from, to).await {
            Ok(_) => Ok(()),
            Err(_) if self.exists(to).await.unwrap_or(false) => {
                self.remove(to).await?;
                self.call("rename", to, self.inner.raw.rename(from, to))
                    .await
                    .map(drop)
            }
            Err(e) => Err(self.err("rename", to, e)),
        }
    }

    /// Renames without replacing: fails if `to` exists.
    async fn rename_no_replace(&self, from: &str, to: &str) -> Result<(), Error> {
        match self.inner.raw.rename(from, to).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if self.exists(to).await.unwrap_or(false) {
                    Err(self.already_exists("rename", to))
                } else {
                    Err(self.err("rename", to, e))
                }
            }
        }
    }

    fn already_exists(&self, op: &str, path: &str) -> Error {
        Error::Sftp {
            host: self.inner.session.host().to_string(),
            port: self.inner.session.port(),
            op: op.to_string(),
            path: path.to_string(),
            kind: SftpErrorKind::AlreadyExists,
            source: None,
        }
    }

    /// Sets the permission bits of `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn set_mode(&self, path: &str, mode: u32) -> Result<(), Error> {
        self.call(
            "setstat",
            path,
            self.inner.raw.setstat(path, mode_attrs(mode & 0o7777)),
        )
        .await
        .map(drop)
    }

    /// Lists a directory (without `.` and `..`).
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the directory handle may stay open until the channel
    /// closes.
    pub async fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let handle = self
            .call("opendir", path, self.inner.raw.opendir(path))
            .await?
            .handle;
        let mut entries = Vec::new();
        let result = loop {
            let r = tokio::select! {
                r = self.inner.raw.readdir(handle.as_str()) => r,
                _ = self.gone() => break Err(self.inner.session.lost("SFTP channel closed")),
            };
            match r {
                Ok(name) => entries.extend(
                    name.files
                        .into_iter()
                        .filter(|f| f.filename != "." && f.filename != "..")
                        .map(|f| DirEntry {
                            metadata: Metadata::from_attrs(&f.attrs),
                            name: f.filename,
                        }),
                ),
                Err(e) if is_status(&e, StatusCode::Eof) => break Ok(()),
                Err(e) => break Err(self.err("readdir", path, e)),
            }
        };
        let _ = self.call("close", path, self.inner.raw.close(handle)).await;
        result.map(|()| entries)
    }

    /// Uploads a local file. See [`Session::upload_with`].
    ///
    /// # Errors
    ///
    /// As [`Session::upload`].
    ///
    /// # Cancel safety
    ///
    /// As [`Session::upload`].
    pub async fn upload_with(
        &self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        let (file, len, local_mode) = open_local(local).await?;
        let mut opts = opts.clone();
        if opts.mode.is_none() {
            opts.mode = Some(local_mode);
        }
        let reader = tokio::io::BufReader::with_capacity(256 * 1024, file);
        self.upload_from_reader(reader, Some(len), remote, &opts)
            .await
            .map_err(|e| match e {
                Error::Io { context, source } if context.starts_with("cannot read local") => {
                    Error::Io {
                        context: format!("cannot read local file {}", local.display()),
                        source,
                    }
                }
                other => other,
            })
    }

    /// Uploads everything `reader` yields. See
    /// [`Session::upload_from_reader`].
    ///
    /// # Errors
    ///
    /// As [`Session::upload`].
    ///
    /// # Cancel safety
    ///
    /// As [`Session::upload`].
    pub async fn upload_from_reader<R>(
        &self,
        mut reader: R,
        size_hint: Option<u64>,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        if opts.create_parents
            && let Some(dir) = parent_of(remote)
        {
            self.mkdir_all(dir).await?;
        }
        if !opts.overwrite && self.exists(remote).await? {
            return Err(self.already_exists("open", remote));
        }
        let mode = opts.mode.unwrap_or(0o644);
        let target = if opts.atomic {
            temp_name_for(remote)
        } else {
            remote.to_string()
        };
        let mut flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        if opts.atomic || !opts.overwrite {
            flags |= OpenFlags::EXCLUDE;
        }
        // Create owner-only until complete; the final mode is set at the end.
        let handle = self
            .call(
                "open",
                remote,
                self.inner
                    .raw
                    .open(target.as_str(), flags, mode_attrs(0o600 | (mode & 0o700))),
            )
            .await
            .map_err(|e| match e {
                Error::Sftp {
                    host,
                    port,
                    op,
                    kind,
                    source,
                    ..
                } => Error::Sftp {
                    host,
                    port,
                    op,
                    path: remote.to_string(),
                    kind,
                    source,
                },
                other => other,
            })?
            .handle;
        let result = self
            .write_all_pipelined(&handle, &mut reader, size_hint, remote, &target, mode, opts)
            .await;
        match result {
            Ok(n) => Ok(n),
            Err(e) => {
                // Leave no partial file behind where we still can.
                if !self.is_gone() {
                    let _ = self
                        .call("close", remote, self.inner.raw.close(handle.as_str()))
                        .await;
                    if opts.atomic {
                        let _ = self
                            .call("remove", &target, self.inner.raw.remove(target.as_str()))
                            .await;
                    }
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_all_pipelined<R>(
        &self,
        handle: &str,
        reader: &mut R,
        total: Option<u64>,
        remote: &str,
        target: &str,
        mode: u32,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let raw = &self.inner.raw;
        let chunk = opts
            .chunk_size
            .unwrap_or(UPLOAD_CHUNK)
            .min(self.inner.max_write)
            .max(1) as usize;
        let max_in_flight = opts.in_flight.unwrap_or(UPLOAD_IN_FLIGHT);
        let mut in_flight = FuturesUnordered::new();
        let mut offset = 0u64;
        let mut acked = 0u64;
        let mut eof = false;
        opts.report(0, total);
        loop {
            while !eof && in_flight.len() < max_in_flight {
                let mut buf = vec![0u8; chunk];
                let n = read_full(reader, &mut buf)
                    .await
                    .map_err(|e| Error::io("cannot read local data", e))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                buf.truncate(n);
                let at = offset;
                offset += n as u64;
                in_flight.push(async move { raw.write(handle, at, buf).await.map(|_| n as u64) });
                if n < chunk {
                    eof = true;
                }
            }
            if in_flight.is_empty() {
                break;
            }
            let done = tokio::select! {
                r = in_flight.next() => r,
                _ = self.gone() => return Err(self.inner.session.lost("SFTP channel closed during upload")),
            };
            if let Some(r) = done {
                acked += r.map_err(|e| self.err("write", remote, e))?;
                opts.report(acked, total);
            }
        }
        drop(in_flight);
        if opts.fsync && self.inner.fsync {
            self.call("fsync", remote, raw.fsync(handle)).await?;
        }
        self.call("fsetstat", remote, raw.fsetstat(handle, mode_attrs(mode)))
            .await?;
        self.call("close", remote, raw.close(handle)).await?;
        if opts.atomic {
            if opts.overwrite {
                self.rename(target, remote).await?;
            } else {
                self.rename_no_replace(target, remote).await?;
            }
        }
        Ok(acked)
    }

    /// Downloads `remote` to a local file. See [`Session::download_with`].
    ///
    /// # Errors
    ///
    /// As [`Session::download`].
    ///
    /// # Cancel safety
    ///
    /// As [`Session::download`].
    pub async fn download_with(
        &self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        let io_err = |what: &str, p: &Path, e| Error::io(format!("{what} {}", p.display()), e);
        if opts.create_parents
            && let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_err("cannot create local directory", dir, e))?;
        }
        if !opts.overwrite && tokio::fs::try_exists(local).await.unwrap_or(false) {
            return Err(io_err(
                "local file exists:",
                local,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let target: PathBuf = if opts.atomic {
            let name = local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tag: u64 = rand::random();
            local.with_file_name(format!(".{name}.vmssh-{tag:016x}.tmp"))
        } else {
            local.to_path_buf()
        };
        let mut oo = tokio::fs::OpenOptions::new();
        oo.write(true).create(true).truncate(true);
        if opts.atomic || !opts.overwrite {
            oo.create_new(true);
        }
        let file = oo
            .open(&target)
            .await
            .map_err(|e| io_err("cannot create local file", local, e))?;
        // Removes the temporary file if we fail or are cancelled.
        let mut cleanup = TempCleanup(opts.atomic.then(|| target.clone()));
        let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let (n, remote_mode) = self.read_into(remote, &mut writer, opts).await?;
        writer
            .flush()
            .await
            .map_err(|e| io_err("cannot write local file", local, e))?;
        let file = writer.into_inner();
        if let Some(mode) = opts.mode.or(remote_mode) {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| io_err("cannot set mode of", local, e))?;
        }
        if opts.fsync {
            file.sync_all()
                .await
                .map_err(|e| io_err("cannot sync", local, e))?;
        }
        drop(file);
        if opts.atomic {
            tokio::fs::rename(&target, local)
                .await
                .map_err(|e| io_err("cannot rename into place", local, e))?;
            cleanup.0 = None;
        }
        Ok(n)
    }

    /// Streams `remote` into `writer`. See [`Session::download_to_writer`].
    ///
    /// # Errors
    ///
    /// As [`Session::download`].
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
        let (n, _) = self.read_into(remote, writer, opts).await?;
        writer
            .flush()
            .await
            .map_err(|e| Error::io("cannot write downloaded data", e))?;
        Ok(n)
    }

    /// Pipelined read of `remote` into `writer`: reads are issued ahead at
    /// increasing offsets and written out in order.
    async fn read_into<W>(
        &self,
        remote: &str,
        writer: &mut W,
        opts: &TransferOptions,
    ) -> Result<(u64, Option<u32>), Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let raw = &self.inner.raw;
        let handle = self
            .call(
                "open",
                remote,
                raw.open(remote, OpenFlags::READ, FileAttributes::empty()),
            )
            .await?
            .handle;
        let result = async {
            let attrs = self.call("fstat", remote, raw.fstat(handle.as_str())).await?.attrs;
            let meta = Metadata::from_attrs(&attrs);
            if meta.is_dir() {
                return Err(Error::Sftp {
                    host: self.inner.session.host().to_string(),
                    port: self.inner.session.port(),
                    op: "read".to_string(),
                    path: remote.to_string(),
                    kind: SftpErrorKind::Other,
                    source: Some("is a directory".into()),
                });
            }
            let size = meta.size.filter(|s| *s > 0);
            let chunk = opts.chunk_size.unwrap_or(DOWNLOAD_CHUNK).min(self.inner.max_read).max(1);
            let max_in_flight = opts.in_flight.unwrap_or(DOWNLOAD_IN_FLIGHT);
            let mut next = 0u64;
            let mut written = 0u64;
            let mut in_flight = FuturesOrdered::new();
            let mut hit_eof = false;
            opts.report(0, size);
            let h = handle.as_str();
            loop {
                // Pipeline up to the known size; past it (or with no size:
                // /proc files, growing files) one read at a time until EOF.
                while !hit_eof && in_flight.len() < max_in_flight {
                    let ahead = match size {
                        Some(s) => next < s || in_flight.is_empty(),
                        None => in_flight.is_empty(),
                    };
                    if !ahead {
                        break;
                    }
                    let at = next;
                    next += u64::from(chunk);
                    in_flight.push_back(async move { (at, raw.read(h, at, chunk).await) });
                }
                let Some((at, r)) = (tokio::select! {
                    r = in_flight.next() => r,
                    _ = self.gone() => return Err(self.inner.session.lost("SFTP channel closed during download")),
                }) else {
                    break;
                };
                if hit_eof {
                    continue;
                }
                match r {
                    Ok(data) => {
                        let mut got = data.data.len() as u64;
                        writer
                            .write_all(&data.data)
                            .await
                            .map_err(|e| Error::io("cannot write downloaded data", e))?;
                        // A short read before the end: fetch the gap before
                        // writing anything that follows it.
                        while got < u64::from(chunk) {
                            let more = tokio::select! {
                                r = raw.read(h, at + got, chunk - got as u32) => r,
                                _ = self.gone() => return Err(self.inner.session.lost("SFTP channel closed during download")),
                            };
                            match more {
                                Ok(d) if !d.data.is_empty() => {
                                    got += d.data.len() as u64;
                                    writer
                                        .write_all(&d.data)
                                        .await
                                        .map_err(|e| Error::io("cannot write downloaded data", e))?;
                                }
                                Ok(_) => {
                                    hit_eof = true;
                                    break;
                                }
                                Err(e) if is_status(&e, StatusCode::Eof) => {
                                    hit_eof = true;
                                    break;
                                }
                                Err(e) => return Err(self.err("read", remote, e)),
                            }
                        }
                        written += got;
                        opts.report(written, size);
                    }
                    Err(e) if is_status(&e, StatusCode::Eof) => hit_eof = true,
                    Err(e) => return Err(self.err("read", remote, e)),
                }
            }
            Ok((written, meta.mode))
        }
        .await;
        if !self.is_gone() {
            let _ = self.call("close", remote, raw.close(handle)).await;
        }
        result
    }
}

/// Removes a temporary local file unless defused.
struct TempCleanup(Option<PathBuf>);

impl Drop for TempCleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // A single unlink; cheap enough to do synchronously on drop.
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parent_of("/a/b/c"), Some("/a/b"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("a"), None);
        assert_eq!(parent_of("a/b/"), Some("a"));
        assert_eq!(file_name_of("/x/y z.txt"), "y z.txt");
        let t = temp_name_for("/etc/nginx/nginx.conf");
        assert!(t.starts_with("/etc/nginx/.nginx.conf.vmssh-"), "{t}");
        assert!(temp_name_for("/f").starts_with("/.f.vmssh-"));
        assert!(temp_name_for("f").starts_with(".f.vmssh-"));
    }
}
