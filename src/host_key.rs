//! Verifying the server's identity: known_hosts files, pinned keys, trust on
//! first use.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

use crate::error::Error;

/// How the server's host key is checked during the handshake.
///
/// Unknown and changed keys are refused unless the policy says otherwise;
/// accepting anything must be asked for by name
/// ([`insecure_accept_any`](HostKeyPolicy::insecure_accept_any)).
#[derive(Clone, Debug)]
pub struct HostKeyPolicy {
    kind: PolicyKind,
}

#[derive(Clone, Debug)]
enum PolicyKind {
    KnownHosts(PathBuf),
    Pinned(Vec<String>),
    AcceptNew(PathBuf),
    InsecureAcceptAny,
}

impl Default for HostKeyPolicy {
    /// `known_hosts` on `~/.ssh/known_hosts`.
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        HostKeyPolicy::known_hosts(home.join(".ssh").join("known_hosts"))
    }
}

impl HostKeyPolicy {
    /// Trust the keys recorded in an OpenSSH `known_hosts` file: plain,
    /// `[host]:port`, wildcard, negated and hashed (`|1|`) entries;
    /// `@revoked` keys are refused. Unknown hosts are refused.
    pub fn known_hosts(path: impl AsRef<Path>) -> Self {
        HostKeyPolicy {
            kind: PolicyKind::KnownHosts(path.as_ref().to_path_buf()),
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
    /// host with no entry is trusted and its key appended to the file
    /// (created if missing). A changed key is still refused.
    pub fn accept_new(path: impl AsRef<Path>) -> Self {
        HostKeyPolicy {
            kind: PolicyKind::AcceptNew(path.as_ref().to_path_buf()),
        }
    }

    /// Accept whatever key the server presents. Only for throwaway test
    /// machines: anyone on the path can impersonate the server.
    pub fn insecure_accept_any() -> Self {
        HostKeyPolicy {
            kind: PolicyKind::InsecureAcceptAny,
        }
    }

    /// Checks `key` for `host:port`; `Ok(())` means trusted.
    pub(crate) async fn verify(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), Error> {
        match &self.kind {
            PolicyKind::InsecureAcceptAny => Ok(()),
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
            PolicyKind::KnownHosts(path) | PolicyKind::AcceptNew(path) => {
                let text = read_known_hosts(path).await?;
                match lookup(&text, host, port, key) {
                    Lookup::Trusted => Ok(()),
                    Lookup::Unknown if matches!(self.kind, PolicyKind::AcceptNew(_)) => {
                        append_known_host(path, &text, host, port, key).await?;
                        tracing::info!(host, port, fingerprint = %fingerprint(key), "learned new host key");
                        Ok(())
                    }
                    Lookup::Unknown => Err(Error::HostKeyUnknown {
                        host: host.to_string(),
                        port,
                        fingerprint: fingerprint(key),
                    }),
                    Lookup::Changed(expected) | Lookup::Revoked(expected) => {
                        Err(Error::HostKeyChanged {
                            host: host.to_string(),
                            port,
                            expected,
                            actual: fingerprint(key),
                        })
                    }
                }
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

async fn read_known_hosts(path: &Path) -> Result<String, Error> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::HostKeyStore {
            path: path.to_path_buf(),
            reason: "cannot read".to_string(),
            source: Some(Box::new(e)),
        }),
    }
}

async fn append_known_host(
    path: &Path,
    existing: &str,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<(), Error> {
    use tokio::io::AsyncWriteExt as _;
    let store_err = |reason: &str, e: std::io::Error| Error::HostKeyStore {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source: Some(Box::new(e)),
    };
    let encoded = key.to_openssh().map_err(|e| Error::HostKeyStore {
        path: path.to_path_buf(),
        reason: "cannot encode the server's key".to_string(),
        source: Some(Box::new(e)),
    })?;
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&host_pattern(host, port));
    line.push(' ');
    // Drop the comment, if any: algorithm and key only.
    line.push_str(
        encoded
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .as_str(),
    );
    line.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| store_err("cannot create directory", e))?;
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| store_err("cannot open for appending", e))?;
    // One write of a whole line: concurrent appenders (a fleet) do not interleave.
    f.write_all(line.as_bytes())
        .await
        .map_err(|e| store_err("cannot append", e))?;
    f.flush().await.map_err(|e| store_err("cannot append", e))?;
    Ok(())
}

/// How known_hosts names a host: bare for port 22, `[host]:port` otherwise.
fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

#[derive(Debug, PartialEq)]
enum Lookup {
    Trusted,
    Unknown,
    /// Entries exist for the host, none with this key: their fingerprints.
    Changed(Vec<String>),
    /// The key is marked `@revoked`.
    Revoked(Vec<String>),
}

/// Parses `[algorithm] base64 [comment]` into a public key.
fn parse_key_line(line: &str) -> Option<PublicKey> {
    let mut fields = line.split_whitespace();
    let first = fields.next()?;
    let b64 = if first.starts_with("AAAA") {
        first
    } else {
        fields.next()?
    };
    russh::keys::parse_public_key_base64(b64).ok()
}

fn lookup(text: &str, host: &str, port: u16, key: &PublicKey) -> Lookup {
    let name = host_pattern(host, port);
    let mut others = Vec::new();
    let mut trusted = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (marker, hosts) = match fields.next() {
            Some(m) if m.starts_with('@') => (Some(m), fields.next()),
            other => (None, other),
        };
        let Some(hosts) = hosts else { continue };
        if !hosts_match(hosts, &name) {
            continue;
        }
        let (Some(_alg), Some(b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(recorded) = russh::keys::parse_public_key_base64(b64) else {
            continue;
        };
        match marker {
            Some("@revoked") => {
                if same_key(&recorded, key) {
                    return Lookup::Revoked(vec![format!("{} (revoked)", fingerprint(&recorded))]);
                }
            }
            Some(_) => {} // @cert-authority: certificates are not used here
            None => {
                if same_key(&recorded, key) {
                    trusted = true;
                } else if recorded.algorithm() == key.algorithm() {
                    // A different key of another type is not a change: the
                    // server may just have several host keys.
                    others.push(fingerprint(&recorded));
                }
            }
        }
    }
    if trusted {
        Lookup::Trusted
    } else if others.is_empty() {
        Lookup::Unknown
    } else {
        Lookup::Changed(others)
    }
}

/// Matches a comma-separated host pattern list (plain, hashed, wildcard,
/// negated) against `name`, as OpenSSH does: a matching negation wins.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(hashed) = pat.strip_prefix("|1|") {
            if hashed_match(hashed, name) {
                matched = true;
            }
        } else if let Some(neg) = pat.strip_prefix('!') {
            if wildcard_match(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if wildcard_match(&pat.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            matched = true;
        }
    }
    matched
}

fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` wildcards, as in OpenSSH's match_pattern.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let p = pattern.as_bytes();
    let s = s.as_bytes();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    fn key(line: &str) -> PublicKey {
        parse_key_line(line).unwrap()
    }

    #[test]
    fn plain_and_bracketed_entries() {
        let kh = format!("example.com {KEY_A}\n[127.0.0.1]:2222 {KEY_B}\n");
        assert_eq!(lookup(&kh, "example.com", 22, &key(KEY_A)), Lookup::Trusted);
        assert_eq!(lookup(&kh, "127.0.0.1", 2222, &key(KEY_B)), Lookup::Trusted);
        assert_eq!(lookup(&kh, "127.0.0.1", 22, &key(KEY_B)), Lookup::Unknown);
        assert!(matches!(
            lookup(&kh, "example.com", 22, &key(KEY_B)),
            Lookup::Changed(_)
        ));
    }

    #[test]
    fn hashed_entry_from_openssh() {
        // From russh's own test: hashed form of "example.com".
        let kh = format!("|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {KEY_A}\n");
        assert_eq!(lookup(&kh, "example.com", 22, &key(KEY_A)), Lookup::Trusted);
        assert_eq!(lookup(&kh, "other.com", 22, &key(KEY_A)), Lookup::Unknown);
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let kh = format!("*.lab,!bad.lab {KEY_A}\n@revoked * {KEY_B}\n");
        assert_eq!(lookup(&kh, "vm1.lab", 22, &key(KEY_A)), Lookup::Trusted);
        assert_eq!(lookup(&kh, "bad.lab", 22, &key(KEY_A)), Lookup::Unknown);
        assert!(matches!(
            lookup(&kh, "vm1.lab", 22, &key(KEY_B)),
            Lookup::Revoked(_)
        ));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let kh = format!(
            "# comment\n\nnonsense\nhost ssh-ed25519 !!!notbase64\n{}\nhost {KEY_A}\n",
            "x".repeat(10_000)
        );
        assert_eq!(lookup(&kh, "host", 22, &key(KEY_A)), Lookup::Trusted);
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
            let _ = lookup(&text, "example.com", 22, &key_a);
            let _ = lookup(&text, "127.0.0.1", 2222, &key_a);
        }
        for i in 0..bytes.len() {
            for r in replacements {
                let mut m = bytes.to_vec();
                m[i] = r;
                let text = String::from_utf8_lossy(&m);
                let _ = lookup(&text, "vm1.lab", 22, &key_a);
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
