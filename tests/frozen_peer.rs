//! One frozen connection among several: the frozen session's stream ends
//! with an error (by keepalive, or by the inactivity timeout when keepalive
//! is off) while the other sessions to the same server carry on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use vmssh::{Error, Session, SshConfig};

async fn connect_tracked(
    srv: &support::Server,
    cfg: &SshConfig,
    known: &mut Vec<u32>,
) -> (Session, Vec<u32>) {
    let sess = srv.connect_with(cfg).await;
    let mine: Vec<u32> = srv
        .connection_pids()
        .into_iter()
        .filter(|p| !known.contains(p))
        .collect();
    known.extend(&mine);
    assert!(!mine.is_empty());
    (sess, mine)
}

async fn stream_error(sess: &Session) -> (Error, Duration) {
    let mut stream = sess
        .exec_streaming("while true; do echo tick; sleep 0.1; done")
        .await
        .unwrap();
    stream.next().await.unwrap().unwrap();
    // The caller freezes the server side now; wait for the verdict.
    let start = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return e,
                None => panic!("the stream ended without an error"),
            }
        }
    })
    .await
    .expect("a frozen peer hung the stream");
    (err, start.elapsed())
}

async fn frozen_one_of_three(tune: fn(SshConfig) -> SshConfig) {
    let srv = support::sshd();
    let cfg_frozen = tune(srv.config());
    let mut known = Vec::new();
    let (frozen, frozen_pids) = connect_tracked(&srv, &cfg_frozen, &mut known).await;
    let (a, _) = connect_tracked(&srv, &srv.config(), &mut known).await;
    let (b, _) = connect_tracked(&srv, &srv.config(), &mut known).await;
    let verdict = tokio::spawn(async move { stream_error(&frozen).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    support::signal_pids("STOP", &frozen_pids);
    let others = async {
        for i in 0..10 {
            assert_eq!(
                a.exec(&format!("echo {i}")).await.unwrap().stdout,
                format!("{i}\n").into_bytes()
            );
            assert_eq!(b.exec("echo b").await.unwrap().stdout, b"b\n");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (verdict, ()) = tokio::join!(verdict, others);
    support::signal_pids("KILL", &frozen_pids);
    let (err, took) = verdict.unwrap();
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(!a.is_closed() && !b.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn keepalive_catches_the_frozen_one() {
    frozen_one_of_three(|cfg| {
        cfg.keepalive_interval(Some(Duration::from_secs(1)))
            .keepalive_max(2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn inactivity_timeout_catches_the_frozen_one() {
    frozen_one_of_three(|cfg| {
        cfg.keepalive_interval(None)
            .inactivity_timeout(Some(Duration::from_secs(3)))
    })
    .await;
}
