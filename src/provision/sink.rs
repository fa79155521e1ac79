//! Where provisioning's [`Event`]s go: the [`Sink`] trait.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::report::Event;

/// Where provisioning events go. Sinks are awaited: a slow sink slows the
/// remote command (through SSH flow control) instead of growing memory.
///
/// Events are for watching; results come from what
/// [`Provisioner::run`](super::Provisioner::run) and
/// [`Fleet::provision`](crate::fleet::Fleet::provision) return.
pub trait Sink: Send + Sync {
    /// Handles one event.
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()>;
}

/// Hands `event` to each sink, in order.
pub(crate) async fn emit(sinks: &[Arc<dyn Sink>], event: &Event) {
    for s in sinks {
        s.event(event).await;
    }
}
