//! The pipelined download engine: reads issued ahead at increasing
//! offsets, over one SFTP channel or several (lanes) on a long link, and
//! written out in order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::PoisonError;

use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::atomic::LocalDest;
use super::options::{DOWNLOAD_CHUNK, DOWNLOAD_IN_FLIGHT, TransferOptions};
use super::{Metadata, Sftp, is_status, submit};
use crate::error::{Error, SftpErrorKind};

impl Sftp {
    /// Downloads `remote` to a local file. See [`Session::download_with`](crate::Session::download_with).
    ///
    /// # Errors
    ///
    /// As [`Session::download`](crate::Session::download).
    ///
    /// # Cancel safety
    ///
    /// As [`Session::download`](crate::Session::download).
    pub async fn download_with(
        &self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        let mut dest = LocalDest::create(local, opts).await?;
        let (n, remote_mode) = self.read_into(remote, dest.writer(), opts).await?;
        dest.commit(remote_mode, opts).await?;
        Ok(n)
    }

    /// Streams `remote` into `writer`. See [`Session::download_to_writer`](crate::Session::download_to_writer).
    ///
    /// # Errors
    ///
    /// As [`Session::download`](crate::Session::download).
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

    /// Reads `remote` into `writer` in order; its size and mode as the
    /// server states them. The open and a stat of the path go out
    /// together (one round trip), then [`fetch`](Self::fetch) reads.
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
        let asked = std::time::Instant::now();
        let (opened, stat) = tokio::join!(
            self.open_to_read(remote),
            self.call("stat", remote, raw.stat(remote)),
        );
        self.note_round_trip(asked.elapsed());
        let handle = opened?;
        let result = async {
            let attrs = match stat {
                Ok(stat) => stat.attrs,
                // Readable but not stat-able by path (a server's policy):
                // ask the handle.
                Err(_) => {
                    self.call("fstat", remote, raw.fstat(handle.as_str()))
                        .await?
                        .attrs
                }
            };
            let meta = Metadata::from_attrs(&attrs);
            if meta.is_dir() {
                return Err(self.failed(
                    "read",
                    remote,
                    SftpErrorKind::Other,
                    Some("is a directory"),
                ));
            }
            let n = self.fetch(remote, &handle, writer, meta.size, opts).await?;
            Ok((n, meta.mode))
        }
        .await;
        if !self.is_gone() {
            // Sent, and its answer not waited for: nothing depends on it
            // (the server answers a handle's requests in order), and the
            // download ends a round trip sooner.
            drop(submit(raw.close(handle)).await);
        }
        result
    }

    /// Opens `remote` for reading: its handle.
    async fn open_to_read(&self, remote: &str) -> Result<String, Error> {
        let open = self
            .inner
            .raw
            .open(remote, OpenFlags::READ, FileAttributes::empty());
        Ok(self.call("open", remote, open).await?.handle)
    }

    /// Reads the open file `handle` to its end over one or more lanes
    /// (SFTP channels): this one, and on a long link more of the same
    /// session (see [`lanes_for`](Self::lanes_for)), which open the file
    /// themselves and join when they can (one that cannot, or opens
    /// after the last part was claimed, is done without). The lanes share
    /// a window of `in_flight` parts per lane: each lane reads the next
    /// part not yet claimed whenever the window has room (so this one
    /// alone may fill it until the others join), and one writer puts the
    /// parts out in order. A part read but not yet written keeps its
    /// place in the window, so memory stays bounded however uneven the
    /// lanes are.
    ///
    /// Up to the size the server stated reads are pipelined; past it (or
    /// with no size: /proc files, growing files) this lane reads one part
    /// at a time until the end of the file.
    async fn fetch<W>(
        &self,
        remote: &str,
        handle: &str,
        writer: &mut W,
        size: Option<u64>,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let size = size.filter(|s| *s > 0);
        let chunk = opts
            .chunk_size
            .unwrap_or(DOWNLOAD_CHUNK)
            .min(self.inner.max_read)
            .max(1);
        let per_lane = opts.in_flight.unwrap_or(DOWNLOAD_IN_FLIGHT).max(1);
        let lanes = match size {
            Some(_) => self.lanes_for(opts, size),
            None => 1,
        };
        let parts = Parts::new(
            size,
            chunk,
            per_lane,
            lanes,
            self.inner.session.connection().window,
        );
        let (tx, rx) = tokio::sync::mpsc::channel(parts.window());
        opts.report(0, size);
        let extra: FuturesUnordered<_> = (1..lanes)
            .map(|_| self.extra_read_lane(remote, &parts, tx.clone()))
            .collect();
        let this = self.read_lane(remote, handle, &parts, tx, true);
        let others = async {
            let mut extra = extra;
            while extra.try_next().await?.is_some() {}
            Ok::<_, Error>(())
        };
        let write = write_in_order(self, remote, rx, writer, opts, size);
        let ((), (), n) = futures::try_join!(this, others, write)?;
        Ok(n)
    }

    /// One more lane: a new SFTP channel of this session, which opens
    /// `remote` and reads parts until none are left. It is abandoned if
    /// every part is claimed first, and done without if it cannot be
    /// opened: nothing was read through it then. Once it reads, its
    /// errors are the download's.
    async fn extra_read_lane<'a>(
        &self,
        remote: &str,
        parts: &'a Parts,
        tx: Sender<'a>,
    ) -> Result<(), Error> {
        let opened = async {
            let sftp = self.lane_channel(remote, parts.chunk, false).await?;
            let handle = sftp.open_to_read(remote).await?;
            Ok::<_, Error>((sftp, handle))
        };
        let (sftp, handle) = tokio::select! {
            opened = opened => match opened {
                Ok(lane) => lane,
                Err(e) => {
                    tracing::debug!(host = %self.inner.session.host(), remote, "download goes on without an extra SFTP channel: {e}");
                    return Ok(());
                }
            },
            () = parts.all_claimed.cancelled() => return Ok(()),
        };
        let read = sftp.read_lane(remote, &handle, parts, tx, false).await;
        if !sftp.is_gone() {
            // As in `read_into`; the channel closes when `sftp` goes.
            drop(submit(sftp.inner.raw.close(handle)).await);
        }
        read
    }

    /// Reads parts of `handle` on this channel and hands them to the
    /// writer, until no part is left for this lane; `main` is the lane
    /// that also reads past the stated size.
    async fn read_lane<'a>(
        &self,
        remote: &str,
        handle: &str,
        parts: &'a Parts,
        tx: Sender<'a>,
        main: bool,
    ) -> Result<(), Error> {
        let raw = &self.inner.raw;
        let lost = || {
            self.inner
                .session
                .lost("SFTP channel closed during download")
        };
        let mut reads = FuturesUnordered::new();
        loop {
            // No more in flight on one channel than its window carries.
            while reads.len() < parts.per_channel {
                let idle = reads.is_empty();
                if !parts.more(main, idle) {
                    break;
                }
                let room = if idle {
                    tokio::select! {
                        room = parts.room.acquire() => match room {
                            Ok(room) => room,
                            // Never closed.
                            Err(_) => break,
                        },
                        () = self.gone() => return Err(lost()),
                    }
                } else {
                    match parts.room.try_acquire() {
                        Ok(room) => room,
                        Err(_) => break,
                    }
                };
                let Some((at, len)) = parts.claim(main, idle) else {
                    break;
                };
                reads.push(async move { (read_part(raw, handle, at, len).await, room) });
            }
            let (read, room) = tokio::select! {
                r = reads.next() => match r {
                    Some(r) => r,
                    None => return Ok(()),
                },
                () = self.gone() => return Err(lost()),
            };
            let part = read.map_err(|e| self.err("read", remote, e))?;
            if part.eof {
                parts.end_at(part.at + part.data.len() as u64);
            }
            if !part.data.is_empty() && tx.send((part, room)).await.is_err() {
                // The writer failed: its error is the download's.
                return Ok(());
            }
        }
    }
}

