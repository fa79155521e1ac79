//! Many VMs at once: bounded concurrency, live events, per-VM results.
//!
//! Each VM is a task on the caller's runtime (not a thread): connect with
//! retry, then run its plan. Connects in flight are capped separately from
//! VMs in flight, because sshd accepts only a few dozen new connections a
//! second and drops the rest of a burst.
//!
//! A run stops early, gracefully, when too many VMs fail
//! ([`Fleet::fail_fast`], [`Fleet::max_failures`]) or when asked through a
//! [`StopHandle`] (an interrupted command line): VMs not yet started are
//! not started, running commands are sent SIGTERM (where the server
//! allows it) and their channels closed, and the report still comes back,
//! with those VMs [`Outcome::Cancelled`].
//!
//! A run can also go in rolling batches ([`Fleet::batches`]), as
//! Ansible's `serial` does: a canary VM, then a few, then a share of the
//! fleet at a time, each batch starting when the previous one has ended,
//! and none after a batch that passed the failure limit.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(cfg: vmssh::SshConfig) {
//! use vmssh::fleet::{Fleet, Target};
//! use vmssh::provision::ProvisionDef;
//!
//! let steps = vec![ProvisionDef::inline("apt-get update")];
//! let targets = vec![
//!     Target::new("vm1", "10.0.0.5", 22, cfg.clone(), steps.clone()),
//!     Target::new("vm2", "10.0.0.6", 22, cfg.clone(), steps.clone()),
//! ];
//! let report = Fleet::new().concurrency(64).fail_fast(false).provision(targets).await;
//! println!("{}", report.summary());
//! assert!(report.failed().is_empty());
//! # }
//! ```
//!
//! Inside: this file holds [`Target`] and the [`Fleet`] that runs them
//! (connecting each VM, then provisioning's one step loop); `retries.rs` its connect
//! retries as [`Event::Retrying`] events; `stop.rs` the [`StopHandle`]
//! and a run's early stop; `batch.rs` the sizes of
//! rolling batches ([`Batch`]). The reports are data of
//! [`report`](crate::report).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::SshConfig;
use crate::error::Error;
use crate::provision::{Event, PlanEnd, PlanRun, ProvisionDef, Provisioner, Sink};
use crate::report::{Failure, StepReport};
use crate::secret::Secret;
use crate::session::{Route, Session};

mod batch;
mod retries;
mod stop;

pub use crate::report::{FleetReport, Outcome, VmReport};
pub use batch::{Batch, BatchParseError};
use stop::Halt;
pub use stop::StopHandle;

/// One VM to provision.
#[derive(Clone)]
#[must_use]
pub struct Target {
    name: String,
    host: String,
    port: u16,
    config: SshConfig,
    steps: Vec<ProvisionDef>,
    base_dir: PathBuf,
    jump: Option<Session>,
    sinks: Vec<Arc<dyn Sink>>,
    sudo_password: Option<Secret>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("config", &self.config)
            .field("steps", &self.steps)
            .field("base_dir", &self.base_dir)
            .field("jump", &self.jump)
            .field("sinks", &self.sinks.len())
            .field("sudo_password", &self.sudo_password)
            .finish()
    }
}

impl Target {
    /// A VM called `name`, reached at `host:port` with `config`, to run
    /// `steps` (resolved against the current directory unless
    /// [`base_dir`](Self::base_dir) says otherwise).
    pub fn new(
        name: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        config: SshConfig,
        steps: Vec<ProvisionDef>,
    ) -> Self {
        Target {
            name: name.into(),
            host: host.into(),
            port,
            config,
            steps,
            base_dir: PathBuf::from("."),
            jump: None,
            sinks: Vec::new(),
            sudo_password: None,
        }
    }

