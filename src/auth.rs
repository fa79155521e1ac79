//! Authentication: the methods ([`Auth`]), private key loading, and the
//! loop that tries the configured methods in order.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::MethodKind;
use russh::MethodSet;
use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Certificate, PrivateKey, PrivateKeyWithHashAlg};
use tokio::sync::OnceCell;

use crate::error::{AuthFailure, Error, KeyErrorKind};

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
        certificate: CertSource,
    },
    Agent {
        socket: Option<PathBuf>,
    },
    Password(Secret),
    KeyboardInteractive(Responder),
}

/// Which OpenSSH certificate goes with a key.
#[derive(Clone, Debug)]
pub(crate) enum CertSource {
    /// `KEY-cert.pub` next to a key file, if it exists.
    Auto,
    /// This file.
    File(PathBuf),
}

/// The function that answers keyboard-interactive prompts.
type RespondFn = dyn Fn(&Challenge) -> Vec<String> + Send + Sync;

/// Answers keyboard-interactive prompts.
#[derive(Clone)]
pub(crate) struct Responder(Arc<RespondFn>);

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<responder>")
    }
}

/// What a server asks in one round of keyboard-interactive
/// authentication.
#[derive(Debug)]
pub struct Challenge {
    name: String,
    instructions: String,
    prompts: Vec<Prompt>,
}

impl Challenge {
    /// The challenge's title (often empty).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Instructions to show before the prompts (often empty).
    pub fn instructions(&self) -> &str {
        &self.instructions
    }

    /// The prompts, each to be answered in order.
    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }
}

/// One prompt of a [`Challenge`].
#[derive(Clone, Debug)]
pub struct Prompt {
    text: String,
    echo: bool,
}

