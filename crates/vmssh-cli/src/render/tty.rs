//! The terminal view: output lines prefixed with the host's name in its
//! own colour, one progress bar per host (as many as fit) above a fleet
//! bar. Every method is quick and synchronous, so awaiting the sink costs
//! nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use console::{Color, Style};
use futures::future::BoxFuture;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vmssh::fleet::FleetReport;
use vmssh::provision::{Event, LineSplitter, Sink};

use super::verb::{Verb, lines_of, retry_line};

/// Progress bars and prefixed lines on standard output (a terminal).
#[derive(Clone)]
pub(crate) struct Ui {
    mp: MultiProgress,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").finish_non_exhaustive()
    }
}

struct State {
    overall: ProgressBar,
    /// Hosts with a bar; finished ones keep theirs when every host fits.
    bars: HashMap<String, ProgressBar>,
    /// Steps in each host's plan.
    totals: HashMap<String, u64>,
    /// Steps done, per host (kept when a host has no bar yet).
    done: HashMap<String, u64>,
    /// The running step's description, per host.
    current: HashMap<String, String>,
    /// Hosts whose bar shows a transfer's progress: the label goes once
    /// the step's output starts, as the last progress report may never
    /// come (a transfer that ends between two reports).
    transferring: HashSet<String>,
    /// Hosts whose connect has printed a retry line: later retries show
    /// on their bars only.
    retried: HashSet<String>,
    running: HashSet<String>,
    finished: HashSet<String>,
    failed: usize,
    max_bars: usize,
    all_fit: bool,
    width: usize,
    /// Whether output lines are shown as they come (not with `--collect`).
    live: bool,
    verb: Verb,
    lines: LineSplitter,
}

/// Colours for host names, picked by a hash of the name.
const PALETTE: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Blue,
    Color::Green,
    Color::Color256(208),
];

#[derive(Clone, Copy)]
enum Tone {
    Plain,
    Dim,
    Err,
    Ok,
}

