//! How a transfer runs: [`TransferOptions`] and [`Progress`].

use std::fmt;
use std::sync::Arc;

/// Progress of one transfer: bytes acknowledged so far and the total when
/// known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes written (upload: acknowledged by the server; download:
    /// written locally).
    pub done: u64,
    /// Total size, when known in advance.
    pub total: Option<u64>,
}

pub(crate) type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Options for uploads and downloads (one type for both directions;
/// where a setting means something different per direction, its doc
/// says so).
///
/// # Example
///
/// ```
/// use vmssh::sftp::TransferOptions;
///
/// let opts = TransferOptions::new()
///     .mode(0o755)
///     .create_parents(true)
///     .on_progress(|p| eprintln!("{} / {:?}", p.done, p.total));
/// # let _ = opts;
/// ```
#[derive(Clone)]
#[must_use]
pub struct TransferOptions {
    pub(crate) mode: Option<u32>,
    pub(crate) create_parents: bool,
    pub(crate) atomic: bool,
    pub(crate) overwrite: bool,
    pub(crate) fsync: bool,
    pub(crate) preserve_mode: bool,
    pub(crate) keep_setuid: bool,
    pub(crate) chunk_size: Option<u32>,
    pub(crate) in_flight: Option<usize>,
    pub(crate) channels: Option<usize>,
    pub(crate) progress: Option<ProgressFn>,
}

/// Defaults per direction, from `cargo bench -p vmssh-benches --bench compare` (BENCHMARKS.md).
/// Uploads: on a long link the server's channel window decides (OpenSSH's
/// sshd: 2 MiB per round trip). 28 x 64 KiB (1.75 MiB, headers included
/// under 2 MiB) nearly fills it without ever waiting for it: 4 MiB in
/// flight was as fast at 20 and 50 ms but slower at 2 ms, where the writes
/// beyond the window wait for each window adjustment. Downloads gained
/// from larger reads: 4 MiB in flight per lane, and on a long link the
/// lanes' reads are one shared window (see `download.rs`), so a download
/// moves up to 16 MiB per round trip with four lanes.
pub(crate) const UPLOAD_CHUNK: u32 = 64 * 1024;
pub(crate) const UPLOAD_IN_FLIGHT: usize = 28;
/// A long transfer on a long link (see `lanes.rs`): each SFTP channel
/// carries at most the server's channel window per round trip uploading
/// (sshd: 2 MiB), and its reads in flight downloading, so a transfer uses
/// more channels (lanes) where one would wait for its window: at least
/// [`LANE_RTT`] round trip, measured by the SFTP channel's init, and one
/// lane per [`LANE_BYTES`] of file, at most [`MAX_LANES`]. Measured with
/// `cargo bench -p vmssh-benches --bench compare -- --scenario rtt_upload --upload-variant
/// channels=N` (BENCHMARKS.md, 2026-12-06): at 20-100 ms four lanes moved
/// 1.6-1.9x one lane's bytes per second, two lanes 1.2-1.4x, eight no
/// more than four (on files of 16-32 MiB); at 3.4 ms one lane was faster
/// (243 MB/s against 219): there the window never waits and extra
/// `sftp-server`s only cost CPU. The init's time includes the server's
/// start of `sftp-server`, hence a threshold well above loopback's.
/// Downloads use the same rule (2.6-2.9x `scp` at 20-100 ms in the full
/// run of 2026-12-07).
pub(crate) const LANE_RTT: std::time::Duration = std::time::Duration::from_millis(10);
pub(crate) const LANE_BYTES: u64 = 4 << 20;
pub(crate) const MAX_LANES: usize = 4;
pub(crate) const DOWNLOAD_CHUNK: u32 = 128 * 1024;
pub(crate) const DOWNLOAD_IN_FLIGHT: usize = 32;

impl fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferOptions")
            .field("mode", &self.mode.map(|m| format!("{m:o}")))
            .field("create_parents", &self.create_parents)
            .field("atomic", &self.atomic)
            .field("overwrite", &self.overwrite)
            .field("fsync", &self.fsync)
            .field("preserve_mode", &self.preserve_mode)
            .field("keep_setuid", &self.keep_setuid)
            .field("chunk_size", &self.chunk_size)
            .field("in_flight", &self.in_flight)
            .field("channels", &self.channels)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            mode: None,
            create_parents: false,
            atomic: true,
            overwrite: true,
            fsync: true,
            preserve_mode: false,
            keep_setuid: false,
            chunk_size: None,
            in_flight: None,
            channels: None,
            progress: None,
        }
    }
}

