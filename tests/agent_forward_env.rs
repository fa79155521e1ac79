//! `SshConfig::forward_agent(true)` forwards the agent at `SSH_AUTH_SOCK`,
//! read when a command starts; without it the command runs with no agent
//! (a warning is logged, as OpenSSH goes on without one).
//!
//! The variable is process-wide, so this test has a binary of its own:
//! even under plain `cargo test` (threads, not processes) nothing else
//! runs beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use vmssh::{Command, Session};
use vmssh_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
async fn agent_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let agent = support::agent();
    agent.add(&support::ed25519_key(dir.path(), "forwarded"));
    // Reaches for the agent before every command, asked or not.
    let server = TestServer::builder().probe_agent().start().await.unwrap();
    let cfg = server.config().forward_agent(true);
    let sess = Session::connect(server.host(), server.port(), &cfg)
        .await
        .unwrap();
    let probe = || async {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            sess.exec_command(Command::new("echo $TESTKIT_AGENT")),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    // SAFETY: the only test in this process, and no other thread touches
    // the environment while the variable is set or removed.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", agent.socket()) };
    assert_eq!(probe().await, "1 identities");

    // No agent here: the command runs without one (the request is not
    // sent, and the server's channel is refused).
    // SAFETY: as above.
    unsafe { std::env::remove_var("SSH_AUTH_SOCK") };
    assert_eq!(probe().await, "refused");
}
