//! The peers a user would pick instead of vmssh: other SSH
//! libraries and, for fleets, provisioning tools. Each runs in its own
//! process and speaks the contenders' protocol (`SCENARIO --key value`,
//! `RESULT name value`), built or installed on demand, outside vmssh's
//! build:
//!
//! - Rust: `benches/peer-async-ssh2-tokio`, `benches/peer-openssh`, built
//!   with cargo into `target/peers`;
//! - Python: `benches/peers-python/*.py`, in a virtual environment the
//!   harness makes with pip in `target/peers-venv`.
//!
//! A peer that cannot be built or installed keeps an empty column and a
//! note; the run goes on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sshd::HOST;

/// Every peer, in column order.
pub(crate) const ALL: &[PeerSpec] = &[
    PeerSpec {
        name: "async-ssh2-tokio",
        kind: Kind::Rust {
            package: "peer-async-ssh2-tokio",
            crates: &["async-ssh2-tokio", "russh"],
        },
        scenarios: &[
            "stdout_throughput",
            "delivery_latency",
            "sftp_upload",
            "sftp_download",
            "concurrent_sessions",
            "fleet",
        ],
        settings: "`execute_io` for output, `upload_file` with a 255 KiB buffer (default 4 KiB), `download_file` (no \
                   settings: reads the whole file into memory), russh Config with nodelay and AES-GCM first (128, else 256), \
                   default 2 MiB window; one current_thread runtime",
    },
    PeerSpec {
        name: "openssh-rs",
        kind: Kind::Rust {
            package: "peer-openssh",
            crates: &["openssh", "openssh-sftp-client"],
        },
        scenarios: &[
            "stdout_throughput",
            "sftp_upload",
            "sftp_download",
            "concurrent_sessions",
            "fleet",
        ],
        settings: "crates `openssh` (native-mux: commands over the ControlMaster socket) + `openssh-sftp-client` \
                   (16 writes or reads of 255 KiB in flight at offsets through clones of the \
                   file handle: `File::write` alone waits for each reply), `ssh` with AES-GCM (128, else 256); figures are of the whole \
                   process tree (one `ssh` ControlMaster per connection)",
    },
    PeerSpec {
        name: "asyncssh",
        kind: Kind::Python {
            script: "asyncssh_peer.py",
            dist: "asyncssh",
        },
        scenarios: &[
            "stdout_throughput",
            "delivery_latency",
            "sftp_upload",
            "sftp_download",
            "concurrent_sessions",
            "fleet",
        ],
        settings: "AES-GCM (128, else 256), no compression, default 2 MiB window; SFTP put/get with asyncssh's defaults, which \
                   follow the server's limits (255 KiB blocks, 16 requests in flight); output read in 256 KiB \
                   pieces; many sessions with asyncio.gather and semaphores on one event loop",
    },
    PeerSpec {
        name: "parallel-ssh",
        kind: Kind::Python {
            script: "pssh_peer.py",
            dist: "parallel-ssh",
        },
        scenarios: &["concurrent_sessions", "fleet"],
        settings: "ParallelSSHClient (libssh2 via ssh2-python, gevent) with pool_size = the concurrency, one \
                   HostConfig per target, retries every 100 ms; the fleet stage by stage over all hosts \
                   (run_command, copy_file x2, run_command)",
    },
    PeerSpec {
        name: "ansible",
        kind: Kind::Python {
            script: "ansible_peer.py",
            dist: "ansible-core",
        },
        scenarios: &["fleet"],
        settings: "ansible-playbook, forks = vmssh's concurrency, pipelining on, strategy free, no fact gathering, \
                   ControlMaster/ControlPersist, AES-GCM (128, else 256), no `-C`; figures are of the whole \
                   process tree",
    },
];

#[derive(Debug)]
pub(crate) enum Kind {
    Rust {
        package: &'static str,
        /// Crates whose versions the notes name.
        crates: &'static [&'static str],
    },
    Python {
        script: &'static str,
        /// PyPI distribution whose version the notes name.
        dist: &'static str,
    },
}

#[derive(Debug)]
pub(crate) struct PeerSpec {
    /// Column name.
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Scenarios it takes part in.
    pub(crate) scenarios: &'static [&'static str],
    /// Its fastest documented settings, as used (for the notes).
    pub(crate) settings: &'static str,
}

/// A peer ready to run.
#[derive(Debug)]
struct Ready {
    spec: &'static PeerSpec,
    /// Program and leading arguments.
    program: PathBuf,
    pre_args: Vec<PathBuf>,
}

/// The selected peers and what happened setting them up.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    ready: Vec<Ready>,
    pub(crate) notes: Vec<String>,
}

/// Parses `--peers` (`all`, `none` or a comma-separated list of names).
pub(crate) fn parse(arg: &str) -> Result<Vec<&'static str>, String> {
    match arg {
        "all" => Ok(ALL.iter().map(|p| p.name).collect()),
        "none" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(|n| {
                ALL.iter()
                    .find(|p| p.name == n.trim())
                    .map(|p| p.name)
                    .ok_or_else(|| {
                        format!(
                            "unknown peer {n}; peers: {}, all, none",
                            ALL.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                        )
                    })
            })
            .collect(),
    }
}

