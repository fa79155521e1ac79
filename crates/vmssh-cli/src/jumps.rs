//! Jump hosts (bastions): each connected once, after every check and
//! before the run, its session shared by every host behind it
//! ([`vmssh::fleet::Target::via`]), with room for as many tunnels as hosts
//! run at once.

use std::collections::HashMap;
use std::time::Duration;

use vmssh::fleet::Target;
use vmssh::provision::ProvisionDef;
use vmssh::ssh_config::{Proxy, ResolvedHost};
use vmssh::{Error, Session};

use crate::credentials::{Endpoint, Jump};

/// The connected jump hosts of a run, by [`Jump::key`].
#[derive(Debug, Default)]
pub(crate) struct Jumps {
    sessions: HashMap<String, Session>,
}

impl Jumps {
    /// Connects every jump host the endpoints name, one after the other
    /// (a run has few), each retried until `deadline`, with `tunnels`
    /// channels (the fleet's concurrency).
    ///
    /// # Errors
    ///
    /// The first jump host that cannot be reached, named.
    pub(crate) async fn connect(
        endpoints: &[Endpoint],
        tunnels: usize,
        deadline: Duration,
    ) -> Result<Jumps, String> {
        let mut sessions = HashMap::new();
        for jump in endpoints.iter().filter_map(|e| e.jump.as_ref()) {
            let key = jump.key();
            if sessions.contains_key(&key) {
                continue;
            }
            let session = match jump {
                Jump::Direct { host, port, config } => {
                    let cfg = (**config).clone().max_channels(tunnels);
                    Session::connect_with_retry(host, *port, &cfg, deadline).await
                }
                Jump::Alias(hop) => connect_alias(hop, tunnels, deadline).await,
            }
            .map_err(|e| format!("{}: {}", jump.describe(), e.chain()))?;
            sessions.insert(key, session);
        }
        Ok(Jumps { sessions })
    }

    /// The session of the endpoint's jump host, if it has one.
    pub(crate) fn session(&self, e: &Endpoint) -> Option<&Session> {
        e.jump.as_ref().and_then(|j| self.sessions.get(&j.key()))
    }

    /// The endpoint as a fleet target running `steps`, through its jump.
    pub(crate) fn target(&self, e: Endpoint, steps: Vec<ProvisionDef>) -> Target {
        let jump = self.session(&e);
        let target = Target::new(e.name, e.host, e.port, e.config, steps);
        match jump {
            Some(session) => target.via(session.clone()),
            None => target,
        }
    }
}

/// An `--ssh-config` jump host, through its own jumps when it has them
/// (each of those carries one tunnel).
async fn connect_alias(
    hop: &ResolvedHost,
    tunnels: usize,
    deadline: Duration,
) -> Result<Session, Error> {
    let cfg = hop.ssh_config().max_channels(tunnels);
    match hop.proxy() {
        None => Session::connect_with_retry(hop.host(), hop.port(), &cfg, deadline).await,
        Some(Proxy::Jump(outer)) => {
            let outer = Box::pin(connect_alias(outer, 1, deadline)).await?;
            Session::connect_via_with_retry(&outer, hop.host(), hop.port(), &cfg, deadline).await
        }
        // A ProxyCommand: the library runs it (at its default channel
        // limit, so hosts beyond it wait for a tunnel).
        Some(_) => hop.connect().await,
    }
}
