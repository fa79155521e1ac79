//! Fleets against real sshd instances: 40 VMs at once with one failure
//! isolated, fail-fast cancelling the rest, reports that round-trip
//! through JSON and merge, a fleet behind a bastion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use vmssh::fleet::{Fleet, FleetReport, Outcome, Target};
use vmssh::provision::{Event, ProvisionDef, Sink};

/// Four sshd instances stand in for forty VMs (ten each).
fn servers() -> Vec<support::Server> {
    (0..4).map(|_| support::sshd()).collect()
}

fn targets(
    servers: &[support::Server],
    n: usize,
    steps: impl Fn(usize) -> Vec<ProvisionDef>,
) -> Vec<Target> {
    (0..n)
        .map(|i| {
            let srv = &servers[i % servers.len()];
            Target::new(
                format!("vm{i:02}"),
                support::HOST,
                srv.port(),
                srv.config(),
                steps(i),
            )
        })
        .collect()
}

struct Counter(Arc<AtomicUsize>);

impl Sink for Counter {
    fn event<'a>(&'a self, _event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn forty_vms_with_one_failure_isolated() {
    let servers = servers();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let plan = targets(&servers, 40, |i| {
        let mut steps = vec![ProvisionDef::inline(format!(
            "echo vm {i} up; touch '{g}/step1-{i}'"
        ))];
        if i == 17 {
            steps.push(ProvisionDef::inline("echo 'disk full' >&2; exit 28"));
        } else {
            steps.push(ProvisionDef::inline(format!("touch '{g}/step2-{i}'")));
        }
        steps.push(ProvisionDef::inline(format!("touch '{g}/step3-{i}'")));
        steps
    });
    let logs = tempfile::tempdir().unwrap();
    let report = Fleet::new()
        .concurrency(40)
        .log_dir(logs.path())
        .provision(plan)
        .await;
    assert_eq!(report.vms.len(), 40);
    assert_eq!(report.failed(), ["vm17"], "{}", report.summary());
    assert_eq!(report.succeeded().len(), 39);
    let bad = report.get("vm17").unwrap();
    assert_eq!(bad.failed_step(), Some(2));
    let error = bad.failure.as_ref().unwrap().to_string();
    assert!(error.contains("exit status 28"), "{error}");
    assert_eq!(bad.stderr_tail.as_deref(), Some("disk full"), "{error}");
    assert!(!guest.path().join("step3-17").exists());
    for i in (0..40).filter(|i| *i != 17) {
        assert!(
            guest.path().join(format!("step3-{i}")).exists(),
            "vm{i:02} did not finish"
        );
        let v = report.get(&format!("vm{i:02}")).unwrap();
        assert_eq!(v.steps.len(), 3);
        assert!(v.connect.is_some());
    }
    let log = std::fs::read_to_string(logs.path().join("vm05/provision.log")).unwrap();
    assert!(log.contains("vm 5 up"), "{log}");
    let summary = report.summary();
    assert!(
        summary.contains("vm17") && summary.contains("FAILED"),
        "{summary}"
    );
    assert!(summary.ends_with(&format!(
        "39 succeeded, 1 failed, 0 cancelled in {:.2}s",
        report.wall.as_secs_f64()
    )));
}

/// Twelve VMs (three per sshd) behind one bastion: one connection to the
/// bastion carries them all, at once. The bastion allows one session
/// (`MaxSessions 1`): tunnels are not sessions, so it does not limit them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn fleet_behind_a_bastion() {
    // DEBUG1 logs each direct-tcpip request with its target.
    let bastion_srv = support::Sshd::builder()
        .max_sessions(1)
        .config_line("LogLevel DEBUG1")
        .start();
    let servers = servers();
    let bastion = bastion_srv
        .connect_with(&bastion_srv.config().max_channels(12))
        .await;
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let plan: Vec<Target> = targets(&servers, 12, |i| {
        vec![
            ProvisionDef::inline(format!("echo vm {i} behind the bastion")),
            ProvisionDef::inline(format!("touch '{g}/done-{i}'")),
        ]
    })
    .into_iter()
    .map(|t| t.via(bastion.clone()))
    .collect();
    let report = Fleet::new().concurrency(12).provision(plan).await;
    assert!(report.all_succeeded(), "{}", report.summary());
    for i in 0..12 {
        assert!(guest.path().join(format!("done-{i}")).exists(), "vm{i:02}");
    }
    let connections = |srv: &support::Server| {
        srv.log()
            .lines()
            .filter(|l| l.contains("Connection from"))
            .count()
    };
    assert_eq!(connections(&bastion_srv), 1, "{}", bastion_srv.log());
    let bastion_log = bastion_srv.log();
    for srv in &servers {
        assert!(connections(srv) >= 3, "{}", srv.log());
        let tunnels = bastion_log
            .lines()
            .filter(|l| {
                l.contains("server_request_direct_tcpip")
                    && l.ends_with(&format!("target {} port {}", support::HOST, srv.port()))
            })
            .count();
        assert!(tunnels >= 3, "port {}: {bastion_log}", srv.port());
    }
    // The bastion's one session slot is still free for a command.
    assert!(bastion.exec("true").await.unwrap().status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn fail_fast_cancels_the_rest() {
    let servers = servers();
    let guest = tempfile::tempdir().unwrap();
    let g = guest.path().display().to_string();
    let plan = targets(&servers, 40, |i| {
        if i == 3 {
            vec![ProvisionDef::inline("exit 1")]
        } else {
            vec![
                ProvisionDef::inline("sleep 3"),
                ProvisionDef::inline(format!("touch '{g}/late-{i}'")),
            ]
        }
    });
    let events = Arc::new(AtomicUsize::new(0));
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        Fleet::new()
            .concurrency(40)
            .fail_fast(true)
            .sink(Counter(events.clone()))
            .provision(plan),
    )
    .await
    .expect("fail-fast fleet hung");
    assert_eq!(report.failed(), ["vm03"], "{}", report.summary());
    assert!(!report.cancelled().is_empty(), "{}", report.summary());
    for v in &report.vms {
        if v.outcome == Outcome::Cancelled {
            assert!(
                v.failure
                    .as_ref()
                    .unwrap()
                    .to_string()
                    .contains("fail_fast")
            );
        }
    }
    // Cancelled VMs do nothing more: no later step runs and no event comes.
    let seen = events.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        events.load(Ordering::SeqCst),
        seen,
        "events after the fleet returned"
    );
    let late: Vec<_> = std::fs::read_dir(guest.path()).unwrap().collect();
    let succeeded = report.succeeded().len();
    assert_eq!(late.len(), succeeded, "steps ran for cancelled VMs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn unreachable_vm_is_reported_not_fatal() {
    let srv = support::sshd();
    let dead_port = support::free_port();
    let plan = vec![
        Target::new(
            "up",
            support::HOST,
            srv.port(),
            srv.config(),
            vec![ProvisionDef::inline("true")],
        ),
        Target::new(
            "down",
            support::HOST,
            dead_port,
            srv.config(),
            vec![ProvisionDef::inline("true")],
        ),
    ];
    let report = Fleet::new()
        .connect_deadline(Duration::from_millis(500))
        .provision(plan)
        .await;
    assert_eq!(report.succeeded(), ["up"]);
    assert_eq!(report.failed(), ["down"]);
    let down = report.get("down").unwrap();
    assert!(down.connect.is_none());
    assert!(
        down.failure
            .as_ref()
            .unwrap()
            .to_string()
            .starts_with("connect failed"),
        "{:?}",
        down.failure
    );
}

/// Keeps every event.
#[derive(Default)]
struct Events(std::sync::Mutex<Vec<Event>>);

impl Sink for Events {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push(event.clone());
        Box::pin(std::future::ready(()))
    }
}

