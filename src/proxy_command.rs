//! `ProxyCommand`: an SSH session over a child process's standard input
//! and output, run as `$SHELL -c "exec COMMAND"` as OpenSSH runs it.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::config::SshConfig;
use crate::error::Error;
use crate::session::Session;

/// How much of the command's stderr an error quotes.
const STDERR_TAIL: usize = 2048;

/// How long a command that closed its output gets to exit, so that its
/// exit status can be reported.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Connects to `host:port` through `command`, within the connect timeout.
/// The child lives as long as the session and is killed when it ends.
pub(crate) async fn connect(
    command: &str,
    host: &str,
    port: u16,
    cfg: &SshConfig,
) -> Result<Session, Error> {
    let err = |reason: String| Error::ProxyCommand {
        host: host.to_string(),
        port,
        command: command.to_string(),
        reason,
    };
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".to_string());
    let mut child = Command::new(&shell)
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(format!("cannot start {shell}: {e}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(err("no standard input or output".to_string()));
    };
    let tail = Arc::new(Mutex::new(Vec::new()));
    // Ends when the command's stderr does.
    let mut stderr_read = None;
    if let Some(mut stderr) = child.stderr.take() {
        let tail = tail.clone();
        stderr_read = Some(tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            }
        }));
    }
    let stream = tokio::io::join(stdout, stdin);
    match Session::connect_stream(stream, host, port, cfg).await {
        Ok(sess) => {
            let watched = sess.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = child.wait() => {}
                    () = watched.closed() => {
                        let _ = child.kill().await;
                    }
                }
            });
            Ok(sess)
        }
        Err(e) if e.is_timeout() => Err(e),
        Err(e) => {
            // A command that ended explains the failure better than the
            // SSH layer's end-of-file.
            match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
                Ok(Ok(status)) => {
                    // What it wrote before it exited may still be in the
                    // pipe: read to the pipe's end (bounded: a process it
                    // left behind may hold the pipe open).
                    if let Some(read) = stderr_read {
                        let _ = tokio::time::timeout(EXIT_GRACE, read).await;
                    }
                    let stderr = tail
                        .lock()
                        .map(|t| String::from_utf8_lossy(&t).trim().to_string())
                        .unwrap_or_default();
                    let mut reason =
                        format!("exited ({status}) before the SSH session was established");
                    if !stderr.is_empty() {
                        reason.push_str(": ");
                        reason.push_str(&stderr);
                    }
                    Err(err(reason))
                }
                _ => Err(e),
            }
        }
    }
}
