//! vmctl's VM state as an inventory: the VMs `vmctl up` started, ready to
//! provision from their `VMFile.kdl`.
//!
//! vmctl keeps its VMs in `$XDG_DATA_HOME/vmctl/vms.json`, a map from VM
//! name to a handle (`id`, `work_dir`, `network`, `ssh_host_port`, ...).
//! [`Inventory::targets`] turns the VMs of a [`Plan`] into fleet
//! [`Target`]s the way vmctl reaches them:
//!
//! - address: a user-mode VM (QEMU's `hostfwd`) is at `127.0.0.1` and its
//!   `ssh_host_port`. Other modes leave the address out of the state (vmctl
//!   reads it from the ARP table or the zone at run time): an error says to
//!   build that VM's target by hand;
//! - user: the plan's ([`VmPlan::user`](crate::plan::VmPlan::user), `"vm"`
//!   by default);
//! - key: the plan's `private-key`, else the key vmctl generated at
//!   `<work_dir>/id_ed25519_generated`;
//! - steps: the plan's, with VMFile file steps uploaded with mode 0755;
//! - `provision.log` in the work directory, in vmctl's layout
//!   ([`VmctlLogSink`]);
//! - login: retried until the connect deadline while refused
//!   ([`RetryPolicy::retry_auth_failures`]), since vmctl's guests get their
//!   key from cloud-init, which may write it after sshd starts (vmctl
//!   retries every error);
//! - host keys: where vmctl checks none, each VM instance's key is trusted
//!   on first use and recorded in its work directory under its instance
//!   id ([`HostKeyPolicy::per_instance`]): a VM recreated on a reused port
//!   gets a new id and is trusted afresh, while a different key for the
//!   same instance is refused.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), vmssh::Error> {
//! use std::path::Path;
//! use vmssh::fleet::Fleet;
//! use vmssh::plan::Plan;
//! use vmssh::vmctl::Inventory;
//!
//! let plan = Plan::load(Path::new("VMFile.kdl")).await?;
//! for w in plan.warnings() {
//!     eprintln!("warning: {w}");
//! }
//! let inventory = Inventory::load_default().await?;
//! let report = Fleet::new().provision(inventory.targets(&plan)?).await;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub(crate) mod home;
pub(crate) mod log;
pub(crate) mod run;

pub use log::VmctlLogSink;

use crate::auth::Auth;
use crate::config::{RetryPolicy, SshConfig};
use crate::error::{Error, VmctlErrorKind};
use crate::fleet::Target;
use crate::host_key::HostKeyPolicy;
use crate::plan::Plan;

/// The key vmctl generates for a VM whose VMFile names none, in the VM's
/// work directory.
pub const GENERATED_KEY_FILE: &str = "id_ed25519_generated";

/// Where vmssh records each VM instance's host key, in the VM's work
/// directory (an OpenSSH known_hosts file keyed by instance id).
pub const KNOWN_HOSTS_FILE: &str = "vmssh_known_hosts";

/// vmctl's VMs, read from its state file.
#[derive(Clone, Debug)]
pub struct Inventory {
    path: PathBuf,
    vms: BTreeMap<String, Instance>,
}

/// One VM of vmctl's state (a `VmHandle`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Instance {
    name: String,
    id: String,
    backend: Backend,
    work_dir: PathBuf,
    network: Network,
    ssh_host_port: Option<u16>,
}

/// Which vmctl backend runs a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// QEMU (Linux).
    Qemu,
    /// Propolis zones (illumos).
    Propolis,
    /// vmctl's no-op backend (its tests).
    Noop,
}

/// A VM's network mode in vmctl's state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Network {
    /// QEMU's user-mode network: SSH through a forwarded host port.
    User,
    /// A TAP device on a host bridge.
    Tap {
        /// The bridge.
        bridge: String,
    },
    /// An illumos VNIC.
    Vnic {
        /// The VNIC.
        name: String,
    },
    /// No network.
    None,
}

impl Network {
    fn mode(&self) -> &'static str {
        match self {
            Network::User => "user",
            Network::Tap { .. } => "tap",
            Network::Vnic { .. } => "vnic",
            Network::None => "no",
        }
    }
}

