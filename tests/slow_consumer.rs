//! A slow consumer on one channel of a session. Backpressure is per
//! connection in russh: once the stalled channel's queue is full, the
//! session stops reading its socket and the other channels wait too; they
//! resume, with nothing lost, when the consumer does. A pause longer than
//! the keepalive timeout must not be mistaken for a dead peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn stalled_channel_pauses_the_session_and_resumes_intact() {
    let srv = support::sshd();
    let sess = srv.connect().await;
    const TOTAL: usize = 64 * 1024 * 1024;
    let mut big = sess
        .exec_streaming(&format!("head -c {TOTAL} /dev/zero"))
        .await
        .unwrap();
    // Read one chunk, then stop consuming: the window and queue fill up.
    let mut got = big.next().await.unwrap().unwrap().bytes().len();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another channel on the same session is stalled behind it...
    let other = sess.exec("echo other");
    tokio::pin!(other);
    let stalled = tokio::time::timeout(Duration::from_secs(2), &mut other).await;
    assert!(
        stalled.is_err(),
        "the second channel completed while the first was stalled: russh's per-connection \
         backpressure changed, update the README's Backpressure section"
    );
    // ...and completes once the first is consumed again.
    let (out, ()) = tokio::join!(other, async {
        while let Some(c) = big.next().await {
            got += c.unwrap().bytes().len();
        }
    });
    assert_eq!(out.unwrap().stdout, b"other\n");
    assert_eq!(got, TOTAL);
    assert!(big.exit_status().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn long_pause_is_not_a_dead_peer() {
    let srv = support::sshd();
    let cfg = srv
        .config()
        .keepalive_interval(Some(Duration::from_secs(1)))
        .keepalive_max(2);
    let sess = srv.connect_with(&cfg).await;
    const TOTAL: usize = 32 * 1024 * 1024;
    let mut stream = sess
        .exec_streaming(&format!("head -c {TOTAL} /dev/zero"))
        .await
        .unwrap();
    let mut got = stream.next().await.unwrap().unwrap().bytes().len();
    // Pause for well over keepalive_interval * keepalive_max.
    tokio::time::sleep(Duration::from_secs(5)).await;
    while let Some(c) = stream.next().await {
        got += c
            .expect("a paused consumer was taken for a dead peer")
            .bytes()
            .len();
    }
    assert_eq!(got, TOTAL);
    assert!(stream.exit_status().await.unwrap().success());
    assert!(!sess.is_closed());
    assert_eq!(sess.exec("echo alive").await.unwrap().stdout, b"alive\n");
}
