//! Provisioning one VM: a plan of shell and file steps, run in order, with
//! live output to sinks and a precise error at the first failure.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
//! use std::path::Path;
//! use vmssh::provision::{run_provisions, ProvisionDef};
//!
//! let steps = [
//!     ProvisionDef::inline("apt-get update"),
//!     ProvisionDef::script("setup.sh"),
//!     ProvisionDef::file("nginx.conf", "/etc/nginx/nginx.conf"),
//! ];
//! run_provisions(&sess, &steps, Path::new("."), "vm1", Some(Path::new("logs"))).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::error::Error;
use crate::exec::{Chunk, Command, ExitStatus, shell_quote};
use crate::session::Session;
use crate::sftp::TransferOptions;

/// One step of a provisioning plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionDef {
    kind: StepKind,
    #[serde(default)]
    timeout: Option<Duration>,
    #[serde(default)]
    env: Vec<(String, String)>,
    #[serde(default)]
    sudo: bool,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StepKind {
    /// A command line run by the guest's shell.
    Inline(String),
    /// A local script (relative to the plan's base directory), uploaded to a
    /// unique temporary path, run, then removed.
    Script(PathBuf),
    /// A local file (relative to the base directory) uploaded to a path on
    /// the guest, parents created, atomically replaced.
    File {
        /// Local source.
        source: PathBuf,
        /// Remote destination.
        destination: String,
    },
}

impl ProvisionDef {
    /// A shell command.
    pub fn inline(command: impl Into<String>) -> Self {
        Self::new(StepKind::Inline(command.into()))
    }

    /// A local script, relative to the base directory.
    pub fn script(path: impl Into<PathBuf>) -> Self {
        Self::new(StepKind::Script(path.into()))
    }

    /// A file upload: `source` relative to the base directory.
    pub fn file(source: impl Into<PathBuf>, destination: impl Into<String>) -> Self {
        Self::new(StepKind::File {
            source: source.into(),
            destination: destination.into(),
        })
    }

    fn new(kind: StepKind) -> Self {
        ProvisionDef {
            kind,
            timeout: None,
            env: Vec::new(),
            sudo: false,
        }
    }

    /// Fails the step when it runs longer than `timeout`.
    ///
    /// Default: none.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets an environment variable for a shell or script step.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs a shell or script step through `sudo -n` (for guests where the
    /// SSH user is not root). File steps ignore it.
    ///
    /// Default: false.
    #[must_use]
    pub fn sudo(mut self, on: bool) -> Self {
        self.sudo = on;
        self
    }

    /// What the step does.
    pub fn kind(&self) -> &StepKind {
        &self.kind
    }

    /// A one-line description for logs and errors
    /// (`inline: apt-get update`, `script: setup.sh`, `file: a -> /b`).
    pub fn describe(&self) -> String {
        match &self.kind {
            StepKind::Inline(cmd) => {
                let first = cmd.lines().next().unwrap_or_default();
                let mut d: String = first.chars().take(60).collect();
                if d.len() < cmd.len() {
                    d.push('…');
                }
                format!("inline: {d}")
            }
            StepKind::Script(p) => format!("script: {}", p.display()),
            StepKind::File {
                source,
                destination,
            } => {
                format!("file: {} -> {destination}", source.display())
            }
        }
    }
}

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What happens during provisioning, in order, per VM.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A fleet started connecting to the VM.
    Connecting {
        /// VM name.
        vm: Arc<str>,
    },
    /// The VM's session is up.
    Connected {
        /// VM name.
        vm: Arc<str>,
        /// Time to connect, retries included.
        duration: Duration,
    },
    /// A step started.
    StepStarted {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Number of steps in the plan.
        total: usize,
        /// [`ProvisionDef::describe`].
        description: String,
    },
    /// Output of the running step, as it arrived.
    Output {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Stdout or stderr.
        stream: OutputStream,
        /// The bytes.
        data: Bytes,
    },
    /// Progress of a file or script upload.
    Upload {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// Bytes sent.
        done: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// A step ended.
    StepFinished {
        /// VM name.
        vm: Arc<str>,
        /// 1-based step index.
        step: usize,
        /// The exit status of a command step.
        status: Option<ExitStatus>,
        /// Whether the step succeeded.
        ok: bool,
        /// How long it ran.
        duration: Duration,
    },
    /// The VM's plan ended.
    VmFinished {
        /// VM name.
        vm: Arc<str>,
        /// Whether every step succeeded.
        ok: bool,
        /// The error, if any, as text.
        error: Option<String>,
        /// Total time.
        duration: Duration,
    },
}

