//! TCP through a session: a [`Tunnel`] to a host and port as seen from the
//! server ([`Session::open_tcp`]), local forwards ([`LocalForward`]: listen
//! here, connect there) and remote forwards ([`RemoteForward`]: the server
//! listens, connections come here).
//!
//! # Channel limit and backpressure
//!
//! Each open tunnel is one channel and holds one of the session's
//! [`SshConfig::max_channels`](crate::SshConfig::max_channels) slots while
//! it is open; a listening forward holds none. Tunnels beyond the limit
//! wait for a slot.
//!
//! Writes into a tunnel wait for the channel's window: a far end that does
//! not read blocks only that tunnel's writer. Data arriving for a tunnel is
//! queued per channel (up to
//! [`SshConfig::channel_buffer_size`](crate::SshConfig::channel_buffer_size)
//! messages) until its reader takes it; russh reads the connection from one
//! task, so a tunnel whose reader stops for longer than that queue lasts
//! pauses every channel of the session until it reads again. Forwards read
//! each tunnel on its own task and pass data on as soon as the local socket
//! takes it, so only a local peer that stops reading causes that pause. A
//! tunnel that must be allowed to stall for long belongs on a session of
//! its own.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::sync::CancellationToken;

use crate::channel::{self, ChannelLease, ChannelStream};
use crate::connection::{Forwarded, RemoteForwards};
use crate::error::Error;
use crate::session::Session;

/// Bytes buffered per direction when a forward copies between a socket
/// and a tunnel: two SSH packets' worth.
const COPY_BUFFER: usize = 64 * 1024;

/// A TCP connection made by the server on this session's behalf
/// (`direct-tcpip`), or brought to us by a remote forward
/// (`forwarded-tcpip`): bytes written here come out there, and back.
///
/// Reads end (`Ok(0)`) when the far end closes its side; shutting down the
/// write side sends end-of-file. A read after the session was lost fails
/// with [`io::ErrorKind::ConnectionAborted`].
///
/// # Drop behavior
///
/// Dropping the tunnel closes its channel and frees its slot.
pub struct Tunnel {
    stream: ChannelStream,
    to: (String, u16),
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("to", &format_args!("{}:{}", self.to.0, self.to.1))
            .field("eof", &self.stream.at_eof())
            .finish()
    }
}

impl Tunnel {
    fn new(lease: ChannelLease, to: (String, u16)) -> Tunnel {
        Tunnel {
            stream: ChannelStream::new(lease),
            to,
        }
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Session {
    /// Opens a TCP connection from the server to `host:port` (as the
    /// server resolves and reaches it), waiting for a free channel slot.
    ///
    /// # Errors
    ///
    /// [`Error::Tunnel`] when the server refuses (forwarding disabled,
    /// `host:port` unreachable from it); [`Error::ConnectionLost`] when the
    /// session has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a channel confirmed after the future was dropped is
    /// closed.
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<Tunnel, Error> {
        self.open_tcp_from(host, port, None).await
    }

    pub(crate) async fn open_tcp_from(
        &self,
        host: &str,
        port: u16,
        from: Option<SocketAddr>,
    ) -> Result<Tunnel, Error> {
        let lease = channel::open_tunnel(self.connection(), host, port, from).await?;
        Ok(Tunnel::new(lease, (host.to_string(), port)))
    }

    /// Listens on `bind` (anything [`ToSocketAddrs`] takes, such as
    /// `"127.0.0.1:0"`) and tunnels each accepted connection to
    /// `host:port` as seen from the server.
    ///
    /// A connection the server refuses to tunnel is closed (and logged at
    /// debug level); the forward keeps listening.
    ///
    /// # Errors
    ///
    /// [`Error::Listen`] when `bind` cannot be resolved or bound (address
    /// in use, permission).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing listens once the future is dropped.
    pub async fn forward_local(
        &self,
        bind: impl ToSocketAddrs,
        host: &str,
        port: u16,
    ) -> Result<LocalForward, Error> {
        let listener = bind_any(bind).await?;
        let local_addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: "<bound socket>".to_string(),
            source,
        })?;
        let stop = CancellationToken::new();
        let task = LocalTask {
            session: self.clone(),
            listener,
            to: (host.to_string(), port),
            stop: stop.clone(),
        };
        tokio::spawn(task.run());
        Ok(LocalForward {
            local_addr,
            to: (host.to_string(), port),
            _stop: stop.drop_guard(),
        })
    }

