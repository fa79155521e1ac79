//! Streamed output on real servers: every byte exactly once and in order,
//! the tail never lost to a racing exit status, bounded memory when the
//! consumer stops reading, and channels closed when a stream is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use sha2::{Digest, Sha256};
use support::Server;
use vmssh::{Chunk, ExecStream, Session};

/// Reads a stream to its end: (stdout, stderr).
async fn collect(stream: &mut ExecStream) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            Chunk::Stdout(b) => out.extend_from_slice(&b),
            Chunk::Stderr(b) => err.extend_from_slice(&b),
            other => panic!("unexpected chunk {other:?}"),
        }
    }
    (out, err)
}

/// 64 MiB of random data, checksummed on both sides. (The remote sum is
/// part of the pipeline, not a `>(...)` process substitution: dropbear
/// closes a command's pipes once the shell has exited and they are empty,
/// so output of a background process that comes later is lost.)
async fn big_stream_checksummed(srv: &Server) {
    const LEN: u64 = 64 * 1024 * 1024;
    let sess = srv.connect().await;
    let start = Instant::now();
    let mut stream = sess
        .exec_streaming(&format!(
            "set -o pipefail; {{ head -c {LEN} /dev/urandom | tee /dev/fd/3 | sha256sum >&2; }} 3>&1"
        ))
        .await
        .unwrap();
    let mut hasher = Sha256::new();
    let (mut n, mut chunks, mut err) = (0u64, 0u64, Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            Chunk::Stdout(b) => {
                hasher.update(&b);
                n += b.len() as u64;
                chunks += 1;
            }
            Chunk::Stderr(b) => err.extend_from_slice(&b),
            other => panic!("unexpected chunk {other:?}"),
        }
    }
    let status = stream.exit_status().await.unwrap();
    assert!(status.success(), "{}: {status}", srv.name());
    assert_eq!(n, LEN, "{}: byte count", srv.name());
    let remote = String::from_utf8(err).unwrap();
    let local = format!("{:x}", hasher.finalize());
    assert_eq!(
        remote.split_whitespace().next(),
        Some(local.as_str()),
        "{}",
        srv.name()
    );
    eprintln!(
        "{}: 64 MiB in {chunks} chunks, {:?}",
        srv.name(),
        start.elapsed()
    );
}
on_both_servers!(big_stream_checksummed);

/// Exit status racing the last packets: hundreds of commands that write a
/// random amount and exit at once with a random code. Every byte and the
/// exact code must arrive, every time.
async fn tail_never_lost(srv: &Server) {
    let runs = if srv.is_openssh() { 300 } else { 150 };
    let sess = srv.connect().await;
    let mut rng = rand::thread_rng();
    // A few commands in flight at once, as an orchestrator would (one at a
    // time on dropbear, see `Server::max_parallel_channels`).
    let jobs: Vec<(usize, usize, u32)> = (0..runs)
        .map(|i| {
            // Mostly small, sometimes beyond one window (2 MiB).
            let out = match i % 10 {
                0 => rng.gen_range(0..4 * 1024 * 1024),
                1..=3 => rng.gen_range(0..64),
                _ => rng.gen_range(0..200_000),
            };
            let err = if i % 3 == 0 {
                rng.gen_range(0..100_000)
            } else {
                0
            };
            (out, err, rng.gen_range(0..=255u32))
        })
        .collect();
    let results = futures::stream::iter(jobs.into_iter().enumerate())
        .map(|(i, (out_len, err_len, code))| {
            let sess = sess.clone();
            async move {
                let cmd = format!(
                    "head -c {out_len} /dev/zero; head -c {err_len} /dev/zero >&2; exit {code}"
                );
                let mut stream = sess.exec_streaming(&cmd).await.unwrap();
                let (mut o, mut e) = (0usize, 0usize);
                while let Some(chunk) = stream.next().await {
                    match chunk.unwrap() {
                        Chunk::Stdout(b) => o += b.len(),
                        Chunk::Stderr(b) => e += b.len(),
                        other => panic!("unexpected chunk {other:?}"),
                    }
                }
                let status = stream.exit_status().await.unwrap();
                (i, (o, e, status.code()), (out_len, err_len, Some(code)))
            }
        })
        .buffer_unordered(srv.max_parallel_channels().min(4))
        .collect::<Vec<_>>()
        .await;
    assert_eq!(results.len(), runs);
    for (i, got, want) in results {
        assert_eq!(got, want, "{}: run {i}: (stdout, stderr, code)", srv.name());
    }
}
on_both_servers!(tail_never_lost);

