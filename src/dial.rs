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
//!
//! # Closed connections are not free
//!
//! A connection closed while silent is not gone: QEMU's user-mode network
//! keeps retrying it towards the guest for up to 75 s, and once the
//! guest's sshd listens it accepts the connection and sees it close at
//! once. OpenSSH 9.8 and later (`PerSourcePenalties`, on by default)
//! count each such connection against the client's address (1 s each) and
//! refuse that address once more than 15 s have piled up, for as long as
//! the pile lasts. Every guest behind QEMU sees all of this host's
//! connections come from one address. So extra connections are paced
//! (the [`SshConfig::connect_stagger`](crate::SshConfig::connect_stagger),
//! then twice that each time, up to 2 s apart), and each destination has
//! a budget: at most 12 connections that may end up abandoned within 75 s,
//! counted across every connect to it in this process. A connection that
//! is used, or that the server closes itself, gives its place back. With
//! the budget spent, the first attempt goes on alone. A refusal (sshd's
//! `Not allowed at this time`) is named in the error.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::{AbortHandle, Abortable, Future};
use futures::stream::FuturesUnordered;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

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
    // The first attempt is always made, and counted like the others.
    let charge = Charge::take(host, port, Instant::now());
    attempts.push(start(host, port, cfg, &silent, 0, None, Some(charge)).1);

    let stagger = cfg
        .connect_stagger
        .filter(|_| parallel && cfg.parallel_connects > 1);
    let mut last_error = None;
    let mut extras = 0u32;
    let mut tick = stagger.map(|d| Box::pin(tokio::time::sleep(d)));
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
                // A connection is up and nothing answered for a while: one
                // more attempt, if the fleet has a connect slot for it and
                // the destination's budget a place.
                let (Some(stagger), Some(t)) = (stagger, tick.as_mut()) else {
                    continue;
                };
                let now = Instant::now();
                // Not made this time: look again as soon as before.
                t.as_mut().reset(now + extra_pace(stagger, extras));
                if silent.load(Ordering::Acquire) == 0 {
                    continue;
                }
                let open = rotating.len() + usize::from(first_open);
                if open >= cfg.parallel_connects && rotating.is_empty() {
                    continue;
                }
                let permit = match gate {
                    Some(g) => match g.try_acquire() {
                        Ok(p) => Some(p),
                        Err(_) => continue,
                    },
                    None => None,
                };
                let Some(charge) = Charge::try_take(host, port, now) else {
                    tracing::trace!(host, port, "no answer yet; the budget for more connections is spent");
                    continue;
                };
                if open >= cfg.parallel_connects {
                    let (_, oldest) = rotating.remove(0);
                    oldest.abort();
                }
                extras += 1;
                t.as_mut().reset(now + extra_pace(stagger, extras));
                let id = next_id;
                next_id += 1;
                let (handle, fut) = start(host, port, cfg, &silent, id, permit, Some(charge));
                tracing::trace!(host, port, attempt = id, "no answer yet: another connection beside");
                rotating.push((id, handle));
                attempts.push(fut);
            }
        }
    }
}

/// Attempt `id`, abortable; it holds `permit` while it runs. Its `charge`
/// is given back when it ends by itself (answered or closed by the
/// server); an attempt aborted or dropped unanswered keeps it.
fn start<'a>(
    host: &'a str,
    port: u16,
    cfg: &'a SshConfig,
    silent: &'a AtomicUsize,
    id: usize,
    permit: Option<SemaphorePermit<'a>>,
    charge: Option<Charge>,
) -> (AbortHandle, Abortable<Attempt<'a>>) {
    let (handle, reg) = AbortHandle::new_pair();
    let fut: Attempt<'a> = Box::pin(async move {
        let r = first_byte(host, port, cfg.nodelay, silent).await;
        drop(permit);
        if let Some(c) = charge {
            c.refund();
        }
        (id, r)
    });
    (handle, Abortable::new(fut, reg))
}

