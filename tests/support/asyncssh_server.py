"""An asyncssh SSH server for the interop tests (tests/support/asyncssh.rs).

    python3 asyncssh_server.py HOST_KEY AUTHORIZED_KEYS

Listens on 127.0.0.1 on a free port and prints the port on stdout once it
accepts connections. Serves exec and shell requests through /bin/sh (stdin,
stdout, stderr and the exit status or signal bridged with flow control,
`env` requests applied) and the sftp subsystem with asyncssh's own SFTP
server on the real filesystem. Exits when its stdin closes, so it never
outlives the test process that started it.
"""

import asyncio
import logging
import os
import signal
import sys

import asyncssh

CHUNK = 32 * 1024


async def pump(reader, writer):
    """Copies until EOF, waiting for the peer's window (drain) each time."""
    while True:
        data = await reader.read(CHUNK)
        if not data:
            return
        writer.write(data)
        await writer.drain()


async def feed(reader, proc_stdin):
    """Client data to the command's stdin; EOF from the client closes it."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            proc_stdin.write(data)
            await proc_stdin.drain()
    except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
        pass
    finally:
        proc_stdin.close()


async def handle(process):
    env = dict(os.environ)
    env.update(process.env)
    env["SHLVL"] = "1"
    args = ["/bin/sh"] if process.command is None else ["/bin/sh", "-c", process.command]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    stdin = asyncio.ensure_future(feed(process.stdin, proc.stdin))
    try:
        # Output is drained before the status goes out: nothing is lost.
        await asyncio.gather(
            pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr)
        )
        code = await proc.wait()
    except (asyncssh.Error, ConnectionError):
        # The client went away: nobody is left to read the output.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        return
    finally:
        stdin.cancel()
    if code < 0:
        process.exit_with_signal(signal.Signals(-code).name[3:])
    else:
        process.exit(code)


async def main():
    host_key, authorized_keys = sys.argv[1], sys.argv[2]
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=authorized_keys,
        process_factory=handle,
        sftp_factory=True,
        encoding=None,
        line_editor=False,
        allow_pty=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    # Blocking read of stdin in a thread: returns when the parent is gone.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="asyncssh: %(message)s"
    )
    asyncssh.set_log_level(logging.INFO)
    asyncio.run(main())
