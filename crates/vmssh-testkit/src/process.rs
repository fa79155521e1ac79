//! `exec` and `shell` requests: a `/bin/sh` child bridged to its channel,
//! with flow control both ways.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use russh::server::{Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::conn::ConnCtx;

/// Bytes read from the child's stdout or stderr at a time: one SSH data
/// packet's worth, so memory per channel stays bounded.
const CHUNK: usize = 32 * 1024;

/// What to run and how.
#[derive(Debug)]
pub(crate) struct Spec {
    /// The command line for `sh -c`, or `None` for a shell reading stdin.
    pub(crate) command: Option<Vec<u8>>,
    /// Variables from `env` requests, applied after the server's own.
    pub(crate) env: Vec<(String, String)>,
    /// The terminal type, when a `pty-req` was accepted.
    pub(crate) pty_term: Option<String>,
}

/// Runs `spec` and bridges it to the channel until the command has exited
/// and its output is drained (then exit status, EOF and close are sent),
/// or until the client closes the channel or the connection ends (then the
/// command's process group is killed).
pub(crate) async fn run(
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    handle: Handle,
    spec: Spec,
    ctx: Arc<ConnCtx>,
) {
    let id = write.id();
    let opts = &ctx.shared.opts;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    if let Some(line) = spec.command {
        // A pty would merge stderr into stdout; without one, the shell does.
        let line = if spec.pty_term.is_some() {
            let mut l = b"exec 2>&1\n".to_vec();
            l.extend_from_slice(&line);
            l
        } else {
            line
        };
        cmd.arg("-c").arg(OsString::from_vec(line));
    }
    if let Some(dir) = &opts.working_dir {
        cmd.current_dir(dir);
    }
    cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
    if let Some(term) = &spec.pty_term {
        cmd.env("TERM", term);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so that signals and cleanup reach
        // everything the command started.
        .process_group(0);

    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let dir = opts
                .working_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("."));
            let msg = format!(
                "vmssh testkit: cannot run /bin/sh in {}: {e}\n",
                dir.display()
            );
            let _ = write.extended_data_bytes(1, msg.into_bytes()).await;
            let _ = write.exit_status(127).await;
            let _ = write.eof().await;
            let _ = write.close().await;
            return;
        }
    };
    let group = ctx.shared.tasks.register_child(child.id());
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let finished = async {
        let ((), (), status) = tokio::join!(
            pump(stdout, &write, None, &ctx),
            pump(stderr, &write, Some(1), &ctx),
            child.wait()
        );
        status
    };
    let input = feed_stdin(read, stdin, &group);

    let status = tokio::select! {
        status = finished => status,
        () = input => {
            // The client closed the channel or the connection is gone:
            // nobody is left to read the output.
            group.signal(libc::SIGKILL);
            return;
        }
    };
    match status {
        Ok(st) => {
            if let Some(sig) = st.signal() {
                let _ = handle
                    .exit_signal_request(
                        id,
                        signal_for(sig),
                        st.core_dumped(),
                        String::new(),
                        "en".to_string(),
                    )
                    .await;
            } else if let Some(code) = st.code() {
                let _ = write.exit_status(u32::try_from(code).unwrap_or(255)).await;
            }
        }
        // No status is invented: the client reports the missing status.
        Err(e) => tracing::warn!("testkit: waiting for a command failed: {e}"),
    }
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Copies client data to the child's stdin (closing it on EOF) and
/// forwards signals, until the client closes the channel.
///
/// Writing to stdin is awaited, so a child that does not read stops this
/// loop, russh's bounded channel queue fills, and the client's data stays
/// in flight: stdin is buffered with a bound.
async fn feed_stdin(
    mut read: ChannelReadHalf,
    mut stdin: Option<tokio::process::ChildStdin>,
    group: &super::tasks::ChildGuard,
) {
    loop {
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => {
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&data).await.is_err()
                {
                    // The child closed its stdin: discard the rest.
                    stdin = None;
                }
            }
            Some(ChannelMsg::Eof) => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            Some(ChannelMsg::Signal { signal }) => {
                if let Some(n) = signal_number(&signal) {
                    group.signal(n);
                }
            }
            Some(ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    }
}

