//! Fleets against real sshd instances: 40 VMs at once with one failure
//! isolated, fail-fast cancelling the rest, reports that round-trip
//! through JSON and merge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

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
    assert_eq!(bad.failed_step, Some(2));
    let error = bad.error.as_deref().unwrap();
    assert!(
        error.contains("exit status 28") && error.contains("disk full"),
        "{error}"
    );
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
            assert!(v.error.as_deref().unwrap().contains("fail_fast"));
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
        down.error.as_deref().unwrap().starts_with("connect failed"),
        "{:?}",
        down.error
    );
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
        assert_eq!(v.steps.len(), 1, "{}: {:?}", v.name, v.steps);
        assert!(v.steps[0].ok && v.steps[0].description == "inline: echo one");
    }
}
