//! Host key verification against real servers: known_hosts (plain,
//! `[host]:port`, hashed), unknown and changed keys, pinned keys, trust on
//! first use, and the explicit insecure policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::path::Path;
use std::process::Command;

use support::Server;
use vmssh::{Error, HostKeyPolicy, Session, SshConfig};

/// The SHA256 fingerprint of an OpenSSH public key line, as `ssh-keygen
/// -l` prints it (`SHA256:...`): an independent check of the library's.
fn fingerprint(public_line: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pub");
    std::fs::write(&path, format!("{public_line}\n")).unwrap();
    let keygen = support::find_bin("ssh-keygen").unwrap();
    let out = Command::new(keygen)
        .arg("-l")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// `ssh-ed25519 AAAA...` without the comment.
fn key_only(public_line: &str) -> String {
    public_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn with_policy(srv: &Server, policy: HostKeyPolicy) -> SshConfig {
    srv.config().host_key(policy)
}

async fn connect_err(srv: &Server, cfg: &SshConfig) -> Error {
    match Session::connect(srv.host(), srv.port(), cfg).await {
        Ok(_) => panic!("{}: connect unexpectedly succeeded", srv.name()),
        Err(e) => e,
    }
}

async fn assert_connects(srv: &Server, cfg: &SshConfig) {
    let sess = srv.connect_with(cfg).await;
    assert!(sess.exec("true").await.unwrap().status.success());
}

/// A known_hosts entry `[127.0.0.1]:port`, plain and hashed by
/// `ssh-keygen -H`.
async fn known_hosts_entries(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let other = support::ed25519_key(dir.path(), "other");
    std::fs::write(
        &kh,
        format!(
            "# test file\n[127.0.0.1]:1 {}\n[127.0.0.1]:{} {}\n",
            key_only(&other.public_line),
            srv.port(),
            srv.host_key_line()
        ),
    )
    .unwrap();
    assert_connects(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&kh))).await;

    support::hash_known_hosts(&kh);
    let hashed = std::fs::read_to_string(&kh).unwrap();
    assert!(!hashed.contains("127.0.0.1"), "not hashed: {hashed}");
    assert!(
        hashed.lines().filter(|l| l.starts_with("|1|")).count() == 2,
        "{hashed}"
    );
    assert_connects(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&kh))).await;
}
on_both_servers!(known_hosts_entries);

/// No entry for this host (an empty file, entries for other ports, no file
/// at all): refused, naming the presented key's fingerprint.
async fn unknown_host_refused(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    // The right key, but for port 22 and another port: not this server.
    std::fs::write(
        &kh,
        format!(
            "127.0.0.1 {k}\n[127.0.0.1]:{p} {k}\n",
            k = srv.host_key_line(),
            p = srv.port().wrapping_add(1)
        ),
    )
    .unwrap();
    let expected = fingerprint(srv.host_key_line());
    for path in [kh.clone(), dir.path().join("missing")] {
        let err = connect_err(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&path))).await;
        match &err {
            Error::HostKeyUnknown {
                fingerprint,
                port,
                known_hosts,
                ..
            } => {
                assert_eq!(fingerprint, &expected);
                assert_eq!(*port, srv.port());
                assert_eq!(known_hosts, &path);
            }
            other => panic!("{}: expected HostKeyUnknown, got {other:?}", srv.name()),
        }
        assert!(err.is_host_key());
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(&expected), "{err}");
        // The message says which file was checked.
        assert!(
            err.to_string()
                .contains(&format!("not in {};", path.display())),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("missing").exists(),
        "known_hosts must not create the file"
    );
}
on_both_servers!(unknown_host_refused);

/// An entry with another key of the same type: the key changed. The error
/// names both fingerprints.
async fn changed_key_refused(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let impostor = support::ed25519_key(dir.path(), "impostor");
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{} {}\n",
            srv.port(),
            key_only(&impostor.public_line)
        ),
    )
    .unwrap();
    let err = connect_err(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&kh))).await;
    let (want_expected, want_actual) = (
        fingerprint(&impostor.public_line),
        fingerprint(srv.host_key_line()),
    );
    match &err {
        Error::HostKeyChanged {
            expected, actual, ..
        } => {
            assert_eq!(expected, &vec![want_expected.clone()]);
            assert_eq!(actual, &want_actual);
        }
        other => panic!("{}: expected HostKeyChanged, got {other:?}", srv.name()),
    }
    let shown = err.to_string();
    assert!(
        shown.contains(&want_expected) && shown.contains(&want_actual),
        "{shown}"
    );
    assert!(err.is_host_key());
    assert!(!err.is_retryable());

    // Hashed, the change is still seen.
    support::hash_known_hosts(&kh);
    let err = connect_err(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&kh))).await;
    assert!(matches!(err, Error::HostKeyChanged { .. }), "{err:?}");

    // A key of another type next to the right one is not a change.
    let rsa = support::keygen(
        dir.path(),
        "rsa",
        support::KeyType::Rsa,
        support::KeyFormat::OpenSsh,
        None,
    );
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{p} {}\n[127.0.0.1]:{p} {}\n",
            key_only(&rsa.public_line),
            srv.host_key_line(),
            p = srv.port()
        ),
    )
    .unwrap();
    assert_connects(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&kh))).await;
}
on_both_servers!(changed_key_refused);

