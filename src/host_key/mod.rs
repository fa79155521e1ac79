//! Verifying the server's identity: known_hosts files, pinned keys, trust on
//! first use, host certificates.

mod certificate;
mod known_hosts;

use std::path::{Path, PathBuf};

use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};

use crate::error::Error;
use known_hosts::{
    CertLookup, Lookup, append_known_host, authorities_for, entries_for, host_pattern, lookup,
    lookup_certificate, parse_key_line, read_known_hosts,
};

/// The host key algorithms to offer: certificate variants (ahead of plain
/// keys, as OpenSSH offers them when it knows an authority for the host)
/// and plain keys, each most preferred first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyAlgorithms {
    /// Plain host key algorithms.
    pub(crate) keys: Vec<Algorithm>,
    /// Host key algorithms whose certificate variant is offered too.
    pub(crate) certificates: Vec<Algorithm>,
}

/// How the server's host key is checked during the handshake.
///
/// Unknown and changed keys are refused unless the policy says otherwise;
/// accepting anything must be asked for by name
/// ([`insecure_accept_any`](HostKeyPolicy::insecure_accept_any)).
///
/// Policies that read a known_hosts file also order the host key
/// algorithms offered to the server, as OpenSSH does: the types already
/// recorded for the host come first, so a server with several host keys
/// presents the one that is known.
#[derive(Clone, Debug)]
pub struct HostKeyPolicy {
    kind: PolicyKind,
}

#[derive(Clone, Debug)]
enum PolicyKind {
    /// Look keys up in a known_hosts file, under `alias` instead of
    /// `host:port` when given.
    KnownHosts {
        path: PathBuf,
        alias: Option<String>,
    },
    /// Like `KnownHosts`, and record a host that has no entry.
    AcceptNew {
        path: PathBuf,
        alias: Option<String>,
    },
    Pinned(Vec<String>),
    InsecureAcceptAny,
    /// The default policy when the home directory is unknown.
    NoHome,
}

/// Where host keys are trusted from, for a person (a dry run, a log):
/// `known_hosts FILE`, `accept-new FILE` (`as ALIAS` for a
/// `HostKeyAlias` or [`per_instance`](HostKeyPolicy::per_instance)),
/// `pinned (N keys)`, `insecure: any key accepted`.
impl std::fmt::Display for HostKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, path, alias) = match &self.kind {
            PolicyKind::KnownHosts { path, alias } => ("known_hosts", path, alias),
            PolicyKind::AcceptNew { path, alias } => ("accept-new", path, alias),
            PolicyKind::Pinned(keys) if keys.len() == 1 => return f.write_str("pinned (1 key)"),
            PolicyKind::Pinned(keys) => return write!(f, "pinned ({} keys)", keys.len()),
            PolicyKind::InsecureAcceptAny => return f.write_str("insecure: any key accepted"),
            PolicyKind::NoHome => {
                return f.write_str("known_hosts: no home directory (connecting fails)");
            }
        };
        write!(f, "{what} {}", path.display())?;
        if let Some(a) = alias {
            write!(f, " as {a}")?;
        }
        Ok(())
    }
}

impl Default for HostKeyPolicy {
    /// `known_hosts` on `~/.ssh/known_hosts`. When `$HOME` is unset, empty
    /// or relative, connecting fails with [`Error::Config`] rather than
    /// reading a file relative to the working directory.
    fn default() -> Self {
        Self::default_for_home(std::env::var_os("HOME"))
    }
}

impl HostKeyPolicy {
    fn default_for_home(home: Option<std::ffi::OsString>) -> Self {
        match home.map(PathBuf::from) {
            Some(home) if home.is_absolute() => {
                HostKeyPolicy::known_hosts(home.join(".ssh").join("known_hosts"))
            }
            _ => HostKeyPolicy {
                kind: PolicyKind::NoHome,
            },
        }
    }