/// Chunks arrive in order on each of stdout and stderr, even when both
/// are written at once.
async fn chunks_in_order(srv: &Server) {
    let sess = srv.connect().await;
    let mut stream = sess
        .exec_streaming("seq 1 200000 & seq 1 100000 >&2; wait")
        .await
        .unwrap();
    let (out, err) = collect(&mut stream).await;
    assert!(stream.exit_status().await.unwrap().success());
    let expect = |n: u32| {
        (1..=n)
            .map(|i| format!("{i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    assert!(
        out == expect(200_000),
        "{}: stdout out of order or incomplete",
        srv.name()
    );
    assert!(
        err == expect(100_000),
        "{}: stderr out of order or incomplete",
        srv.name()
    );
}
on_both_servers!(chunks_in_order);

/// Bytes the remote writer of the backpressure test has written so far.
async fn progress(probe: &Session, file: &str) -> u64 {
    let out = probe
        .exec(&format!("cat {file} 2>/dev/null || echo 0"))
        .await
        .unwrap();
    out.stdout_lossy().trim().parse::<u64>().unwrap_or(0) * 65536
}

/// A consumer that stops polling makes the remote writer block: it gets
/// no further than the SSH window, russh's channel queue and the server's
/// own buffers allow, far short of the 200 MiB it wants to write.
async fn backpressure(srv: &Server) {
    const BOUND: u64 = 32 * 1024 * 1024;
    let sess = srv.connect().await;
    let probe = srv.connect().await; // a second connection: the first one stalls
    let file = srv.dir().join("progress");
    let file = file.to_str().unwrap();
    // 3200 blocks of 64 KiB = 200 MiB, the count recorded after each block
    // (renamed into place, so that the probe never reads a half-written file).
    let cmd = format!(
        "i=0; while [ $i -lt 3200 ]; do head -c 65536 /dev/zero || exit 1; i=$((i+1)); \
         echo $i > {file}.tmp; mv {file}.tmp {file}; done"
    );
    let mut stream = sess.exec_streaming(&cmd).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.bytes().is_empty());

    // Stop polling. Wait until the writer stops making progress.
    let start = Instant::now();
    let mut last = progress(&probe, file).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = progress(&probe, file).await;
        if now == last && now > 0 {
            break;
        }
        assert!(
            now <= BOUND,
            "{}: writer got {now} bytes ahead of a consumer that stopped reading",
            srv.name()
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}: writer never blocked",
            srv.name()
        );
        last = now;
    }
    assert!(
        last <= BOUND,
        "{}: writer blocked only after {last} bytes",
        srv.name()
    );
    eprintln!("{}: writer blocked after {} KiB", srv.name(), last / 1024);

    // Resume: reading frees the writer again.
    let mut read = first.bytes().len() as u64;
    while read < last + 8 * 1024 * 1024 {
        read += stream.next().await.unwrap().unwrap().bytes().len() as u64;
    }
    let later = progress(&probe, file).await;
    assert!(
        later > last,
        "{}: writer did not resume ({later} <= {last})",
        srv.name()
    );
    // Dropping the stream closes the channel; the writer dies of SIGPIPE.
    drop(stream);
    let start = Instant::now();
    loop {
        let a = progress(&probe, file).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if progress(&probe, file).await == a {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}: writer kept going after drop",
            srv.name()
        );
    }
    assert!(sess.exec("true").await.unwrap().status.success());
}
on_both_servers!(backpressure);

/// Dropping a stream mid-output closes its channel: 30 drops on a session
/// with 10 channel slots (sshd's MaxSessions is 10 too), and afterwards all
/// 10 slots work at once. A dropped stream's slot must come back promptly
/// (it used to be held for 10 s, waiting for a close confirmation that
/// russh never delivers once this side has closed).
async fn drop_mid_output_closes_channel(srv: &Server) {
    let sess = srv
        .connect_with(&srv.config().max_channels(srv.max_parallel_channels()))
        .await;
    for i in 0..30 {
        let mut stream = tokio::time::timeout(Duration::from_secs(8), sess.exec_streaming("yes"))
            .await
            .unwrap_or_else(|_| {
                panic!("{}: drop {i}: no channel slot freed within 8 s", srv.name())
            })
            .unwrap();
        let chunk = stream.next().await.unwrap().unwrap();
        assert!(chunk.bytes().starts_with(b"y\n"));
        drop(stream);
        if srv.max_parallel_channels() == 1 {
            // dropbear: let the killed `yes` exit before the next channel
            // opens (see `Server::max_parallel_channels`).
            assert!(
                srv.wait_gone("yes", Duration::from_secs(20)).await,
                "{}: yes survived its channel",
                srv.name()
            );
        }
    }
    // The remote writers really ended: the channels were closed, not just
    // forgotten on this side.
    assert!(
        srv.wait_gone("yes", Duration::from_secs(20)).await,
        "{}: {} `yes` processes still running after their streams were dropped",
        srv.name(),
        srv.processes_named("yes").len()
    );
    let outs = tokio::time::timeout(
        Duration::from_secs(60),
        futures::future::join_all((0..srv.max_parallel_channels()).map(|i| {
            let sess = sess.clone();
            async move { sess.exec(&format!("sleep 0.5; echo {i}")).await }
        })),
    )
    .await
    .expect("commands after the drops hung");
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap_or_else(|e| panic!("{}: command {i} after drops: {e:?}", srv.name()));
        assert_eq!(out.stdout_lossy(), format!("{i}\n"));
    }
}
on_both_servers!(drop_mid_output_closes_channel);