/// Pinned keys: the right one connects, a wrong one is refused, any of
/// several may match, a malformed line is a store error.
async fn pinned_keys(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let wrong = support::ed25519_key(dir.path(), "wrong");
    assert_connects(
        srv,
        &with_policy(srv, HostKeyPolicy::pinned(srv.host_key_line())),
    )
    .await;
    // Without the comment, too.
    assert_connects(
        srv,
        &with_policy(srv, HostKeyPolicy::pinned(key_only(srv.host_key_line()))),
    )
    .await;

    let err = connect_err(
        srv,
        &with_policy(srv, HostKeyPolicy::pinned(wrong.public_line.clone())),
    )
    .await;
    match &err {
        Error::HostKeyChanged {
            expected, actual, ..
        } => {
            assert_eq!(expected, &vec![fingerprint(&wrong.public_line)]);
            assert_eq!(actual, &fingerprint(srv.host_key_line()));
        }
        other => panic!("{}: expected HostKeyChanged, got {other:?}", srv.name()),
    }

    let any =
        HostKeyPolicy::pinned_any([wrong.public_line.clone(), srv.host_key_line().to_string()]);
    assert_connects(srv, &with_policy(srv, any)).await;

    let err = connect_err(
        srv,
        &with_policy(srv, HostKeyPolicy::pinned("ssh-ed25519 not-base64!")),
    )
    .await;
    assert!(matches!(err, Error::HostKeyStore { .. }), "{err:?}");
    assert!(!err.is_retryable());
}
on_both_servers!(pinned_keys);

fn learned_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Trust on first use: the first connect writes the entry (creating the
/// file and its directory), later connects use it, with plain
/// `known_hosts` too; a server with another key on the same port is
/// refused.
async fn accept_new(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("sub").join("known_hosts");
    let policy = HostKeyPolicy::accept_new(&kh);
    assert_connects(srv, &with_policy(srv, policy.clone())).await;
    let lines = learned_lines(&kh);
    assert_eq!(
        lines,
        vec![format!(
            "[127.0.0.1]:{} {}",
            srv.port(),
            key_only(srv.host_key_line())
        )]
    );
    assert_connects(srv, &with_policy(srv, policy.clone())).await;
    assert_eq!(
        learned_lines(&kh).len(),
        1,
        "a known key is not appended again"
    );
    assert_connects(srv, &with_policy(srv, HostKeyPolicy::known_hosts(&kh))).await;

    // ssh-keygen agrees with what was written.
    let keygen = support::find_bin("ssh-keygen").unwrap();
    let found = Command::new(keygen)
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", srv.port()))
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find the learned entry"
    );
}
on_both_servers!(accept_new);

/// The same port, a new server with a new host key: trust on first use
/// refuses it and leaves the file alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn accept_new_refuses_changed_key() {
    let mut first = support::sshd();
    let port = first.port();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let policy = HostKeyPolicy::accept_new(&kh);
    assert_connects(&first, &with_policy(&first, policy.clone())).await;
    let before = std::fs::read_to_string(&kh).unwrap();
    first.stop();

    let second = support::Sshd::builder().port(port).start();
    assert_ne!(
        key_only(first.host_key_line()),
        key_only(second.host_key_line())
    );
    let err = connect_err(&second, &with_policy(&second, policy)).await;
    match &err {
        Error::HostKeyChanged {
            expected, actual, ..
        } => {
            assert_eq!(expected, &vec![fingerprint(first.host_key_line())]);
            assert_eq!(actual, &fingerprint(second.host_key_line()));
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        before,
        "the file must not change"
    );
}

/// `insecure_accept_any` accepts whatever the server presents.
async fn insecure_accept_any(srv: &Server) {
    assert_connects(srv, &with_policy(srv, HostKeyPolicy::insecure_accept_any())).await;
}
on_both_servers!(insecure_accept_any);

