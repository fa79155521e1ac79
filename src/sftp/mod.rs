//! File transfer over SFTP: streaming, pipelined uploads and downloads with
//! atomic replace, modes and progress, plus an [`Sftp`] handle for file
//! system operations.
//!
//! Throughput comes from requests in flight, not from big buffers: a
//! transfer keeps up to [`TransferOptions::requests_in_flight`] reads or
//! writes outstanding, each at most [`TransferOptions::chunk_size`] bytes
//! (clamped to what the server's `limits@openssh.com` allows). Memory per
//! transfer is bounded by their product whatever the file size.
//!
//! [`Session`]'s `upload*` and `download*` methods (the façade in
//! `transfer/`) use this module where the server has SFTP, and the
//! `cat`-over-exec fallback (`transfer/cat.rs`) where it has not.
//!
//! Inside: this file holds the [`Sftp`] handle and its file-system
//! operations; `options.rs` the [`TransferOptions`]; `stream.rs` the
//! channel as russh-sftp's byte stream; `upload.rs` and `download.rs` the
//! pipelined engines; `atomic.rs` temporary names and cleanup; `tree.rs`
//! whole directory trees.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::Future;
use futures::future::{Either, Ready};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::extensions::HardlinkExtension;
use russh_sftp::protocol::{FileAttributes, Packet, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::channel::{
    self, ChannelLease, ChannelStream, Closing, Release, ReleaseOnDrop, Request, Started,
};
use crate::error::{Error, SftpErrorKind};
use crate::session::Session;

pub(crate) mod atomic;
mod download;
mod lanes;
mod options;
mod stream;
mod tree;
pub(crate) mod upload;

pub(crate) use options::ProgressFn;
pub use options::{Progress, TransferOptions};
pub use tree::TreeSummary;

use atomic::parent_of;
use stream::SftpStream;

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
    /// The channel counts as closing once the last clone is dropped, while
    /// russh-sftp's tasks wind it down.
    _release: ReleaseOnDrop,
    session: Session,
    closed: CancellationToken,
    max_read: u32,
    max_write: u32,
    /// The shortest round trip seen on this channel, in nanoseconds, for
    /// choosing lanes (see [`Sftp::note_round_trip`]).
    rtt: std::sync::atomic::AtomicU64,
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

/// What [`Session::sftp_or_channel`] opened.
pub(crate) enum SftpOrChannel {
    /// The server has SFTP.
    Sftp(Sftp),
    /// It refused the subsystem: the channel, nothing running on it.
    NoSftp(ChannelLease),
}

impl Session {
    /// Opens an SFTP subsystem channel, or takes the one kept since the
    /// session's last plain transfer (see
    /// [`SshConfig::sftp_idle_timeout`](crate::SshConfig::sftp_idle_timeout)).
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
        match self.sftp_or_channel().await? {
            SftpOrChannel::Sftp(sftp) => Ok(sftp),
            SftpOrChannel::NoSftp(_) => Err(Error::Sftp {
                host: self.host().to_string(),
                port: self.port(),
                op: "subsystem".to_string(),
                path: String::new(),
                kind: SftpErrorKind::Unsupported,
                source: None,
            }),
        }
    }

    /// Opens an SFTP subsystem channel (or takes the one kept between
    /// plain transfers), or, where the server refuses the subsystem, hands
    /// back the channel for the exec fallback.
    pub(crate) async fn sftp_or_channel(&self) -> Result<SftpOrChannel, Error> {
        if let Some(sftp) = self.idle().and_then(|idle| idle.take::<Sftp>())
            && !sftp.is_gone()
        {
            return Ok(SftpOrChannel::Sftp(sftp));
        }
        let lease = match channel::try_start(
            self.connection(),
            Closing::Drain,
            &[Request::Subsystem("sftp")],
        )
        .await
        .map_err(|e| e.error)?
        {
            Started::Running(lease) => lease,
            Started::Refused { lease, .. } => return Ok(SftpOrChannel::NoSftp(lease)),
        };
        let opened_in = lease.opened_in();
        let release = Release::default();
        // Also on every early return below, which drops `raw`.
        let release_on_drop = release.on_drop(self.connection());
        let stream = ChannelStream::new(lease);
        let closed = stream.ended().clone();
        let stream = SftpStream {
            stream,
            _release: release,
        };
        let cfg = russh_sftp::client::Config {
            request_timeout_secs: 3600,
            ..Default::default()
        };
        let mut raw = RawSftpSession::new_with_config(stream, cfg);
        // A subsystem that ends before it answers was accepted by a server
        // that cannot run it (dropbear without sftp-server): no SFTP.
        let ended = || {
            if self.is_closed() {
                self.lost("SFTP channel closed during init")
            } else {
                Error::Sftp {
                    host: self.host().to_string(),
                    port: self.port(),
                    op: "init".to_string(),
                    path: String::new(),
                    kind: SftpErrorKind::Unsupported,
                    source: Some(
                        "the SFTP subsystem ended before it answered (no sftp-server?)".into(),
                    ),
                }
            }
        };
        // The limits request goes out with the init, not a round trip
        // after it: a server that does not know it answers "unsupported"
        // (every SFTP server must answer an unknown extended request), and
        // its answer is used only where the version lists the extension.
        let started = std::time::Instant::now();
        let (version, limits) = tokio::select! {
            (v, l) = async {
                let init = submit(raw.init()).await;
                let limits = submit(raw.limits()).await;
                futures::join!(init, limits)
            } => match v {
                Ok(v) => (v, l),
                Err(_) if closed.is_cancelled() || self.is_closed() => return Err(ended()),
                Err(e) => return Err(sftp_error(self, &closed, "init", "", e)),
            },
            _ = closed.cancelled() => return Err(ended()),
            _ = self.closed() => return Err(ended()),
        };
        // The first round trips, for choosing lanes: the channel open's
        // (which may wait for the server to set up after the login) and
        // the init's (which waits for it to start sftp-server); the
        // shorter is the nearer to the link's.
        let init = started.elapsed();
        let rtt = opened_in.map_or(init, |open| open.min(init));
        let has = |name: &str| version.extensions.contains_key(name);
        let (mut max_read, mut max_write) = (255 * 1024u32, 255 * 1024u32);
        if has(russh_sftp::extensions::LIMITS)
            && let Ok(l) = limits
        {
            if l.max_read_len > 0 {
                max_read = l.max_read_len.min(u64::from(u32::MAX)) as u32;
            }
            if l.max_write_len > 0 {
                max_write = l.max_write_len.min(u64::from(u32::MAX)) as u32;
            }
            raw.set_limits(russh_sftp::client::rawsession::Limits::from(l));
        }
        Ok(SftpOrChannel::Sftp(Sftp {
            inner: Arc::new(SftpInner {
                raw,
                _release: release_on_drop,
                // Not the user's handle: this channel may be kept in the
                // user handles' park, which must not hold itself.
                session: self.internal(),
                closed,
                max_read,
                max_write,
                rtt: std::sync::atomic::AtomicU64::new(nanos(rtt)),
                fsync: has(russh_sftp::extensions::FSYNC),
                posix_rename: has("posix-rename@openssh.com"),
            }),
        }))
    }
}

