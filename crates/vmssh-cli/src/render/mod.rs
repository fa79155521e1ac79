//! What the user sees, chosen once per run: progress bars and coloured
//! prefixes on a terminal, plain prefixed lines when piped (the library's
//! [`TerminalSink`]), one JSON event per line with `--json`; `--collect`
//! groups output per host.

mod collect;
mod json;
pub(crate) mod summary;
mod tty;

use std::io::IsTerminal as _;
use std::sync::Arc;

use vmssh::fleet::{Fleet, FleetReport};
use vmssh::provision::TerminalSink;

use crate::args::RunArgs;

/// How output is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Standard output is a terminal: bars, colours.
    Tty,
    /// Piped (or `--plain`): prefixed lines, no escapes unless a terminal.
    Plain,
    /// `--json`.
    Json,
}

impl Mode {
    pub(crate) fn select(run: &RunArgs) -> Mode {
        if run.json {
            Mode::Json
        } else if run.plain || !std::io::stdout().is_terminal() {
            Mode::Plain
        } else {
            Mode::Tty
        }
    }
}

/// The sinks of one run, and how it ends on screen.
#[derive(Debug)]
pub(crate) struct Renderer {
    mode: Mode,
    color: bool,
    ui: Option<Arc<tty::Ui>>,
    json: Option<Arc<json::JsonLines>>,
    collect: Option<Arc<collect::Collect>>,
}

impl Renderer {
    /// For `hosts` (name, number of steps); `collect` groups output per
    /// host.
    pub(crate) fn new(mode: Mode, hosts: &[(String, usize)], collect: bool) -> Renderer {
        let color = std::io::stdout().is_terminal() && console::colors_enabled();
        let ui = (mode == Mode::Tty).then(|| tty::Ui::new(hosts, !collect));
        let json = (mode == Mode::Json).then(|| Arc::new(json::JsonLines::new()));
        let collect = (collect && mode != Mode::Json)
            .then(|| Arc::new(collect::Collect::new(ui.clone(), color)));
        Renderer {
            mode,
            color,
            ui,
            json,
            collect,
        }
    }

    /// `fleet` with this renderer's sinks.
    pub(crate) fn attach(&self, mut fleet: Fleet) -> Fleet {
        if let Some(ui) = &self.ui {
            fleet = fleet.shared_sink(ui.clone());
        }
        if let Some(json) = &self.json {
            fleet = fleet.shared_sink(json.clone());
        }
        match &self.collect {
            Some(c) => fleet = fleet.shared_sink(c.clone()),
            None if self.mode == Mode::Plain => fleet = fleet.sink(TerminalSink::new()),
            None => {}
        }
        fleet
    }

    /// Ends the display: bars closed and the summary printed (with
    /// `--json`, the fleet's last event, `finished`, has said it all).
    pub(crate) async fn finish(&self, report: &FleetReport, interrupted: bool) {
        if self.json.is_some() {
            return;
        }
        if let Some(ui) = &self.ui {
            ui.finish(report, interrupted);
        }
        println!();
        print!("{}", summary::render(report, self.color));
    }
}
