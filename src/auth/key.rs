//! Private keys and certificates: reading, decoding and classifying
//! failures without echoing secrets.

use std::path::PathBuf;
use std::sync::Arc;

use russh::keys::{Certificate, PrivateKey};
use tokio::sync::OnceCell;

use crate::error::{Error, KeyErrorKind};

use super::{CertSource, KeySource, Secret};

/// Loads and decodes a key once; later calls return the cached key.
pub(crate) async fn load_key(
    source: &KeySource,
    passphrase: Option<&Secret>,
    cache: &OnceCell<Arc<PrivateKey>>,
) -> Result<Arc<PrivateKey>, Error> {
    cache
        .get_or_try_init(|| async {
            let text = match source {
                KeySource::File(path) => {
                    crate::local_file::read_to_string(path).map_err(|e| Error::Key {
                        origin: source.origin(),
                        kind: KeyErrorKind::Unreadable,
                        source: Some(Box::new(e)),
                    })?
                }
                KeySource::Pem(pem) => pem.expose().to_string(),
            };
            let origin = source.origin();
            let pass = passphrase.map(|p| p.expose().to_string());
            // Decrypting (bcrypt-pbkdf) costs tens to hundreds of ms of CPU:
            // keep it off the runtime's worker threads. A plain key decodes
            // in microseconds, in place.
            let key = if looks_encrypted(&text) {
                tokio::task::spawn_blocking(move || decode_key(&text, pass.as_deref(), &origin))
                    .await
                    .map_err(|e| Error::Key {
                        origin: source.origin(),
                        kind: KeyErrorKind::Malformed,
                        source: Some(Box::new(e)),
                    })??
            } else {
                decode_key(&text, pass.as_deref(), &origin)?
            };
            Ok(Arc::new(key))
        })
        .await
        .cloned()
}

/// The certificate to offer with a key: the one given, else `KEY-cert.pub`
/// next to a key file. `Err` when there is one but it cannot be used
/// (unreadable, not matching the key, expired, not yet valid).
pub(super) async fn load_certificate(
    source: &KeySource,
    certificate: &CertSource,
    key: &PrivateKey,
) -> Result<Option<(PathBuf, Certificate)>, (PathBuf, Error)> {
    let (path, explicit) = match (certificate, source) {
        (CertSource::File(p), _) => (p.clone(), true),
        (CertSource::Auto, KeySource::File(k)) => {
            let mut p = k.as_os_str().to_owned();
            p.push("-cert.pub");
            (PathBuf::from(p), false)
        }
        (CertSource::Auto, KeySource::Pem(_)) => return Ok(None),
    };
    let err = |kind, source: Option<crate::error::BoxError>| {
        (
            path.clone(),
            Error::Key {
                origin: path.display().to_string(),
                kind,
                source,
            },
        )
    };
    let text = match crate::local_file::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(KeyErrorKind::Unreadable, Some(Box::new(e)))),
    };
    let cert = Certificate::from_openssh(text.trim())
        .map_err(|e| err(KeyErrorKind::Malformed, Some(e.to_string().into())))?;
    if cert.public_key() != key.public_key().key_data() {
        return Err(err(KeyErrorKind::CertificateMismatch, None));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now < cert.valid_after() {
        return Err(err(KeyErrorKind::CertificateNotYetValid, None));
    }
    if now >= cert.valid_before() {
        return Err(err(KeyErrorKind::CertificateExpired, None));
    }
    Ok(Some((path, cert)))
}

/// Decodes a private key, classifying failures without echoing secrets.
pub(crate) fn decode_key(
    text: &str,
    passphrase: Option<&str>,
    origin: &str,
) -> Result<PrivateKey, Error> {
    let err = |kind, source: Option<crate::error::BoxError>| Error::Key {
        origin: origin.to_string(),
        kind,
        source,
    };
    let encrypted = looks_encrypted(text);
    if encrypted && text.contains("BEGIN EC PRIVATE KEY") {
        // russh decrypts legacy PEM (Proc-Type) keys but then parses them as
        // RSA: an encrypted SEC1 key fails whatever the passphrase, which
        // must not be reported as a wrong passphrase.
        return Err(err(
            KeyErrorKind::Unsupported,
            Some(
                "encrypted legacy PEM EC keys are not supported; re-encrypt the key in OpenSSH \
                 format (ssh-keygen -p -f KEY) or as PKCS#8"
                    .into(),
            ),
        ));
    }
    if encrypted && passphrase.is_none() {
        return Err(err(KeyErrorKind::PassphraseRequired, None));
    }
    match russh::keys::decode_secret_key(text, passphrase) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(err(KeyErrorKind::PassphraseRequired, None)),
        Err(russh::keys::Error::UnsupportedKeyType { .. }) => {
            Err(err(KeyErrorKind::Unsupported, None))
        }
        Err(e) if encrypted => {
            // Decryption with the wrong passphrase shows up as a padding,
            // checkint or decoding failure; the message says nothing secret.
            Err(err(
                KeyErrorKind::WrongPassphrase,
                Some(e.to_string().into()),
            ))
        }
        Err(e) => Err(err(KeyErrorKind::Malformed, Some(e.to_string().into()))),
    }
}