impl Event {
    /// The VM this event is about.
    pub fn vm(&self) -> &str {
        match self {
            Event::Connecting { vm }
            | Event::Connected { vm, .. }
            | Event::StepStarted { vm, .. }
            | Event::Output { vm, .. }
            | Event::Upload { vm, .. }
            | Event::StepFinished { vm, .. }
            | Event::VmFinished { vm, .. } => vm,
        }
    }
}

/// Where provisioning events go. Sinks are awaited: a slow sink slows the
/// remote command (through SSH flow control) instead of growing memory.
pub trait Sink: Send + Sync {
    /// Handles one event.
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()>;
}

/// Several sinks as one, in order.
pub(crate) async fn emit(sinks: &[Arc<dyn Sink>], event: Event) {
    for s in sinks {
        s.event(&event).await;
    }
}

/// Splits byte chunks into lines, per (vm, step, stream), keeping partial
/// lines until their end arrives (bounded: an overlong line is flushed in
/// pieces).
#[derive(Default)]
struct LineBuffers {
    partial: std::collections::HashMap<(Arc<str>, usize, bool), Vec<u8>>,
}

const MAX_LINE: usize = 64 * 1024;

impl LineBuffers {
    fn push(&mut self, key: (Arc<str>, usize, bool), data: &[u8], mut out: impl FnMut(&[u8])) {
        let buf = self.partial.entry(key.clone()).or_default();
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            if buf.is_empty() {
                out(&rest[..pos]);
            } else {
                buf.extend_from_slice(&rest[..pos]);
                out(buf);
                buf.clear();
            }
            rest = &rest[pos + 1..];
        }
        buf.extend_from_slice(rest);
        if buf.len() >= MAX_LINE {
            out(buf);
            buf.clear();
        }
        if buf.is_empty() {
            self.partial.remove(&key);
        }
    }

    fn flush(&mut self, vm: &str, step: usize, mut out: impl FnMut(bool, &[u8])) {
        let keys: Vec<_> = self
            .partial
            .keys()
            .filter(|(v, s, _)| &**v == vm && *s == step)
            .cloned()
            .collect();
        for k in keys {
            if let Some(buf) = self.partial.remove(&k) {
                out(k.2, &buf);
            }
        }
    }
}

/// Prints output lines prefixed with the VM name (`[vm1] ...`), stderr
/// marked with `!` and in red when writing to a terminal; step headers and
/// results in between.
pub struct TerminalSink {
    color: bool,
    state: Mutex<LineBuffers>,
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
        TerminalSink {
            color: std::io::stdout().is_terminal(),
            state: Mutex::new(LineBuffers::default()),
        }
    }

    fn render(&self, event: &Event, lines: &mut LineBuffers) -> Vec<u8> {
        let (dim, red, green, reset) = if self.color {
            ("\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let mut out = Vec::new();
        let line = |vm: &str, err: bool, text: &[u8], out: &mut Vec<u8>| {
            out.extend_from_slice(format!("[{vm}] ").as_bytes());
            if err {
                out.extend_from_slice(format!("{red}! ").as_bytes());
                out.extend_from_slice(text);
                out.extend_from_slice(reset.as_bytes());
            } else {
                out.extend_from_slice(text);
            }
            out.push(b'\n');
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
            Event::StepStarted {
                vm,
                step,
                total,
                description,
            } => {
                out.extend_from_slice(
                    format!("{dim}[{vm}] ==> step {step}/{total}: {description}{reset}\n")
                        .as_bytes(),
                );
            }
            Event::Output {
                vm,
                step,
                stream,
                data,
            } => {
                let err = *stream == OutputStream::Stderr;
                lines.push((vm.clone(), *step, err), data, |l| {
                    line(vm, err, l, &mut out)
                });
            }
            Event::Upload { .. } => {}
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
                error,
                duration,
            } => {
                let (colour, verdict) = if *ok {
                    (green, "succeeded")
                } else {
                    (red, "FAILED")
                };
                out.extend_from_slice(
                    format!("{colour}[{vm}] {verdict} in {duration:.2?}{reset}").as_bytes(),
                );
                if let Some(e) = error {
                    out.extend_from_slice(format!(": {e}").as_bytes());
                }
                out.push(b'\n');
            }
        }
        out
    }
}

