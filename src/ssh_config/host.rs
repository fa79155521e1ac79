//! [`ResolvedHost`]: what the configuration files say about one host,
//! and how it becomes an [`SshConfig`] and a connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::Auth;
use crate::config::{ForwardAgent, SshConfig};
use crate::error::Error;
use crate::host_key::HostKeyPolicy;

use super::reader;
use super::reader::warning;
use super::warning::{Warning, WarningKind};

/// A host as the configuration files describe it: where to connect, as
/// whom, how, and through what.
#[derive(Clone, Debug)]
pub struct ResolvedHost {
    pub(super) alias: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) identity_files: Vec<PathBuf>,
    pub(super) identities_only: bool,
    pub(super) agent: Option<PathBuf>,
    pub(super) forward_agent: ForwardAgent,
    pub(super) certificate_files: Vec<PathBuf>,
    pub(super) proxy: Option<Proxy>,
    pub(super) known_hosts: Vec<PathBuf>,
    pub(super) strict: StrictHostKeyChecking,
    pub(super) host_key_alias: Option<String>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) server_alive_interval: Option<Duration>,
    pub(super) server_alive_count_max: u32,
    pub(super) algorithms: AlgorithmOptions,
    pub(super) warnings: Vec<Warning>,
}

/// `KexAlgorithms`, `Ciphers`, `MACs`, `HostKeyAlgorithms` (as written,
/// checked) and `Compression`.
#[derive(Clone, Debug, Default)]
pub(super) struct AlgorithmOptions {
    kex: Option<String>,
    ciphers: Option<String>,
    macs: Option<String>,
    host_keys: Option<String>,
    compression: bool,
}

impl AlgorithmOptions {
    fn apply(&self, mut cfg: SshConfig) -> SshConfig {
        if let Some(l) = &self.kex {
            cfg = cfg.kex_algorithms([l.as_str()]);
        }
        if let Some(l) = &self.ciphers {
            cfg = cfg.ciphers([l.as_str()]);
        }
        if let Some(l) = &self.macs {
            cfg = cfg.macs([l.as_str()]);
        }
        if let Some(l) = &self.host_keys {
            cfg = cfg.host_key_algorithms([l.as_str()]);
        }
        cfg.compression(self.compression)
    }

    /// The options as read, each list checked where it was written: a name
    /// OpenSSH knows but vmssh does not implement is left out with a
    /// warning; any other unknown name, or a list left with nothing vmssh
    /// implements, fails resolution with its file and line.
    pub(super) fn read(opts: &reader::Options, warnings: &mut Vec<Warning>) -> Result<Self, Error> {
        let lists = [
            ("KexAlgorithms", &opts.kex_algorithms),
            ("Ciphers", &opts.ciphers),
            ("MACs", &opts.macs),
            ("HostKeyAlgorithms", &opts.host_key_algorithms),
        ];
        let mut out = AlgorithmOptions {
            compression: opts.compression.as_ref().is_some_and(|s| s.value),
            ..AlgorithmOptions::default()
        };
        for (i, (option, set)) in lists.into_iter().enumerate() {
            let Some(set) = set else { continue };
            let mut value = set.value.clone();
            let one = loop {
                let one = AlgorithmOptions {
                    kex: (i == 0).then(|| value.clone()),
                    ciphers: (i == 1).then(|| value.clone()),
                    macs: (i == 2).then(|| value.clone()),
                    host_keys: (i == 3).then(|| value.clone()),
                    compression: false,
                };
                match one.apply(SshConfig::new("")).algorithms.resolve() {
                    Ok(_) => break one,
                    // Another client's algorithm (OpenSSH's sntrup761 or
                    // umac): left out with a warning, as long as the list
                    // keeps a name vmssh implements.
                    Err(Error::UnsupportedAlgorithm { kind, name, .. })
                        if kind.is_openssh_name(&name) =>
                    {
                        value = without_name(&value, &name);
                        if value.is_empty() {
                            return Err(set.at.error(format!(
                                "{option}: vmssh implements none of {}",
                                set.value
                            )));
                        }
                        warnings.push(warning(
                            &set.at,
                            &option.to_ascii_lowercase(),
                            WarningKind::AlgorithmNotImplemented(name),
                        ));
                    }
                    Err(e) => return Err(set.at.error(format!("{option}: {e}"))),
                }
            };
            match i {
                0 => out.kex = one.kex,
                1 => out.ciphers = one.ciphers,
                2 => out.macs = one.macs,
                _ => out.host_keys = one.host_keys,
            }
        }
        Ok(out)
    }
}

