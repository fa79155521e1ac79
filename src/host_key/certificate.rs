//! Host certificates: an OpenSSH certificate presented as the server's host
//! key, trusted through the `@cert-authority` keys known_hosts lists for
//! the host. The checks are OpenSSH's (`check_host_cert`): a host
//! certificate, signed by a listed authority, in date, naming the host (or
//! its `HostKeyAlias`) unless it names no principal at all, with no
//! critical options.

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

use crate::error::HostCertificateProblem;

/// Checks `cert` for the host called `principal` at `now` (Unix seconds),
/// given the authorities listed for the host.
pub(super) fn check(
    cert: &Certificate,
    authorities: &[PublicKey],
    principal: &str,
    now: u64,
) -> Result<(), HostCertificateProblem> {
    if cert.cert_type() != CertType::Host {
        return Err(HostCertificateProblem::NotForHosts);
    }
    let Some(authority) = authorities
        .iter()
        .find(|a| a.key_data() == cert.signature_key())
    else {
        return Err(HostCertificateProblem::UntrustedAuthority);
    };
    // PROTOCOL.certkeys: valid after <= now < valid before.
    if now < cert.valid_after() {
        return Err(HostCertificateProblem::NotYetValid);
    }
    if now >= cert.valid_before() {
        return Err(HostCertificateProblem::Expired);
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p == principal) {
        return Err(HostCertificateProblem::WrongPrincipal);
    }
    if !cert.critical_options().is_empty() {
        return Err(HostCertificateProblem::CriticalOptions);
    }
    // The signature (and again the authority and the dates, all checked
    // above so that a refusal says which).
    let fingerprint = authority.fingerprint(HashAlg::Sha256);
    cert.validate_at(now, [&fingerprint])
        .map_err(|_| HostCertificateProblem::BadSignature)
}

/// Seconds since the Unix epoch (0 for a clock before it, which no
/// certificate's window starts at).
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    struct Spec {
        ty: CertType,
        principals: &'static [&'static str],
        after: u64,
        before: u64,
        critical: bool,
    }

    const NOW: u64 = 1_800_000_000;

    const GOOD: Spec = Spec {
        ty: CertType::Host,
        principals: &["vm1", "127.0.0.1"],
        after: NOW - 60,
        before: NOW + 3600,
        critical: false,
    };

    fn cert(spec: Spec, ca: &PrivateKey) -> Certificate {
        let host = key(1);
        let mut b = Builder::new(
            vec![7; 32],
            host.public_key().key_data().clone(),
            spec.after,
            spec.before,
        )
        .unwrap();
        b.cert_type(spec.ty).unwrap();
        b.key_id("test").unwrap();
        for p in spec.principals {
            b.valid_principal(*p).unwrap();
        }
        if spec.principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        if spec.critical {
            b.critical_option("force-command", "true").unwrap();
        }
        b.sign(ca).unwrap()
    }

    #[test]
    fn each_problem_is_named() {
        let ca = key(2);
        let other = key(3);
        let trusted = [ca.public_key().clone()];
        let check_one =
            |spec, signer: &PrivateKey, name| check(&cert(spec, signer), &trusted, name, NOW);
        assert_eq!(check_one(GOOD, &ca, "vm1"), Ok(()));
        assert_eq!(check_one(GOOD, &ca, "127.0.0.1"), Ok(()));
        let any_host = Spec {
            principals: &[],
            ..GOOD
        };
        assert_eq!(check_one(any_host, &ca, "whatever"), Ok(()));
        use HostCertificateProblem as P;
        assert_eq!(check_one(GOOD, &ca, "vm2"), Err(P::WrongPrincipal));
        // Principals match exactly: no wildcards, no case folding.
        assert_eq!(check_one(GOOD, &ca, "VM1"), Err(P::WrongPrincipal));
        assert_eq!(check_one(GOOD, &other, "vm1"), Err(P::UntrustedAuthority));
        let user = Spec {
            ty: CertType::User,
            ..GOOD
        };
        assert_eq!(check_one(user, &ca, "vm1"), Err(P::NotForHosts));
        let expired = Spec {
            after: NOW - 7200,
            before: NOW,
            ..GOOD
        };
        assert_eq!(check_one(expired, &ca, "vm1"), Err(P::Expired));
        let early = Spec {
            after: NOW + 1,
            ..GOOD
        };
        assert_eq!(check_one(early, &ca, "vm1"), Err(P::NotYetValid));
        let critical = Spec {
            critical: true,
            ..GOOD
        };
        assert_eq!(check_one(critical, &ca, "vm1"), Err(P::CriticalOptions));
        assert_eq!(
            check(&cert(GOOD, &ca), &[], "vm1", NOW),
            Err(P::UntrustedAuthority)
        );
    }

    #[test]
    fn a_tampered_certificate_fails_its_signature() {
        let ca = key(2);
        let good = cert(GOOD, &ca);
        // Re-sign other contents, then graft the original signature on:
        // same authority, different principals.
        let mut bytes = good.to_bytes().unwrap();
        let needle = b"127.0.0.1";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at..at + needle.len()].copy_from_slice(b"127.0.0.2");
        let forged = Certificate::from_bytes(&bytes).unwrap();
        assert_eq!(
            check(&forged, &[ca.public_key().clone()], "127.0.0.2", NOW),
            Err(HostCertificateProblem::BadSignature)
        );
    }
}
