//! [`TracingSink`]: output lines and step results as `tracing` events.

use std::fmt;

use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::provision::{Event, LineSplitter, Sink};

/// Emits output lines and step results as `tracing` events with `vm` and
/// `step` fields (target `vmssh::provision`).
pub struct TracingSink {
    lines: Mutex<LineSplitter>,
    output: bool,
}

impl Default for TracingSink {
    fn default() -> Self {
        TracingSink {
            lines: Mutex::new(LineSplitter::new()),
            output: true,
        }
    }
}

impl fmt::Debug for TracingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingSink")
            .field("output", &self.output)
            .finish()
    }
}

impl TracingSink {
    /// A new tracing sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink for steps and results only, without the output lines (which
    /// another sink shows): what vmctl logs through `tracing`.
    pub fn steps_only() -> Self {
        TracingSink {
            output: false,
            ..Self::default()
        }
    }
}

impl Sink for TracingSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let emit_line = |vm: &str, step: usize, err: bool, l: &[u8]| {
                let text = String::from_utf8_lossy(l);
                if err {
                    tracing::warn!(target: "vmssh::provision", vm, step, stream = "stderr", "{text}");
                } else {
                    tracing::info!(target: "vmssh::provision", vm, step, stream = "stdout", "{text}");
                }
            };
            match event {
                Event::StepStarted {
                    vm,
                    step,
                    description,
                    ..
                } => {
                    tracing::info!(target: "vmssh::provision", vm = &**vm, step, "step started: {description}")
                }
                Event::Output { .. } if !self.output => {}
                Event::Output { vm, step, chunk } => {
                    let err = chunk.is_stderr();
                    self.lines
                        .lock()
                        .await
                        .push(vm, *step, chunk, |l| emit_line(vm, *step, err, l));
                }
                Event::StepFinished {
                    vm,
                    step,
                    status,
                    ok,
                    duration,
                } => {
                    self.lines
                        .lock()
                        .await
                        .flush(vm, *step, |err, l| emit_line(vm, *step, err, l));
                    let status = status.as_ref().map(|s| s.to_string());
                    tracing::info!(target: "vmssh::provision", vm = &**vm, step, ok, ?status, ?duration, "step finished");
                }
                Event::VmFinished {
                    vm,
                    ok,
                    failure,
                    duration,
                    ..
                } => {
                    let failure = failure.as_ref().map(ToString::to_string);
                    tracing::info!(target: "vmssh::provision", vm = &**vm, ok, ?failure, ?duration, "vm finished");
                }
                _ => {}
            }
        })
    }
}
