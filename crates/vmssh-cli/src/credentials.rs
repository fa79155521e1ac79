//! How each host is logged into and trusted: keys, agent, password and
//! host-key policy from the flags, a host's own key (inventory, plan),
//! checked before anything connects, and turned into an
//! [`SshConfig`] per host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vmssh::ssh_config::{Proxy, ResolvedHost};
use vmssh::{Auth, HostKeyPolicy, SshConfig};

use crate::address::Address;
use crate::args::AuthArgs;
use crate::targets::{Host, Reach};
use crate::usage::Usage;

/// The flags' credentials, checked.
#[derive(Debug)]
pub(crate) struct Credentials {
    keys: Vec<Auth>,
    passphrase: Option<String>,
    agent: bool,
    password: Option<Auth>,
    /// From the host-key flags, when one was given.
    host_key: Option<HostKeyPolicy>,
    /// Keys named by inventories and plans, checked once each.
    host_keys: HashMap<PathBuf, Auth>,
    /// `--retry-auth`.
    retry_auth: bool,
    /// `-A`.
    forward_agent: bool,
}

/// Where a host is connected, as whom and how.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) config: SshConfig,
    /// The bastion it is reached through, if any.
    pub(crate) jump: Option<Jump>,
}

/// A jump host (bastion), connected once for every host behind it (see
/// `jumps.rs`).
#[derive(Clone, Debug)]
pub(crate) enum Jump {
    /// `--jump` or an inventory's `jump=`: the flags' credentials.
    Direct {
        host: String,
        port: u16,
        config: Box<SshConfig>,
    },
    /// An `--ssh-config` host's `ProxyJump`, as its files say (maybe
    /// behind jumps of its own).
    Alias(Box<ResolvedHost>),
}

impl Jump {
    /// Hosts with the same key share one connection.
    pub(crate) fn key(&self) -> String {
        match self {
            Jump::Direct { host, port, config } => {
                format!("{}@{host}:{port}", config.user_name())
            }
            // The alias chain as written: a hop's identity is its config.
            Jump::Alias(r) => format!("ssh-config {}", r.alias()),
        }
    }

    /// As messages name it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Jump::Direct { host, port, config } => {
                format!("jump host {}@{host}:{port}", config.user_name())
            }
            Jump::Alias(r) => format!("jump host {} ({}:{})", r.alias(), r.host(), r.port()),
        }
    }
}

/// What a plan says about a host, for what the host itself does not say.
#[derive(Debug, Default)]
pub(crate) struct Defaults {
    pub(crate) user: Option<String>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) port: Option<u16>,
}

impl Credentials {
    /// Reads the environment variables and checks every `--key` now: an
    /// unreadable or malformed key is a usage error.
    pub(crate) async fn new(a: &AuthArgs) -> Result<Credentials, Usage> {
        let passphrase = a
            .passphrase_env
            .as_deref()
            .map(|var| env_secret("--passphrase-env", var))
            .transpose()?;
        let password = a
            .password_env
            .as_deref()
            .map(|var| env_secret("--password-env", var).map(Auth::password))
            .transpose()?;
        let no_agent = std::env::var_os("SSH_AUTH_SOCK").is_none_or(|s| s.is_empty());
        if a.agent && no_agent {
            return Err(Usage("--agent: SSH_AUTH_SOCK is not set".into()));
        }
        if a.forward_agent && no_agent {
            // As ssh -A: not an error; the commands run without an agent.
            eprintln!(
                "vmssh: warning: --forward-agent: SSH_AUTH_SOCK is not set; commands run without an agent"
            );
        }
        let host_key = if a.insecure_accept_any {
            Some(HostKeyPolicy::insecure_accept_any())
        } else if a.accept_new {
            Some(HostKeyPolicy::accept_new(
                a.known_hosts.clone().unwrap_or_else(default_known_hosts),
            ))
        } else if let Some(file) = &a.known_hosts {
            if let Err(e) = std::fs::metadata(file) {
                return Err(Usage(format!(
                    "--known-hosts {}: {e} (--accept-new creates it)",
                    file.display()
                )));
            }
            Some(HostKeyPolicy::known_hosts(file))
        } else {
            None
        };
        let mut creds = Credentials {
            keys: Vec::new(),
            passphrase,
            agent: a.agent,
            password,
            host_key,
            host_keys: HashMap::new(),
            retry_auth: a.retry_auth,
            forward_agent: a.forward_agent,
        };
        for path in &a.keys {
            let key = creds.checked(path, "--key").await?;
            creds.keys.push(key);
        }
        Ok(creds)
    }

    /// A host's settings with `--retry-auth`: a refused login retried
    /// until `--connect-deadline`. (Jump hosts are up before their hosts
    /// boot: a refused login there fails at once.)
    fn retrying(&self, config: SshConfig) -> SshConfig {
        if !self.retry_auth {
            return config;
        }
        let policy = config.retry_policy().clone().retry_auth_failures(true);
        config.retry(policy)
    }

    /// A host's settings with `-A`. (Not a jump host's: it runs no
    /// commands.) Without it, an `--ssh-config` host keeps its
    /// `ForwardAgent`.
    fn forwarding(&self, config: SshConfig) -> SshConfig {
        if self.forward_agent {
            config.forward_agent(true)
        } else {
            config
        }
    }

    /// The key at `path`, decoded now (once per path).
    async fn checked(&mut self, path: &Path, origin: &str) -> Result<Auth, Usage> {
        if let Some(k) = self.host_keys.get(path) {
            return Ok(k.clone());
        }
        let mut key = Auth::key_file(path);
        if let Some(p) = &self.passphrase {
            key = key.passphrase(p.clone());
        }
        key.check()
            .await
            .map_err(|e| format!("{origin}: {}", e.chain()))?;
        self.host_keys.insert(path.to_path_buf(), key.clone());
        Ok(key)
    }

