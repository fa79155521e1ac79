//! The pipelined upload engine: many writes in flight, over one SFTP
//! channel or several (lanes) on a long link, and an atomic rename.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use russh_sftp::protocol::OpenFlags;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::atomic::{RemoteTemp, Remover, parent_of, temp_name_for};
use super::options::{TransferOptions, UPLOAD_CHUNK, UPLOAD_IN_FLIGHT};
use super::{Sftp, mode_attrs, submit};
use crate::error::{Error, SftpErrorKind};

impl Sftp {
    /// Uploads a local file. See [`Session::upload_with`](crate::Session::upload_with).
    ///
    /// # Errors
    ///
    /// As [`Session::upload`](crate::Session::upload).
    ///
    /// # Cancel safety
    ///
    /// As [`Session::upload`](crate::Session::upload).
    pub async fn upload_with(
        &self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        let (file, len, local_mode) = open_local(local)?;
        let mut opts = opts.clone();
        if opts.mode.is_none() {
            opts.mode = Some(local_mode);
        }
        // The reader fetches whole blocks itself, and `Source::next` takes
        // whole requests: a `BufReader` would only copy every byte again.
        self.upload_reader(file, Some(len), remote, &opts, Some(local))
            .await
    }

    /// Uploads everything `reader` yields. See
    /// [`Session::upload_from_reader`](crate::Session::upload_from_reader).
    ///
    /// # Errors
    ///
    /// As [`Session::upload`](crate::Session::upload).
    ///
    /// # Cancel safety
    ///
    /// As [`Session::upload`](crate::Session::upload).
    pub async fn upload_from_reader<R>(
        &self,
        reader: R,
        size_hint: Option<u64>,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.upload_reader(reader, size_hint, remote, opts, None)
            .await
    }

    /// Uploads from `reader`; `local` names the file it reads, for errors.
    async fn upload_reader<R>(
        &self,
        reader: R,
        size_hint: Option<u64>,
        remote: &str,
        opts: &TransferOptions,
        local: Option<&Path>,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        if !opts.overwrite && opts.atomic && self.exists(remote).await? {
            // Refused before any byte moves (the rename would refuse it
            // only at the end).
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
        // From here on a temporary file may exist: removed unless it is
        // renamed into place, even if this future is dropped.
        let temp = opts
            .atomic
            .then(|| RemoteTemp::new(target.clone(), Remover::Sftp(self.clone())));
        // Create owner-only until complete; the final mode is set at the end.
        let attrs = mode_attrs(0o600 | (mode & 0o700));
        let chunk = opts
            .chunk_size
            .unwrap_or(UPLOAD_CHUNK)
            .min(self.inner.max_write)
            .max(1) as usize;
        let source = Source::new(reader, chunk, local);
        let job = Job {
            remote,
            target: &target,
            mode,
            total: size_hint,
            opts,
        };
        // The handle, once open, and whether its close was sent: for the
        // clean-up after a failure.
        let opened = OnceLock::new();
        let closed = AtomicBool::new(false);
        let result = self
            .write_in_lanes(&job, &source, flags, attrs, &opened, &closed)
            .await;
        match result {
            Ok(n) => {
                if let Some(t) = temp {
                    t.keep();
                }
                Ok(n)
            }
            Err(error) => {
                // Leave no partial file behind where we still can.
                if !self.is_gone() {
                    if let Some(handle) = opened.get()
                        && !closed.load(Ordering::Acquire)
                    {
                        let _ = self
                            .call("close", remote, self.inner.raw.close(handle.as_str()))
                            .await;
                    }
                    if let Some(t) = temp {
                        let _ = t.remove().await;
                    }
                }
                Err(error)
            }
        }
    }

    /// Opens `job.target` for the upload, creating missing parents when
    /// asked (only when the open says they are missing: no round trip
    /// where they exist).
    async fn open_target(
        &self,
        job: &Job<'_>,
        flags: OpenFlags,
        attrs: &russh_sftp::protocol::FileAttributes,
    ) -> Result<String, Error> {
        let (remote, target, opts) = (job.remote, job.target, job.opts);
        let asked = std::time::Instant::now();
        let mut opened = self
            .open_for_upload(remote, target, flags, attrs.clone())
            .await;
        self.note_round_trip(asked.elapsed());
        if opts.create_parents
            && let Err(Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }) = opened
            && let Some(dir) = parent_of(remote)
        {
            self.mkdir_all(dir).await?;
            opened = self
                .open_for_upload(remote, target, flags, attrs.clone())
                .await;
        }
        // An exclusive open refused: say why in a typed way.
        if opened.is_err() && !opts.overwrite && !opts.atomic && self.exists(remote).await? {
            return Err(self.already_exists("open", remote));
        }
        opened
    }

