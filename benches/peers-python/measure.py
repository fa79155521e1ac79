"""Measurements and the harness protocol for the Python contenders of
benches/compare.rs, the same as benches/compare/measure.rs and args.rs:
`SCENARIO --key value ...` in, `RESULT name value` lines out.

A contender that does its work in child processes (Ansible's ssh) makes
itself a child subreaper and measures its whole process tree.
"""

import ctypes
import os
import resource
import sys
import threading
import time


def result(name, value):
    print(f"RESULT {name} {value}", flush=True)


def args():
    argv = sys.argv[1:]
    scenario = argv[0] if argv else ""
    opts = {}
    for k, v in zip(argv[1::2], argv[2::2]):
        opts[k.lstrip("-")] = v
    return scenario, opts


def ports(opts):
    return [int(p) for p in opts["ports"].split(",")]


def cpu_secs():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib():
    return _status("self", "VmRSS")


def peak_kib():
    return _status("self", "VmHWM")


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def now_ns():
    return time.time_ns()


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    rank = -(-p / 100.0 * len(v) // 1)
    rank = int(min(max(rank, 1), len(v)))
    return v[rank - 1]


def throughput_command(n):
    return f"date +%s%N >&2; head -c {n} /dev/zero"


def latency_command(lines):
    return (
        "perl -MTime::HiRes=clock_gettime,CLOCK_REALTIME -e '$|=1; for (1.." + str(lines) + ") { "
        "my $t = clock_gettime(CLOCK_REALTIME); my $s = int($t); "
        'printf("%d%09d\\n", $s, int(($t - $s) * 1e9)); select(undef, undef, undef, 0.01) }\''
    )


def parse_start(stderr):
    return int(stderr.split()[0])


class LatencyMeter:
    def __init__(self):
        self.partial = b""
        self.samples = []

    def feed(self, data, arrived_ns):
        self.partial += data
        while b"\n" in self.partial:
            line, self.partial = self.partial.split(b"\n", 1)
            try:
                self.samples.append((arrived_ns - int(line.strip())) / 1e6)
            except ValueError:
                pass


class ThreadSampler:
    """Peak thread count of this process (the sampler's own not counted)."""

    def __init__(self):
        self.max = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.max = max(self.max, _status("self", "Threads") - 1)
            time.sleep(0.005)

    def finish(self):
        self._stop.set()
        self._t.join()
        return self.max


# --- process trees ---------------------------------------------------------


def become_subreaper():
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def descendants(pid):
    parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parent[int(name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


def tree_cpu():
    """CPU of this process, its reaped children and its live descendants."""
    hz = os.sysconf("SC_CLK_TCK")
    live = 0.0
    for p in descendants(os.getpid()):
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
            fields = stat[stat.rfind(")") + 2 :].split()
            live += (int(fields[11]) + int(fields[12])) / hz
        except (OSError, ValueError, IndexError):
            pass
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cpu_secs() + ch.ru_utime + ch.ru_stime + live


def reap_all(signal_first=None):
    """Ends (with `signal_first`) and reaps every descendant left."""
    import signal

    if signal_first is not None:
        for p in descendants(os.getpid()):
            try:
                os.kill(p, signal_first)
            except OSError:
                pass
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG if signal_first is None else 0)
        except ChildProcessError:
            return
        if pid == 0:
            return


class TreeSampler:
    """Peak of RSS and threads summed over this process and its
    descendants, sampled every 20 ms."""

    def __init__(self):
        self.base_rss, _ = self._sample()
        self.max_rss = 0
        self.max_threads = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    @staticmethod
    def _sample():
        pids = descendants(os.getpid()) + [os.getpid()]
        return (
            sum(_status(p, "VmRSS") for p in pids),
            sum(_status(p, "Threads") for p in pids) - 1,
        )

    def _run(self):
        while not self._stop.is_set():
            rss, threads = self._sample()
            self.max_rss = max(self.max_rss, rss)
            self.max_threads = max(self.max_threads, threads)
            time.sleep(0.02)

    def finish(self):
        self._stop.set()
        self._t.join()
        return max(self.max_rss - self.base_rss, 0) / 1024.0, self.max_threads


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(scenarios):
    """Runs `scenarios[SCENARIO](opts)`; exit 1 with a message on error."""
    scenario, opts = args()
    raise_nofile()
    f = scenarios.get(scenario)
    if f is None:
        print(f"{sys.argv[0]}: unknown scenario {scenario}", file=sys.stderr)
        sys.exit(1)
    try:
        f(opts)
    except Exception as e:  # the harness only needs to know it failed
        print(f"{sys.argv[0]}: {scenario}: {e!r}", file=sys.stderr)
        sys.exit(1)