    /// Reaches the VM through `jump` (a bastion), as
    /// [`Session::connect_via`] does: `host:port` is the address as the
    /// jump sees it, and the host key is checked against it. Targets given
    /// clones of one session share its one connection.
    ///
    /// Each VM's session holds one of the jump's channels while it lives,
    /// so connect the jump with [`SshConfig::max_channels`] at least the
    /// fleet's [`concurrency`](Fleet::concurrency) (a VM waits for a free
    /// one otherwise). The bastion's sshd does not count these tunnels
    /// against `MaxSessions`, which limits sessions (shells, commands,
    /// subsystems), not `direct-tcpip` channels; with `AllowTcpForwarding`
    /// on, what bounds them there is the file descriptors of the
    /// connection's sshd process (one socket per tunnel, `ulimit -n`) and
    /// OpenSSH's fixed ceiling of 16384 channels per connection.
    ///
    /// Default: none (a direct TCP connection).
    pub fn via(mut self, jump: Session) -> Self {
        self.jump = Some(jump);
        self
    }

    /// Sets where the plan's scripts and files are.
    ///
    /// Default: the current directory.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// Adds a sink for this VM's events only (its own log, such as
    /// [`VmctlLogSink`](crate::provision::VmctlLogSink)), after the
    /// fleet's sinks.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Sets the password that the VM's `sudo` steps give sudo when it
    /// asks for one (see [`Provisioner::sudo_password`]). Targets given
    /// clones of one [`Secret`] share one copy of it.
    ///
    /// Default: none (`sudo -n`).
    pub fn sudo_password(mut self, password: impl Into<Secret>) -> Self {
        self.sudo_password = Some(password.into());
        self
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host to connect to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How to connect and log in.
    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// The steps to run.
    pub fn steps(&self) -> &[ProvisionDef] {
        &self.steps
    }
}

/// Provisions many VMs concurrently.
#[derive(Clone)]
#[must_use]
pub struct Fleet {
    concurrency: usize,
    connect_concurrency: usize,
    max_failures: Option<usize>,
    batches: Vec<Batch>,
    connect_deadline: Duration,
    reconnects: u32,
    log_dir: Option<PathBuf>,
    sinks: Vec<Arc<dyn Sink>>,
    stop: Option<StopHandle>,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("concurrency", &self.concurrency)
            .field("connect_concurrency", &self.connect_concurrency)
            .field("max_failures", &self.max_failures)
            .field("batches", &self.batches)
            .field("connect_deadline", &self.connect_deadline)
            .field("reconnects", &self.reconnects)
            .field("log_dir", &self.log_dir)
            .field("sinks", &self.sinks.len())
            .field("stop", &self.stop)
            .finish()
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    /// 64 VMs at once, 16 connects in flight, no fail-fast, 120 s to
    /// connect each VM, no sinks.
    pub fn new() -> Self {
        Fleet {
            concurrency: 64,
            connect_concurrency: 16,
            max_failures: None,
            batches: Vec::new(),
            connect_deadline: Duration::from_secs(120),
            reconnects: 0,
            log_dir: None,
            sinks: Vec::new(),
            stop: None,
        }
    }

    /// Sets how many VMs are worked on at once.
    ///
    /// Default: 64.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets how many connection attempts (handshake and authentication) are in
    /// flight at once across the fleet.
    ///
    /// Default: 16.
    pub fn connect_concurrency(mut self, n: usize) -> Self {
        self.connect_concurrency = n.max(1);
        self
    }

    /// Sets whether every other VM is cancelled as soon as one fails.
    ///
    /// Default: false (failures are isolated).
    ///
    /// `fail_fast(true)` is `max_failures(Some(0))`; `fail_fast(false)` is
    /// `max_failures(None)`.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.max_failures = on.then_some(0);
        self
    }

    /// Sets how many VMs may fail before the run stops: when one more
    /// fails, the VMs not yet started are not started and the running ones
    /// are stopped as by a [`StopHandle`], and reported
    /// [`Outcome::Cancelled`]. `None` lets every VM run whatever fails.
    ///
    /// Default: `None`.
    pub fn max_failures(mut self, limit: Option<usize>) -> Self {
        self.max_failures = limit;
        self
    }