impl Peers {
    /// Builds the Rust peers and installs the Python ones that `selected`
    /// names (and that some wanted scenario uses), into `target`.
    pub(crate) fn setup(
        selected: Vec<&'static str>,
        target: &Path,
        wanted: impl Fn(&str) -> bool,
    ) -> Peers {
        let mut peers = Peers::default();
        let specs: Vec<&'static PeerSpec> = ALL
            .iter()
            .filter(|p| selected.contains(&p.name))
            // (`delivery_latency` is the harness's `delivery_latency_p99`.)
            .filter(|p| {
                p.scenarios
                    .iter()
                    .any(|s| wanted(s) || wanted(&format!("{s}_p99")))
                    || wanted("fleet_testkit")
            })
            .collect();
        let benches = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut venv: Option<Result<PathBuf, String>> = None;
        for spec in specs {
            match &spec.kind {
                Kind::Rust { package, crates } => match build_rust(&benches, target, package) {
                    Ok(bin) => {
                        let versions =
                            lock_versions(&benches.join(package).join("Cargo.lock"), crates);
                        peers
                            .notes
                            .push(format!("{}: {versions}; {}", spec.name, spec.settings));
                        peers.ready.push(Ready {
                            spec,
                            program: bin,
                            pre_args: Vec::new(),
                        });
                    }
                    Err(e) => peers.notes.push(format!(
                        "{}: not built ({e}); its column is empty",
                        spec.name
                    )),
                },
                Kind::Python { script, dist } => {
                    let v = venv.get_or_insert_with(|| make_venv(&benches, target));
                    match v {
                        Ok(dir) => {
                            let python = dir.join("bin/python");
                            let version = python_version(&python, dist)
                                .unwrap_or_else(|| "version unknown".to_string());
                            peers.notes.push(format!(
                                "{}: {dist} {version}; {}",
                                spec.name, spec.settings
                            ));
                            peers.ready.push(Ready {
                                spec,
                                program: python,
                                pre_args: vec![benches.join("peers-python").join(script)],
                            });
                        }
                        Err(e) => peers.notes.push(format!(
                            "{}: not installed ({e}); its column is empty",
                            spec.name
                        )),
                    }
                }
            }
        }
        peers
    }

    /// The ready peers that take part in `scenario`.
    pub(crate) fn for_scenario(&self, scenario: &str) -> Vec<&'static str> {
        self.ready
            .iter()
            .filter(|r| r.spec.scenarios.contains(&scenario))
            .map(|r| r.spec.name)
            .collect()
    }

    /// The command that runs `peer`'s `scenario` against `ports`.
    pub(crate) fn command(
        &self,
        peer: &str,
        scenario: &str,
        login: &Login<'_>,
        ports: &[u16],
        extra: &[(&str, String)],
    ) -> Option<Command> {
        let r = self.ready.iter().find(|r| r.spec.name == peer)?;
        let mut c = Command::new(&r.program);
        c.args(&r.pre_args).arg(scenario);
        c.arg("--host").arg(HOST);
        c.arg("--user").arg(login.user);
        c.arg("--key").arg(login.key);
        c.arg("--host-key").arg(login.host_key_file);
        c.arg("--ports").arg(crate::join_ports(ports));
        for (k, v) in extra {
            c.arg(format!("--{k}")).arg(v);
        }
        // No __pycache__ in the source tree.
        c.env("PYTHONDONTWRITEBYTECODE", "1");
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Some(c)
    }
}

/// Who the contenders log in as, and how they know the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Login<'a> {
    pub(crate) user: &'a str,
    pub(crate) key: &'a Path,
    /// A file holding the server's host key as one OpenSSH line.
    pub(crate) host_key_file: &'a Path,
}

fn build_rust(benches: &Path, target: &Path, package: &str) -> Result<PathBuf, String> {
    let manifest = benches.join(package).join("Cargo.toml");
    let target_dir = target.join("peers");
    let bin = target_dir.join("release").join(package);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("compare: building the {package} contender (first build: minutes)");
    let log = target.join(format!("{package}-build.log"));
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&log)
                .ok()
                .map_or(Stdio::null(), Stdio::from),
        )
        .status();
    match status {
        Ok(s) if s.success() && bin.exists() => Ok(bin),
        _ => Err(format!("cargo build failed, see {}", log.display())),
    }
}

/// `name version` of each crate in a Cargo.lock.
fn lock_versions(lock: &Path, crates: &[&str]) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    crates
        .iter()
        .map(|c| {
            let v = text
                .split("[[package]]")
                .find_map(|p| {
                    let mut lines = p.lines().map(str::trim);
                    lines.find(|l| *l == format!("name = \"{c}\""))?;
                    lines.find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
                })
                .unwrap_or("?");
            format!("{c} {v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes (once) `target/peers-venv` with the pinned Python peers.
fn make_venv(benches: &Path, target: &Path) -> Result<PathBuf, String> {
    let dir = target.join("peers-venv");
    let reqs = benches.join("peers-python/requirements.txt");
    let stamp = dir.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(dir);
    }
    eprintln!(
        "compare: installing the Python contenders into {} (pip)",
        dir.display()
    );
    let log = target.join("peers-venv.log");
    let run = |c: &mut Command| -> Result<(), String> {
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{c:?}: {e}"))?;
        let _ = std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{:?} failed, see {}",
                c.get_program(),
                log.display()
            ))
        }
    };
    run(Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg("--clear")
        .arg(&dir))?;
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&reqs))?;
    let _ = std::fs::write(&stamp, wanted);
    Ok(dir)
}

fn python_version(python: &Path, dist: &str) -> Option<String> {
    let out = Command::new(python)
        .arg("-c")
        .arg(format!(
            "import importlib.metadata as m, sys; print(m.version('{dist}'), 'on Python', sys.version.split()[0])"
        ))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
