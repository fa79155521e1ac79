//! OpenSSH certificate authorities for tests, made and used with
//! `ssh-keygen -s`: user certificates for `TrustedUserCAKeys`, host
//! certificates for `HostCertificate` and `@cert-authority`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{KeyPair, ed25519_key, find_bin};

/// A certificate authority: an ed25519 key pair in a test directory.
#[derive(Debug, Clone)]
pub struct Ca {
    /// The CA's key pair.
    pub key: KeyPair,
}

impl Ca {
    /// Makes a CA key `dir/name`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        Ca {
            key: ed25519_key(dir, name),
        }
    }

    /// The CA's public key file (for `TrustedUserCAKeys`).
    pub fn public_file(&self) -> PathBuf {
        let mut p = self.key.private.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    }

    /// Signs `key` as a user certificate for `principals`, valid for
    /// `validity` (`ssh-keygen -V`, e.g. `-5m:+1h` or `-2d:-1d`). Returns
    /// the certificate file, `KEY-cert.pub` next to the key.
    pub fn sign_user(&self, key: &KeyPair, principals: &str, validity: &str) -> PathBuf {
        self.sign(&key.private, principals, validity, false)
    }

    /// Signs the host public key file `public` (`NAME.pub`) as a host
    /// certificate for `principals`. Returns `NAME-cert.pub`.
    pub fn sign_host(&self, private: &Path, principals: &str, validity: &str) -> PathBuf {
        self.sign(private, principals, validity, true)
    }

    fn sign(&self, private: &Path, principals: &str, validity: &str, host: bool) -> PathBuf {
        let keygen = find_bin("ssh-keygen").expect("ssh-keygen is not installed");
        let mut public = private.as_os_str().to_owned();
        public.push(".pub");
        let mut cmd = Command::new(keygen);
        cmd.arg("-q").arg("-s").arg(&self.key.private).args([
            "-I",
            "vmssh-test",
            "-n",
            principals,
            "-V",
            validity,
        ]);
        if host {
            cmd.arg("-h");
        }
        let out = cmd
            .arg(&public)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen -s failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cert = private.as_os_str().to_owned();
        cert.push("-cert.pub");
        PathBuf::from(cert)
    }

    /// A known_hosts line trusting this CA for hosts matching `pattern`.
    pub fn known_hosts_line(&self, pattern: &str) -> String {
        format!("@cert-authority {pattern} {}", self.key.public_line)
    }
}
