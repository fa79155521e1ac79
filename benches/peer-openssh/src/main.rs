//! The `openssh` crate with `openssh-sftp-client` as a contender for
//! `benches/compare.rs`, at their fastest documented settings:
//! `native-mux` (commands over the ControlMaster's socket, no `ssh`
//! process per command), the same cipher as every other contender
//! (AES-GCM: `aes128-gcm@openssh.com`, or aes256 where a server has no
//! aes128, through an ssh config file), and for SFTP
//! 16 writes or reads of 255 KiB (the server's maximum) in flight, at
//! offsets through clones of the file handle: the crate pipelines whatever
//! requests are outstanding (`File::write` alone waits for each reply).
//!
//! The work is done by `ssh` processes (one ControlMaster per connection),
//! so this process is a child subreaper and measures its whole process
//! tree: CPU of itself, its live descendants and those it reaped; RSS and
//! threads summed over the tree, sampled every 20 ms.

#[path = "../../compare/args.rs"]
mod args;
#[path = "../../compare/measure.rs"]
#[allow(dead_code)]
mod measure;

use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use args::{Args, Res, result};
use bytes::BytesMut;
use futures::StreamExt;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use openssh_sftp_client::{Sftp, SftpOptions};
use tokio::io::{AsyncReadExt, AsyncSeek, AsyncWriteExt};
use tokio::sync::Semaphore;

const IN_FLIGHT: usize = 16;

struct Peer {
    host: String,
    ports: Vec<u16>,
    user: String,
    key: String,
    config: std::path::PathBuf,
    control_dir: std::path::PathBuf,
}