    /// Asks the server to listen on `bind_host:bind_port` (`bind_port` 0:
    /// the server picks) and connects each connection it brings to
    /// `to_host:to_port` from here.
    ///
    /// # Errors
    ///
    /// [`Error::RequestRefused`] when the server refuses (forwarding
    /// disabled, port in use there); [`Error::ConnectionLost`] when the
    /// session has ended.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the server accepted, the forward may
    /// stay registered on the server until the session ends; connections
    /// through it are refused here.
    pub async fn forward_remote(
        &self,
        bind_host: &str,
        bind_port: u16,
        to_host: &str,
        to_port: u16,
    ) -> Result<RemoteForward, Error> {
        let incoming = self.listen_remote(bind_host, bind_port).await?;
        let stop = CancellationToken::new();
        let port = incoming.port();
        tokio::spawn(
            RemoteTask {
                session: self.clone(),
                incoming,
                to: (to_host.to_string(), to_port),
                stop: stop.clone(),
            }
            .run(),
        );
        Ok(RemoteForward {
            session: self.clone(),
            bind_host: bind_host.to_string(),
            port,
            stop: Some(stop),
        })
    }
}

async fn bind_any(bind: impl ToSocketAddrs) -> Result<TcpListener, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(bind)
        .await
        .map_err(|source| Error::Listen {
            addr: "<unresolved>".to_string(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, source)) => Error::Listen {
            addr: addr.to_string(),
            source,
        },
        None => Error::Listen {
            addr: "<no address>".to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on"),
        },
    })
}

/// A local forward: listens here, tunnels through the session.
///
/// # Drop behavior
///
/// Dropping the handle stops listening and closes every tunnel it opened.
#[must_use = "dropping the handle stops the forward"]
pub struct LocalForward {
    local_addr: SocketAddr,
    to: (String, u16),
    _stop: tokio_util::sync::DropGuard,
}

impl fmt::Debug for LocalForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalForward")
            .field("local_addr", &self.local_addr)
            .field("to", &format_args!("{}:{}", self.to.0, self.to.1))
            .finish()
    }
}

impl LocalForward {
    /// The address it listens on (with the port the system picked for
    /// port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

struct LocalTask {
    session: Session,
    listener: TcpListener,
    to: (String, u16),
    stop: CancellationToken,
}

impl LocalTask {
    async fn run(self) {
        loop {
            let accepted = tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.session.closed() => return,
                a = self.listener.accept() => a,
            };
            let (socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: the listener
                    // itself is fine; try again on the next connection.
                    tracing::debug!(error = %e, "forward: accept failed");
                    continue;
                }
            };
            let session = self.session.clone();
            let (host, port) = self.to.clone();
            let stop = self.stop.clone();
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let tunnel = tokio::select! {
                    () = stop.cancelled() => return,
                    t = session.open_tcp_from(&host, port, Some(peer)) => t,
                };
                match tunnel {
                    Ok(tunnel) => pipe(socket, tunnel, &stop).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "forward: tunnel refused"),
                }
            });
        }
    }
}

/// Copies both ways until both sides are done or `stop` fires; then both
/// are dropped (socket closed, channel closed).
async fn pipe(mut socket: TcpStream, mut tunnel: Tunnel, stop: &CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        r = tokio::io::copy_bidirectional_with_sizes(&mut socket, &mut tunnel, COPY_BUFFER, COPY_BUFFER) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "forward: tunnel ended");
            }
        }
    }
}

/// A remote forward: the server listens, connections come here.
///
/// # Drop behavior
///
/// Dropping the handle cancels the forward on the server (in the
/// background) and closes its tunnels; [`close`](Self::close) does it and
/// waits for the server's answer.
#[must_use = "dropping the handle cancels the forward"]
pub struct RemoteForward {
    session: Session,
    bind_host: String,
    port: u16,
    stop: Option<CancellationToken>,
}

impl fmt::Debug for RemoteForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteForward")
            .field("bind", &format_args!("{}:{}", self.bind_host, self.port))
            .finish()
    }
}

impl RemoteForward {
    /// The port the server listens on (the one it picked for port 0).
    pub fn remote_port(&self) -> u16 {
        self.port
    }

    /// Cancels the forward and waits until the server has stopped
    /// listening.
    ///
    /// # Errors
    ///
    /// [`Error::RequestRefused`] if the server refuses to cancel;
    /// [`Error::ConnectionLost`] if the session has ended (the server then
    /// listens no more either).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the server may or may not have stopped listening.
    pub async fn close(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
        self.session
            .unlisten_remote(&self.bind_host, self.port)
            .await
    }
}

