//! SSH to the guests, on vmssh: async, no blocking threads.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use vmssh::{Auth, Chunk, HostKeyPolicy, RetryPolicy, Session, TransferOptions};

use crate::error::{Result, VmError};
use crate::types::SshConfig;

/// vmssh's error, with its causes, as vmctl's.
fn ssh<T>(r: vmssh::Result<T>, what: &str) -> Result<T> {
    r.map_err(|e| {
        let detail = format!("{what}: {}", e.chain());
        VmError::SshFailed { detail }
    })
}

/// The in-memory key, else the key file; no host key check, as before.
fn settings(config: &SshConfig) -> Result<vmssh::SshConfig> {
    let auth = match (&config.private_key_pem, &config.private_key_path) {
        (Some(pem), _) => Auth::key_pem(pem.clone()),
        (None, Some(path)) => Auth::key_file(path),
        (None, None) => {
            let detail =
                "no SSH private key configured (neither in-memory PEM nor file path)".into();
            return Err(VmError::SshFailed { detail });
        }
    };
    // cloud-init may install the key after sshd starts: wait for it too.
    let retry = RetryPolicy::default().retry_auth_failures(true);
    let cfg = vmssh::SshConfig::new(&config.user).auth(auth).retry(retry);
    Ok(cfg.host_key(HostKeyPolicy::insecure_accept_any()))
}

/// Establish an SSH session to the given IP and port.
pub async fn connect(ip: &str, port: u16, config: &SshConfig) -> Result<Session> {
    ssh(
        Session::connect(ip, port, &settings(config)?).await,
        "connect",
    )
}

/// Connect, retrying until `timeout` elapses.
pub async fn connect_with_retry(
    ip: &str,
    port: u16,
    config: &SshConfig,
    timeout: Duration,
) -> Result<Session> {
    let cfg = settings(config)?;
    ssh(
        Session::connect_with_retry(ip, port, &cfg, timeout).await,
        "connect",
    )
}

/// Execute a command. Returns `(stdout, stderr, exit_code)`, -1 for a signal.
pub async fn exec(sess: &Session, cmd: &str) -> Result<(String, String, i32)> {
    let out = ssh(sess.exec(cmd).await, cmd)?;
    let code = out.status.code().map_or(-1, |c| c as i32);
    Ok((out.stdout_lossy().into(), out.stderr_lossy().into(), code))
}

/// As `exec`, also writing the output to `out` and `err` as it arrives.
pub async fn exec_streaming(
    sess: &Session,
    cmd: &str,
    mut out: impl AsyncWrite + Unpin,
    mut err: impl AsyncWrite + Unpin,
) -> Result<(String, String, i32)> {
    let mut stream = ssh(sess.exec_streaming(cmd).await, cmd)?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let (to, kept, bytes): (&mut (dyn AsyncWrite + Unpin), _, _) = match ssh(chunk, cmd)? {
            Chunk::Stdout(b) => (&mut out, &mut stdout, b),
            Chunk::Stderr(b) => (&mut err, &mut stderr, b),
            _ => continue,
        };
        let _ = to.write_all(&bytes).await;
        let _ = to.flush().await;
        kept.extend_from_slice(&bytes);
    }
    let code = ssh(stream.exit_status().await, cmd)?.code();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((text(&stdout), text(&stderr), code.map_or(-1, |c| c as i32)))
}

/// Upload a local file to a remote path, with mode 0755.
pub async fn upload(sess: &Session, local: &Path, remote: &Path) -> Result<()> {
    let opts = TransferOptions::new().mode(0o755);
    let sent = sess
        .upload_with(local, &remote.to_string_lossy(), &opts)
        .await;
    ssh(sent, "upload").map(drop)
}
