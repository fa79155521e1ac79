//! The socket under each connection, with a valve the server can turn:
//! freeze it, make it swallow writes, or cut it.
//!
//! russh owns the socket once a session runs and answers some messages
//! (keepalives among them) inside its own loop, so faults that must reach
//! below russh are applied here, at the byte level.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A fault armed now that takes effect at the next read, i.e. once russh
/// has flushed what it was writing (the authentication success, say).
const ARMED_NONE: u8 = 0;
const ARMED_FREEZE: u8 = 1;
const ARMED_DISCARD: u8 = 2;

/// The state of one connection's socket, shared between the socket wrapper
/// (polled by russh) and the server (which turns the valve).
#[derive(Debug, Default)]
pub(crate) struct Valve {
    frozen: AtomicBool,
    discard_writes: AtomicBool,
    closed: AtomicBool,
    close_after_flush: AtomicBool,
    armed: AtomicU8,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
}

impl Valve {
    fn wake(&self) {
        self.read_waker.wake();
        self.write_waker.wake();
    }

    /// Stops all reads and writes until [`thaw`](Self::thaw).
    pub(crate) fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Lets a frozen socket move again.
    pub(crate) fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        self.wake();
    }

    /// Cuts the connection: every later read or write fails, so russh's
    /// session ends and drops the socket (the peer sees the TCP close, no
    /// SSH disconnect message).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Cuts the connection after the next completed flush: what russh has
    /// queued so far still goes out.
    pub(crate) fn close_after_flush(&self) {
        self.close_after_flush.store(true, Ordering::SeqCst);
        self.write_waker.wake();
    }

    /// Freezes the socket at the next read.
    pub(crate) fn arm_freeze(&self) {
        self.armed.store(ARMED_FREEZE, Ordering::SeqCst);
    }

    /// Starts swallowing writes at the next read.
    pub(crate) fn arm_discard(&self) {
        self.armed.store(ARMED_DISCARD, Ordering::SeqCst);
    }

    fn engage_armed(&self) {
        match self.armed.swap(ARMED_NONE, Ordering::SeqCst) {
            ARMED_FREEZE => self.frozen.store(true, Ordering::SeqCst),
            ARMED_DISCARD => self.discard_writes.store(true, Ordering::SeqCst),
            _ => {}
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }
}

/// Every live connection's valve, so that the server can freeze, thaw and
/// cut them all.
#[derive(Debug, Default)]
pub(crate) struct Valves {
    next: AtomicU64,
    frozen: AtomicBool,
    shut: AtomicBool,
    live: Mutex<HashMap<u64, Arc<Valve>>>,
}

impl Valves {
    /// Wraps an accepted socket. New connections start frozen while the
    /// server is frozen, and closed once it is shut down.
    pub(crate) fn wrap(self: &Arc<Self>, inner: TcpStream) -> GatedStream {
        let valve = Arc::new(Valve::default());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = self.live.lock() {
            live.insert(id, valve.clone());
        }
        // Checked after registering: a concurrent freeze or shutdown either
        // saw this valve in the map or is seen here.
        if self.frozen.load(Ordering::SeqCst) {
            valve.freeze();
        }
        if self.shut.load(Ordering::SeqCst) {
            valve.close();
        }
        GatedStream {
            inner,
            valve,
            valves: self.clone(),
            id,
        }
    }

    fn each(&self, f: impl Fn(&Valve)) {
        if let Ok(live) = self.live.lock() {
            live.values().for_each(|v| f(v));
        }
    }

    pub(crate) fn freeze_all(&self) {
        self.frozen.store(true, Ordering::SeqCst);
        self.each(Valve::freeze);
    }

    pub(crate) fn thaw_all(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        self.each(Valve::thaw);
    }

    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    pub(crate) fn close_all(&self) {
        self.shut.store(true, Ordering::SeqCst);
        self.each(Valve::close);
    }
}

/// A TCP stream whose reads and writes obey a [`Valve`].
#[derive(Debug)]
pub(crate) struct GatedStream {
    inner: TcpStream,
    valve: Arc<Valve>,
    valves: Arc<Valves>,
    id: u64,
}

impl GatedStream {
    pub(crate) fn valve(&self) -> Arc<Valve> {
        self.valve.clone()
    }
}

impl Drop for GatedStream {
    fn drop(&mut self) {
        if let Ok(mut live) = self.valves.live.lock() {
            live.remove(&self.id);
        }
    }
}

fn cut() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by the test server",
    )
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let valve = &this.valve;
        valve.engage_armed();
        // Register before checking, so that a close or thaw between the
        // check and returning Pending still wakes us.
        valve.read_waker.register(cx.waker());
        if valve.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        if valve.is_frozen() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let valve = &this.valve;
        valve.write_waker.register(cx.waker());
        if valve.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        if valve.is_frozen() {
            return Poll::Pending;
        }
        if valve.discard_writes.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let valve = &this.valve;
        valve.write_waker.register(cx.waker());
        if valve.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        if valve.is_frozen() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        if r.is_ready() && valve.close_after_flush.load(Ordering::SeqCst) {
            valve.close();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.valve.is_closed() || this.valve.discard_writes.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        this.valve.write_waker.register(cx.waker());
        if this.valve.is_frozen() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
