//! async-ssh2-tokio as a contender for `benches/compare.rs`,
//! used as its documentation shows, at its fastest settings: `execute_io`
//! for streamed output, `upload_file` with a 255 KiB buffer (its default
//! is 4 KiB), `download_file` (it has no settings), and russh's client
//! `Config` with TCP_NODELAY and AES-GCM first (the cipher every other
//! contender negotiates), russh's default 2 MiB window and 32 KiB packets.
//!
//! Usage: `peer-async-ssh2-tokio SCENARIO --key value ...`; prints
//! `RESULT name value` lines like every contender.

#[path = "../../compare/args.rs"]
mod args;
#[path = "../../compare/measure.rs"]
#[allow(dead_code)]
mod measure;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use args::{Args, Res, result};
use async_ssh2_tokio::{AuthMethod, Client, Config, ServerCheckMethod};
use measure::{LatencyMeter, ThreadSampler};
use tokio::sync::{Semaphore, mpsc};

/// Upload buffer: the largest SFTP write OpenSSH's server takes whole.
const UPLOAD_BUFFER: usize = 255 * 1024;

struct Peer {
    host: String,
    ports: Vec<u16>,
    user: String,
    key: String,
    host_key_b64: String,
}

impl Peer {
    fn new(a: &Args) -> Res<Peer> {
        let line = std::fs::read_to_string(a.get("host-key")?)?;
        Ok(Peer {
            host: a.get("host")?.to_string(),
            ports: a.ports()?,
            user: a.get("user")?.to_string(),
            key: a.get("key")?.to_string(),
            host_key_b64: line
                .split_whitespace()
                .nth(1)
                .ok_or("bad host key line")?
                .to_string(),
        })
    }

    fn config() -> Config {
        let mut pref = russh::Preferred::default();
        let aes = [russh::cipher::AES_128_GCM, russh::cipher::AES_256_GCM];
        let mut ciphers: Vec<russh::cipher::Name> = aes.to_vec();
        ciphers.extend(pref.cipher.iter().filter(|c| !aes.contains(c)));
        pref.cipher = Cow::Owned(ciphers);
        Config {
            nodelay: true,
            preferred: pref,
            ..Config::default()
        }
    }

    async fn connect(&self, i: usize) -> Res<Client> {
        let port = self.ports[i % self.ports.len()];
        Ok(Client::connect_with_config(
            (self.host.as_str(), port),
            &self.user,
            AuthMethod::with_key_file(&self.key, None),
            ServerCheckMethod::with_public_key(&self.host_key_b64),
            Self::config(),
        )
        .await?)
    }
}

/// Streams `cmd`'s output: stdout chunks to `on_out`, stderr collected.
async fn stream(c: &Client, cmd: &str, mut on_out: impl FnMut(&[u8])) -> Res<(Vec<u8>, u32)> {
    let (otx, mut orx) = mpsc::channel::<Vec<u8>>(64);
    let (etx, mut erx) = mpsc::channel::<Vec<u8>>(64);
    let mut stderr = Vec::new();
    let exec = c.execute_io(cmd, otx, Some(etx), None, false, None);
    tokio::pin!(exec);
    let status = loop {
        tokio::select! {
            r = &mut exec => break r?,
            Some(b) = orx.recv() => on_out(&b),
            Some(b) = erx.recv() => stderr.extend_from_slice(&b),
        }
    };
    while let Ok(b) = orx.try_recv() {
        on_out(&b);
    }
    while let Ok(b) = erx.try_recv() {
        stderr.extend_from_slice(&b);
    }
    Ok((stderr, status))
}

async fn stdout_throughput(a: &Args, p: &Peer) -> Res<()> {
    let bytes = a.num("bytes")?;
    let c = p.connect(0).await?;
    let cpu0 = measure::cpu_secs();
    let mut n = 0u64;
    let (stderr, status) = stream(&c, &measure::throughput_command(bytes), |b| {
        n += b.len() as u64
    })
    .await?;
    let end = measure::now_ns();
    if n != bytes || status != 0 {
        return Err(format!("got {n} of {bytes} bytes, status {status}").into());
    }
    let start = measure::parse_start(&stderr).ok_or("no start time on stderr")?;
    let secs = (end - start) as f64 / 1e9;
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", measure::cpu_secs() - cpu0);
    Ok(())
}

async fn delivery_latency(a: &Args, p: &Peer) -> Res<()> {
    let c = p.connect(0).await?;
    let mut meter = LatencyMeter::default();
    stream(&c, &measure::latency_command(a.num("lines")?), |b| {
        meter.feed(b, measure::now_ns())
    })
    .await?;
    result("samples", meter.samples.len());
    result("p50_ms", measure::percentile(&meter.samples, 50.0));
    result("p99_ms", measure::percentile(&meter.samples, 99.0));
    Ok(())
}