    /// Runs the VMs in rolling batches, in target order, as Ansible's
    /// `serial` does: the first batch takes the first size, the next the
    /// second, and the last size repeats until every VM has had its batch
    /// ([`Batch::sizes`] says how many each). A batch starts when every VM
    /// of the previous one has ended (at most
    /// [`concurrency`](Self::concurrency) at once within a batch).
    ///
    /// The failure limit ([`max_failures`](Self::max_failures),
    /// [`fail_fast`](Self::fail_fast)) counts the failures of the whole
    /// run, as without batches: when it is passed, the rest of the running
    /// batch is stopped as usual, and the VMs of later batches are never
    /// connected to, reported [`Outcome::Cancelled`] with
    /// [`CancelReason::BatchFailed`](crate::report::CancelReason::BatchFailed)
    /// naming the batch. Each VM's report says its batch
    /// ([`VmReport::batch`]), and the sinks hear
    /// [`Event::BatchStarted`] before each batch.
    ///
    /// Default: none (every VM in one go). An empty list is the default.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(targets: Vec<vmssh::fleet::Target>) {
    /// use vmssh::fleet::{Batch, Fleet};
    ///
    /// // One canary, then 5, then 20 % of the fleet at a time; stop at
    /// // the first failure.
    /// let report = Fleet::new()
    ///     .batches([Batch::count(1), Batch::count(5), Batch::percent(20)])
    ///     .fail_fast(true)
    ///     .provision(targets)
    ///     .await;
    /// # }
    /// ```
    pub fn batches(mut self, batches: impl IntoIterator<Item = Batch>) -> Self {
        self.batches = batches.into_iter().collect();
        self
    }

    /// Sets the handle that stops this fleet's runs from outside (an
    /// interrupted command line, a deadline): see [`StopHandle`].
    ///
    /// Default: none.
    pub fn stop_handle(mut self, handle: StopHandle) -> Self {
        self.stop = Some(handle);
        self
    }

    /// Sets how long each VM may take to accept a session (a VM still booting),
    /// retrying with [`SshConfig::retry`](crate::SshConfig::retry).
    ///
    /// Default: 120 s.
    pub fn connect_deadline(mut self, d: Duration) -> Self {
        self.connect_deadline = d;
        self
    }

    /// Sets how many times a VM may be reconnected when its connection is found
    /// gone at the start of a step (a VM that rebooted between steps); the
    /// plan then resumes at that step. A connection lost while a step runs
    /// fails the VM: the step may have had effects. While reconnecting is
    /// allowed, no channel is opened ahead of a step (see
    /// [`provision`](crate::provision)'s round trips): a command sent on a
    /// channel opened before a reboot could not be told from one that ran.
    ///
    /// Default: 0.
    pub fn reconnects(mut self, n: u32) -> Self {
        self.reconnects = n;
        self
    }

    /// Sets the directory of the logs: each VM's output goes to
    /// `dir/<vm>/provision.log`; a later call replaces an earlier one.
    ///
    /// `<vm>` is the VM's name as one file name inside `dir`: bytes other
    /// than ASCII letters, digits, `-`, `_` and `.`, and a leading `.`,
    /// are written `%XX` (`../x` is `%2E.%2Fx`), so that no name leaves
    /// `dir` and different names never share a log.
    ///
    /// Default: none.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Adds a sink that receives every VM's events.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds a shared sink.
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Checks the targets as [`provision`](Self::provision) does, then
    /// provisions them.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateTarget`] when two targets have the same name
    /// (their reports and logs would mix); nothing is run then.
    ///
    /// # Cancel safety
    ///
    /// As [`provision`](Self::provision).
    pub async fn try_provision(&self, targets: Vec<Target>) -> Result<FleetReport, Error> {
        check_names(&targets)?;
        Ok(self.provision(targets).await)
    }

