//! `vmssh shell HOST`: an interactive shell on one host, as `ssh HOST`
//! gives one ([`vmssh::Session::shell`]): the host named as every verb
//! names hosts, the local terminal in raw mode while it runs (put back on
//! every way out), its size followed, OpenSSH's `~.` escapes, and the
//! remote shell's exit status as the command's (255 when the connection
//! fails or is cut, as ssh).

use std::time::Duration;

use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use vmssh::{Chunk, ExitStatus, PtyOptions, Session, Shell};

use crate::args::ShellArgs;
use crate::credentials::{Defaults, Endpoint};
use crate::escape::{self, Action, Escapes};
use crate::jumps::Jumps;
use crate::targets;
use crate::terminal::{self, Input, Output, RawMode, STDIN, STDOUT};
use crate::usage::Usage;

/// The exit code when the connection fails, is lost or is cut (ssh's).
const CONNECTION_FAILED: u8 = 255;

pub(crate) async fn run(mut a: ShellArgs) -> Result<u8, Usage> {
    let t = &mut a.targets;
    if t.shard.is_some() {
        return Err("shell: --shard is for runs on many hosts".into());
    }
    let from_flags = !t.hosts.is_empty() || !t.inventories.is_empty() || !t.aliases.is_empty();
    if !from_flags {
        match &a.host {
            Some(h) => t.hosts.push(h.clone()),
            None => {
                return Err(Usage(
                    "shell: name the host: vmssh shell [USER@]ADDR[:PORT], or one of --host, --hosts FILE or --ssh-config ALIAS".into(),
                ));
            }
        }
    }
    let mut hosts = targets::collect(&a.targets, None).await?;
    let names = |hosts: &[targets::Host]| {
        hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if from_flags && let Some(name) = &a.host {
        let all = names(&hosts);
        hosts.retain(|h| h.name == *name);
        if hosts.is_empty() {
            return Err(Usage(format!(
                "shell: no host named {name:?} among the targets ({all})"
            )));
        }
    }
    if hosts.len() != 1 {
        return Err(Usage(format!(
            "shell: one host at a time, and the targets give {}: {} (name one: vmssh shell ... NAME)",
            hosts.len(),
            names(&hosts)
        )));
    }
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
    let Some(endpoint) = endpoints.into_iter().next() else {
        return Err("shell: no host".into());
    };
    let deadline = Duration::from_secs(a.connect_deadline);
    // The jump hosts' sessions are kept for as long as the shell runs.
    let (session, _jumps) = match connect(&endpoint, deadline).await {
        Ok(s) => s,
        Err((message, host_key)) => {
            eprintln!("vmssh: {}: {message}", endpoint.name);
            if host_key && let Some(hint) = super::host_key_hint(&a.auth) {
                eprintln!("vmssh: {hint}");
            }
            return Ok(CONNECTION_FAILED);
        }
    };
    Ok(interact(&endpoint.name, &session, &a).await)
}

/// Connects the endpoint, through its jump host when it has one; on
/// failure, the message and whether the host key was refused.
async fn connect(e: &Endpoint, deadline: Duration) -> Result<(Session, Jumps), (String, bool)> {
    let jumps = Jumps::connect(std::slice::from_ref(e), 1, deadline)
        .await
        .map_err(|m| (m, false))?;
    let connected = match jumps.session(e) {
        Some(jump) => {
            Session::connect_via_with_retry(jump, &e.host, e.port, &e.config, deadline).await
        }
        None => Session::connect_with_retry(&e.host, e.port, &e.config, deadline).await,
    };
    match connected {
        Ok(s) => Ok((s, jumps)),
        Err(err) => Err((err.chain().to_string(), err.is_host_key())),
    }
}

/// How a shell session ended.
enum Ended {
    /// The channel closed: the shell's status, if it sent one.
    Closed(Result<ExitStatus, vmssh::Error>),
    /// `~.`.
    Disconnected,
    /// The connection was lost, or standard output failed.
    Failed(String),
    /// This process was asked to end (SIGTERM, SIGHUP).
    Signalled(&'static str),
}

/// Runs the shell on this terminal; returns the exit code.
async fn interact(name: &str, session: &Session, a: &ShellArgs) -> u8 {
    let stdin_tty = terminal::is_tty(STDIN);
    let pty = !a.no_tty && (a.tty || stdin_tty);
    let started = if pty {
        let (cols, rows, width, height) = terminal::size(STDIN)
            .or_else(|| terminal::size(STDOUT))
            .unwrap_or((80, 24, 0, 0));
        let term = std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "dumb".to_string());
        let mut options = PtyOptions::new(term, cols, rows).pixels(width, height);
        for (mode, value) in terminal::modes(STDIN) {
            options = options.mode(mode, value);
        }
        session.shell(options).await
    } else {
        session.shell_without_pty().await
    };
    let shell = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vmssh: {name}: cannot start a shell: {}", e.chain());
            return CONNECTION_FAILED;
        }
    };
    // Raw only when a person types into a remote terminal; escapes too,
    // as ssh has them.
    let raw = if pty && stdin_tty {
        match RawMode::enter(STDIN) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("vmssh: cannot put the terminal in raw mode: {e}");
                return CONNECTION_FAILED;
            }
        }
    } else {
        None
    };
    let ended = pump(shell, raw.is_some()).await;
    // The terminal as it was before anything more is printed.
    drop(raw);
    match ended {
        Ended::Closed(Ok(status)) => match status.code() {
            // As a process's status: the low 8 bits.
            Some(code) => (code & 0xff) as u8,
            None => {
                eprintln!("vmssh: {name}: the remote shell ended: {status}");
                CONNECTION_FAILED
            }
        },
        Ended::Closed(Err(e)) => {
            eprintln!("vmssh: {name}: {}", e.chain());
            CONNECTION_FAILED
        }
        Ended::Disconnected => {
            eprintln!("vmssh: connection to {name} closed.");
            CONNECTION_FAILED
        }
        Ended::Failed(message) => {
            eprintln!("vmssh: {name}: {message}");
            CONNECTION_FAILED
        }
        Ended::Signalled(sig) => {
            eprintln!("vmssh: {name}: killed by {sig}; connection closed.");
            CONNECTION_FAILED
        }
    }
}

