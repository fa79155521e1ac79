//! Running a plan on one VM: [`Provisioner`] runs the steps in order,
//! each ending in a typed outcome and a [`StepReport`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::sink::{Sink, emit};
use super::sinks::LogFileSink;
use super::staging::ScriptStaging;
use super::step::{ProvisionDef, StepKind};
use super::tail::{Tail, Tails};
use crate::error::Error;
use crate::exec::{Chunk, Command, StartError, shell_quote};
use crate::report::{Event, Failure, StepReport};
use crate::secret::Secret;
use crate::session::Session;
use crate::status::ExitStatus;
use crate::transfer::{StepNeeds, Transfer, TransferOptions};

/// How one step ended.
#[derive(Debug)]
enum StepOutcome {
    /// It succeeded, with the exit status of a command step.
    Succeeded(Option<ExitStatus>),
    /// It ran, or may have run, and failed
    /// ([`Error::ProvisionFailed`]).
    Failed(Error),
    /// Nothing of it reached the guest: it failed before a command was
    /// sent or a file was opened ([`Error::ProvisionFailed`]).
    NotStarted(Error),
}

impl StepOutcome {
    /// Whether the step did not start because the connection was gone:
    /// on a new connection it can run as if for the first time.
    fn connection_gone_before_start(&self) -> bool {
        match self {
            StepOutcome::NotStarted(Error::ProvisionFailed {
                source: Some(e), ..
            }) => e.is_connection_lost(),
            _ => false,
        }
    }

    /// The step's error, unless it succeeded.
    fn into_error(self) -> Option<Error> {
        match self {
            StepOutcome::Succeeded(_) => None,
            StepOutcome::Failed(e) | StepOutcome::NotStarted(e) => Some(e),
        }
    }
}

/// A step's outcome with its report.
#[derive(Debug)]
struct StepRun {
    report: StepReport,
    outcome: StepOutcome,
}

/// The reason of a step that did not start because the connection was gone.
const CONNECTION_GONE: &str = "the connection was lost before the step started";

/// A plan to run on one connection: the steps from `from` (0-based) on.
pub(crate) struct PlanRun<'a> {
    pub(crate) steps: &'a [ProvisionDef],
    pub(crate) from: usize,
    /// Stops the run: the running step's channel is closed (its command
    /// sent SIGTERM where the server allows it).
    pub(crate) stop: Option<&'a CancellationToken>,
    /// Whether a step that finds the connection gone before it starts
    /// ends the run with [`PlanEnd::Lost`], to be run again on a new
    /// connection, instead of failing it.
    pub(crate) reconnectable: bool,
}

/// How a [`PlanRun`] ended.
#[derive(Debug)]
pub(crate) enum PlanEnd {
    /// Every step succeeded.
    Done,
    /// A step failed; the run stopped there.
    Failed(Error),
    /// The connection was gone before step `next` (0-based) started:
    /// nothing of it ran, and it was not recorded.
    Lost { next: usize, error: Error },
    /// The run was stopped during this 1-based step.
    Stopped { step: usize },
}

/// Runs a plan on one VM with more control than
/// [`run_provisions`](super::run_provisions): sinks, log directory, base
/// directory.
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
    log: Option<Arc<dyn Sink>>,
    stderr_tail_lines: usize,
    stdout_tail_lines: usize,
    script_staging: ScriptStaging,
    file_mode: Option<u32>,
    sudo_password: Option<Secret>,
}

