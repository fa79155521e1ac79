//! Directory trees: [`Session::upload_dir`] and [`Session::download_dir`],
//! over SFTP (the engine is `sftp/tree.rs`).
//!
//! Servers without an SFTP subsystem get a typed error rather than a
//! fallback: recreating modes, links and empty directories through `tar`
//! over exec would depend on the guest having `tar` and on its flavour's
//! options, and could not give each file an atomic replace.

use std::path::Path;

use crate::error::{Error, SftpErrorKind};
use crate::session::Session;
use crate::sftp::{Sftp, SftpOrChannel, TransferOptions, TreeSummary};

impl Session {
    /// Uploads the local directory `local_dir` to `remote_dir`,
    /// recursively: files, directories (empty ones included) and symbolic
    /// links. Returns what was moved.
    ///
    /// `remote_dir` is the destination itself (`site/a` lands at
    /// `REMOTE_DIR/a`): created when missing (its parents too under
    /// [`create_parents`](TransferOptions::create_parents)), merged into
    /// when it exists.
    ///
    /// - Files move several at once on one SFTP channel, each pipelined and
    ///   replaced atomically as by [`upload_with`](Self::upload_with)
    ///   ([`atomic`](TransferOptions::atomic),
    ///   [`overwrite`](TransferOptions::overwrite),
    ///   [`fsync`](TransferOptions::fsync) and the request sizes apply to
    ///   each file).
    /// - Files and directories keep their local permission bits; setuid,
    ///   setgid and sticky bits are dropped unless
    ///   [`keep_setuid`](TransferOptions::keep_setuid) is set.
    ///   [`mode`](TransferOptions::mode) is not used. An existing root's
    ///   mode is left alone (uploading into `/tmp` does not change `/tmp`).
    /// - Symbolic links are recreated as links with the same target text,
    ///   whether they point into the tree or out of it; they are never
    ///   followed, and what they point to is never read. Only `local_dir`
    ///   itself is followed if it is a link.
    /// - Sockets, fifos and devices are left out (counted in
    ///   [`TreeSummary::skipped`]).
    /// - Progress, through [`on_progress`](TransferOptions::on_progress),
    ///   is for the whole tree: bytes of all files so far, and the total
    ///   size found by the walk; the last call reports the bytes moved.
    ///
    /// Names must be UTF-8 (SFTP paths are text).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the local tree cannot be read;
    /// [`Error::Sftp`] naming the remote path on a remote failure
    /// ([`SftpErrorKind::AlreadyExists`] when something other than a
    /// directory is where one goes), and with
    /// [`SftpErrorKind::Unsupported`] when the server has no SFTP
    /// subsystem: directories need SFTP (single files do not);
    /// [`Error::ConnectionLost`]. The first failure stops the transfer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the transfer: files already moved stay in
    /// place, files in flight leave no temporary file (each file's atomic
    /// guard removes it, as for [`upload`](Self::upload)), and directories
    /// already created stay, possibly without their final modes.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn f(sess: vmssh::Session) -> Result<(), vmssh::Error> {
    /// use std::path::Path;
    /// use vmssh::TransferOptions;
    ///
    /// let done = sess
    ///     .upload_dir(Path::new("site/"), "/srv/site", &TransferOptions::new())
    ///     .await?;
    /// println!("{} files, {} bytes", done.files, done.bytes);
    /// # Ok(()) }
    /// ```
    pub async fn upload_dir(
        &self,
        local_dir: &Path,
        remote_dir: &str,
        opts: &TransferOptions,
    ) -> Result<TreeSummary, Error> {
        // A missing local tree fails before any channel opens.
        match std::fs::metadata(local_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::io(
                    format!("not a directory: {}", local_dir.display()),
                    std::io::Error::from(std::io::ErrorKind::NotADirectory),
                ));
            }
            Err(e) => {
                return Err(Error::io(format!("cannot read {}", local_dir.display()), e));
            }
        }
        let sftp = self.sftp_for_tree("upload_dir", remote_dir).await?;
        let moved = sftp.upload_dir(local_dir, remote_dir, opts).await;
        self.keep_sftp(sftp);
        moved
    }

    /// Downloads the remote directory `remote_dir` to `local_dir`,
    /// recursively: the mirror of [`upload_dir`](Self::upload_dir).
    ///
    /// `local_dir` is the destination itself: created when missing (its
    /// parents too under [`create_parents`](TransferOptions::create_parents)),
    /// merged into when it exists. Files are replaced atomically as by
    /// [`download_with`](Self::download_with) and get the remote
    /// permission bits with the local umask applied (exactly under
    /// [`preserve_mode`](TransferOptions::preserve_mode)); setuid, setgid
    /// and sticky bits only under
    /// [`keep_setuid`](TransferOptions::keep_setuid): a guest cannot plant
    /// setuid programs on the machine that downloads from it. Directories
    /// get their modes by the same rules, at the end.
    ///
    /// Remote links are recreated as local links with the same target
    /// text, never followed; a local link already where the tree has a
    /// directory is never written through (the transfer fails). Names the
    /// server lists that would climb out of the tree (`..`, `/`) fail it
    /// too.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] when the remote tree cannot be read (with
    /// [`SftpErrorKind::Unsupported`] when the server has no SFTP
    /// subsystem); [`Error::Io`] when the local tree cannot be written;
    /// [`Error::ConnectionLost`]. The first failure stops the transfer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the transfer: files already moved stay in
    /// place, files in flight leave no temporary file, directories already
    /// created stay.
    pub async fn download_dir(
        &self,
        remote_dir: &str,
        local_dir: &Path,
        opts: &TransferOptions,
    ) -> Result<TreeSummary, Error> {
        let sftp = self.sftp_for_tree("download_dir", remote_dir).await?;
        let moved = sftp.download_dir(remote_dir, local_dir, opts).await;
        self.keep_sftp(sftp);
        moved
    }

    /// SFTP for a directory transfer, or a typed error saying directories
    /// need it.
    async fn sftp_for_tree(&self, op: &str, path: &str) -> Result<Sftp, Error> {
        let unsupported = || Error::Sftp {
            host: self.host().to_string(),
            port: self.port(),
            op: op.to_string(),
            path: path.to_string(),
            kind: SftpErrorKind::Unsupported,
            source: Some(
                "directory transfers need SFTP, and this server has no SFTP subsystem".into(),
            ),
        };
        match self.sftp_or_channel().await {
            Ok(SftpOrChannel::Sftp(sftp)) => Ok(sftp),
            Ok(SftpOrChannel::NoSftp(_)) => Err(unsupported()),
            Err(Error::Sftp {
                kind: SftpErrorKind::Unsupported,
                ..
            }) => Err(unsupported()),
            Err(e) => Err(e),
        }
    }
}
