//! What the user sees, chosen once per run: progress bars and coloured
//! prefixes on a terminal, plain prefixed lines when piped (`plain.rs`:
//! the hosts' output on standard output, the rest on standard error),
//! one JSON event per line with `--json`; `--collect` groups output per
//! host. The words follow the verb ([`Verb`]): steps for a plan, a
//! command or a file for the others.

mod collect;
mod json;
mod plain;
pub(crate) mod summary;
mod tty;
mod verb;

use std::io::IsTerminal as _;
use std::sync::Arc;

use vmssh::fleet::{Fleet, FleetReport};
use vmssh::report::Failure;

use crate::args::RunArgs;
pub(crate) use verb::Verb;

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
    verb: Verb,
    ui: Option<Arc<tty::Ui>>,
    json: Option<Arc<json::JsonLines>>,
    collect: Option<Arc<collect::Collect>>,
}

impl Renderer {
    /// For `hosts` (name, number of steps) running `verb`; `collect`
    /// groups output per host.
    pub(crate) fn new(
        mode: Mode,
        verb: Verb,
        hosts: &[(String, usize)],
        collect: bool,
    ) -> Renderer {
        let color = std::io::stdout().is_terminal() && console::colors_enabled();
        let ui = (mode == Mode::Tty).then(|| tty::Ui::new(hosts, !collect, verb));
        let json = (mode == Mode::Json).then(|| Arc::new(json::JsonLines::new()));
        let collect = (collect && mode != Mode::Json)
            .then(|| Arc::new(collect::Collect::new(ui.clone(), color, verb)));
        Renderer {
            mode,
            verb,
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
            None if self.mode == Mode::Plain => fleet = fleet.sink(plain::Plain::new(self.verb)),
            None => {}
        }
        fleet
    }

    /// Ends the display: bars closed and the summary printed, on the
    /// terminal, or when piped on standard error, away from the hosts'
    /// output (with `--json`, the fleet's last event, `finished`, has said
    /// it all). `hint` follows a run where host keys were refused.
    pub(crate) async fn finish(&self, report: &FleetReport, interrupted: bool, hint: Option<&str>) {
        if self.json.is_some() {
            return;
        }
        let host_keys = report
            .vms
            .iter()
            .filter(|v| matches!(v.failure, Some(Failure::HostKey { .. })))
            .count();
        let hint = hint.filter(|_| host_keys > 0).map(|h| {
            let hosts = if host_keys == 1 {
                "a host".to_string()
            } else {
                format!("{host_keys} hosts")
            };
            format!("vmssh: hint: the host key of {hosts} was refused (see above). {h}\n")
        });
        match &self.ui {
            Some(ui) => {
                ui.finish(report, interrupted);
                let color = console::colors_enabled();
                println!();
                print!("{}", summary::render(report, color, self.verb));
                if let Some(h) = hint {
                    print!("{h}");
                }
            }
            None => {
                let color = console::colors_enabled_stderr();
                eprintln!();
                eprint!("{}", summary::render(report, color, self.verb));
                if let Some(h) = hint {
                    eprint!("{h}");
                }
            }
        }
    }
}
