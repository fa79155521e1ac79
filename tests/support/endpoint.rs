//! What the interop matrix (`tests/interop.rs`) needs of any test server,
//! whatever runs it: sshd and dropbear ([`Server`]), asyncssh
//! ([`AsyncSsh`](super::asyncssh::AsyncSsh)), tinysshd
//! ([`Tinysshd`](super::tinysshd::Tinysshd)).

use std::path::Path;

use vmssh::{Session, SshConfig};

use super::{HOST, Server};

/// A running test server on 127.0.0.1.
pub trait Endpoint {
    /// A short name for messages (`sshd`, `asyncssh`, ...).
    fn label(&self) -> &str;

    /// The listening port.
    fn port(&self) -> u16;

    /// Settings that log in with the authorized client key and trust
    /// exactly this server's host key.
    fn config(&self) -> SshConfig;

    /// A scratch directory on the server's filesystem (the same machine),
    /// removed with the server.
    fn dir(&self) -> &Path;

    /// What the server logged so far.
    fn log(&self) -> String;

    /// Connects with `cfg`, panicking (with the server's log) on failure.
    #[allow(async_fn_in_trait)] // Test code: never used as `dyn` or across crates.
    async fn connect_with(&self, cfg: &SshConfig) -> Session {
        match Session::connect(HOST, self.port(), cfg).await {
            Ok(s) => s,
            Err(e) => panic!(
                "connect to {} failed: {e} ({e:?})\nserver log:\n{}",
                self.label(),
                self.log()
            ),
        }
    }
}

impl Endpoint for Server {
    fn label(&self) -> &str {
        self.name()
    }

    fn port(&self) -> u16 {
        Server::port(self)
    }

    fn config(&self) -> SshConfig {
        Server::config(self)
    }

    fn dir(&self) -> &Path {
        Server::dir(self)
    }

    fn log(&self) -> String {
        Server::log(self)
    }
}
