//! Agent forwarding (`ssh -A`, [`SshConfig::forward_agent`]): a command
//! that asks for the agent reaches the local ssh-agent through the session
//! (`ssh-add -l` run on sshd and dropbear lists its key); one that does
//! not ask has none; once the channel that asked is closed the agent is
//! gone; and a server that reaches for the agent unasked is refused: sshd
//! does, for every command after the first that asked, and the testkit's
//! `probe_agent` does before every command. And the same through the
//! command: `vmssh exec -A`.
//!
//! The agent's socket is given with `forward_agent_at`: `SSH_AUTH_SOCK`
//! is process-wide, and `agent_forward_env.rs` tests it alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::future::Future;
use std::process::Command as Process;
use std::time::Duration;

use support::{Agent, KeyPair, Server, on_both_servers};
use vmssh::{Command, Session, SshConfig};
use vmssh_testkit::TestServer;

/// Hang guard: generous, only there so a bug fails instead of hanging.
async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result after 60 s"),
    }
}

/// An agent holding one fresh key, with the key's SHA256 fingerprint.
fn agent_with_key(dir: &std::path::Path) -> (Agent, KeyPair, String) {
    let agent = support::agent();
    let key = support::ed25519_key(dir, "forwarded");
    agent.add(&key);
    let keygen = support::find_bin("ssh-keygen").unwrap();
    let listed = support::run(Process::new(keygen).arg("-lf").arg(&key.private));
    let fingerprint = String::from_utf8(listed)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    (agent, key, fingerprint)
}

/// `ssh-add -l` on a server: a forwarded agent lists the key; without
/// forwarding there is no agent (exit 2); after the forwarding channel is
/// closed, its socket leads nowhere.
async fn forwarded_agent_lists_the_key(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _key, fingerprint) = agent_with_key(dir.path());
    let cfg = srv.config().forward_agent_at(agent.socket());
    assert!(cfg.forwards_agent());
    let sess = srv.connect_with(&cfg).await;

    let out = guard("ssh-add -l", sess.exec("ssh-add -l")).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&fingerprint), "{stdout}");

    // The command's own choice wins over the session's. sshd keeps one
    // agent socket per connection, from the first request to the
    // connection's end, and gives it to every later command: the client
    // must refuse the agent channels it opens for this one (ssh-add then
    // reports a failed agent, or dies of SIGPIPE writing to it).
    let none = guard(
        "ssh-add -l without forwarding",
        sess.exec_command(Command::new("ssh-add -l").forward_agent(false)),
    )
    .await
    .unwrap();
    assert!(!none.status.success(), "no agent expected: {none:?}");
    assert!(!String::from_utf8_lossy(&none.stdout).contains(&fingerprint));

    // The forwarded socket dies with its channel: a later command that
    // did not ask cannot use it, even knowing its path.
    let sock = guard("echo $SSH_AUTH_SOCK", sess.exec("echo $SSH_AUTH_SOCK"))
        .await
        .unwrap();
    let sock = String::from_utf8(sock.stdout).unwrap().trim().to_string();
    assert!(!sock.is_empty(), "the server gave no agent socket");
    let after = guard(
        "ssh-add -l on the old socket",
        sess.exec_command(
            Command::new(format!("SSH_AUTH_SOCK='{sock}' ssh-add -l")).forward_agent(false),
        ),
    )
    .await
    .unwrap();
    assert_ne!(
        after.status.code(),
        Some(0),
        "the agent outlived its channel: {}",
        String::from_utf8_lossy(&after.stdout)
    );
    assert!(!String::from_utf8_lossy(&after.stdout).contains(&fingerprint));
}
on_both_servers!(forwarded_agent_lists_the_key, requires vmssh_have_agent);

/// Off by default: no agent on the server.
async fn not_forwarded_by_default(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, _key, _) = agent_with_key(dir.path());
    assert!(!srv.config().forwards_agent());
    let sess = srv.connect().await;
    let out = guard("ssh-add -l", sess.exec("ssh-add -l")).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
on_both_servers!(not_forwarded_by_default, requires vmssh_have_agent);

/// A session over the testkit server that opens an agent channel before
/// every command, asked or not.
async fn probing(cfg: impl FnOnce(SshConfig) -> SshConfig) -> (TestServer, Session) {
    let server = TestServer::builder().probe_agent().start().await.unwrap();
    let sess = guard(
        "connect",
        Session::connect(server.host(), server.port(), &cfg(server.config())),
    )
    .await
    .unwrap();
    (server, sess)
}