impl Peer {
    fn new(a: &Args) -> Res<Peer> {
        let dir = std::env::temp_dir().join(format!("peer-openssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("ssh_config");
        std::fs::write(
            &config,
            "Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com\nStrictHostKeyChecking no\nUserKnownHostsFile /dev/null\n\
             LogLevel ERROR\nIdentitiesOnly yes\n",
        )?;
        Ok(Peer {
            host: a.get("host")?.to_string(),
            ports: a.ports()?,
            user: a.get("user")?.to_string(),
            key: a.get("key")?.to_string(),
            config,
            control_dir: dir,
        })
    }

    async fn connect(&self, i: usize) -> Res<Session> {
        let mut b = SessionBuilder::default();
        b.user(self.user.clone())
            .port(self.ports[i % self.ports.len()])
            .keyfile(&self.key)
            .config_file(&self.config)
            .control_directory(&self.control_dir)
            .known_hosts_check(KnownHosts::Accept);
        Ok(b.connect_mux(&self.host).await?)
    }

    async fn connect_retry(&self, i: usize) -> Res<Session> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.connect(i).await {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}

// ---------------------------------------------------------------------------
// The process tree

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let all: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &all {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn stat_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(i) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[i + 2..].split(' ').collect();
    // Fields 14 and 15 (utime, stime), counted from the state at index 0 = field 3.
    let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn status_of(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(':')?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// CPU seconds of this process, the children it reaped and its live
/// descendants.
fn tree_cpu() -> f64 {
    // SAFETY: getrusage writes into the local struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let reaped = measure::tv_secs(ru.ru_utime) + measure::tv_secs(ru.ru_stime);
    measure::cpu_secs()
        + reaped
        + children_of(std::process::id())
            .into_iter()
            .map(stat_cpu)
            .sum::<f64>()
}

/// Reaps orphaned descendants (ControlMasters reparented to us), so that
/// their CPU lands in RUSAGE_CHILDREN.
fn reap_orphans() {
    loop {
        let mut status = 0;
        // SAFETY: non-blocking wait for any child.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// Sum of RSS (KiB) and threads over the tree, sampled; the maximum kept.
struct TreeSampler {
    stop: Arc<AtomicBool>,
    rss: Arc<AtomicU64>,
    threads: Arc<AtomicU64>,
    base_rss: u64,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl TreeSampler {
    fn sample() -> (u64, u64) {
        let me = std::process::id();
        let mut pids = children_of(me);
        pids.push(me);
        let rss = pids.iter().map(|&p| status_of(p, "VmRSS")).sum();
        // Minus the sampler's own thread.
        let threads = pids.iter().map(|&p| status_of(p, "Threads")).sum::<u64>() - 1;
        (rss, threads)
    }

    fn start() -> TreeSampler {
        let (base_rss, _) = Self::sample();
        let stop = Arc::new(AtomicBool::new(false));
        let (rss, threads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, r, t) = (stop.clone(), rss.clone(), threads.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let (rs, th) = Self::sample();
                r.fetch_max(rs, Ordering::Relaxed);
                t.fetch_max(th, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        TreeSampler {
            stop,
            rss,
            threads,
            base_rss,
            handle: Some(handle),
        }
    }

    /// (peak RSS growth MiB, peak threads)
    fn finish(mut self) -> (f64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        (
            self.rss
                .load(Ordering::Relaxed)
                .saturating_sub(self.base_rss) as f64
                / 1024.0,
            self.threads.load(Ordering::Relaxed),
        )
    }
}

// ---------------------------------------------------------------------------
// Scenarios

async fn stdout_throughput(a: &Args, p: &Peer) -> Res<()> {
    let bytes = a.num("bytes")?;
    let s = p.connect(0).await?;
    let cpu0 = tree_cpu();
    let mut child = s
        .command("sh")
        .arg("-c")
        .arg(measure::throughput_command(bytes))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await?;
    let mut out = child.stdout().take().ok_or("no stdout")?;
    let mut err = child.stderr().take().ok_or("no stderr")?;
    let mut stderr = Vec::new();
    let count = async {
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = out.read(&mut buf).await?;
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        Ok::<u64, std::io::Error>(n)
    };
    let (n, e) = tokio::join!(count, err.read_to_end(&mut stderr));
    let (n, _) = (n?, e?);
    let end = measure::now_ns();
    let status = child.wait().await?;
    let cpu = tree_cpu() - cpu0;
    if n != bytes || !status.success() {
        return Err(format!("got {n} of {bytes} bytes, {status:?}").into());
    }
    let start = measure::parse_start(&stderr).ok_or("no start time on stderr")?;
    let secs = (end - start) as f64 / 1e9;
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", cpu);
    s.close().await?;
    Ok(())
}

fn sftp_options() -> SftpOptions {
    SftpOptions::new().max_pending_requests(NonZeroU16::new(100).unwrap())
}

/// Requests of this size, [`IN_FLIGHT`] at once (the server's maximum
/// read and write length; the crate splits larger ones).
const CHUNK: u64 = 255 * 1024;

/// Writes at offsets through clones of one handle, [`IN_FLIGHT`] at once:
/// the crate pipelines whatever requests are outstanding.
async fn upload(sftp: &Sftp, local: &Path, remote: &str) -> Res<u64> {
    let size = tokio::fs::metadata(local).await?.len();
    let mut src = tokio::fs::File::open(local).await?;
    let f = sftp.create(remote).await?;
    let mut pending = futures::stream::FuturesOrdered::new();
    for i in 0..size.div_ceil(CHUNK) {
        let off = i * CHUNK;
        let mut buf = vec![0u8; CHUNK.min(size - off) as usize];
        src.read_exact(&mut buf).await?;
        let mut g = f.clone();
        pending.push_back(async move {
            std::pin::Pin::new(&mut g).start_seek(std::io::SeekFrom::Start(off))?;
            g.write_all(&buf).await?;
            Ok::<_, openssh_sftp_client::Error>(())
        });
        if pending.len() >= IN_FLIGHT {
            pending.next().await.ok_or("no write")??;
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    f.close().await?;
    Ok(size)
}

/// Reads at offsets through clones of one handle, [`IN_FLIGHT`] at once.
async fn download(sftp: &Sftp, remote: &str, local: &Path) -> Res<u64> {
    let mut f = sftp.open(remote).await?;
    let size = f.metadata().await?.len().ok_or("no size")?;
    let mut out = tokio::fs::File::create(local).await?;
    let proto = f.clone();
    let reads = futures::stream::iter((0..size.div_ceil(CHUNK)).map(move |i| {
        let mut g = proto.clone();
        async move {
            let off = i * CHUNK;
            let len = CHUNK.min(size - off) as usize;
            std::pin::Pin::new(&mut g).start_seek(std::io::SeekFrom::Start(off))?;
            let b = g.read_all(len, BytesMut::with_capacity(len)).await?;
            Ok::<_, openssh_sftp_client::Error>(b)
        }
    }))
    .buffered(IN_FLIGHT);
    tokio::pin!(reads);
    let mut n = 0u64;
    while let Some(b) = reads.next().await {
        let b = b?;
        out.write_all(&b).await?;
        n += b.len() as u64;
    }
    out.flush().await?;
    f.close().await?;
    Ok(n)
}

async fn sftp_transfer(a: &Args, p: &Peer, up: bool) -> Res<()> {
    let s = Arc::new(p.connect(0).await?);
    let sftp = Sftp::from_clonable_session(s.clone(), sftp_options()).await?;
    let (local, remote) = (Path::new(a.get("local")?), a.get("remote")?);
    let m = TreeSampler::start();
    let cpu0 = tree_cpu();
    let start = Instant::now();
    let n = if up {
        upload(&sftp, local, remote).await?
    } else {
        download(&sftp, remote, local).await?
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = tree_cpu() - cpu0;
    let (rss, _) = m.finish();
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", cpu);
    result("rss_growth_mib", rss);
    sftp.close().await?;
    Ok(())
}

struct Meter {
    start: Instant,
    cpu0: f64,
    tree: TreeSampler,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            tree: TreeSampler::start(),
            cpu0: tree_cpu(),
            start: Instant::now(),
        }
    }

    fn finish(self, failed: usize) {
        let secs = self.start.elapsed().as_secs_f64();
        let cpu = tree_cpu() - self.cpu0;
        let (rss, threads) = self.tree.finish();
        result("secs", secs);
        result("failed", failed);
        result("cpu", cpu);
        result("rss_growth_mib", rss);
        result("threads_peak", threads);
    }
}

async fn concurrent_sessions(a: &Args, p: Arc<Peer>) -> Res<()> {
    let n = a.num("sessions")? as usize;
    let cap = Arc::new(Semaphore::new(a.num("connect-cap")? as usize));
    let m = Meter::start();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (p, cap) = (p.clone(), cap.clone());
        tasks.spawn(async move {
            let s = {
                let _permit = cap.acquire().await?;
                p.connect_retry(i).await?
            };
            let out = s.command("echo").arg(i.to_string()).output().await?;
            if String::from_utf8_lossy(&out.stdout).trim() != i.to_string() {
                return Err::<Session, Box<dyn std::error::Error + Send + Sync>>(
                    format!("session {i}: {out:?}").into(),
                );
            }
            Ok(s)
        });
    }
    let mut held = Vec::new();
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(s) => held.push(s),
            Err(e) => {
                failed += 1;
                eprintln!("peer-openssh: {e}");
            }
        }
    }
    m.finish(failed);
    for s in held {
        let _ = s.close().await;
    }
    Ok(())
}

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
            format!("{remote_dir}/openssh-vm{i}"),
        );
        tasks.spawn(async move {
            let _vm = vm_slots.acquire().await?;
            let s = Arc::new({
                let _c = connect_slots.acquire().await?;
                p.connect_retry(i).await?
            });
            let run = |cmd: String| {
                let s = s.clone();
                async move {
                    let out = s.command("sh").arg("-c").arg(&cmd).output().await?;
                    if out.status.success() {
                        Ok(())
                    } else {
                        Err::<(), Box<dyn std::error::Error + Send + Sync>>(
                            format!("vm{i}: {cmd}: {out:?}").into(),
                        )
                    }
                }
            };
            run(format!(
                "mkdir -p {dir} && echo provisioning vm{i} && uname -a"
            ))
            .await?;
            let sftp = Sftp::from_clonable_session(s.clone(), sftp_options()).await?;
            upload(&sftp, Path::new(&file), &format!("{dir}/payload.bin")).await?;
            upload(&sftp, Path::new(&script), &format!("{dir}/setup.sh")).await?;
            sftp.close().await?;
            run(format!("sh {dir}/setup.sh")).await?;
            if let Ok(s) = Arc::try_unwrap(s) {
                let _ = s.close().await;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r? {
            failed += 1;
            eprintln!("peer-openssh: {e}");
        }
    }
    reap_orphans();
    m.finish(failed);
    Ok(())
}

fn main() {
    let a = Args::from_env();
    measure::raise_nofile();
    // ControlMasters daemonize: make them our descendants (and zombies we
    // reap), so that their CPU and memory are counted.
    // SAFETY: prctl with plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(async {
        let p = Arc::new(Peer::new(&a)?);
        match a.scenario.as_str() {
            "stdout_throughput" => stdout_throughput(&a, &p).await,
            "sftp_upload" => sftp_transfer(&a, &p, true).await,
            "sftp_download" => sftp_transfer(&a, &p, false).await,
            "concurrent_sessions" => concurrent_sessions(&a, p).await,
            "fleet" => fleet(&a, p).await,
            other => Err(format!("unknown scenario {other}").into()),
        }
    });
    reap_orphans();
    if let Err(e) = r {
        eprintln!("peer-openssh: {}: {e}", a.scenario);
        std::process::exit(1);
    }
}