impl Session {
    /// Keeps `sftp`, which an operation of this session has finished with,
    /// for the next (see
    /// [`SshConfig::sftp_idle_timeout`](crate::SshConfig::sftp_idle_timeout)):
    /// only if nothing else holds it, it still works, and a slot is free
    /// (an open waiting for one would not see it give way), and only on a
    /// server known to keep a channel being opened when another channel's
    /// program exits ([`Connection::keeps_unstarted_channels`]): a kept
    /// channel ends at a moment no caller chooses (its idle time, or
    /// giving way to an open), and on dropbear before 2024.86 its
    /// `sftp-server` exiting closes the channels being opened then, with
    /// the command perhaps run. Otherwise it is dropped, and its channel
    /// closed, at the end of the operation as before.
    ///
    /// [`Connection::keeps_unstarted_channels`]: crate::connection::Connection::keeps_unstarted_channels
    pub(crate) fn keep_sftp(&self, sftp: Sftp) {
        if let Some(idle) = self.idle()
            && self.connection().keeps_unstarted_channels()
            && Arc::strong_count(&sftp.inner) == 1
            && !sftp.is_gone()
            && self.connection().slots.free() > 0
        {
            idle.park(sftp);
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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

/// Hands a request to the server now and returns the future of its reply.
///
/// russh-sftp queues a request on its future's first poll, so the order of
/// first polls is the order on the wire. Futures polled later than they
/// were made (a `FuturesUnordered` may yield before it has polled every new
/// future) could let a later request overtake an earlier one: a close
/// ahead of the file's last writes. Submitting each request when it is
/// made keeps the wire order the program order, so requests that depend on
/// each other (writes, then close) can still be in flight together.
async fn submit<F: Future>(fut: F) -> Either<Ready<F::Output>, Pin<Box<F>>> {
    let mut fut = Box::pin(fut);
    match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        // Answered at once (a closed session fails on the first poll).
        Poll::Ready(out) => Either::Left(futures::future::ready(out)),
        Poll::Pending => Either::Right(fut),
    }
}

fn mode_attrs(mode: u32) -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.permissions = Some(mode);
    a
}

impl Sftp {
    /// Resolves when the channel or the whole connection has ended.
    async fn gone(&self) {
        tokio::select! {
            _ = self.inner.closed.cancelled() => {}
            _ = self.inner.session.closed() => {}
        }
    }

    /// The session the channel belongs to.
    pub(crate) fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The shortest round trip seen on this channel.
    pub(crate) fn rtt(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.inner.rtt.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A request answered `took` after it was sent, with nothing slow on
    /// the server between (opening a file, a stat): the link's round trip
    /// is at most that. Neither the channel's open nor its init is a clean
    /// sample (see [`Session::sftp_or_channel`]); later requests refine it.
    pub(crate) fn note_round_trip(&self, took: std::time::Duration) {
        self.inner
            .rtt
            .fetch_min(nanos(took), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the channel or the whole connection has ended.
    pub(crate) fn is_gone(&self) -> bool {
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
                Ok(_) => return Err(self.not_a_directory("mkdir", p)),
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
        self.failed(op, path, SftpErrorKind::AlreadyExists, None)
    }

    /// `op` on `path` cannot go on, for a reason this side found (not a
    /// status from the server).
    pub(crate) fn failed(
        &self,
        op: &str,
        path: &str,
        kind: SftpErrorKind,
        why: Option<&'static str>,
    ) -> Error {
        Error::Sftp {
            host: self.inner.session.host().to_string(),
            port: self.inner.session.port(),
            op: op.to_string(),
            path: path.to_string(),
            kind,
            source: why.map(Into::into),
        }
    }

    /// `path` is there, but not as the directory `op` needs.
    pub(crate) fn not_a_directory(&self, op: &str, path: &str) -> Error {
        self.failed(
            op,
            path,
            SftpErrorKind::AlreadyExists,
            Some("exists and is not a directory"),
        )
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
}
