//! Reaching the server: TCP connections up to the server's first byte.
//!
//! A VM still booting behind QEMU's user-mode network (vmctl's default)
//! accepts TCP at once, then leaves the connection silent for seconds
//! until its own connection to the guest succeeds or gives up; a
//! connection opened after the guest's sshd listens gets the banner within
//! milliseconds. So, when retrying ([`Session::connect_with_retry`](crate::Session::connect_with_retry),
//! fleets), a silent connection must not hold the session back: after
//! [`SshConfig::connect_stagger`](crate::SshConfig::connect_stagger) with a connection established but no byte
//! from the server, another attempt starts beside it (happy-eyeballs
//! style), up to [`SshConfig::parallel_connects`](crate::SshConfig::parallel_connects) open at once. The first
//! connection the server speaks on wins; the others are closed.
//!
//! Only an *established* silent connection calls for another: a server
//! whose listen queue overflows (SYNs unanswered) or that refuses gets no
//! extra connections, and a plain [`Session::connect`](crate::Session::connect) makes one.
//!
//! The first attempt is kept until the attempt's deadline: a slow server on
//! a long link still answers it. The later ones rotate: with the limit
//! reached, the oldest of them is closed to make room for a fresh one.
//!
//! Under a fleet, every extra connection takes a permit of the fleet's
//! connect gate (without waiting for one), so the connects-in-flight cap
//! counts connections, not VMs.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::{AbortHandle, Abortable, Future};
use futures::stream::FuturesUnordered;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::SshConfig;
use crate::error::Error;

type Attempt<'a> = Pin<Box<dyn Future<Output = (usize, Result<TcpStream, Error>)> + Send + 'a>>;

/// Opens a connection to `host:port` and returns it once the server has
/// sent its first byte (still unread: the SSH layer reads the banner).
///
/// `parallel`: whether silent connections call for more beside them.
/// `gate`: extra parallel connections each take a permit of it, or are
/// not made while it has none free (the caller holds one for the first).
pub(crate) async fn dial(
    host: &str,
    port: u16,
    cfg: &SshConfig,
    parallel: bool,
    gate: Option<&Semaphore>,
) -> Result<TcpStream, Error> {
    let silent = AtomicUsize::new(0);
    let mut attempts: FuturesUnordered<Abortable<Attempt<'_>>> = FuturesUnordered::new();
    // Open attempts other than the first, oldest first.
    let mut rotating: Vec<(usize, AbortHandle)> = Vec::new();
    let mut first_open = true;
    let mut next_id = 1;
    attempts.push(start(host, port, cfg, &silent, 0, None).1);

    let stagger = cfg
        .connect_stagger
        .filter(|_| parallel && cfg.parallel_connects > 1);
    let mut last_error = None;
    let mut tick = stagger.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    loop {
        tokio::select! {
            done = attempts.next() => match done {
                Some(Ok((_, Ok(stream)))) => {
                    // Dropping the others closes their sockets.
                    return Ok(stream);
                }
                Some(Ok((id, Err(e)))) => {
                    if id == 0 {
                        first_open = false;
                    }
                    rotating.retain(|(i, _)| *i != id);
                    tracing::trace!(host, port, attempt = id, error = %e, "connection attempt ended");
                    last_error = Some(e);
                }
                Some(Err(_aborted)) => {}
                None => {
                    return Err(last_error.unwrap_or_else(|| Error::Handshake {
                        host: host.to_string(),
                        port,
                        reason: "no connection attempt could be made".into(),
                        early_close: true,
                        source: None,
                    }));
                }
            },
            _ = tick_next(&mut tick), if tick.is_some() => {
                // A connection is up and nothing answered for a stagger: one
                // more attempt, if the fleet has a connect slot for it.
                if silent.load(Ordering::Acquire) == 0 {
                    continue;
                }
                let permit = match gate {
                    Some(g) => match g.try_acquire() {
                        Ok(p) => Some(p),
                        Err(_) => continue,
                    },
                    None => None,
                };
                let open = rotating.len() + usize::from(first_open);
                if open >= cfg.parallel_connects {
                    if rotating.is_empty() {
                        continue;
                    }
                    let (_, oldest) = rotating.remove(0);
                    oldest.abort();
                }
                let id = next_id;
                next_id += 1;
                let (handle, fut) = start(host, port, cfg, &silent, id, permit);
                tracing::trace!(host, port, attempt = id, "no answer yet: another connection beside");
                rotating.push((id, handle));
                attempts.push(fut);
            }
        }
    }
}

/// Attempt `id`, abortable; it holds `permit` while it runs.
fn start<'a>(
    host: &'a str,
    port: u16,
    cfg: &'a SshConfig,
    silent: &'a AtomicUsize,
    id: usize,
    permit: Option<SemaphorePermit<'a>>,
) -> (AbortHandle, Abortable<Attempt<'a>>) {
    let (handle, reg) = AbortHandle::new_pair();
    let fut: Attempt<'a> = Box::pin(async move {
        let r = first_byte(host, port, cfg.nodelay, silent).await;
        drop(permit);
        (id, r)
    });
    (handle, Abortable::new(fut, reg))
}

async fn tick_next(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Counts a connection as established and silent while it lives.
struct Silent<'a>(&'a AtomicUsize);

impl<'a> Silent<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Silent(count)
    }
}

impl Drop for Silent<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection, returned once the server has sent something.
async fn first_byte(
    host: &str,
    port: u16,
    nodelay: bool,
    silent: &AtomicUsize,
) -> Result<TcpStream, Error> {
    let socket = TcpStream::connect((host, port))
        .await
        .map_err(|source| Error::Connect {
            host: host.to_string(),
            port,
            source,
        })?;
    // Best effort: a socket that refuses the option still works.
    let _ = socket.set_nodelay(nodelay);
    let _silent = Silent::new(silent);
    let mut byte = [0u8; 1];
    match socket.peek(&mut byte).await {
        Ok(0) => Err(Error::Handshake {
            host: host.to_string(),
            port,
            reason: "connection closed by the server before its banner".into(),
            early_close: true,
            source: None,
        }),
        Ok(_) => Ok(socket),
        Err(e) => Err(Error::Handshake {
            host: host.to_string(),
            port,
            reason: "connection lost before the server's banner".into(),
            early_close: true,
            source: Some(Box::new(e)),
        }),
    }
}

/// The time the first attempt of a connect may stay silent before a
/// second one starts, by default.
pub(crate) const DEFAULT_STAGGER: Duration = Duration::from_millis(250);

/// Connections open at once for one connect, by default.
pub(crate) const DEFAULT_PARALLEL: usize = 4;