impl Prompt {
    /// The prompt text (`Password: `).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the answer may be shown as it is typed (false for secrets).
    pub fn echo(&self) -> bool {
        self.echo
    }
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
                certificate: CertSource::Auto,
            },
        }
    }

    /// Offers this OpenSSH certificate (`ssh-keygen -s`) with the key,
    /// before the bare key. Without it, a key file's `KEY-cert.pub` is
    /// offered when it exists, as OpenSSH does. A certificate that does
    /// not match the key, is expired or not yet valid is skipped, and the
    /// reason is reported if the login fails. Has no effect on other
    /// methods.
    #[must_use]
    pub fn certificate(mut self, path: impl AsRef<Path>) -> Self {
        if let AuthKind::Key { certificate, .. } = &mut self.kind {
            *certificate = CertSource::File(path.as_ref().to_path_buf());
        }
        self
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

    /// Password authentication. Where the server asks for passwords
    /// through keyboard-interactive instead (PAM-only servers:
    /// `PasswordAuthentication no`, `KbdInteractiveAuthentication yes`),
    /// the password answers its single prompt, as OpenSSH's client does.
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

    /// keyboard-interactive authentication: `responder` is called with
    /// each round of prompts the server sends and returns one answer per
    /// prompt, in order. It runs on the connecting task: keep it quick
    /// (answers prepared in advance, a one-time code generator).
    ///
    /// # Example
    ///
    /// ```
    /// use vmssh::Auth;
    /// use vmssh::auth::Challenge;
    ///
    /// let otp = "123456".to_string();
    /// let auth = Auth::keyboard_interactive(move |c: &Challenge| {
    ///     c.prompts()
    ///         .iter()
    ///         .map(|p| if p.text().contains("code") { otp.clone() } else { String::new() })
    ///         .collect()
    /// });
    /// # let _ = auth;
    /// ```
    pub fn keyboard_interactive(
        responder: impl Fn(&Challenge) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        Auth {
            kind: AuthKind::KeyboardInteractive(Responder(Arc::new(responder))),
        }
    }

    pub(crate) fn method_name(&self) -> &'static str {
        match self.kind {
            AuthKind::Key { .. } => "publickey",
            AuthKind::Agent { .. } => "agent",
            AuthKind::Password(_) => "password",
            AuthKind::KeyboardInteractive(_) => "keyboard-interactive",
        }
    }

    /// The method and what it uses, for error messages (never a secret).
    pub(crate) fn label(&self) -> String {
        match &self.kind {
            AuthKind::Key { source, .. } => format!("publickey {}", source.origin()),
            AuthKind::Agent { socket: Some(s) } => format!("agent {}", s.display()),
            AuthKind::Agent { socket: None } => "agent (SSH_AUTH_SOCK)".to_string(),
            AuthKind::Password(_) => "password".to_string(),
            AuthKind::KeyboardInteractive(_) => "keyboard-interactive".to_string(),
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

/// Tries `methods` in order until the server accepts one. A method that
/// cannot be used (no agent, unreadable key, wrong passphrase, expired
/// certificate) is recorded and skipped; when none gets in, the error
/// lists why each failed. `server_disconnect` tells whether the server sent
/// a disconnect message: a disconnect after authentication began
/// (sshd's `MaxAuthTries`) is an authentication failure, while a
/// connection that just ended (a VM rebooting) is worth retrying.
pub(crate) async fn authenticate<H: client::Handler>(
    handle: &mut Handle<H>,
    host: &str,
    port: u16,
    user: &str,
    methods: &[Auth],
    server_disconnect: &(dyn Fn() -> Option<String> + Send + Sync),
) -> Result<(), Error> {
    let mut tried = Vec::new();
    let mut failures = Vec::new();
    let mut offered: Option<MethodSet> = None;
    for method in methods {
        tried.push(method.method_name().to_string());
        let result = try_method(handle, user, method, &mut offered, &mut failures).await;
        match result {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(Attempt::Unusable(label, e)) => failures.push(AuthFailure::Unusable {
                method: label,
                error: Box::new(e),
            }),
            Err(Attempt::Lost(label, e)) => {
                if let Some(message) = server_disconnect() {
                    failures.push(AuthFailure::Disconnected {
                        method: label,
                        message,
                    });
                    return Err(auth_failed(host, port, user, tried, failures));
                }
                return Err(Error::Handshake {
                    host: host.to_string(),
                    port,
                    reason: "connection lost during authentication".to_string(),
                    early_close: true,
                    source: e.map(|e| Box::new(e) as crate::error::BoxError),
                });
            }
        }
        // russh reports a connection that ended while a method was pending
        // as a plain failure.
        if handle.is_closed() {
            if let Some(message) = server_disconnect() {
                let method = failures
                    .pop()
                    .map(|f| f.method().to_string())
                    .unwrap_or_else(|| method.label());
                failures.push(AuthFailure::Disconnected { method, message });
                return Err(auth_failed(host, port, user, tried, failures));
            }
            return Err(Error::Handshake {
                host: host.to_string(),
                port,
                reason: "connection lost during authentication".to_string(),
                early_close: true,
                source: None,
            });
        }
    }
    // One method that could not even be tried: its own error says it all.
    if let ([_], [AuthFailure::Unusable { .. }]) = (methods, failures.as_slice())
        && let Some(AuthFailure::Unusable { error, .. }) = failures.pop()
    {
        return Err(*error);
    }
    Err(auth_failed(host, port, user, tried, failures))
}

fn auth_failed(
    host: &str,
    port: u16,
    user: &str,
    tried: Vec<String>,
    failures: Vec<AuthFailure>,
) -> Error {
    Error::AuthFailed {
        host: host.to_string(),
        port,
        user: user.to_string(),
        tried,
        failures,
    }
}

/// Why an attempt ended without a verdict from the server.
enum Attempt {
    /// The method could not be used; nothing was decided by the server.
    Unusable(String, Error),
    /// The connection failed under the request.
    Lost(String, Option<russh::Error>),
}

/// Tries one method; `Ok(false)` when the server rejected it (each
/// rejection recorded in `failures`).
async fn try_method<H: client::Handler>(
    handle: &mut Handle<H>,
    user: &str,
    method: &Auth,
    offered: &mut Option<MethodSet>,
    failures: &mut Vec<AuthFailure>,
) -> Result<bool, Attempt> {
    let label = method.label();
    let lost = |label: &str| {
        let label = label.to_string();
        move |e: russh::Error| Attempt::Lost(label, Some(e))
    };
    match &method.kind {
        AuthKind::Key {
            source,
            passphrase,
            decoded,
            certificate,
        } => {
            let key = load_key(source, passphrase.as_ref(), decoded)
                .await
                .map_err(|e| Attempt::Unusable(label.clone(), e))?;
            match load_certificate(source, certificate, &key).await {
                Ok(Some((path, cert))) => {
                    let cert_label = format!("certificate {}", path.display());
                    let r = handle
                        .authenticate_openssh_cert(user, key.clone(), cert)
                        .await
                        .map_err(lost(&cert_label))?;
                    if verdict(cert_label, r, offered, failures) {
                        return Ok(true);
                    }
                    if handle.is_closed() {
                        return Ok(false);
                    }
                }
                Ok(None) => {}
                // Tried without it, as OpenSSH does; the reason is kept.
                Err((path, e)) => failures.push(AuthFailure::Unusable {
                    method: format!("certificate {}", path.display()),
                    error: Box::new(e),
                }),
            }
            let hash = if key.algorithm().is_rsa() {
                rsa_hash(handle).await
            } else {
                None
            };
            let r = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(lost(&label))?;
            Ok(verdict(label, r, offered, failures))
        }
        AuthKind::Agent { socket } => match agent_auth(handle, user, socket.as_deref()).await {
            Ok(true) => Ok(true),
            Ok(false) => {
                failures.push(AuthFailure::Rejected { method: label });
                Ok(false)
            }
            Err(e) => Err(Attempt::Unusable(label, e)),
        },
        AuthKind::Password(pw) => {
            // Skipped only for a server known to want keyboard-interactive
            // instead: some servers leave "password" out of the methods
            // that can continue after a wrong one, yet accept the next.
            let kbd_only = offered.as_ref().is_some_and(|s| {
                !s.contains(&MethodKind::Password) && s.contains(&MethodKind::KeyboardInteractive)
            });
            if !kbd_only {
                let r = handle
                    .authenticate_password(user, pw.expose())
                    .await
                    .map_err(lost(&label))?;
                if verdict(label, r, offered, failures) {
                    return Ok(true);
                }
            }
            // PAM-only servers ask for the password through
            // keyboard-interactive, as a single prompt that does not echo.
            let kbd = offered
                .as_ref()
                .is_some_and(|s| s.contains(&MethodKind::KeyboardInteractive));
            if !kbd || handle.is_closed() {
                return Ok(false);
            }
            let pw = pw.clone();
            let answer = move |c: &Challenge| match c.prompts() {
                [p] if !p.echo() => Some(vec![pw.expose().to_string()]),
                [] => Some(Vec::new()),
                _ => None,
            };
            keyboard_interactive(
                handle,
                user,
                "keyboard-interactive (password)",
                &answer,
                offered,
                failures,
            )
            .await
        }
        AuthKind::KeyboardInteractive(responder) => {
            let answer = |c: &Challenge| Some((responder.0)(c));
            keyboard_interactive(handle, user, &label, &answer, offered, failures).await
        }
    }
}

/// Whether the server accepted; a rejection is recorded, with the methods
/// the server still offers.
fn verdict(
    label: String,
    r: AuthResult,
    offered: &mut Option<MethodSet>,
    failures: &mut Vec<AuthFailure>,
) -> bool {
    match r {
        AuthResult::Success => true,
        AuthResult::Failure {
            remaining_methods, ..
        } => {
            *offered = Some(remaining_methods);
            failures.push(AuthFailure::Rejected { method: label });
            false
        }
    }
}

/// How many rounds of prompts a keyboard-interactive login may take.
const MAX_KBD_ROUNDS: usize = 16;

async fn keyboard_interactive<H: client::Handler>(
    handle: &mut Handle<H>,
    user: &str,
    label: &str,
    answer: &(dyn Fn(&Challenge) -> Option<Vec<String>> + Send + Sync),
    offered: &mut Option<MethodSet>,
    failures: &mut Vec<AuthFailure>,
) -> Result<bool, Attempt> {
    let lost = |e: russh::Error| Attempt::Lost(label.to_string(), Some(e));
    let mut reply = handle
        .authenticate_keyboard_interactive_start(user, None)
        .await
        .map_err(lost)?;
    for _ in 0..MAX_KBD_ROUNDS {
        match reply {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure {
                remaining_methods, ..
            } => {
                *offered = Some(remaining_methods);
                break;
            }
            KeyboardInteractiveAuthResponse::InfoRequest {
                name,
                instructions,
                prompts,
            } => {
                let challenge = Challenge {
                    name,
                    instructions,
                    prompts: prompts
                        .into_iter()
                        .map(|p| Prompt {
                            text: p.prompt,
                            echo: p.echo,
                        })
                        .collect(),
                };
                let Some(answers) = answer(&challenge) else {
                    failures.push(AuthFailure::Unusable {
                        method: label.to_string(),
                        error: Box::new(Error::Config {
                            reason: format!(
                                "cannot answer {} keyboard-interactive prompts with a password",
                                challenge.prompts.len()
                            ),
                        }),
                    });
                    return Ok(false);
                };
                reply = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(lost)?;
            }
        }
    }
    failures.push(AuthFailure::Rejected {
        method: label.to_string(),
    });
    Ok(false)
}

/// The certificate to offer with a key: the one given, else `KEY-cert.pub`
/// next to a key file. `Err` when there is one but it cannot be used
/// (unreadable, not matching the key, expired, not yet valid).
async fn load_certificate(
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
    let text = match tokio::fs::read_to_string(&path).await {
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
