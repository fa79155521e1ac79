//! Channel slots: the channels of one connection the server confirmed, and
//! the limit on how many may be open at once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use russh::ChannelId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The channels of one session the server has confirmed and not closed,
/// counted by the connection's handler in the order the server's messages
/// arrive: when a refusal reaches its caller, every confirmation the server
/// sent before it is counted (the callers' tasks may run in any order).
#[derive(Debug, Default)]
pub(crate) struct LiveChannels {
    ids: Mutex<HashSet<ChannelId>>,
    /// The most that were open at once.
    peak: AtomicUsize,
}

impl LiveChannels {
    /// The server confirmed `id`.
    pub(crate) fn confirmed(&self, id: ChannelId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id);
            self.peak.fetch_max(ids.len(), Ordering::AcqRel);
        }
    }

    /// `id` is closed (by the server, or by this side first); closing it
    /// twice counts once.
    pub(crate) fn closed(&self, id: ChannelId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(&id);
        }
    }

    /// How many are open now.
    pub(crate) fn count(&self) -> usize {
        self.ids.lock().map_or(0, |ids| ids.len())
    }

    /// The most that were open at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
}

/// The channel slots of one session: at most
/// [`SshConfig::max_channels`](crate::SshConfig::max_channels) channels at
/// once, and no more than the server allows once one of its refusals has
/// shown its limit (OpenSSH's `MaxSessions`, one for tinysshd). Opens
/// beyond the limit wait for a channel to close instead of being refused.
#[derive(Debug)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    /// The limit now: `max_channels`, or the server's as learned.
    capacity: AtomicUsize,
    /// Permits still to be withdrawn after the limit was lowered while
    /// they were in use: each is forgotten when it comes back.
    debt: AtomicUsize,
    /// The limit, for those who must react when it is lowered.
    limit: tokio::sync::watch::Sender<usize>,
}

impl Slots {
    pub(crate) fn new(max_channels: usize) -> Arc<Self> {
        Arc::new(Slots {
            semaphore: Arc::new(Semaphore::new(max_channels)),
            capacity: AtomicUsize::new(max_channels),
            debt: AtomicUsize::new(0),
            limit: tokio::sync::watch::Sender::new(max_channels),
        })
    }

    /// Sees each change of the limit from now on.
    pub(crate) fn limit_changes(&self) -> tokio::sync::watch::Receiver<usize> {
        self.limit.subscribe()
    }

    /// How many channels may be open at once: `max_channels`, or less once
    /// the server has shown its limit.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Acquire)
    }

    /// How many slots are free now: opens that would not wait.
    pub(crate) fn free(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Waits for a free slot (in arrival order); `None` once the session
    /// is gone.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.semaphore.clone().acquire_owned().await.ok()?;
        Some(Slot {
            slots: self.clone(),
            permit: Some(permit),
        })
    }

    /// Lowers the limit to `limit` (it never rises again). Returns whether
    /// it changed.
    pub(crate) fn learn(&self, limit: usize) -> bool {
        let limit = limit.max(1);
        let mut current = self.capacity.load(Ordering::Acquire);
        loop {
            if limit >= current {
                return false;
            }
            match self.capacity.compare_exchange(
                current,
                limit,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(c) => current = c,
            }
        }
        let excess = current - limit;
        let withdrawn = self.semaphore.forget_permits(excess);
        self.debt.fetch_add(excess - withdrawn, Ordering::AcqRel);
        self.limit.send_replace(limit);
        true
    }
}

/// One slot under the session's channel limit, held by an open and then
/// by its lease until the channel is closed.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let withdraw = self
                .slots
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
                .is_ok();
            if withdraw {
                permit.forget();
            }
        }
    }
}
