//! The SFTP channel a session keeps between its plain transfers
//! (`SshConfig::sftp_idle_timeout`): one `sftp-server` serves a session's
//! uploads, downloads and directory transfers one after another; the kept
//! channel gives way to commands that need its slot, is replaced when its
//! server dies, ends after its idle time, and never keeps the connection
//! up once the user has dropped the session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::{Duration, Instant};

use vmssh::sftp::TransferOptions;
use vmssh::{Session, SshConfig};

/// Up to a minute: for the server's processes to follow the client's.
const PATIENCE: Duration = Duration::from_secs(8);

/// An idle time far past [`PATIENCE`]: what must happen at once (the
/// channel closed with the session, or giving way) is not mistaken for
/// its end of idle time.
const LONG_IDLE: Duration = Duration::from_secs(3600);

fn remote_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vmssh-kept-")
        .tempdir()
        .unwrap()
}

/// Whether a session keeps its SFTP channel on this server, as
/// `SshConfig::sftp_idle_timeout` documents: OpenSSH, and dropbear from
/// 2024.86 (the suite's dropbear is older: nothing is kept there, and the
/// tests check that too).
fn keeps(sess: &Session) -> bool {
    let id = sess.server_id().unwrap_or_default();
    if id.starts_with("SSH-2.0-OpenSSH_") {
        return true;
    }
    let version = id.strip_prefix("SSH-2.0-dropbear_").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2024, 86)
}

/// After a transfer: where the session keeps its channel, exactly one
/// `sftp-server` runs, the one that served the first transfer (`kept`);
/// elsewhere none is left.
async fn check_kept(srv: &support::Server, sess: &Session, after: &str, kept: &mut Option<u32>) {
    if !keeps(sess) {
        assert!(
            srv.wait_gone("sftp-server", PATIENCE).await,
            "{}: an sftp-server was kept after {after}, on a server where none may be",
            srv.name()
        );
        return;
    }
    let servers = srv.processes_named("sftp-server");
    assert_eq!(
        servers.len(),
        1,
        "{}: after {after}, sftp-server processes: {servers:?}",
        srv.name()
    );
    assert_eq!(
        *kept.get_or_insert(servers[0]),
        servers[0],
        "{}: after {after}, another sftp-server serves the session",
        srv.name()
    );
}

/// The one `sftp-server` of the server, once exactly one runs.
fn one_sftp_server(srv: &support::Server, after: &str) -> u32 {
    let servers = srv.processes_named("sftp-server");
    assert_eq!(
        servers.len(),
        1,
        "{}: after {after}, sftp-server processes: {servers:?}",
        srv.name()
    );
    servers[0]
}

/// Waits until nothing runs below the server's listener: every connection
/// it served has ended.
async fn wait_no_connections(srv: &support::Server) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let left = srv.connection_pids();
        if left.is_empty() || start.elapsed() > PATIENCE {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Uploads, downloads, a reader's upload, a download into a writer and a
/// directory upload, one after another, with commands between them: all
/// on the one `sftp-server` the first upload started (where the session
/// keeps its channel; elsewhere each ends with its transfer). Dropping the
/// session (its clones, a clone included) ends the connection and that
/// server, though the kept channel holds the connection.
async fn transfers_share_one_channel(srv: &support::Server) {
    let sess = srv
        .connect_with(&srv.config().sftp_idle_timeout(LONG_IDLE))
        .await;
    let clone = sess.clone();
    let local = tempfile::tempdir().unwrap();
    let remote = remote_dir();
    let src = local.path().join("src");
    std::fs::write(&src, b"kept channel\n").unwrap();
    let dst = remote.path().join("dst");
    let dst = dst.to_str().unwrap();

    let mut kept = None;
    sess.upload(&src, dst).await.unwrap();
    check_kept(srv, &sess, "the first upload", &mut kept).await;
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");

    let back = local.path().join("back");
    sess.download(dst, &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), b"kept channel\n");
    check_kept(srv, &sess, "a download", &mut kept).await;

    let from_reader = remote.path().join("from-reader");
    clone
        .upload_from_reader(
            std::io::Cursor::new(b"from a reader\n".to_vec()),
            None,
            from_reader.to_str().unwrap(),
            &TransferOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&from_reader).unwrap(),
        b"from a reader\n",
        "{}",
        srv.name()
    );
    check_kept(srv, &sess, "an upload from a clone", &mut kept).await;

    let mut into = Vec::new();
    sess.download_to_writer(dst, &mut into, &TransferOptions::new())
        .await
        .unwrap();
    assert_eq!(into, b"kept channel\n");
    check_kept(srv, &sess, "a download into a writer", &mut kept).await;

    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/leaf"), b"leaf\n").unwrap();
    let remote_tree = remote.path().join("tree");
    sess.upload_dir(
        &tree,
        remote_tree.to_str().unwrap(),
        &TransferOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(remote_tree.join("sub/leaf")).unwrap(),
        b"leaf\n"
    );
    check_kept(srv, &sess, "a directory upload", &mut kept).await;

    // A failed transfer leaves the channel usable, and kept.
    let missing = sess
        .download(&format!("{dst}.missing"), &local.path().join("no"))
        .await;
    assert!(missing.is_err(), "{}: {missing:?}", srv.name());
    sess.upload(&src, dst).await.unwrap();
    check_kept(srv, &sess, "a failed download", &mut kept).await;

    drop(sess);
    // One clone left: the channel stays kept.
    check_kept(srv, &clone, "dropping one clone", &mut kept).await;
    drop(clone);
    let left = wait_no_connections(srv).await;
    assert!(
        left.is_empty(),
        "{}: the connection outlived its last session handle: {left:?} still run",
        srv.name()
    );
}

