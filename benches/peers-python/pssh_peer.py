"""parallel-ssh (libssh2 through ssh2-python, on gevent) as a contender for
benches/compare.rs: many hosts from one ParallelSSHClient.

Settings: `pool_size` = the concurrency asked for (parallel-ssh's one knob
for speed), compression off (its default), retries every 100 ms. Every
"host" is 127.0.0.1 on one of the ports, as a HostConfig each. The fleet
runs as parallel-ssh is built to: each stage on every host, then the next
(run_command, copy_file over SFTP, copy_file, run_command).
"""

import os
import sys

from gevent import joinall
from pssh.clients import ParallelSSHClient
from pssh.config import HostConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure as m  # noqa: E402


def client(opts, n, pool_size):
    ports = m.ports(opts)
    hosts = [opts["host"]] * n
    cfg = [HostConfig(port=ports[i % len(ports)]) for i in range(n)]
    return ParallelSSHClient(
        hosts,
        user=opts["user"],
        pkey=opts["key"],
        host_config=cfg,
        pool_size=pool_size,
        allow_agent=False,
        num_retries=600,
        retry_delay=0.1,
        timeout=60,
    )


class Meter:
    def __init__(self):
        self.base = m.rss_kib()
        m.reset_peak()
        self.threads = m.ThreadSampler()
        self.cpu0 = m.cpu_secs()
        import time

        self.time = time.monotonic
        self.t = self.time()

    def finish(self, failed):
        m.result("secs", self.time() - self.t)
        m.result("failed", failed)
        m.result("cpu", m.cpu_secs() - self.cpu0)
        m.result("rss_growth_mib", max(m.peak_kib() - self.base, 0) / 1024)
        m.result("threads_peak", self.threads.finish())


def run_stage(c, cmd, host_args):
    out = c.run_command(cmd, host_args=host_args, stop_on_errors=False)
    c.join(out)
    bad, texts = set(), []
    for i, o in enumerate(out):
        # Drain the output (parallel-ssh reads it lazily).
        texts.append("\n".join(o.stdout or []) if o.exception is None else "")
        if o.exception is not None or o.exit_code != 0:
            bad.add(i)
            print(f"pssh_peer: host {i}: {o.exception!r} exit {o.exit_code}", file=sys.stderr)
    return texts, bad


def concurrent_sessions(opts):
    n = int(opts["sessions"])
    meter = Meter()
    c = client(opts, n, int(opts["connect-cap"]))
    texts, bad = run_stage(c, "echo %s", [(str(i),) for i in range(n)])
    for i, t in enumerate(texts):
        if i not in bad and t.strip() != str(i):
            bad.add(i)
    # All sessions are still open in the client here.
    meter.finish(len(bad))


def fleet(opts):
    n = int(opts["vms"])
    meter = Meter()
    c = client(opts, n, int(opts["concurrency"]))
    dirs = [f"{opts['remote-dir']}/pssh-vm{i}" for i in range(n)]
    _, bad = run_stage(
        c, "mkdir -p %s && echo provisioning vm%s && uname -a", [(d, str(i)) for i, d in enumerate(dirs)]
    )
    for local, name in ((opts["file"], "payload.bin"), (opts["script"], "setup.sh")):
        greenlets = c.copy_file(local, "%(dir)s/" + name, copy_args=[{"dir": d} for d in dirs])
        joinall(greenlets)
        for i, g in enumerate(greenlets):
            if g.exception is not None:
                bad.add(i)
                print(f"pssh_peer: host {i}: {g.exception!r}", file=sys.stderr)
    _, b = run_stage(c, "sh %s/setup.sh", [(d,) for d in dirs])
    bad |= b
    meter.finish(len(bad))


if __name__ == "__main__":
    m.main({"concurrent_sessions": concurrent_sessions, "fleet": fleet})
