//! `exec --collect`: each host's output printed as one block when the host
//! finishes, as `pssh -i` does: a header line, stdout as it came, then
//! stderr under its own header.
//!
//! Output waits in a spooled temporary file per host and stream (memory
//! up to 64 KiB, then disk), so a chatty host costs disk, not memory.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tempfile::SpooledTempFile;
use tokio::io::AsyncWriteExt as _;
use vmssh::provision::{Event, Sink};

use super::tty::Ui;
use super::verb::{Verb, lines_of, retry_line};

const IN_MEMORY: usize = 64 * 1024;

/// Spools output and prints one block per host.
pub(crate) struct Collect {
    spools: Mutex<HashMap<String, Spool>>,
    /// Blocks go above the bars on a terminal, else to standard output.
    ui: Option<Arc<Ui>>,
    color: bool,
    verb: Verb,
}

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collect").finish_non_exhaustive()
    }
}

struct Spool {
    out: SpooledTempFile,
    err: SpooledTempFile,
    /// Bytes that could not be spooled (a full disk), reported in the block.
    lost: u64,
}

impl Spool {
    fn new() -> Self {
        Spool {
            out: SpooledTempFile::new(IN_MEMORY),
            err: SpooledTempFile::new(IN_MEMORY),
            lost: 0,
        }
    }
}

impl Collect {
    pub(crate) fn new(ui: Option<Arc<Ui>>, color: bool, verb: Verb) -> Self {
        Collect {
            spools: Mutex::new(HashMap::new()),
            ui,
            color,
            verb,
        }
    }

    fn spool(&self, vm: &str, err: bool, data: &[u8]) {
        let Ok(mut spools) = self.spools.lock() else {
            return;
        };
        let spool = spools.entry(vm.to_string()).or_insert_with(Spool::new);
        let file = if err { &mut spool.err } else { &mut spool.out };
        if file.write_all(data).is_err() {
            spool.lost += data.len() as u64;
        }
    }

    /// The host's block: header, stdout, stderr.
    fn block(&self, vm: &str, ok: bool, ended: Option<&str>, secs: f64) -> Vec<u8> {
        let spool = self.spools.lock().ok().and_then(|mut s| s.remove(vm));
        let mut spool = spool.unwrap_or_else(Spool::new);
        let verdict = if ok {
            format!("ok in {secs:.2}s")
        } else {
            let ended = ended.map(lines_of).unwrap_or_default();
            // A failure on several lines: the first in the header, the
            // rest under it.
            let mut lines = ended.iter();
            let mut verdict = lines.next().map_or("FAILED", String::as_str).to_string();
            for more in lines {
                verdict.push_str(&format!("\n    {more}"));
            }
            verdict
        };
        let paint = |s: String, code: &str| {
            if self.color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s
            }
        };
        let mut block = Vec::new();
        let header = paint(
            format!("=== {vm}: {verdict}"),
            if ok { "1;32" } else { "1;31" },
        );
        block.extend_from_slice(header.as_bytes());
        block.push(b'\n');
        let read_all = |file: &mut SpooledTempFile, block: &mut Vec<u8>| {
            let start = block.len();
            let mut raw = Vec::new();
            let read = file
                .seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_end(&mut raw));
            match read {
                // Guest bytes never drive the terminal (colours aside).
                Ok(_) => {
                    block.extend_from_slice(vmssh::provision::visible(&raw, self.color).as_bytes())
                }
                Err(_) => block.extend_from_slice(b"(output lost: cannot read the spool)\n"),
            }
            if block.len() > start && !block.ends_with(b"\n") {
                block.push(b'\n');
            }
        };
        read_all(&mut spool.out, &mut block);
        let mut err = Vec::new();
        read_all(&mut spool.err, &mut err);
        if !err.is_empty() {
            let header = paint(format!("--- {vm}: stderr"), "2");
            block.extend_from_slice(header.as_bytes());
            block.push(b'\n');
            block.extend_from_slice(&err);
        }
        if spool.lost > 0 {
            block.extend_from_slice(
                format!("({} bytes of output could not be kept)\n", spool.lost).as_bytes(),
            );
        }
        block
    }
}

impl Sink for Collect {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match event {
                Event::Output { vm, chunk, .. } => {
                    self.spool(vm, chunk.is_stderr(), chunk.bytes());
                }
                // Piped, a retry is a diagnostic line on standard error; on
                // a terminal the host's bar shows it.
                Event::Retrying {
                    vm,
                    reason,
                    elapsed,
                    deadline,
                    ..
                } if self.ui.is_none() => {
                    let line = retry_line(reason, *elapsed, *deadline);
                    let line = if console::colors_enabled_stderr() {
                        format!("\x1b[2m[{vm}] {line}\x1b[0m\n")
                    } else {
                        format!("[{vm}] {line}\n")
                    };
                    let mut err = tokio::io::stderr();
                    let _ = err.write_all(line.as_bytes()).await;
                    let _ = err.flush().await;
                }
                Event::VmFinished {
                    vm,
                    ok,
                    failure,
                    duration,
                    deadline_passed,
                    ..
                } => {
                    let failure = failure
                        .as_ref()
                        .map(|f| self.verb.ended(f, *deadline_passed));
                    let block = self.block(vm, *ok, failure.as_deref(), duration.as_secs_f64());
                    match &self.ui {
                        Some(ui) => ui.print_block(&String::from_utf8_lossy(&block)),
                        None => {
                            let mut out = tokio::io::stdout();
                            let _ = out.write_all(&block).await;
                            let _ = out.flush().await;
                        }
                    }
                }
                _ => {}
            }
        })
    }
}