/// A part on its way to the writer, with its place in the window.
type Sender<'a> = tokio::sync::mpsc::Sender<(Part, SemaphorePermit<'a>)>;

/// What one read of a part brought: its bytes from `at`, and whether the
/// file ended within it.
struct Part {
    at: u64,
    data: Vec<u8>,
    eof: bool,
}

/// Reads `len` bytes at `at`: a short answer before the end is followed by
/// a read of the rest, so a part is whole unless the file ends within it.
async fn read_part(
    raw: &russh_sftp::client::rawsession::RawSftpSession,
    handle: &str,
    at: u64,
    len: u32,
) -> Result<Part, russh_sftp::client::error::Error> {
    let mut data = Vec::new();
    let eof = loop {
        let got = data.len() as u32;
        match raw.read(handle, at + u64::from(got), len - got).await {
            Ok(d) if !d.data.is_empty() => {
                if data.is_empty() {
                    data = d.data;
                } else {
                    data.extend_from_slice(&d.data);
                }
                if data.len() as u32 >= len {
                    break false;
                }
            }
            Ok(_) => break true,
            Err(e) if is_status(&e, StatusCode::Eof) => break true,
            Err(e) => return Err(e),
        }
    };
    Ok(Part { at, data, eof })
}

/// The parts of one download, claimed in order by its lanes.
struct Parts {
    size: Option<u64>,
    chunk: u32,
    /// The most parts one lane reads at once: what its channel's window
    /// holds, and at least its own share.
    per_channel: usize,
    /// Parts claimed and not yet written: `in_flight` per lane, shared
    /// by the lanes (the first may use all of it until others join).
    room: Semaphore,
    /// The next offset to claim, and where the file ended, once a read
    /// found it.
    state: std::sync::Mutex<(u64, Option<u64>)>,
    /// Cancelled once no part is left below the size (or the end was
    /// found): a lane still opening has nothing to do.
    all_claimed: CancellationToken,
}

