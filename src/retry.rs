//! The state of one `connect_with_retry`: what is retried, how fast, who is
//! told, and how long a refused login has kept failing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::config::{ConnectRetry, RetryPolicy};
use crate::error::Error;

/// How often a refused login is tried again on the same connection.
pub(crate) const LOGIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long before an attempt's time is up the last login on its
/// connection starts: room for its round trip, so that the attempt reports
/// the refusal rather than a timeout.
pub(crate) const LOGIN_MARGIN: Duration = Duration::from_millis(500);

/// The least time between two connections whose login was refused:
/// OpenSSH 9.8+ (`PerSourcePenalties`) charges each one 5 s against the
/// address and refuses it once the charges pass 15 s. At one connection
/// per 5 s they never do.
pub(crate) const LOGIN_CONNECTION_SPACING: Duration = Duration::from_secs(5);

/// Whether `policy` retries `e`: an error that `connect_with_retry`
/// returns is one of these only when its deadline passed.
pub(crate) fn retried(policy: &RetryPolicy, e: &Error) -> bool {
    e.is_retryable() || (policy.auth_failures && e.login_refused())
}

/// One run of retries against `host:port`.
pub(crate) struct Retrying<'a> {
    policy: &'a RetryPolicy,
    host: &'a str,
    port: u16,
    start: Instant,
    deadline: Duration,
    /// Failed attempts so far.
    failed: AtomicU32,
    /// When a login was first refused.
    first_refusal: OnceLock<Instant>,
}

impl<'a> Retrying<'a> {
    pub(crate) fn new(
        policy: &'a RetryPolicy,
        host: &'a str,
        port: u16,
        deadline: Duration,
    ) -> Self {
        Retrying {
            policy,
            host,
            port,
            start: Instant::now(),
            deadline,
            failed: AtomicU32::new(0),
            first_refusal: OnceLock::new(),
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Whether `e` is worth another attempt under this policy.
    pub(crate) fn retryable(&self, e: &Error) -> bool {
        retried(self.policy, e)
    }

    /// Whether `e` is a refused login this policy retries.
    pub(crate) fn retries_login(&self, e: &Error) -> bool {
        self.policy.auth_failures && e.login_refused()
    }

    /// Records a failed attempt about to be retried after `delay`: a
    /// `tracing` event and the policy's observer.
    pub(crate) fn retrying(&self, error: &Error, delay: Duration) {
        let attempt = self
            .failed
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let elapsed = self.elapsed();
        let (host, port) = (self.host, self.port);
        if error.login_refused() {
            self.first_refusal.get_or_init(Instant::now);
            tracing::info!(
                host,
                port,
                attempt,
                elapsed_s = elapsed.as_secs(),
                deadline_s = self.deadline.as_secs(),
                error = %error.chain(),
                "login refused, retrying in {delay:?}: the VM may still be installing its key"
            );
        } else {
            tracing::debug!(host, port, attempt, error = %error.chain(), "connect failed, retrying in {delay:?}");
        }
        if let Some(observe) = &self.policy.on_retry {
            observe(&ConnectRetry {
                host,
                port,
                attempt,
                elapsed,
                deadline: self.deadline,
                delay,
                error,
            });
        }
    }

    /// The number of attempts that failed so far, for the backoff.
    pub(crate) fn failed(&self) -> u32 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The error to return once retrying stops: a refused login says how
    /// long login kept failing.
    pub(crate) fn give_up(&self, mut e: Error) -> Error {
        if let Error::AuthFailed { kept_failing, .. } = &mut e
            && self.policy.auth_failures
        {
            let since = *self.first_refusal.get_or_init(Instant::now);
            *kept_failing = Some(since.elapsed());
        }
        e
    }
}

/// Asked of the login loop while retrying refused logins: try again on the
/// same connection until `until`.
pub(crate) struct LoginRetry<'r, 'a> {
    pub(crate) retrying: &'r Retrying<'a>,
    pub(crate) until: Instant,
}

impl LoginRetry<'_, '_> {
    /// Whether a refused login (`e`) is tried again on this connection,
    /// after [`LOGIN_INTERVAL`]; if so, it is recorded as a retry.
    pub(crate) fn again(&self, e: &Error) -> bool {
        if !self.retrying.retries_login(e) || Instant::now() + LOGIN_INTERVAL >= self.until {
            return false;
        }
        self.retrying.retrying(e, LOGIN_INTERVAL);
        true
    }
}
