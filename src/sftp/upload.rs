//! The pipelined upload engine: many writes in flight, atomic rename.

use std::path::Path;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use russh_sftp::protocol::OpenFlags;
use tokio::io::{AsyncRead, AsyncReadExt};

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
        let reader = tokio::io::BufReader::with_capacity(256 * 1024, file);
        self.upload_reader(reader, Some(len), remote, &opts, Some(local))
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
        mut reader: R,
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
        let attrs = || mode_attrs(0o600 | (mode & 0o700));
        // Parents are created only when the open says they are missing:
        // no round trip where they exist.
        let mut opened = self.open_for_upload(remote, &target, flags, attrs()).await;
        if opts.create_parents
            && let Err(Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }) = opened
            && let Some(dir) = parent_of(remote)
        {
            self.mkdir_all(dir).await?;
            opened = self.open_for_upload(remote, &target, flags, attrs()).await;
        }
        // An exclusive open refused: say why in a typed way.
        if opened.is_err() && !opts.overwrite && !opts.atomic && self.exists(remote).await? {
            return Err(self.already_exists("open", remote));
        }
        let handle = opened?;
        let job = Job {
            handle: &handle,
            remote,
            target: &target,
            mode,
            total: size_hint,
            local,
            opts,
        };
        let result = self.write_all_pipelined(&job, &mut reader).await;
        match result {
            Ok(n) => {
                if let Some(t) = temp {
                    t.keep();
                }
                Ok(n)
            }
            Err(Failed {
                error,
                handle_closed,
            }) => {
                // Leave no partial file behind where we still can.
                if !self.is_gone() {
                    if !handle_closed {
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

    /// Writes everything with up to `in_flight` writes outstanding, then
    /// finishes the file. The last writes, the fsync, the mode and the
    /// close are in flight together, so the tail costs one round trip:
    /// each request is [`submit`]ted as it is made, so they reach the
    /// server in that order, and the server handles the requests of one
    /// file in order. Only the rename waits for all of them, so a failed
    /// write never replaces the destination.
    async fn write_all_pipelined<R>(&self, job: &Job<'_>, reader: &mut R) -> Result<u64, Failed>
    where
        R: AsyncRead + Unpin + Send,
    {
        let Job {
            handle,
            remote,
            target,
            mode,
            total,
            local,
            opts,
        } = *job;
        let open = |error| Failed {
            error,
            handle_closed: false,
        };
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
                let n = read_full(reader, &mut buf).await.map_err(|e| {
                    open(match local {
                        Some(path) => {
                            Error::io(format!("cannot read local file {}", path.display()), e)
                        }
                        None => Error::io("cannot read local data", e),
                    })
                })?;
                if n == 0 {
                    eof = true;
                    break;
                }
                buf.truncate(n);
                let at = offset;
                offset += n as u64;
                in_flight.push(
                    submit(async move { raw.write(handle, at, buf).await.map(|_| n as u64) }).await,
                );
                if n < chunk {
                    eof = true;
                }
            }
            if eof {
                break;
            }
            let done = tokio::select! {
                r = in_flight.next() => r,
                _ = self.gone() => return Err(open(self.inner.session.lost("SFTP channel closed during upload"))),
            };
            if let Some(r) = done {
                acked += r.map_err(|e| open(self.err("write", remote, e)))?;
                opts.report(acked, total);
            }
        }
        let fsync = match opts.fsync && self.inner.fsync {
            true => Some(submit(raw.fsync(handle)).await),
            false => None,
        };
        let set_mode = submit(raw.fsetstat(handle, mode_attrs(mode))).await;
        let close = submit(raw.close(handle)).await;
        let writes = async {
            while let Some(r) = in_flight.next().await {
                acked += r.map_err(|e| self.err("write", remote, e))?;
                opts.report(acked, total);
            }
            Ok::<_, Error>(acked)
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
        let set_mode = async { set_mode.await.map_err(|e| self.err("fsetstat", remote, e)) };
        let close = async { close.await.map_err(|e| self.err("close", remote, e)) };
        let (written, synced, moded, closed) = tokio::select! {
            r = async { tokio::join!(writes, fsync, set_mode, close) } => r,
            _ = self.gone() => return Err(open(self.inner.session.lost("SFTP channel closed during upload"))),
        };
        let closed_err = |error| Failed {
            error,
            handle_closed: true,
        };
        let acked = written.map_err(closed_err)?;
        synced.map_err(closed_err)?;
        moded.map_err(closed_err)?;
        closed.map_err(closed_err)?;
        if opts.atomic {
            let renamed = if opts.overwrite {
                self.rename(target, remote).await
            } else {
                self.rename_no_replace(target, remote).await
            };
            renamed.map_err(closed_err)?;
        }
        Ok(acked)
    }
}

/// An upload that failed, and whether its handle is closed already.
struct Failed {
    error: Error,
    handle_closed: bool,
}

/// One upload in progress.
#[derive(Clone, Copy)]
struct Job<'a> {
    /// The open remote file.
    handle: &'a str,
    /// The destination.
    remote: &'a str,
    /// What is written: the destination, or its temporary name.
    target: &'a str,
    /// The final mode.
    mode: u32,
    /// The size, when known.
    total: Option<u64>,
    /// The local file read, for errors.
    local: Option<&'a Path>,
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