impl Sink for TerminalSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Holding the lock while writing keeps lines of different VMs
            // from interleaving.
            let mut lines = self.state.lock().await;
            let bytes = self.render(event, &mut lines);
            if !bytes.is_empty() {
                let mut stdout = tokio::io::stdout();
                let _ = stdout.write_all(&bytes).await;
                let _ = stdout.flush().await;
            }
        })
    }
}

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
                Event::Output { data, .. } => data.to_vec(),
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
                Event::VmFinished { vm, ok, error, .. } => match error {
                    Some(e) if !ok => format!("=== [{vm}] failed: {e}\n").into_bytes(),
                    _ => format!("=== [{vm}] finished\n").into_bytes(),
                },
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

/// Emits output lines and step results as `tracing` events with `vm` and
/// `step` fields (target `vmssh::provision`).
#[derive(Default)]
pub struct TracingSink {
    lines: Mutex<LineBuffers>,
}

impl fmt::Debug for TracingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingSink").finish()
    }
}

impl TracingSink {
    /// A new tracing sink.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for TracingSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let emit_line = |vm: &str, step: usize, err: bool, l: &[u8]| {
                let text = String::from_utf8_lossy(l);
                if err {
                    tracing::warn!(target: "vmssh::provision", vm, step, stream = "stderr", "{text}");
                } else {
                    tracing::info!(target: "vmssh::provision", vm, step, stream = "stdout", "{text}");
                }
            };
            match event {
                Event::StepStarted {
                    vm,
                    step,
                    description,
                    ..
                } => {
                    tracing::info!(target: "vmssh::provision", vm = &**vm, step, "step started: {description}")
                }
                Event::Output {
                    vm,
                    step,
                    stream,
                    data,
                } => {
                    let err = *stream == OutputStream::Stderr;
                    self.lines
                        .lock()
                        .await
                        .push((vm.clone(), *step, err), data, |l| {
                            emit_line(vm, *step, err, l)
                        });
                }
                Event::StepFinished {
                    vm,
                    step,
                    status,
                    ok,
                    duration,
                } => {
                    self.lines
                        .lock()
                        .await
                        .flush(vm, *step, |err, l| emit_line(vm, *step, err, l));
                    let status = status.as_ref().map(|s| s.to_string());
                    tracing::info!(target: "vmssh::provision", vm = &**vm, step, ok, ?status, ?duration, "step finished");
                }
                Event::VmFinished {
                    vm,
                    ok,
                    error,
                    duration,
                } => {
                    tracing::info!(target: "vmssh::provision", vm = &**vm, ok, ?error, ?duration, "vm finished");
                }
                _ => {}
            }
        })
    }
}

/// Forwards every event into a bounded channel; when the receiver is slow,
/// provisioning waits for it. A closed receiver drops events.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<Event>,
}

impl ChannelSink {
    /// Forwards into `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<Event>) -> Self {
        ChannelSink { tx }
    }
}

impl Sink for ChannelSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.tx.send(event.clone()).await;
        })
    }
}

/// The result of one step that ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based index.
    pub step: usize,
    /// [`ProvisionDef::describe`].
    pub description: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// `exit status N` / `killed by signal S` for command steps.
    pub status: Option<String>,
    /// How long it ran.
    pub duration: Duration,
}

/// Runs a plan on one VM with more control than [`run_provisions`]: sinks,
/// log directory, base directory.
///
/// # Example
///
/// ```no_run
/// # async fn demo(sess: vmssh::Session) -> Result<(), vmssh::Error> {
/// use vmssh::provision::{ProvisionDef, Provisioner, TerminalSink};
///
/// let report = Provisioner::new("vm1")
///     .base_dir("plans/web")
///     .log_dir("logs/vm1")
///     .sink(TerminalSink::new())
///     .run(&sess, &[ProvisionDef::inline("uname -a")])
///     .await?;
/// assert!(report[0].ok);
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Provisioner {
    vm: Arc<str>,
    base_dir: PathBuf,
    sinks: Vec<Arc<dyn Sink>>,
    stderr_tail_lines: usize,
}

