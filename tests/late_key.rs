//! A guest whose key arrives after its sshd starts (cloud-init writes
//! `authorized_keys` after sshd is up): with
//! `RetryPolicy::retry_auth_failures(true)` the login is retried until the
//! key lands; by default the refusal comes back at once; a key that never
//! lands fails at the deadline, saying how long login kept failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{HOST, Server, on_both_servers};
use vmssh::{Error, HostKeyPolicy, RetryPolicy, Session};

/// When the key lands, after the test starts.
const LANDS_AFTER: Duration = Duration::from_secs(3);

/// What an `on_retry` observer saw: (attempt, elapsed, deadline, login
/// refused, reason).
type Seen = Arc<Mutex<Vec<(u32, Duration, Duration, bool, String)>>>;

fn observed(policy: RetryPolicy) -> (RetryPolicy, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let policy = policy.on_retry(move |r| {
        log.lock().unwrap().push((
            r.attempt(),
            r.elapsed(),
            r.deadline(),
            r.is_auth(),
            r.to_string(),
        ));
    });
    (policy, seen)
}

/// How many connections the server has accepted so far (its log).
fn connections(srv: &Server) -> usize {
    let needle = if srv.is_openssh() {
        "Connection from "
    } else {
        "Child connection from "
    };
    srv.log().matches(needle).count()
}

async fn late_key_is_used_once_it_lands(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let late = support::ed25519_key(dir.path(), "late");
    let (policy, seen) = observed(RetryPolicy::default().retry_auth_failures(true));
    let cfg = srv.config_without_auth().auth(late.auth()).retry(policy);
    let before = connections(srv);
    let start = Instant::now();
    let lands = async {
        tokio::time::sleep(LANDS_AFTER).await;
        srv.authorize(&late.public_line);
        start.elapsed()
    };
    let connect = Session::connect_with_retry(HOST, srv.port(), &cfg, Duration::from_secs(60));
    let (landed, sess) = tokio::join!(lands, connect);
    let sess = sess.unwrap_or_else(|e| panic!("{}: {e} ({e:?})\n{}", srv.name(), srv.log()));
    let took = start.elapsed();
    assert!(
        took >= landed,
        "{}: logged in before the key landed",
        srv.name()
    );
    // About a second after it landed; generous for a loaded machine.
    assert!(
        took < landed + Duration::from_secs(15),
        "{}: logged in {:?} after the key landed",
        srv.name(),
        took - landed
    );
    assert_eq!(sess.exec("echo in").await.unwrap().stdout, b"in\n");

    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "{}: no retry observed", srv.name());
    for (i, (attempt, elapsed, deadline, auth, line)) in seen.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1, "{seen:?}");
        assert!(*auth, "{}: retried something else: {line}", srv.name());
        assert!(*elapsed <= landed + Duration::from_secs(15), "{seen:?}");
        assert_eq!(*deadline, Duration::from_secs(60));
        assert!(line.starts_with("retrying (login refused), "), "{line}");
        assert!(line.ends_with(" of 60 s"), "{line}");
    }
    // The login was tried again on the open connection, not by
    // reconnecting each time.
    let made = connections(srv) - before;
    assert!(
        made <= 2,
        "{}: {made} connections for {} retries",
        srv.name(),
        seen.len()
    );
}
on_both_servers!(late_key_is_used_once_it_lands);

async fn by_default_a_refused_login_fails_at_once(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let late = support::ed25519_key(dir.path(), "late");
    let (policy, seen) = observed(RetryPolicy::default());
    let cfg = srv.config_without_auth().auth(late.auth()).retry(policy);
    let start = Instant::now();
    let lands = async {
        tokio::time::sleep(LANDS_AFTER).await;
        srv.authorize(&late.public_line);
    };
    let connect = async {
        let r = Session::connect_with_retry(HOST, srv.port(), &cfg, Duration::from_secs(60)).await;
        (r, start.elapsed())
    };
    let ((), (result, took)) = tokio::join!(lands, connect);
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::AuthFailed {
                kept_failing: None,
                ..
            }
        ),
        "{}: {err:?}",
        srv.name()
    );
    assert!(took < LANDS_AFTER, "{}: took {took:?}", srv.name());
    assert!(seen.lock().unwrap().is_empty(), "{}: retried", srv.name());
    assert!(err.to_string().contains(" failed: "), "{err}");
}
on_both_servers!(by_default_a_refused_login_fails_at_once);

async fn a_key_that_never_lands_fails_at_the_deadline(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let never = support::ed25519_key(dir.path(), "never");
    let (policy, seen) = observed(RetryPolicy::default().retry_auth_failures(true));
    let cfg = srv.config_without_auth().auth(never.auth()).retry(policy);
    let deadline = Duration::from_secs(8);
    let start = Instant::now();
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    let took = start.elapsed();
    let Error::AuthFailed {
        kept_failing: Some(kept),
        ..
    } = &err
    else {
        panic!("{}: {err:?}", srv.name());
    };
    assert!(err.is_auth() && !err.is_retryable());
    assert!(
        took >= deadline - Duration::from_secs(2),
        "{}: gave up after {took:?}",
        srv.name()
    );
    assert!(took < deadline + Duration::from_secs(30), "{took:?}");
    assert!(*kept >= Duration::from_secs(4) && *kept <= took, "{kept:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("kept failing for ") && shown.contains("until the retry deadline"),
        "{shown}"
    );
    assert!(
        seen.lock().unwrap().len() >= 3,
        "{:?}",
        seen.lock().unwrap()
    );
}
on_both_servers!(a_key_that_never_lands_fails_at_the_deadline);

/// Retrying logins does not retry what no wait can fix: an untrusted host
/// key, no authentication method.
async fn host_key_and_configuration_errors_still_fail_at_once(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let policy = RetryPolicy::default().retry_auth_failures(true);
    let deadline = Duration::from_secs(60);

    let wrong = support::ed25519_key(dir.path(), "wrong-host");
    let cfg = srv
        .config()
        .host_key(HostKeyPolicy::pinned(wrong.public_line))
        .retry(policy.clone());
    let start = Instant::now();
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    assert!(err.is_host_key(), "{}: {err:?}", srv.name());
    assert!(start.elapsed() < Duration::from_secs(20));

    let cfg = srv.config_without_auth().retry(policy.clone());
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");

    let cfg = srv
        .config_without_auth()
        .auth(vmssh::Auth::key_file(dir.path().join("missing")))
        .retry(policy);
    let start = Instant::now();
    let err = Session::connect_with_retry(HOST, srv.port(), &cfg, deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Key { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(20));
}
on_both_servers!(host_key_and_configuration_errors_still_fail_at_once);
