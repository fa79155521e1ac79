//! Sessions over other byte streams: a unix-socket relay to sshd
//! (`Session::connect_stream`), a `ProxyCommand` child's standard input and
//! output, and an `~/.ssh/config` alias whose `ProxyJump` goes through a
//! real jump host (`ResolvedHost::connect`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use tokio::net::{TcpStream, UnixListener, UnixStream};
use vmssh::{Error, HostKeyPolicy, Session, ssh_config};

/// Relays each unix-socket connection at `path` to `127.0.0.1:port`.
fn unix_relay(path: &Path, port: u16) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut unix, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut unix, &mut tcp).await;
            });
        }
    })
}

/// The host key is checked against the name given, not the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn unix_socket_relay() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vm1.sock");
    let relay = unix_relay(&sock, srv.port());
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, format!("[vm1]:2222 {}\n", srv.host_key_line())).unwrap();
    let cfg = srv.config().host_key(HostKeyPolicy::known_hosts(&kh));

    let stream = UnixStream::connect(&sock).await.unwrap();
    let sess = Session::connect_stream(stream, "vm1", 2222, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!((sess.host(), sess.port()), ("vm1", 2222));
    assert_eq!(sess.exec("echo unix").await.unwrap().stdout, b"unix\n");
    let data = vec![7u8; 3 * 1024 * 1024];
    let out = sess
        .exec_command(vmssh::Command::new("wc -c").stdin_bytes(data))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"3145728\n");

    // Another name is another host: unknown, and the error names it.
    let stream = UnixStream::connect(&sock).await.unwrap();
    let err = Session::connect_stream(stream, "vm2", 2222, &cfg)
        .await
        .unwrap_err();
    match err {
        Error::HostKeyUnknown { host, port, .. } => {
            assert_eq!((host.as_str(), port), ("vm2", 2222))
        }
        other => panic!("expected HostKeyUnknown, got {other:?}"),
    }
    relay.abort();
}

/// A stream that closes at once: a handshake error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_that_ends() {
    let (a, b) = tokio::io::duplex(1024);
    drop(b);
    let cfg = vmssh::SshConfig::new("root")
        .auth(vmssh::Auth::password("x"))
        .host_key(HostKeyPolicy::insecure_accept_any());
    let err = Session::connect_stream(a, "nowhere", 22, &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
}

/// Writes an ssh_config for `srv` as alias `vm` with `extra` lines.
fn ssh_config_for(dir: &Path, srv: &support::Server, extra: &str) -> std::path::PathBuf {
    let kh = dir.join("known_hosts");
    std::fs::write(
        &kh,
        format!("[{}]:{} {}\n", srv.host(), srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "Host vm\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n{extra}",
            srv.host(),
            srv.port(),
            srv.user(),
            srv.client_key().private.display(),
            kh.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn proxy_command_child() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    // bash's /dev/tcp as a netcat: the child's stdio is the connection.
    let cfg = ssh_config_for(
        dir.path(),
        &srv,
        "  ProxyCommand bash -c 'exec 3<>/dev/tcp/%h/%p; cat <&3 & exec cat >&3'\n",
    );
    let vm = ssh_config::resolve_file(&cfg, "vm").await.unwrap();
    assert!(matches!(vm.proxy(), Some(ssh_config::Proxy::Command(_))));
    let sess = vm
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!(
        sess.exec("echo proxied").await.unwrap().stdout,
        b"proxied\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn proxy_command_that_exits() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ssh_config_for(
        dir.path(),
        &srv,
        "  ProxyCommand sh -c 'echo no route to %h >&2; exit 3'\n",
    );
    let vm = ssh_config::resolve_file(&cfg, "vm").await.unwrap();
    let err = vm.connect().await.unwrap_err();
    match &err {
        Error::ProxyCommand { reason, .. } => {
            assert!(reason.contains('3'), "{err}");
            assert!(reason.contains("no route to 127.0.0.1"), "{err}");
        }
        other => panic!("expected Error::ProxyCommand, got {other:?}"),
    }
}

/// `ProxyJump` in the config: the alias is reached through the jump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn ssh_config_proxy_jump() {
    let jump = support::sshd();
    let target = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let cfg = ssh_config_for(
        dir.path(),
        &target,
        &format!(
            "  ProxyJump bastion\nHost bastion\n  HostName {}\n  Port {}\n  User {}\n  \
             IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
            jump.host(),
            jump.port(),
            jump.user(),
            jump.client_key().private.display(),
            kh.display()
        ),
    );
    // The jump's key goes into the same known_hosts.
    let mut text = std::fs::read_to_string(&kh).unwrap();
    text.push_str(&format!(
        "[{}]:{} {}\n",
        jump.host(),
        jump.port(),
        jump.host_key_line()
    ));
    std::fs::write(&kh, text).unwrap();

    let vm = ssh_config::resolve_file(&cfg, "vm").await.unwrap();
    let sess = vm.connect().await.unwrap_or_else(|e| panic!("{e} ({e:?})"));
    assert_eq!(sess.exec("echo hopped").await.unwrap().stdout, b"hopped\n");
    let connections = |srv: &support::Server| {
        srv.log()
            .lines()
            .filter(|l| l.contains("Connection from"))
            .count()
    };
    assert_eq!(connections(&jump), 1, "{}", jump.log());
}
