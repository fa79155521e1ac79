//! Agent forwarding's gate: how many channels of the connection asked the
//! server for an agent, and where the handler sends the agent channels
//! (`auth-agent@openssh.com`) the server opens. The agent channels are
//! served above (`agent_forward.rs`), which installs the delivery here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use russh::client::ChannelOpenHandle;

use super::routes::Forwarded;

/// Serves one agent channel the server opened: connects to the local agent
/// and accepts the channel through `ChannelOpenHandle`, or drops it, which
/// refuses the channel.
pub(crate) type AgentDelivery = Box<dyn Fn(Forwarded, ChannelOpenHandle) + Send + Sync>;

/// The agent forwarding of one connection.
#[derive(Default)]
pub(crate) struct AgentForwards {
    /// Channels open now that asked for an agent.
    asked: AtomicUsize,
    /// Where agent channels go; unset until the session is up.
    delivery: OnceLock<AgentDelivery>,
}

impl std::fmt::Debug for AgentForwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentForwards")
            .field("asked", &self.asked.load(Ordering::Acquire))
            .field("delivery", &self.delivery.get().is_some())
            .finish()
    }
}

impl AgentForwards {
    /// Agent channels go to `delivery` from now on (the first one set wins).
    pub(crate) fn deliver_to(&self, delivery: AgentDelivery) {
        let _ = self.delivery.set(delivery);
    }

    /// How many open channels asked for an agent.
    pub(crate) fn asked(&self) -> usize {
        self.asked.load(Ordering::Acquire)
    }

    /// Hands an agent channel the server opened to its delivery, or
    /// refuses it (by dropping `reply`) when no open channel asked for an
    /// agent: a server must not reach the agent on its own.
    pub(super) fn deliver(&self, host: &str, channel: Forwarded, reply: ChannelOpenHandle) {
        if self.asked() == 0 {
            // OpenSSH's words: this is what a hostile server would do.
            tracing::warn!(
                host,
                "the server opened an agent channel that no channel asked for; refused"
            );
            return;
        }
        match self.delivery.get() {
            Some(deliver) => deliver(channel, reply),
            None => tracing::debug!(host, "agent channel before the session was up; refused"),
        }
    }
}

/// One channel's request for an agent, counted while held: agent channels
/// are accepted while any is held.
#[derive(Debug)]
pub(crate) struct AgentAsk {
    forwards: Arc<AgentForwards>,
}

impl AgentAsk {
    /// Counts a channel asking for an agent until the result is dropped.
    pub(crate) fn new(forwards: &Arc<AgentForwards>) -> AgentAsk {
        forwards.asked.fetch_add(1, Ordering::AcqRel);
        AgentAsk {
            forwards: forwards.clone(),
        }
    }
}

impl Drop for AgentAsk {
    fn drop(&mut self) {
        self.forwards.asked.fetch_sub(1, Ordering::AcqRel);
    }
}
