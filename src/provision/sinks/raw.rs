//! [`RawSink`]: output passed through untouched, as vmctl shows it.

use std::fmt;
use std::pin::Pin;

use futures::future::BoxFuture;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::provision::{Event, Sink};

type Writer = Pin<Box<dyn AsyncWrite + Send + Sync>>;

/// Passes each step's output through as it arrives, byte for byte: stdout
/// to one writer, stderr to the other, each chunk written and flushed
/// before the next is read. No prefixes, no headers, no results: what
/// vmctl prints while it provisions.
///
/// Unlike [`TerminalSink`](super::TerminalSink), it does not neutralise
/// control characters: the guest's output reaches the terminal as the
/// guest wrote it (colours, carriage returns, and any other escape
/// sequence). For one VM at a time; the output of several VMs would
/// interleave.
///
/// # Example
///
/// ```no_run
/// # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
/// use vmssh::provision::{ProvisionDef, Provisioner, RawSink};
///
/// Provisioner::new("vm1")
///     .sink(RawSink::new())
///     .run(&sess, &[ProvisionDef::inline("apt-get update")])
///     .await?;
/// # Ok(()) }
/// ```
pub struct RawSink {
    out: Mutex<Writer>,
    err: Mutex<Writer>,
}

impl fmt::Debug for RawSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSink").finish_non_exhaustive()
    }
}

impl Default for RawSink {
    fn default() -> Self {
        Self::new()
    }
}

impl RawSink {
    /// Writes stdout to the process's standard output and stderr to its
    /// standard error.
    pub fn new() -> Self {
        Self::with_writers(tokio::io::stdout(), tokio::io::stderr())
    }

    /// Writes stdout to `out` and stderr to `err` (pipes, files, buffers).
    pub fn with_writers(
        out: impl AsyncWrite + Send + Sync + 'static,
        err: impl AsyncWrite + Send + Sync + 'static,
    ) -> Self {
        RawSink {
            out: Mutex::new(Box::pin(out)),
            err: Mutex::new(Box::pin(err)),
        }
    }
}

impl Sink for RawSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Event::Output { chunk, .. } = event else {
                return;
            };
            let writer = if chunk.is_stderr() {
                &self.err
            } else {
                &self.out
            };
            let mut w = writer.lock().await;
            // A closed terminal loses the output, as it does for vmctl;
            // the step goes on.
            if w.write_all(chunk.bytes()).await.is_ok() {
                let _ = w.flush().await;
            }
        })
    }
}