    /// Connects to and provisions every target; never fails as a whole:
    /// each VM's result is in the report.
    ///
    /// Target names must be unique: when two are the same, nothing is run
    /// and every VM is reported failed with the error
    /// ([`try_provision`](Self::try_provision) returns it instead).
    ///
    /// Must be called within a tokio runtime: each VM runs as a task on it.
    /// The future resolves once every VM's task has ended, so nothing runs
    /// on its behalf afterwards (a stopped VM's channels and session are
    /// closed before it ends).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts every VM's task, which closes their
    /// channels and sessions in the background, and there is no report. To
    /// stop a run and still get its report, use a [`StopHandle`].
    pub async fn provision(&self, targets: Vec<Target>) -> FleetReport {
        let start = Instant::now();
        if let Err(e) = check_names(&targets) {
            let failure = Failure::plan(&e);
            return FleetReport {
                vms: targets
                    .iter()
                    .map(|t| VmReport {
                        failure: Some(failure.clone()),
                        ..VmReport::new(&t.name, &t.host, t.port)
                    })
                    .collect(),
                wall: start.elapsed(),
                rerun_of: None,
            };
        }
        let halt = Halt::new(self.stop.as_ref());
        let vm_slots = Arc::new(Semaphore::new(self.concurrency));
        let connect_slots = Arc::new(Semaphore::new(self.connect_concurrency));
        let mut reports: Vec<Option<VmReport>> = vec![None; targets.len()];
        // What each VM got done, written by its task from the runner's
        // results and kept outside it, so that a VM whose task panicked
        // still reports its connect time and finished steps.
        let progress: Vec<Arc<Progress>> = targets.iter().map(|_| Arc::default()).collect();
        let rolling = !self.batches.is_empty();
        let sizes = match rolling {
            true => Batch::sizes(&self.batches, targets.len()),
            false => vec![targets.len()],
        };
        let mut failures = 0;
        let mut first = 0;
        for (b, &size) in sizes.iter().enumerate() {
            let batch = rolling.then_some(b + 1);
            let range = first..first + size;
            first += size;
            if rolling && !halt.token.is_cancelled() {
                let vms = targets[range.clone()].iter().map(|t| t.name.clone());
                let start = Event::BatchStarted {
                    batch: b + 1,
                    batches: sizes.len(),
                    vms: vms.collect(),
                };
                crate::provision::emit_to(&self.sinks, &start).await;
            }
            // Dropping a JoinSet aborts its tasks: cancelling this future
            // cancels every VM.
            let mut tasks = JoinSet::new();
            let mut ids = std::collections::HashMap::new();
            for index in range {
                let target = targets[index].clone();
                let fleet = self.clone();
                let vm_slots = vm_slots.clone();
                let connect_slots = connect_slots.clone();
                let progress = progress[index].clone();
                let halt = halt.clone();
                let handle = tasks.spawn(async move {
                    let slot = tokio::select! {
                        biased;
                        () = halt.token.cancelled() => None,
                        slot = vm_slots.acquire_owned() => Some(slot),
                    };
                    let report = match slot {
                        Some(_slot) => {
                            fleet
                                .run_one(target, &connect_slots, &progress, &halt, batch)
                                .await
                        }
                        None => fleet.not_started(&target, &halt, batch).await,
                    };
                    (index, report)
                });
                ids.insert(handle.id(), index);
            }
            while let Some(joined) = tasks.join_next_with_id().await {
                let (index, report) = match joined {
                    Ok((_, done)) => done,
                    // Tasks are never aborted here: this one panicked.
                    Err(e) => {
                        let Some(&index) = ids.get(&e.id()) else {
                            continue;
                        };
                        let t = &targets[index];
                        let (connect, steps) = progress[index].take();
                        let report = VmReport {
                            failure: Some(Failure::Panicked),
                            connect,
                            steps,
                            total: start.elapsed(),
                            batch,
                            ..VmReport::new(&t.name, &t.host, t.port)
                        };
                        // The task is gone: tell the sinks (and the VM's log)
                        // how it ended.
                        self.provisioner(t).emit(finished(&report)).await;
                        (index, report)
                    }
                };
                if report.outcome == Outcome::Failed {
                    failures += 1;
                    if let Some(limit) = self.max_failures
                        && failures > limit
                    {
                        halt.too_many_failures(limit, batch);
                    }
                }
                reports[index] = Some(report);
            }
        }
        let report = FleetReport {
            vms: reports.into_iter().flatten().collect(),
            wall: start.elapsed(),
            rerun_of: None,
        };
        let end = Event::Finished {
            succeeded: report.succeeded().into_iter().map(String::from).collect(),
            failed: report.failed().into_iter().map(String::from).collect(),
            cancelled: report.cancelled().into_iter().map(String::from).collect(),
            stopped: halt.stopped(),
            wall: report.wall,
        };
        crate::provision::emit_to(&self.sinks, &end).await;
        report
    }

