//! A user-space link between the contenders and a server: a TCP relay on
//! loopback that delays each direction by a fixed time and can cap its
//! bandwidth (these kernels have no netem).
//!
//! Each direction is a reader and a writer task joined by a queue. The
//! reader stamps every chunk with the moment it may leave (arrival, plus
//! the time the capped link needs to send it, plus the one-way delay); the
//! writer sends it then. The queue is bounded in bytes ([`IN_FLIGHT`]), so
//! a receiver that stops reading stops the sender, as on a real path.
//!
//! The relay runs on its own thread and `current_thread` runtime, in the
//! process that starts it (the bench harness: its CPU is not the
//! contenders'). The integration tests use it to run the crate over a
//! long link; the benches include this file by path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// Where the relay and its test peers listen.
const HOST: &str = "127.0.0.1";

/// Bytes a direction holds in flight at most (64 MiB: 1.3 GB/s at 50 ms).
const IN_FLIGHT: usize = 64 << 20;
/// Largest single read.
const CHUNK: usize = 256 << 10;
/// Chunks written with one `writev` at most.
const BATCH: usize = 64;

/// What the relay imitates.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Delay of each direction (half the round-trip time).
    pub one_way: Duration,
    /// Bandwidth of each direction, bytes per second; `None`: uncapped.
    pub rate: Option<u64>,
}

impl Link {
    /// A link with this round-trip time and no bandwidth cap.
    pub fn rtt(rtt: Duration) -> Link {
        Link {
            one_way: rtt / 2,
            rate: None,
        }
    }
}

/// A running relay: connections to `127.0.0.1:port` reach the upstream
/// port through the [`Link`]. Stops (dropping every connection) on drop.
#[derive(Debug)]
pub struct Relay {
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    pub fn start(upstream: u16, link: Link) -> Relay {
        let listener = std::net::TcpListener::bind((HOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, upstream).into();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("relay-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    // At most one tick (the rest is the machine being busy,
                    // not the timer) and half the delay.
                    let slack = timer_lateness()
                        .await
                        .min(Duration::from_millis(1))
                        .min(link.one_way / 2);
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, upstream, link, slack) => {}
                    }
                });
                // Dropping the runtime drops every connection's tasks.
            })
            .unwrap();
        Relay {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How late tokio's timer fires on this thread (median of 15 sleeps):
/// it wakes on millisecond ticks at or after a deadline, and the thread
/// needs a moment to run. The writers aim this much early.
async fn timer_lateness() -> Duration {
    let mut late = Vec::new();
    for i in 0..15u64 {
        let due = Instant::now() + Duration::from_micros(1300 + 97 * i);
        tokio::time::sleep_until(due).await;
        late.push(Instant::now() - due);
    }
    late.sort();
    late[late.len() / 2]
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, link: Link, slack: Duration) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(direction(cr, sw, link, slack));
            tokio::spawn(direction(sr, cw, link, slack));
        });
    }
}

/// One direction: `from` → delay (and cap) → `to`; EOF is passed on.
async fn direction(from: OwnedReadHalf, to: OwnedWriteHalf, link: Link, slack: Duration) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT / 1024);
    tokio::join!(read_side(from, tx, link), write_side(rx, to, slack));
}

type Item = (Instant, Bytes, OwnedSemaphorePermit);

async fn read_side(mut from: OwnedReadHalf, tx: mpsc::Sender<Item>, link: Link) {
    let budget = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = BytesMut::with_capacity(CHUNK);
    // When the capped link is free to send the next byte.
    let mut link_free = Instant::now();
    loop {
        if buf.capacity() < CHUNK / 4 {
            buf = BytesMut::with_capacity(CHUNK);
        }
        let n = match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let arrived = Instant::now();
        let sent = match link.rate {
            Some(rate) => {
                let start = link_free.max(arrived);
                link_free = start + Duration::from_secs_f64(n as f64 / rate as f64);
                link_free
            }
            None => arrived,
        };
        let Ok(permit) = budget.clone().acquire_many_owned(n as u32).await else {
            return;
        };
        let chunk = buf.split_to(n).freeze();
        if tx.send((sent + link.one_way, chunk, permit)).await.is_err() {
            return;
        }
    }
}

