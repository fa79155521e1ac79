//! `--shard K/N`: a stable partition of hosts by name.
//!
//! A host belongs to shard `fnv1a64(name) % N`. The hash is FNV-1a (64
//! bits) over the name's UTF-8 bytes: fixed by this file, the same on
//! every machine, release and run, so that N processes (a Kubernetes
//! Indexed Job, `xargs -P`) given the same inventory split it exactly:
//! every host in one shard, none in two.

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count`, `index` from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Whether the host called `name` is in this shard.
    pub(crate) fn contains(&self, name: &str) -> bool {
        fnv1a64(name.as_bytes()) % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("expected K/N with 0 <= K < N (K counts from 0), got {s:?}");
        let (k, n) = s.split_once('/').ok_or_else(usage)?;
        let index: u64 = k.trim().parse().map_err(|_| usage())?;
        let count: u64 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fnv1a() {
        // Reference values of FNV-1a 64: the partition must never change.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shards_partition_exactly_for_any_n() {
        let names: Vec<String> = (0..500)
            .map(|i| format!("vm-{i}"))
            .chain(["web".into(), "db".into(), "ü-ñ".into(), String::new()])
            .collect();
        for n in 1..=17u64 {
            let shards: Vec<Shard> = (0..n)
                .map(|k| format!("{k}/{n}").parse().unwrap())
                .collect();
            for name in &names {
                let holders = shards.iter().filter(|s| s.contains(name)).count();
                assert_eq!(holders, 1, "{name:?} with N = {n}");
            }
        }
        // Not all in one shard.
        let s0: Shard = "0/4".parse().unwrap();
        let in0 = names.iter().filter(|n| s0.contains(n)).count();
        assert!(in0 > 50 && in0 < 200, "{in0}");
    }

    #[test]
    fn bad_shards_are_refused() {
        for bad in ["", "1", "4/4", "1/0", "-1/3", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?}");
        }
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
    }
}