impl fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioner")
            .field("vm", &self.vm)
            .field("base_dir", &self.base_dir)
            .field("sinks", &self.sinks.len())
            .field("log", &self.log.is_some())
            .field("sudo_password", &self.sudo_password)
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
            log: None,
            stderr_tail_lines: 20,
            stdout_tail_lines: 20,
            script_staging: ScriptStaging::default(),
            file_mode: None,
            sudo_password: None,
        }
    }

    /// Sets where `script` and `file` sources are resolved.
    ///
    /// Default: the current directory.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// Sets the directory whose `provision.log` receives the output (a
    /// [`LogFileSink`]); a later call replaces an earlier one.
    ///
    /// Default: none.
    pub fn log_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.log = Some(Arc::new(LogFileSink::new(dir)));
        self
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

    /// Sets how many trailing stderr lines a failure carries.
    ///
    /// Default: 20.
    pub fn stderr_tail_lines(mut self, n: usize) -> Self {
        self.stderr_tail_lines = n;
        self
    }

    /// Sets how many trailing stdout lines a failure carries.
    ///
    /// Default: 20.
    pub fn stdout_tail_lines(mut self, n: usize) -> Self {
        self.stdout_tail_lines = n;
        self
    }

    /// Sets where script steps' scripts are uploaded, with which mode,
    /// and whether they are removed after the run.
    ///
    /// Default: [`ScriptStaging::default`] (a fresh name in `/tmp`, mode
    /// 0700, removed).
    pub fn script_staging(mut self, staging: ScriptStaging) -> Self {
        self.script_staging = staging;
        self
    }

    /// Sets the permission bits of uploaded files whose step sets none
    /// ([`ProvisionDef::mode`]); vmctl uploads every file with 0755.
    ///
    /// Default: none (the local file's mode).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = Some(mode & 0o7777);
        self
    }

    /// Sets the password that `sudo` steps ([`ProvisionDef::sudo`]) give
    /// sudo when it asks for one, as
    /// [`Command::sudo_password`](crate::Command::sudo_password) does:
    /// over the command's stdin, never on a command line, in a log, an
    /// event or a report. A wrong one fails the step with
    /// [`Error::SudoPasswordRejected`] as its cause. Other steps ignore
    /// it.
    ///
    /// Default: none (`sudo -n`, which fails where a password is needed).
    pub fn sudo_password(mut self, password: impl Into<Secret>) -> Self {
        self.sudo_password = Some(password.into());
        self
    }

    /// Hands an event to every sink, the log last.
    pub(crate) async fn emit(&self, event: Event) {
        emit(&self.sinks, &event).await;
        if let Some(log) = &self.log {
            log.event(&event).await;
        }
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
        let mut reports = Vec::with_capacity(steps.len());
        let result = match self.check_inputs(steps) {
            Err(e) => Err(e),
            Ok(()) => {
                let run = PlanRun {
                    steps,
                    from: 0,
                    stop: None,
                    reconnectable: false,
                };
                match self.run_plan(session, run, |r| reports.push(r)).await {
                    PlanEnd::Done => Ok(()),
                    PlanEnd::Failed(e) | PlanEnd::Lost { error: e, .. } => Err(e),
                    // Without a stop token the run is never stopped.
                    PlanEnd::Stopped { step } => Err(self.failed(
                        step,
                        &steps[step - 1],
                        "stopped".into(),
                        None,
                        Tails::default(),
                        None,
                    )),
                }
            }
        };
        let failure = result.as_ref().err().map(Failure::plan);
        let stderr_tail = result.as_ref().err().and_then(crate::report::stderr_tail);
        let stdout_tail = result.as_ref().err().and_then(crate::report::stdout_tail);
        self.emit(Event::VmFinished {
            vm: self.vm.clone(),
            ok: result.is_ok(),
            failure,
            stderr_tail,
            stdout_tail,
            deadline_passed: None,
            duration: start.elapsed(),
        })
        .await;
        result.map(|()| reports)
    }

    /// The one step loop, for one VM ([`run`](Self::run)) and for each VM
    /// of a fleet: runs the plan's steps on `session`, handing each step's
    /// report to `record` as it ends, until a step fails, the run is
    /// stopped or (when reconnectable) the connection is found gone. One
    /// SFTP channel serves the steps that move files: opened by the first
    /// of them, kept for the later ones (a round trip per request instead
    /// of four more per step), kept for the session's next transfer when
    /// the loop ends (see
    /// [`SshConfig::sftp_idle_timeout`](crate::SshConfig::sftp_idle_timeout)).
    pub(crate) async fn run_plan(
        &self,
        session: &Session,
        run: PlanRun<'_>,
        record: impl FnMut(StepReport),
    ) -> PlanEnd {
        let mut transfer = Transfer::new(session);
        let end = self.run_steps(&mut transfer, session, run, record).await;
        // A channel opened ahead for a step that will not run is closed
        // before the caller goes on.
        transfer.finish().await;
        end
    }

    /// [`run_plan`](Self::run_plan)'s loop.
    async fn run_steps(
        &self,
        transfer: &mut Transfer<'_>,
        session: &Session,
        run: PlanRun<'_>,
        mut record: impl FnMut(StepReport),
    ) -> PlanEnd {
        // Channels are opened ahead of later steps, except where the
        // connection may be found gone between steps (a VM that reboots,
        // reconnected): a command sent on a channel opened before the
        // connection died could not be told from one that ran, so the
        // step could not be resumed on the new connection.
        let ahead = !run.reconnectable;
        for index in run.from..run.steps.len() {
            let started = Instant::now();
            transfer.before_step(StepNeeds {
                runs_command: run.steps[index].kind.runs_command(),
                command_follows: ahead
                    && run
                        .steps
                        .get(index + 1)
                        .is_some_and(|s| s.kind.runs_command()),
                uses_sftp: run.steps[index].kind.uses_sftp(),
                sftp_follows: ahead && run.steps[index + 1..].iter().any(|s| s.kind.uses_sftp()),
            });
            let step = self.step(transfer, run.steps, index);
            let done = match run.stop {
                Some(stop) => tokio::select! {
                    biased;
                    () = stop.cancelled() => None,
                    done = step => Some(done),
                },
                None => Some(step.await),
            };
            let Some(done) = done else {
                self.stopped(session, run.steps, index, started, &mut record)
                    .await;
                return PlanEnd::Stopped { step: index + 1 };
            };
            if run.reconnectable && done.outcome.connection_gone_before_start() {
                if let Some(error) = done.outcome.into_error() {
                    return PlanEnd::Lost { next: index, error };
                }
                continue;
            }
            record(done.report);
            if let Some(e) = done.outcome.into_error() {
                return PlanEnd::Failed(e);
            }
        }
        PlanEnd::Done
    }

    /// Ends a step the run stopped, whose future is gone: its channel is
    /// being closed, the command sent SIGTERM where the server allows it.
    /// Waits for that, then reports the step as not ok.
    async fn stopped(
        &self,
        session: &Session,
        steps: &[ProvisionDef],
        index: usize,
        started: Instant,
        record: &mut impl FnMut(StepReport),
    ) {
        session.wait_for_closing().await;
        let duration = started.elapsed();
        self.emit(Event::StepFinished {
            vm: self.vm.clone(),
            step: index + 1,
            status: None,
            ok: false,
            duration,
        })
        .await;
        record(StepReport {
            step: index + 1,
            description: steps[index].describe(),
            ok: false,
            status: None,
            duration,
        });
    }

    /// Checks every local input (scripts, file sources) before anything
    /// runs on the guest.
    pub(crate) fn check_inputs(&self, steps: &[ProvisionDef]) -> Result<(), Error> {
        match self.input_problems(steps).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every step whose local input (a script, a file step's source,
    /// relative to the [`base_dir`](Self::base_dir)) is missing or not a
    /// regular file, each as the [`Error::ProvisionFailed`] the run would
    /// fail with: what a dry run reports, without connecting anywhere.
    pub fn input_problems(&self, steps: &[ProvisionDef]) -> Vec<Error> {
        let mut problems = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let local = match &step.kind {
                StepKind::Script(p) => Some(p),
                StepKind::File { source, .. } => Some(source),
                StepKind::Inline(_) | StepKind::Download { .. } | StepKind::DownloadDir { .. } => {
                    None
                }
            };
            let dir_ok = matches!(step.kind, StepKind::File { .. });
            if let Some(p) = local {
                let full = self.base_dir.join(p);
                match crate::local_file::metadata(&full) {
                    Ok(m) if m.is_file() || (dir_ok && m.is_dir()) => {}
                    Ok(_) => problems.push(self.local_missing(
                        i + 1,
                        step,
                        &full,
                        std::io::ErrorKind::InvalidInput.into(),
                    )),
                    Err(e) => problems.push(self.local_missing(i + 1, step, &full, e)),
                }
            }
        }
        problems
    }

    /// Runs `steps[index]`, telling the sinks when it starts and ends.
    /// `transfer` carries the session and its SFTP channel from one step
    /// to the next.
    async fn step(
        &self,
        transfer: &mut Transfer<'_>,
        steps: &[ProvisionDef],
        index: usize,
    ) -> StepRun {
        let n = index + 1;
        let step = &steps[index];
        let description = step.describe();
        self.emit(Event::StepStarted {
            vm: self.vm.clone(),
            step: n,
            total: steps.len(),
            description: description.clone(),
        })
        .await;
        let started = Instant::now();
        let outcome = self.run_step(transfer, n, step).await;
        let duration = started.elapsed();
        let (status, ok) = match &outcome {
            StepOutcome::Succeeded(s) => (s.clone(), true),
            StepOutcome::Failed(Error::ProvisionFailed { status, .. }) => (status.clone(), false),
            StepOutcome::Failed(_) | StepOutcome::NotStarted(_) => (None, false),
        };
        self.emit(Event::StepFinished {
            vm: self.vm.clone(),
            step: n,
            status: status.clone(),
            ok,
            duration,
        })
        .await;
        StepRun {
            report: StepReport {
                step: n,
                description,
                ok,
                status,
                duration,
            },
            outcome,
        }
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
            stderr_tail: Box::default(),
            stdout_tail: Box::default(),
            source: Some(Box::new(Error::io(
                format!("cannot read {}", path.display()),
                e,
            ))),
        }
    }

    fn failed(
        &self,
        step: usize,
        def: &ProvisionDef,
        reason: String,
        status: Option<ExitStatus>,
        tails: Tails,
        source: Option<Error>,
    ) -> Error {
        Error::ProvisionFailed {
            vm: self.vm.to_string(),
            step,
            description: def.describe(),
            reason,
            status,
            stderr_tail: Box::new(tails.stderr),
            stdout_tail: Box::new(tails.stdout),
            source: source.map(Box::new),
        }
    }

    /// A failure before anything of the step reached the guest.
    fn not_started(&self, step: usize, def: &ProvisionDef, what: &str, e: Error) -> StepOutcome {
        let reason = if e.is_connection_lost() {
            CONNECTION_GONE
        } else {
            what
        };
        StepOutcome::NotStarted(self.failed(
            step,
            def,
            reason.to_string(),
            None,
            Tails::default(),
            Some(e),
        ))
    }

    async fn run_step(
        &self,
        transfer: &mut Transfer<'_>,
        n: usize,
        step: &ProvisionDef,
    ) -> StepOutcome {
        let session = transfer.session();
        if session.is_closed() {
            let e = session.lost_after_end("connection closed").await;
            return self.not_started(n, step, CONNECTION_GONE, e);
        }
        match &step.kind {
            StepKind::Inline(cmd) => self.run_command(transfer, n, step, cmd.clone()).await,
            StepKind::Script(path) => {
                let local = self.base_dir.join(path);
                let staging = &self.script_staging;
                let remote = staging.path(&self.vm, n);
                // Removed after the run, or by a task if this future is
                // dropped, unless kept.
                let script = match transfer.temp_file(&remote).await {
                    Ok(script) => script,
                    Err(e) => {
                        return self.not_started(
                            n,
                            step,
                            "cannot open SFTP to upload the script",
                            e,
                        );
                    }
                };
                let opts = TransferOptions::new()
                    .mode(staging.file_mode())
                    .atomic(false)
                    .overwrite(!staging.is_unique())
                    .fsync(false);
                if let Err(e) = self
                    .upload_reporting(transfer, n, &local, &remote, opts)
                    .await
                {
                    if staging.keeps() {
                        script.keep();
                    }
                    return StepOutcome::Failed(self.failed(
                        n,
                        step,
                        "cannot upload the script".into(),
                        None,
                        Tails::default(),
                        Some(e),
                    ));
                }
                let outcome = self
                    .run_command(transfer, n, step, shell_quote(&remote))
                    .await;
                if staging.keeps() {
                    script.keep();
                } else if let Some(removing) = script.remove_soon().await {
                    transfer.settle_later(removing);
                }
                outcome
            }
            StepKind::File {
                source,
                destination,
            } => {
                let local = self.base_dir.join(source);
                if crate::local_file::metadata(&local).is_ok_and(|m| m.is_dir()) {
                    return self
                        .tree_step(transfer, n, step, Tree::Upload(&local, destination))
                        .await;
                }
                if let Err(e) = transfer.open().await {
                    return self.not_started(n, step, "cannot open SFTP", e);
                }
                let mut opts = TransferOptions::new().create_parents(true);
                if let Some(mode) = step.mode.or(self.file_mode) {
                    opts = opts.mode(mode);
                }
                if let Some(n) = step.channels {
                    opts = opts.channels(n);
                }
                match self
                    .upload_reporting(transfer, n, &local, destination, opts)
                    .await
                {
                    Ok(_) => StepOutcome::Succeeded(None),
                    Err(e) => StepOutcome::Failed(self.failed(
                        n,
                        step,
                        format!("cannot upload to {destination}"),
                        None,
                        Tails::default(),
                        Some(e),
                    )),
                }
            }
            StepKind::Download {
                source,
                destination,
            } => {
                let local = self.base_dir.join(destination);
                if let Err(e) = transfer.open().await {
                    return self.not_started(n, step, "cannot open SFTP", e);
                }
                let mut opts = TransferOptions::new();
                if let Some(n) = step.channels {
                    opts = opts.channels(n);
                }
                let (opts, progress) = with_progress(opts);
                let download = transfer.download_file(source, &local, &opts);
                let done = self
                    .reporting(download, progress, |vm, done, total| Event::Download {
                        vm,
                        step: n,
                        done,
                        total,
                    })
                    .await;
                match done {
                    Ok(_) => StepOutcome::Succeeded(None),
                    Err(e) => StepOutcome::Failed(self.failed(
                        n,
                        step,
                        format!("cannot download {source} to {}", local.display()),
                        None,
                        Tails::default(),
                        Some(e),
                    )),
                }
            }
            StepKind::DownloadDir {
                source,
                destination,
            } => {
                let local = self.base_dir.join(destination);
                self.tree_step(transfer, n, step, Tree::Download(source, &local))
                    .await
            }
        }
    }

    /// A directory step: the tree moves on the plan's SFTP channel, handed
    /// to the session for it (see [`Transfer::upload_dir`]), reported as
    /// the upload or download of its bytes.
    async fn tree_step(
        &self,
        transfer: &mut Transfer<'_>,
        n: usize,
        step: &ProvisionDef,
        tree: Tree<'_>,
    ) -> StepOutcome {
        let (opts, progress) = with_progress(TransferOptions::new().create_parents(true));
        let (done, what) = match tree {
            Tree::Upload(local, remote) => {
                let upload = async {
                    transfer
                        .upload_dir(local, remote, &opts)
                        .await
                        .map(|s| s.bytes)
                };
                let done = self
                    .reporting(upload, progress, |vm, done, total| Event::Upload {
                        vm,
                        step: n,
                        done,
                        total,
                    })
                    .await;
                (done, format!("cannot upload to {remote}"))
            }
            Tree::Download(remote, local) => {
                let download = async {
                    transfer
                        .download_dir(remote, local, &opts)
                        .await
                        .map(|s| s.bytes)
                };
                let done = self
                    .reporting(download, progress, |vm, done, total| Event::Download {
                        vm,
                        step: n,
                        done,
                        total,
                    })
                    .await;
                (
                    done,
                    format!("cannot download {remote} to {}", local.display()),
                )
            }
        };
        match done {
            Ok(_) => StepOutcome::Succeeded(None),
            Err(e) => {
                StepOutcome::Failed(self.failed(n, step, what, None, Tails::default(), Some(e)))
            }
        }
    }

    async fn upload_reporting(
        &self,
        transfer: &mut Transfer<'_>,
        n: usize,
        local: &Path,
        remote: &str,
        opts: TransferOptions,
    ) -> Result<u64, Error> {
        let (opts, progress) = with_progress(opts);
        let upload = transfer.upload_file(local, remote, &opts);
        self.reporting(upload, progress, |vm, done, total| Event::Upload {
            vm,
            step: n,
            done,
            total,
        })
        .await
    }

    /// Runs a transfer, handing its progress to the sinks as `event`s.
    async fn reporting(
        &self,
        transfer: impl std::future::Future<Output = Result<u64, Error>>,
        mut progress: ProgressRx,
        event: impl Fn(Arc<str>, u64, Option<u64>) -> Event,
    ) -> Result<u64, Error> {
        tokio::pin!(transfer);
        loop {
            tokio::select! {
                r = &mut transfer => return r,
                changed = progress.changed() => {
                    if changed.is_err() {
                        return transfer.await;
                    }
                    let value = *progress.borrow_and_update();
                    if let Some((done, total)) = value {
                        self.emit(event(self.vm.clone(), done, total)).await;
                    }
                }
            }
        }
    }

    async fn run_command(
        &self,
        transfer: &mut Transfer<'_>,
        n: usize,
        step: &ProvisionDef,
        line: String,
    ) -> StepOutcome {
        let mut cmd = Command::new(line).sudo(step.sudo);
        if let Some(password) = self.sudo_password.as_ref().filter(|_| step.sudo) {
            cmd = cmd.sudo_password(password.clone());
        }
        for (k, v) in &step.env {
            cmd = cmd.env(k.clone(), v.clone());
        }
        if let Some(t) = step.timeout {
            cmd = cmd.timeout(t);
        }
        let mut tail = Tail::new(self.stderr_tail_lines);
        let mut out_tail = Tail::new(self.stdout_tail_lines);
        let started = transfer.start_command(cmd).await;
        let mut stream = match started {
            Ok(s) => s,
            Err(StartError { error, sent: false }) => {
                return self.not_started(n, step, "cannot start the command", error);
            }
            Err(StartError { error, sent: true }) => {
                return StepOutcome::Failed(self.failed(
                    n,
                    step,
                    "the command was sent but did not start cleanly".into(),
                    None,
                    Tails::default(),
                    Some(error),
                ));
            }
        };
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let reason = if e.is_timeout() {
                        "timed out"
                    } else if matches!(e, Error::SudoPasswordRejected { .. }) {
                        "sudo rejected the password"
                    } else {
                        "did not complete"
                    };
                    return StepOutcome::Failed(self.failed(
                        n,
                        step,
                        reason.to_string(),
                        None,
                        Tails {
                            stdout: out_tail.text(),
                            stderr: tail.text(),
                        },
                        Some(e),
                    ));
                }
            };
            match &chunk {
                Chunk::Stderr(b) => tail.push(b),
                other => out_tail.push(other.bytes()),
            }
            self.emit(Event::Output {
                vm: self.vm.clone(),
                step: n,
                chunk,
            })
            .await;
        }
        match stream.exit_status().await {
            Ok(status) if status.success() => StepOutcome::Succeeded(Some(status)),
            Ok(status) => StepOutcome::Failed(self.failed(
                n,
                step,
                status.to_string(),
                Some(status),
                Tails {
                    stdout: out_tail.text(),
                    stderr: tail.text(),
                },
                None,
            )),
            Err(e) => StepOutcome::Failed(self.failed(
                n,
                step,
                "ended without an exit status".into(),
                None,
                Tails {
                    stdout: out_tail.text(),
                    stderr: tail.text(),
                },
                Some(e),
            )),
        }
    }
}

/// The latest `(done, total)` of a transfer.
type ProgressRx = tokio::sync::watch::Receiver<Option<(u64, Option<u64>)>>;

/// Progress callbacks are synchronous: `opts` forwards them through a
/// small watch channel, so that sinks are awaited outside the transfer.
/// A directory step's direction and paths.
enum Tree<'a> {
    /// Local directory, remote destination.
    Upload(&'a Path, &'a str),
    /// Remote directory, local destination.
    Download(&'a str, &'a Path),
}

fn with_progress(opts: TransferOptions) -> (TransferOptions, ProgressRx) {
    let (tx, rx) = tokio::sync::watch::channel(None::<(u64, Option<u64>)>);
    let opts = opts.on_progress(move |p| {
        let _ = tx.send(Some((p.done, p.total)));
    });
    (opts, rx)
}
