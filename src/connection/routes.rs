//! Remote-forward routes: where the connection's handler sends each
//! tunnel the server brings (`forwarded-tcpip`), by the address and port
//! the server listens on. The forwards themselves (`forward.rs`) register
//! here and take their tunnels from the queue.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc::Sender;

/// A tunnel the server brought, before a forward takes it.
pub(crate) type Forwarded = russh::Channel<russh::client::Msg>;

/// The remote forwards of one connection, by the address and port the
/// server listens on.
#[derive(Debug, Default)]
pub(crate) struct RemoteForwards {
    routes: Mutex<HashMap<(String, u32), Sender<Forwarded>>>,
}

impl RemoteForwards {
    /// Where tunnels for `address:port` go: the forward registered for it,
    /// else one still waiting for the server to say which port it picked.
    fn route(&self, address: &str, port: u32) -> Option<Sender<Forwarded>> {
        let routes = self.routes.lock().ok()?;
        routes
            .get(&(address.to_string(), port))
            .or_else(|| routes.get(&(address.to_string(), 0)))
            .cloned()
    }

    /// Tunnels for `address:port` go to `tx` from now on.
    pub(crate) fn insert(&self, address: &str, port: u32, tx: Sender<Forwarded>) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert((address.to_string(), port), tx);
        }
    }

    /// Forgets the route for `address:port`, returning it.
    pub(crate) fn remove(&self, address: &str, port: u32) -> Option<Sender<Forwarded>> {
        self.routes
            .lock()
            .ok()
            .and_then(|mut r| r.remove(&(address.to_string(), port)))
    }

    /// Hands a tunnel the server brought to its forward. One that cannot
    /// be taken (no such forward, its queue full or gone) is refused before
    /// it is accepted, so that no channel is ever open without an owner.
    pub(crate) async fn deliver(
        &self,
        channel: Forwarded,
        address: &str,
        port: u32,
        reply: russh::client::ChannelOpenHandle,
    ) {
        let Some(permit) = self
            .route(address, port)
            .and_then(|tx| tx.try_reserve_owned().ok())
        else {
            // Dropping the reply refuses the channel.
            return;
        };
        reply.accept().await;
        permit.send(channel);
    }
}
