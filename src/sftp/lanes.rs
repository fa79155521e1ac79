//! Lanes: one transfer over several SFTP channels of the same session.
//!
//! Each SFTP channel has its own flow control: an upload carries at most
//! the server's channel window per round trip (sshd: 2 MiB), and a
//! download at most the reads one channel has in flight (32 x 128 KiB;
//! the lanes share one window of them: `download.rs`). On a long link a large
//! file therefore moves over several channels at once, each reading or
//! writing its own parts of the one file; on a short one the extra
//! channels would only cost the server processes.

use super::Sftp;
use super::options::{LANE_BYTES, LANE_RTT, MAX_LANES, TransferOptions};

impl Sftp {
    /// How many lanes (SFTP channels) a transfer of `size` bytes uses: see
    /// [`TransferOptions::channels`]; the round trip is the shortest this
    /// channel has seen ([`note_round_trip`](Self::note_round_trip)), as
    /// each sample may hold the server's work too. Only slots free now are
    /// used, and one of them is left for others.
    pub(super) fn lanes_for(&self, opts: &TransferOptions, size: Option<u64>) -> usize {
        let wanted = match (opts.channels, size) {
            (Some(n), _) => n,
            (None, Some(size)) if self.rtt() >= LANE_RTT => (size / LANE_BYTES) as usize,
            (None, _) => 1,
        };
        let wanted = wanted.clamp(1, MAX_LANES.max(opts.channels.unwrap_or(0)));
        if wanted == 1 {
            return 1;
        }
        let free = self.inner.session.connection().slots.free();
        1 + (wanted - 1).min(free.saturating_sub(1))
    }

    /// Opens one more SFTP channel of this session for a lane of a
    /// transfer in `chunk`-byte requests; `write` says which way. Refused
    /// (an SFTP error) when the new channel takes smaller requests.
    pub(super) async fn lane_channel(
        &self,
        remote: &str,
        chunk: u32,
        write: bool,
    ) -> Result<Sftp, crate::Error> {
        let sftp = self.inner.session.sftp().await?;
        let max = if write {
            sftp.inner.max_write
        } else {
            sftp.inner.max_read
        };
        if max < chunk {
            return Err(sftp.failed(
                "open",
                remote,
                crate::error::SftpErrorKind::Unsupported,
                Some("the extra channel takes smaller requests"),
            ));
        }
        Ok(sftp)
    }
}
