//! The SFTP-less path: files streamed through `cat` over an exec channel,
//! for minimal images whose server has no SFTP subsystem.
//!
//! The scripts test what they need and exit with a code that names the
//! failure ([`Exit`]); the server's stderr text is only shown, never read
//! to decide anything.
//!
//! An upload of unknown size takes two commands. The first writes the data
//! (`cat`) and nothing else; only after it received every byte and
//! end-of-file and exited 0 does the second check the size and move the
//! file into place. A stream cut short (a local read error, a dropped
//! future) never reaches the `mv`, whatever the server does with a
//! half-read stdin (OpenSSH hands the command an end-of-file when the
//! channel closes), and the temporary file is removed ([`RemoteTemp`]).
//! When the size is known beforehand (a local file), the size check
//! guards the `mv` within one command: a cut stream leaves fewer bytes
//! than announced. One command needs one channel, all that a server with
//! one channel per connection (tinysshd) serves. That command also removes
//! its own temporary file whenever it ends without moving it into place
//! (a trap on exit and on the signals that stop it): the client's removal
//! may run before a command the server starts late, or runs though it
//! closed the channel (dropbear before 2024.86), creates the file.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::channel::ChannelLease;
use crate::error::{Error, SftpErrorKind};
use crate::exec::{Command, Output, shell_quote};
use crate::session::Session;
use crate::sftp::atomic::{LocalDest, RemoteTemp, Remover, parent_of, temp_name_for};
use crate::sftp::{Progress, ProgressFn, TransferOptions};
use crate::status::ExitStatus;

/// Exit codes of the scripts, one per failure they detect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// A path (the file, or the destination's directory) does not exist.
    NotFound = 2,
    /// No permission to read the file or write the directory.
    PermissionDenied = 13,
    /// The destination exists and overwriting was not asked for.
    Exists = 17,
    /// The path is a directory.
    IsDirectory = 21,
    /// Writing the data failed (a full disk, an I/O error).
    WriteFailed = 23,
    /// The file on the remote side is not as long as what was sent.
    ShortFile = 24,
}

impl Exit {
    fn code(self) -> i32 {
        self as i32
    }

    fn kind(status: &ExitStatus) -> SftpErrorKind {
        match status.code().and_then(|c| i32::try_from(c).ok()) {
            Some(c) if c == Exit::NotFound.code() => SftpErrorKind::NotFound,
            Some(c) if c == Exit::PermissionDenied.code() => SftpErrorKind::PermissionDenied,
            Some(c) if c == Exit::Exists.code() => SftpErrorKind::AlreadyExists,
            _ => SftpErrorKind::Other,
        }
    }
}

/// The error of a script that did not exit 0.
fn script_error(session: &Session, op: &str, path: &str, out: &Output) -> Error {
    Error::Sftp {
        host: session.host().to_string(),
        port: session.port(),
        op: op.to_string(),
        path: path.to_string(),
        kind: Exit::kind(&out.status),
        source: Some(format!("{}: {}", out.status, out.stderr_lossy().trim()).into()),
    }
}

/// How long an upload is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Length {
    /// Exactly this many bytes (a local file's size): checked in the
    /// command that writes them.
    Exact(u64),
    /// Perhaps this many (a reader's hint), for progress only.
    Hint(Option<u64>),
}

impl Length {
    fn total(self) -> Option<u64> {
        match self {
            Length::Exact(n) => Some(n),
            Length::Hint(h) => h,
        }
    }
}

