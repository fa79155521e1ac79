//! Which algorithms a session offers in the key exchange, named as OpenSSH
//! names them, in OpenSSH's list syntax (see [`SshConfig::kex_algorithms`]
//! and its siblings).
//!
//! The defaults reach every server OpenSSH's client reaches with its
//! defaults, as far as the SSH implementation underneath goes: OpenSSH's
//! algorithms in OpenSSH's order, less the ones it does not implement
//! (`sntrup761x25519-sha512@openssh.com`, the `umac-*` MACs), plus a few
//! more (more Diffie-Hellman groups, `ssh-rsa` host keys). The cipher
//! order is [`Cipher::preferred`]'s, chosen by CPU.
//!
//! [`SshConfig::kex_algorithms`]: crate::SshConfig::kex_algorithms

use std::borrow::Cow;

use russh::keys::Algorithm;
use russh::{cipher, compression, kex, mac};

use crate::cipher::Cipher;
use crate::error::{AlgorithmKind, Error};

/// Every name OpenSSH's client knows (`ssh -Q kex|cipher|mac|key-sig` of
/// OpenSSH 9.9): a name here that vmssh does not implement is another
/// client's algorithm, not a typo.
const OPENSSH_NAMES: &[(AlgorithmKind, &[&str])] = &[
    (
        AlgorithmKind::Kex,
        &[
            "diffie-hellman-group1-sha1",
            "diffie-hellman-group14-sha1",
            "diffie-hellman-group14-sha256",
            "diffie-hellman-group16-sha512",
            "diffie-hellman-group18-sha512",
            "diffie-hellman-group-exchange-sha1",
            "diffie-hellman-group-exchange-sha256",
            "ecdh-sha2-nistp256",
            "ecdh-sha2-nistp384",
            "ecdh-sha2-nistp521",
            "curve25519-sha256",
            "curve25519-sha256@libssh.org",
            "sntrup761x25519-sha512",
            "sntrup761x25519-sha512@openssh.com",
            "mlkem768x25519-sha256",
        ],
    ),
    (
        AlgorithmKind::Cipher,
        &[
            "3des-cbc",
            "aes128-cbc",
            "aes192-cbc",
            "aes256-cbc",
            "aes128-ctr",
            "aes192-ctr",
            "aes256-ctr",
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
            "chacha20-poly1305@openssh.com",
        ],
    ),
    (
        AlgorithmKind::Mac,
        &[
            "hmac-sha1",
            "hmac-sha1-96",
            "hmac-sha2-256",
            "hmac-sha2-512",
            "hmac-md5",
            "hmac-md5-96",
            "umac-64@openssh.com",
            "umac-128@openssh.com",
            "hmac-sha1-etm@openssh.com",
            "hmac-sha1-96-etm@openssh.com",
            "hmac-sha2-256-etm@openssh.com",
            "hmac-sha2-512-etm@openssh.com",
            "hmac-md5-etm@openssh.com",
            "hmac-md5-96-etm@openssh.com",
            "umac-64-etm@openssh.com",
            "umac-128-etm@openssh.com",
        ],
    ),
    (
        AlgorithmKind::HostKey,
        &[
            "ssh-ed25519",
            "ssh-ed25519-cert-v01@openssh.com",
            "sk-ssh-ed25519@openssh.com",
            "sk-ssh-ed25519-cert-v01@openssh.com",
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp384-cert-v01@openssh.com",
            "ecdsa-sha2-nistp521",
            "ecdsa-sha2-nistp521-cert-v01@openssh.com",
            "sk-ecdsa-sha2-nistp256@openssh.com",
            "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
            "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
            "ssh-dss",
            "ssh-dss-cert-v01@openssh.com",
            "ssh-rsa",
            "ssh-rsa-cert-v01@openssh.com",
            "rsa-sha2-256",
            "rsa-sha2-256-cert-v01@openssh.com",
            "rsa-sha2-512",
            "rsa-sha2-512-cert-v01@openssh.com",
        ],
    ),
];

impl AlgorithmKind {
    /// Whether OpenSSH's client knows `name` for this kind (names compare
    /// as OpenSSH compares them: exactly).
    pub(crate) fn is_openssh_name(self, name: &str) -> bool {
        OPENSSH_NAMES
            .iter()
            .any(|(kind, names)| *kind == self && names.contains(&name))
    }
}

/// Key exchange, most preferred first: OpenSSH 9.9's order (ML-KEM and
/// curve25519, then the NIST curves, then Diffie-Hellman), without
/// sntrup761, with two more Diffie-Hellman groups.
const DEFAULT_KEX: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group15-sha512",
    "diffie-hellman-group17-sha512",
];

