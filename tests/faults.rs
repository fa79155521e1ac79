//! Servers that die or freeze under a running command: the stream ends
//! with an error instead of hanging, and the session reports it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::{Duration, Instant};

use futures::StreamExt;
use support::Server;
use vmssh::{Error, ExecStream};

/// Reads `stream` until it ends; the first error, or `None` if it ended
/// cleanly. Panics if that takes longer than `limit` (a hang).
async fn until_error(stream: &mut ExecStream, limit: Duration) -> Option<Error> {
    tokio::time::timeout(limit, async {
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Some(e);
            }
        }
        None
    })
    .await
    .expect("the stream hung after the server went away")
}

/// The server (listener and connection processes) is SIGKILLed while a
/// command streams output: the stream yields ConnectionLost, the session
/// knows it is closed, and new commands fail at once.
async fn server_killed_mid_stream(srv: &Server) {
    let sess = srv.connect().await;
    let mut stream = sess.exec_streaming("yes").await.unwrap();
    let mut got = 0;
    while got < 1024 * 1024 {
        got += stream.next().await.unwrap().unwrap().bytes().len();
    }
    srv.kill_all("KILL");
    let err = until_error(&mut stream, Duration::from_secs(60))
        .await
        .expect("the stream ended without an error although the server was killed");
    assert!(err.is_connection_lost(), "{}: {err:?}", srv.name());
    assert!(!err.is_retryable());
    assert!(stream.next().await.is_none(), "fused after the error");

    tokio::time::timeout(Duration::from_secs(30), sess.closed())
        .await
        .expect("Session::closed did not resolve");
    assert!(sess.is_closed());
    let err = tokio::time::timeout(Duration::from_secs(30), sess.exec("true"))
        .await
        .expect("exec on a dead session hung")
        .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
}
on_both_servers!(server_killed_mid_stream);

/// Killed while a silent command runs (nothing in flight): the same.
async fn server_killed_while_idle(srv: &Server) {
    let sess = srv.connect().await;
    let mut stream = sess.exec_streaming("echo started; sleep 60").await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.bytes().as_ref(), b"started\n");
    srv.kill_all("KILL");
    let err = until_error(&mut stream, Duration::from_secs(60)).await;
    assert!(
        matches!(err, Some(Error::ConnectionLost { .. })),
        "{}: {err:?}",
        srv.name()
    );
    // No status was reported, and none is invented.
    assert!(stream.exit_status().await.is_err());
    assert!(stream.try_exit_status().is_none());
}
on_both_servers!(server_killed_while_idle);

/// The process serving our connection is frozen (SIGSTOP): TCP stays up,
/// nothing answers. Keepalives (every 1 s, 2 unanswered allowed) detect it
/// and end the stream with ConnectionLost.
async fn frozen_server_detected_by_keepalive(srv: &Server) {
    let cfg = srv
        .config()
        .keepalive_interval(Some(Duration::from_secs(1)))
        .keepalive_max(2);
    let sess = srv.connect_with(&cfg).await;
    let mut stream = sess
        .exec_streaming("echo started; sleep 120")
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.bytes().as_ref(), b"started\n");

    srv.pause();
    let start = Instant::now();
    let err = until_error(&mut stream, Duration::from_secs(60)).await;
    let took = start.elapsed();
    srv.resume();
    let err = err.expect("the stream ended cleanly although the server is frozen");
    assert!(err.is_connection_lost(), "{}: {err:?}", srv.name());
    assert!(err.to_string().contains("keepalive"), "{err}");
    // Interval 1 s, 2 unanswered: about 3 s; generous for a loaded machine.
    assert!(
        took < Duration::from_secs(40),
        "detected only after {took:?}"
    );
    assert!(sess.is_closed());

    // A command started on the dead session fails instead of hanging.
    let err = tokio::time::timeout(Duration::from_secs(30), sess.exec("true"))
        .await
        .expect("exec on a dead session hung")
        .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
}
on_both_servers!(frozen_server_detected_by_keepalive);

/// Frozen while collecting output with `exec`: the same error, not a hang.
async fn frozen_server_during_exec(srv: &Server) {
    let cfg = srv
        .config()
        .keepalive_interval(Some(Duration::from_secs(1)))
        .keepalive_max(2);
    let sess = srv.connect_with(&cfg).await;
    assert!(sess.exec("true").await.unwrap().status.success());
    let running = tokio::spawn({
        let sess = sess.clone();
        async move { sess.exec("sleep 120").await }
    });
    // Let the command start, then freeze its server process.
    let start = Instant::now();
    while srv.processes_named("sleep").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sleep never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.pause();
    let result = tokio::time::timeout(Duration::from_secs(60), running).await;
    srv.resume();
    let err = result
        .expect("exec hung on a frozen server")
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection_lost(), "{}: {err:?}", srv.name());
}
on_both_servers!(frozen_server_during_exec);