    /// Opens `target` for an upload to `remote`; errors name `remote`.
    async fn open_for_upload(
        &self,
        remote: &str,
        target: &str,
        flags: OpenFlags,
        attrs: russh_sftp::protocol::FileAttributes,
    ) -> Result<String, Error> {
        self.call("open", remote, self.inner.raw.open(target, flags, attrs))
            .await
            .map(|h| h.handle)
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
            })
    }

    /// Opens `job.target` and writes everything `source` yields into it,
    /// then finishes the file, over one or more lanes (SFTP channels):
    /// this one, and on a long link more of the same session (see
    /// [`lanes_for`](Self::lanes_for)), which start opening at once and
    /// join once this one has opened the file (one that cannot be opened,
    /// or opens after the last byte was read, is done without). Each lane
    /// takes the next chunk of the one reader when it has room for a
    /// write, so they share the file however fast each is, and the reader
    /// is read once, in order.
    ///
    /// Each lane keeps up to `in_flight` writes outstanding, and its tail
    /// (its last writes, an fsync, and the close; this channel's also sets
    /// the mode) is in flight together, so it costs one round trip: each
    /// request is [`submit`]ted as it is made, so they reach the server
    /// in that order, and the server handles the requests of one file
    /// handle in order. A lane's fsync follows its own writes, and an
    /// fsync flushes the whole file, so once every lane's fsync is
    /// answered every byte is on disk. Only the rename waits for all of
    /// them, so a failed write never replaces the destination.
    async fn write_in_lanes<R>(
        &self,
        job: &Job<'_>,
        source: &Source<'_, R>,
        flags: OpenFlags,
        attrs: russh_sftp::protocol::FileAttributes,
        opened: &OnceLock<String>,
        closed: &AtomicBool,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let lanes = self.lanes_for(job.opts, job.total);
        let acked = AtomicU64::new(0);
        // Cancelled once the file exists: the other lanes may open it.
        let created = CancellationToken::new();
        job.opts.report(0, job.total);
        let this = async {
            let handle = self.open_target(job, flags, &attrs).await?;
            let handle = opened.get_or_init(|| handle);
            created.cancel();
            let tail = Tail::Last {
                mode: job.mode,
                closed,
            };
            self.lane(job, handle, source, &acked, tail).await
        };
        let others = async {
            let mut others: FuturesUnordered<_> = (1..lanes)
                .map(|_| self.extra_lane(job, source, &acked, &created))
                .collect();
            while others.try_next().await?.is_some() {}
            Ok::<_, Error>(())
        };
        futures::try_join!(this, others)?;
        if job.opts.atomic {
            if job.opts.overwrite {
                self.rename(job.target, job.remote).await?;
            } else {
                self.rename_no_replace(job.target, job.remote).await?;
            }
        }
        Ok(acked.load(Ordering::Acquire))
    }

    /// One more lane: a new SFTP channel of this session, which opens the
    /// file being written (as it is: no create, no truncation) and writes
    /// chunks until the reader is done. It is abandoned if the reader is
    /// done first, and done without if it cannot be opened: nothing was
    /// written through it then. Once it has written, its errors are the
    /// upload's.
    async fn extra_lane<R>(
        &self,
        job: &Job<'_>,
        source: &Source<'_, R>,
        acked: &AtomicU64,
        created: &CancellationToken,
    ) -> Result<(), Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let opened = async {
            let sftp = self
                .lane_channel(job.remote, source.chunk as u32, true)
                .await?;
            created.cancelled().await;
            let handle = sftp
                .open_for_upload(
                    job.remote,
                    job.target,
                    OpenFlags::WRITE,
                    russh_sftp::protocol::FileAttributes::empty(),
                )
                .await?;
            Ok::<_, Error>((sftp, handle))
        };
        let (sftp, handle) = tokio::select! {
            opened = opened => match opened {
                Ok(lane) => lane,
                Err(e) => {
                    tracing::debug!(host = %self.inner.session.host(), remote = job.remote, "upload goes on without an extra SFTP channel: {e}");
                    return Ok(());
                }
            },
            () = source.done.cancelled() => return Ok(()),
        };
        sftp.lane(job, &handle, source, acked, Tail::Extra).await
    }

    /// Writes chunks from `source` to `handle` on this channel, then its
    /// tail (see [`write_in_lanes`](Self::write_in_lanes)).
    async fn lane<R>(
        &self,
        job: &Job<'_>,
        handle: &str,
        source: &Source<'_, R>,
        acked: &AtomicU64,
        tail: Tail<'_>,
    ) -> Result<(), Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let raw = &self.inner.raw;
        let remote = job.remote;
        let max_in_flight = job.opts.in_flight.unwrap_or(UPLOAD_IN_FLIGHT);
        let lost = || self.inner.session.lost("SFTP channel closed during upload");
        let count = |n: u64| {
            let done = acked.fetch_add(n, Ordering::AcqRel) + n;
            job.opts.report(done, job.total);
        };
        let mut writes = FuturesUnordered::new();
        'fill: loop {
            while writes.len() < max_in_flight {
                let Some((at, buf)) = source.next().await? else {
                    break 'fill;
                };
                let n = buf.len() as u64;
                writes
                    .push(submit(async move { raw.write(handle, at, buf).await.map(|_| n) }).await);
            }
            let done = tokio::select! {
                r = writes.next() => r,
                () = self.gone() => return Err(lost()),
            };
            if let Some(r) = done {
                count(r.map_err(|e| self.err("write", remote, e))?);
            }
        }
        let fsync = match job.opts.fsync && self.inner.fsync {
            true => Some(submit(raw.fsync(handle)).await),
            false => None,
        };
        let set_mode = match tail {
            Tail::Last { mode, .. } => Some(submit(raw.fsetstat(handle, mode_attrs(mode))).await),
            Tail::Extra => None,
        };
        let close = submit(raw.close(handle)).await;
        if let Tail::Last { closed, .. } = tail {
            closed.store(true, Ordering::Release);
        }
        let writes = async {
            while let Some(r) = writes.next().await {
                count(r.map_err(|e| self.err("write", remote, e))?);
            }
            Ok::<_, Error>(())
        };
        let fsync = async {
            match fsync {
                Some(fsync) => fsync
                    .await
                    .map(drop)
                    .map_err(|e| self.err("fsync", remote, e)),
                None => Ok(()),
            }
        };
        let set_mode = async {
            match set_mode {
                Some(set_mode) => set_mode
                    .await
                    .map(drop)
                    .map_err(|e| self.err("fsetstat", remote, e)),
                None => Ok(()),
            }
        };
        let close = async {
            close
                .await
                .map(drop)
                .map_err(|e| self.err("close", remote, e))
        };
        let (wrote, synced, moded, closed) = tokio::select! {
            r = async { tokio::join!(writes, fsync, set_mode, close) } => r,
            () = self.gone() => return Err(lost()),
        };
        wrote?;
        synced?;
        moded?;
        closed?;
        Ok(())
    }
}