/// MACs (used with the ciphers that have no integrity of their own, CTR
/// and CBC): OpenSSH's order without umac.
const DEFAULT_MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
];

/// Host key algorithms before the host key policy puts the known ones
/// first.
const DEFAULT_HOST_KEYS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
];

/// One algorithm list of [`SshConfig`](crate::SshConfig): the defaults, or
/// names as OpenSSH's options take them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AlgorithmList(Option<Vec<String>>);

/// What an OpenSSH list does to the defaults.
#[derive(Debug, PartialEq, Eq)]
enum Edit<'a> {
    /// `a,b`: exactly these.
    Replace(Vec<&'a str>),
    /// `+a,b`: the defaults, then these.
    Append(Vec<&'a str>),
    /// `-a,b`: the defaults without these.
    Remove(Vec<&'a str>),
    /// `^a,b`: these, then the rest of the defaults.
    Prepend(Vec<&'a str>),
}

impl AlgorithmList {
    /// A list as given to a setter: names, or comma-separated lists of
    /// names, the first optionally starting with `+`, `-` or `^`.
    pub(crate) fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AlgorithmList(Some(names.into_iter().map(Into::into).collect()))
    }

    fn edit(&self) -> Option<Edit<'_>> {
        let given = self.0.as_ref()?;
        let mut names: Vec<&str> = given
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let first = names.first().copied().unwrap_or("");
        let (mode, rest) = match first.chars().next() {
            Some(c @ ('+' | '-' | '^')) => (c, &first[1..]),
            _ => (' ', first),
        };
        if !names.is_empty() {
            names[0] = rest;
        }
        names.retain(|s| !s.is_empty());
        Some(match mode {
            '+' => Edit::Append(names),
            '-' => Edit::Remove(names),
            '^' => Edit::Prepend(names),
            _ => Edit::Replace(names),
        })
    }

    /// The names to offer, most preferred first, each checked against
    /// `supported`.
    fn resolve(
        &self,
        kind: AlgorithmKind,
        defaults: &[&str],
        supported: &dyn Fn(&str) -> bool,
        all: &dyn Fn() -> Vec<String>,
    ) -> Result<Vec<String>, Error> {
        let unsupported = |name: &str| Error::UnsupportedAlgorithm {
            kind,
            name: name.to_string(),
            supported: all(),
        };
        let mut out: Vec<String> = Vec::new();
        let push = |name: &str, out: &mut Vec<String>| {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        };
        match self.edit() {
            None => defaults.iter().for_each(|n| push(n, &mut out)),
            Some(edit) => {
                let listed = match &edit {
                    Edit::Replace(l) | Edit::Append(l) | Edit::Remove(l) | Edit::Prepend(l) => l,
                };
                if let Some(bad) = listed.iter().find(|n| !supported(n)) {
                    return Err(unsupported(bad));
                }
                match &edit {
                    Edit::Replace(l) => l.iter().for_each(|n| push(n, &mut out)),
                    Edit::Append(l) => defaults.iter().chain(l).for_each(|n| push(n, &mut out)),
                    Edit::Remove(l) => defaults
                        .iter()
                        .filter(|n| !l.contains(n))
                        .for_each(|n| push(n, &mut out)),
                    Edit::Prepend(l) => l.iter().chain(defaults).for_each(|n| push(n, &mut out)),
                }
            }
        }
        if out.is_empty() {
            return Err(unsupported(""));
        }
        Ok(out)
    }
}

/// The algorithm lists of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Algorithms {
    pub(crate) kex: AlgorithmList,
    pub(crate) ciphers: AlgorithmList,
    pub(crate) macs: AlgorithmList,
    pub(crate) host_keys: AlgorithmList,
    pub(crate) compression: bool,
}

/// What [`Algorithms::resolve`] hands to russh.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) preferred: russh::Preferred,
}