/// Hashed entries match the host name in any case, as plain ones do (and
/// as OpenSSH, which lowercases the name before hashing it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn hashed_entries_match_any_case() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!("[localhost]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    let cfg = with_policy(&srv, HostKeyPolicy::known_hosts(&kh));
    for host in ["localhost", "LocalHost"] {
        let sess = Session::connect(host, srv.port(), &cfg).await.unwrap();
        assert!(sess.exec("true").await.unwrap().status.success());
    }
    support::hash_known_hosts(&kh);
    assert!(!std::fs::read_to_string(&kh).unwrap().contains("localhost"));
    for host in ["localhost", "LocalHost", "LOCALHOST"] {
        let sess = Session::connect(host, srv.port(), &cfg)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(sess.exec("true").await.unwrap().status.success());
    }
}

/// A key marked `@revoked` is refused with an error of its own, naming the
/// key, even when a plain entry trusts it too.
async fn revoked_key_refused(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let key = key_only(srv.host_key_line());
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{p} {key}\n@revoked * {key}\n", p = srv.port()),
    )
    .unwrap();
    for policy in [
        HostKeyPolicy::known_hosts(&kh),
        HostKeyPolicy::accept_new(&kh),
    ] {
        let err = connect_err(srv, &with_policy(srv, policy)).await;
        match &err {
            Error::HostKeyRevoked {
                fingerprint: fp,
                port,
                ..
            } => {
                assert_eq!(fp, &fingerprint(srv.host_key_line()));
                assert_eq!(*port, srv.port());
            }
            other => panic!("{}: expected HostKeyRevoked, got {other:?}", srv.name()),
        }
        assert!(err.is_host_key());
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("revoked"), "{err}");
    }
}
on_both_servers!(revoked_key_refused);

/// A host known under another key type is not new: trust on first use
/// refuses a key of a type it has not seen for it (a man in the middle
/// offering only ed25519 for a host known by ECDSA), and records nothing.
async fn accept_new_refuses_a_new_key_type(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let ecdsa = support::keygen(
        dir.path(),
        "known_ecdsa",
        support::KeyType::Ecdsa,
        support::KeyFormat::OpenSsh,
        None,
    );
    let before = format!(
        "[127.0.0.1]:{} {}\n",
        srv.port(),
        key_only(&ecdsa.public_line)
    );
    std::fs::write(&kh, &before).unwrap();
    for policy in [
        HostKeyPolicy::accept_new(&kh),
        HostKeyPolicy::known_hosts(&kh),
    ] {
        let err = connect_err(srv, &with_policy(srv, policy)).await;
        match &err {
            Error::HostKeyChanged {
                expected, actual, ..
            } => {
                assert_eq!(expected, &vec![fingerprint(&ecdsa.public_line)]);
                assert_eq!(actual, &fingerprint(srv.host_key_line()));
            }
            other => panic!("{}: expected HostKeyChanged, got {other:?}", srv.name()),
        }
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), before);

    // Known by RSA: the RSA algorithms are offered first. dropbear 2022.83
    // with no RSA host key still accepts rsa-sha2-256 and then aborts the
    // connection (as it does for OpenSSH's ssh): refused either way.
    let rsa = support::keygen(
        dir.path(),
        "known_rsa",
        support::KeyType::Rsa,
        support::KeyFormat::OpenSsh,
        None,
    );
    let before = format!(
        "[127.0.0.1]:{} {}\n",
        srv.port(),
        key_only(&rsa.public_line)
    );
    std::fs::write(&kh, &before).unwrap();
    let err = connect_err(srv, &with_policy(srv, HostKeyPolicy::accept_new(&kh))).await;
    if srv.is_openssh() {
        assert!(matches!(err, Error::HostKeyChanged { .. }), "{err:?}");
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), before);
}
on_both_servers!(accept_new_refuses_a_new_key_type);

