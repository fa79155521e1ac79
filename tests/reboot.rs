//! A VM that "reboots" between two steps: its connection dies after step 1
//! finished. Without reconnects the next step fails clearly; with
//! `Fleet::reconnects` the fleet reconnects and resumes at that step. A VM
//! that reboots while a step runs fails that step, reconnects or not: the
//! step has started and is never run again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use vmssh::fleet::{Fleet, Target};
use vmssh::provision::{Event, ProvisionDef, Sink};

/// Kills the server's per-connection processes once step 1 has finished,
/// then waits for the client to notice.
struct RebootAfterStep1 {
    server: Arc<support::Server>,
}

impl Sink for RebootAfterStep1 {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Event::StepFinished { step: 1, .. } = event {
                support::signal_pids("KILL", &self.server.connection_pids());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    }
}

fn plan(dir: &std::path::Path) -> Vec<ProvisionDef> {
    let d = dir.display();
    vec![
        ProvisionDef::inline(format!("echo ran >> '{d}/step1'")),
        ProvisionDef::inline(format!("echo ran >> '{d}/step2'")),
        ProvisionDef::inline(format!("echo ran >> '{d}/step3'")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn next_step_fails_clearly_without_reconnects() {
    let srv = support::sshd();
    let srv = Arc::new(srv);
    let guest = tempfile::tempdir().unwrap();
    let target = Target::new(
        "rebooter",
        support::HOST,
        srv.port(),
        srv.config(),
        plan(guest.path()),
    );
    let report = Fleet::new()
        .sink(RebootAfterStep1 {
            server: srv.clone(),
        })
        .provision(vec![target])
        .await;
    let vm = report.get("rebooter").unwrap();
    assert_eq!(report.failed(), ["rebooter"]);
    assert_eq!(vm.failed_step(), Some(2));
    let error = vm.failure.as_ref().unwrap().to_string();
    assert!(
        error.contains("connection was lost before the step started"),
        "{error}"
    );
    assert!(guest.path().join("step1").exists());
    assert!(!guest.path().join("step2").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn fleet_reconnects_and_resumes_when_asked() {
    let srv = support::sshd();
    let srv = Arc::new(srv);
    let guest = tempfile::tempdir().unwrap();
    let target = Target::new(
        "rebooter",
        support::HOST,
        srv.port(),
        srv.config(),
        plan(guest.path()),
    );
    let report = Fleet::new()
        .reconnects(1)
        .sink(RebootAfterStep1 {
            server: srv.clone(),
        })
        .provision(vec![target])
        .await;
    assert!(report.all_succeeded(), "{}", report.summary());
    let vm = report.get("rebooter").unwrap();
    assert_eq!(
        vm.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for step in ["step1", "step2", "step3"] {
        // Each step ran exactly once: nothing was repeated on reconnect.
        assert_eq!(
            std::fs::read_to_string(guest.path().join(step)).unwrap(),
            "ran\n",
            "{step}"
        );
    }
}

/// Kills the server's per-connection processes as soon as step 2's
/// command has printed something: the exec is in flight.
struct RebootDuringStep2 {
    server: Arc<support::Server>,
    done: std::sync::atomic::AtomicBool,
}

impl Sink for RebootDuringStep2 {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Event::Output { step: 2, .. } = event
                && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                support::signal_pids("KILL", &self.server.connection_pids());
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn a_step_cut_while_running_is_not_run_again() {
    let srv = support::sshd();
    let srv = Arc::new(srv);
    let guest = tempfile::tempdir().unwrap();
    let d = guest.path().display();
    let steps = vec![
        ProvisionDef::inline(format!("echo ran >> '{d}/step1'")),
        // Keeps writing until its channel is gone (then SIGPIPE ends it).
        ProvisionDef::inline(format!(
            "echo ran >> '{d}/step2'; while true; do echo working; sleep 0.1; done"
        )),
        ProvisionDef::inline(format!("echo ran >> '{d}/step3'")),
    ];
    let target = Target::new("rebooter", support::HOST, srv.port(), srv.config(), steps);
    let report = Fleet::new()
        .reconnects(3)
        .sink(RebootDuringStep2 {
            server: srv.clone(),
            done: Default::default(),
        })
        .provision(vec![target])
        .await;
    assert_eq!(report.failed(), ["rebooter"], "{}", report.summary());
    let vm = report.get("rebooter").unwrap();
    assert_eq!(vm.failed_step(), Some(2), "{}", report.summary());
    let error = vm.failure.as_ref().unwrap().to_string();
    assert!(error.contains("lost"), "{error}");
    assert_eq!(
        vm.steps.iter().map(|s| (s.step, s.ok)).collect::<Vec<_>>(),
        [(1, true), (2, false)]
    );
    assert_eq!(
        std::fs::read_to_string(guest.path().join("step2")).unwrap(),
        "ran\n",
        "step 2 was run again"
    );
    assert!(!guest.path().join("step3").exists());
}
