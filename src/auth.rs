//! Authentication: the methods ([`Auth`]), private key loading, and the
//! loop that tries the configured methods in order.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use tokio::sync::OnceCell;

use crate::error::{Error, KeyErrorKind};

/// A secret string that never shows in `Debug` output or errors.
#[derive(Clone)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    fn new(s: impl Into<String>) -> Self {
        Secret(Arc::from(s.into()))
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One way of proving who we are. Added to an [`SshConfig`](crate::SshConfig)
/// with [`auth`](crate::SshConfig::auth); several are tried in order.
///
/// Decoded keys are cached inside the `Auth` (and its clones), so a fleet
/// sharing one encrypted key decrypts it once.
#[derive(Clone, Debug)]
pub struct Auth {
    pub(crate) kind: AuthKind,
}

#[derive(Clone, Debug)]
pub(crate) enum AuthKind {
    Key {
        source: KeySource,
        passphrase: Option<Secret>,
        decoded: Arc<OnceCell<Arc<PrivateKey>>>,
    },
    Agent {
        socket: Option<PathBuf>,
    },
    Password(Secret),
}

#[derive(Clone, Debug)]
pub(crate) enum KeySource {
    File(PathBuf),
    Pem(Secret),
}

impl KeySource {
    pub(crate) fn origin(&self) -> String {
        match self {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Pem(_) => "<in-memory>".to_string(),
        }
    }
}

impl Auth {
    /// A private key read from a file when connecting: OpenSSH, PEM (PKCS#1,
    /// SEC1) or PKCS#8; ed25519, ECDSA or RSA (signed with rsa-sha2-512 or
    /// -256 where the server supports them).
    pub fn key_file(path: impl AsRef<Path>) -> Self {
        Self::key(KeySource::File(path.as_ref().to_path_buf()))
    }

    /// A private key given as text, in any format [`Auth::key_file`] reads.
    pub fn key_pem(pem: impl Into<String>) -> Self {
        Self::key(KeySource::Pem(Secret::new(pem)))
    }

    fn key(source: KeySource) -> Self {
        Auth {
            kind: AuthKind::Key {
                source,
                passphrase: None,
                decoded: Arc::new(OnceCell::new()),
            },
        }
    }

    /// Sets the passphrase of an encrypted key. Has no effect on agent or
    /// password authentication.
    #[must_use]
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> Self {
        if let AuthKind::Key {
            passphrase: p,
            decoded,
            ..
        } = &mut self.kind
        {
            *p = Some(Secret::new(passphrase));
            *decoded = Arc::new(OnceCell::new());
        }
        self
    }

    /// Every identity of the ssh-agent named by `SSH_AUTH_SOCK`.
    pub fn agent() -> Self {
        Auth {
            kind: AuthKind::Agent { socket: None },
        }
    }

    /// Every identity of the ssh-agent listening on `socket`.
    pub fn agent_at(socket: impl AsRef<Path>) -> Self {
        Auth {
            kind: AuthKind::Agent {
                socket: Some(socket.as_ref().to_path_buf()),
            },
        }
    }

    /// Password authentication.
    pub fn password(password: impl Into<String>) -> Self {
        Auth {
            kind: AuthKind::Password(Secret::new(password)),
        }
    }

    /// Reads and decodes a key now, so that a missing, unreadable,
    /// malformed or wrongly encrypted key is reported before connecting
    /// (a command line checks its keys before anything runs on any host).
    /// The decoded key is kept: clones of this `Auth` use it when they
    /// connect. Other methods have nothing to check.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] naming the file (never the key material), with its
    /// [`KeyErrorKind`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept unless decoding finished.
    pub async fn check(&self) -> Result<(), Error> {
        match &self.kind {
            AuthKind::Key {
                source,
                passphrase,
                decoded,
                ..
            } => load_key(source, passphrase.as_ref(), decoded)
                .await
                .map(drop),
            _ => Ok(()),
        }
    }

