//! Long runs against the testkit server: connect/exec/close cycles and SFTP
//! transfers, byte-exact throughout, with file descriptors, tasks and
//! memory back at their starting level afterwards.
//!
//! The CI variant is short. The full run (10,000 cycles, 1,000 transfers):
//! `VMSSH_SOAK=full cargo test --release -p vmssh-tests --test soak`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use vmssh_testkit::TestServer;

fn full() -> bool {
    std::env::var("VMSSH_SOAK").is_ok_and(|v| v == "full")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kib / 1024
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (bounded) for background closes to finish, then checks levels.
async fn back_to(fds: usize, tasks: usize, rss: u64) {
    let start = Instant::now();
    while (open_fds() > fds + 2 || alive_tasks() > tasks)
        && start.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        open_fds() <= fds + 2,
        "file descriptors leaked: {} now, {fds} before",
        open_fds()
    );
    assert!(
        alive_tasks() <= tasks,
        "tasks leaked: {} now, {tasks} before",
        alive_tasks()
    );
    let now = rss_mib();
    assert!(now <= rss + 40, "RSS grew from {rss} MiB to {now} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_exec_close_cycles() {
    let server = TestServer::start().await.unwrap();
    let cfg = server.config();
    let cycles = if full() { 10_000 } else { 300 };
    // Warm up allocator and runtime before taking the baseline.
    for _ in 0..5 {
        let s = vmssh::Session::connect(server.host(), server.port(), &cfg)
            .await
            .unwrap();
        s.exec("true").await.unwrap();
        s.close().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (fds, tasks, rss) = (open_fds(), alive_tasks(), rss_mib());
    let in_flight = 8;
    let results = futures::stream::iter(0..cycles)
        .map(|i| {
            let cfg = cfg.clone();
            let (host, port) = (server.host().to_string(), server.port());
            async move {
                let s = vmssh::Session::connect(&host, port, &cfg).await.unwrap();
                let out = s
                    .exec(&format!("echo {i}; echo e{i} >&2; exit {}", i % 7))
                    .await
                    .unwrap();
                assert_eq!(out.stdout, format!("{i}\n").into_bytes());
                assert_eq!(out.stderr, format!("e{i}\n").into_bytes());
                assert_eq!(out.status.code(), Some((i % 7) as u32));
                // Every other cycle streams a larger output too.
                if i % 2 == 0 {
                    let mut stream = s.exec_streaming("head -c 100000 /dev/zero").await.unwrap();
                    let mut n = 0;
                    while let Some(c) = stream.next().await {
                        n += c.unwrap().bytes().len();
                    }
                    assert_eq!(n, 100_000);
                    assert!(stream.exit_status().await.unwrap().success());
                }
                s.close().await;
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
    assert_eq!(results.len(), cycles);
    back_to(fds, tasks, rss).await;
    assert!(server.failures().is_empty(), "{:?}", server.failures());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_transfers() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .sftp_root(root.path())
        .start()
        .await
        .unwrap();
    let sess = server.connect().await.unwrap();
    let local = tempfile::tempdir().unwrap();
    let transfers = if full() { 1_000 } else { 60 };
    let warm = local.path().join("warm");
    std::fs::write(&warm, b"warm").unwrap();
    sess.upload(&warm, "/warm").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (fds, tasks, rss) = (open_fds(), alive_tasks(), rss_mib());
    for i in 0..transfers {
        let len = (i * 7919) % (512 * 1024) + 1;
        let data: Vec<u8> = (0..len).map(|b| (b * 31 + i) as u8).collect();
        let src = local.path().join("src");
        std::fs::write(&src, &data).unwrap();
        let remote = format!("/dir{}/f{i}", i % 5);
        sess.upload_with(
            &src,
            &remote,
            &vmssh::TransferOptions::new().create_parents(true),
        )
        .await
        .unwrap();
        let back = local.path().join("back");
        sess.download(&remote, &back).await.unwrap();
        assert_eq!(
            Sha256::digest(std::fs::read(&back).unwrap()),
            Sha256::digest(&data),
            "transfer {i} ({len} bytes) differs"
        );
    }
    back_to(fds, tasks, rss).await;
}