async fn tick_next(tick: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match tick {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The wait before extra connection number `n` (0-based) of one connect:
/// `stagger`, doubling, capped at [`MAX_PACE`] (or `stagger`, if longer).
fn extra_pace(stagger: Duration, n: u32) -> Duration {
    let cap = stagger.max(MAX_PACE);
    stagger
        .checked_mul(1u32 << n.min(16))
        .map_or(cap, |d| d.min(cap))
}

/// The longest wait between extra connections: a guest's sshd that starts
/// listening is reached within about this long by a fresh connection.
const MAX_PACE: Duration = Duration::from_secs(2);

/// Connections to one destination that may be closed unanswered within
/// [`BUDGET_WINDOW`]: each may cost this host 1 s of OpenSSH's
/// `PerSourcePenalties`, which refuses it beyond 15 s; 12 leaves room for
/// a failed authentication or two of other clients on this host.
const BUDGET: usize = 12;

/// How long a closed connection can still reach a guest: QEMU's user-mode
/// network (libslirp) gives up connecting to the guest after 75 s.
const BUDGET_WINDOW: Duration = Duration::from_secs(75);

type Dest = (String, u16);

/// Per destination, the connections made lately that may end up closed
/// unanswered: (charge id, when made).
type Charges = HashMap<Dest, VecDeque<(u64, Instant)>>;

/// Process-wide, because the server counts per client address, whichever
/// task or fleet connects.
static CHARGES: Mutex<Option<Charges>> = Mutex::new(None);

/// One connection's place in its destination's budget.
#[derive(Debug)]
struct Charge {
    dest: Dest,
    id: u64,
}

impl Charge {
    /// A place for a first connection: always given, and counted.
    fn take(host: &str, port: u16, now: Instant) -> Charge {
        Self::within(host, port, now, usize::MAX).unwrap_or_else(|| Charge {
            dest: (host.to_string(), port),
            id: 0,
        })
    }

    /// A place for an extra connection, if the budget has one.
    fn try_take(host: &str, port: u16, now: Instant) -> Option<Charge> {
        Self::within(host, port, now, BUDGET)
    }

    /// A place, if fewer than `limit` are taken.
    fn within(host: &str, port: u16, now: Instant, limit: usize) -> Option<Charge> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut guard = CHARGES.lock().unwrap_or_else(|p| p.into_inner());
        let all = guard.get_or_insert_with(HashMap::new);
        // Forget what has expired, everywhere, so the map stays as small
        // as the destinations connected to lately.
        all.retain(|_, q| {
            while q
                .front()
                .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= BUDGET_WINDOW)
            {
                q.pop_front();
            }
            !q.is_empty()
        });
        let dest = (host.to_string(), port);
        let q = all.entry(dest.clone()).or_default();
        if q.len() >= limit {
            return None;
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        q.push_back((id, now));
        Some(Charge { dest, id })
    }

    /// The connection was used or closed by the server: nothing of it can
    /// reach the server later.
    fn refund(self) {
        let mut guard = CHARGES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(all) = guard.as_mut()
            && let Some(q) = all.get_mut(&self.dest)
        {
            q.retain(|(id, _)| *id != self.id);
            if q.is_empty() {
                all.remove(&self.dest);
            }
        }
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
        // Anything but the banner first: a server refusing this client
        // for now (sshd's MaxStartups and PerSourcePenalties write one
        // line and close) or text allowed before the banner.
        Ok(_) if byte[0] != b'S' => prebanner_line(socket, host, port).await,
        Ok(_) => Ok(socket),
        Err(e) => Err(lost_before_banner(host, port, e)),
    }
}

fn lost_before_banner(host: &str, port: u16, e: std::io::Error) -> Error {
    Error::Handshake {
        host: host.to_string(),
        port,
        reason: "connection lost before the server's banner".into(),
        early_close: true,
        source: Some(Box::new(e)),
    }
}

/// Reads a line that came before the banner; if the server then closes the
/// connection, that line was its refusal and is named in the error
/// (retryable: such refusals are for a while). Otherwise the connection is
/// answered; the SSH layer reads on from the next line.
async fn prebanner_line(mut socket: TcpStream, host: &str, port: u16) -> Result<TcpStream, Error> {
    const MAX_LINE: usize = 256;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_LINE {
        match socket.read(&mut byte).await {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(lost_before_banner(host, port, e)),
        }
    }
    let said = String::from_utf8_lossy(&line).trim().to_string();
    match socket.peek(&mut byte).await {
        Ok(0) | Err(_) => Err(Error::Handshake {
            host: host.to_string(),
            port,
            reason: format!("refused by the server before its banner: {said:?}"),
            early_close: true,
            source: None,
        }),
        Ok(_) => Ok(socket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_are_paced_doubling_up_to_two_seconds() {
        let ms = Duration::from_millis;
        let paces: Vec<_> = (0..6).map(|n| extra_pace(ms(250), n)).collect();
        assert_eq!(
            paces,
            [ms(250), ms(500), ms(1000), ms(2000), ms(2000), ms(2000)]
        );
        // A stagger longer than the cap is kept as it is.
        assert_eq!(extra_pace(ms(3000), 5), ms(3000));
        assert_eq!(extra_pace(ms(250), u32::MAX), ms(2000));
    }

    #[test]
    fn budget_per_destination_refunds_and_expires() {
        let (host, other) = ("budget-a.invalid", "budget-b.invalid");
        let t0 = Instant::now();
        let first = Charge::take(host, 22, t0);
        let mut extras: Vec<_> = (1..BUDGET)
            .map(|_| Charge::try_take(host, 22, t0).unwrap())
            .collect();
        assert!(Charge::try_take(host, 22, t0).is_none(), "budget spent");
        // Another destination has its own.
        assert!(Charge::try_take(other, 22, t0).is_some());
        assert!(Charge::try_take(host, 2222, t0).is_some());
        // A first connection is made whatever the budget.
        let _over = Charge::take(host, 22, t0);
        // Used or closed by the server: the place is given back.
        first.refund();
        extras.pop().unwrap().refund();
        assert!(Charge::try_take(host, 22, t0).is_some());
        assert!(Charge::try_take(host, 22, t0).is_none(), "spent again");
        // Abandoned ones count until nothing of them can reach the server.
        assert!(Charge::try_take(host, 22, t0 + BUDGET_WINDOW - Duration::from_secs(1)).is_none());
        assert!(Charge::try_take(host, 22, t0 + BUDGET_WINDOW).is_some());
    }
}