on_both_servers!(transfers_share_one_channel);

/// With the idle time set to zero nothing is kept: each transfer's
/// `sftp-server` ends with it. With a short one, the kept channel ends
/// after it while the session goes on.
async fn idle_time(srv: &support::Server) {
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::write(&src, b"idle\n").unwrap();
    let remote = remote_dir();
    let dst = remote.path().join("dst");
    let dst = dst.to_str().unwrap();

    let none = srv
        .connect_with(&srv.config().sftp_idle_timeout(Duration::ZERO))
        .await;
    none.upload(&src, dst).await.unwrap();
    assert!(
        srv.wait_gone("sftp-server", PATIENCE).await,
        "{}: sftp-server still runs with no idle time",
        srv.name()
    );
    none.close().await;

    let short = srv
        .connect_with(&srv.config().sftp_idle_timeout(Duration::from_millis(300)))
        .await;
    short.upload(&src, dst).await.unwrap();
    assert!(
        srv.wait_gone("sftp-server", PATIENCE).await,
        "{}: the kept channel outlived its idle time",
        srv.name()
    );
    assert_eq!(short.exec("echo ok").await.unwrap().stdout, b"ok\n");
    short.upload(&src, dst).await.unwrap();
    assert_eq!(std::fs::read(dst).unwrap(), b"idle\n");
}

/// On sshd: the suite's dropbear keeps nothing (see [`keeps`]).
mod idle_time {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd() {
        super::idle_time(&support::sshd()).await;
    }
}

/// A kept channel whose `sftp-server` died meanwhile is not reused: the
/// next transfer opens another and succeeds.
async fn dead_kept_channel_is_replaced(srv: &support::Server) {
    let sess = srv
        .connect_with(&srv.config().sftp_idle_timeout(LONG_IDLE))
        .await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::write(&src, b"first\n").unwrap();
    let remote = remote_dir();
    let dst = remote.path().join("dst");
    let dst = dst.to_str().unwrap();
    sess.upload(&src, dst).await.unwrap();
    let server = one_sftp_server(srv, "the first upload");
    support::signal_pids("KILL", &[server]);
    assert!(srv.wait_gone("sftp-server", PATIENCE).await);
    std::fs::write(&src, b"second\n").unwrap();
    sess.upload(&src, dst)
        .await
        .unwrap_or_else(|e| panic!("{}: upload after the kept server died: {e:?}", srv.name()));
    assert_eq!(std::fs::read(dst).unwrap(), b"second\n");
    assert_ne!(one_sftp_server(srv, "the second upload"), server);
}

/// On sshd, as [`idle_time`].
mod dead_kept_channel_is_replaced {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn sshd() {
        super::dead_kept_channel_is_replaced(&support::sshd()).await;
    }
}

/// The kept channel gives way: two commands that must run at the same
/// time (one reads a FIFO the other writes) after an upload, with two
/// channels per session (this side's limit; the open finds no slot free)
/// and on sshd with `MaxSessions 2` (the server refuses the second while
/// the channel is kept). Had the kept channel held its slot, the reader
/// would wait for ever. On the suite's dropbear (2022.83) nothing is kept:
/// had it been, the kept `sftp-server` exiting as the commands' channels
/// open would close the reader's, with its command perhaps run, and the
/// writer would wait for ever (it did, in most runs, before the rule).
mod gives_way {
    use super::*;

    async fn two_commands_after_upload(srv: &support::Server, cfg: &SshConfig) {
        let sess = srv.connect_with(cfg).await;
        let local = tempfile::tempdir().unwrap();
        let src = local.path().join("src");
        std::fs::write(&src, b"slot\n").unwrap();
        let remote = remote_dir();
        let dst = remote.path().join("dst");
        sess.upload(&src, dst.to_str().unwrap()).await.unwrap();
        let fifo = remote.path().join("fifo");
        support::run(std::process::Command::new("mkfifo").arg(&fifo));
        let fifo = fifo.to_str().unwrap();
        let (reader, writer) = (format!("cat '{fifo}'"), format!("echo pong > '{fifo}'"));
        let both = futures::future::join(sess.exec(&reader), sess.exec(&writer));
        let (read, written) = tokio::time::timeout(PATIENCE, both)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: two commands after an upload never ran together",
                    srv.name()
                )
            });
        let read = read.unwrap_or_else(|e| panic!("{}: reader: {e:?}", srv.name()));
        written.unwrap_or_else(|e| panic!("{}: writer: {e:?}", srv.name()));
        assert_eq!(read.stdout, b"pong\n", "{}", srv.name());
        // And the next upload opens a channel again.
        sess.upload(&src, dst.to_str().unwrap()).await.unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"slot\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn two_channels_per_session_sshd() {
        let srv = support::sshd();
        let cfg = srv.config().sftp_idle_timeout(LONG_IDLE).max_channels(2);
        two_commands_after_upload(&srv, &cfg).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_dropbear), ignore = "needs dropbear")]
    async fn two_channels_per_session_dropbear() {
        let srv = support::dropbear();
        let cfg = srv.config().sftp_idle_timeout(LONG_IDLE).max_channels(2);
        two_commands_after_upload(&srv, &cfg).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
    async fn server_limit_sshd() {
        let srv = support::Sshd::builder().max_sessions(2).start();
        let cfg = srv.config().sftp_idle_timeout(LONG_IDLE);
        two_commands_after_upload(&srv, &cfg).await;
    }
}
