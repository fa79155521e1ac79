//! Runs one command on a host and streams its output as it arrives.
//!
//! ```text
//! cargo run --example exec -- HOST PORT USER KEY CMD...
//! cargo run --example exec -- 10.0.0.5 22 ubuntu ~/.ssh/id_ed25519 'uname -a; sleep 1; uptime'
//! ```
//!
//! The host key must be in `~/.ssh/known_hosts`; set `VMSSH_ACCEPT_NEW=1` to
//! trust a new host on first use (and record it there). Exits with the remote
//! command's exit code.

use std::process::ExitCode;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use vmssh::{Auth, Chunk, HostKeyPolicy, Session, SshConfig};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exec: {e}");
            let mut cause = std::error::Error::source(e.as_ref());
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            ExitCode::from(255)
        }
    }
}

async fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, user, key, cmd @ ..] = args.as_slice() else {
        return Err("usage: exec HOST PORT USER KEY CMD...".into());
    };
    if cmd.is_empty() {
        return Err("usage: exec HOST PORT USER KEY CMD...".into());
    }
    let port: u16 = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
    let mut cfg = SshConfig::new(user).auth(Auth::key_file(key));
    if std::env::var_os("VMSSH_ACCEPT_NEW").is_some_and(|v| v == "1") {
        let home = std::env::var_os("HOME").unwrap_or_default();
        let known = std::path::Path::new(&home).join(".ssh/known_hosts");
        cfg = cfg.host_key(HostKeyPolicy::accept_new(known));
    }

    let session = Session::connect(host, port, &cfg).await?;
    let mut stream = session.exec_streaming(&cmd.join(" ")).await?;
    let (mut out, mut err) = (tokio::io::stdout(), tokio::io::stderr());
    while let Some(chunk) = stream.next().await {
        match chunk? {
            Chunk::Stdout(b) => {
                out.write_all(&b).await?;
                out.flush().await?;
            }
            Chunk::Stderr(b) => {
                err.write_all(&b).await?;
                err.flush().await?;
            }
            _ => {}
        }
    }
    let status = stream.exit_status().await?;
    session.close().await;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        None => {
            eprintln!("exec: remote command {status}");
            ExitCode::from(255)
        }
    })
}
