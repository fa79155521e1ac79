//! The pipelined download engine: reads issued ahead at increasing
//! offsets, written out in order.

use std::path::Path;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::atomic::LocalDest;
use super::options::{DOWNLOAD_CHUNK, DOWNLOAD_IN_FLIGHT, TransferOptions};
use super::{Metadata, Sftp, is_status};
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
                return Err(self.failed(
                    "read",
                    remote,
                    SftpErrorKind::Other,
                    Some("is a directory"),
                ));
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