/// Trust on first use per VM instance (OpenSSH's HostKeyAlias): the key is
/// recorded under the instance id, not under 127.0.0.1:port; a new server
/// on the same port with the same id is refused, a new id is trusted
/// afresh. The file is a known_hosts file OpenSSH can read with
/// `-o HostKeyAlias=ID`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn per_instance_trust_on_first_use() {
    let mut first = support::sshd();
    let port = first.port();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("work").join("known_hosts");
    let policy = HostKeyPolicy::per_instance(&kh, "qemu-1111");
    assert_connects(&first, &with_policy(&first, policy.clone())).await;
    assert_eq!(
        learned_lines(&kh),
        vec![format!("qemu-1111 {}", key_only(first.host_key_line()))]
    );
    assert_connects(&first, &with_policy(&first, policy.clone())).await;
    assert_eq!(learned_lines(&kh).len(), 1);
    let keygen = support::find_bin("ssh-keygen").unwrap();
    let found = Command::new(&keygen)
        .args(["-F", "qemu-1111", "-f"])
        .arg(&kh)
        .output()
        .unwrap();
    assert!(found.status.success(), "ssh-keygen -F finds the alias");
    // Nothing was recorded under the address.
    let by_address = Command::new(&keygen)
        .arg("-F")
        .arg(format!("[127.0.0.1]:{port}"))
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(!by_address.status.success());
    first.stop();

    // The VM was recreated on the same port: same id, new key: refused.
    let second = support::Sshd::builder().port(port).start();
    let err = connect_err(&second, &with_policy(&second, policy)).await;
    match &err {
        Error::HostKeyChanged {
            expected, actual, ..
        } => {
            assert_eq!(expected, &vec![fingerprint(first.host_key_line())]);
            assert_eq!(actual, &fingerprint(second.host_key_line()));
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert_eq!(learned_lines(&kh).len(), 1, "a refused key is not recorded");
    // A new instance id: trusted afresh, the old entry left alone.
    let renewed = HostKeyPolicy::per_instance(&kh, "qemu-2222");
    assert_connects(&second, &with_policy(&second, renewed.clone())).await;
    assert_eq!(
        learned_lines(&kh),
        vec![
            format!("qemu-1111 {}", key_only(first.host_key_line())),
            format!("qemu-2222 {}", key_only(second.host_key_line())),
        ]
    );
    assert_connects(&second, &with_policy(&second, renewed)).await;

    // An id that cannot be a known_hosts name is a configuration error.
    for bad in ["", "two words", "a,b", "*", "!x", "#c", "@revoked"] {
        let err = connect_err(
            &second,
            &with_policy(&second, HostKeyPolicy::per_instance(&kh, bad)),
        )
        .await;
        assert!(matches!(err, Error::Config { .. }), "{bad:?}: {err:?}");
    }
}

/// A server with an ed25519 and an ECDSA host key, known by its ECDSA key
/// only: the known type is offered first (as OpenSSH orders host key
/// algorithms), so the strict policy connects and trust on first use
/// records nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn known_key_type_is_preferred() {
    let keys = tempfile::tempdir().unwrap();
    let ecdsa = support::keygen(
        keys.path(),
        "ssh_host_ecdsa_key",
        support::KeyType::Ecdsa,
        support::KeyFormat::OpenSsh,
        None,
    );
    let srv = support::Sshd::builder()
        .config_line(&format!("HostKey {}", ecdsa.private.display()))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let entry = format!(
        "[127.0.0.1]:{} {}\n",
        srv.port(),
        key_only(&ecdsa.public_line)
    );
    std::fs::write(&kh, &entry).unwrap();
    assert_connects(&srv, &with_policy(&srv, HostKeyPolicy::known_hosts(&kh))).await;
    assert_connects(&srv, &with_policy(&srv, HostKeyPolicy::accept_new(&kh))).await;
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), entry);
    // Known by its ed25519 key, ed25519 is chosen as before.
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{} {}\n",
            srv.port(),
            key_only(srv.host_key_line())
        ),
    )
    .unwrap();
    assert_connects(&srv, &with_policy(&srv, HostKeyPolicy::known_hosts(&kh))).await;
}

/// `HostKeyAlias` in ssh_config: the key is looked up under the alias, not
/// under the address, with `StrictHostKeyChecking yes` (refused when only
/// the address is recorded) and `accept-new` (learned under the alias).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn ssh_config_host_key_alias() {
    let srv = support::sshd();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let config = dir.path().join("config");
    let write_config = |strict: &str| {
        std::fs::write(
            &config,
            format!(
                "Host vm\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {}\n  HostKeyAlias VM-Instance-7\n  \
                 StrictHostKeyChecking {strict}\n",
                srv.host(),
                srv.port(),
                srv.user(),
                srv.client_key().private.display(),
                kh.display()
            ),
        )
        .unwrap();
    };
    let resolve = || vmssh::ssh_config::resolve_file(&config, "vm");

    write_config("yes");
    let by_address = format!("[{}]:{} {}\n", srv.host(), srv.port(), srv.host_key_line());
    std::fs::write(&kh, &by_address).unwrap();
    let vm = resolve().await.unwrap();
    assert_eq!(vm.host_key_alias(), Some("vm-instance-7"));
    assert!(vm.warnings().is_empty(), "{:?}", vm.warnings());
    let err = vm.connect().await.unwrap_err();
    assert!(matches!(err, Error::HostKeyUnknown { .. }), "{err:?}");

    std::fs::write(&kh, format!("vm-instance-7 {}\n", srv.host_key_line())).unwrap();
    let sess = resolve().await.unwrap().connect().await.unwrap();
    assert_eq!(sess.exec("echo alias").await.unwrap().stdout, b"alias\n");
    sess.close().await;

    write_config("accept-new");
    std::fs::write(&kh, "").unwrap();
    let sess = resolve().await.unwrap().connect().await.unwrap();
    sess.close().await;
    assert_eq!(
        learned_lines(&kh),
        vec![format!("vm-instance-7 {}", key_only(srv.host_key_line()))]
    );
}