    /// The provisioner of one VM: the fleet's sinks and its log.
    fn provisioner(&self, target: &Target) -> Provisioner {
        let mut p = Provisioner::new(target.name.clone()).base_dir(target.base_dir.clone());
        for s in &self.sinks {
            p = p.shared_sink(s.clone());
        }
        if let Some(dir) = &self.log_dir {
            p = p.log_dir(dir.join(log_name(&target.name)));
        }
        for s in &target.sinks {
            p = p.shared_sink(s.clone());
        }
        if let Some(password) = &target.sudo_password {
            p = p.sudo_password(password.clone());
        }
        p
    }

    /// The report of a VM (of `batch`, in a rolling run) the run stopped
    /// before it started.
    async fn not_started(&self, target: &Target, halt: &Halt, batch: Option<usize>) -> VmReport {
        let report = VmReport {
            outcome: Outcome::Cancelled,
            failure: Some(Failure::Cancelled {
                reason: halt.reason_for(batch),
                started: false,
                step: None,
            }),
            batch,
            ..VmReport::new(&target.name, &target.host, target.port)
        };
        self.provisioner(target).emit(finished(&report)).await;
        report
    }

    async fn run_one(
        &self,
        target: Target,
        connect_slots: &Semaphore,
        progress: &Progress,
        halt: &Halt,
        batch: Option<usize>,
    ) -> VmReport {
        let start = Instant::now();
        let mut report = VmReport::new(&target.name, &target.host, target.port);
        report.batch = batch;
        let p = self.provisioner(&target);
        let result = self
            .connect_and_run(&target, &p, connect_slots, progress, halt)
            .await;
        (report.connect, report.steps) = progress.take();
        match result {
            Ok(()) => report.outcome = Outcome::Succeeded,
            Err(Stop::Connect(e)) => {
                report.failure = Some(Failure::connect(&e));
                // An error the policy retries ends connecting only at the deadline.
                if crate::retry::retried(&target.config.retry, &e) {
                    report.deadline_passed = Some(self.connect_deadline);
                }
            }
            Err(Stop::Plan(e)) => {
                report.failure = Some(Failure::plan(&e));
                report.stderr_tail = crate::report::stderr_tail(&e);
                report.stdout_tail = crate::report::stdout_tail(&e);
            }
            Err(Stop::Stopped { step }) => {
                report.outcome = Outcome::Cancelled;
                report.failure = Some(Failure::Cancelled {
                    reason: halt.reason(),
                    started: true,
                    step,
                });
            }
        }
        report.total = start.elapsed();
        p.emit(finished(&report)).await;
        report
    }

    /// Connects (and reconnects when allowed) and runs the plan through
    /// provisioning's step loop, recording each step's report as it ends,
    /// until the plan ends or the run is stopped.
    async fn connect_and_run(
        &self,
        target: &Target,
        p: &Provisioner,
        connect_slots: &Semaphore,
        progress: &Progress,
        halt: &Halt,
    ) -> Result<(), Stop> {
        p.check_inputs(&target.steps).map_err(Stop::Plan)?;
        let mut next = 0;
        let mut reconnects = 0;
        loop {
            let vm: Arc<str> = Arc::from(target.name.as_str());
            p.emit(Event::Connecting { vm: vm.clone() }).await;
            let started = Instant::now();
            let route = match &target.jump {
                Some(jump) => Route::Via(jump),
                None => Route::Direct,
            };
            let (config, mut retries) = retries::observed(vm.clone(), &target.config);
            // Closed as soon as its plan ends: a kept SFTP channel would
            // only be parked, with its timer, to be cleared by that close.
            let config = config.sftp_idle_timeout(Duration::ZERO);
            let connect = Session::connect_with_retry_gated(
                route,
                &target.host,
                target.port,
                &config,
                self.connect_deadline,
                Some(connect_slots),
            );
            tokio::pin!(connect);
            let session = loop {
                tokio::select! {
                    biased;
                    () = halt.token.cancelled() => return Err(Stop::Stopped { step: None }),
                    Some(retrying) = retries.recv() => p.emit(retrying).await,
                    session = &mut connect => break session.map_err(Stop::Connect)?,
                }
            };
            let duration = started.elapsed();
            progress.connected(duration);
            p.emit(Event::Connected { vm, duration }).await;
            let run = PlanRun {
                steps: &target.steps,
                from: next,
                stop: Some(&halt.token),
                reconnectable: reconnects < self.reconnects,
            };
            let end = p.run_plan(&session, run, |r| progress.finished(r)).await;
            session.close().await;
            match end {
                PlanEnd::Done => return Ok(()),
                PlanEnd::Failed(e) => return Err(Stop::Plan(e)),
                PlanEnd::Stopped { step } => return Err(Stop::Stopped { step: Some(step) }),
                PlanEnd::Lost { next: n, .. } => {
                    // Nothing of step n ran: run it on a new connection.
                    tracing::info!(vm = %target.name, step = n + 1, "connection gone before the step; reconnecting");
                    reconnects += 1;
                    next = n;
                }
            }
        }
    }
}

