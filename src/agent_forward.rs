//! Agent forwarding (`ssh -A`), the local end (private): the request a
//! command's or shell's channel makes, and the agent channels the server
//! then opens, each connected to the local agent's socket with bytes
//! copied both ways until either side ends.
//!
//! The connection's handler (`connection/agent.rs`) refuses agent channels
//! while no open channel asked for an agent; those it lets through come
//! here.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use russh::client::ChannelOpenHandle;
use tokio::net::UnixStream;

use crate::channel::{self, ChannelStream, Request};
use crate::config::ForwardAgent;
use crate::connection::{Connection, Forwarded};

/// Serves the agent channels the server opens on `conn` from now on.
pub(crate) fn serve_agent_channels(conn: &Arc<Connection>) {
    // Weak: the handler's state must not keep its own connection alive.
    let weak: Weak<Connection> = Arc::downgrade(conn);
    conn.agent().deliver_to(Box::new(move |channel, reply| {
        if let Some(conn) = weak.upgrade() {
            tokio::spawn(serve(conn, channel, reply));
        }
    }));
}

/// Adds the agent request to `requests` (before the program request) when
/// the agent is forwarded: `forward` when given (a command's own choice),
/// else the session's ([`SshConfig::forward_agent`](crate::SshConfig::forward_agent)).
/// Without a local agent to forward, nothing is added and a warning is
/// logged: the program runs without an agent, as with OpenSSH.
pub(crate) fn push_agent_request(
    conn: &Connection,
    forward: Option<bool>,
    requests: &mut Vec<Request<'_>>,
) {
    let on = forward.unwrap_or(conn.forward_agent != ForwardAgent::Off);
    if !on {
        return;
    }
    if local_agent(conn).is_none() {
        tracing::warn!(
            host = %conn.host,
            "agent forwarding asked for, but SSH_AUTH_SOCK is not set: running without an agent"
        );
        return;
    }
    requests.push(Request::AgentForward);
}

/// The local agent's socket: the configured one, else `SSH_AUTH_SOCK`'s.
fn local_agent(conn: &Connection) -> Option<PathBuf> {
    match &conn.forward_agent {
        ForwardAgent::At(path) => Some(path.clone()),
        ForwardAgent::Off | ForwardAgent::Env => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
    }
}

/// Connects one agent channel to the local agent. The channel is accepted
/// once the agent answered the connect, and refused (by dropping `reply`)
/// when it cannot be reached.
async fn serve(conn: Arc<Connection>, channel: Forwarded, reply: ChannelOpenHandle) {
    let Some(path) = local_agent(&conn) else {
        tracing::debug!(host = %conn.host, "agent channel refused: no local agent");
        return;
    };
    let mut agent = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                host = %conn.host,
                socket = %path.display(),
                error = %e,
                "agent channel refused: cannot reach the local agent"
            );
            return;
        }
    };
    reply.accept().await;
    // Owned from the moment it is accepted: dropping the lease closes it.
    let mut stream = ChannelStream::new(channel::adopt_agent(&conn, channel));
    if let Err(e) = tokio::io::copy_bidirectional(&mut agent, &mut stream).await {
        tracing::debug!(host = %conn.host, error = %e, "agent channel ended");
    }
}
