//! The old blocking design, rebuilt from its description in DESIGN.md, as a
//! contender for `benches/compare.rs`: libssh2 through the `ssh2` crate,
//! every blocking call in `tokio::task::spawn_blocking`, streamed output
//! polled (non-blocking session, 8 KiB reads of stdout then stderr, 50 ms
//! sleep whenever nothing arrived) into an unbounded channel, uploads that
//! read the whole file into memory first, connect retries backing off
//! 1 s -> 5 s.
//!
//! Usage: `old-ssh-bench SCENARIO --key value ...`; prints `RESULT name value`
//! lines on stdout for the harness to parse.

#[path = "../../compare/measure.rs"]
#[allow(dead_code)]
mod measure;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{LatencyMeter, SlowConsumer, ThreadSampler};
use tokio::sync::{Semaphore, mpsc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

#[derive(Clone, Debug)]
struct Target {
    host: String,
    port: u16,
    user: String,
    key: PathBuf,
}

enum Chunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

fn result(name: &str, value: impl std::fmt::Display) {
    println!("RESULT {name} {value}");
}

// ---------------------------------------------------------------------------
// The old design's operations

/// One blocking connect + handshake + public key authentication.
fn connect_blocking(t: &Target) -> Res<ssh2::Session> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))?;
    let mut sess = ssh2::Session::new()?;
    sess.set_tcp_stream(tcp);
    sess.handshake()?;
    sess.userauth_pubkey_file(&t.user, None, &t.key, None)?;
    if !sess.authenticated() {
        return Err("authentication failed".into());
    }
    Ok(sess)
}