/// An OpenSSH algorithm list (`a,b`, `+a,b`, `-a,b` or `^a,b`) without
/// `name`, its leading `+`, `-` or `^` kept.
fn without_name(list: &str, name: &str) -> String {
    let (mode, rest) = match list.chars().next() {
        Some(c @ ('+' | '-' | '^')) => (&list[..c.len_utf8()], &list[c.len_utf8()..]),
        _ => ("", list),
    };
    let kept: Vec<&str> = rest
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != name)
        .collect();
    format!("{mode}{}", kept.join(","))
}

/// How a host is reached when not directly.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Proxy {
    /// Through an SSH session to this jump host (`ProxyJump`), itself
    /// resolved through the configuration and possibly behind its own
    /// proxy.
    Jump(Box<ResolvedHost>),
    /// Through the standard input and output of this command
    /// (`ProxyCommand`), tokens expanded, to be run as
    /// `$SHELL -c "exec COMMAND"`.
    Command(String),
}

/// `StrictHostKeyChecking`: what happens to a host key not yet recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StrictHostKeyChecking {
    /// Unknown keys are refused (`yes`).
    Yes,
    /// Unknown keys are recorded and trusted (`accept-new`).
    AcceptNew,
    /// OpenSSH records unknown keys and connects, with restrictions, even
    /// when a key has changed (`no`). vmssh records unknown keys but still
    /// refuses changed ones.
    No,
    /// OpenSSH asks the user (`ask`, the default). vmssh cannot ask and
    /// refuses unknown keys, as OpenSSH does in batch mode.
    Ask,
}

impl ResolvedHost {
    /// The name that was resolved, as given (`%n`).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The host to connect to: `HostName` with `%h` expanded, else the
    /// alias; lowercased unless an address, as OpenSSH does.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port. Default: 22.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The remote user. Default: the local user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The identity files in the order OpenSSH tries them, expanded:
    /// the configured ones, or OpenSSH's defaults (`~/.ssh/id_rsa`,
    /// `id_ecdsa`, ...) when none is configured. Files that do not exist
    /// are listed here but not used.
    pub fn identity_files(&self) -> &[PathBuf] {
        &self.identity_files
    }

    /// `IdentitiesOnly`: use only the identity files, not the agent.
    pub fn identities_only(&self) -> bool {
        self.identities_only
    }

    /// `CertificateFile` entries, expanded.
    pub fn certificate_files(&self) -> &[PathBuf] {
        &self.certificate_files
    }

    /// The agent socket used (`IdentityAgent`, else `SSH_AUTH_SOCK`), if
    /// any.
    pub fn identity_agent(&self) -> Option<&Path> {
        self.agent.as_deref()
    }

    /// `ForwardAgent`: whether the agent is forwarded. Default: no.
    pub fn forward_agent(&self) -> bool {
        self.forward_agent != ForwardAgent::Off
    }

    /// The agent socket `ForwardAgent` names (a path, or `$VAR`'s value),
    /// when it names one rather than saying `yes` (`SSH_AUTH_SOCK`'s).
    pub fn forward_agent_socket(&self) -> Option<&Path> {
        match &self.forward_agent {
            ForwardAgent::At(p) => Some(p),
            ForwardAgent::Off | ForwardAgent::Env => None,
        }
    }

    /// How the host is reached when not directly.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// `UserKnownHostsFile`, expanded. Default: `~/.ssh/known_hosts` and
    /// `~/.ssh/known_hosts2`.
    pub fn known_hosts_files(&self) -> &[PathBuf] {
        &self.known_hosts
    }

    /// `StrictHostKeyChecking`. Default: [`StrictHostKeyChecking::Ask`].
    pub fn strict_host_key_checking(&self) -> StrictHostKeyChecking {
        self.strict
    }

    /// `HostKeyAlias`, lowercased: the name the host key is recorded under
    /// instead of `host:port`.
    pub fn host_key_alias(&self) -> Option<&str> {
        self.host_key_alias.as_deref()
    }

    /// `ConnectTimeout`, when set (and not 0).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// `ServerAliveInterval`, when set; zero means off.
    pub fn server_alive_interval(&self) -> Option<Duration> {
        self.server_alive_interval
    }

