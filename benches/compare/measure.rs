//! Measurements of the current process (Linux `/proc` and `getrusage`),
//! shared by the compare bench and the old-design contender
//! (`benches/old-design`, which includes this file by path).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`) or a plain count
/// (`Threads`).
pub(crate) fn status_field(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size now, KiB.
pub(crate) fn rss_kib() -> u64 {
    status_field("VmRSS").unwrap_or(0)
}

/// Peak resident set size since start (or since [`reset_peak`]), KiB.
pub(crate) fn peak_kib() -> u64 {
    status_field("VmHWM").unwrap_or(0)
}

/// Resets `VmHWM` to the current RSS (Linux >= 4.0), so that the peak of
/// what follows can be told from the setup's.
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// User + system CPU seconds of this process so far.
pub(crate) fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage struct.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    tv_secs(ru.ru_utime) + tv_secs(ru.ru_stime)
}

/// CPU seconds of the processes `pids` and of their children that have
/// ended and been reaped (from /proc/PID/stat: utime, stime, cutime,
/// cstime): for a server's listener, everything it served once the
/// connections are over (each connection's process is its child, and
/// reaps the commands it ran).
pub(crate) fn reaped_tree_cpu_secs(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // Fields after the command name (which may hold spaces), from
            // field 3 on: utime, stime, cutime and cstime are fields 14-17.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>() as f64
                / hz
        })
        .sum()
}

/// Busy CPU seconds of the whole machine so far (every process: the
/// servers' too), from /proc/stat: user, nice, system, irq, softirq and
/// steal, without idle and iowait.
pub(crate) fn machine_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<u64>() as f64
        / hz
}

pub(crate) fn tv_secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// Raises the open-files soft limit to the hard limit (a thousand sessions
/// need a thousand sockets).
pub(crate) fn raise_nofile() {
    // SAFETY: plain rlimit calls on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Wall-clock time in nanoseconds since the epoch (comparable with the
/// remote side's `date +%s%N`: same machine, same clock).
pub(crate) fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The `p`-th percentile (0..=100) by nearest rank; NaN when empty.
pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Samples this process's thread count every few milliseconds and keeps
/// the maximum (the sampler's own thread is not counted).
#[derive(Debug)]
pub(crate) struct ThreadSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ThreadSampler {
    pub(crate) fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let n = status_field("Threads").unwrap_or(0).saturating_sub(1);
                m.fetch_max(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        ThreadSampler {
            stop,
            max,
            handle: Some(handle),
        }
    }

    pub(crate) fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// A consumer that falls behind on purpose: 1 ms of sleep per 2 MiB
/// consumed, and a long pause at 1/4, 1/2 and 3/4 of the expected total.
#[derive(Debug)]
pub(crate) struct SlowConsumer {
    total: u64,
    pause: Duration,
    seen: u64,
    next_tick: u64,
    pauses_done: u64,
}

impl SlowConsumer {
    pub(crate) fn new(total: u64, pause: Duration) -> Self {
        SlowConsumer {
            total,
            pause,
            seen: 0,
            next_tick: 2 << 20,
            pauses_done: 0,
        }
    }

    /// Records `n` more bytes; returns how long to stop reading now.
    pub(crate) fn consumed(&mut self, n: u64) -> Option<Duration> {
        self.seen += n;
        let quarter = self.total / 4;
        if self.pauses_done < 3 && quarter > 0 && self.seen >= quarter * (self.pauses_done + 1) {
            self.pauses_done += 1;
            return Some(self.pause);
        }
        if self.seen >= self.next_tick {
            self.next_tick += 2 << 20;
            return Some(Duration::from_millis(1));
        }
        None
    }
}

/// Parses newline-separated nanosecond timestamps out of a byte stream that
/// arrives in arbitrary pieces; each complete line gives one latency sample
/// (arrival minus the timestamp), in milliseconds.
#[derive(Debug, Default)]
pub(crate) struct LatencyMeter {
    partial: Vec<u8>,
    pub(crate) samples: Vec<f64>,
}

impl LatencyMeter {
    pub(crate) fn feed(&mut self, data: &[u8], arrived_ns: u128) {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            if let Ok(sent) = text.trim().parse::<u128>() {
                let ms = (arrived_ns as f64 - sent as f64) / 1e6;
                self.samples.push(ms);
            }
        }
    }
}

/// The remote program of the latency scenario: prints a nanosecond
/// timestamp every 10 ms, `lines` times, unbuffered.
pub(crate) fn latency_command(lines: u64) -> String {
    format!(
        "perl -MTime::HiRes=clock_gettime,CLOCK_REALTIME -e '$|=1; for (1..{lines}) {{ \
         my $t = clock_gettime(CLOCK_REALTIME); my $s = int($t); \
         printf(\"%d%09d\\n\", $s, int(($t - $s) * 1e9)); select(undef, undef, undef, 0.01) }}'"
    )
}

/// The remote program of the throughput scenarios: prints its start time
/// (ns) on stderr, then `bytes` zeros on stdout. Throughput is measured
/// from that start to the moment the client has everything, the same way
/// for every contender (ssh's stdout can then go to /dev/null: a pipe to
/// the harness would cost ssh more than the transfer).
pub(crate) fn throughput_command(bytes: u64) -> String {
    format!("date +%s%N >&2; head -c {bytes} /dev/zero")
}

/// The start time printed by [`throughput_command`].
pub(crate) fn parse_start(stderr: &[u8]) -> Option<u128> {
    String::from_utf8_lossy(stderr)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