/// A VM that is not up: the sinks hear of its retries (the first at once,
/// then no more within 5 s), the target's own observer of each, and the
/// failure says the deadline passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_reach_the_sinks_and_the_targets_observer() {
    let observed = Arc::new(AtomicUsize::new(0));
    let seen = observed.clone();
    let cfg = vmssh::SshConfig::new("root")
        .auth(vmssh::Auth::password("unused"))
        .retry(vmssh::RetryPolicy::default().on_retry(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
    let target = Target::new(
        "down",
        support::HOST,
        support::free_port(),
        cfg,
        vec![ProvisionDef::inline("true")],
    );
    let events = Arc::new(Events::default());
    let deadline = Duration::from_millis(1500);
    let report = Fleet::new()
        .connect_deadline(deadline)
        .shared_sink(events.clone())
        .provision(vec![target])
        .await;
    let events = events.0.lock().unwrap().clone();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Connecting { .. } => "connecting",
            Event::Retrying { .. } => "retrying",
            Event::VmFinished { .. } => "vm_finished",
            Event::Finished { .. } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["connecting", "retrying", "vm_finished", "finished"],
        "{events:#?}"
    );
    let Event::Retrying {
        vm,
        reason,
        login_refused,
        attempt,
        deadline: d,
        ..
    } = &events[1]
    else {
        unreachable!()
    };
    assert_eq!(
        (&**vm, reason.as_str(), *login_refused, *attempt, *d),
        ("down", "connection refused", false, 1, deadline)
    );
    // Retried every 250 ms at most: the target's observer saw each.
    assert!(observed.load(Ordering::SeqCst) > 1);
    assert!(matches!(
        &events[2],
        Event::VmFinished { deadline_passed: Some(d), .. } if *d == deadline
    ));
    assert_eq!(report.get("down").unwrap().deadline_passed, Some(deadline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn report_round_trips_and_merges() {
    let srv = support::sshd();
    let run = |names: &[&str]| {
        let plan: Vec<Target> = names
            .iter()
            .map(|n| {
                Target::new(
                    *n,
                    support::HOST,
                    srv.port(),
                    srv.config(),
                    vec![ProvisionDef::inline("echo hi")],
                )
            })
            .collect();
        async move { Fleet::new().provision(plan).await }
    };
    let mut a = run(&["a1", "a2"]).await;
    let b = run(&["b1"]).await;
    let json = serde_json::to_string(&b).unwrap();
    let back: FleetReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, b);
    a.merge(back);
    assert_eq!(a.succeeded(), ["a1", "a2", "b1"]);
    assert!(a.all_succeeded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn cancelled_vms_keep_their_progress() {
    let servers = servers();
    let plan = targets(&servers, 10, |i| {
        if i == 0 {
            vec![ProvisionDef::inline("sleep 2.5; exit 1")]
        } else {
            vec![
                ProvisionDef::inline("echo one"),
                ProvisionDef::inline("sleep 30"),
            ]
        }
    });
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        Fleet::new().fail_fast(true).provision(plan),
    )
    .await
    .expect("fail-fast fleet hung");
    assert_eq!(report.failed(), ["vm00"], "{}", report.summary());
    assert_eq!(report.cancelled().len(), 9, "{}", report.summary());
    for v in report
        .vms
        .iter()
        .filter(|v| v.outcome == Outcome::Cancelled)
    {
        assert!(v.connect.is_some(), "{}: connect time lost", v.name);
        // The finished step, then the one stopped while it ran.
        assert_eq!(v.steps.len(), 2, "{}: {:?}", v.name, v.steps);
        assert!(v.steps[0].ok && v.steps[0].description == "inline: echo one");
        assert!(!v.steps[1].ok && v.steps[1].description == "inline: sleep 30");
        assert_eq!(
            v.failure.as_ref().map(ToString::to_string).as_deref(),
            Some("cancelled during step 2: another VM failed (fail_fast)")
        );
    }
}

/// Stops the run once `after` VMs have started their second step.
struct StopWhenRunning {
    stop: vmssh::fleet::StopHandle,
    after: usize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl Sink for StopWhenRunning {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match event {
                Event::StepStarted { step: 2, .. }
                    if self.started.fetch_add(1, Ordering::SeqCst) + 1 == self.after =>
                {
                    self.stop.stop();
                }
                Event::VmFinished { .. } => {
                    self.finished.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
async fn stop_handle_ends_the_run_with_its_report() {
    // dropbear delivers signal requests (OpenSSH refuses them for root):
    // the stopped commands must be gone, not left running.
    let srv = support::dropbear();
    let stop = vmssh::fleet::StopHandle::new();
    let watcher = Arc::new(StopWhenRunning {
        stop: stop.clone(),
        after: 3,
        started: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    });
    let plan = targets(std::slice::from_ref(&srv), 6, |_| {
        vec![
            ProvisionDef::inline("echo one"),
            ProvisionDef::inline("sleep 600"),
        ]
    });
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        Fleet::new()
            .concurrency(3)
            .stop_handle(stop.clone())
            .shared_sink(watcher.clone())
            .provision(plan),
    )
    .await
    .expect("stopped fleet hung");
    assert!(stop.is_stopped());
    assert_eq!(report.vms.len(), 6);
    assert_eq!(report.cancelled().len(), 6, "{}", report.summary());
    assert_eq!(watcher.finished.load(Ordering::SeqCst), 6);
    let (ran, waiting): (Vec<_>, Vec<_>) = report.vms.iter().partition(|v| v.connect.is_some());
    assert_eq!(ran.len(), 3, "{}", report.summary());
    for v in ran {
        let error = v.failure.as_ref().unwrap().to_string();
        assert_eq!(error, "cancelled during step 2: the run was stopped");
        assert_eq!(v.steps.len(), 2, "{}: {:?}", v.name, v.steps);
        assert!(v.steps[0].ok);
        assert!(!v.steps[1].ok && v.steps[1].status.is_none());
    }
    for v in waiting {
        assert_eq!(
            v.failure.as_ref().map(ToString::to_string).as_deref(),
            Some("cancelled before it started: the run was stopped")
        );
        assert!(v.steps.is_empty());
    }
    assert!(
        srv.wait_gone("sleep", Duration::from_secs(10)).await,
        "a stopped command is still running"
    );

    // A stopped handle starts nothing.
    let again = Fleet::new()
        .stop_handle(stop)
        .provision(targets(std::slice::from_ref(&srv), 2, |_| {
            vec![ProvisionDef::inline("true")]
        }))
        .await;
    assert_eq!(again.cancelled().len(), 2);
    assert!(again.vms.iter().all(|v| v.connect.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn max_failures_stops_after_the_limit() {
    let servers = servers();
    let steps = |i: usize| {
        if i < 2 {
            vec![ProvisionDef::inline("exit 1")]
        } else {
            vec![ProvisionDef::inline("sleep 1")]
        }
    };
    // Two failures within a limit of two: everyone else finishes.
    let within = Fleet::new()
        .max_failures(Some(2))
        .provision(targets(&servers, 6, steps))
        .await;
    assert_eq!(within.failed(), ["vm00", "vm01"], "{}", within.summary());
    assert_eq!(within.succeeded().len(), 4, "{}", within.summary());

    // Over a limit of one: the sleepers are stopped.
    let slow = |i: usize| {
        if i < 2 {
            vec![ProvisionDef::inline("exit 1")]
        } else {
            vec![ProvisionDef::inline("sleep 600")]
        }
    };
    let over = tokio::time::timeout(
        Duration::from_secs(60),
        Fleet::new()
            .max_failures(Some(1))
            .provision(targets(&servers, 6, slow)),
    )
    .await
    .expect("fleet over its failure limit hung");
    assert_eq!(over.failed(), ["vm00", "vm01"], "{}", over.summary());
    assert_eq!(over.cancelled().len(), 4, "{}", over.summary());
    for name in over.cancelled() {
        let error = over
            .get(name)
            .unwrap()
            .failure
            .as_ref()
            .unwrap()
            .to_string();
        assert!(
            error.ends_with("more than 1 VMs failed (max_failures)"),
            "{error}"
        );
    }
}

/// A VM name is one file name inside `log_dir`, whatever it holds; two
/// targets with one name are refused before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn log_names_stay_inside_log_dir_and_names_are_unique() {
    let srv = support::sshd();
    let top = tempfile::tempdir().unwrap();
    let logs = top.path().join("logs");
    let guest = tempfile::tempdir().unwrap();
    let d = guest.path().display();
    let target = |name: &str| {
        Target::new(
            name,
            support::HOST,
            srv.port(),
            srv.config(),
            vec![ProvisionDef::inline(format!("echo ran >> '{d}/ran'"))],
        )
    };
    let report = Fleet::new()
        .log_dir(&logs)
        .provision(vec![target("../escaped"), target(".."), target("a/b")])
        .await;
    assert!(report.all_succeeded(), "{}", report.summary());
    let mut inside: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["%2E.", "%2E.%2Fescaped", "a%2Fb"]);
    for name in &inside {
        assert!(logs.join(name).join("provision.log").is_file(), "{name}");
    }
    // Nothing was written beside `logs`.
    let beside: Vec<_> = std::fs::read_dir(top.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["logs"]);

    let twice = vec![target("vm1"), target("vm2"), target("vm1")];
    let err = Fleet::new().try_provision(twice.clone()).await.unwrap_err();
    match &err {
        vmssh::Error::DuplicateTarget {
            name,
            first,
            second,
        } => assert_eq!((name.as_str(), *first, *second), ("vm1", 1, 3)),
        other => panic!("expected DuplicateTarget, got {other:?}"),
    }
    let report = Fleet::new().provision(twice).await;
    assert_eq!(report.failed(), ["vm1", "vm2", "vm1"]);
    assert!(
        report
            .vms
            .iter()
            .all(|v| v.failure.as_ref().map(ToString::to_string) == Some(err.to_string()))
    );
    // Only the first run's three VMs ran.
    assert_eq!(
        std::fs::read_to_string(guest.path().join("ran")).unwrap(),
        "ran\nran\nran\n"
    );
}