    /// `ServerAliveCountMax`. Default: 3.
    pub fn server_alive_count_max(&self) -> u32 {
        self.server_alive_count_max
    }

    /// Options that apply to this host but that vmssh does not (fully)
    /// apply, each naming its file and line. A jump host has its own.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The connection settings for this host, ready for
    /// [`Session::connect`](crate::Session::connect) to
    /// [`host`](Self::host):[`port`](Self::port):
    ///
    /// - the user;
    /// - authentication: the agent first (unless `IdentitiesOnly` or
    ///   `IdentityAgent none`, and only when a socket is known), then each
    ///   identity file that exists, in order;
    /// - host keys: the first known_hosts file (`/dev/null` for `none`),
    ///   [`HostKeyPolicy::known_hosts`] for `yes` and `ask`,
    ///   [`HostKeyPolicy::accept_new`] for `accept-new` and `no`, looking
    ///   the key up under `HostKeyAlias` when set (as
    ///   [`HostKeyPolicy::per_instance`] does), which is also the name a
    ///   host certificate must carry;
    /// - `ConnectTimeout` as [`SshConfig::connect_timeout`] (the whole
    ///   connect, not only TCP), `ServerAliveInterval` and
    ///   `ServerAliveCountMax` as the keepalive settings. Where the files
    ///   say nothing, vmssh's defaults stay (keepalive on every 15 s);
    /// - `KexAlgorithms`, `Ciphers`, `MACs` and `HostKeyAlgorithms` as
    ///   [`SshConfig::kex_algorithms`] and its siblings (OpenSSH's syntax,
    ///   `+`, `-` and `^` included), `Compression` as
    ///   [`SshConfig::compression`];
    /// - `ForwardAgent` as [`SshConfig::forward_agent`] (`yes`), or
    ///   [`SshConfig::forward_agent_at`] (a socket path or `$VAR`).
    pub fn ssh_config(&self) -> SshConfig {
        let mut cfg = SshConfig::new(self.user.clone());
        if !self.identities_only
            && let Some(sock) = &self.agent
        {
            cfg = cfg.auth(Auth::agent_at(sock));
        }
        for file in self.identity_files.iter().filter(|f| f.is_file()) {
            cfg = cfg.auth(Auth::key_file(file));
        }
        let known = self
            .known_hosts
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/dev/null"));
        let learn = match self.strict {
            StrictHostKeyChecking::Yes | StrictHostKeyChecking::Ask => false,
            StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No => true,
        };
        cfg = cfg.host_key(HostKeyPolicy::known_hosts_as(
            known,
            self.host_key_alias.clone(),
            learn,
        ));
        if let Some(t) = self.connect_timeout {
            cfg = cfg.connect_timeout(t);
        }
        if let Some(i) = self.server_alive_interval {
            cfg = cfg.keepalive_interval((!i.is_zero()).then_some(i));
        }
        cfg = match &self.forward_agent {
            ForwardAgent::Off => cfg,
            ForwardAgent::Env => cfg.forward_agent(true),
            ForwardAgent::At(p) => cfg.forward_agent_at(p),
        };
        cfg = self.algorithms.apply(cfg);
        cfg.keepalive_max(self.server_alive_count_max as usize)
    }
}

impl ResolvedHost {
    /// Connects the way OpenSSH would: directly, through the jump hosts
    /// (each connected with its own settings, outermost first), or through
    /// the proxy command, with [`ssh_config`](Self::ssh_config) at each
    /// step. Each hop gets its own connect timeout.
    ///
    /// # Errors
    ///
    /// As [`Session::connect`](crate::Session::connect) for each hop,
    /// [`Error::Tunnel`] when a jump host cannot reach the next one, and
    /// [`Error::ProxyCommand`] when the proxy command cannot start or ends
    /// before the session is up.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt; sessions to jump hosts
    /// made so far are closed.
    pub async fn connect(&self) -> Result<crate::Session, Error> {
        let cfg = self.ssh_config();
        match &self.proxy {
            None => crate::Session::connect(&self.host, self.port, &cfg).await,
            Some(Proxy::Jump(hop)) => {
                let jump = Box::pin(hop.connect()).await?;
                crate::Session::connect_via(&jump, &self.host, self.port, &cfg).await
            }
            Some(Proxy::Command(command)) => {
                crate::proxy_command::connect(command, &self.host, self.port, &cfg).await
            }
        }
    }
}