/// vmctl's `VmHandle`, as serde reads it: the fields vmssh uses, required
/// and defaulted as vmctl's own definition has them; the rest ignored.
#[derive(Deserialize)]
struct RawHandle {
    id: String,
    // Required by vmctl, even though the map key is what names the VM.
    #[serde(rename = "name")]
    _name: String,
    backend: RawBackend,
    work_dir: PathBuf,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    ssh_host_port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawBackend {
    Noop,
    Qemu,
    Propolis,
}

#[derive(Deserialize, Default)]
#[serde(tag = "type", rename_all = "lowercase")]
enum RawNetwork {
    Tap {
        bridge: String,
    },
    #[default]
    User,
    Vnic {
        name: String,
    },
    None,
}

impl Inventory {
    /// Reads a `vms.json` in vmctl's format.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Vmctl`] with
    /// [`VmctlErrorKind::Invalid`] when it is not what vmctl writes (vmctl
    /// would refuse it too).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn load(path: &Path) -> Result<Inventory, Error> {
        let text = tokio::fs::read(path)
            .await
            .map_err(|e| Error::io(format!("cannot read vmctl state {}", path.display()), e))?;
        Self::from_json(&text, path)
    }

    /// Reads vmctl's own state file, [`default_path`](Self::default_path).
    /// A missing file is an empty inventory, as it is to vmctl.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn load_default() -> Result<Inventory, Error> {
        let path = Self::default_path();
        match tokio::fs::read(&path).await {
            Ok(text) => Self::from_json(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Inventory {
                path,
                vms: BTreeMap::new(),
            }),
            Err(e) => Err(Error::io(
                format!("cannot read vmctl state {}", path.display()),
                e,
            )),
        }
    }

    /// Where vmctl keeps its state: `$XDG_DATA_HOME/vmctl/vms.json`, where
    /// an unset (or relative) `XDG_DATA_HOME` means `~/.local/share`
    /// (`~/Library/Application Support` on macOS), and `/tmp` when there is
    /// no home directory either, as vmctl's `dirs::data_dir()` has it.
    pub fn default_path() -> PathBuf {
        state_path(std::env::var_os("XDG_DATA_HOME"), home_dir())
    }

    /// Parses the text of a `vms.json`; `path` names it in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Vmctl`] with [`VmctlErrorKind::Invalid`].
    pub fn from_json(json: &[u8], path: &Path) -> Result<Inventory, Error> {
        let raw: BTreeMap<String, RawHandle> =
            serde_json::from_slice(json).map_err(|e| Error::Vmctl {
                path: path.to_path_buf(),
                kind: VmctlErrorKind::Invalid,
                source: Some(Box::new(e)),
            })?;
        let vms = raw
            .into_iter()
            .map(|(name, h)| {
                let instance = Instance {
                    name: name.clone(),
                    id: h.id,
                    backend: match h.backend {
                        RawBackend::Noop => Backend::Noop,
                        RawBackend::Qemu => Backend::Qemu,
                        RawBackend::Propolis => Backend::Propolis,
                    },
                    work_dir: h.work_dir,
                    network: match h.network {
                        RawNetwork::User => Network::User,
                        RawNetwork::Tap { bridge } => Network::Tap { bridge },
                        RawNetwork::Vnic { name } => Network::Vnic { name },
                        RawNetwork::None => Network::None,
                    },
                    ssh_host_port: h.ssh_host_port,
                };
                (name, instance)
            })
            .collect();
        Ok(Inventory {
            path: path.to_path_buf(),
            vms,
        })
    }

    /// The state file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The VM vmctl knows by `name`.
    pub fn get(&self, name: &str) -> Option<&Instance> {
        self.vms.get(name)
    }

    /// Every VM vmctl knows, by name.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.vms.values()
    }

    /// One fleet [`Target`] per `vm` of `plan` that has steps (vmctl skips
    /// the others), in plan order; see the [module](self) docs for what
    /// each carries. A plan's `ssh { port }` is not used: the state says
    /// where the VM is.
    ///
    /// # Errors
    ///
    /// [`Error::Vmctl`] for the first VM of the plan vmctl does not know
    /// ([`VmctlErrorKind::UnknownVm`]) or whose address the state does not
    /// carry ([`VmctlErrorKind::NoAddress`], [`VmctlErrorKind::NoPort`]).
    pub fn targets(&self, plan: &Plan) -> Result<Vec<Target>, Error> {
        let mut targets = Vec::new();
        for vm in &plan.vms {
            let steps = plan.steps_for(&vm.name);
            if steps.is_empty() {
                continue;
            }
            let instance = self.get(&vm.name).ok_or_else(|| {
                self.error(VmctlErrorKind::UnknownVm {
                    vm: vm.name.clone(),
                    known: self.vms.keys().cloned().collect(),
                })
            })?;
            let addr = instance.ssh_address().ok_or_else(|| {
                self.error(match instance.network {
                    Network::User => VmctlErrorKind::NoPort {
                        vm: vm.name.clone(),
                    },
                    ref other => VmctlErrorKind::NoAddress {
                        vm: vm.name.clone(),
                        network: other.mode().to_string(),
                    },
                })
            })?;
            let key = vm
                .ssh
                .private_key
                .clone()
                .unwrap_or_else(|| instance.generated_key());
            let config = SshConfig::new(vm.user())
                .auth(Auth::key_file(key))
                .host_key(instance.host_key_policy())
                .retry(RetryPolicy::default().retry_auth_failures(true));
            let log =
                VmctlLogSink::with_labels(&instance.work_dir, plan.vmctl_labels_for(&vm.name));
            targets.push(
                Target::new(&vm.name, addr.ip().to_string(), addr.port(), config, steps)
                    .base_dir(&plan.base_dir)
                    .sink(log),
            );
        }
        Ok(targets)
    }

    fn error(&self, kind: VmctlErrorKind) -> Error {
        Error::Vmctl {
            path: self.path.clone(),
            kind,
            source: None,
        }
    }
}

