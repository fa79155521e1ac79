//! `--json`: one event per line on standard output, for machines.
//!
//! Every line is an object with `"event"` and, except the last, `"vm"`:
//!
//! | event | fields |
//! |---|---|
//! | `connecting` | |
//! | `connected` | `secs` |
//! | `step_started` | `step` (from 1), `total`, `description` |
//! | `output` | `step`, `stream` (`stdout`/`stderr`), `data` (text) or `data_base64` (bytes that are not UTF-8) |
//! | `upload`, `download` | `step`, `done`, `total` (bytes; `total` may be null) |
//! | `step_finished` | `step`, `ok`, `status` (`{"code": N}` or `{"signal": "TERM", ...}` or null), `secs` |
//! | `vm_finished` | `ok`, `error` (text or null), `secs` |
//! | `finished` (last line) | `succeeded`, `failed`, `cancelled` (host names), `interrupted`, `wall_secs` |
//!
//! Output events carry chunks as they arrived, not lines.

use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;
use vmssh::fleet::FleetReport;
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

    async fn write(&self, value: Value) {
        let mut line = value.to_string();
        line.push('\n');
        let mut out = self.out.lock().await;
        let _ = out.write_all(line.as_bytes()).await;
        let _ = out.flush().await;
    }

    /// The last line: who succeeded, failed, was cancelled.
    pub(crate) async fn finished(&self, report: &FleetReport, interrupted: bool) {
        self.write(json!({
            "event": "finished",
            "succeeded": report.succeeded(),
            "failed": report.failed(),
            "cancelled": report.cancelled(),
            "interrupted": interrupted,
            "wall_secs": report.wall.as_secs_f64(),
        }))
        .await;
    }
}

/// The JSON object of an event, `None` for events this version does not
/// know.
pub(crate) fn event_json(event: &Event) -> Option<Value> {
    let vm = event.vm();
    Some(match event {
        Event::Connecting { .. } => json!({"event": "connecting", "vm": vm}),
        Event::Connected { duration, .. } => {
            json!({"event": "connected", "vm": vm, "secs": duration.as_secs_f64()})
        }
        Event::StepStarted {
            step,
            total,
            description,
            ..
        } => json!({
            "event": "step_started", "vm": vm, "step": step, "total": total,
            "description": description,
        }),
        Event::Output { step, chunk, .. } => {
            let stream = if chunk.is_stderr() {
                "stderr"
            } else {
                "stdout"
            };
            let mut v = json!({"event": "output", "vm": vm, "step": step, "stream": stream});
            match std::str::from_utf8(chunk.bytes()) {
                Ok(text) => v["data"] = json!(text),
                Err(_) => {
                    v["data_base64"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(chunk.bytes()))
                }
            }
            v
        }
        Event::Upload {
            step, done, total, ..
        } => json!({"event": "upload", "vm": vm, "step": step, "done": done, "total": total}),
        Event::Download {
            step, done, total, ..
        } => json!({"event": "download", "vm": vm, "step": step, "done": done, "total": total}),
        Event::StepFinished {
            step,
            status,
            ok,
            duration,
            ..
        } => json!({
            "event": "step_finished", "vm": vm, "step": step, "ok": ok,
            "status": status, "secs": duration.as_secs_f64(),
        }),
        Event::VmFinished {
            ok,
            error,
            duration,
            ..
        } => json!({
            "event": "vm_finished", "vm": vm, "ok": ok, "error": error,
            "secs": duration.as_secs_f64(),
        }),
        _ => return None,
    })
}

impl Sink for JsonLines {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(v) = event_json(event) {
                self.write(v).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use vmssh::Chunk;

    #[test]
    fn output_that_is_not_utf8_goes_as_base64() {
        let vm: Arc<str> = Arc::from("web");
        let text = Event::Output {
            vm: vm.clone(),
            step: 1,
            chunk: Chunk::Stdout(Bytes::from_static(b"h\xc3\xa9\n")),
        };
        let v = event_json(&text).unwrap();
        assert_eq!(v["data"], "hé\n");
        assert_eq!(v["stream"], "stdout");
        let bytes = Event::Output {
            vm,
            step: 1,
            chunk: Chunk::Stderr(Bytes::from_static(b"\xff\x00")),
        };
        let v = event_json(&bytes).unwrap();
        assert_eq!(v["data_base64"], "/wA=");
        assert_eq!(v["stream"], "stderr");
        assert!(v.get("data").is_none());
    }
}
