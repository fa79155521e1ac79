//! Plain TCP servers on loopback for tunnel and forwarding tests: an echo
//! server, a sink that never reads, and a source that sends a fixed
//! amount of known bytes. Each stops accepting when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What a [`TcpServer`] does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Sends back everything it receives, then closes after the client's
    /// end-of-file.
    Echo,
    /// Accepts and never reads: the client's writes fill the socket
    /// buffers and then block.
    Sink,
    /// Sends this many bytes of [`pattern`] and closes its sending side.
    Source(usize),
}

/// A TCP server on 127.0.0.1, one thread per connection.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    /// Connections a sink holds without reading.
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpServer {
    /// Starts a server with `behaviour` on a free port.
    pub fn start(behaviour: Behaviour) -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (stop2, accepted2, held2) = (stop.clone(), accepted.clone(), held.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                accepted2.fetch_add(1, Ordering::AcqRel);
                match behaviour {
                    Behaviour::Sink => held2.lock().unwrap().push(conn),
                    _ => {
                        thread::spawn(move || serve(conn, behaviour));
                    }
                }
            }
        });
        TcpServer {
            addr,
            stop,
            accepted,
            held,
        }
    }

    /// An echo server.
    pub fn echo() -> TcpServer {
        Self::start(Behaviour::Echo)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.held.lock().unwrap().clear();
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, behaviour: Behaviour) {
    match behaviour {
        Behaviour::Echo => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = conn.shutdown(std::net::Shutdown::Write);
        }
        Behaviour::Sink => {}
        Behaviour::Source(n) => {
            let mut sent = 0;
            while sent < n {
                let chunk = pattern(sent, (n - sent).min(64 * 1024));
                if conn.write_all(&chunk).is_err() {
                    return;
                }
                sent += chunk.len();
            }
            let _ = conn.shutdown(std::net::Shutdown::Write);
            // Keep the socket until the client closes.
            let mut buf = [0u8; 1024];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// `len` bytes of a deterministic, non-repeating-looking pattern starting
/// at stream offset `offset` (so that a lost or duplicated chunk shows).
pub fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8 ^ (i as u8)
        })
        .collect()
}
