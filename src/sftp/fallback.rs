//! The SFTP-less path: files streamed through `cat` over an exec channel,
//! for minimal images whose server has no SFTP subsystem.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::atomic::{parent_of, temp_name_for};
use super::options::{Progress, ProgressFn, TransferOptions};
use crate::error::{Error, SftpErrorKind};
use crate::exec::{Command, shell_quote};
use crate::session::Session;

/// Uploads through `cat` on an exec channel, for servers without SFTP.
pub(crate) async fn upload<R>(
    session: &Session,
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
    let out = session
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
        host: session.host().to_string(),
        port: session.port(),
        op: "upload (exec fallback)".to_string(),
        path: remote.to_string(),
        kind,
        source: Some(format!("{}: {}", out.status, stderr.trim()).into()),
    })
}

/// Removes a remote file with `rm -f` over exec.
pub(crate) async fn remove(session: &Session, path: &str) -> Result<(), Error> {
    let out = session
        .exec(&format!("rm -f -- {}", shell_quote(path)))
        .await?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Sftp {
        host: session.host().to_string(),
        port: session.port(),
        op: "remove (exec)".to_string(),
        path: path.to_string(),
        kind: SftpErrorKind::Other,
        source: Some(format!("{}: {}", out.status, out.stderr_lossy().trim()).into()),
    })
}

/// Streams a remote file through `cat` over exec, for servers without SFTP.
pub(crate) async fn download<W>(
    session: &Session,
    remote: &str,
    writer: &mut W,
) -> Result<u64, Error>
where
    W: AsyncWrite + Unpin + Send,
{
    let mut stream = session
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
            host: session.host().to_string(),
            port: session.port(),
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
