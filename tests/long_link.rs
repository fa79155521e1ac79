//! The crate over a long link: a real sshd reached through the delaying
//! relay of `support::relay` (these kernels have no netem), with the
//! default settings. Every byte arrives intact in both directions, a
//! provisioning plan runs, and a consumer that stops reading still stops
//! the remote writer with the default window. Behaviour only: nothing here
//! measures time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use support::relay::{Link, Relay};
use vmssh::Session;
use vmssh::provision::{ProvisionDef, Provisioner};

/// The RTT of the tests' link: long enough that round trips and windows
/// dominate, short enough to keep the tests quick.
const RTT: Duration = Duration::from_millis(20);

async fn connect_through(srv: &support::Server, relay: &Relay) -> Session {
    Session::connect(srv.host(), relay.port, &srv.config())
        .await
        .unwrap_or_else(|e| panic!("connect through the relay: {e}\n{}", srv.log()))
}

fn random_file(path: &Path, len: usize) -> [u8; 32] {
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(path, &data).unwrap();
    Sha256::digest(&data).into()
}

fn digest(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// A file goes up, comes back, and streams out of `cat`, byte for byte:
/// more than one window and many requests in flight, over a delayed link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn bytes_cross_a_long_link_intact() {
    let srv = support::sshd();
    let relay = Relay::start(srv.port(), Link::rtt(RTT));
    let sess = connect_through(&srv, &relay).await;
    let dir = tempfile::tempdir().unwrap();
    const LEN: usize = 24 * 1024 * 1024 + 12_345;
    let src = dir.path().join("src.bin");
    let want = random_file(&src, LEN);

    let remote = srv.dir().join("uploaded.bin");
    let sent = sess.upload(&src, remote.to_str().unwrap()).await.unwrap();
    assert_eq!(sent, LEN as u64);
    assert_eq!(digest(&remote), want, "upload through the relay differs");

    let back = dir.path().join("back.bin");
    let got = sess
        .download(remote.to_str().unwrap(), &back)
        .await
        .unwrap();
    assert_eq!(got, LEN as u64);
    assert_eq!(digest(&back), want, "download through the relay differs");

    let mut stream = sess
        .exec_streaming(&format!("cat {}", remote.display()))
        .await
        .unwrap();
    let mut hash = Sha256::new();
    let mut n = 0;
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        assert!(
            !c.is_stderr(),
            "stderr: {:?}",
            String::from_utf8_lossy(c.bytes())
        );
        n += c.bytes().len();
        hash.update(c.bytes());
    }
    assert!(stream.exit_status().await.unwrap().success());
    assert_eq!(n, LEN);
    assert_eq!(<[u8; 32]>::from(hash.finalize()), want, "stdout differs");
}

/// A plan of inline, script and file steps runs through the delayed link
/// as on loopback: every step succeeds and leaves its effect, several file
/// steps in a row included (they share the session's SFTP state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn a_plan_runs_over_a_long_link() {
    let srv = support::sshd();
    let relay = Relay::start(srv.port(), Link::rtt(RTT));
    let sess = connect_through(&srv, &relay).await;
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("setup.sh"),
        "#!/bin/sh\nset -e\necho script-ran > \"$OUT\"\n",
    )
    .unwrap();
    std::fs::write(base.path().join("a.conf"), "a\n").unwrap();
    std::fs::write(base.path().join("b.conf"), "bb\n").unwrap();
    let guest = srv.dir().join("guest");
    let g = guest.display().to_string();
    let steps = [
        ProvisionDef::inline(format!("mkdir -p '{g}' && echo inline > '{g}/inline'")),
        ProvisionDef::file("a.conf", format!("{g}/etc/a.conf")),
        ProvisionDef::file("b.conf", format!("{g}/etc/b.conf")),
        ProvisionDef::script("setup.sh").env("OUT", format!("{g}/script")),
        ProvisionDef::download(format!("{g}/etc/b.conf"), "fetched.conf"),
    ];
    let reports = Provisioner::new("long-link")
        .base_dir(base.path())
        .run(&sess, &steps)
        .await
        .unwrap();
    assert_eq!(reports.len(), steps.len());
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(guest.join("inline")), "inline\n");
    assert_eq!(read(guest.join("etc/a.conf")), "a\n");
    assert_eq!(read(guest.join("etc/b.conf")), "bb\n");
    assert_eq!(read(guest.join("script")), "script-ran\n");
    assert_eq!(read(base.path().join("fetched.conf")), "bb\n");
}

/// Bytes the remote writer has written so far (its counter file).
async fn progress(probe: &Session, file: &Path) -> u64 {
    let out = probe
        .exec(&format!("cat {} 2>/dev/null || echo 0", file.display()))
        .await
        .unwrap();
    out.stdout_lossy().trim().parse::<u64>().unwrap_or(0) * 65536
}

/// With the default window, sized for long links, a consumer that stops
/// polling still stops the remote writer: it gets at most the window, the
/// channel queue and the buffers of the path ahead (under 32 MiB, the
/// slow-consumer memory goal), then resumes and every byte arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn stalled_consumer_stops_the_writer_on_a_long_link() {
    const BOUND: u64 = 32 * 1024 * 1024;
    const BLOCKS: u64 = 2048; // 128 MiB wanted
    let srv = support::sshd();
    let relay = Relay::start(srv.port(), Link::rtt(RTT));
    let sess = connect_through(&srv, &relay).await;
    let probe = srv.connect().await; // not through the stalled connection
    let file = srv.dir().join("progress");
    let cmd = format!(
        "i=0; while [ $i -lt {BLOCKS} ]; do head -c 65536 /dev/zero || exit 1; i=$((i+1)); \
         echo $i > {f}.tmp; mv {f}.tmp {f}; done",
        f = file.display()
    );
    let mut stream = sess.exec_streaming(&cmd).await.unwrap();
    let mut read = stream.next().await.unwrap().unwrap().bytes().len() as u64;

    let start = Instant::now();
    let mut last = progress(&probe, &file).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = progress(&probe, &file).await;
        assert!(
            now <= BOUND,
            "the writer got {now} bytes ahead of a consumer that stopped reading"
        );
        if now == last && now > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the writer never blocked"
        );
        last = now;
    }
    eprintln!("long link: writer blocked after {} KiB", last / 1024);

    while let Some(c) = stream.next().await {
        read += c.unwrap().bytes().len() as u64;
    }
    assert!(stream.exit_status().await.unwrap().success());
    assert_eq!(read, BLOCKS * 65536);
}
