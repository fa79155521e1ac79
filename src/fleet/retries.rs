//! A VM's connect retries as fleet events ([`Event::Retrying`]): the
//! target's retry policy gains an observer (beside the caller's own) that
//! hands the VM's task a throttled event to emit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{ConnectRetry, SshConfig};
use crate::provision::Event;

/// A connect's retries are reported at most this often, once the first
/// has been.
const EVERY: Duration = Duration::from_secs(5);

/// ... or this often when the reason changed (the server came up and
/// refuses the login now).
const CHANGED: Duration = Duration::from_secs(1);

/// `config` with an observer that sends `vm`'s retries, throttled, to the
/// receiver. Retries that find the receiver full or gone are not sent.
pub(super) fn observed(vm: Arc<str>, config: &SshConfig) -> (SshConfig, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(4);
    let own = config.retry.on_retry.clone();
    let throttle = Mutex::new(Throttle::default());
    let policy = config.retry.clone().on_retry(move |r: &ConnectRetry<'_>| {
        if let Some(own) = &own {
            own(r);
        }
        let reason = r.reason();
        let due = throttle
            .lock()
            .is_ok_and(|mut t| t.admit(r.elapsed(), &reason));
        if due {
            let _ = tx.try_send(Event::Retrying {
                vm: vm.clone(),
                reason,
                login_refused: r.is_auth(),
                attempt: r.attempt(),
                elapsed: r.elapsed(),
                deadline: r.deadline(),
            });
        }
    });
    (config.clone().retry(policy), rx)
}

/// Which retries are reported: the first, then one per [`EVERY`], or per
/// [`CHANGED`] when the reason changed. Times are the retries' own
/// (since connecting began), so the reported ones are at least that far
/// apart.
#[derive(Default)]
struct Throttle {
    last: Option<(Duration, String)>,
}

impl Throttle {
    fn admit(&mut self, now: Duration, reason: &str) -> bool {
        let due = match &self.last {
            None => true,
            Some((at, last)) => {
                let since = now.saturating_sub(*at);
                since >= EVERY || (last != reason && since >= CHANGED)
            }
        };
        if due {
            self.last = Some((now, reason.to_string()));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_every_five_seconds_or_a_new_reason() {
        let at = Duration::from_millis;
        let mut t = Throttle::default();
        let refused = "connection refused";
        assert!(t.admit(at(0), refused));
        assert!(!t.admit(at(250), refused));
        assert!(!t.admit(at(4_900), refused));
        assert!(t.admit(at(5_000), refused));
        // A new reason within a second waits; after it, it is told.
        assert!(!t.admit(at(5_500), "login refused"));
        assert!(t.admit(at(6_000), "login refused"));
        assert!(!t.admit(at(7_000), "login refused"));
        assert!(t.admit(at(11_000), "login refused"));
    }
}
