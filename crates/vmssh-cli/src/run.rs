//! One fleet run, the same for every verb: checks what it will write,
//! attaches the renderer, runs with Ctrl-C wired to a stop handle, prints
//! the summary, writes the report and picks the exit code.

use std::path::Path;
use std::time::Duration;

use vmssh::fleet::{Fleet, FleetReport, StopHandle, Target};

use crate::args::RunArgs;
use crate::render::{Mode, Renderer, Verb};
use crate::signals;
use crate::usage::{Exit, Usage};

/// How a run is shown.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Look {
    /// What it does on each host, for its words.
    pub(crate) verb: Verb,
    /// Output grouped per host (`exec --collect`).
    pub(crate) collect: bool,
    /// What to do next when host keys were refused, if the user can do
    /// something about it with flags.
    pub(crate) host_key_hint: Option<&'static str>,
}

impl Look {
    /// `verb`, output live, no hint.
    pub(crate) fn new(verb: Verb) -> Look {
        Look {
            verb,
            collect: false,
            host_key_hint: None,
        }
    }
}

/// Runs `targets`, shown as `look` says.
pub(crate) async fn run(targets: Vec<Target>, args: &RunArgs, look: Look) -> Result<Exit, Usage> {
    // Everything that can be wrong with the outputs is found before any
    // host is touched.
    if let Some(report) = &args.report {
        let dir = match report.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(Usage(format!(
                "--report {}: {} is not a directory",
                report.display(),
                dir.display()
            )));
        }
    }
    if let Some(dir) = &args.log_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("--log-dir {}: {e}", dir.display()))?;
    }

    let hosts: Vec<(String, usize)> = targets
        .iter()
        .map(|t| (t.name().to_string(), t.steps().len()))
        .collect();
    let renderer = Renderer::new(Mode::select(args), look.verb, &hosts, look.collect);
    let stop = StopHandle::new();
    let interrupted = match signals::install(stop.clone()) {
        Ok(flag) => Some(flag),
        Err(e) => {
            eprintln!("vmssh: warning: Ctrl-C will not stop the run gracefully: {e}");
            None
        }
    };
    let mut fleet = Fleet::new()
        .concurrency(args.concurrency)
        .connect_concurrency(args.connect_concurrency)
        .connect_deadline(Duration::from_secs(args.connect_deadline))
        .reconnects(args.reconnects)
        .stop_handle(stop);
    if args.fail_fast {
        fleet = fleet.fail_fast(true);
    } else if let Some(pct) = args.max_fail {
        // More than PCT percent: the limit is the largest count within it.
        fleet = fleet.max_failures(Some(usize::from(pct) * targets.len() / 100));
    }
    if let Some(dir) = &args.log_dir {
        fleet = fleet.log_dir(dir);
    }
    if !args.serial.is_empty() {
        fleet = fleet.batches(args.serial.iter().copied());
    }
    let fleet = renderer.attach(fleet);

    let mut report = fleet.provision(targets).await;
    report.rerun_of.clone_from(&args.rerun_failed);
    let interrupted = interrupted.is_some_and(|i| i.get());
    renderer
        .finish(&report, interrupted, look.host_key_hint)
        .await;

    let mut exit = if interrupted {
        Exit::Interrupted
    } else if report.all_succeeded() {
        Exit::Ok
    } else {
        Exit::Failed
    };
    if let Some(path) = &args.report
        && let Err(e) = write_report(&report, path)
    {
        eprintln!("vmssh: cannot write the report {}: {e}", path.display());
        if exit == Exit::Ok {
            exit = Exit::Failed;
        }
    }
    Ok(exit)
}

/// Writes `report` as JSON, atomically (a reader never sees half a file).
pub(crate) fn write_report(report: &FleetReport, path: &Path) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    json.push(b'\n');
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