/// Sends each chunk when it is due; chunks already due go out together.
async fn write_side(mut rx: mpsc::Receiver<Item>, mut to: OwnedWriteHalf, slack: Duration) {
    let mut batch: Vec<Item> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        if first.0 > Instant::now() + slack {
            tokio::time::sleep_until(first.0 - slack).await;
        }
        batch.push(first);
        let now = Instant::now() + slack;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(item) if item.0 <= now => batch.push(item),
                Ok(item) => {
                    // Not due yet: it waits at the front for the next round.
                    if write_batch(&mut to, &batch).await.is_err() {
                        return;
                    }
                    batch.clear();
                    batch.push(item);
                    if batch[0].0 > Instant::now() + slack {
                        tokio::time::sleep_until(batch[0].0 - slack).await;
                    }
                }
                Err(_) => break,
            }
        }
        if write_batch(&mut to, &batch).await.is_err() {
            return;
        }
        // Permits go back only now: the bytes have left.
        batch.clear();
    }
    let _ = to.shutdown().await;
}

async fn write_batch(to: &mut OwnedWriteHalf, batch: &[Item]) -> std::io::Result<()> {
    let mut bufs: Vec<Bytes> = batch.iter().map(|(_, b, _)| b.clone()).collect();
    let mut start = 0;
    while start < bufs.len() {
        let slices: Vec<std::io::IoSlice<'_>> = bufs[start..]
            .iter()
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut n = to.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while start < bufs.len() && n >= bufs[start].len() {
            n -= bufs[start].len();
            start += 1;
        }
        if n > 0 {
            bufs[start] = bufs[start].slice(n..);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The relay's own figures, for the notes

/// Throughput of the relay alone (GB/s) at `link`: 1 GiB from a plain
/// writer through the relay to a plain reader, on loopback.
pub fn ceiling(link: Link) -> f64 {
    const TOTAL: u64 = 1 << 30;
    let sink = std::net::TcpListener::bind((HOST, 0)).unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = sink.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        while n < TOTAL {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        (n, std::time::Instant::now())
    });
    let relay = Relay::start(sink_port, link);
    let mut c = std::net::TcpStream::connect((HOST, relay.port)).unwrap();
    let buf = vec![0u8; 1 << 20];
    let start = std::time::Instant::now();
    for _ in 0..TOTAL / buf.len() as u64 {
        std::io::Write::write_all(&mut c, &buf).unwrap();
    }
    let (n, end) = reader.join().unwrap();
    drop(c);
    n as f64 / 1e9 / (end - start).as_secs_f64()
}

/// Median round-trip time (ms) of a 1-byte ping through the relay at
/// `link`: what the link really adds, timer error included.
pub fn measured_rtt_ms(link: Link) -> f64 {
    let echo = std::net::TcpListener::bind((HOST, 0)).unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = echo.accept().unwrap();
        let _ = s.set_nodelay(true);
        let mut b = [0u8; 1];
        while let Ok(1) = std::io::Read::read(&mut s, &mut b) {
            if std::io::Write::write_all(&mut s, &b).is_err() {
                break;
            }
        }
    });
    let relay = Relay::start(echo_port, link);
    let mut c = std::net::TcpStream::connect((HOST, relay.port)).unwrap();
    c.set_nodelay(true).unwrap();
    let mut samples = Vec::new();
    for _ in 0..21 {
        let t = std::time::Instant::now();
        std::io::Write::write_all(&mut c, b"x").unwrap();
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut c, &mut b).unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(3));
    }
    drop(c);
    drop(relay);
    let _ = server.join();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