impl Ui {
    /// Bars for `hosts` (name, steps) running `verb`, drawn on standard
    /// output.
    pub(crate) fn new(hosts: &[(String, usize)], live: bool, verb: Verb) -> Arc<Ui> {
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(15));
        let rows = console::Term::stdout().size().0 as usize;
        let max_bars = (rows / 2).clamp(3, 30);
        let overall = mp.add(ProgressBar::new(hosts.len() as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.green/white}] {pos}/{len} hosts done {wide_msg} {elapsed:.dim}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("vmssh");
        overall.enable_steady_tick(Duration::from_millis(200));
        let width = hosts.iter().map(|(n, _)| n.len()).max().unwrap_or(2);
        let ui = Arc::new(Ui {
            mp,
            state: Arc::new(Mutex::new(State {
                overall,
                bars: HashMap::new(),
                totals: hosts.iter().map(|(n, t)| (n.clone(), *t as u64)).collect(),
                done: HashMap::new(),
                current: HashMap::new(),
                transferring: HashSet::new(),
                retried: HashSet::new(),
                running: HashSet::new(),
                finished: HashSet::new(),
                failed: 0,
                max_bars,
                all_fit: hosts.len() <= max_bars,
                width,
                live,
                verb,
                lines: LineSplitter::new(),
            })),
        });
        // When every host fits, bars appear in target order from the start.
        if let Ok(mut st) = ui.state.lock()
            && st.all_fit
        {
            for (name, _) in hosts {
                if let Some(b) = ui.bar(&mut st, name) {
                    b.set_message("waiting");
                }
            }
        }
        ui
    }

    fn host_style(name: &str) -> Style {
        let h = name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        Style::new().fg(PALETTE[h % PALETTE.len()]).bold()
    }

    fn bar_style(width: usize, verb: Verb) -> ProgressStyle {
        // Steps are counted; one command or file is not.
        let template = if verb.has_steps() {
            format!(
                "{{spinner:.cyan}} {{prefix:>{width}.bold}} [{{bar:20.cyan/blue}}] {{pos}}/{{len}} {{wide_msg}}"
            )
        } else {
            format!("{{spinner:.cyan}} {{prefix:>{width}.bold}} {{wide_msg}}")
        };
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
    }

    /// The host's bar, created when there is room.
    fn bar(&self, st: &mut State, vm: &str) -> Option<ProgressBar> {
        if let Some(b) = st.bars.get(vm) {
            return Some(b.clone());
        }
        let active = st.bars.values().filter(|b| !b.is_finished()).count();
        if st.finished.contains(vm)
            || active >= st.max_bars
            || (!st.all_fit && st.bars.len() >= st.max_bars)
        {
            return None;
        }
        let total = st.totals.get(vm).copied().unwrap_or(0);
        let pb = self.mp.insert_before(&st.overall, ProgressBar::new(total));
        pb.set_style(Self::bar_style(st.width, st.verb));
        pb.set_prefix(vm.to_string());
        pb.set_position(st.done.get(vm).copied().unwrap_or(0));
        pb.enable_steady_tick(Duration::from_millis(100));
        st.bars.insert(vm.to_string(), pb.clone());
        Some(pb)
    }

    fn println(&self, st: &State, vm: &str, text: &str, tone: Tone) {
        let width = st.width;
        let prefix = Self::host_style(vm).apply_to(format!("{vm:>width$}"));
        let text = match tone {
            Tone::Plain => Style::new(),
            Tone::Dim => Style::new().dim(),
            Tone::Err => Style::new().red(),
            Tone::Ok => Style::new().green(),
        }
        .apply_to(text);
        let _ = self.mp.println(format!("{prefix} │ {text}"));
    }

    /// Prints a block of text above the bars (`--collect`).
    pub(crate) fn print_block(&self, text: &str) {
        let _ = self.mp.println(text.trim_end_matches('\n'));
    }

    /// `text` on its lines, the first after `lead`, the others indented.
    fn println_lines(&self, st: &State, vm: &str, lead: &str, text: &str, tone: Tone) {
        let mut lines = lines_of(text).into_iter();
        let first = lines.next().unwrap_or_default();
        self.println(st, vm, &format!("{lead}{first}"), tone);
        for more in lines {
            self.println(st, vm, &format!("  {more}"), tone);
        }
    }

    fn output_line(&self, st: &State, vm: &str, err: bool, line: &[u8]) {
        // Guest bytes never drive the terminal (colours aside).
        let line = vmssh::provision::visible(line, console::colors_enabled());
        let line = line.as_str();
        if err {
            self.println(st, vm, &format!("! {line}"), Tone::Err);
        } else {
            self.println(st, vm, line, Tone::Plain);
        }
    }

    fn overall_message(st: &State) {
        let running = st.running.len();
        let shown = st.bars.values().filter(|b| !b.is_finished()).count();
        let mut msg = format!("{running} running");
        if shown < running {
            msg.push_str(&format!(" ({shown} shown)"));
        }
        if st.failed > 0 {
            msg.push_str(&format!(", {} failed", st.failed));
        }
        st.overall.set_message(msg);
    }

    fn handle(&self, event: &Event) {
        let Ok(mut guard) = self.state.lock() else {
            return;
        };
        let st = &mut *guard;
        let Some(vm) = event.vm() else {
            return;
        };
        let vm = vm.to_string();
        match event {
            Event::Connecting { .. } => {
                st.running.insert(vm.clone());
                st.retried.remove(&vm);
                if let Some(b) = self.bar(st, &vm) {
                    b.set_message("connecting");
                }
            }
            Event::Retrying {
                reason,
                elapsed,
                deadline,
                ..
            } => {
                let line = retry_line(reason, *elapsed, *deadline);
                let bar = self.bar(st, &vm);
                // The first retry stays in the scrollback; a host without
                // a bar shows each one there.
                if st.live && (st.retried.insert(vm.clone()) || bar.is_none()) {
                    self.println(st, &vm, &line, Tone::Dim);
                }
                if let Some(b) = bar {
                    b.set_message(line);
                }
            }
            Event::Connected { duration, .. } => {
                if let Some(b) = self.bar(st, &vm) {
                    b.set_message(format!("connected in {duration:.2?}"));
                }
            }
            Event::StepStarted {
                step,
                total,
                description,
                ..
            } => {
                let current = if st.verb.has_steps() {
                    if st.live {
                        let header = format!("==> step {step}/{total}: {description}");
                        self.println(st, &vm, &header, Tone::Dim);
                    }
                    description.clone()
                } else {
                    st.verb.doing().to_string()
                };
                st.transferring.remove(&vm);
                if let Some(b) = self.bar(st, &vm) {
                    b.set_length(*total as u64);
                    b.set_message(current.clone());
                }
                st.current.insert(vm.clone(), current);
            }
            Event::Output { step, chunk, .. } => {
                // The step's transfer is over once its command speaks.
                if st.transferring.remove(&vm)
                    && let Some(b) = self.bar(st, &vm)
                {
                    b.set_message(st.current.get(&vm).cloned().unwrap_or_default());
                }
                if !st.live {
                    return;
                }
                let err = chunk.is_stderr();
                let mut lines = Vec::new();
                st.lines.push(&vm, *step, chunk, |l| lines.push(l.to_vec()));
                for l in lines {
                    self.output_line(st, &vm, err, &l);
                }
            }
            Event::Upload { done, total, .. } | Event::Download { done, total, .. } => {
                let verb = if matches!(event, Event::Upload { .. }) {
                    "uploading"
                } else {
                    "downloading"
                };
                let current = st.current.get(&vm).cloned().unwrap_or_default();
                let label = if Some(*done) == *total {
                    st.transferring.remove(&vm);
                    current
                } else {
                    st.transferring.insert(vm.clone());
                    let total = total
                        .map(|t| format!("/{}", HumanBytes(t)))
                        .unwrap_or_default();
                    let progress = format!("{verb} {}{total}", HumanBytes(*done));
                    if st.verb.has_steps() {
                        format!("{current} ({progress})")
                    } else {
                        progress
                    }
                };
                if let Some(b) = self.bar(st, &vm) {
                    b.set_message(label);
                }
            }
            Event::StepFinished {
                step,
                status,
                ok,
                duration,
                ..
            } => {
                st.transferring.remove(&vm);
                let mut rest = Vec::new();
                st.lines
                    .flush(&vm, *step, |err, l| rest.push((err, l.to_vec())));
                if st.live {
                    for (err, l) in rest {
                        self.output_line(st, &vm, err, &l);
                    }
                }
                if *ok {
                    *st.done.entry(vm.clone()).or_default() += 1;
                    if let Some(b) = self.bar(st, &vm) {
                        b.inc(1);
                    }
                } else {
                    let what = status
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "error".into());
                    let has_steps = st.verb.has_steps();
                    if st.live && has_steps {
                        let line = format!("<== step {step} failed ({what}) after {duration:.2?}");
                        self.println(st, &vm, &line, Tone::Err);
                    }
                    if let Some(b) = self.bar(st, &vm) {
                        b.set_message(if has_steps {
                            format!("✗ step {step}: {what}")
                        } else {
                            format!("✗ {what}")
                        });
                    }
                }
            }
            Event::VmFinished {
                ok,
                failure,
                duration,
                deadline_passed,
                ..
            } => {
                st.running.remove(&vm);
                st.finished.insert(vm.clone());
                st.overall.inc(1);
                let verdict = Verb::verdict(failure.as_ref());
                let why = match failure {
                    None => "failed".to_string(),
                    Some(f) if verdict == "FAILED" => st.verb.failure_after(f, *deadline_passed),
                    Some(f) => st.verb.ended(f, *deadline_passed),
                };
                let first = lines_of(&why).swap_remove(0);
                if *ok {
                    if st.live {
                        let line = format!("succeeded in {duration:.2?}");
                        self.println(st, &vm, &line, Tone::Ok);
                    }
                } else {
                    st.failed += 1;
                    if st.live {
                        let lead = if verdict == "FAILED" { "FAILED: " } else { "" };
                        self.println_lines(st, &vm, lead, &why, Tone::Err);
                    }
                }
                if let Some(b) = st.bars.get(&vm).cloned() {
                    if st.all_fit {
                        if *ok {
                            b.finish_with_message(format!("✓ done in {duration:.2?}"));
                        } else {
                            b.abandon_with_message(format!("✗ {first}"));
                        }
                    } else {
                        // Make room for the hosts still waiting for a bar.
                        b.finish_and_clear();
                        self.mp.remove(&b);
                        st.bars.remove(&vm);
                    }
                }
            }
            _ => {}
        }
        Self::overall_message(st);
    }

    /// Closes the bars of hosts that never finished, and the fleet bar.
    pub(crate) fn finish(&self, report: &FleetReport, interrupted: bool) {
        let Ok(st) = self.state.lock() else { return };
        for v in &report.vms {
            if let Some(b) = st.bars.get(&v.name)
                && !b.is_finished()
            {
                b.abandon_with_message(match Verb::verdict(v.failure.as_ref()) {
                    "not started" => "not started",
                    _ => "stopped",
                });
            }
        }
        let msg = if report.all_succeeded() {
            "all succeeded".to_string()
        } else {
            format!(
                "{}{}",
                super::summary::counts(report),
                if interrupted { " (interrupted)" } else { "" }
            )
        };
        st.overall.finish_with_message(msg);
    }
}

impl Sink for Ui {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        self.handle(event);
        Box::pin(std::future::ready(()))
    }
}