/// How a lane ends its file handle.
#[derive(Clone, Copy)]
enum Tail<'a> {
    /// The upload's own handle: it also sets the final mode, and says
    /// when its close was sent (the handle is not to be closed again).
    Last { mode: u32, closed: &'a AtomicBool },
    /// An extra lane's handle: fsync and close only.
    Extra,
}

/// The one reader of an upload, shared by its lanes: each takes the next
/// chunk and its offset.
struct Source<'a, R> {
    state: futures::lock::Mutex<(R, u64)>,
    chunk: usize,
    local: Option<&'a Path>,
    /// Cancelled once the reader is done (its end, or an error).
    done: CancellationToken,
}

impl<'a, R: AsyncRead + Unpin> Source<'a, R> {
    fn new(reader: R, chunk: usize, local: Option<&'a Path>) -> Self {
        Source {
            state: futures::lock::Mutex::new((reader, 0)),
            chunk,
            local,
            done: CancellationToken::new(),
        }
    }

    /// The next chunk and its offset; `None` once the reader is done.
    async fn next(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        if self.done.is_cancelled() {
            return Ok(None);
        }
        let mut state = self.state.lock().await;
        if self.done.is_cancelled() {
            return Ok(None);
        }
        let (reader, offset) = &mut *state;
        // Filled as read, never zeroed first.
        let mut buf = Vec::with_capacity(self.chunk);
        let n = match read_full(reader, &mut buf, self.chunk).await {
            Ok(n) => n,
            Err(e) => {
                self.done.cancel();
                return Err(match self.local {
                    Some(path) => {
                        Error::io(format!("cannot read local file {}", path.display()), e)
                    }
                    None => Error::io("cannot read local data", e),
                });
            }
        };
        if n < self.chunk {
            self.done.cancel();
        }
        if n == 0 {
            return Ok(None);
        }
        let at = *offset;
        *offset += n as u64;
        Ok(Some((at, buf)))
    }
}

/// One upload in progress.
#[derive(Clone, Copy)]
struct Job<'a> {
    /// The destination.
    remote: &'a str,
    /// What is written: the destination, or its temporary name.
    target: &'a str,
    /// The final mode.
    mode: u32,
    /// The size, when known.
    total: Option<u64>,
    opts: &'a TransferOptions,
}

/// Opens a local file for upload: the file, its length and its mode (see
/// `local_file`).
pub(crate) fn open_local(local: &Path) -> Result<(crate::local_file::Reader, u64, u32), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let (file, meta) = crate::local_file::open(local)
        .map_err(|e| Error::io(format!("cannot open local file {}", local.display()), e))?;
    if meta.is_dir() {
        return Err(Error::io(
            format!("local path {} is a directory", local.display()),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    Ok((file, meta.len(), meta.permissions().mode() & 0o7777))
}

/// Appends to `buf` until it holds `want` bytes or the reader ends;
/// returns its length. Reads into the vector's spare capacity, which is
/// not zeroed first.
async fn read_full<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    want: usize,
) -> std::io::Result<usize> {
    while buf.len() < want {
        let left = want - buf.len();
        let mut room = bytes::BufMut::limit(&mut *buf, left);
        if r.read_buf(&mut room).await? == 0 {
            break;
        }
    }
    Ok(buf.len())
}