impl Instance {
    /// The VM's name (its key in the state file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance id; a recreated VM gets a new one.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The backend running it.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// vmctl's directory for this VM (disk overlay, sockets, logs, key).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Its network mode.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The host port forwarded to the guest's port 22 (user-mode network).
    pub fn ssh_host_port(&self) -> Option<u16> {
        self.ssh_host_port
    }

    /// Where its SSH server is reached, when the state says:
    /// `127.0.0.1:ssh_host_port` for a user-mode VM.
    pub fn ssh_address(&self) -> Option<SocketAddr> {
        match (&self.network, self.ssh_host_port) {
            (Network::User, Some(port)) => Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            _ => None,
        }
    }

    /// The key vmctl generated for it: `<work_dir>/id_ed25519_generated`.
    pub fn generated_key(&self) -> PathBuf {
        self.work_dir.join(GENERATED_KEY_FILE)
    }

    /// Its host key trusted on first use, recorded in
    /// `<work_dir>/vmssh_known_hosts` under its instance id.
    pub fn host_key_policy(&self) -> HostKeyPolicy {
        HostKeyPolicy::per_instance(self.work_dir.join(KNOWN_HOSTS_FILE), &self.id)
    }
}

/// The home directory as vmctl's `dirs::home_dir()` finds it: `$HOME`
/// unless empty, else the password database.
fn home_dir() -> Option<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Some(PathBuf::from(h)),
        _ => std::env::home_dir().filter(|h| !h.as_os_str().is_empty()),
    }
}

/// vmctl's `state_path()`: `dirs::data_dir()` (or `/tmp`) + `vmctl/vms.json`.
fn state_path(xdg_data_home: Option<std::ffi::OsString>, home: Option<PathBuf>) -> PathBuf {
    let data_dir = if cfg!(target_os = "macos") {
        home.map(|h| h.join("Library").join("Application Support"))
    } else {
        xdg_data_home
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.map(|h| h.join(".local").join("share")))
    };
    data_dir
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("vmctl")
        .join("vms.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(target_os = "macos"))]
    fn state_path_follows_vmctl() {
        let home = Some(PathBuf::from("/home/me"));
        assert_eq!(
            state_path(Some("/xdg".into()), home.clone()),
            Path::new("/xdg/vmctl/vms.json")
        );
        // Unset, empty or relative XDG_DATA_HOME: the XDG default.
        for xdg in [None, Some(""), Some("rel/dir")] {
            assert_eq!(
                state_path(xdg.map(Into::into), home.clone()),
                Path::new("/home/me/.local/share/vmctl/vms.json"),
                "{xdg:?}"
            );
        }
        assert_eq!(state_path(None, None), Path::new("/tmp/vmctl/vms.json"));
        assert_eq!(
            state_path(Some("/xdg".into()), None),
            Path::new("/xdg/vmctl/vms.json")
        );
    }
}
