//! TARGETS: hosts from `--host`, `--hosts FILE` and `--ssh-config ALIAS`,
//! each with a unique name, checked before anything connects, then
//! narrowed to `--shard` (`provision --vmctl` has its own, in
//! `commands/vmctl.rs`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use vmssh::ssh_config::{Proxy, ResolvedHost, WarningKind};

use crate::address::Address;
use crate::args::TargetArgs;
use crate::inventory::{self, check_name};
use crate::usage::Usage;

/// One host, before credentials and steps are attached.
#[derive(Debug)]
pub(crate) struct Host {
    /// Unique across sources: output prefix, log directory, report entry,
    /// download file name, shard key.
    pub(crate) name: String,
    /// Where it was given, for messages (`--host web=...`, `hosts:3`).
    pub(crate) origin: String,
    pub(crate) reach: Reach,
}

/// How a host is reached.
#[derive(Debug)]
pub(crate) enum Reach {
    /// `--host` or an inventory line, through `jump` when given (the
    /// line's `jump=`, else `--jump`).
    Direct {
        address: Address,
        key: Option<PathBuf>,
        jump: Option<Address>,
    },
    /// An `~/.ssh/config` alias, with everything the files say.
    Alias(Box<ResolvedHost>),
}

/// Every host the arguments name, in the order given (`--host`s, then
/// inventories, then aliases): all of them, whatever `--shard` says, so
/// that every shard finds the same mistakes (see [`in_shard`]). `other`
/// names the verb's other source of hosts, if it has one, for the "no
/// hosts" message.
pub(crate) async fn collect(args: &TargetArgs, other: Option<&str>) -> Result<Vec<Host>, Usage> {
    let default_jump = args
        .jump
        .as_deref()
        .map(|j| Address::parse(j).map_err(|e| format!("--jump {j}: {e}")))
        .transpose()?;
    let mut hosts = Vec::new();
    for spec in &args.hosts {
        let mut host = direct_host(spec)?;
        if let Reach::Direct { jump, .. } = &mut host.reach {
            jump.clone_from(&default_jump);
        }
        hosts.push(host);
    }
    for path in &args.inventories {
        for e in inventory::load(path).await? {
            hosts.push(Host {
                name: e.name,
                origin: format!("{}:{}", path.display(), e.line),
                reach: Reach::Direct {
                    address: e.address,
                    key: e.key,
                    jump: e.jump.or_else(|| default_jump.clone()),
                },
            });
        }
    }
    let mut warned = HashSet::new();
    for alias in &args.aliases {
        hosts.push(alias_host(alias, args.ssh_config_file.as_deref(), &mut warned).await?);
    }
    if hosts.is_empty() {
        return Err(Usage(match other {
            Some(o) => format!("no hosts: give --host, --hosts FILE, --ssh-config ALIAS or {o}"),
            None => "no hosts: give --host, --hosts FILE or --ssh-config ALIAS".into(),
        }));
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for h in &hosts {
        if let Some(first) = seen.insert(&h.name, &h.origin) {
            return Err(Usage(format!(
                "host name {:?} is given twice ({first} and {})",
                h.name, h.origin
            )));
        }
    }
    Ok(hosts)
}

/// Whether the host called `name` runs here (`--shard`).
pub(crate) fn in_shard(args: &TargetArgs, name: &str) -> bool {
    args.shard.is_none_or(|s| s.contains(name))
}

/// `--host [NAME=][USER@]ADDR[:PORT]`.
fn direct_host(spec: &str) -> Result<Host, Usage> {
    let origin = format!("--host {spec}");
    let (name, addr) = match spec.split_once('=') {
        Some((name, addr)) => (name, addr),
        None => (Address::name_of(spec), spec),
    };
    check_name(name).map_err(|e| format!("{origin}: {e}"))?;
    let address = Address::parse(addr).map_err(|e| format!("{origin}: {e}"))?;
    Ok(Host {
        name: name.to_string(),
        origin,
        reach: Reach::Direct {
            address,
            key: None,
            jump: None,
        },
    })
}

/// `--ssh-config ALIAS`, resolved as `ssh -G` does. Its warnings are
/// printed once per file and line (`warned`), except unsupported options
/// of the system-wide files (`/etc/ssh/`: a distribution's `SendEnv` and
/// `GSSAPIAuthentication` defaults, which the user did not write).
async fn alias_host(
    alias: &str,
    file: Option<&std::path::Path>,
    warned: &mut HashSet<(PathBuf, usize)>,
) -> Result<Host, Usage> {
    let origin = format!("--ssh-config {alias}");
    check_name(alias).map_err(|e| format!("{origin}: {e}"))?;
    let resolved = match file {
        Some(f) => vmssh::ssh_config::resolve_file(f, alias).await,
        None => vmssh::ssh_config::resolve(alias).await,
    }
    .map_err(|e| format!("{origin}: {}", e.chain()))?;
    for w in resolved.warnings() {
        let system_default =
            w.path().starts_with("/etc/ssh") && matches!(w.kind(), WarningKind::Unsupported);
        if !system_default && warned.insert((w.path().to_path_buf(), w.line())) {
            eprintln!("vmssh: warning: {alias}: {w}");
        }
    }
    // A fleet target is reached directly or through a jump session; a
    // ProxyCommand can still lead to the jump host itself.
    if let Some(proxy) = resolved.proxy()
        && !matches!(proxy, Proxy::Jump(_))
    {
        return Err(Usage(format!(
            "{origin}: ProxyCommand is not supported for a host of the vmssh command (only for its ProxyJump hosts)"
        )));
    }
    // OpenSSH takes any name as a host name: an alias no Host block gives
    // a HostName is unknown unless it resolves as one (a typo must not
    // pass for a host).
    if resolved.host() == alias.to_ascii_lowercase()
        && tokio::net::lookup_host((resolved.host(), resolved.port()))
            .await
            .is_err()
    {
        return Err(Usage(format!(
            "{origin}: unknown host alias: no Host block gives it a HostName and it does not resolve as a host name"
        )));
    }
    Ok(Host {
        name: alias.to_string(),
        origin,
        reach: Reach::Alias(Box::new(resolved)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_flag_forms() {
        let h = direct_host("web=ubuntu@10.0.0.5:2222").unwrap();
        assert_eq!(h.name, "web");
        let Reach::Direct { address, .. } = &h.reach else {
            unreachable!()
        };
        assert_eq!(address.user.as_deref(), Some("ubuntu"));
        assert_eq!(address.port, Some(2222));
        assert_eq!(direct_host("root@10.0.0.6").unwrap().name, "10.0.0.6");
        for bad in ["=10.0.0.5", "web=", "a/b=10.0.0.5", "web=10.0.0.5:x"] {
            let e = direct_host(bad).unwrap_err().0;
            assert!(e.starts_with(&format!("--host {bad}: ")), "{e}");
        }
    }

    #[test]
    fn names_that_are_files() {
        assert!(check_name("web-01.example.com").is_ok());
        assert!(check_name("10.0.0.5:2222").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a\tb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