impl Algorithms {
    /// Checks every name and builds russh's preferences (host keys in the
    /// order given here: the host key policy reorders them).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedAlgorithm`] for a name that is not an algorithm
    /// this crate implements, or a list left empty.
    pub(crate) fn resolve(&self) -> Result<Resolved, Error> {
        let kex_names = self.kex.resolve(
            AlgorithmKind::Kex,
            DEFAULT_KEX,
            &|n| kex_name(n).is_some(),
            &|| names(kex::ALL_KEX_ALGORITHMS.iter().map(|n| n.as_ref()), is_kex),
        )?;
        let mut kex_list: Vec<kex::Name> = kex_names.iter().filter_map(|n| kex_name(n)).collect();
        // The client's extension markers ride in the key exchange list:
        // server-sig-algs and OpenSSH's strict key exchange (Terrapin).
        for marker in [
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ] {
            if !kex_list.contains(&marker) {
                kex_list.push(marker);
            }
        }
        let default_ciphers: Vec<&str> = Cipher::preferred().iter().map(|c| c.name()).collect();
        let ciphers: Vec<cipher::Name> = self
            .ciphers
            .resolve(
                AlgorithmKind::Cipher,
                &default_ciphers,
                &|n| Cipher::from_name(n).is_some(),
                &|| Cipher::ALL.iter().map(|c| c.name().to_string()).collect(),
            )?
            .iter()
            .filter_map(|n| Cipher::from_name(n).map(Cipher::russh))
            .collect();
        let macs: Vec<mac::Name> = self
            .macs
            .resolve(
                AlgorithmKind::Mac,
                DEFAULT_MACS,
                &|n| mac_name(n).is_some(),
                &|| names(mac::ALL_MAC_ALGORITHMS.iter().map(|n| n.as_ref()), is_mac),
            )?
            .iter()
            .filter_map(|n| mac_name(n))
            .collect();
        let host_keys: Vec<Algorithm> = self
            .host_keys
            .resolve(
                AlgorithmKind::HostKey,
                DEFAULT_HOST_KEYS,
                &|n| host_key_algorithm(n).is_some(),
                &|| DEFAULT_HOST_KEYS.iter().map(|s| s.to_string()).collect(),
            )?
            .iter()
            .filter_map(|n| host_key_algorithm(n))
            .collect();
        // OpenSSH's `Compression yes` asks for zlib first; `no` offers
        // none first, and zlib only for servers that insist.
        let compression: &'static [compression::Name] = if self.compression {
            &[
                compression::ZLIB_LEGACY,
                compression::ZLIB,
                compression::NONE,
            ]
        } else {
            &[
                compression::NONE,
                compression::ZLIB_LEGACY,
                compression::ZLIB,
            ]
        };
        Ok(Resolved {
            preferred: russh::Preferred {
                kex: Cow::Owned(kex_list),
                key: Cow::Owned(host_keys),
                cipher: Cow::Owned(ciphers),
                mac: Cow::Owned(macs),
                compression: Cow::Borrowed(compression),
                ..russh::Preferred::default()
            },
        })
    }
}

fn names<'a>(all: impl Iterator<Item = &'a str>, keep: fn(&str) -> bool) -> Vec<String> {
    all.filter(|n| keep(n)).map(str::to_string).collect()
}

/// Key exchange names a user may ask for: not `none`, not the extension
/// markers (always sent).
fn is_kex(name: &str) -> bool {
    name != "none" && !name.starts_with("ext-info-") && !name.starts_with("kex-strict-")
}

fn is_mac(name: &str) -> bool {
    name != "none"
}

fn kex_name(name: &str) -> Option<kex::Name> {
    if !is_kex(name) {
        return None;
    }
    kex::Name::try_from(name).ok()
}

fn mac_name(name: &str) -> Option<mac::Name> {
    if !is_mac(name) {
        return None;
    }
    mac::Name::try_from(name).ok()
}

