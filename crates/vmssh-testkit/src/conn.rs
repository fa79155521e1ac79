//! What the tasks of one connection share: the server's state, the
//! connection's valve, and its counters. Written by the handler
//! (`handler.rs`) and by the channels' processes (`process.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::Shared;
use super::valve::Valve;

/// What the tasks of one connection share.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) valve: Arc<Valve>,
    output_sent: AtomicU64,
    /// Session channels being served. Counted by the channel tasks, not
    /// by `channel_close`: russh reports only closes the client starts, so
    /// a channel this side closed first would never be uncounted.
    pub(crate) open_channels: AtomicU64,
}

impl ConnCtx {
    pub(crate) fn new(shared: Arc<Shared>, valve: Arc<Valve>) -> Self {
        ConnCtx {
            shared,
            valve,
            output_sent: AtomicU64::new(0),
            open_channels: AtomicU64::new(0),
        }
    }

    /// Applies `close_after_output_bytes` to a chunk about to be sent:
    /// truncates it to what the budget still allows and, when this chunk
    /// exhausts the budget, arms the connection to be cut after the next
    /// flush (before the chunk is queued, so that the flush carrying it
    /// cannot be missed). Returns whether the budget is exhausted.
    pub(crate) fn take_output_budget(&self, chunk: &mut Bytes) -> bool {
        let Some(limit) = self.shared.opts.close_after_output else {
            return false;
        };
        let len = chunk.len() as u64;
        let before = self.output_sent.fetch_add(len, Ordering::SeqCst);
        if before.saturating_add(len) < limit {
            return false;
        }
        let allowed = limit.saturating_sub(before).min(len);
        chunk.truncate(usize::try_from(allowed).unwrap_or(0));
        if chunk.is_empty() {
            self.valve.close();
        } else {
            self.valve.close_after_flush();
        }
        true
    }
}
