//! [`LogFileSink`]: every step's output appended to `provision.log`.

use std::fmt;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::provision::{Event, Sink};

/// Appends every step's output to `provision.log` in a directory: a header
/// per step, then stdout and stderr as they arrived, then the result.
pub struct LogFileSink {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl fmt::Debug for LogFileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFileSink")
            .field("path", &self.path)
            .finish()
    }
}

impl LogFileSink {
    /// Appends to `dir/provision.log`, creating the directory and file on
    /// the first event.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        LogFileSink {
            path: dir.as_ref().join("provision.log"),
            file: Mutex::new(None),
        }
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Sink for LogFileSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let text: Vec<u8> = match event {
                Event::StepStarted {
                    vm,
                    step,
                    total,
                    description,
                } => format!("==> [{vm}] step {step}/{total}: {description}\n").into_bytes(),
                Event::Output { chunk, .. } => chunk.bytes().to_vec(),
                Event::StepFinished {
                    vm,
                    step,
                    status,
                    ok,
                    duration,
                } => {
                    let what = status
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "done".into());
                    let verdict = if *ok { "ok" } else { "FAILED" };
                    format!("<== [{vm}] step {step} {verdict}: {what} in {duration:.3?}\n")
                        .into_bytes()
                }
                Event::VmFinished {
                    vm,
                    ok: false,
                    failure,
                    stderr_tail,
                    ..
                } => {
                    let mut text = match failure {
                        Some(f) => format!("=== [{vm}] failed: {f}\n"),
                        None => format!("=== [{vm}] failed\n"),
                    };
                    for l in stderr_tail.iter().flat_map(|t| t.lines()) {
                        text.push_str(&format!("    stderr: {l}\n"));
                    }
                    text.into_bytes()
                }
                Event::VmFinished { vm, .. } => format!("=== [{vm}] finished\n").into_bytes(),
                _ => return,
            };
            let mut slot = self.file.lock().await;
            if slot.is_none() {
                if let Some(dir) = self.path.parent() {
                    let _ = tokio::fs::create_dir_all(dir).await;
                }
                match tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await
                {
                    Ok(f) => *slot = Some(f),
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), error = %e, "cannot open provision log");
                        return;
                    }
                }
            }
            if let Some(f) = slot.as_mut() {
                if let Err(e) = f.write_all(&text).await {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write provision log");
                }
                if matches!(event, Event::StepFinished { .. } | Event::VmFinished { .. }) {
                    let _ = f.flush().await;
                }
            }
        })
    }
}
