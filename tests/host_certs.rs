//! Host certificates (sshd's `HostCertificate`) trusted through
//! `@cert-authority` lines in known_hosts, with CAs made by
//! `ssh-keygen -s`: accepted for the host name or its `HostKeyAlias`;
//! expired, wrongly signed, misnamed and revoked ones refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use support::certs::Ca;
use support::{KeyFormat, KeyPair, KeyType, Server};
use vmssh::{Error, HostCertificateProblem, HostKeyPolicy, Session};

/// An sshd whose ECDSA host key carries a certificate from `ca` for
/// `principals`, valid for `validity` (`ssh-keygen -V`), next to its
/// plain ed25519 host key.
fn sshd_with_host_cert(dir: &Path, ca: &Ca, principals: &str, validity: &str) -> (Server, KeyPair) {
    let host = support::keygen(dir, "host_ecdsa", KeyType::Ecdsa, KeyFormat::OpenSsh, None);
    let cert = ca.sign_host(&host.private, principals, validity);
    let srv = support::Sshd::builder()
        .config_line(&format!("HostKey {}", host.private.display()))
        .config_line(&format!("HostCertificate {}", cert.display()))
        .start();
    (srv, host)
}

fn known_hosts(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("known_hosts");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// known_hosts names a host off port 22 as `[host]:port`, for
/// `@cert-authority` lines too.
fn this_server(srv: &Server) -> String {
    format!("[{}]:{}", srv.host(), srv.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn host_certificate_from_a_listed_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "host_ca");
    let (srv, _) = sshd_with_host_cert(dir.path(), &ca, "127.0.0.1,vm1", "-5m:+1h");
    // Only the authority is known: the plain host keys are not, so only
    // the certificate can get us in.
    let kh = known_hosts(dir.path(), &[ca.known_hosts_line(&this_server(&srv))]);
    let cfg = srv.config().host_key(HostKeyPolicy::known_hosts(&kh));
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
    sess.close().await;
}

/// With `HostKeyAlias` (here through `per_instance`), the alias is both
/// the known_hosts name and the principal; a trusted certificate is not
/// recorded as a learned key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn host_certificate_for_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "host_ca");
    let (srv, _) = sshd_with_host_cert(dir.path(), &ca, "vm-4f2a", "-5m:+1h");
    let kh = known_hosts(dir.path(), &[ca.known_hosts_line("vm-4f2a")]);
    let before = std::fs::read_to_string(&kh).unwrap();
    let cfg = srv
        .config()
        .host_key(HostKeyPolicy::per_instance(&kh, "vm-4f2a"));
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
    sess.close().await;
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), before);

    // The same server under another alias: the certificate does not name
    // it, and trust on first use does not learn its key either.
    let cfg = srv
        .config()
        .host_key(HostKeyPolicy::per_instance(&kh, "vm-other"));
    std::fs::write(&kh, ca.known_hosts_line("vm-*") + "\n").unwrap();
    let err = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_err();
    match &err {
        Error::HostCertificateRefused { problem, .. } => {
            assert_eq!(*problem, HostCertificateProblem::WrongPrincipal, "{err}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        ca.known_hosts_line("vm-*") + "\n"
    );
}

/// Host certificates that must be refused: expired, signed by a CA not
/// listed, not naming the host, and revoked (the host key or the CA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn host_certificates_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "host_ca");
    let other = Ca::new(dir.path(), "other_ca");
    let cases = [
        ("expired", &ca, "127.0.0.1", "-2d:-1d"),
        ("wrong CA", &other, "127.0.0.1", "-5m:+1h"),
        ("other host", &ca, "vm9.example", "-5m:+1h"),
        ("revoked key", &ca, "127.0.0.1", "-5m:+1h"),
        ("revoked CA", &ca, "127.0.0.1", "-5m:+1h"),
    ];
    for (what, signer, principals, validity) in cases {
        let sub = dir.path().join(what.replace(' ', "_"));
        std::fs::create_dir_all(&sub).unwrap();
        let (srv, host) = sshd_with_host_cert(&sub, signer, principals, validity);
        let mut lines = vec![ca.known_hosts_line(&this_server(&srv))];
        match what {
            "revoked key" => lines.push(format!("@revoked * {}", host.public_line)),
            "revoked CA" => lines.push(format!("@revoked * {}", ca.key.public_line)),
            _ => {}
        }
        let kh = known_hosts(&sub, &lines);
        let cfg = srv.config().host_key(HostKeyPolicy::known_hosts(&kh));
        let err = Session::connect(srv.host(), srv.port(), &cfg)
            .await
            .unwrap_err();
        assert!(err.is_host_key(), "{what}: {err:?}");
        assert!(!err.is_retryable(), "{what}");
        let problem = match &err {
            Error::HostCertificateRefused {
                host,
                port,
                problem,
                ..
            } => {
                assert_eq!((host.as_str(), *port), (srv.host(), srv.port()));
                Some(*problem)
            }
            Error::HostKeyRevoked { .. } => None,
            other => panic!("{what}: {other:?}"),
        };
        let expected = match what {
            "expired" => Some(HostCertificateProblem::Expired),
            "wrong CA" => Some(HostCertificateProblem::UntrustedAuthority),
            "other host" => Some(HostCertificateProblem::WrongPrincipal),
            _ => None,
        };
        assert_eq!(problem, expected, "{what}: {err}");
    }
}

/// A refused certificate whose key is trusted by a plain entry is
/// accepted, as OpenSSH falls back to the plain key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn expired_certificate_with_a_trusted_plain_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "host_ca");
    let (srv, host) = sshd_with_host_cert(dir.path(), &ca, "127.0.0.1", "-2d:-1d");
    let name = this_server(&srv);
    let kh = known_hosts(
        dir.path(),
        &[
            ca.known_hosts_line(&name),
            format!("{name} {}", host.public_line),
        ],
    );
    let cfg = srv.config().host_key(HostKeyPolicy::known_hosts(&kh));
    let sess = Session::connect(srv.host(), srv.port(), &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e} ({e:?})\n{}", srv.log()));
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
    sess.close().await;
}
