//! The russh client handler of a connection: host key verification, the
//! channels the server confirms and closes, the tunnels it brings, and why
//! the connection ended; and the words for a failed handshake.

use std::sync::Arc;

use russh::client::{self, DisconnectReason};
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::shared::Shared;
use crate::error::Error;
use crate::host_key::HostKeyPolicy;

/// The russh client handler: host key verification and disconnect reasons.
pub(crate) struct ClientHandler {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) policy: HostKeyPolicy,
    pub(crate) state: Arc<Shared>,
}

impl Drop for ClientHandler {
    fn drop(&mut self) {
        // russh drops the handler when the connection task ends. It skips
        // `disconnected` when shutting down its side of the socket fails,
        // as it does when the server has reset the connection (tinysshd
        // ending it while a message of ours was on the way): the reason
        // is said here then, before anyone is told the connection ended.
        // (A reason `disconnected` gave is kept: the first one stays.)
        self.state
            .set_reason(quiet_end(&self.state, "connection closed by the server"));
        self.state.closed.cancel();
    }
}

/// Why a connection the server ended without a word ended: with no channel
/// left open, the likeliest cause, and the one that needs explaining, is a
/// server that serves one channel per connection. Not proof.
fn quiet_end(state: &Shared, what: &str) -> String {
    if state.live.count() == 0 && state.live.peak() > 0 {
        format!(
            "{what} with no channel open: the server may serve one channel per \
             connection and end the connection when that channel closes, as \
             tinysshd does"
        )
    } else {
        what.to_string()
    }
}

/// Errors raised inside the handler, carried through russh.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Russh(russh::Error),
    HostKey(Error),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn channel_open_confirmation(
        &mut self,
        id: russh::ChannelId,
        _max_packet_size: u32,
        _window_size: u32,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.state.live.confirmed(id);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        id: russh::ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.state.live.closed(id);
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (key, cert) = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (key.clone(), None),
            PublicKeyOrCertificate::Certificate(cert) => {
                (PublicKey::new(cert.public_key().clone(), ""), Some(cert))
            }
        };
        self.policy
            .verify(&self.host, self.port, &key, cert)
            .await
            .map_err(HandlerError::HostKey)?;
        Ok(true)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.state
            .routes
            .deliver(channel, connected_address, connected_port, reply)
            .await;
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // russh would accept it, agent or not.
        self.state.agent.deliver(&self.host, channel, reply);
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                let reason = format!(
                    "server disconnected ({:?}): {}",
                    info.reason_code, info.message
                );
                if let Ok(mut slot) = self.state.server_disconnect.lock() {
                    slot.get_or_insert(reason.clone());
                }
                self.state.set_reason(reason);
                Ok(())
            }
            DisconnectReason::Error(e) => {
                let described = describe_handler_error(&e);
                let reason = if ended_quietly(&e) {
                    quiet_end(&self.state, &described)
                } else {
                    described
                };
                self.state.set_reason(reason);
                Err(e)
            }
        }
    }
}

/// The server closed the connection without a disconnect message.
fn ended_quietly(e: &HandlerError) -> bool {
    matches!(
        e,
        HandlerError::Russh(russh::Error::IO(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            )
    ) || matches!(
        e,
        HandlerError::Russh(russh::Error::HUP | russh::Error::Disconnect)
    )
}

fn describe_handler_error(e: &HandlerError) -> String {
    match e {
        HandlerError::HostKey(e) => e.to_string(),
        HandlerError::Russh(russh::Error::KeepaliveTimeout) => {
            "no answer to keepalives".to_string()
        }
        HandlerError::Russh(russh::Error::InactivityTimeout) => "inactivity timeout".to_string(),
        HandlerError::Russh(russh::Error::IO(io)) => format!("I/O error: {io}"),
        HandlerError::Russh(e) => e.to_string(),
    }
}

pub(crate) fn handshake_error(host: &str, port: u16, e: HandlerError) -> Error {
    let e = match e {
        HandlerError::HostKey(e) => return e,
        HandlerError::Russh(e) => e,
    };
    let early_close = match &e {
        russh::Error::IO(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        ),
        russh::Error::Disconnect | russh::Error::HUP | russh::Error::SendError => true,
        _ => false,
    };
    // Our own words for this layer: the cause itself is the source, and
    // Display never repeats it.
    let reason = match &e {
        russh::Error::IO(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof => "connection closed by the server",
            std::io::ErrorKind::ConnectionReset => "connection reset",
            std::io::ErrorKind::ConnectionAborted => "connection aborted",
            std::io::ErrorKind::BrokenPipe => "connection closed while sending",
            std::io::ErrorKind::TimedOut => "timed out",
            _ => "I/O error",
        },
        russh::Error::UnknownKey => "host key rejected",
        russh::Error::Disconnect | russh::Error::HUP => "connection closed by the server",
        russh::Error::NoCommonAlgo { .. } => "no algorithm in common with the server",
        _ => "protocol error",
    }
    .to_string();
    Error::Handshake {
        host: host.to_string(),
        port,
        reason,
        early_close,
        source: Some(Box::new(e)),
    }
}