/// What the testkit's probe found for one command.
async fn probe(sess: &Session, command: Command) -> String {
    let out = guard("probe", sess.exec_command(command)).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
async fn unasked_agent_channels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _key, _) = agent_with_key(dir.path());
    let socket = agent.socket().to_path_buf();
    let (_server, sess) = probing(|c| c.forward_agent_at(&socket)).await;
    let echo = || Command::new("echo $TESTKIT_AGENT");

    assert_eq!(probe(&sess, echo()).await, "1 identities");
    // No channel of the session is open that asked: refused, though the
    // session forwards the agent.
    assert_eq!(probe(&sess, echo().forward_agent(false)).await, "refused");
    // The forwarding command before it ended; nothing leaks from it.
    assert_eq!(probe(&sess, echo()).await, "1 identities");
    assert_eq!(probe(&sess, echo().forward_agent(false)).await, "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_refuses_the_server() {
    let (_server, sess) = probing(|c| c).await;
    assert_eq!(
        probe(&sess, Command::new("echo $TESTKIT_AGENT")).await,
        "refused"
    );
}

/// While a command that asked runs, the agent serves the session: another
/// command's agent channel is accepted too (the server cannot tell them
/// apart), and many at once each reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
async fn concurrent_commands_share_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, _key, _) = agent_with_key(dir.path());
    let socket = agent.socket().to_path_buf();
    let (_server, sess) = probing(|c| c.forward_agent_at(&socket)).await;
    let runs = (0..8).map(|_| probe(&sess, Command::new("echo $TESTKIT_AGENT")));
    for found in futures::future::join_all(runs).await {
        assert_eq!(found, "1 identities");
    }
}

/// An agent that cannot be reached: the server's agent channel is refused
/// and the command still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_agent_refuses_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-agent.sock");
    let (_server, sess) = probing(|c| c.forward_agent_at(&missing)).await;
    assert_eq!(
        probe(&sess, Command::new("echo $TESTKIT_AGENT")).await,
        "refused"
    );
}

/// `vmssh exec -A HOST -- ssh-add -l` lists the key (sshd, the agent at
/// SSH_AUTH_SOCK); without -A there is no agent; -A without SSH_AUTH_SOCK
/// warns and runs the command without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
#[cfg_attr(not(vmssh_have_agent), ignore = "needs ssh-agent")]
async fn exec_dash_a_forwards_the_agent() {
    use cli_harness::{assert_exit, run, stderr, stdout};

    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let (agent, _key, fingerprint) = agent_with_key(dir.path());
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let host = format!("vm1={}@127.0.0.1:{}", srv.user(), srv.port());
    let key = srv.client_key().private.display().to_string();
    let known = known.display().to_string();
    let exec = |extra: &[&str]| {
        let mut c = cli_harness::command(dir.path());
        c.args([
            "exec",
            "--host",
            &host,
            "--key",
            &key,
            "--known-hosts",
            &known,
        ]);
        c.args(extra);
        c.args(["--", "ssh-add", "-l"]);
        c
    };

    let mut forwarded = exec(&["-A"]);
    forwarded.env("SSH_AUTH_SOCK", agent.socket());
    let o = run(forwarded).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains(&fingerprint), "{}", stdout(&o));

    let mut plain = exec(&[]);
    plain.env("SSH_AUTH_SOCK", agent.socket());
    let o = run(plain).await;
    assert_exit(&o, 1);
    assert!(!stdout(&o).contains(&fingerprint), "{}", stdout(&o));

    let o = run(exec(&["-A", "--dry-run"])).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("  agent      forwarded\n"),
        "{}",
        stdout(&o)
    );

    // No local agent: a warning, and the command runs without one.
    let o = run(exec(&["--forward-agent"])).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("--forward-agent: SSH_AUTH_SOCK is not set"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains(&fingerprint), "{}", stdout(&o));
}

/// A shell on a session that forwards the agent reaches it too (what
/// `vmssh shell -A` does).
async fn shell_gets_the_agent(srv: &Server) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let (agent, _key, fingerprint) = agent_with_key(dir.path());
    let sess = srv
        .connect_with(&srv.config().forward_agent_at(agent.socket()))
        .await;
    let mut shell = guard("the shell", sess.shell_without_pty()).await.unwrap();
    shell.write_all(b"ssh-add -l; exit\n").await.unwrap();
    let mut out = Vec::new();
    guard("the shell's output", shell.read_to_end(&mut out))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains(&fingerprint), "{out}");
}
on_both_servers!(shell_gets_the_agent, requires vmssh_have_agent);
