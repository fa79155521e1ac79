//! Moving files: the one upload/download façade that
//! [`Session`]'s transfer methods and provisioning use. It speaks SFTP
//! where the server has it, and otherwise streams through `cat` over an
//! exec channel (minimal images running dropbear alone: `cat.rs`). It
//! also owns what provisioning stages on a host: temporary files and
//! scripts, and the plan's SFTP channel within the session's channel
//! budget.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::channel::{self, Ahead, ChannelLease};
use crate::error::{Error, SftpErrorKind};
use crate::exec::{Command, ExecStream, StartError};
use crate::session::Session;
use crate::sftp::atomic::{RemoteTemp, Remover};
use crate::sftp::upload::open_local;
use crate::sftp::{Sftp, SftpOrChannel, TreeSummary};

mod cat;
mod dir;

pub(crate) use crate::sftp::TransferOptions;
use cat::Length;

impl Session {
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
        let mut transfer = Transfer::new(self);
        let sent = transfer.upload_file(local, remote, opts).await;
        transfer.finish().await;
        sent
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
        let mut transfer = Transfer::new(self);
        let sent = transfer
            .upload_reader(reader, size_hint, remote, opts)
            .await;
        transfer.finish().await;
        sent
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
        let mut transfer = Transfer::new(self);
        let got = transfer.download_file(remote, local, opts).await;
        transfer.finish().await;
        got
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
        cat::download(self, None, remote, writer).await
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
        let mut transfer = Transfer::new(self);
        let got = transfer.download_writer(remote, writer, opts).await;
        transfer.finish().await;
        got
    }
}

/// The façade: SFTP, opened on first use and kept for the operations that
/// follow, or the exec fallback where the server has no SFTP subsystem.
pub(crate) struct Transfer<'a> {
    session: &'a Session,
    backend: Option<Backend>,
    /// A channel opened ahead for the next command (see
    /// [`open_ahead`](Self::open_ahead)).
    ahead: Option<Ahead>,
    /// Whether a command follows the one now starting (a plan's next step
    /// runs one).
    command_follows: bool,
    /// The SFTP channel being opened ahead of the first step that moves a
    /// file (see [`before_step`](Self::before_step)).
    sftp_ahead: Option<Opening>,
    /// Work sent and not yet answered (a script's removal), waited for by
    /// [`finish`](Self::finish).
    pending: Vec<tokio::task::JoinHandle<()>>,
}

