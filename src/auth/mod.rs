//! Authentication: the methods ([`Auth`]), private key loading, and the
//! loop that tries the configured methods in order.
//!
//! Loading keys and certificates lives in `key.rs`; the loop that offers
//! the methods to a server lives in `login.rs`.

mod key;
mod login;

pub(crate) use key::load_key;
pub(crate) use login::authenticate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PrivateKey;
use tokio::sync::OnceCell;

use crate::error::Error;
pub(crate) use crate::secret::Secret;

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

/// What the method is, for a person (a dry run, a log): `key FILE`
/// (`, certificate FILE` when one was given), `key <in-memory>`, `agent`,
/// `agent at SOCKET`, `password`, `keyboard-interactive`. Never a secret.
impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AuthKind::Key {
                source,
                certificate,
                ..
            } => {
                write!(f, "key {}", source.origin())?;
                if let CertSource::File(p) = certificate {
                    write!(f, ", certificate {}", p.display())?;
                }
                Ok(())
            }
            AuthKind::Agent { socket: None } => f.write_str("agent"),
            AuthKind::Agent { socket: Some(s) } => write!(f, "agent at {}", s.display()),
            AuthKind::Password(_) => f.write_str("password"),
            AuthKind::KeyboardInteractive(_) => f.write_str("keyboard-interactive"),
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
    /// [`KeyErrorKind`](crate::KeyErrorKind).
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