/// The event that tells the sinks how a VM's run ended.
fn finished(report: &VmReport) -> Event {
    Event::VmFinished {
        vm: Arc::from(report.name.as_str()),
        ok: report.outcome == Outcome::Succeeded,
        failure: report.failure.clone(),
        stderr_tail: report.stderr_tail.clone(),
        stdout_tail: report.stdout_tail.clone(),
        deadline_passed: report.deadline_passed,
        duration: report.total,
    }
}

/// A VM's connect time and finished steps, from the runner's results,
/// kept outside the VM's task so that a VM whose task panicked still
/// reports them.
#[derive(Default)]
struct Progress {
    state: std::sync::Mutex<(Option<Duration>, Vec<StepReport>)>,
}

impl Progress {
    fn connected(&self, duration: Duration) {
        if let Ok(mut s) = self.state.lock() {
            *s.0.get_or_insert(Duration::ZERO) += duration;
        }
    }

    fn finished(&self, report: StepReport) {
        if let Ok(mut s) = self.state.lock() {
            s.1.push(report);
        }
    }

    fn take(&self) -> (Option<Duration>, Vec<StepReport>) {
        match self.state.lock() {
            Ok(mut s) => (s.0, std::mem::take(&mut s.1)),
            Err(_) => (None, Vec::new()),
        }
    }
}

/// Why a VM's run ended early: it could not be reached, its plan failed,
/// or the run was stopped (during this 1-based step, if one was running).
enum Stop {
    Connect(Error),
    Plan(Error),
    Stopped { step: Option<usize> },
}

/// Refuses two targets with the same name.
fn check_names(targets: &[Target]) -> Result<(), Error> {
    let mut seen = std::collections::HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        if let Some(first) = seen.insert(t.name.as_str(), i) {
            return Err(Error::DuplicateTarget {
                name: t.name.clone(),
                first: first + 1,
                second: i + 1,
            });
        }
    }
    Ok(())
}

/// A VM name as one file name: see [`Fleet::log_dir`]. Injective, so
/// distinct names stay distinct files; never empty, `.` or `..`.
fn log_name(name: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.is_empty() {
        // No encoded name is a bare `%`.
        out.push('%');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_stay_inside_and_apart() {
        assert_eq!(log_name("vm1"), "vm1");
        assert_eq!(log_name("web.example-1_a"), "web.example-1_a");
        assert_eq!(log_name("../escaped"), "%2E.%2Fescaped");
        assert_eq!(log_name(".."), "%2E.");
        assert_eq!(log_name("."), "%2E");
        assert_eq!(log_name(""), "%");
        assert_eq!(log_name("/etc/passwd"), "%2Fetc%2Fpasswd");
        assert_eq!(log_name("a b%"), "a%20b%25");
        assert_eq!(log_name("é"), "%C3%A9");
        let names = ["a/b", "a_b", "a%2Fb", "a%b", "%", ""];
        let encoded: std::collections::HashSet<_> = names.iter().map(|n| log_name(n)).collect();
        assert_eq!(encoded.len(), names.len(), "{encoded:?}");
        for n in names {
            let p = std::path::Path::new(&log_name(n)).components().count();
            assert_eq!(p, 1, "{n:?}");
        }
    }
}