impl fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioner")
            .field("vm", &self.vm)
            .field("base_dir", &self.base_dir)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Provisioner {
    /// A provisioner for the VM called `vm`, with no sinks and the current
    /// directory as base.
    pub fn new(vm: impl Into<String>) -> Self {
        Provisioner {
            vm: Arc::from(vm.into()),
            base_dir: PathBuf::from("."),
            sinks: Vec::new(),
            stderr_tail_lines: 20,
        }
    }

    /// Where `script` and `file` sources are resolved.
    ///
    /// Default: the current directory.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// Appends output to `dir/provision.log` (a [`LogFileSink`]).
    pub fn log_dir(self, dir: impl AsRef<Path>) -> Self {
        self.sink(LogFileSink::new(dir))
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds a shared sink (one terminal for a whole fleet).
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// How many trailing stderr lines a failure carries.
    ///
    /// Default: 20.
    pub fn stderr_tail_lines(mut self, n: usize) -> Self {
        self.stderr_tail_lines = n;
        self
    }

    pub(crate) async fn emit(&self, event: Event) {
        emit(&self.sinks, event).await;
    }

    /// Runs `steps` in order on `session`; stops at the first failure.
    ///
    /// # Errors
    ///
    /// [`Error::ProvisionFailed`] naming the VM, the 1-based step, its exit
    /// status (or signal) and the last lines of its stderr; a missing local
    /// script or file is reported this way before anything runs on the guest.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the running step's channel; a script's
    /// temporary file may remain on the guest.
    pub async fn run(
        &self,
        session: &Session,
        steps: &[ProvisionDef],
    ) -> Result<Vec<StepReport>, Error> {
        let start = Instant::now();
        let result = self.run_steps(session, steps).await;
        let (ok, error) = match &result {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        self.emit(Event::VmFinished {
            vm: self.vm.clone(),
            ok,
            error,
            duration: start.elapsed(),
        })
        .await;
        result
    }

    async fn run_steps(
        &self,
        session: &Session,
        steps: &[ProvisionDef],
    ) -> Result<Vec<StepReport>, Error> {
        self.check_inputs(steps).await?;
        let mut reports = Vec::with_capacity(steps.len());
        self.run_from(session, steps, 0, &mut reports).await?;
        Ok(reports)
    }

    /// Checks every local input (scripts, file sources) before anything
    /// runs on the guest.
    pub(crate) async fn check_inputs(&self, steps: &[ProvisionDef]) -> Result<(), Error> {
        for (i, step) in steps.iter().enumerate() {
            let local = match &step.kind {
                StepKind::Script(p) => Some(p),
                StepKind::File { source, .. } => Some(source),
                StepKind::Inline(_) => None,
            };
            if let Some(p) = local {
                let full = self.base_dir.join(p);
                match tokio::fs::metadata(&full).await {
                    Ok(m) if m.is_file() => {}
                    Ok(_) => {
                        return Err(self.local_missing(
                            i + 1,
                            step,
                            &full,
                            std::io::ErrorKind::InvalidInput.into(),
                        ));
                    }
                    Err(e) => return Err(self.local_missing(i + 1, step, &full, e)),
                }
            }
        }
        Ok(())
    }

    /// Runs `steps[first..]`, appending a report per step that ran.
    pub(crate) async fn run_from(
        &self,
        session: &Session,
        steps: &[ProvisionDef],
        first: usize,
        reports: &mut Vec<StepReport>,
    ) -> Result<(), Error> {
        for (i, step) in steps.iter().enumerate().skip(first) {
            let n = i + 1;
            let description = step.describe();
            self.emit(Event::StepStarted {
                vm: self.vm.clone(),
                step: n,
                total: steps.len(),
                description: description.clone(),
            })
            .await;
            let started = Instant::now();
            let result = self.run_step(session, n, step).await;
            let duration = started.elapsed();
            let (status, ok) = match &result {
                Ok(s) => (s.clone(), true),
                Err(Error::ProvisionFailed { status, .. }) => (status.clone(), false),
                Err(_) => (None, false),
            };
            self.emit(Event::StepFinished {
                vm: self.vm.clone(),
                step: n,
                status: status.clone(),
                ok,
                duration,
            })
            .await;
            reports.push(StepReport {
                step: n,
                description,
                ok,
                status: status.map(|s| s.to_string()),
                duration,
            });
            result?;
        }
        Ok(())
    }

    fn local_missing(
        &self,
        step: usize,
        def: &ProvisionDef,
        path: &Path,
        e: std::io::Error,
    ) -> Error {
        let what = if matches!(def.kind, StepKind::Script(_)) {
            "script"
        } else {
            "source file"
        };
        Error::ProvisionFailed {
            vm: self.vm.to_string(),
            step,
            description: def.describe(),
            reason: format!("local {what} {} is missing or not a file", path.display()),
            status: None,
            stderr_tail: String::new(),
            source: Some(Box::new(Error::io(
                format!("cannot read {}", path.display()),
                e,
            ))),
        }
    }

    /// The failure of a step that could not start because the connection
    /// was gone: nothing of it ran on the guest.
    fn not_started(&self, step: usize, def: &ProvisionDef, what: &str, e: Error) -> Error {
        let reason = if e.is_connection_lost() {
            NOT_STARTED.to_string()
        } else {
            what.to_string()
        };
        self.failed(step, def, reason, None, String::new(), Some(e))
    }

    fn failed(
        &self,
        step: usize,
        def: &ProvisionDef,
        reason: String,
        status: Option<ExitStatus>,
        tail: String,
        source: Option<Error>,
    ) -> Error {
        Error::ProvisionFailed {
            vm: self.vm.to_string(),
            step,
            description: def.describe(),
            reason,
            status,
            stderr_tail: tail,
            source: source.map(Box::new),
        }
    }

    async fn run_step(
        &self,
        session: &Session,
        n: usize,
        step: &ProvisionDef,
    ) -> Result<Option<ExitStatus>, Error> {
        match &step.kind {
            StepKind::Inline(cmd) => self
                .run_command(session, n, step, cmd.clone())
                .await
                .map(Some),
            StepKind::Script(path) => {
                let local = self.base_dir.join(path);
                let remote = format!(
                    "/tmp/vmssh-{}-{:016x}.sh",
                    sanitize(&self.vm),
                    rand::random::<u64>()
                );
                let sftp = session.sftp().await.map_err(|e| {
                    self.not_started(n, step, "cannot open SFTP to upload the script", e)
                })?;
                let opts = TransferOptions::new()
                    .mode(0o700)
                    .atomic(false)
                    .overwrite(false)
                    .fsync(false);
                self.upload_reporting(&sftp, n, &local, &remote, opts)
                    .await
                    .map_err(|e| {
                        self.failed(
                            n,
                            step,
                            "cannot upload the script".into(),
                            None,
                            String::new(),
                            Some(e),
                        )
                    })?;
                let result = self
                    .run_command(session, n, step, shell_quote(&remote))
                    .await;
                // Remove it whatever happened, while the channel is up.
                if let Err(e) = sftp.remove(&remote).await {
                    tracing::warn!(vm = &*self.vm, path = remote, error = %e, "cannot remove temporary script");
                }
                result.map(Some)
            }
            StepKind::File {
                source,
                destination,
            } => {
                let local = self.base_dir.join(source);
                let sftp = session
                    .sftp()
                    .await
                    .map_err(|e| self.not_started(n, step, "cannot open SFTP", e))?;
                let opts = TransferOptions::new().create_parents(true);
                self.upload_reporting(&sftp, n, &local, destination, opts)
                    .await
                    .map_err(|e| {
                        self.failed(
                            n,
                            step,
                            format!("cannot upload to {destination}"),
                            None,
                            String::new(),
                            Some(e),
                        )
                    })?;
                Ok(None)
            }
        }
    }

    async fn upload_reporting(
        &self,
        sftp: &crate::Sftp,
        n: usize,
        local: &Path,
        remote: &str,
        opts: TransferOptions,
    ) -> Result<u64, Error> {
        // Progress callbacks are synchronous; forward them through a small
        // watch channel so sinks are awaited outside the transfer.
        let (tx, mut rx) = tokio::sync::watch::channel(None::<(u64, Option<u64>)>);
        let opts = opts.on_progress(move |p| {
            let _ = tx.send(Some((p.done, p.total)));
        });
        let upload = sftp.upload_with(local, remote, &opts);
        tokio::pin!(upload);
        loop {
            tokio::select! {
                r = &mut upload => return r,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return upload.await;
                    }
                    let value = *rx.borrow_and_update();
                    if let Some((done, total)) = value {
                        self.emit(Event::Upload { vm: self.vm.clone(), step: n, done, total }).await;
                    }
                }
            }
        }
    }

    async fn run_command(
        &self,
        session: &Session,
        n: usize,
        step: &ProvisionDef,
        line: String,
    ) -> Result<ExitStatus, Error> {
        let line = if step.sudo {
            format!("sudo -n -- sh -c {}", shell_quote(&line))
        } else {
            line
        };
        let mut cmd = Command::new(line);
        for (k, v) in &step.env {
            cmd = cmd.env(k.clone(), v.clone());
        }
        if let Some(t) = step.timeout {
            cmd = cmd.timeout(t);
        }
        let mut tail = StderrTail::new(self.stderr_tail_lines);
        let mut stream = session
            .exec_streaming_command(cmd)
            .await
            .map_err(|e| self.not_started(n, step, "cannot start the command", e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let reason = if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        "did not complete".to_string()
                    };
                    return Err(self.failed(n, step, reason, None, tail.text(), Some(e)));
                }
            };
            let (stream_kind, data) = match chunk {
                Chunk::Stdout(b) => (OutputStream::Stdout, b),
                Chunk::Stderr(b) => {
                    tail.push(&b);
                    (OutputStream::Stderr, b)
                }
            };
            self.emit(Event::Output {
                vm: self.vm.clone(),
                step: n,
                stream: stream_kind,
                data,
            })
            .await;
        }
        let status = stream.exit_status().await.map_err(|e| {
            self.failed(
                n,
                step,
                "ended without an exit status".into(),
                None,
                tail.text(),
                Some(e),
            )
        })?;
        if status.success() {
            Ok(status)
        } else {
            Err(self.failed(n, step, status.to_string(), Some(status), tail.text(), None))
        }
    }
}

