//! Plain prefixed lines, for a pipe (or `--plain`): each host's output
//! as `[host] line` on standard output, everything else (its standard
//! error as `[host] ! line`, connecting, steps, verdicts) on standard
//! error, so that `vmssh exec ... > out.txt` keeps only what the hosts
//! printed.
//!
//! Guest bytes never drive a terminal: colours are kept only where the
//! stream is a terminal with colours on, every other escape is shown as
//! `cat -v` would (`^[`). Text that spans lines (a failure quoting a
//! server) keeps its line breaks, continued under the host's prefix.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;
use vmssh::provision::{Event, LineSplitter, Sink};

use super::verb::{Verb, lines_of, retry_line};

/// Writes the lines of one run.
pub(crate) struct Plain {
    verb: Verb,
    /// Colours on standard output / standard error.
    out_color: bool,
    err_color: bool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("verb", &self.verb)
            .finish_non_exhaustive()
    }
}

struct State {
    lines: LineSplitter,
    out: tokio::io::Stdout,
    err: tokio::io::Stderr,
}

/// What one event prints, on each stream.
#[derive(Default)]
struct Text {
    out: Vec<u8>,
    err: Vec<u8>,
}

const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

impl Plain {
    pub(crate) fn new(verb: Verb) -> Plain {
        Plain {
            verb,
            out_color: console::colors_enabled(),
            err_color: console::colors_enabled_stderr(),
            state: Mutex::new(State {
                lines: LineSplitter::new(),
                out: tokio::io::stdout(),
                err: tokio::io::stderr(),
            }),
        }
    }

    /// A line of ours on standard error, in `colour` when it has colours;
    /// continuation lines of `text` indented under the prefix.
    fn note(&self, text: &mut Text, vm: &str, colour: &str, line: &str) {
        let (on, off) = if self.err_color {
            (colour, RESET)
        } else {
            ("", "")
        };
        let mut lines = lines_of(line).into_iter();
        let first = lines.next().unwrap_or_default();
        text.err
            .extend_from_slice(format!("{on}[{vm}] {first}{off}\n").as_bytes());
        for more in lines {
            text.err
                .extend_from_slice(format!("{on}[{vm}]   {more}{off}\n").as_bytes());
        }
    }

    /// A line of the host's output: stdout to standard output, stderr
    /// (marked `!`) to standard error.
    fn output(&self, text: &mut Text, vm: &str, err: bool, line: &[u8]) {
        // A line ending in CRLF (a pty's) ends at the CR.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if err {
            let shown = vmssh::provision::visible(line, self.err_color);
            let line = if self.err_color {
                format!("[{vm}] {RED}! {shown}{RESET}\n")
            } else {
                format!("[{vm}] ! {shown}\n")
            };
            text.err.extend_from_slice(line.as_bytes());
        } else {
            let shown = vmssh::provision::visible(line, self.out_color);
            text.out
                .extend_from_slice(format!("[{vm}] {shown}\n").as_bytes());
        }
    }

    fn render(&self, event: &Event, lines: &mut LineSplitter) -> Text {
        let mut text = Text::default();
        let secs = |d: &Duration| format!("{d:.2?}");
        match event {
            Event::Connecting { vm } => self.note(&mut text, vm, DIM, "connecting"),
            Event::Connected { vm, duration } => {
                self.note(
                    &mut text,
                    vm,
                    DIM,
                    &format!("connected in {}", secs(duration)),
                );
            }
            Event::Retrying {
                vm,
                reason,
                elapsed,
                deadline,
                ..
            } => self.note(&mut text, vm, DIM, &retry_line(reason, *elapsed, *deadline)),
            Event::StepStarted {
                vm,
                step,
                total,
                description,
            } if self.verb.has_steps() => {
                let header = format!("==> step {step}/{total}: {description}");
                self.note(&mut text, vm, DIM, &header);
            }
            Event::Output { vm, step, chunk } => {
                let err = chunk.is_stderr();
                let mut split = Vec::new();
                lines.push(vm, *step, chunk, |l| split.push(l.to_vec()));
                for l in split {
                    self.output(&mut text, vm, err, &l);
                }
            }
            Event::StepFinished {
                vm,
                step,
                status,
                ok,
                duration,
            } => {
                let mut rest = Vec::new();
                lines.flush(vm, *step, |err, l| rest.push((err, l.to_vec())));
                for (err, l) in rest {
                    self.output(&mut text, vm, err, &l);
                }
                // A step that ended without a status and not ok was cut
                // short (stopped, or its transfer failed): the host's
                // verdict that follows says which, once.
                if self.verb.has_steps() && (*ok || status.is_some()) {
                    let what = status
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "done".into());
                    let colour = if *ok { GREEN } else { RED };
                    let line = format!("<== step {step} {what} in {}", secs(duration));
                    self.note(&mut text, vm, colour, &line);
                }
            }
            Event::VmFinished {
                vm,
                ok,
                failure,
                stderr_tail,
                duration,
                deadline_passed,
                // Shown live, as the step ran.
                stdout_tail: _,
            } => {
                let (colour, verdict) = match Verb::verdict(failure.as_ref()) {
                    _ if *ok => (GREEN, "succeeded"),
                    "FAILED" => (RED, "FAILED"),
                    stopped => (YELLOW, stopped),
                };
                let mut line = format!("{verdict} in {}", secs(duration));
                let why = failure
                    .as_ref()
                    .map(|f| self.verb.failure_after(f, *deadline_passed));
                if let Some(why) = why.filter(|w| !w.is_empty()) {
                    line.push_str(": ");
                    line.push_str(&why);
                }
                self.note(&mut text, vm, colour, &line);
                // A command's stderr was shown as it came; a plan's
                // failing step is one of many, so its tail is repeated.
                if self.verb.has_steps()
                    && let Some(tail) = stderr_tail
                {
                    for l in lines_of(tail) {
                        self.note(&mut text, vm, RED, &format!("  stderr: {l}"));
                    }
                }
            }
            Event::BatchStarted {
                batch,
                batches,
                vms,
            } => {
                let line = format!("vmssh: batch {batch}/{batches}: {}\n", vms.join(", "));
                text.err.extend_from_slice(line.as_bytes());
            }
            _ => {}
        }
        text
    }
}

impl Sink for Plain {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Holding the lock while writing keeps lines of different
            // hosts from interleaving.
            let mut state = self.state.lock().await;
            let text = self.render(event, &mut state.lines);
            if !text.out.is_empty() {
                let _ = state.out.write_all(&text.out).await;
                let _ = state.out.flush().await;
            }
            if !text.err.is_empty() {
                let _ = state.err.write_all(&text.err).await;
                let _ = state.err.flush().await;
            }
        })
    }
}