impl TransferOptions {
    /// The defaults: atomic, overwrite, fsync, keep modes; uploads keep 28
    /// writes of 64 KiB in flight, downloads 32 reads of 128 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the permission bits of the destination file (setuid, setgid
    /// and sticky included, as given).
    ///
    /// Default: an upload from a file keeps the local file's mode, from a
    /// reader 0644. A download takes the remote file's permission bits
    /// (`0o777`) with the local umask applied, as OpenSSH's `sftp` does
    /// (see [`preserve_mode`](Self::preserve_mode) and
    /// [`keep_setuid`](Self::keep_setuid)); without SFTP, where the remote
    /// mode is unknown, the file is created with the umask's default.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o7777);
        self
    }

    /// Sets whether a download keeps the remote file's permission bits
    /// exactly, without applying the local umask (`sftp -p`). Setuid,
    /// setgid and sticky bits still need [`keep_setuid`](Self::keep_setuid).
    ///
    /// Default: false.
    pub fn preserve_mode(mut self, on: bool) -> Self {
        self.preserve_mode = on;
        self
    }

    /// Sets whether a download keeps the remote file's setuid, setgid and
    /// sticky bits. A guest could otherwise plant setuid programs on the
    /// machine that downloads from it: ask for this only for guests you
    /// trust.
    ///
    /// Default: false.
    pub fn keep_setuid(mut self, on: bool) -> Self {
        self.keep_setuid = on;
        self
    }

    /// Sets whether missing parent directories of the destination are
    /// created.
    ///
    /// Default: false.
    pub fn create_parents(mut self, on: bool) -> Self {
        self.create_parents = on;
        self
    }

    /// Sets whether the transfer writes to a temporary file in the
    /// destination's directory, then renames
    /// it over the destination, so readers never see a partial file
    /// and a failed transfer leaves the old one intact.
    ///
    /// Default: true.
    pub fn atomic(mut self, on: bool) -> Self {
        self.atomic = on;
        self
    }

    /// Sets whether an existing destination is replaced. When false, it
    /// fails the transfer with [`SftpErrorKind::AlreadyExists`](crate::SftpErrorKind::AlreadyExists).
    ///
    /// Default: true.
    pub fn overwrite(mut self, on: bool) -> Self {
        self.overwrite = on;
        self
    }

    /// Sets whether the file is flushed to disk before the rename, where
    /// the server supports
    /// `fsync@openssh.com` (uploads) or locally (downloads).
    ///
    /// Default: true.
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Sets the bytes per read or write request (clamped to the server's
    /// limits).
    ///
    /// Default: 64 KiB for uploads, 128 KiB for downloads.
    pub fn chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = Some(bytes.clamp(512, 255 * 1024));
        self
    }

    /// Sets how many requests are kept outstanding at once.
    ///
    /// Default: 28 for uploads, 32 for downloads.
    pub fn requests_in_flight(mut self, n: usize) -> Self {
        self.in_flight = Some(n.clamp(1, 1024));
        self
    }

    /// Sets the most SFTP channels one transfer may use at once. One
    /// channel moves at most the server's window (2 MiB for OpenSSH's
    /// sshd) per round trip uploading, and about 2 MB per round trip
    /// downloading, so on a long link a large file moves over several
    /// channels of the same connection ("lanes"). An upload's lanes write
    /// their own parts of the one temporary file, which is renamed into
    /// place only once every part is written; a download's lanes read
    /// their own parts, written out in order (to the one temporary file
    /// or the writer). Extra channels are opened only while the session
    /// has free channel slots (see
    /// [`SshConfig::max_channels`](crate::SshConfig::max_channels)) and
    /// join as they open: one that cannot be opened is done without; one
    /// that fails once it has moved bytes fails the transfer. `1` keeps a
    /// transfer on one channel.
    ///
    /// Default: automatic: one channel where the round trip (timed on the
    /// SFTP channel's open) is under 10 ms, the file under 8 MiB, or its
    /// size unknown (a reader, a file the server gives no size for);
    /// otherwise one channel per 4 MiB, at most 4.
    pub fn channels(mut self, n: usize) -> Self {
        self.channels = Some(n.clamp(1, 16));
        self
    }

    /// Sets the function called as the transfer advances (after each
    /// acknowledged request).
    /// Keep it cheap: it runs on the transfer's task.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    pub(crate) fn report(&self, done: u64, total: Option<u64>) {
        if let Some(p) = &self.progress {
            p(Progress { done, total });
        }
    }
}
