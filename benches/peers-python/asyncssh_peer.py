"""asyncssh as a contender for benches/compare.rs.

Settings: AES-GCM (the cipher every contender negotiates), no
compression, asyncssh's default 2 MiB window and 32 KiB packets; SFTP
put/get with asyncssh's own defaults, which already follow the server's
limits (OpenSSH: 255 KiB blocks, 16 requests in flight); output read in
256 KiB pieces. Many sessions: asyncio.gather with semaphores for connects
and VMs in flight, on one event loop.
"""

import asyncio
import os
import sys

import asyncssh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure as m  # noqa: E402

READ = 256 * 1024


def options(opts):
    with open(opts["host-key"]) as f:
        host_key = asyncssh.import_public_key(f.read().strip())
    return dict(
        username=opts["user"],
        client_keys=[opts["key"]],
        known_hosts=([host_key], [], []),
        encryption_algs=["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"],
        compression_algs=None,
        agent_path=None,
    )


async def connect(opts, i=0, retry=False):
    ports = m.ports(opts)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        try:
            return await asyncssh.connect(opts["host"], ports[i % len(ports)], **options(opts))
        except (OSError, asyncssh.Error):
            if not retry or loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def stdout_throughput(opts):
    n_expected = int(opts["bytes"])
    async with await connect(opts) as conn:
        cpu0 = m.cpu_secs()
        async with conn.create_process(m.throughput_command(n_expected), encoding=None) as proc:
            async def count():
                n = 0
                while True:
                    b = await proc.stdout.read(READ)
                    if not b:
                        return n
                    n += len(b)

            n, err = await asyncio.gather(count(), proc.stderr.read())
            end = m.now_ns()
            await proc.wait()
        if n != n_expected:
            raise RuntimeError(f"got {n} of {n_expected} bytes")
        secs = (end - m.parse_start(err)) / 1e9
        m.result("secs", secs)
        m.result("mbps", n / 1e6 / secs)
        m.result("cpu", m.cpu_secs() - cpu0)


async def delivery_latency(opts):
    async with await connect(opts) as conn:
        meter = m.LatencyMeter()
        async with conn.create_process(m.latency_command(int(opts["lines"])), encoding=None) as proc:
            while True:
                b = await proc.stdout.read(READ)
                if not b:
                    break
                meter.feed(b, m.now_ns())
            await proc.wait()
        m.result("samples", len(meter.samples))
        m.result("p50_ms", m.percentile(meter.samples, 50))
        m.result("p99_ms", m.percentile(meter.samples, 99))


async def sftp_transfer(opts, up):
    local, remote = opts["local"], opts["remote"]
    async with await connect(opts) as conn:
        async with conn.start_sftp_client() as sftp:
            base = m.rss_kib()
            m.reset_peak()
            cpu0 = m.cpu_secs()
            t = asyncio.get_running_loop().time()
            if up:
                await sftp.put(local, remote)
            else:
                await sftp.get(remote, local)
            secs = asyncio.get_running_loop().time() - t
            n = os.path.getsize(remote if up else local)
            m.result("secs", secs)
            m.result("mbps", n / 1e6 / secs)
            m.result("cpu", m.cpu_secs() - cpu0)
            m.result("rss_growth_mib", max(m.peak_kib() - base, 0) / 1024)


class Meter:
    def __init__(self):
        self.base = m.rss_kib()
        m.reset_peak()
        self.threads = m.ThreadSampler()
        self.cpu0 = m.cpu_secs()
        self.t = asyncio.get_running_loop().time()

    def finish(self, failed):
        m.result("secs", asyncio.get_running_loop().time() - self.t)
        m.result("failed", failed)
        m.result("cpu", m.cpu_secs() - self.cpu0)
        m.result("rss_growth_mib", max(m.peak_kib() - self.base, 0) / 1024)
        m.result("threads_peak", self.threads.finish())


async def concurrent_sessions(opts):
    n = int(opts["sessions"])
    cap = asyncio.Semaphore(int(opts["connect-cap"]))
    meter = Meter()

    async def one(i):
        async with cap:
            conn = await connect(opts, i, retry=True)
        r = await conn.run(f"echo {i}")
        if r.stdout.strip() != str(i) or r.exit_status != 0:
            raise RuntimeError(f"session {i}: {r.stdout!r}")
        return conn

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    for r in results:
        if isinstance(r, BaseException):
            print(f"asyncssh_peer: {r!r}", file=sys.stderr)
    meter.finish(failed)
    for r in results:
        if not isinstance(r, BaseException):
            r.close()


async def fleet(opts):
    n = int(opts["vms"])
    vms = asyncio.Semaphore(int(opts["concurrency"]))
    cap = asyncio.Semaphore(int(opts["connect-cap"]))
    meter = Meter()

    async def one(i):
        d = f"{opts['remote-dir']}/asyncssh-vm{i}"
        async with vms:
            async with cap:
                conn = await connect(opts, i, retry=True)
            async with conn:
                await conn.run(f"mkdir -p {d} && echo provisioning vm{i} && uname -a", check=True)
                async with conn.start_sftp_client() as sftp:
                    await sftp.put(opts["file"], f"{d}/payload.bin")
                    await sftp.put(opts["script"], f"{d}/setup.sh")
                await conn.run(f"sh {d}/setup.sh", check=True)

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for r in failed:
        print(f"asyncssh_peer: {r!r}", file=sys.stderr)
    meter.finish(len(failed))


def run(coro_fn):
    return lambda opts: asyncio.run(coro_fn(opts))


if __name__ == "__main__":
    m.main(
        {
            "stdout_throughput": run(stdout_throughput),
            "delivery_latency": run(delivery_latency),
            "sftp_upload": run(lambda o: sftp_transfer(o, True)),
            "sftp_download": run(lambda o: sftp_transfer(o, False)),
            "concurrent_sessions": run(concurrent_sessions),
            "fleet": run(fleet),
        }
    )
