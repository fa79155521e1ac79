//! What happens during provisioning ([`Event`]) and where it goes
//! ([`Sink`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::exec::Chunk;
use crate::status::ExitStatus;

/// What happens during provisioning, in order, per VM.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A fleet started connecting to the VM.
    Connecting {
        /// VM name.
        vm: Arc<str>,
    },
    /// The VM's session is up.
    Connected {
        /// VM name.
        vm: Arc<str>,
        /// Time to connect, retries included.
        duration: Duration,
    },
    /// A step started.
    StepStarted {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Number of steps in the plan.
        total: usize,
        /// [`ProvisionDef::describe`](super::ProvisionDef::describe).
        description: String,
    },
    /// Output of the running step, as it arrived.
    Output {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// The bytes, and which stream they came from.
        chunk: Chunk,
    },
    /// Progress of a file or script upload.
    Upload {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Bytes sent.
        done: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// Progress of a file download.
    Download {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Bytes received.
        done: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// A step ended.
    StepFinished {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// The exit status of a command step.
        status: Option<ExitStatus>,
        /// Whether the step succeeded.
        ok: bool,
        /// How long it ran.
        duration: Duration,
    },
    /// The VM's plan ended.
    VmFinished {
        /// VM name.
        vm: Arc<str>,
        /// Whether every step succeeded.
        ok: bool,
        /// The error, if any, as text.
        error: Option<String>,
        /// Total time.
        duration: Duration,
    },
}

impl Event {
    /// The VM this event is about.
    pub fn vm(&self) -> &str {
        match self {
            Event::Connecting { vm }
            | Event::Connected { vm, .. }
            | Event::StepStarted { vm, .. }
            | Event::Output { vm, .. }
            | Event::Upload { vm, .. }
            | Event::Download { vm, .. }
            | Event::StepFinished { vm, .. }
            | Event::VmFinished { vm, .. } => vm,
        }
    }
}

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
pub(crate) async fn emit(sinks: &[Arc<dyn Sink>], event: Event) {
    for s in sinks {
        s.event(&event).await;
    }
}