    /// The methods for a host, in the order tried: its own keys, the
    /// `--key`s, the agent, the password.
    fn methods(&self, own: Vec<Auth>) -> Vec<Auth> {
        let mut all = own;
        all.extend(self.keys.iter().cloned());
        if self.agent {
            all.push(Auth::agent());
        }
        all.extend(self.password.clone());
        all
    }

    /// A host's connection settings: user, port and keys from the
    /// host itself, then `user` (`--user`), then what `defaults` (the plan)
    /// says for it; host keys from the flags, else `~/.ssh/known_hosts`
    /// (an `--ssh-config` host keeps its own unless a flag is given).
    pub(crate) async fn endpoint(
        &mut self,
        h: Host,
        user: Option<&str>,
        defaults: &impl Fn(&str) -> Defaults,
    ) -> Result<Endpoint, Usage> {
        let endpoint = match h.reach {
            Reach::Direct { address, key, jump } => {
                let d = defaults(&h.name);
                let mut own = Vec::new();
                for (k, from) in [(key, h.origin.as_str()), (d.key, "the plan's private-key")] {
                    if let Some(k) = k {
                        own.push(self.checked(&k, &format!("{} ({from})", h.name)).await?);
                    }
                }
                let methods = self.methods(own);
                if methods.is_empty() {
                    return Err(Usage(format!(
                        "no way to authenticate to {} ({}): pass --key FILE, --agent or --password-env VAR",
                        h.name, h.origin
                    )));
                }
                let jump = jump
                    .map(|j| self.direct_jump(&j, user, &h.name, &h.origin))
                    .transpose()?;
                let user = match address.user.or(user.map(str::to_string)).or(d.user) {
                    Some(u) => u,
                    None => local_user()?,
                };
                let mut config =
                    SshConfig::new(user).host_key(self.host_key.clone().unwrap_or_default());
                for m in methods {
                    config = config.auth(m);
                }
                let config = self.forwarding(self.retrying(config));
                Endpoint {
                    name: h.name,
                    host: address.host,
                    port: address.port.or(d.port).unwrap_or(22),
                    config,
                    jump,
                }
            }
            Reach::Alias(resolved) => {
                let usable_identity = resolved.identity_files().iter().any(|f| f.is_file());
                let agent = !resolved.identities_only() && resolved.identity_agent().is_some();
                let extra = self.methods(Vec::new());
                if !usable_identity && !agent && extra.is_empty() {
                    return Err(Usage(format!(
                        "no way to authenticate to {} ({}): its IdentityFiles do not exist and there is no agent; pass --key FILE, --agent or --password-env VAR",
                        h.name, h.origin
                    )));
                }
                let mut config = resolved.ssh_config();
                for m in extra {
                    config = config.auth(m);
                }
                if let Some(policy) = &self.host_key {
                    config = config.host_key(policy.clone());
                }
                let config = self.forwarding(self.retrying(config));
                let jump = match resolved.proxy() {
                    Some(Proxy::Jump(hop)) => Some(Jump::Alias(hop.clone())),
                    _ => None,
                };
                Endpoint {
                    name: h.name,
                    host: resolved.host().to_string(),
                    port: resolved.port(),
                    config,
                    jump,
                }
            }
        };
        Ok(endpoint)
    }
}

impl Credentials {
    /// A `--jump` or `jump=` bastion: its own user, else `--user`, else
    /// the local user (as `ssh -J`); the flags' methods and host keys.
    fn direct_jump(
        &self,
        jump: &Address,
        user: Option<&str>,
        name: &str,
        origin: &str,
    ) -> Result<Jump, Usage> {
        let methods = self.methods(Vec::new());
        if methods.is_empty() {
            return Err(Usage(format!(
                "no way to authenticate to the jump host {} of {name} ({origin}): pass --key FILE, --agent or --password-env VAR",
                jump.host
            )));
        }
        let user = match jump.user.clone().or(user.map(str::to_string)) {
            Some(u) => u,
            None => local_user()?,
        };
        let mut config = SshConfig::new(user).host_key(self.host_key.clone().unwrap_or_default());
        for m in methods {
            config = config.auth(m);
        }
        Ok(Jump::Direct {
            host: jump.host.clone(),
            port: jump.port.unwrap_or(22),
            config: Box::new(config),
        })
    }
}

/// A secret from an environment variable (never from the command line,
/// where `ps` would show it).
fn env_secret(flag: &str, var: &str) -> Result<String, Usage> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => Err(Usage(format!("{flag} {var}: the variable is empty"))),
        Err(_) => Err(Usage(format!("{flag} {var}: the variable is not set"))),
    }
}

fn default_known_hosts() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".ssh").join("known_hosts")
}

/// The local user, ssh's default remote user: as ssh finds it, in the
/// password database (containers often have no USER), else USER or
/// LOGNAME (a uid without an entry).
fn local_user() -> Result<String, Usage> {
    passwd_user()
        .or_else(|| {
            ["USER", "LOGNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        })
        .ok_or_else(|| {
            Usage(
                "cannot tell the local user name (no password database entry for this uid, USER is not set): pass --user"
                    .into(),
            )
        })
}

/// `getpwuid(getuid())`'s name.
fn passwd_user() -> Option<String> {
    let mut size = 1024;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; size];
        // SAFETY: passwd is plain old data; zeroed is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getuid cannot fail; every pointer is valid for the call
        // and buf's length is passed with it.
        let r = unsafe {
            libc::getpwuid_r(
                libc::getuid(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if r == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if r != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string
        // inside buf, which is still alive.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        let name = name.to_string_lossy().into_owned();
        return (!name.is_empty()).then_some(name);
    }
}