    pub(crate) fn method_name(&self) -> &'static str {
        match self.kind {
            AuthKind::Key { .. } => "publickey",
            AuthKind::Agent { .. } => "agent",
            AuthKind::Password(_) => "password",
        }
    }
}

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
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|e| Error::Key {
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
            // keep it off the runtime's worker threads.
            let key =
                tokio::task::spawn_blocking(move || decode_key(&text, pass.as_deref(), &origin))
                    .await
                    .map_err(|e| Error::Key {
                        origin: source.origin(),
                        kind: KeyErrorKind::Malformed,
                        source: Some(Box::new(e)),
                    })??;
            Ok(Arc::new(key))
        })
        .await
        .cloned()
}

/// Tries `methods` in order until the server accepts one.
pub(crate) async fn authenticate<H: client::Handler>(
    handle: &mut Handle<H>,
    host: &str,
    port: u16,
    user: &str,
    methods: &[Auth],
) -> Result<(), Error> {
    let proto = |e: russh::Error| {
        let early = matches!(
            e,
            russh::Error::Disconnect | russh::Error::HUP | russh::Error::SendError
        );
        Error::Handshake {
            host: host.to_string(),
            port,
            reason: "connection lost during authentication".to_string(),
            early_close: early,
            source: Some(Box::new(e)),
        }
    };
    let mut tried = Vec::new();
    for method in methods {
        tried.push(method.method_name().to_string());
        let ok = match &method.kind {
            AuthKind::Key {
                source,
                passphrase,
                decoded,
            } => {
                let key = load_key(source, passphrase.as_ref(), decoded).await?;
                let hash = if key.algorithm().is_rsa() {
                    rsa_hash(handle).await
                } else {
                    None
                };
                handle
                    .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                    .await
                    .map_err(proto)?
                    .success()
            }
            AuthKind::Agent { socket } => agent_auth(handle, user, socket.as_deref()).await?,
            AuthKind::Password(pw) => handle
                .authenticate_password(user, pw.expose())
                .await
                .map_err(proto)?
                .success(),
        };
        if ok {
            return Ok(());
        }
        // russh reports a connection that died while a method was pending
        // as a plain failure: that is not a rejection, and unlike one it is
        // worth retrying (a VM rebooting under us).
        if handle.is_closed() {
            return Err(Error::Handshake {
                host: host.to_string(),
                port,
                reason: "connection lost during authentication".to_string(),
                early_close: true,
                source: None,
            });
        }
    }
    Err(Error::AuthFailed {
        host: host.to_string(),
        port,
        user: user.to_string(),
        tried,
    })
}

/// rsa-sha2-512/256 where the server announced them, else rsa-sha2-256.
async fn rsa_hash<H: client::Handler>(handle: &Handle<H>) -> Option<russh::keys::HashAlg> {
    match handle.best_supported_rsa_hash().await {
        Ok(Some(best)) => best,
        _ => Some(russh::keys::HashAlg::Sha256),
    }
}

async fn agent_auth<H: client::Handler>(
    handle: &mut Handle<H>,
    user: &str,
    socket: Option<&std::path::Path>,
) -> Result<bool, Error> {
    let agent_err = |reason: &str, e: russh::keys::Error| Error::Agent {
        reason: reason.to_string(),
        source: Some(Box::new(e)),
    };
    let mut agent = match socket {
        Some(path) => AgentClient::connect_uds(path)
            .await
            .map_err(|e| agent_err(&format!("cannot connect to {}", path.display()), e))?
            .dynamic(),
        None => {
            if std::env::var_os("SSH_AUTH_SOCK").is_none() {
                return Err(Error::Agent {
                    reason: "SSH_AUTH_SOCK is not set".to_string(),
                    source: None,
                });
            }
            AgentClient::connect_env()
                .await
                .map_err(|e| agent_err("cannot connect to SSH_AUTH_SOCK", e))?
                .dynamic()
        }
    };
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| agent_err("cannot list identities", e))?;
    for id in identities {
        let AgentIdentity::PublicKey { key, .. } = id else {
            continue;
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash(handle).await
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Agent {
                    reason: "signing failed".to_string(),
                    source: Some(e.to_string().into()),
                });
            }
        }
    }
    Ok(false)
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
}
