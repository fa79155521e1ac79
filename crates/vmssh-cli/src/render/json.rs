//! `--json`: one event per line on standard output, for machines: each
//! line is a [`vmssh::report::Event`] as serde_json writes it (the schema
//! is documented in `vmssh::report` and the guide), the last one
//! `finished`. Output events carry chunks as they arrived, not lines.

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;
use vmssh::provision::{Event, Sink};

/// Writes events as JSON lines; awaited, so a slow reader slows the hosts
/// instead of growing memory.
#[derive(Debug)]
pub(crate) struct JsonLines {
    out: Mutex<tokio::io::Stdout>,
}

impl JsonLines {
    pub(crate) fn new() -> Self {
        JsonLines {
            out: Mutex::new(tokio::io::stdout()),
        }
    }

    async fn write(&self, event: &Event) {
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        let mut out = self.out.lock().await;
        let _ = out.write_all(line.as_bytes()).await;
        let _ = out.flush().await;
    }
}

impl Sink for JsonLines {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.write(event).await;
        })
    }
}
