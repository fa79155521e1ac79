//! The authentication loop: the configured methods offered in order, each
//! failure recorded, and the server's verdict read.

use russh::MethodKind;
use russh::MethodSet;
use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::PrivateKeyWithHashAlg;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;

use crate::error::{AuthFailure, Error};
use crate::retry::LoginRetry;

use super::key::{load_certificate, load_key};
use super::{Auth, AuthKind, Challenge, Prompt};

/// Tries `methods` in order until the server accepts one. A method that
/// cannot be used (no agent, unreadable key, wrong passphrase, expired
/// certificate) is recorded and skipped; when none gets in, the error
/// lists why each failed. `server_disconnect` tells whether the server sent
/// a disconnect message: a disconnect after authentication began
/// (sshd's `MaxAuthTries`) is an authentication failure, while a
/// connection that just ended (a VM rebooting) is worth retrying. With
/// `retry`, a refused login is tried again on the same connection while
/// the server keeps it open and `retry` allows.
pub(crate) async fn authenticate<H: client::Handler>(
    handle: &mut Handle<H>,
    host: &str,
    port: u16,
    user: &str,
    methods: &[Auth],
    server_disconnect: &(dyn Fn() -> Option<String> + Send + Sync),
    retry: Option<&LoginRetry<'_, '_>>,
) -> Result<(), Error> {
    loop {
        let e = match login(handle, host, port, user, methods, server_disconnect).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // A key installed late (cloud-init) is read by the server at the
        // next try: no new connection needed while this one stays open.
        match retry {
            Some(r) if !handle.is_closed() && r.again(&e) => {
                tokio::time::sleep(crate::retry::LOGIN_INTERVAL).await;
            }
            _ => return Err(e),
        }
    }
}

/// One pass over `methods`: [`authenticate`] without retries.
async fn login<H: client::Handler>(
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
        kept_failing: None,
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