    /// Trust the keys recorded in an OpenSSH `known_hosts` file: plain,
    /// `[host]:port`, wildcard, negated and hashed (`|1|`) entries, host
    /// names in any case. `@revoked` keys are refused. Unknown hosts are
    /// refused, and so is a key of a type not recorded for a known host.
    ///
    /// `@cert-authority PATTERNS KEY` lines trust host certificates signed
    /// by `KEY` for the hosts matching `PATTERNS` (matched like any entry:
    /// `host`, or `[host]:port` off port 22). When such a line matches,
    /// certificates are asked for, and one is accepted when it is a host
    /// certificate, in date, with the host name (or the `HostKeyAlias`,
    /// see [`per_instance`](Self::per_instance)) among its principals (or
    /// no principals at all), without critical options, and neither it nor
    /// its authority is `@revoked`. A certificate that fails is refused
    /// with [`Error::HostCertificateRefused`] unless its key is trusted on
    /// its own by a plain entry (as OpenSSH falls back to the plain key);
    /// trust on first use never records the key of a refused certificate.
    pub fn known_hosts(path: impl AsRef<Path>) -> Self {
        HostKeyPolicy {
            kind: PolicyKind::KnownHosts {
                path: path.as_ref().to_path_buf(),
                alias: None,
            },
        }
    }

    /// Trust exactly this key, given as an OpenSSH public key line
    /// (`ssh-ed25519 AAAA... comment`). A malformed line is reported at
    /// connect.
    pub fn pinned(openssh_public_key: impl Into<String>) -> Self {
        Self::pinned_any([openssh_public_key.into()])
    }