/// The next signal of `s`, never when it could not be installed.
async fn next(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Copies standard input to the shell (through the escapes when
/// `escapes`) and the shell's output to standard output, follows the
/// window's size, until the shell's channel closes or the user cuts it.
async fn pump(shell: Shell, escapes: bool) -> Ended {
    let (mut reader, mut writer) = shell.split();
    let mut input = Input::stdin();
    let mut output = Output::stdout();
    // Only a shell without a terminal has a standard error of its own.
    let mut errors = Output::stderr();
    let mut winch = signal(SignalKind::window_change()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    // `~?`'s help, shown by the side that owns standard output.
    let (help_tx, mut help_rx) = mpsc::channel::<&'static str>(1);
    let ended = {
        let show = async {
            loop {
                tokio::select! {
                    chunk = reader.next() => {
                        let (to, bytes) = match chunk {
                            None => return None,
                            Some(Err(e)) => return Some(Ended::Failed(e.chain().to_string())),
                            Some(Ok(Chunk::Stderr(b))) => (&mut errors, b),
                            Some(Ok(chunk)) => (&mut output, chunk.bytes().clone()),
                        };
                        if let Err(e) = to.write_all(&bytes).await {
                            return Some(Ended::Failed(format!("cannot write the output: {e}")));
                        }
                    },
                    Some(text) = help_rx.recv() => {
                        let _ = output.write_all(text.as_bytes()).await;
                    }
                }
            }
        };
        let typing = async {
            let mut buf = vec![0u8; 8 * 1024];
            let mut out = Vec::with_capacity(buf.len());
            let mut filter = Escapes::default();
            let mut stdin_open = true;
            loop {
                tokio::select! {
                    read = input.read(&mut buf), if stdin_open => {
                        let n = match read {
                            Ok(n) if n > 0 => n,
                            // End of input (or an unreadable one): the
                            // shell gets end-of-file, its output goes on.
                            _ => {
                                stdin_open = false;
                                let _ = writer.shutdown().await;
                                continue;
                            }
                        };
                        let mut rest = &buf[..n];
                        loop {
                            out.clear();
                            let action = if escapes {
                                let (action, after) = filter.feed(rest, &mut out);
                                rest = after;
                                action
                            } else {
                                out.extend_from_slice(rest);
                                rest = &[];
                                Action::None
                            };
                            // A failed write: the channel is gone, which
                            // the reading side reports.
                            if !out.is_empty() && writer.write_all(&out).await.is_err() {
                                stdin_open = false;
                                break;
                            }
                            match action {
                                Action::Disconnect => return Ended::Disconnected,
                                Action::Help => {
                                    let _ = help_tx.send(escape::HELP).await;
                                }
                                Action::None => {}
                            }
                            if rest.is_empty() {
                                break;
                            }
                        }
                    }
                    () = next(&mut winch) => {
                        if let Some((cols, rows, width, height)) =
                            terminal::size(STDIN).or_else(|| terminal::size(STDOUT))
                        {
                            let _ = writer.resize_pixels(cols, rows, width, height).await;
                        }
                    }
                    () = next(&mut term) => return Ended::Signalled("SIGTERM"),
                    () = next(&mut hup) => return Ended::Signalled("SIGHUP"),
                }
            }
        };
        tokio::select! {
            failed = show => failed,
            ended = typing => Some(ended),
        }
    };
    match ended {
        Some(ended) => ended,
        None => Ended::Closed(reader.exit_status().await),
    }
}
