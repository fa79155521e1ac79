//! Which ciphers to offer, in which order.
//!
//! AES-GCM is the fastest choice on a CPU with AES instructions (1.3-1.5x
//! chacha20-poly1305 for both russh and OpenSSH on these machines, see
//! BENCHMARKS.md); without them, as under software emulation, it is the
//! slowest, and chacha20-poly1305 goes first. The default order is chosen
//! at run time from the CPU vmssh runs on ([`Cipher::preferred`]).

use std::fmt;

/// An SSH transport cipher vmssh can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cipher {
    /// `aes128-gcm@openssh.com`
    Aes128Gcm,
    /// `aes256-gcm@openssh.com`
    Aes256Gcm,
    /// `chacha20-poly1305@openssh.com`
    Chacha20Poly1305,
    /// `aes256-ctr` (with a separate MAC)
    Aes256Ctr,
    /// `aes192-ctr` (with a separate MAC)
    Aes192Ctr,
    /// `aes128-ctr` (with a separate MAC)
    Aes128Ctr,
    /// `aes256-cbc` (with a separate MAC; never offered by default, as by
    /// OpenSSH: for old appliances only)
    Aes256Cbc,
    /// `aes192-cbc` (as [`Aes256Cbc`](Self::Aes256Cbc))
    Aes192Cbc,
    /// `aes128-cbc` (as [`Aes256Cbc`](Self::Aes256Cbc))
    Aes128Cbc,
}

impl Cipher {
    /// Every cipher vmssh implements.
    pub const ALL: [Cipher; 9] = [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Chacha20Poly1305,
        Cipher::Aes256Ctr,
        Cipher::Aes192Ctr,
        Cipher::Aes128Ctr,
        Cipher::Aes256Cbc,
        Cipher::Aes192Cbc,
        Cipher::Aes128Cbc,
    ];

    /// The cipher of an SSH name, as OpenSSH's `Ciphers` takes it.
    pub fn from_name(name: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The SSH name of the cipher.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes128Gcm => "aes128-gcm@openssh.com",
            Cipher::Aes256Gcm => "aes256-gcm@openssh.com",
            Cipher::Chacha20Poly1305 => "chacha20-poly1305@openssh.com",
            Cipher::Aes256Ctr => "aes256-ctr",
            Cipher::Aes192Ctr => "aes192-ctr",
            Cipher::Aes128Ctr => "aes128-ctr",
            Cipher::Aes256Cbc => "aes256-cbc",
            Cipher::Aes192Cbc => "aes192-cbc",
            Cipher::Aes128Cbc => "aes128-cbc",
        }
    }

    /// The default order for this host: AES-GCM first when the CPU has
    /// AES instructions (checked at run time), else chacha20-poly1305
    /// first; the CTR modes last; no CBC mode (OpenSSH's defaults).
    pub fn preferred() -> Vec<Cipher> {
        use Cipher::*;
        if cpu_has_aes() {
            vec![
                Aes128Gcm,
                Aes256Gcm,
                Chacha20Poly1305,
                Aes256Ctr,
                Aes192Ctr,
                Aes128Ctr,
            ]
        } else {
            vec![
                Chacha20Poly1305,
                Aes128Gcm,
                Aes256Gcm,
                Aes256Ctr,
                Aes192Ctr,
                Aes128Ctr,
            ]
        }
    }

    pub(crate) fn russh(self) -> russh::cipher::Name {
        use russh::cipher;
        match self {
            Cipher::Aes128Gcm => cipher::AES_128_GCM,
            Cipher::Aes256Gcm => cipher::AES_256_GCM,
            Cipher::Chacha20Poly1305 => cipher::CHACHA20_POLY1305,
            Cipher::Aes256Ctr => cipher::AES_256_CTR,
            Cipher::Aes192Ctr => cipher::AES_192_CTR,
            Cipher::Aes128Ctr => cipher::AES_128_CTR,
            Cipher::Aes256Cbc => cipher::AES_256_CBC,
            Cipher::Aes192Cbc => cipher::AES_192_CBC,
            Cipher::Aes128Cbc => cipher::AES_128_CBC,
        }
    }
}

/// Its SSH name, so that [`SshConfig::ciphers`](crate::SshConfig::ciphers)
/// takes ciphers and names alike.
impl From<Cipher> for String {
    fn from(c: Cipher) -> String {
        c.name().to_string()
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether AES-GCM runs on hardware here: AES rounds and carry-less
/// multiplication (GHASH) both in instructions.
pub(crate) fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_order_follows_the_cpu() {
        let order = Cipher::preferred();
        let want = if cpu_has_aes() {
            Cipher::Aes128Gcm
        } else {
            Cipher::Chacha20Poly1305
        };
        assert_eq!(order[0], want);
        // Every cipher once.
        let mut names: Vec<_> = order.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), order.len());
    }

    #[test]
    fn names_are_the_wire_names() {
        assert_eq!(Cipher::Aes128Gcm.name(), "aes128-gcm@openssh.com");
        assert_eq!(
            Cipher::Chacha20Poly1305.to_string(),
            "chacha20-poly1305@openssh.com"
        );
        assert_eq!(Cipher::Aes128Ctr.name(), "aes128-ctr");
    }

    #[test]
    fn names_round_trip_and_russh_implements_them() {
        for c in Cipher::ALL {
            assert_eq!(Cipher::from_name(c.name()), Some(c));
            assert_eq!(c.russh().as_ref(), c.name());
            assert!(
                russh::cipher::ALL_CIPHERS
                    .iter()
                    .any(|n| n.as_ref() == c.name()),
                "{c}"
            );
        }
        assert_eq!(Cipher::from_name("none"), None);
        assert_eq!(Cipher::from_name("rot13"), None);
        assert!(
            Cipher::preferred()
                .iter()
                .all(|c| !c.name().ends_with("-cbc"))
        );
    }
}