impl Parts {
    fn new(size: Option<u64>, chunk: u32, per_lane: usize, lanes: usize, window: u32) -> Self {
        Parts {
            per_channel: ((window / chunk) as usize).max(per_lane),
            size,
            chunk,
            room: Semaphore::new(per_lane * lanes),
            state: std::sync::Mutex::new((0, None)),
            all_claimed: CancellationToken::new(),
        }
    }

    fn window(&self) -> usize {
        self.room.available_permits()
    }

    /// Whether a part may be left for this lane when the next unclaimed
    /// offset is `next`: below the size for any lane; past it (or with no
    /// size) for the main lane when it has no read outstanding; none once
    /// the end was found.
    fn open_for(&self, (next, end): (u64, Option<u64>), main: bool, idle: bool) -> bool {
        end.is_none() && (self.size.is_some_and(|s| next < s) || (main && idle))
    }

    /// Whether [`claim`](Self::claim) may find a part for this lane.
    fn more(&self, main: bool, idle: bool) -> bool {
        let state = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.open_for(state, main, idle)
    }

    /// Claims the next part for this lane (see [`open_for`](Self::open_for)).
    fn claim(&self, main: bool, idle: bool) -> Option<(u64, u32)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.open_for(*state, main, idle) {
            return None;
        }
        let at = state.0;
        state.0 = at + u64::from(self.chunk);
        if self.size.is_none_or(|s| state.0 >= s) {
            self.all_claimed.cancel();
        }
        Some((at, self.chunk))
    }

    /// A read found the end of the file at `at`.
    fn end_at(&self, at: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.1 = Some(state.1.map_or(at, |e| e.min(at)));
        self.all_claimed.cancel();
    }
}

/// Writes the parts to `writer` in order as they arrive, whichever lane
/// read them; each frees its place in the window once written.
async fn write_in_order<W>(
    sftp: &Sftp,
    remote: &str,
    mut rx: tokio::sync::mpsc::Receiver<(Part, SemaphorePermit<'_>)>,
    writer: &mut W,
    opts: &TransferOptions,
    size: Option<u64>,
) -> Result<u64, Error>
where
    W: AsyncWrite + Unpin + Send,
{
    let mut waiting = BTreeMap::new();
    let mut written = 0u64;
    while let Some((part, room)) = rx.recv().await {
        waiting.insert(part.at, (part, room));
        while let Some((part, _room)) = waiting.remove(&written) {
            writer
                .write_all(&part.data)
                .await
                .map_err(|e| Error::io("cannot write downloaded data", e))?;
            written += part.data.len() as u64;
            opts.report(written, size);
        }
    }
    // Every lane is done. Bytes past a gap: the file was cut short and
    // grew again while it was read.
    if !waiting.is_empty() {
        return Err(sftp.failed(
            "read",
            remote,
            SftpErrorKind::Other,
            Some("the file changed while it was read"),
        ));
    }
    Ok(written)
}