/// Connect with retries backing off 1 s, 2 s, 4 s, then 5 s, until
/// `deadline`.
async fn connect(t: &Target, deadline: Duration) -> Res<ssh2::Session> {
    let start = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        let t2 = t.clone();
        match tokio::task::spawn_blocking(move || connect_blocking(&t2)).await? {
            Ok(s) => return Ok(s),
            Err(e) => {
                if start.elapsed() + delay > deadline {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Streamed exec: a blocking task polls the channel and pushes whatever it
/// reads into an unbounded channel; the receiver is the "stream".
fn exec_streaming(sess: ssh2::Session, cmd: String) -> mpsc::UnboundedReceiver<Res<Chunk>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::task::spawn_blocking(move || {
        let run = || -> Res<i32> {
            let mut ch = sess.channel_session()?;
            ch.exec(&cmd)?;
            sess.set_blocking(false);
            let mut buf = vec![0u8; 8192];
            loop {
                let mut got = false;
                match ch.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        got = true;
                        let _ = tx.send(Ok(Chunk::Stdout(buf[..n].to_vec())));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
                match ch.stderr().read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        got = true;
                        let _ = tx.send(Ok(Chunk::Stderr(buf[..n].to_vec())));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
                if !got {
                    if ch.eof() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            sess.set_blocking(true);
            ch.wait_close()?;
            Ok(ch.exit_status()?)
        };
        if let Err(e) = run() {
            let _ = tx.send(Err(e));
        }
    });
    rx
}

/// Collected exec, built on the streamed one (as the old design did).
async fn exec(sess: ssh2::Session, cmd: String) -> Res<Vec<u8>> {
    let mut rx = exec_streaming(sess, cmd);
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        if let Chunk::Stdout(b) = c? {
            out.extend_from_slice(&b);
        }
    }
    Ok(out)
}

/// Upload: the whole file is read into memory, then written over SFTP.
async fn upload(sess: ssh2::Session, local: PathBuf, remote: String) -> Res<u64> {
    tokio::task::spawn_blocking(move || -> Res<u64> {
        let data = std::fs::read(&local)?;
        let sftp = sess.sftp()?;
        let mut f = sftp.create(Path::new(&remote))?;
        f.write_all(&data)?;
        f.flush()?;
        Ok(data.len() as u64)
    })
    .await?
}

/// Download: not described in DESIGN.md; the straightforward blocking copy.
async fn download(sess: ssh2::Session, remote: String, local: PathBuf) -> Res<u64> {
    tokio::task::spawn_blocking(move || -> Res<u64> {
        let sftp = sess.sftp()?;
        let mut f = sftp.open(Path::new(&remote))?;
        let mut out = std::fs::File::create(&local)?;
        Ok(std::io::copy(&mut f, &mut out)?)
    })
    .await?
}

// ---------------------------------------------------------------------------
// Scenarios

struct Args(HashMap<String, String>);

impl Args {
    fn get(&self, k: &str) -> Res<&str> {
        self.0
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{k}").into())
    }
    fn num(&self, k: &str) -> Res<u64> {
        Ok(self.get(k)?.parse()?)
    }
    fn targets(&self) -> Res<Vec<Target>> {
        let mut out = Vec::new();
        for p in self.get("ports")?.split(',') {
            out.push(Target {
                host: self.get("host")?.to_string(),
                port: p.parse()?,
                user: self.get("user")?.to_string(),
                key: PathBuf::from(self.get("key")?),
            });
        }
        Ok(out)
    }
}

async fn stdout_throughput(a: &Args) -> Res<()> {
    let t = &a.targets()?[0];
    let bytes = a.num("bytes")?;
    let sess = connect(t, Duration::from_secs(30)).await?;
    result(
        "cipher",
        sess.methods(ssh2::MethodType::CryptCs).unwrap_or("?"),
    );
    let cpu0 = measure::cpu_secs();
    let mut rx = exec_streaming(sess, measure::throughput_command(bytes));
    let mut n = 0u64;
    let mut stderr = Vec::new();
    while let Some(c) = rx.recv().await {
        match c? {
            Chunk::Stdout(b) => n += b.len() as u64,
            Chunk::Stderr(b) => stderr.extend_from_slice(&b),
        }
    }
    let end = measure::now_ns();
    if n != bytes {
        return Err(format!("got {n} bytes of {bytes}").into());
    }
    let start = measure::parse_start(&stderr).ok_or("no start time on stderr")?;
    let secs = (end - start) as f64 / 1e9;
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", measure::cpu_secs() - cpu0);
    Ok(())
}

async fn delivery_latency(a: &Args) -> Res<()> {
    let t = &a.targets()?[0];
    let sess = connect(t, Duration::from_secs(30)).await?;
    let mut rx = exec_streaming(sess, measure::latency_command(a.num("lines")?));
    let mut meter = LatencyMeter::default();
    while let Some(c) = rx.recv().await {
        if let Chunk::Stdout(b) = c? {
            meter.feed(&b, measure::now_ns());
        }
    }
    result("samples", meter.samples.len());
    result("p50_ms", measure::percentile(&meter.samples, 50.0));
    result("p99_ms", measure::percentile(&meter.samples, 99.0));
    Ok(())
}

async fn slow_consumer(a: &Args) -> Res<()> {
    let t = &a.targets()?[0];
    let bytes = a.num("bytes")?;
    let sess = connect(t, Duration::from_secs(30)).await?;
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let mut rx = exec_streaming(sess, format!("head -c {bytes} /dev/zero"));
    let mut slow = SlowConsumer::new(bytes, Duration::from_millis(a.num("pause-ms")?));
    let mut n = 0u64;
    while let Some(c) = rx.recv().await {
        if let Chunk::Stdout(b) = c? {
            n += b.len() as u64;
            if let Some(d) = slow.consumed(b.len() as u64) {
                tokio::time::sleep(d).await;
            }
        }
    }
    if n != bytes {
        return Err(format!("got {n} bytes of {bytes}").into());
    }
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    Ok(())
}

async fn sftp_transfer(a: &Args, up: bool) -> Res<()> {
    let t = &a.targets()?[0];
    let sess = connect(t, Duration::from_secs(30)).await?;
    let local = PathBuf::from(a.get("local")?);
    let remote = a.get("remote")?.to_string();
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    let n = if up {
        upload(sess, local, remote).await?
    } else {
        download(sess, remote, local).await?
    };
    let secs = start.elapsed().as_secs_f64();
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", measure::cpu_secs() - cpu0);
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    Ok(())
}

async fn connect_wake(a: &Args) -> Res<()> {
    let t = &a.targets()?[0];
    // Tell the harness we are about to start retrying.
    result("started_ns", measure::now_ns());
    let _sess = connect(t, Duration::from_secs(30)).await?;
    result("connected_ns", measure::now_ns());
    Ok(())
}

async fn concurrent_sessions(a: &Args) -> Res<()> {
    let targets = a.targets()?;
    let n = a.num("sessions")? as usize;
    let cap = Arc::new(Semaphore::new(a.num("connect-cap")? as usize));
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let threads = ThreadSampler::start();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let t = targets[i % targets.len()].clone();
        let cap = cap.clone();
        tasks.push(tokio::spawn(async move {
            let sess = {
                let _permit = cap.acquire().await?;
                connect(&t, Duration::from_secs(60)).await?
            };
            let out = exec(sess.clone(), format!("echo {i}")).await?;
            if String::from_utf8_lossy(&out).trim() != i.to_string() {
                return Err::<ssh2::Session, BoxError>(format!("session {i}: wrong output").into());
            }
            // Held until every session has run its command.
            Ok(sess)
        }));
    }
    let mut held = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Ok(s) => held.push(s),
            Err(e) => {
                failed += 1;
                eprintln!("old-ssh-bench: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    result("secs", secs);
    result("failed", failed);
    result("cpu", measure::cpu_secs() - cpu0);
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    result("threads_peak", threads.finish());
    drop(held);
    Ok(())
}

/// The fleet plan, old style: per VM connect (with backoff), run a command,
/// upload a file (whole in memory), upload and run a script.
async fn fleet(a: &Args) -> Res<()> {
    let targets = a.targets()?;
    let n = a.num("vms")? as usize;
    let vm_slots = Arc::new(Semaphore::new(a.num("concurrency")? as usize));
    let connect_slots = Arc::new(Semaphore::new(a.num("connect-cap")? as usize));
    let file = PathBuf::from(a.get("file")?);
    let script = PathBuf::from(a.get("script")?);
    let remote_dir = a.get("remote-dir")?.to_string();
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let threads = ThreadSampler::start();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let t = targets[i % targets.len()].clone();
        let (vm_slots, connect_slots) = (vm_slots.clone(), connect_slots.clone());
        let (file, script, dir) = (
            file.clone(),
            script.clone(),
            format!("{remote_dir}/old-vm{i}"),
        );
        tasks.push(tokio::spawn(async move {
            let _vm = vm_slots.acquire().await?;
            let sess = {
                let _c = connect_slots.acquire().await?;
                connect(&t, Duration::from_secs(120)).await?
            };
            exec(
                sess.clone(),
                format!("mkdir -p {dir} && echo provisioning vm{i} && uname -a"),
            )
            .await?;
            upload(sess.clone(), file, format!("{dir}/payload.bin")).await?;
            upload(sess.clone(), script, format!("{dir}/setup.sh")).await?;
            exec(sess, format!("sh {dir}/setup.sh")).await?;
            Ok::<(), BoxError>(())
        }));
    }
    let mut failed = 0;
    for t in tasks {
        if let Err(e) = t.await? {
            failed += 1;
            eprintln!("old-ssh-bench: {e}");
        }
    }
    result("secs", start.elapsed().as_secs_f64());
    result("failed", failed);
    result("cpu", measure::cpu_secs() - cpu0);
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    result("threads_peak", threads.finish());
    Ok(())
}

/// Ten small steps on one session, old style: five `true` commands and
/// five uploads of a 2-byte file, alternating, each timed.
async fn small_steps(a: &Args) -> Res<()> {
    let t = &a.targets()?[0];
    let sess = connect(t, Duration::from_secs(30)).await?;
    let file = PathBuf::from(a.get("file")?);
    let dir = format!("{}/old-{}", a.get("remote-dir")?, std::process::id());
    exec(sess.clone(), format!("mkdir -p {dir}")).await?;
    let (mut inline, mut files) = (0.0, 0.0);
    let start = Instant::now();
    for i in 0..10 {
        let t = Instant::now();
        if i % 2 == 0 {
            exec(sess.clone(), "true".to_string()).await?;
            inline += t.elapsed().as_secs_f64();
        } else {
            upload(sess.clone(), file.clone(), format!("{dir}/step{i}.txt")).await?;
            files += t.elapsed().as_secs_f64();
        }
    }
    result("secs", start.elapsed().as_secs_f64());
    result("inline_secs", inline);
    result("file_secs", files);
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(scenario) = argv.first().cloned() else {
        eprintln!("usage: old-ssh-bench SCENARIO --key value ...");
        std::process::exit(2);
    };
    let mut map = HashMap::new();
    for pair in argv[1..].chunks(2) {
        if let [k, v] = pair {
            map.insert(k.trim_start_matches("--").to_string(), v.clone());
        }
    }
    let args = Args(map);
    measure::raise_nofile();
    // The old design ran on tokio's default multi-threaded runtime, with the
    // default blocking pool (up to 512 threads).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("old-ssh-bench: runtime: {e}");
            std::process::exit(1);
        }
    };
    let r = rt.block_on(async {
        match scenario.as_str() {
            "stdout_throughput" => stdout_throughput(&args).await,
            "delivery_latency" => delivery_latency(&args).await,
            "slow_consumer_rss" => slow_consumer(&args).await,
            "sftp_upload" => sftp_transfer(&args, true).await,
            "sftp_download" => sftp_transfer(&args, false).await,
            "connect_wake" => connect_wake(&args).await,
            "concurrent_sessions" => concurrent_sessions(&args).await,
            "fleet" => fleet(&args).await,
            "small_steps" => small_steps(&args).await,
            other => Err(format!("unknown scenario {other}").into()),
        }
    });
    // Do not wait for lingering blocking tasks (held sessions, pollers).
    rt.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = r {
        eprintln!("old-ssh-bench: {scenario}: {e}");
        std::process::exit(1);
    }
}
