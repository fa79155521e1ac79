//! The known_hosts file: reading and appending it, its lines (markers,
//! host patterns, keys), matching them against a host the way OpenSSH
//! does (plain, `[host]:port`, wildcards, negation, hashed names), and
//! what they say about a key or a host certificate.

use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Certificate, PublicKey};
use sha1::Sha1;

use super::{certificate, fingerprint, same_key};
use crate::error::{Error, HostCertificateProblem};

pub(super) async fn read_known_hosts(path: &Path) -> Result<String, Error> {
    match crate::local_file::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::HostKeyStore {
            path: path.to_path_buf(),
            reason: "cannot read".to_string(),
            source: Some(Box::new(e)),
        }),
    }
}

pub(super) async fn append_known_host(
    path: &Path,
    existing: &str,
    name: &str,
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
    line.push_str(name);
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
pub(super) fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum Lookup {
    Trusted,
    Unknown,
    /// Keys are recorded for the host, none of them this one (of this type
    /// or another): their fingerprints.
    Changed(Vec<String>),
    /// The key is marked `@revoked`.
    Revoked,
}

/// Parses `[algorithm] base64 [comment]` into a public key.
pub(super) fn parse_key_line(line: &str) -> Option<PublicKey> {
    let mut fields = line.split_whitespace();
    let first = fields.next()?;
    let b64 = if first.starts_with("AAAA") {
        first
    } else {
        fields.next()?
    };
    russh::keys::parse_public_key_base64(b64).ok()
}

/// One usable known_hosts line: its marker (`@revoked`, ...), host
/// patterns and key.
pub(super) struct Entry<'a> {
    pub(super) marker: Option<&'a str>,
    pub(super) hosts: &'a str,
    pub(super) key: PublicKey,
}

pub(super) fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().filter_map(|raw| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let (marker, hosts) = match fields.next() {
            Some(m) if m.starts_with('@') => (Some(m), fields.next()?),
            Some(h) => (None, h),
            None => return None,
        };
        let (Some(_alg), Some(b64)) = (fields.next(), fields.next()) else {
            return None;
        };
        let key = russh::keys::parse_public_key_base64(b64).ok()?;
        Some(Entry { marker, hosts, key })
    })
}

/// The keys recorded (not revoked) for `name`, in file order.
pub(super) fn entries_for(text: &str, name: &str) -> Vec<PublicKey> {
    entries(text)
        .filter(|e| e.marker.is_none() && hosts_match(e.hosts, name))
        .map(|e| e.key)
        .collect()
}

/// The `@cert-authority` keys listed for `name`, in file order.
pub(super) fn authorities_for(text: &str, name: &str) -> Vec<PublicKey> {
    entries(text)
        .filter(|e| e.marker == Some("@cert-authority") && hosts_match(e.hosts, name))
        .map(|e| e.key)
        .collect()
}

/// What known_hosts says about a host certificate.
#[derive(Debug, PartialEq)]
pub(super) enum CertLookup {
    Trusted,
    /// No `@cert-authority` line for the host.
    NoAuthority,
    Refused(HostCertificateProblem),
    /// The certified key or its authority is `@revoked`: its fingerprint.
    Revoked(String),
}

/// Checks `cert` (whose key is `key`) for the lookup name `name` and the
/// principal `principal`, as OpenSSH's `check_host_key` does.
pub(super) fn lookup_certificate(
    text: &str,
    name: &str,
    principal: &str,
    cert: &Certificate,
    key: &PublicKey,
    now: u64,
) -> CertLookup {
    for e in entries(text) {
        if e.marker == Some("@revoked")
            && hosts_match(e.hosts, name)
            && (same_key(&e.key, key) || e.key.key_data() == cert.signature_key())
        {
            return CertLookup::Revoked(fingerprint(&e.key));
        }
    }
    let authorities = authorities_for(text, name);
    if authorities.is_empty() {
        return CertLookup::NoAuthority;
    }
    match certificate::check(cert, &authorities, principal, now) {
        Ok(()) => CertLookup::Trusted,
        Err(problem) => CertLookup::Refused(problem),
    }
}

/// `name` is a lookup name (`host`, `[host]:port` or an alias), already
/// lowercased where OpenSSH lowercases it.
pub(super) fn lookup(text: &str, name: &str, key: &PublicKey) -> Lookup {
    let mut recorded = Vec::new();
    let mut trusted = false;
    for e in entries(text) {
        if !hosts_match(e.hosts, name) {
            continue;
        }
        match e.marker {
            Some("@revoked") => {
                if same_key(&e.key, key) {
                    return Lookup::Revoked;
                }
            }
            Some(_) => {} // @cert-authority: only for certificates (lookup_certificate)
            None if same_key(&e.key, key) => trusted = true,
            // A host known under any key is not new, whatever the type:
            // key types are ordered so that a server presents a known one
            // when it has it (HostKeyPolicy::key_algorithms).
            None => {
                let fp = fingerprint(&e.key);
                if !recorded.contains(&fp) {
                    recorded.push(fp);
                }
            }
        }
    }
    if trusted {
        Lookup::Trusted
    } else if recorded.is_empty() {
        Lookup::Unknown
    } else {
        Lookup::Changed(recorded)
    }
}

/// Matches a comma-separated host pattern list (plain, hashed, wildcard,
/// negated) against `name`, as OpenSSH does: a matching negation wins.
pub(super) fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(hashed) = pat.strip_prefix("|1|") {
            // OpenSSH hashes the lowercased name.
            if hashed_match(hashed, &name.to_ascii_lowercase()) {
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

pub(super) fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
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
pub(super) fn wildcard_match(pattern: &str, s: &str) -> bool {
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
