//! Rolling batches: a fleet run in waves, as Ansible's `serial` runs a
//! play.

use std::fmt;
use std::str::FromStr;

/// The size of one wave of a rolling run ([`Fleet::batches`](super::Fleet::batches)):
/// a number of VMs or a percentage of all the run's VMs.
///
/// Given a list, the first batch takes the first size, the second batch
/// the second, and the last size repeats until every VM has had its
/// batch, as Ansible's `serial: [1, 5, "20%"]` does: 1 VM, then 5, then
/// 20 % of the VMs at a time.
///
/// # Example
///
/// ```
/// use vmssh::fleet::Batch;
///
/// let canary: Vec<Batch> = "1,5,20%".split(',').map(str::parse).collect::<Result<_, _>>()?;
/// assert_eq!(canary, [Batch::count(1), Batch::count(5), Batch::percent(20)]);
/// assert_eq!(Batch::sizes(&canary, 30), [1, 5, 6, 6, 6, 6]);
/// # Ok::<_, vmssh::fleet::BatchParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Batch(Size);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Size {
    Count(usize),
    Percent(u8),
}

impl Batch {
    /// `n` VMs; 0 is every VM not yet run (Ansible's `serial: 0`).
    pub fn count(n: usize) -> Batch {
        Batch(Size::Count(n))
    }

    /// `pct` percent of the run's VMs (all of them, not of those left),
    /// rounded down but at least 1, as Ansible counts; above 100 is 100.
    pub fn percent(pct: u8) -> Batch {
        Batch(Size::Percent(pct.min(100)))
    }

    /// How many VMs this batch takes in a run of `total`.
    fn take(self, total: usize, left: usize) -> usize {
        match self.0 {
            Size::Count(0) => left,
            Size::Count(n) => n,
            Size::Percent(p) => (total * usize::from(p) / 100).max(1),
        }
    }

    /// The sizes of the batches of a run of `total` VMs: what
    /// [`Fleet::batches`](super::Fleet::batches) runs, one after the
    /// other. No batches at all is one batch of every VM.
    pub fn sizes(batches: &[Batch], total: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = total;
        let mut i = 0;
        while left > 0 {
            let size = match batches.get(i.min(batches.len().saturating_sub(1))) {
                Some(b) => b.take(total, left).min(left),
                None => left,
            };
            sizes.push(size);
            left -= size;
            i += 1;
        }
        sizes
    }
}

impl fmt::Display for Batch {
    /// `5` or `20%`, as [`FromStr`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Size::Count(n) => write!(f, "{n}"),
            Size::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A batch size that is neither a number nor a percentage from 0 to 100.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid batch size {input:?}: expected a number of hosts (5) or a percentage (20%)")]
pub struct BatchParseError {
    input: String,
}

impl FromStr for Batch {
    type Err = BatchParseError;

    /// `5` (VMs) or `20%` (of the VMs), spaces around ignored.
    fn from_str(s: &str) -> Result<Batch, BatchParseError> {
        let t = s.trim();
        let err = || BatchParseError {
            input: s.to_string(),
        };
        match t.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Batch::percent(p)),
                _ => Err(err()),
            },
            None => t.parse::<usize>().map(Batch::count).map_err(|_| err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_ansible_serial() {
        let c = Batch::count;
        let p = Batch::percent;
        assert_eq!(Batch::sizes(&[], 5), [5]);
        assert_eq!(Batch::sizes(&[], 0), Vec::<usize>::new());
        assert_eq!(Batch::sizes(&[c(2)], 5), [2, 2, 1]);
        assert_eq!(Batch::sizes(&[c(1), c(5), p(20)], 30), [1, 5, 6, 6, 6, 6]);
        assert_eq!(Batch::sizes(&[c(1), c(5), p(20)], 3), [1, 2]);
        // Rounded down, at least one.
        assert_eq!(Batch::sizes(&[p(30)], 5), [1, 1, 1, 1, 1]);
        assert_eq!(Batch::sizes(&[p(50)], 5), [2, 2, 1]);
        assert_eq!(Batch::sizes(&[p(100)], 5), [5]);
        assert_eq!(Batch::sizes(&[p(0)], 2), [1, 1]);
        // 0: all that are left.
        assert_eq!(Batch::sizes(&[c(1), c(0)], 5), [1, 4]);
        assert_eq!(Batch::sizes(&[c(10)], 3), [3]);
    }

    #[test]
    fn parse_and_display() {
        for (s, b) in [
            ("5", Batch::count(5)),
            (" 20% ", Batch::percent(20)),
            ("0", Batch::count(0)),
            ("100%", Batch::percent(100)),
        ] {
            assert_eq!(s.parse::<Batch>(), Ok(b), "{s}");
            assert_eq!(b.to_string().parse::<Batch>(), Ok(b));
        }
        for bad in ["", "x", "-1", "101%", "5%%", "%", "1.5"] {
            let e = bad.parse::<Batch>().unwrap_err();
            assert!(e.to_string().contains("invalid batch size"), "{bad}: {e}");
        }
    }
}
