//! The vmssh contender. It runs in a child process of the bench (the bench
//! binary re-executed with `--child SCENARIO ...`), so that its CPU time and
//! peak RSS are its own. Prints `RESULT name value` lines, like the
//! old-design contender.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;
use vmssh::fleet::{Fleet, Target};
use vmssh::provision::{ProvisionDef, Provisioner, StepKind};
use vmssh::{Auth, HostKeyPolicy, Session, SshConfig, TransferOptions};

use crate::measure::{self, LatencyMeter, SlowConsumer, ThreadSampler};
use crate::sshd::HOST;

type Res<T> = Result<T, String>;

fn result(name: &str, value: impl std::fmt::Display) {
    println!("RESULT {name} {value}");
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[derive(Debug)]
pub(crate) struct Args(pub(crate) HashMap<String, String>);

impl Args {
    pub(crate) fn parse(argv: &[String]) -> Args {
        let mut map = HashMap::new();
        for pair in argv.chunks(2) {
            if let [k, v] = pair {
                map.insert(k.trim_start_matches("--").to_string(), v.clone());
            }
        }
        Args(map)
    }

    fn get(&self, k: &str) -> Res<&str> {
        self.0
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{k}"))
    }

    fn num(&self, k: &str) -> Res<u64> {
        self.get(k)?.parse().map_err(err)
    }

    fn opt_num(&self, k: &str) -> Option<u64> {
        self.0.get(k).and_then(|v| v.parse().ok())
    }

    fn ports(&self) -> Res<Vec<u16>> {
        self.get("ports")?
            .split(',')
            .map(|p| p.parse().map_err(err))
            .collect()
    }

    fn config(&self) -> Res<SshConfig> {
        let line = std::fs::read_to_string(self.get("host-key")?).map_err(err)?;
        let mut cfg = SshConfig::new(self.get("user")?)
            .auth(Auth::key_file(self.get("key")?))
            .host_key(HostKeyPolicy::pinned(line.trim()));
        if let Some(w) = self.opt_num("window") {
            cfg = cfg.window_size(w as u32);
        }
        if let Some(p) = self.opt_num("packet") {
            cfg = cfg.max_packet_size(p as u32);
        }
        if let Some(n) = self.opt_num("nodelay") {
            cfg = cfg.nodelay(n != 0);
        }
        Ok(cfg)
    }

    fn transfer_options(&self) -> TransferOptions {
        let mut o = TransferOptions::new();
        if let Some(c) = self.opt_num("chunk") {
            o = o.chunk_size(c as u32);
        }
        if let Some(n) = self.opt_num("inflight") {
            o = o.requests_in_flight(n as usize);
        }
        if let Some(n) = self.opt_num("channels") {
            o = o.channels(n as usize);
        }
        if self.opt_num("plain") == Some(1) {
            o = o.fsync(false).atomic(false);
        }
        o
    }
}

/// Runs one scenario; the process exits non-zero on error.
pub(crate) fn main(scenario: &str, args: &Args) -> Res<()> {
    measure::raise_nofile();
    // The default is a current_thread runtime: one thread does it all, as
    // an orchestrator driving many VMs from one runtime thread would.
    let rt = if args.0.get("rt").map(String::as_str) == Some("multi_thread")
        || scenario == "testkit_server"
    {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .map_err(err)?;
    rt.block_on(async {
        match scenario {
            "stdout_throughput" => stdout_throughput(args).await,
            "delivery_latency" => delivery_latency(args).await,
            "slow_consumer_rss" => slow_consumer(args).await,
            "sftp_upload" => sftp_transfer(args, true).await,
            "sftp_download" => sftp_transfer(args, false).await,
            "connect_wake" => connect_wake(args).await,
            "concurrent_sessions" => concurrent_sessions(args).await,
            "concurrent_sessions_testkit" => concurrent_sessions_testkit(args).await,
            "fleet" => fleet(args).await,
            "small_steps" => small_steps(args).await,
            "testkit_server" => testkit_server(args).await,
            other => Err(format!("unknown scenario {other}")),
        }
    })
}

async fn connect(args: &Args) -> Res<Session> {
    let port = args.ports()?[0];
    Session::connect(HOST, port, &args.config()?)
        .await
        .map_err(err)
}

async fn stdout_throughput(args: &Args) -> Res<()> {
    let bytes = args.num("bytes")?;
    let sess = connect(args).await?;
    let cpu0 = measure::cpu_secs();
    let mut s = sess
        .exec_streaming(&measure::throughput_command(bytes))
        .await
        .map_err(err)?;
    let mut n = 0u64;
    let mut stderr = Vec::new();
    while let Some(c) = s.next().await {
        let c = c.map_err(err)?;
        if c.is_stderr() {
            stderr.extend_from_slice(c.bytes());
        } else {
            n += c.bytes().len() as u64;
        }
    }
    let end = measure::now_ns();
    let status = s.exit_status().await.map_err(err)?;
    if n != bytes || !status.success() {
        return Err(format!("got {n} of {bytes} bytes, {status}"));
    }
    let start = measure::parse_start(&stderr).ok_or("no start time on stderr")?;
    let secs = (end - start) as f64 / 1e9;
    result("secs", secs);
    result("mbps", n as f64 / 1e6 / secs);
    result("cpu", measure::cpu_secs() - cpu0);
    Ok(())
}

async fn delivery_latency(args: &Args) -> Res<()> {
    let sess = connect(args).await?;
    let mut s = sess
        .exec_streaming(&measure::latency_command(args.num("lines")?))
        .await
        .map_err(err)?;
    let mut meter = LatencyMeter::default();
    while let Some(c) = s.next().await {
        let c = c.map_err(err)?;
        if !c.is_stderr() {
            meter.feed(c.bytes(), measure::now_ns());
        }
    }
    result("samples", meter.samples.len());
    result("p50_ms", measure::percentile(&meter.samples, 50.0));
    result("p99_ms", measure::percentile(&meter.samples, 99.0));
    Ok(())
}

async fn slow_consumer(args: &Args) -> Res<()> {
    let bytes = args.num("bytes")?;
    let sess = connect(args).await?;
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let mut s = sess
        .exec_streaming(&format!("head -c {bytes} /dev/zero"))
        .await
        .map_err(err)?;
    let mut slow = SlowConsumer::new(bytes, Duration::from_millis(args.num("pause-ms")?));
    let mut n = 0u64;
    while let Some(c) = s.next().await {
        let len = c.map_err(err)?.bytes().len() as u64;
        n += len;
        if let Some(d) = slow.consumed(len) {
            tokio::time::sleep(d).await;
        }
    }
    if n != bytes {
        return Err(format!("got {n} of {bytes} bytes"));
    }
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    Ok(())
}

async fn sftp_transfer(args: &Args, up: bool) -> Res<()> {
    let sess = connect(args).await?;
    let local = PathBuf::from(args.get("local")?);
    let remote = args.get("remote")?;
    let opts = args.transfer_options();
    // Timed on an open SFTP channel, as `sftp -b`'s put and get are timed
    // (and scp's figure has its setup subtracted): the transfer, not the
    // channel's setup (3 round trips, `setup_secs`).
    let setup = Instant::now();
    let sftp = sess.sftp().await.map_err(err)?;
    result("setup_secs", setup.elapsed().as_secs_f64());
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    let n = if up {
        sftp.upload_with(&local, remote, &opts).await
    } else {
        sftp.download_with(remote, &local, &opts).await
    }
    .map_err(err)?;
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

async fn connect_wake(args: &Args) -> Res<()> {
    let port = args.ports()?[0];
    let cfg = args.config()?;
    result("started_ns", measure::now_ns());
    let deadline = Duration::from_secs(args.opt_num("deadline").unwrap_or(30));
    let _sess = Session::connect_with_retry(HOST, port, &cfg, deadline)
        .await
        .map_err(err)?;
    result("connected_ns", measure::now_ns());
    Ok(())
}

async fn concurrent_sessions(args: &Args) -> Res<()> {
    let cfg = args.config()?;
    many_sessions(HOST, &args.ports()?, &cfg, args).await
}

/// The same sessions against one `vmssh_testkit::TestServer` started in
/// this process, on the same current_thread runtime as the clients: no
/// sshd, no other process but the commands' shells. RSS, threads and CPU
/// are the client's and the server's together.
async fn concurrent_sessions_testkit(args: &Args) -> Res<()> {
    let server = vmssh_testkit::TestServer::start().await.map_err(err)?;
    many_sessions(server.host(), &[server.port()], &server.config(), args).await?;
    let failures = server.failures();
    if !failures.is_empty() {
        return Err(format!("testkit server tasks failed: {failures:?}"));
    }
    Ok(())
}

/// `--sessions` sessions spread over `ports`, at most `--connect-cap`
/// connects in flight, each running `echo N`; all held open until the last
/// is done. Prints wall time, failures, CPU, peak RSS growth and threads.
async fn many_sessions(host: &str, ports: &[u16], cfg: &SshConfig, args: &Args) -> Res<()> {
    let n = args.num("sessions")? as usize;
    let cap = Arc::new(Semaphore::new(args.num("connect-cap")? as usize));
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let threads = ThreadSampler::start();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (cfg, cap, port) = (cfg.clone(), cap.clone(), ports[i % ports.len()]);
        let host = host.to_string();
        tasks.spawn(async move {
            let sess = {
                let _permit = cap.acquire().await.map_err(err)?;
                Session::connect_with_retry(&host, port, &cfg, Duration::from_secs(60))
                    .await
                    .map_err(err)?
            };
            let out = sess.exec(&format!("echo {i}")).await.map_err(err)?;
            if out.stdout_lossy().trim() != i.to_string() || !out.status.success() {
                return Err(format!("session {i}: {out:?}"));
            }
            // Held until every session has run its command.
            Ok(sess)
        });
    }
    let mut held = Vec::new();
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        match r.map_err(err)? {
            Ok(s) => held.push(s),
            Err(e) => {
                failed += 1;
                eprintln!("vmssh child: {e}");
            }
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
    drop(held);
    Ok(())
}

async fn fleet(args: &Args) -> Res<()> {
    let ports = args.ports()?;
    let n = args.num("vms")? as usize;
    let cfg = args.config()?;
    let file = PathBuf::from(args.get("file")?);
    let script = PathBuf::from(args.get("script")?);
    let remote_dir = args.get("remote-dir")?;
    let steps = args
        .get("steps")
        .map_or("command,file,script".to_string(), |s| s.to_string());
    let kinds: Vec<&str> = steps.split(',').filter(|k| !k.is_empty()).collect();
    if let Some(bad) = kinds
        .iter()
        .find(|k| !["true", "command", "file", "script"].contains(k))
    {
        return Err(format!("--steps: unknown step {bad}"));
    }
    let targets = (0..n)
        .map(|i| {
            let dir = format!("{remote_dir}/vm{i}");
            // `--steps`: which of the plan's steps (and `true`: a bare
            // command) run, in order; the whole plan by default.
            let steps = kinds
                .iter()
                .map(|kind| match *kind {
                    "true" => ProvisionDef::inline("true"),
                    "command" => ProvisionDef::inline(format!(
                        "mkdir -p {dir} && echo provisioning vm{i} && uname -a"
                    )),
                    "file" => ProvisionDef::file(&file, format!("{dir}/payload.bin")),
                    _ => ProvisionDef::script(&script),
                })
                .collect();
            Target::new(
                format!("vm{i}"),
                HOST,
                ports[i % ports.len()],
                cfg.clone(),
                steps,
            )
        })
        .collect();
    let baseline = measure::rss_kib();
    measure::reset_peak();
    let threads = ThreadSampler::start();
    let cpu0 = measure::cpu_secs();
    let start = Instant::now();
    let report = Fleet::new()
        .concurrency(args.num("concurrency")? as usize)
        .connect_concurrency(args.num("connect-cap")? as usize)
        .provision(targets)
        .await;
    result("secs", start.elapsed().as_secs_f64());
    result("cpu", measure::cpu_secs() - cpu0);
    result("failed", report.failed().len());
    if !report.all_succeeded() {
        eprintln!("vmssh child: {}", report.summary());
    }
    result(
        "rss_growth_mib",
        measure::peak_kib().saturating_sub(baseline) as f64 / 1024.0,
    );
    result("threads_peak", threads.finish());
    Ok(())
}

/// Ten small steps on one session (connected beforehand): five
/// `inline "true"` and five file steps of 2 bytes, alternating. Prints the
/// wall time and the inline and file steps' own durations.
async fn small_steps(args: &Args) -> Res<()> {
    let sess = connect(args).await?;
    let file = PathBuf::from(args.get("file")?);
    let dir = format!("{}/vmssh-{}", args.get("remote-dir")?, std::process::id());
    sess.exec(&format!("mkdir -p {dir}")).await.map_err(err)?;
    let steps: Vec<ProvisionDef> = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                ProvisionDef::inline("true")
            } else {
                ProvisionDef::file(&file, format!("{dir}/step{i}.txt"))
            }
        })
        .collect();
    let start = Instant::now();
    let reports = Provisioner::new("vm")
        .run(&sess, &steps)
        .await
        .map_err(err)?;
    result("secs", start.elapsed().as_secs_f64());
    let sum = |file_steps: bool| -> f64 {
        reports
            .iter()
            .zip(&steps)
            .filter(|(_, s)| matches!(s.kind(), StepKind::File { .. }) == file_steps)
            .map(|(r, _)| r.duration.as_secs_f64())
            .sum()
    };
    result("inline_secs", sum(false));
    result("file_secs", sum(true));
    // Script steps, after an inline one (as in a plan, the SFTP channel
    // opens while it runs): upload, run, removal.
    let scripts = std::env::temp_dir().join(format!("vmssh-small-steps-{}", std::process::id()));
    std::fs::create_dir_all(&scripts).map_err(err)?;
    std::fs::write(scripts.join("step.sh"), "#!/bin/sh\ntrue\n").map_err(err)?;
    let steps: Vec<ProvisionDef> = std::iter::once(ProvisionDef::inline("true"))
        .chain((0..5).map(|_| ProvisionDef::script("step.sh")))
        .collect();
    let reports = Provisioner::new("vm")
        .base_dir(&scripts)
        .run(&sess, &steps)
        .await
        .map_err(err)?;
    let _ = std::fs::remove_dir_all(&scripts);
    result(
        "script_secs",
        reports[1..]
            .iter()
            .map(|r| r.duration.as_secs_f64())
            .sum::<f64>(),
    );
    // Plain uploads (`Session::upload`), five back to back after a
    // command: the first takes the SFTP channel the plans kept, each
    // later one the channel the one before kept. Then the same on a
    // session that keeps none (`sftp_idle_timeout` zero): each upload
    // opens its own, as before the channel was kept.
    let fresh = Session::connect(
        HOST,
        args.ports()?[0],
        &args.config()?.sftp_idle_timeout(Duration::ZERO),
    )
    .await
    .map_err(err)?;
    for (key, sess) in [("plain_secs", &sess), ("plain_fresh_secs", &fresh)] {
        sess.exec("true").await.map_err(err)?;
        let start = Instant::now();
        for i in 0..5 {
            sess.upload(&file, &format!("{dir}/{key}{i}.txt"))
                .await
                .map_err(err)?;
        }
        result(key, start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// A `vmssh_testkit::TestServer` for other processes (the testkit fleet):
/// writes its client key and host key line into `--dir`, prints
/// `RESULT port N`, and serves until its stdin closes.
async fn testkit_server(args: &Args) -> Res<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use tokio::io::AsyncReadExt as _;

    let dir = PathBuf::from(args.get("dir")?);
    let server = vmssh_testkit::TestServer::start().await.map_err(err)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("client_key"))
        .and_then(|mut f| f.write_all(server.client_private_key_pem().as_bytes()))
        .map_err(err)?;
    std::fs::write(dir.join("host_key_line"), server.host_public_key_line()).map_err(err)?;
    result("port", server.port());
    result("user", server.user());
    std::io::stdout().flush().map_err(err)?;
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    let failures = server.failures();
    if !failures.is_empty() {
        return Err(format!("testkit server tasks failed: {failures:?}"));
    }
    Ok(())
}