    /// Trust any of these keys (a server with several host key types, or
    /// during a key rotation).
    pub fn pinned_any<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HostKeyPolicy {
            kind: PolicyKind::Pinned(keys.into_iter().map(Into::into).collect()),
        }
    }

    /// Trust on first use: like [`known_hosts`](Self::known_hosts), but a
    /// host with no entry at all is trusted and its key appended to the
    /// file (created if missing). A changed key is still refused, and so is
    /// a key of a new type for a host already known under another.
    pub fn accept_new(path: impl AsRef<Path>) -> Self {
        HostKeyPolicy {
            kind: PolicyKind::AcceptNew {
                path: path.as_ref().to_path_buf(),
                alias: None,
            },
        }
    }

    /// Trust on first use per machine instance, whatever its address
    /// (OpenSSH's `HostKeyAlias`): the key is looked up and recorded in the
    /// known_hosts file `path` under the name `instance`, not under
    /// `host:port`.
    ///
    /// For VMs reached at reused addresses (127.0.0.1 and an ephemeral
    /// forwarded port): pass an id that changes when the VM is recreated
    /// (vmctl's instance id, the `id` in its `vms.json`). The first connect to an
    /// instance records its key; a different key for the same instance is
    /// refused with [`Error::HostKeyChanged`]; a new instance is trusted
    /// afresh. OpenSSH reads the same file with
    /// `ssh -o HostKeyAlias=INSTANCE -o UserKnownHostsFile=PATH`.
    ///
    /// An `instance` that cannot be a known_hosts name (empty, with
    /// whitespace or any of `,*?!#@|[]`) is reported at connect as
    /// [`Error::Config`].
    pub fn per_instance(path: impl AsRef<Path>, instance: impl Into<String>) -> Self {
        HostKeyPolicy {
            kind: PolicyKind::AcceptNew {
                path: path.as_ref().to_path_buf(),
                alias: Some(instance.into()),
            },
        }
    }

    /// A known_hosts policy that looks keys up under `alias` (OpenSSH's
    /// `HostKeyAlias`) when given, recording unknown hosts when `learn`.
    pub(crate) fn known_hosts_as(path: PathBuf, alias: Option<String>, learn: bool) -> Self {
        HostKeyPolicy {
            kind: if learn {
                PolicyKind::AcceptNew { path, alias }
            } else {
                PolicyKind::KnownHosts { path, alias }
            },
        }
    }

    /// Accept whatever key the server presents. Only for throwaway test
    /// machines: anyone on the path can impersonate the server.
    pub fn insecure_accept_any() -> Self {
        HostKeyPolicy {
            kind: PolicyKind::InsecureAcceptAny,
        }
    }

    /// The host key algorithms to offer for `host:port`: `preferred`, with
    /// the types recorded for the host moved to the front (in their
    /// `preferred` order), as OpenSSH orders them; and the same list as
    /// certificates when known_hosts lists an authority for the host.
    /// Nothing is known, or the file cannot be read: `preferred` as it is,
    /// no certificates (verification reports the problem).
    pub(crate) async fn key_algorithms(
        &self,
        host: &str,
        port: u16,
        preferred: &[Algorithm],
    ) -> KeyAlgorithms {
        let plain = |known: &[Algorithm]| KeyAlgorithms {
            keys: order_algorithms(known, preferred),
            certificates: Vec::new(),
        };
        match &self.kind {
            PolicyKind::Pinned(lines) => {
                let known: Vec<Algorithm> = lines
                    .iter()
                    .filter_map(|l| parse_key_line(l))
                    .map(|k| k.algorithm())
                    .collect();
                plain(&known)
            }
            PolicyKind::KnownHosts { path, alias } | PolicyKind::AcceptNew { path, alias } => {
                let Ok(name) = lookup_name(alias.as_deref(), host, port) else {
                    return plain(&[]);
                };
                let Ok(text) = read_known_hosts(path).await else {
                    return plain(&[]);
                };
                let known: Vec<Algorithm> = entries_for(&text, &name)
                    .into_iter()
                    .map(|k| k.algorithm())
                    .collect();
                let mut algorithms = plain(&known);
                if !authorities_for(&text, &name).is_empty() {
                    algorithms.certificates = algorithms.keys.clone();
                }
                algorithms
            }
            PolicyKind::InsecureAcceptAny | PolicyKind::NoHome => plain(&[]),
        }
    }

    /// Checks the server's `key` for `host:port`, presented inside `cert`
    /// when the server sent a certificate; `Ok(())` means trusted.
    pub(crate) async fn verify(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
        cert: Option<&Certificate>,
    ) -> Result<(), Error> {
        match &self.kind {
            PolicyKind::InsecureAcceptAny => Ok(()),
            PolicyKind::NoHome => Err(Error::Config {
                reason: "HOME is not set (or not absolute), so there is no default known_hosts \
                         file (~/.ssh/known_hosts): set HOME, or choose one with \
                         SshConfig::host_key(HostKeyPolicy::known_hosts(PATH))"
                    .to_string(),
            }),
            PolicyKind::Pinned(lines) => {
                let mut expected = Vec::with_capacity(lines.len());
                for line in lines {
                    let pinned = parse_key_line(line).ok_or_else(|| Error::HostKeyStore {
                        path: PathBuf::from("<pinned>"),
                        reason: "not an OpenSSH public key line".to_string(),
                        source: None,
                    })?;
                    if same_key(&pinned, key) {
                        return Ok(());
                    }
                    expected.push(fingerprint(&pinned));
                }
                Err(Error::HostKeyChanged {
                    host: host.to_string(),
                    port,
                    expected,
                    actual: fingerprint(key),
                })
            }
            PolicyKind::KnownHosts { path, alias } | PolicyKind::AcceptNew { path, alias } => {
                let learn = matches!(self.kind, PolicyKind::AcceptNew { .. });
                let name = lookup_name(alias.as_deref(), host, port)?;
                let text = read_known_hosts(path).await?;
                if let Some(cert) = cert {
                    // OpenSSH names the host in principals without the port.
                    let principal = match alias {
                        Some(a) => a.clone(),
                        None => host.to_ascii_lowercase(),
                    };
                    let now = certificate::unix_now();
                    match lookup_certificate(&text, &name, &principal, cert, key, now) {
                        CertLookup::Trusted => return Ok(()),
                        CertLookup::Revoked(fingerprint) => {
                            return Err(Error::HostKeyRevoked {
                                host: host.to_string(),
                                port,
                                fingerprint,
                            });
                        }
                        CertLookup::Refused(problem) => {
                            if lookup(&text, &name, key) == Lookup::Trusted {
                                tracing::debug!(host, port, %problem, "host certificate refused; its key is trusted on its own");
                                return Ok(());
                            }
                            return Err(Error::HostCertificateRefused {
                                host: host.to_string(),
                                port,
                                fingerprint: fingerprint(key),
                                authority: cert
                                    .signature_key()
                                    .fingerprint(HashAlg::Sha256)
                                    .to_string(),
                                problem,
                            });
                        }
                        // No authority for this host: the certificate is
                        // only a key, checked like any other.
                        CertLookup::NoAuthority => {}
                    }
                }
                match lookup(&text, &name, key) {
                    Lookup::Trusted => Ok(()),
                    Lookup::Unknown if learn => {
                        append_known_host(path, &text, &name, key).await?;
                        tracing::info!(host, port, name, fingerprint = %fingerprint(key), "learned new host key");
                        Ok(())
                    }
                    Lookup::Unknown => Err(Error::HostKeyUnknown {
                        host: host.to_string(),
                        port,
                        fingerprint: fingerprint(key),
                        known_hosts: path.clone(),
                    }),
                    Lookup::Changed(expected) => Err(Error::HostKeyChanged {
                        host: host.to_string(),
                        port,
                        expected,
                        actual: fingerprint(key),
                    }),
                    Lookup::Revoked => Err(Error::HostKeyRevoked {
                        host: host.to_string(),
                        port,
                        fingerprint: fingerprint(key),
                    }),
                }
            }
        }
    }
}

