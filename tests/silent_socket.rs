//! A connection the server accepts and then leaves silent (QEMU's
//! user-mode network before the guest's sshd is up) must not hold a
//! retrying connect back, whatever the connect timeout: another connection
//! starts beside it and the first one the server speaks on is used. Under a
//! fleet, those extra connections count against the connects-in-flight cap.
//! A plain connect makes one connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use vmssh::fleet::{Fleet, Target};
use vmssh::provision::ProvisionDef;
use vmssh::{Session, SshConfig};
use vmssh_testkit::TestServer;

use support::silent::SilentFirst;

/// A guard against hangs only: a client stuck on the silent connection
/// would wait for its ten-minute connect timeout.
const HANG: Duration = Duration::from_secs(120);

fn patient(server: &TestServer) -> SshConfig {
    server.config().connect_timeout(Duration::from_secs(600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_uses_the_connection_that_answers() {
    let server = TestServer::start().await.unwrap();
    let front = SilentFirst::start(1, server.port()).await;
    let sess = tokio::time::timeout(
        HANG,
        Session::connect_with_retry(support::HOST, front.port(), &patient(&server), HANG),
    )
    .await
    .expect("connect waited on the silent connection")
    .unwrap();
    assert_eq!(sess.exec("echo hi").await.unwrap().stdout, b"hi\n");
    assert_eq!(
        front.accepted(),
        2,
        "one silent connection, one that answered"
    );
    // The silent one is closed once the other has answered.
    tokio::time::timeout(HANG, front.wait_silent_closed(1))
        .await
        .expect("the silent connection was left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_connect_makes_one_connection() {
    let server = TestServer::start().await.unwrap();
    let front = SilentFirst::start(1, server.port()).await;
    let cfg = server.config().connect_timeout(Duration::from_secs(1));
    let err = Session::connect(support::HOST, front.port(), &cfg)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err} ({err:?})");
    assert_eq!(front.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_retry_passes_several_silent_connections() {
    let server = TestServer::start().await.unwrap();
    let front = SilentFirst::start(3, server.port()).await;
    let sess = tokio::time::timeout(
        HANG,
        Session::connect_with_retry(support::HOST, front.port(), &patient(&server), HANG),
    )
    .await
    .expect("connect waited on a silent connection")
    .unwrap();
    assert!(sess.exec("true").await.unwrap().status.success());
    assert_eq!(front.accepted(), 4);
    assert!(
        front.max_open() <= 4,
        "at most parallel_connects open at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_at_a_time_when_asked() {
    // Without parallel connections the silent one holds the attempt until
    // its timeout; the retry then gets through.
    let server = TestServer::start().await.unwrap();
    let front = SilentFirst::start(1, server.port()).await;
    let cfg = server
        .config()
        .parallel_connects(1)
        .connect_timeout(Duration::from_secs(1));
    let sess = tokio::time::timeout(
        HANG,
        Session::connect_with_retry(support::HOST, front.port(), &cfg, HANG),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(sess.exec("true").await.unwrap().status.success());
    assert_eq!(front.max_open(), 1);
}

async fn fleet_through(front: &SilentFirst, server: &TestServer, cap: usize) {
    let cfg = server.config().connect_timeout(Duration::from_secs(1));
    let target = Target::new(
        "booting",
        support::HOST,
        front.port(),
        cfg,
        vec![ProvisionDef::inline("true")],
    );
    let report = tokio::time::timeout(
        HANG,
        Fleet::new()
            .connect_concurrency(cap)
            .connect_deadline(HANG)
            .provision(vec![target]),
    )
    .await
    .unwrap();
    assert_eq!(report.succeeded(), ["booting"], "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_connect_cap_counts_parallel_connections() {
    let server = TestServer::start().await.unwrap();
    // One connect slot: no connection beside the silent one; its attempt
    // times out and the retry is answered.
    let front = SilentFirst::start(1, server.port()).await;
    fleet_through(&front, &server, 1).await;
    assert_eq!(front.max_open(), 1, "a second connection beside the first");
    // Slots to spare: a second connection beside the silent one.
    let front = SilentFirst::start(1, server.port()).await;
    fleet_through(&front, &server, 16).await;
    assert_eq!(front.max_open(), 2);
}
