//! `vm_wake`: a real QEMU guest whose network comes up 8 s late (the
//! guest's init waits before configuring eth0). QEMU's user-mode network
//! accepts connections meanwhile and leaves them silent for seconds. Every
//! contender starts the moment QEMU does, in the same boot, next to a
//! banner poller (a fresh TCP connection every 50 ms, each given 300 ms for
//! the banner) that tells when the guest's sshd first answers; the figure
//! is each contender's session time minus that moment.
//!
//! Needs the guest launcher (`vmssh_testkit::qemu`) and the image
//! (`scripts/vm-image.sh`).

pub(crate) use real::vm_wake;

mod real {
    use std::collections::HashMap;
    use std::io::Read as _;
    use std::net::{SocketAddr, TcpStream};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use vmssh_testkit::qemu::{GuestSsh, Image};

    use crate::sshd::HOST;
    use crate::{Better, Env, Goal, Report, Row, Sample, collect, measure, med, spread};

    /// How late the guest's network comes up.
    const NET_DELAY: Duration = Duration::from_secs(8);
    /// OpenSSH's settings: a short ConnectTimeout (it covers the banner
    /// exchange too) and retries one second apart.
    const SSH_CONNECT_TIMEOUT: u32 = 2;
    const SSH_ATTEMPTS: u32 = 30;

    pub(crate) fn vm_wake(env: &Env, report: &mut Report) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm-image");
        let image = match Image::open(&dir) {
            Ok(i) => i,
            Err(e) => {
                report
                    .notes
                    .push(format!("vm_wake: skipped ({e}; run scripts/vm-image.sh)"));
                return;
            }
        };
        let host_key = env.data.join("vm-host-key.pub");
        std::fs::write(&host_key, image.host_key_line()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();

        let mut results: HashMap<&str, Vec<Sample>> = HashMap::new();
        let mut banners = Vec::new();
        for round in 0..env.rounds(3, 2) {
            let ssh = if round % 2 == 0 {
                GuestSsh::OpenSsh
            } else {
                GuestSsh::Dropbear
            };
            let Some(r) = one_boot(env, &rt, &image, &host_key, ssh) else {
                eprintln!("    vm_wake round {round}: no banner");
                continue;
            };
            eprintln!(
                "    vm_wake round {round} ({ssh:?}): banner {:.2} s after QEMU start; {}",
                r.banner_s,
                r.lags
                    .iter()
                    .map(|(k, v)| format!("{k} +{v:.0} ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            banners.push(r.banner_s);
            for (name, lag) in r.lags {
                results
                    .entry(name)
                    .or_default()
                    .push(Sample::from([("lag_ms".to_string(), lag)]));
            }
        }
        report.notes.push(spread(
            "vm_wake",
            &results,
            &["vmssh", "ssh", "old"],
            "lag_ms",
        ));
        report.rows.push(
            Row::new("vm_wake", "ms", Better::Lower, Goal::Below(500.0)).vals(
                med(&results, "vmssh", "lag_ms"),
                med(&results, "ssh", "lag_ms"),
                med(&results, "old", "lag_ms"),
            ),
        );
        report.notes.push(format!(
            "vm_wake: QEMU guest (TCG, user-mode network, sshd and dropbear in turn) whose network comes up {} s late; \
             ms from the guest's first banner (poller: new connection every 50 ms) to the session; sshd answered {} s \
             after QEMU started; vmssh: connect_with_retry with default settings; \
             ssh: `-o ConnectTimeout={SSH_CONNECT_TIMEOUT} -o ConnectionAttempts={SSH_ATTEMPTS}` in a loop \
             (ssh does not retry a banner timeout), up to `true` run and the connection closed",
            NET_DELAY.as_secs(),
            banners
                .iter()
                .map(|b| format!("{b:.1}"))
                .collect::<Vec<_>>()
                .join("/"),
        ));
    }

    struct BootResult {
        banner_s: f64,
        lags: Vec<(&'static str, f64)>,
    }

    fn one_boot(
        env: &Env,
        rt: &tokio::runtime::Runtime,
        image: &Image,
        host_key: &Path,
        ssh: GuestSsh,
    ) -> Option<BootResult> {
        let start_ns = measure::now_ns();
        let guest = rt
            .block_on(
                image
                    .guest()
                    .ssh(ssh)
                    .hostname("vm-wake")
                    .network_delay(NET_DELAY)
                    .boot(),
            )
            .map_err(|e| eprintln!("    vm_wake: cannot boot: {e}"))
            .ok()?;
        let port = guest.port();
        let key = image.key_path();

        // The contenders, all started now.
        let vmssh = Command::new(&env.exe)
            .args([
                "--child",
                "connect_wake",
                "--deadline",
                "90",
                "--user",
                "root",
                "--key",
            ])
            .arg(&key)
            .arg("--host-key")
            .arg(host_key)
            .arg("--ports")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ok();
        let ssh_loop = format!(
            "until ssh -F /dev/null -q -i '{key}' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=QUIET -o ConnectTimeout={SSH_CONNECT_TIMEOUT} \
             -o ConnectionAttempts={SSH_ATTEMPTS} -p {port} root@{HOST} true; do sleep 1; done; \
             echo RESULT connected_ns $(date +%s%N)",
            key = key.display()
        );
        let openssh = Command::new("timeout")
            .args(["60", "sh", "-c", &ssh_loop])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let old = env.old_bin.as_ref().and_then(|bin| {
            Command::new(bin)
                .args(["connect_wake", "--host", HOST, "--user", "root", "--key"])
                .arg(&key)
                .arg("--ports")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .ok()
        });

        let banner_ns = first_banner(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(60),
        );
        let mut lags = Vec::new();
        for (name, child) in [("vmssh", vmssh), ("ssh", openssh), ("old", old)] {
            let Some(child) = child else { continue };
            let Some((map, _)) = collect(child, name) else {
                continue;
            };
            let (Some(banner), Some(done)) = (
                banner_ns,
                map.get("connected_ns").and_then(|v| v.parse::<u128>().ok()),
            ) else {
                continue;
            };
            lags.push((name, (done as f64 - banner as f64) / 1e6));
        }
        drop(guest);
        Some(BootResult {
            banner_s: (banner_ns? as f64 - start_ns as f64) / 1e9,
            lags,
        })
    }

    /// When the server at `addr` first sends a banner to a fresh
    /// connection (ns since the epoch, like the contenders' figures). A new
    /// connection starts every 50 ms and waits up to 1 s, so a silent one
    /// never hides a banner that a newer one would get.
    fn first_banner(addr: SocketAddr, limit: Duration) -> Option<u128> {
        let give_up = Instant::now() + limit;
        let found: Arc<Mutex<Option<u128>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let mut pollers = Vec::new();
        while Instant::now() < give_up && !done.load(Ordering::Acquire) {
            let (found, done) = (found.clone(), done.clone());
            pollers.push(std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    let now = measure::now_ns();
                    let mut f = found.lock().unwrap();
                    if f.is_none_or(|t| now < t) {
                        *f = Some(now);
                    }
                    done.store(true, Ordering::Release);
                }
            }));
            std::thread::sleep(Duration::from_millis(50));
            pollers.retain(|p| !p.is_finished());
        }
        for p in pollers {
            let _ = p.join();
        }
        *found.lock().unwrap()
    }
}