/// Whether a key text is passphrase-protected, without decrypting it.
fn looks_encrypted(text: &str) -> bool {
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return true;
    }
    if text.contains("BEGIN OPENSSH PRIVATE KEY") {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        use base64::Engine as _;
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
            // "openssh-key-v1\0" then string ciphername.
            let rest = bytes.get(15..).unwrap_or_default();
            if rest.len() >= 4 {
                let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if let Some(name) = rest.get(4..4 + n) {
                    return name != b"none";
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Auth, AuthKind};

    /// A throwaway key generated for this test only.
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBm1qDxBs4aor9PEaDW6C7JqioLJoAJQg0qFx28eGtiTQAAAJA5aNxOOWjc
TgAAAAtzc2gtZWQyNTUxOQAAACBm1qDxBs4aor9PEaDW6C7JqioLJoAJQg0qFx28eGtiTQ
AAAEC8cxSLz6BkeD/028ndzBYuyDxoJrlG6wV2m1/mdTRE0GbWoPEGzhqiv08RoNboLsmq
KgsmgAlCDSoXHbx4a2JNAAAACXRlc3Qtb25seQECAwQ=
-----END OPENSSH PRIVATE KEY-----
";

    #[tokio::test]
    async fn check_reports_bad_keys_before_connecting() {
        let kind = |r: Result<(), Error>| match r {
            Err(Error::Key { kind, .. }) => Some(kind),
            other => panic!("expected a key error, got {other:?}"),
        };
        assert!(Auth::key_pem(KEY).check().await.is_ok());
        assert_eq!(
            kind(Auth::key_file("/nonexistent/id_ed25519").check().await),
            Some(KeyErrorKind::Unreadable)
        );
        assert_eq!(
            kind(Auth::key_pem("not a key").check().await),
            Some(KeyErrorKind::Malformed)
        );
        assert!(Auth::agent().check().await.is_ok());
        assert!(Auth::password("pw").check().await.is_ok());
        // The decoded key is kept for the clones.
        let auth = Auth::key_pem(KEY);
        auth.check().await.unwrap();
        let AuthKind::Key { decoded, .. } = &auth.clone().kind else {
            unreachable!()
        };
        assert!(decoded.get().is_some());
    }

    #[test]
    fn whole_key_decodes() {
        assert!(decode_key(KEY, None, "<test>").is_ok());
    }

    /// Truncated and corrupted keys give a typed error, never a panic, and
    /// the error text never contains key material.
    #[test]
    fn truncated_and_corrupted_keys_are_typed_errors() {
        let body_line = KEY.lines().nth(2).unwrap();
        let mut cases: Vec<String> = (0..KEY.len())
            .step_by(7)
            .map(|n| KEY[..n].to_string())
            .collect();
        for i in (0..KEY.len()).step_by(5) {
            let mut bytes = KEY.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            cases.push(String::from_utf8(bytes).unwrap());
        }
        for text in cases {
            match decode_key(&text, None, "<test>") {
                Ok(_) => {}
                Err(e @ Error::Key { .. }) => {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains(body_line), "key material in {shown}");
                }
                Err(other) => panic!("untyped error {other:?}"),
            }
        }
    }

    #[test]
    fn encrypted_detection() {
        assert!(!looks_encrypted(KEY));
        assert!(looks_encrypted("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(!looks_encrypted("garbage"));
    }

    /// A P-256 key whose private scalar starts with a zero byte, as
    /// `ssh-keygen` makes one key in 256: OpenSSH writes the scalar as a
    /// 31-byte mpint, and ssh-key 0.7.0-rc.11 refuses anything under 32
    /// bytes (`EcdsaPrivateKey::decode`, "length invalid"). Generated for
    /// this test only.
    const SHORT_SCALAR_P256: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAaAAAABNlY2RzYS\n\
1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQTsURgM/5AYVrIlr1j9u4GTmpDuRX/X\n\
p2uLU4nQ2o1UkmBGDljcwYDhejzSF+BNew6ZR6OvuFMXmOAqdwTrJEjRAAAAqHPxPlZz8T\n\
5WAAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOxRGAz/kBhWsiWv\n\
WP27gZOakO5Ff9ena4tTidDajVSSYEYOWNzBgOF6PNIX4E17DplHo6+4UxeY4Cp3BOskSN\n\
EAAAAfdjivfFFjPpqC2SSmBdWX3h5fQfBvx7mbFpq4JFzk9gAAAAxzaG9ydC1zY2FsYXIB\n\
AgMEBQ==\n\
-----END OPENSSH PRIVATE KEY-----";

    #[test]
    #[ignore = "upstream: ssh-key 0.7.0-rc.11 refuses P-256 keys whose scalar has a leading zero byte"]
    fn p256_key_with_a_short_scalar_decodes() {
        decode_key(SHORT_SCALAR_P256, None, "<test>").unwrap();
    }
}