/// A plain host key algorithm (certificates follow the host key policy).
fn host_key_algorithm(name: &str) -> Option<Algorithm> {
    if !DEFAULT_HOST_KEYS.contains(&name) {
        return None;
    }
    Algorithm::new(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kex_of(list: AlgorithmList) -> Result<Vec<String>, Error> {
        Algorithms {
            kex: list,
            ..Algorithms::default()
        }
        .resolve()
        .map(|r| {
            r.preferred
                .kex
                .iter()
                .map(|n| n.as_ref().to_string())
                .collect()
        })
    }

    #[test]
    fn defaults_cover_openssh_and_russh_implements_them() {
        let r = Algorithms::default().resolve().unwrap();
        let kex: Vec<&str> = r.preferred.kex.iter().map(|n| n.as_ref()).collect();
        // OpenSSH's client offers these by default; a server offering
        // only one of them must be reachable.
        for name in [
            "curve25519-sha256",
            "ecdh-sha2-nistp256",
            "ecdh-sha2-nistp384",
            "ecdh-sha2-nistp521",
            "diffie-hellman-group-exchange-sha256",
            "diffie-hellman-group16-sha512",
            "diffie-hellman-group18-sha512",
            "diffie-hellman-group14-sha256",
            "ext-info-c",
            "kex-strict-c-v00@openssh.com",
        ] {
            assert!(kex.contains(&name), "{name} missing from {kex:?}");
        }
        assert_eq!(r.preferred.cipher.len(), Cipher::preferred().len());
        assert_eq!(r.preferred.cipher[0], Cipher::preferred()[0].russh());
        assert_eq!(r.preferred.mac.len(), DEFAULT_MACS.len());
        assert_eq!(r.preferred.key.len(), DEFAULT_HOST_KEYS.len());
        assert_eq!(r.preferred.compression[0], compression::NONE);
    }

    #[test]
    fn openssh_list_syntax() {
        let only = kex_of(AlgorithmList::new(["ecdh-sha2-nistp256"])).unwrap();
        assert_eq!(
            only,
            [
                "ecdh-sha2-nistp256",
                "ext-info-c",
                "kex-strict-c-v00@openssh.com"
            ]
        );
        let listed = kex_of(AlgorithmList::new(["curve25519-sha256,ecdh-sha2-nistp256"])).unwrap();
        assert_eq!(&listed[..2], ["curve25519-sha256", "ecdh-sha2-nistp256"]);
        let appended = kex_of(AlgorithmList::new(["+diffie-hellman-group14-sha1"])).unwrap();
        assert_eq!(appended[0], DEFAULT_KEX[0]);
        assert!(appended.contains(&"diffie-hellman-group14-sha1".to_string()));
        let removed = kex_of(AlgorithmList::new(["-mlkem768x25519-sha256"])).unwrap();
        assert_eq!(removed[0], "curve25519-sha256");
        let first = kex_of(AlgorithmList::new(["^ecdh-sha2-nistp521"])).unwrap();
        assert_eq!(first[0], "ecdh-sha2-nistp521");
        assert_eq!(
            first.iter().filter(|n| *n == "ecdh-sha2-nistp521").count(),
            1
        );
    }

    #[test]
    fn unknown_names_are_typed_errors() {
        let e = Algorithms {
            ciphers: AlgorithmList::new(["aes256-ctr", "rot13"]),
            ..Algorithms::default()
        }
        .resolve()
        .unwrap_err();
        let Error::UnsupportedAlgorithm {
            kind,
            name,
            supported,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(*kind, AlgorithmKind::Cipher);
        assert_eq!(name, "rot13");
        assert!(supported.contains(&"aes256-ctr".to_string()));
        assert!(!supported.contains(&"none".to_string()));
        assert!(e.to_string().contains("rot13"), "{e}");
        // Known to OpenSSH, not implemented here.
        let e = Algorithms {
            macs: AlgorithmList::new(["umac-64-etm@openssh.com"]),
            ..Algorithms::default()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(
            e,
            Error::UnsupportedAlgorithm {
                kind: AlgorithmKind::Mac,
                ..
            }
        ));
        // No null cipher, no empty list, no certificates here.
        for bad in [
            Algorithms {
                ciphers: AlgorithmList::new(["none"]),
                ..Algorithms::default()
            },
            Algorithms {
                kex: AlgorithmList::new(Vec::<String>::new()),
                ..Algorithms::default()
            },
            Algorithms {
                host_keys: AlgorithmList::new(["ssh-ed25519-cert-v01@openssh.com"]),
                ..Algorithms::default()
            },
        ] {
            assert!(matches!(
                bad.resolve(),
                Err(Error::UnsupportedAlgorithm { .. })
            ));
        }
    }

    #[test]
    fn ciphers_take_cipher_values_and_names() {
        let cfg = crate::SshConfig::new("x").ciphers([Cipher::Aes256Ctr, Cipher::Aes128Gcm]);
        let r = cfg.algorithms.resolve().unwrap();
        assert_eq!(
            &r.preferred.cipher[..],
            [Cipher::Aes256Ctr.russh(), Cipher::Aes128Gcm.russh()]
        );
        let cfg = crate::SshConfig::new("x").ciphers(["+aes128-cbc"]);
        let r = cfg.algorithms.resolve().unwrap();
        assert_eq!(r.preferred.cipher.last(), Some(&Cipher::Aes128Cbc.russh()));
    }

    #[test]
    fn compression_can_be_asked_for() {
        let on = Algorithms {
            compression: true,
            ..Algorithms::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(on.preferred.compression[0], compression::ZLIB_LEGACY);
        assert!(on.preferred.compression.contains(&compression::NONE));
    }
}