/// Uploads through `cat` on an exec channel, for servers without SFTP:
/// on `spare` when given, the channel whose `subsystem sftp` request was
/// refused (a server with one channel per connection has no other).
/// Returns the bytes sent.
pub(crate) async fn upload<R>(
    session: &Session,
    spare: Option<ChannelLease>,
    reader: R,
    length: Length,
    remote: &str,
    mode: u32,
    opts: &TransferOptions,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let total = length.total();
    let dest = shell_quote(remote);
    let dir = shell_quote(parent_of(remote).unwrap_or("."));
    let target = if opts.atomic {
        temp_name_for(remote)
    } else {
        remote.to_string()
    };
    let tmp = shell_quote(&target);
    let (not_found, denied, exists, write_failed) = (
        Exit::NotFound.code(),
        Exit::PermissionDenied.code(),
        Exit::Exists.code(),
        Exit::WriteFailed.code(),
    );
    let mut write = String::new();
    if opts.atomic && matches!(length, Length::Exact(_)) {
        // One command that writes and commits: it cleans up after itself.
        write.push_str(&format!(
            "t={tmp}; trap 'rm -f -- \"$t\"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; \
             trap 'exit 141' PIPE; trap 'exit 143' TERM; "
        ));
    }
    if opts.create_parents {
        write.push_str(&format!("mkdir -p -- {dir} || exit {denied}; "));
    }
    write.push_str(&format!(
        "[ -d {dir} ] || exit {not_found}; [ -w {dir} ] || exit {denied}; "
    ));
    if !opts.overwrite {
        write.push_str(&format!("[ -e {dest} ] && exit {exists}; "));
    }
    write.push_str(&format!("umask 077; cat > {tmp} || exit {write_failed}"));
    let short = Exit::ShortFile.code();
    // Checks that `n` bytes arrived, then sets the mode and moves the file
    // into place.
    let commit = |n: u64| {
        let mut commit = format!(
            "[ \"$(($(wc -c < {tmp})))\" -eq {n} ] || exit {short}; chmod {mode:o} {tmp} || exit {denied}"
        );
        if opts.atomic {
            if opts.overwrite {
                commit.push_str(&format!("; mv -f -- {tmp} {dest} || exit {denied}"));
            } else {
                // A hard link fails if the destination exists: no replace.
                commit.push_str(&format!(
                    "; [ -e {dest} ] && exit {exists}; ln -- {tmp} {dest} || exit {exists}; rm -f -- {tmp}"
                ));
            }
        }
        commit
    };
    let script = match length {
        Length::Exact(n) => format!("{write}; {}", commit(n)),
        Length::Hint(_) => write,
    };

    let sent = Arc::new(AtomicU64::new(0));
    let counted = CountingReader {
        inner: reader,
        sent: sent.clone(),
        total,
        progress: opts.progress.clone(),
    };
    // Removed unless it becomes the destination, even if this future is
    // dropped. A failed non-atomic upload leaves what it wrote, as SFTP's.
    let temp = opts
        .atomic
        .then(|| RemoteTemp::new(target.clone(), Remover::Exec(session.clone())));
    let wrote = session
        .exec_command_on(
            spare,
            Command::new(script)
                .stdin_reader(counted)
                .forward_agent(false),
        )
        .await;
    let failure = match wrote {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(script_error(
            session,
            "upload (exec fallback)",
            remote,
            &out,
        )),
        Err(e) => Some(e),
    };
    if let Some(e) = failure {
        if let Some(t) = temp {
            let _ = t.remove().await;
        }
        return Err(e);
    }

    let n = sent.load(Ordering::Acquire);
    if let Length::Exact(announced) = length {
        // The command checked the size and committed.
        if n == announced {
            if let Some(t) = temp {
                t.keep();
            }
            opts.report(n, total);
            return Ok(n);
        }
        if let Some(t) = temp {
            let _ = t.remove().await;
        }
        return Err(Error::Sftp {
            host: session.host().to_string(),
            port: session.port(),
            op: "upload (exec fallback)".to_string(),
            path: remote.to_string(),
            kind: SftpErrorKind::Other,
            source: Some(format!("read {n} bytes of a {announced}-byte file").into()),
        });
    }

    // Every byte and the end-of-file reached `cat`, which exited 0: check
    // the size, then set the mode and move the file into place.
    let out = session
        .exec_command(Command::new(commit(n)).forward_agent(false))
        .await;
    match out {
        Ok(out) if out.status.success() => {
            if let Some(t) = temp {
                t.keep();
            }
            opts.report(n, total);
            Ok(n)
        }
        other => {
            if let Some(t) = temp {
                let _ = t.remove().await;
            }
            Err(match other {
                Ok(out) => script_error(session, "upload (exec fallback)", remote, &out),
                Err(e) => e,
            })
        }
    }
}

/// Streams a remote file through `cat` over exec into `writer`, for
/// servers without SFTP, on `spare` when given (see [`upload`]). Returns
/// the bytes received.
pub(crate) async fn download<W>(
    session: &Session,
    spare: Option<ChannelLease>,
    remote: &str,
    writer: &mut W,
) -> Result<u64, Error>
where
    W: AsyncWrite + Unpin + Send,
{
    let f = shell_quote(remote);
    let script = format!(
        "[ -e {f} ] || exit {}; [ -d {f} ] && exit {}; [ -r {f} ] || exit {}; exec cat -- {f}",
        Exit::NotFound.code(),
        Exit::IsDirectory.code(),
        Exit::PermissionDenied.code(),
    );
    let mut stream = session
        .start_command_on(
            spare,
            Command::new(script).idempotent(true).forward_agent(false),
        )
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
        let out = Output {
            stdout: Vec::new(),
            stderr,
            status,
        };
        return Err(script_error(session, "download (exec)", remote, &out));
    }
    writer
        .flush()
        .await
        .map_err(|e| Error::io("cannot write downloaded data", e))?;
    Ok(n)
}

/// Downloads through `cat` into a local file, atomically as `opts` says.
/// The remote mode is unknown here: the file keeps the mode it was created
/// with, unless `opts` sets one.
pub(crate) async fn download_file(
    session: &Session,
    spare: Option<ChannelLease>,
    remote: &str,
    local: &std::path::Path,
    opts: &TransferOptions,
) -> Result<u64, Error> {
    let mut dest = LocalDest::create(local, opts).await?;
    let n = download(session, spare, remote, dest.writer()).await?;
    dest.commit(None, opts).await?;
    opts.report(n, Some(n));
    Ok(n)
}

/// Counts bytes read (all of them sent once the command succeeded) and
/// reports progress.
struct CountingReader<R> {
    inner: R,
    sent: Arc<AtomicU64>,
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
            let done = self.sent.fetch_add(n, Ordering::AcqRel) + n;
            if let Some(p) = &self.progress {
                p(Progress {
                    done,
                    total: self.total,
                });
            }
        }
        r
    }
}
