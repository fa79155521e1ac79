//! Atomic replace: temporary names next to the destination, the local
//! file a download writes, and the cleanup of temporary files left by a
//! failed or cancelled transfer, locally and on the remote side.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::Sftp;
use super::options::TransferOptions;
use crate::channel::{ClosingGuard, winding_down};
use crate::error::Error;
use crate::exec::{Command, shell_quote};
use crate::session::Session;

pub(crate) fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&trimmed[..i]),
        None => None,
    }
}

pub(crate) fn file_name_of(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

pub(crate) fn temp_name_for(remote: &str) -> String {
    let tag: u64 = rand::random();
    let name = format!(".{}.vmssh-{tag:016x}.tmp", file_name_of(remote));
    match parent_of(remote) {
        Some("/") => format!("/{name}"),
        Some(dir) => format!("{dir}/{name}"),
        None => name,
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

/// The local file a download writes: a temporary name beside the
/// destination (atomic) or the destination itself, removed if the
/// download fails or is dropped before [`commit`](Self::commit).
pub(crate) struct LocalDest {
    local: PathBuf,
    target: PathBuf,
    atomic: bool,
    writer: tokio::io::BufWriter<tokio::fs::File>,
    cleanup: TempCleanup,
}

fn local_err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", p.display()), e)
}

impl LocalDest {
    /// Creates the file `opts` asks for (parents, no-overwrite check,
    /// temporary name).
    pub(crate) async fn create(local: &Path, opts: &TransferOptions) -> Result<Self, Error> {
        if opts.create_parents
            && let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| local_err("cannot create local directory", dir, e))?;
        }
        if !opts.overwrite && tokio::fs::try_exists(local).await.unwrap_or(false) {
            return Err(local_err(
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
        let mut oo = std::fs::OpenOptions::new();
        oo.write(true).create(true).truncate(true);
        if opts.atomic || !opts.overwrite {
            oo.create_new(true);
        }
        // Created here, in this poll, with its clean-up armed before the
        // next: on tokio's blocking pool the create could finish after a
        // dropped download had given up on it, leaving a temporary file
        // with nothing to remove it (seen under load). One open(2) of a
        // local file, as cheap as the unlink done on drop.
        let file = oo
            .open(&target)
            .map_err(|e| local_err("cannot create local file", local, e))?;
        let cleanup = TempCleanup(opts.atomic.then(|| target.clone()));
        Ok(LocalDest {
            local: local.to_path_buf(),
            cleanup,
            target,
            atomic: opts.atomic,
            writer: tokio::io::BufWriter::with_capacity(
                256 * 1024,
                tokio::fs::File::from_std(file),
            ),
        })
    }

    /// Where the downloaded bytes go.
    pub(crate) fn writer(&mut self) -> &mut tokio::io::BufWriter<tokio::fs::File> {
        &mut self.writer
    }

    /// Flushes, sets the mode (see [`local_mode`]), syncs and renames the
    /// file into place.
    pub(crate) async fn commit(
        mut self,
        remote_mode: Option<u32>,
        opts: &TransferOptions,
    ) -> Result<(), Error> {
        let local = self.local.clone();
        self.writer
            .flush()
            .await
            .map_err(|e| local_err("cannot write local file", &local, e))?;
        let file = self.writer.get_ref();
        if let Some(mode) = local_mode(remote_mode, opts) {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| local_err("cannot set mode of", &local, e))?;
        }
        if opts.fsync {
            file.sync_all()
                .await
                .map_err(|e| local_err("cannot sync", &local, e))?;
        }
        if self.atomic {
            tokio::fs::rename(&self.target, &local)
                .await
                .map_err(|e| local_err("cannot rename into place", &local, e))?;
            self.cleanup.0 = None;
        }
        Ok(())
    }
}

/// The mode a downloaded file gets: an explicit
/// [`mode`](TransferOptions::mode) as given; else the remote file's
/// permission bits (`0o777`) with the local umask applied, as OpenSSH's
/// `sftp` does, or without it under
/// [`preserve_mode`](TransferOptions::preserve_mode); setuid, setgid and
/// sticky only under [`keep_setuid`](TransferOptions::keep_setuid).
/// `None`: leave the mode the file was created with.
pub(crate) fn local_mode(remote_mode: Option<u32>, opts: &TransferOptions) -> Option<u32> {
    if let Some(mode) = opts.mode {
        return Some(mode);
    }
    let remote = remote_mode?;
    let special = if opts.keep_setuid { remote & 0o7000 } else { 0 };
    let perms = if opts.preserve_mode {
        remote & 0o777
    } else {
        remote & 0o777 & !process_umask()
    };
    Some(special | perms)
}

/// The process's umask, from `/proc` (reading it with `umask(2)` would
/// change it for a moment for every thread). 0o022 where unknown.
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// How a remote temporary file is removed.
#[derive(Clone, Debug)]
pub(crate) enum Remover {
    /// Over an SFTP channel.
    Sftp(Sftp),
    /// With `rm -f` over exec (servers without SFTP).
    Exec(Session),
}

impl Remover {
    fn session(&self) -> &Session {
        match self {
            Remover::Sftp(sftp) => sftp.session(),
            Remover::Exec(s) => s,
        }
    }

    pub(crate) async fn remove(&self, path: &str) -> Result<(), Error> {
        match self {
            Remover::Sftp(sftp) => sftp.remove(path).await,
            Remover::Exec(session) => {
                let rm = format!("rm -f -- {}", shell_quote(path));
                let out = session
                    .exec_command(Command::new(rm).idempotent(true).forward_agent(false))
                    .await?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(Error::Sftp {
                        host: session.host().to_string(),
                        port: session.port(),
                        op: "remove (exec)".to_string(),
                        path: path.to_string(),
                        kind: crate::error::SftpErrorKind::Other,
                        source: Some(
                            format!("{}: {}", out.status, out.stderr_lossy().trim()).into(),
                        ),
                    })
                }
            }
        }
    }
}

/// A remote temporary file (an upload's temporary name, a script step's
/// script) that is removed unless [`keep`](Self::keep) is called: by
/// [`remove`](Self::remove), or, when the guard is dropped (a failure or
/// a cancelled future), by a task, as long as the connection is alive.
pub(crate) struct RemoteTemp {
    path: Option<String>,
    remover: Remover,
}

impl RemoteTemp {
    pub(crate) fn new(path: impl Into<String>, remover: Remover) -> Self {
        RemoteTemp {
            path: Some(path.into()),
            remover,
        }
    }

    /// The file became the destination: nothing to remove.
    pub(crate) fn keep(mut self) {
        self.path = None;
    }

    /// Removes the file now.
    pub(crate) async fn remove(mut self) -> Result<(), Error> {
        match self.path.take() {
            Some(p) => self.remover.remove(&p).await,
            None => Ok(()),
        }
    }

    /// Removes the file without waiting for the answer (a round trip on
    /// a long link): over SFTP the request is on its way when this
    /// returns, so the channel's later requests come after it (a later
    /// upload to the same path is not removed), and a failure is logged
    /// when it comes (the task returned ends then); over exec, as when
    /// dropped (later channels wait for it).
    pub(crate) async fn remove_soon(mut self) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.path.take()?;
        let Remover::Sftp(sftp) = &self.remover else {
            self.path = Some(path);
            drop(self);
            return None;
        };
        let sftp = sftp.clone();
        let removing = super::submit(async move {
            let removed = sftp.remove(&path).await;
            (path, removed)
        })
        .await;
        Some(tokio::spawn(async move {
            if let (path, Err(e)) = removing.await {
                tracing::warn!(path, error = %e, "cannot remove a temporary file");
            }
        }))
    }
}

impl Drop for RemoteTemp {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        if self.remover.session().is_closed() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let remover = self.remover.clone();
        // The caller's next channel waits until the file is gone: on
        // dropbear, the `rm` ending as a new channel opens would close it.
        let guard = ClosingGuard::new(remover.session().connection());
        rt.spawn(winding_down(guard, async move {
            // It may never have been created (dropped while being opened).
            if let Err(e) = remover.remove(&path).await {
                tracing::debug!(path, error = %e, "cannot remove a temporary file");
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_modes() {
        let umask = process_umask();
        let plain = TransferOptions::new();
        assert_eq!(local_mode(Some(0o6775), &plain), Some(0o775 & !umask));
        assert_eq!(local_mode(None, &plain), None);
        let preserve = TransferOptions::new().preserve_mode(true);
        assert_eq!(local_mode(Some(0o6775), &preserve), Some(0o775));
        let setuid = TransferOptions::new().preserve_mode(true).keep_setuid(true);
        assert_eq!(local_mode(Some(0o6775), &setuid), Some(0o6775));
        let explicit = TransferOptions::new().mode(0o4700);
        assert_eq!(local_mode(Some(0o644), &explicit), Some(0o4700));
    }

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