async fn sftp_transfer(a: &Args, p: &Peer, up: bool) -> Res<()> {
    let c = p.connect(0).await?;
    let (local, remote) = (a.get("local")?, a.get("remote")?);
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    if up {
        c.upload_file(local, remote, None, Some(UPLOAD_BUFFER), false)
            .await?;
    } else {
        c.download_file(remote, local).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = std::fs::metadata(if up { remote } else { local })?.len();
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", measure::cpu_secs() - cpu0);
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    Ok(())
}

async fn concurrent_sessions(a: &Args, p: Arc<Peer>) -> Res<()> {
    let n = a.num("sessions")? as usize;
    let cap = Arc::new(Semaphore::new(a.num("connect-cap")? as usize));
    let m = Meter::start();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (p, cap) = (p.clone(), cap.clone());
        tasks.spawn(async move {
            let c = {
                let _permit = cap.acquire().await?;
                connect_retry(&p, i).await?
            };
            let out = c.execute(&format!("echo {i}")).await?;
            if out.stdout.trim() != i.to_string() || out.exit_status != 0 {
                return Err::<Client, Box<dyn std::error::Error + Send + Sync>>(
                    format!("session {i}: {}", out.stdout).into(),
                );
            }
            Ok(c)
        });
    }
    let mut held = Vec::new();
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(c) => held.push(c),
            Err(e) => {
                failed += 1;
                eprintln!("peer-async-ssh2-tokio: {e}");
            }
        }
    }
    m.finish(failed);
    drop(held);
    Ok(())
}

/// A fleet of VMs: connect, then the plan (a command, a 1 MiB file, a
/// script uploaded and run), at most `--concurrency` VMs and
/// `--connect-cap` connects at once.
async fn fleet(a: &Args, p: Arc<Peer>) -> Res<()> {
    let n = a.num("vms")? as usize;
    let vm_slots = Arc::new(Semaphore::new(a.num("concurrency")? as usize));
    let connect_slots = Arc::new(Semaphore::new(a.num("connect-cap")? as usize));
    let file = a.get("file")?.to_string();
    let script = a.get("script")?.to_string();
    let remote_dir = a.get("remote-dir")?.to_string();
    let m = Meter::start();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (p, vm_slots, connect_slots) = (p.clone(), vm_slots.clone(), connect_slots.clone());
        let (file, script, dir) = (
            file.clone(),
            script.clone(),
            format!("{remote_dir}/a2t-vm{i}"),
        );
        tasks.spawn(async move {
            let _vm = vm_slots.acquire().await?;
            let c = {
                let _c = connect_slots.acquire().await?;
                connect_retry(&p, i).await?
            };
            let check = |r: async_ssh2_tokio::client::CommandExecutedResult| {
                if r.exit_status == 0 {
                    Ok(())
                } else {
                    Err(format!("vm{i}: exit {}: {}", r.exit_status, r.stderr))
                }
            };
            check(
                c.execute(&format!(
                    "mkdir -p {dir} && echo provisioning vm{i} && uname -a"
                ))
                .await?,
            )?;
            c.upload_file(
                file.as_str(),
                format!("{dir}/payload.bin"),
                None,
                Some(UPLOAD_BUFFER),
                false,
            )
            .await?;
            c.upload_file(
                script.as_str(),
                format!("{dir}/setup.sh"),
                None,
                Some(UPLOAD_BUFFER),
                false,
            )
            .await?;
            check(c.execute(&format!("sh {dir}/setup.sh")).await?)?;
            let _ = c.disconnect().await;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r? {
            failed += 1;
            eprintln!("peer-async-ssh2-tokio: {e}");
        }
    }
    m.finish(failed);
    Ok(())
}

/// async-ssh2-tokio has no retry of its own: a refused or reset connect
/// (sshd's listen queue under a burst) is tried again after 100 ms.
async fn connect_retry(p: &Peer, i: usize) -> Res<Client> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match p.connect(i).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Wall time, CPU, peak RSS growth and threads of a many-session run.
struct Meter {
    start: Instant,
    cpu0: f64,
    baseline: u64,
    threads: ThreadSampler,
}

impl Meter {
    fn start() -> Meter {
        let baseline = measure::rss_kib();
        measure::reset_peak();
        Meter {
            threads: ThreadSampler::start(),
            cpu0: measure::cpu_secs(),
            baseline,
            start: Instant::now(),
        }
    }

    fn finish(self, failed: usize) {
        result("secs", self.start.elapsed().as_secs_f64());
        result("failed", failed);
        result("cpu", measure::cpu_secs() - self.cpu0);
        result(
            "rss_growth_mib",
            measure::peak_kib().saturating_sub(self.baseline) as f64 / 1024.0,
        );
        result("threads_peak", self.threads.finish());
    }
}

fn main() {
    let a = Args::from_env();
    measure::raise_nofile();
    // One current_thread runtime, as vmssh's contender runs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(async {
        let p = Arc::new(Peer::new(&a)?);
        match a.scenario.as_str() {
            "stdout_throughput" => stdout_throughput(&a, &p).await,
            "delivery_latency" => delivery_latency(&a, &p).await,
            "sftp_upload" => sftp_transfer(&a, &p, true).await,
            "sftp_download" => sftp_transfer(&a, &p, false).await,
            "concurrent_sessions" => concurrent_sessions(&a, p).await,
            "fleet" => fleet(&a, p).await,
            other => Err(format!("unknown scenario {other}").into()),
        }
    });
    if let Err(e) = r {
        eprintln!("peer-async-ssh2-tokio: {}: {e}", a.scenario);
        std::process::exit(1);
    }
}