/// The reason of a step that did not start because the connection was lost.
pub(crate) const NOT_STARTED: &str = "the connection was lost before the step started";

/// Whether `e` is a step failure that ran nothing on the guest because the
/// connection was gone (a VM rebooting between steps).
pub(crate) fn step_not_started(e: &Error) -> Option<usize> {
    match e {
        Error::ProvisionFailed { step, reason, .. } if reason == NOT_STARTED => Some(*step),
        _ => None,
    }
}

/// Keeps the last lines of stderr, bounded in bytes.
struct StderrTail {
    buf: std::collections::VecDeque<u8>,
    lines: usize,
}

impl StderrTail {
    const MAX_BYTES: usize = 8 * 1024;

    fn new(lines: usize) -> Self {
        StderrTail {
            buf: std::collections::VecDeque::new(),
            lines,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let data = if data.len() > Self::MAX_BYTES {
            &data[data.len() - Self::MAX_BYTES..]
        } else {
            data
        };
        self.buf.extend(data.iter().copied());
        while self.buf.len() > Self::MAX_BYTES {
            self.buf.pop_front();
        }
    }

    fn text(&self) -> String {
        let bytes: Vec<u8> = self.buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let trimmed = text.trim_end_matches('\n');
        let lines: Vec<&str> = trimmed.lines().collect();
        let start = lines.len().saturating_sub(self.lines);
        lines[start..].join("\n")
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

/// Runs `steps` on one VM: output goes to `log_dir/provision.log` (when
/// given) and to `tracing`. See [`Provisioner`] for other sinks.
///
/// # Errors
///
/// [`Error::ProvisionFailed`] at the first failing step; see
/// [`Provisioner::run`].
///
/// # Cancel safety
///
/// As [`Provisioner::run`].
pub async fn run_provisions(
    session: &Session,
    steps: &[ProvisionDef],
    base_dir: &Path,
    vm_name: &str,
    log_dir: Option<&Path>,
) -> Result<Vec<StepReport>, Error> {
    let mut p = Provisioner::new(vm_name)
        .base_dir(base_dir)
        .sink(TracingSink::new());
    if let Some(dir) = log_dir {
        p = p.log_dir(dir);
    }
    p.run(session, steps).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_last_lines() {
        let mut t = StderrTail::new(2);
        t.push(b"one\ntwo\nthr");
        t.push(b"ee\n");
        assert_eq!(t.text(), "two\nthree");
        let mut big = StderrTail::new(3);
        big.push(&vec![b'x'; 100_000]);
        assert!(big.text().len() <= StderrTail::MAX_BYTES);
    }

    #[test]
    fn line_buffers_split_and_flush() {
        let mut lb = LineBuffers::default();
        let key: (Arc<str>, usize, bool) = (Arc::from("vm"), 1, false);
        let mut got = Vec::new();
        lb.push(key.clone(), b"a\nb", |l| got.push(l.to_vec()));
        lb.push(key.clone(), b"c\n", |l| got.push(l.to_vec()));
        lb.push(key, b"tail", |l| got.push(l.to_vec()));
        lb.flush("vm", 1, |_, l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"tail".to_vec()]);
    }

    #[test]
    fn describe_is_one_line() {
        assert_eq!(
            ProvisionDef::inline("echo hi").describe(),
            "inline: echo hi"
        );
        assert!(ProvisionDef::inline("a\nb").describe().ends_with('…'));
        assert_eq!(ProvisionDef::file("a", "/b").describe(), "file: a -> /b");
        assert_eq!(sanitize("vm 1/x"), "vm_1_x");
    }
}