/// Copies one of the child's outputs to the channel in bounded chunks,
/// each sent only when the client's window has room for it.
async fn pump<R>(reader: Option<R>, write: &ChannelWriteHalf<Msg>, ext: Option<u32>, ctx: &ConnCtx)
where
    R: AsyncRead + Unpin,
{
    let Some(mut reader) = reader else { return };
    let mut buf = BytesMut::new();
    let mut open = true;
    loop {
        buf.reserve(CHUNK);
        match reader.read_buf(&mut (&mut buf).limit(CHUNK)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut chunk = buf.split().freeze();
        if !open {
            // The channel is gone; keep draining so the child can finish.
            continue;
        }
        let last = ctx.take_output_budget(&mut chunk);
        let sent = if chunk.is_empty() {
            Ok(())
        } else {
            match ext {
                None => write.data_bytes(chunk).await,
                Some(e) => write.extended_data_bytes(e, chunk).await,
            }
        };
        if last {
            // close_after_output_bytes: the connection is being cut; stop
            // here and let the connection's end clean up.
            futures::future::pending::<()>().await;
        }
        if sent.is_err() {
            open = false;
        }
    }
}

/// The SSH name of a signal number, without `SIG`.
fn signal_name(n: i32) -> String {
    let name = match n {
        libc::SIGABRT => "ABRT",
        libc::SIGALRM => "ALRM",
        libc::SIGBUS => "BUS",
        libc::SIGCHLD => "CHLD",
        libc::SIGCONT => "CONT",
        libc::SIGFPE => "FPE",
        libc::SIGHUP => "HUP",
        libc::SIGILL => "ILL",
        libc::SIGINT => "INT",
        libc::SIGKILL => "KILL",
        libc::SIGPIPE => "PIPE",
        libc::SIGQUIT => "QUIT",
        libc::SIGSEGV => "SEGV",
        libc::SIGSTOP => "STOP",
        libc::SIGSYS => "SYS",
        libc::SIGTERM => "TERM",
        libc::SIGTRAP => "TRAP",
        libc::SIGTSTP => "TSTP",
        libc::SIGTTIN => "TTIN",
        libc::SIGTTOU => "TTOU",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGVTALRM => "VTALRM",
        libc::SIGWINCH => "WINCH",
        libc::SIGXCPU => "XCPU",
        libc::SIGXFSZ => "XFSZ",
        other => return format!("{other}"),
    };
    name.to_string()
}

fn signal_for(n: i32) -> Sig {
    match n {
        libc::SIGABRT => Sig::ABRT,
        libc::SIGALRM => Sig::ALRM,
        libc::SIGFPE => Sig::FPE,
        libc::SIGHUP => Sig::HUP,
        libc::SIGILL => Sig::ILL,
        libc::SIGINT => Sig::INT,
        libc::SIGKILL => Sig::KILL,
        libc::SIGPIPE => Sig::PIPE,
        libc::SIGQUIT => Sig::QUIT,
        libc::SIGSEGV => Sig::SEGV,
        libc::SIGTERM => Sig::TERM,
        libc::SIGUSR1 => Sig::USR1,
        other => Sig::Custom(signal_name(other)),
    }
}

/// The number of a signal named in a `signal` request, if it is one we
/// know.
fn signal_number(sig: &Sig) -> Option<i32> {
    Some(match sig {
        Sig::ABRT => libc::SIGABRT,
        Sig::ALRM => libc::SIGALRM,
        Sig::FPE => libc::SIGFPE,
        Sig::HUP => libc::SIGHUP,
        Sig::ILL => libc::SIGILL,
        Sig::INT => libc::SIGINT,
        Sig::KILL => libc::SIGKILL,
        Sig::PIPE => libc::SIGPIPE,
        Sig::QUIT => libc::SIGQUIT,
        Sig::SEGV => libc::SIGSEGV,
        Sig::TERM => libc::SIGTERM,
        Sig::USR1 => libc::SIGUSR1,
        Sig::Custom(name) => {
            let name = name.trim_start_matches("SIG");
            return (1..32).find(|&n| signal_name(n) == name);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip() {
        assert_eq!(signal_name(libc::SIGTERM), "TERM");
        assert_eq!(
            signal_number(&Sig::Custom("USR2".into())),
            Some(libc::SIGUSR2)
        );
        assert_eq!(
            signal_number(&Sig::Custom("SIGWINCH".into())),
            Some(libc::SIGWINCH)
        );
        assert_eq!(signal_number(&Sig::Custom("NOPE".into())), None);
        assert!(matches!(signal_for(libc::SIGTERM), Sig::TERM));
        assert!(matches!(signal_for(libc::SIGUSR2), Sig::Custom(ref s) if s == "USR2"));
    }
}
