//! A TCP front for a real server whose first connections are accepted and
//! then left silent, as QEMU's user-mode network does while a guest boots;
//! later connections are relayed to the server. It records, at each
//! accept, how many earlier connections the client still holds open.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A listener on 127.0.0.1 in front of `backend`; dropped, it stops
/// accepting and closes everything.
#[derive(Debug)]
pub struct SilentFirst {
    port: u16,
    state: Arc<Mutex<State>>,
    silent_closed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    accepted: usize,
    /// The most connections the client held open at once, counted at each
    /// accept (the new one included).
    max_open: usize,
    /// Silent connections the client has closed.
    silent_closed: usize,
}

impl SilentFirst {
    /// Leaves the first `silent` connections silent (forever) and relays
    /// the others to `127.0.0.1:backend`.
    pub async fn start(silent: usize, backend: u16) -> SilentFirst {
        let listener = TcpListener::bind((super::HOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let closed = Arc::new(Notify::new());
        let (st, notify) = (state.clone(), closed.clone());
        let task = tokio::spawn(async move {
            let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
            let mut relayed: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                relayed.retain(|t| !t.is_finished());
                // The client closes a connection before it opens the next
                // one, and on loopback its FIN is queued before the new
                // SYN is accepted: a held connection that reads EOF now is
                // one the client gave up.
                let open_silent = held
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|c| {
                        let mut b = [0u8; 1];
                        !matches!(c.try_read(&mut b), Ok(0))
                    })
                    .count();
                let n = {
                    let mut s = st.lock().unwrap();
                    s.accepted += 1;
                    s.max_open = s.max_open.max(open_silent + relayed.len() + 1);
                    s.accepted
                };
                if n <= silent {
                    let (st, notify) = (st.clone(), notify.clone());
                    let peer = conn.into_std().unwrap();
                    let watch = TcpStream::from_std(peer.try_clone().unwrap()).unwrap();
                    held.lock()
                        .unwrap()
                        .push(TcpStream::from_std(peer).unwrap());
                    // Tell the test when the client closes it.
                    tokio::spawn(async move {
                        let mut watch = watch;
                        let mut buf = [0u8; 256];
                        while let Ok(n) = watch.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                        st.lock().unwrap().silent_closed += 1;
                        notify.notify_waiters();
                    });
                } else {
                    relayed.push(tokio::spawn(async move {
                        let mut conn = conn;
                        if let Ok(mut server) = TcpStream::connect((super::HOST, backend)).await {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut server).await;
                        }
                    }));
                }
            }
        });
        SilentFirst {
            port,
            state,
            silent_closed: closed,
            task,
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.lock().unwrap().accepted
    }

    /// The most connections the client held open at once.
    pub fn max_open(&self) -> usize {
        self.state.lock().unwrap().max_open
    }

    /// Resolves once the client has closed `n` silent connections.
    pub async fn wait_silent_closed(&self, n: usize) {
        loop {
            let notified = self.silent_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().unwrap().silent_closed >= n {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SilentFirst {
    fn drop(&mut self) {
        self.task.abort();
    }
}