/// An SFTP channel being opened by a task of its own; dropping it stops
/// the task (a channel it opened is closed).
struct Opening(tokio::task::JoinHandle<Result<SftpOrChannel, Error>>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Backend {
    Sftp(Sftp),
    /// No SFTP subsystem: `cat` over exec, the first time on the channel
    /// the subsystem was refused on (a server with one channel per
    /// connection has no other).
    Exec(Option<ChannelLease>),
}

impl<'a> Transfer<'a> {
    pub(crate) fn new(session: &'a Session) -> Self {
        Transfer {
            session,
            backend: None,
            ahead: None,
            command_follows: false,
            sftp_ahead: None,
            pending: Vec::new(),
        }
    }

    /// Opens SFTP, or settles on the fallback. Nothing on the remote file
    /// system changes.
    pub(crate) async fn open(&mut self) -> Result<(), Error> {
        self.backend().await.map(drop)
    }

    /// The session this transfer works on.
    pub(crate) fn session(&self) -> &'a Session {
        self.session
    }

    /// Whether this transfer holds an open SFTP channel (or is opening
    /// one ahead).
    fn holds_channel(&self) -> bool {
        matches!(self.backend, Some(Backend::Sftp(_))) || self.sftp_ahead.is_some()
    }

    /// Closes the SFTP channel held for later operations (the next one
    /// opens another).
    fn release_channel(&mut self) {
        if matches!(self.backend, Some(Backend::Sftp(_))) {
            self.backend = None;
        }
        self.sftp_ahead = None;
    }

    /// Hands the SFTP channel held for later operations to the session,
    /// for an operation that takes its channel there (see
    /// [`upload_dir`](Self::upload_dir)).
    fn hand_over_channel(&mut self) {
        if matches!(self.backend, Some(Backend::Sftp(_)))
            && let Some(Backend::Sftp(sftp)) = self.backend.take()
        {
            self.session.keep_sftp(sftp);
        }
        self.sftp_ahead = None;
    }

    async fn backend(&mut self) -> Result<&mut Backend, Error> {
        // A channel the server ended is replaced, not reused.
        if matches!(&self.backend, Some(Backend::Sftp(s)) if s.is_gone()) {
            self.backend = None;
        }
        if self.backend.is_none() {
            let opened = match self.sftp_ahead.take() {
                Some(mut opening) => match (&mut opening.0).await {
                    Ok(opened) => opened,
                    Err(_) => self.session.sftp_or_channel().await,
                },
                None => self.session.sftp_or_channel().await,
            };
            let backend = match opened {
                Ok(SftpOrChannel::Sftp(sftp)) => Backend::Sftp(sftp),
                Ok(SftpOrChannel::NoSftp(spare)) => Backend::Exec(Some(spare)),
                // Accepted, but nothing serves it (dropbear without
                // sftp-server): its channel is gone.
                Err(e) if is_unsupported(&e) => Backend::Exec(None),
                Err(e) => return Err(e),
            };
            self.backend = Some(backend);
        }
        match &mut self.backend {
            Some(b) => Ok(b),
            None => Err(self.session.lost("transfer backend vanished")),
        }
    }

    /// Uploads a local file.
    pub(crate) async fn upload_file(
        &mut self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        let session = self.session;
        match self.backend().await? {
            Backend::Sftp(sftp) => sftp.upload_with(local, remote, opts).await,
            Backend::Exec(spare) => {
                let (file, len, mode) = open_local(local)?;
                let mode = opts.mode.unwrap_or(mode);
                cat::upload(
                    session,
                    spare.take(),
                    file,
                    Length::Exact(len),
                    remote,
                    mode,
                    opts,
                )
                .await
            }
        }
    }

    /// Uploads what `reader` yields.
    pub(crate) async fn upload_reader<R>(
        &mut self,
        reader: R,
        size_hint: Option<u64>,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let session = self.session;
        match self.backend().await? {
            Backend::Sftp(sftp) => {
                sftp.upload_from_reader(reader, size_hint, remote, opts)
                    .await
            }
            Backend::Exec(spare) => {
                let mode = opts.mode.unwrap_or(0o644);
                cat::upload(
                    session,
                    spare.take(),
                    reader,
                    Length::Hint(size_hint),
                    remote,
                    mode,
                    opts,
                )
                .await
            }
        }
    }

    /// Downloads to a local file.
    pub(crate) async fn download_file(
        &mut self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<u64, Error> {
        let session = self.session;
        match self.backend().await? {
            Backend::Sftp(sftp) => sftp.download_with(remote, local, opts).await,
            Backend::Exec(spare) => {
                cat::download_file(session, spare.take(), remote, local, opts).await
            }
        }
    }

    /// Downloads into `writer`.
    pub(crate) async fn download_writer<W>(
        &mut self,
        remote: &str,
        writer: &mut W,
        opts: &TransferOptions,
    ) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let session = self.session;
        match self.backend().await? {
            Backend::Sftp(sftp) => sftp.download_to_writer(remote, writer, opts).await,
            Backend::Exec(spare) => cat::download(session, spare.take(), remote, writer).await,
        }
    }

    /// Uploads a directory tree ([`Session::upload_dir`]), which takes
    /// its SFTP channel from the session: the one held for later
    /// operations is handed over (kept in the session for it, see
    /// [`Session::keep_sftp`], or closed so that the tree's own fits a
    /// server's limit), and found there again by the next operation.
    pub(crate) async fn upload_dir(
        &mut self,
        local: &Path,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<TreeSummary, Error> {
        self.hand_over_channel();
        self.session.upload_dir(local, remote, opts).await
    }

    /// Downloads a directory tree ([`Session::download_dir`]), as
    /// [`upload_dir`](Self::upload_dir) uploads one.
    pub(crate) async fn download_dir(
        &mut self,
        remote: &str,
        local: &Path,
        opts: &TransferOptions,
    ) -> Result<TreeSummary, Error> {
        self.hand_over_channel();
        self.session.download_dir(remote, local, opts).await
    }

    /// `remote`, a file this transfer's user is about to create (a script
    /// step's script): removed unless kept, by
    /// [`RemoteTemp::remove`], or by a task if the guard is dropped.
    pub(crate) async fn temp_file(&mut self, remote: &str) -> Result<RemoteTemp, Error> {
        Ok(RemoteTemp::new(remote, self.remover().await?))
    }

    /// Starts `cmd` on this transfer's session, within the session's
    /// channel budget: the SFTP channel held for later operations makes
    /// room where the server allows a single channel, once that is known
    /// before the command, or at once when the command's own refusal
    /// shows it (the open then waits for a channel to close, and nothing
    /// else would close this one).
    pub(crate) async fn start_command(&mut self, cmd: Command) -> Result<ExecStream, StartError> {
        let session = self.session;
        if session.channel_limit() < 2 {
            self.release_channel();
        }
        let spare = match self.ahead.take() {
            Some(ahead) => ahead.lease().await,
            None => None,
        };
        // The next command's channel opens while this one runs.
        if self.command_follows {
            self.open_ahead();
        }
        let mut limit = session.channel_limit_changes();
        let start = session.start_command_on(spare, cmd);
        tokio::pin!(start);
        loop {
            tokio::select! {
                r = &mut start => return r,
                Ok(()) = limit.changed(), if self.holds_channel() => self.release_channel(),
            }
        }
    }

    /// Before each step of a plan: what it and the steps after it need.
    /// The next command's channel is opened ahead: by
    /// [`start_command`](Self::start_command) once this step's command
    /// starts, or now if this step runs none. The plan's SFTP channel is
    /// opened now if a later step moves a file and this one does not
    /// (the first file step then finds it open). Both only where the
    /// server keeps channels opened ahead (see [`channel::Ahead`]) and
    /// two slots are free; both give way to a lower channel limit.
    pub(crate) fn before_step(&mut self, step: StepNeeds) {
        self.command_follows = step.command_follows;
        if step.command_follows && !step.runs_command {
            self.open_ahead();
        }
        if step.sftp_follows
            && !step.uses_sftp
            && self.backend.is_none()
            && self.sftp_ahead.is_none()
            && channel::opens_ahead(self.session.connection())
        {
            let session = self.session.clone();
            self.sftp_ahead = Some(Opening(tokio::spawn(async move {
                session.sftp_or_channel().await
            })));
        }
    }

    /// When a plan or a plain transfer is over: closes a channel opened
    /// ahead for a command that will not run, and waits for the close to
    /// be sent (so that the session's next open does not meet the server
    /// still counting it). Also waits for the work handed to
    /// [`settle_later`](Self::settle_later), so that a plan's scripts
    /// are gone when it returns. The SFTP channel is kept for the
    /// session's next transfer ([`Session::keep_sftp`]). Not reached when
    /// the caller is cancelled: a transfer dropped midway closes its
    /// channel, which may still carry its requests.
    pub(crate) async fn finish(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.close().await;
        }
        self.sftp_ahead = None;
        for pending in self.pending.drain(..) {
            let _ = pending.await;
        }
        self.hand_over_channel();
    }

    /// Work sent whose answer nothing waits for before
    /// [`finish`](Self::finish).
    pub(crate) fn settle_later(&mut self, work: tokio::task::JoinHandle<()>) {
        self.pending.retain(|w| !w.is_finished());
        self.pending.push(work);
    }

    /// Starts opening the channel of the next command now, where the
    /// server allows it (see [`channel::Ahead`]): its open's round trip
    /// then passes while other work runs. At most one at a time; dropped
    /// (closed) with this transfer.
    fn open_ahead(&mut self) {
        if self.ahead.is_none() {
            self.ahead = channel::open_ahead(self.session.connection());
        }
    }

    /// What removes remote files on this transfer's backend.
    async fn remover(&mut self) -> Result<Remover, Error> {
        let session = self.session;
        Ok(match self.backend().await? {
            Backend::Sftp(sftp) => Remover::Sftp(sftp.clone()),
            Backend::Exec(_) => Remover::Exec(session.clone()),
        })
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

/// What a plan's step and the steps after it need from the transfer (see
/// [`Transfer::before_step`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepNeeds {
    /// The step runs a command.
    pub(crate) runs_command: bool,
    /// The next step runs a command.
    pub(crate) command_follows: bool,
    /// The step uses the plan's SFTP channel.
    pub(crate) uses_sftp: bool,
    /// A later step uses it.
    pub(crate) sftp_follows: bool,
}
