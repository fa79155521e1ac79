//! [`ChannelSink`]: events forwarded into a bounded channel.

use futures::future::BoxFuture;

use crate::provision::{Event, Sink};

/// Forwards every event into a bounded channel; when the receiver is slow,
/// provisioning waits for it. A closed receiver drops events.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<Event>,
}

impl ChannelSink {
    /// Forwards into `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<Event>) -> Self {
        ChannelSink { tx }
    }
}

impl Sink for ChannelSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.tx.send(event.clone()).await;
        })
    }
}