/// The name a key is recorded under: the alias, or `host` / `[host]:port`,
/// lowercased as OpenSSH does.
fn lookup_name(alias: Option<&str>, host: &str, port: u16) -> Result<String, Error> {
    match alias {
        None => Ok(host_pattern(&host.to_ascii_lowercase(), port)),
        Some(a) => {
            let usable = !a.is_empty()
                && a.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && !",*?!#@|[]".contains(c));
            if usable {
                Ok(a.to_string())
            } else {
                Err(Error::Config {
                    reason: format!(
                        "host key alias {a:?} cannot be a known_hosts name (empty, or with \
                         whitespace or one of ,*?!#@|[])"
                    ),
                })
            }
        }
    }
}

/// The SHA256 fingerprint as OpenSSH prints it (`SHA256:...`).
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// `preferred` with the algorithms of `known` keys first, each group in
/// `preferred` order.
fn order_algorithms(known: &[Algorithm], preferred: &[Algorithm]) -> Vec<Algorithm> {
    let is_known = |a: &Algorithm| known.iter().any(|k| same_family(k, a));
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) =
        preferred.iter().cloned().partition(is_known);
    first.extend(rest);
    first
}

/// Whether two key algorithms name the same kind of key (the RSA signature
/// hashes are one key type).
fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::known_hosts::{hosts_match, wildcard_match};
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    fn key(line: &str) -> PublicKey {
        parse_key_line(line).unwrap()
    }

    fn name(host: &str, port: u16) -> String {
        lookup_name(None, host, port).unwrap()
    }

    const KEY_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDhoyCtsqz+r/twZ7OYeZeHUKN4Zl+SxA3kwDZacY6xfC0mrg21gD+nr082I2s/WRwbA3IEwklRDhTStT8s6s5leAnm7sGcoNOsG5ODq1Cwk76q4JXrEnLE8O18EavwCrgxooGZM+752AmGo4YCAwOCOIVdpvZNfiZrDbnSJ71zXQ==";

    #[test]
    fn hashed_entries_ignore_case() {
        // ssh-keygen -H of "example.com".
        let kh = format!("|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {KEY_A}\n");
        for host in ["example.com", "EXAMPLE.com", "Example.COM"] {
            assert_eq!(
                lookup(&kh, &name(host, 22), &key(KEY_A)),
                Lookup::Trusted,
                "{host}"
            );
        }
        // Plain entries too, whatever the case on either side.
        let kh = format!("Example.COM {KEY_A}\n");
        assert_eq!(
            lookup(&kh, &name("example.com", 22), &key(KEY_A)),
            Lookup::Trusted
        );
    }

    #[test]
    fn a_host_known_under_another_type_is_not_new() {
        let kh = format!("example.com {KEY_RSA}\nexample.com {KEY_RSA}\n");
        assert_eq!(
            lookup(&kh, &name("example.com", 22), &key(KEY_A)),
            Lookup::Changed(vec![fingerprint(&key(KEY_RSA))])
        );
        let both = format!("example.com {KEY_RSA}\nexample.com {KEY_A}\n");
        assert_eq!(
            lookup(&both, &name("example.com", 22), &key(KEY_A)),
            Lookup::Trusted
        );
    }

    #[test]
    fn revoked_wins_over_a_trusting_entry() {
        let kh = format!("example.com {KEY_A}\n@revoked example.com {KEY_A}\n");
        assert_eq!(
            lookup(&kh, &name("example.com", 22), &key(KEY_A)),
            Lookup::Revoked
        );
        // Revoked for another host: not this one's business.
        let kh = format!("example.com {KEY_A}\n@revoked other.com {KEY_A}\n");
        assert_eq!(
            lookup(&kh, &name("example.com", 22), &key(KEY_A)),
            Lookup::Trusted
        );
    }

    #[test]
    fn known_types_are_offered_first() {
        let preferred = russh::Preferred::DEFAULT.key;
        let rsa = key(KEY_RSA).algorithm();
        let ordered = order_algorithms(std::slice::from_ref(&rsa), &preferred);
        assert_eq!(ordered.len(), preferred.len());
        assert!(
            ordered[..3]
                .iter()
                .all(|a| matches!(a, Algorithm::Rsa { .. })),
            "{ordered:?}"
        );
        assert_eq!(ordered[3], Algorithm::Ed25519);
        // The RSA variants keep their preferred order (sha2-512 first).
        let rsa_prefs: Vec<_> = preferred
            .iter()
            .filter(|a| matches!(a, Algorithm::Rsa { .. }))
            .cloned()
            .collect();
        assert_eq!(ordered[..3].to_vec(), rsa_prefs);
        assert_eq!(order_algorithms(&[], &preferred), preferred.to_vec());
        let ed = key(KEY_A).algorithm();
        assert_eq!(order_algorithms(&[ed], &preferred), preferred.to_vec());
    }

    /// Certificates are asked for only where known_hosts lists an
    /// authority for the host (by its name, or its alias).
    #[test]
    fn certificates_offered_only_with_an_authority() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("@cert-authority *.lab,[10.0.0.9]:2222 {KEY_A}\nweb.lab {KEY_RSA}\n"),
        )
        .unwrap();
        let preferred = russh::Preferred::DEFAULT.key;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let offered = |policy: HostKeyPolicy, host: &str, port: u16| {
            rt.block_on(policy.key_algorithms(host, port, &preferred))
        };
        let kh = || HostKeyPolicy::known_hosts(&path);
        let web = offered(kh(), "web.lab", 22);
        assert_eq!(web.certificates, web.keys);
        assert!(matches!(web.keys[0], Algorithm::Rsa { .. }), "{web:?}");
        assert_eq!(
            offered(kh(), "10.0.0.9", 2222).certificates,
            preferred.to_vec()
        );
        assert!(offered(kh(), "10.0.0.9", 22).certificates.is_empty());
        assert!(offered(kh(), "other.example", 22).certificates.is_empty());
        let alias = HostKeyPolicy::per_instance(&path, "vm1.lab");
        assert!(!offered(alias, "127.0.0.1", 4000).certificates.is_empty());
        for policy in [
            HostKeyPolicy::pinned(KEY_A),
            HostKeyPolicy::insecure_accept_any(),
        ] {
            assert!(offered(policy, "web.lab", 22).certificates.is_empty());
        }
    }

    #[test]
    fn no_home_is_an_error_not_a_relative_path() {
        for home in [None, Some(""), Some("relative/dir")] {
            let policy = HostKeyPolicy::default_for_home(home.map(Into::into));
            assert!(matches!(policy.kind, PolicyKind::NoHome), "{home:?}");
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let err = rt
                .block_on(policy.verify("h", 22, &key(KEY_A), None))
                .unwrap_err();
            match err {
                Error::Config { reason } => assert!(reason.contains("HOME"), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        let policy = HostKeyPolicy::default_for_home(Some("/home/me".into()));
        match policy.kind {
            PolicyKind::KnownHosts { path, alias: None } => {
                assert_eq!(path, Path::new("/home/me/.ssh/known_hosts"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aliases() {
        assert_eq!(
            lookup_name(Some("qemu-1a2b"), "127.0.0.1", 4000).unwrap(),
            "qemu-1a2b"
        );
        assert_eq!(lookup_name(None, "Web.LAB", 22).unwrap(), "web.lab");
        assert_eq!(
            lookup_name(None, "Web.LAB", 2222).unwrap(),
            "[web.lab]:2222"
        );
        for bad in [
            "",
            "a b",
            "a,b",
            "x*",
            "?",
            "!n",
            "#c",
            "@m",
            "|1|x",
            "[h]:1",
            "tab\there",
        ] {
            assert!(
                matches!(lookup_name(Some(bad), "h", 22), Err(Error::Config { .. })),
                "{bad:?}"
            );
        }
        let kh = format!("qemu-1a2b {KEY_A}\n");
        assert_eq!(lookup(&kh, "qemu-1a2b", &key(KEY_A)), Lookup::Trusted);
        assert_eq!(lookup(&kh, "qemu-9999", &key(KEY_A)), Lookup::Unknown);
        assert_eq!(
            lookup(&kh, "qemu-1a2b", &key(KEY_B)),
            Lookup::Changed(vec![fingerprint(&key(KEY_A))])
        );
    }

    #[test]
    fn plain_and_bracketed_entries() {
        let kh = format!("example.com {KEY_A}\n[127.0.0.1]:2222 {KEY_B}\n");
        assert_eq!(
            lookup(&kh, &name("example.com", 22), &key(KEY_A)),
            Lookup::Trusted
        );
        assert_eq!(
            lookup(&kh, &name("127.0.0.1", 2222), &key(KEY_B)),
            Lookup::Trusted
        );
        assert_eq!(
            lookup(&kh, &name("127.0.0.1", 22), &key(KEY_B)),
            Lookup::Unknown
        );
        assert!(matches!(
            lookup(&kh, &name("example.com", 22), &key(KEY_B)),
            Lookup::Changed(_)
        ));
    }

    #[test]
    fn hashed_entry_from_openssh() {
        // From russh's own test: hashed form of "example.com".
        let kh = format!("|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {KEY_A}\n");
        assert_eq!(
            lookup(&kh, &name("example.com", 22), &key(KEY_A)),
            Lookup::Trusted
        );
        assert_eq!(
            lookup(&kh, &name("other.com", 22), &key(KEY_A)),
            Lookup::Unknown
        );
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let kh = format!("*.lab,!bad.lab {KEY_A}\n@revoked * {KEY_B}\n");
        assert_eq!(
            lookup(&kh, &name("vm1.lab", 22), &key(KEY_A)),
            Lookup::Trusted
        );
        assert_eq!(
            lookup(&kh, &name("bad.lab", 22), &key(KEY_A)),
            Lookup::Unknown
        );
        assert!(matches!(
            lookup(&kh, &name("vm1.lab", 22), &key(KEY_B)),
            Lookup::Revoked
        ));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let kh = format!(
            "# comment\n\nnonsense\nhost ssh-ed25519 !!!notbase64\n{}\nhost {KEY_A}\n",
            "x".repeat(10_000)
        );
        assert_eq!(lookup(&kh, &name("host", 22), &key(KEY_A)), Lookup::Trusted);
    }

    /// Seed corpus: every prefix, and single-byte mutations, of realistic
    /// known_hosts text must parse without panicking.
    #[test]
    fn mangled_known_hosts_never_panic() {
        let seed = format!(
            "# c\n|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {KEY_A}\n\
             [127.0.0.1]:2222,*.lab,!bad.lab {KEY_B}\n@revoked * {KEY_A}\n@cert-authority *.x {KEY_B}\n"
        );
        let key_a = key(KEY_A);
        let bytes = seed.as_bytes();
        let replacements = [
            b'|', b'[', b']', b':', b',', b'!', b'*', b'?', b'@', b' ', b'\n', b'=', 0xff,
        ];
        for cut in 0..=bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let _ = lookup(&text, &name("example.com", 22), &key_a);
            let _ = lookup(&text, &name("127.0.0.1", 2222), &key_a);
        }
        for i in 0..bytes.len() {
            for r in replacements {
                let mut m = bytes.to_vec();
                m[i] = r;
                let text = String::from_utf8_lossy(&m);
                let _ = lookup(&text, &name("vm1.lab", 22), &key_a);
            }
        }
        for pat in [
            "", "*", "**", "?*?", "[", "]:", "|1|", "|1|x|y", "|1||", "!", "!*",
        ] {
            let _ = hosts_match(pat, "host");
            let _ = parse_key_line(pat);
        }
    }

    #[test]
    fn wildcard_matcher() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("10.0.?.*", "10.0.1.25"));
        assert!(!wildcard_match("10.0.?.*", "10.0.12.25"));
        assert!(wildcard_match("[127.0.0.1]:*", "[127.0.0.1]:2222"));
    }
}
