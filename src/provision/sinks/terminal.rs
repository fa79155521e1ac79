//! [`TerminalSink`]: prefixed, coloured lines on standard output.

use std::fmt;
use std::io::IsTerminal as _;
use std::pin::Pin;

use futures::future::BoxFuture;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use super::visible::push_visible;
use crate::provision::{Event, LineSplitter, Sink};

/// Prints output lines prefixed with the VM name (`[vm1] ...`), stderr
/// marked with `!` and in red when writing to a terminal; step headers and
/// results in between.
///
/// Guest output never drives the operator's terminal: colours (SGR
/// sequences) are kept when colour is on (and reset at the end of each
/// line), left out when it is off; every other control character or
/// escape sequence is shown as `cat -v` shows it (`ESC` as `^[`, a
/// carriage return as `^M`) instead of being executed. Error texts,
/// which can quote the guest's stderr, are shown the same way.
pub struct TerminalSink {
    color: bool,
    state: Mutex<State>,
}

struct State {
    lines: LineSplitter,
    out: Pin<Box<dyn AsyncWrite + Send + Sync>>,
}

impl fmt::Debug for TerminalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalSink")
            .field("color", &self.color)
            .finish()
    }
}

impl Default for TerminalSink {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalSink {
    /// Writes to standard output, with colour only when it is a terminal.
    pub fn new() -> Self {
        Self::with_writer(tokio::io::stdout(), std::io::stdout().is_terminal())
    }

    /// Writes to `writer` (a pipe, a file, a buffer), with colour when
    /// `color` is set.
    pub fn with_writer(writer: impl AsyncWrite + Send + Sync + 'static, color: bool) -> Self {
        TerminalSink {
            color,
            state: Mutex::new(State {
                lines: LineSplitter::new(),
                out: Box::pin(writer),
            }),
        }
    }

    fn render(&self, event: &Event, lines: &mut LineSplitter) -> Vec<u8> {
        let (dim, red, green, reset) = if self.color {
            ("\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let color = self.color;
        let mut out = Vec::new();
        let line = |vm: &str, err: bool, text: &[u8], out: &mut Vec<u8>| {
            out.extend_from_slice(format!("[{vm}] ").as_bytes());
            // A line ending in CRLF (a pty's) ends at the CR.
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if err {
                out.extend_from_slice(format!("{red}! ").as_bytes());
            }
            // Kept guest colours end with the line, as red stderr does.
            if push_visible(text, color, out) || err {
                out.extend_from_slice(reset.as_bytes());
            }
            out.push(b'\n');
        };
        let shown = |text: &str| {
            let mut v = Vec::new();
            push_visible(text.as_bytes(), false, &mut v);
            String::from_utf8_lossy(&v).into_owned()
        };
        match event {
            Event::Connecting { vm } => {
                out.extend_from_slice(format!("{dim}[{vm}] connecting{reset}\n").as_bytes());
            }
            Event::Connected { vm, duration } => {
                out.extend_from_slice(
                    format!("{dim}[{vm}] connected in {duration:.2?}{reset}\n").as_bytes(),
                );
            }
            Event::Retrying {
                vm,
                reason,
                elapsed,
                deadline,
                ..
            } => {
                let (elapsed, deadline) = (elapsed.as_secs(), deadline.as_secs());
                out.extend_from_slice(
                    format!(
                        "{dim}[{vm}] retrying ({reason}), {elapsed} s of {deadline} s{reset}\n"
                    )
                    .as_bytes(),
                );
            }
            Event::StepStarted {
                vm,
                step,
                total,
                description,
            } => {
                let description = shown(description);
                out.extend_from_slice(
                    format!("{dim}[{vm}] ==> step {step}/{total}: {description}{reset}\n")
                        .as_bytes(),
                );
            }
            Event::Output { vm, step, chunk } => {
                let err = chunk.is_stderr();
                lines.push(vm, *step, chunk, |l| line(vm, err, l, &mut out));
            }
            Event::Upload { .. } | Event::Download { .. } => {}
            Event::StepFinished {
                vm,
                step,
                status,
                ok,
                duration,
            } => {
                lines.flush(vm, *step, |err, l| line(vm, err, l, &mut out));
                let what = status
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "done".into());
                let colour = if *ok { green } else { red };
                out.extend_from_slice(
                    format!("{colour}[{vm}] <== step {step} {what} in {duration:.2?}{reset}\n")
                        .as_bytes(),
                );
            }
            Event::VmFinished {
                vm,
                ok,
                failure,
                stderr_tail,
                duration,
                ..
            } => {
                let (colour, verdict) = if *ok {
                    (green, "succeeded")
                } else {
                    (red, "FAILED")
                };
                out.extend_from_slice(
                    format!("{colour}[{vm}] {verdict} in {duration:.2?}{reset}").as_bytes(),
                );
                if let Some(f) = failure {
                    out.extend_from_slice(format!(": {}", shown(&f.to_string())).as_bytes());
                }
                out.push(b'\n');
                for l in stderr_tail.iter().flat_map(|t| t.lines()) {
                    out.extend_from_slice(
                        format!("{red}[{vm}]   stderr: {}{reset}\n", shown(l)).as_bytes(),
                    );
                }
            }
            _ => {}
        }
        out
    }
}

impl Sink for TerminalSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Holding the lock while writing keeps lines of different VMs
            // from interleaving.
            let mut state = self.state.lock().await;
            let bytes = self.render(event, &mut state.lines);
            if !bytes.is_empty() {
                let _ = state.out.write_all(&bytes).await;
                let _ = state.out.flush().await;
            }
        })
    }
}