impl Drop for RemoteForward {
    fn drop(&mut self) {
        let Some(stop) = self.stop.take() else {
            return;
        };
        stop.cancel();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = self.session.clone();
        let host = std::mem::take(&mut self.bind_host);
        let port = self.port;
        rt.spawn(async move {
            let _ = session.unlisten_remote(&host, port).await;
        });
    }
}

struct RemoteTask {
    session: Session,
    incoming: Incoming,
    to: (String, u16),
    stop: CancellationToken,
}

impl RemoteTask {
    async fn run(mut self) {
        loop {
            let lease = tokio::select! {
                () = self.stop.cancelled() => return,
                l = self.incoming.next() => match l {
                    Some(l) => l,
                    None => return,
                },
            };
            let (host, port) = self.to.clone();
            let stop = self.stop.clone();
            let session = self.session.clone();
            tokio::spawn(async move {
                let tunnel = Tunnel::new(lease, (host.clone(), port));
                let socket = tokio::select! {
                    () = stop.cancelled() => return,
                    s = TcpStream::connect((host.as_str(), port)) => s,
                };
                match socket {
                    Ok(socket) => {
                        let _ = socket.set_nodelay(true);
                        pipe(socket, tunnel, &stop).await;
                    }
                    Err(e) => tracing::debug!(
                        host = %session.host(),
                        to = %format_args!("{host}:{port}"),
                        error = %e,
                        "remote forward: local connect failed"
                    ),
                }
            });
        }
    }
}

/// How many tunnels a remote forward lets the server bring before it takes
/// them (each then waits for a channel slot); more are refused.
const INCOMING_QUEUE: usize = 16;

/// Tunnels the server brings for one remote forward.
struct Incoming {
    session: Session,
    rx: tokio::sync::mpsc::Receiver<Forwarded>,
    port: u16,
}

impl Incoming {
    fn port(&self) -> u16 {
        self.port
    }

    /// The next tunnel, once a channel slot is free for it.
    async fn next(&mut self) -> Option<ChannelLease> {
        let channel = self.rx.recv().await?;
        channel::adopt(self.session.connection(), channel)
            .await
            .ok()
    }
}

impl Session {
    fn remote_forwards(&self) -> &RemoteForwards {
        self.inner.routes()
    }

    async fn listen_remote(&self, bind_host: &str, bind_port: u16) -> Result<Incoming, Error> {
        let (tx, rx) = tokio::sync::mpsc::channel(INCOMING_QUEUE);
        // Registered before asking, so that a tunnel arriving right after
        // the server's answer finds its way.
        self.remote_forwards()
            .insert(bind_host, u32::from(bind_port), tx.clone());
        let answer = self
            .inner
            .handle
            .tcpip_forward(bind_host, u32::from(bind_port))
            .await;
        let port = match answer {
            Ok(p) if bind_port == 0 => u16::try_from(p).unwrap_or(0),
            Ok(_) => bind_port,
            Err(e) => {
                self.remote_forwards()
                    .remove(bind_host, u32::from(bind_port));
                return Err(match e {
                    russh::Error::RequestDenied => Error::RequestRefused {
                        host: self.host().to_string(),
                        port: self.port(),
                        request: format!("tcpip-forward {bind_host}:{bind_port}"),
                    },
                    other => self.lost(&other.to_string()),
                });
            }
        };
        if bind_port == 0 {
            self.remote_forwards().remove(bind_host, 0);
            self.remote_forwards()
                .insert(bind_host, u32::from(port), tx);
        }
        Ok(Incoming {
            session: self.clone(),
            rx,
            port,
        })
    }

    async fn unlisten_remote(&self, bind_host: &str, port: u16) -> Result<(), Error> {
        self.remote_forwards().remove(bind_host, u32::from(port));
        match self
            .inner
            .handle
            .cancel_tcpip_forward(bind_host, u32::from(port))
            .await
        {
            Ok(()) => Ok(()),
            Err(russh::Error::RequestDenied) => Err(Error::RequestRefused {
                host: self.host().to_string(),
                port: self.port(),
                request: format!("cancel-tcpip-forward {bind_host}:{port}"),
            }),
            Err(e) => Err(self.lost(&e.to_string())),
        }
    }
}
