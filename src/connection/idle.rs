//! A channel kept open between uses: the SFTP channel of a session's plain
//! transfers, parked when one ends for the next to take, so that the next
//! one does not pay the channel open, the subsystem start and the SFTP init
//! again (four round trips on a long link).
//!
//! Ownership keeps this from holding the connection up: the parked value
//! holds the connection, so the connection must not hold the park. The
//! [`Session`](crate::Session) handles the user holds own it (one [`Arc`]
//! shared by their clones); the connection and the park's timer only see
//! it through a [`Weak`](std::sync::Weak). Dropping the last user handle
//! drops the park and the channel in it, and the connection ends as
//! before, when nothing else holds it. What is parked holds an internal
//! session, without the user handle (`Session::internal`).
//!
//! A parked channel gives way: it is closed after its idle time, when an
//! open of the same connection finds no free slot (see
//! `channel::free_slot`), and when the session is closed.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The park: at most one value, the channel of the next use.
#[derive(Debug)]
pub(crate) struct Idle {
    /// How long a value stays parked with no use; zero parks nothing.
    life: Duration,
    parked: Mutex<Option<Parked>>,
}

struct Parked {
    value: Box<dyn Any + Send + Sync>,
    /// Ends the value's stay after `life`.
    timer: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked").finish_non_exhaustive()
    }
}

impl Parked {
    /// The value, its timer stopped.
    fn into_value(self) -> Box<dyn Any + Send + Sync> {
        self.timer.abort();
        self.value
    }
}

impl Idle {
    pub(crate) fn new(life: Duration) -> Arc<Self> {
        Arc::new(Idle {
            life,
            parked: Mutex::new(None),
        })
    }

    /// Parks `value` for the next [`take`](Self::take), replacing (and
    /// dropping) what was parked; dropped at once if nothing may be parked.
    pub(crate) fn park<T: Any + Send + Sync>(self: &Arc<Self>, value: T) {
        if self.life.is_zero() {
            return;
        }
        let me = Arc::downgrade(self);
        let life = self.life;
        // The timer is started under the lock, so that its end finds the
        // value parked however short the idle time.
        let mut parked = self.lock();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(life).await;
            if let Some(idle) = me.upgrade() {
                idle.expire();
            }
        })
        .abort_handle();
        let old = parked.replace(Parked {
            value: Box::new(value),
            timer,
        });
        drop(parked);
        // Dropped outside the lock: dropping a channel sends its close.
        drop(old.map(Parked::into_value));
    }

    /// The parked value, if one is parked and is a `T`.
    pub(crate) fn take<T: Any>(&self) -> Option<T> {
        let value = self.lock().take()?.into_value();
        value.downcast::<T>().ok().map(|v| *v)
    }

    /// Drops what is parked (its channel closes).
    pub(crate) fn clear(&self) {
        let old = self.lock().take();
        drop(old.map(Parked::into_value));
    }

    /// The idle time is over: drops what is parked unless it was taken
    /// (and perhaps parked again, with a timer of its own) meanwhile.
    fn expire(&self) {
        let mut parked = self.lock();
        let current = parked
            .as_ref()
            .is_some_and(|p| tokio::task::try_id().is_some_and(|me| p.timer.id() == me));
        let old = if current { parked.take() } else { None };
        drop(parked);
        drop(old);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        if let Some(parked) = self.lock().take() {
            drop(parked.into_value());
        }
    }
}
