//! [`Warning`]: what a plan means that vmctl reads differently, or would
//! refuse; "did you mean" hints for misspelt names.

use std::fmt;

/// Something in the plan that vmctl and vmssh read differently from what
/// it looks like, or that vmctl would not accept. Displays as
/// `FILE:LINE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) kind: WarningKind,
    pub(super) message: String,
}

/// What a [`Warning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// Ignored, by vmctl and by vmssh alike: an unknown node, a repeated
    /// field, an extra argument, a value of the wrong type.
    Ignored,
    /// A vmssh extension: vmssh uses it, vmctl ignores it.
    Extension,
    /// vmctl would refuse the file or the VM (no image, a provisioned VM
    /// without an `ssh` block, ...); vmssh does not need what is missing.
    VmctlRefuses,
}

impl Warning {
    /// The plan's file name, as given to [`Plan::load`](super::Plan::load) or
    /// [`Plan::parse`](super::Plan::parse).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What kind of warning this is.
    pub fn kind(&self) -> WarningKind {
        self.kind
    }

    /// The message, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The known name `found` is probably a misspelling of, if any.
pub(super) fn suggest<'k>(found: &str, known: &[&'k str]) -> Option<&'k str> {
    let found_len = found.chars().count();
    known
        .iter()
        .map(|k| (edit_distance(found, k), *k))
        .filter(|(d, k)| {
            // Short names need a closer match to be a plausible typo.
            let limit = if k.len() <= 4 || found_len <= 3 { 1 } else { 2 };
            *d > 0 && *d <= limit
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, for "did you mean" hints on short node names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("provison", "provision"), 1);
        assert_eq!(edit_distance("provisoin", "provision"), 2);
        assert_eq!(edit_distance("ssh", "ssh"), 0);
        assert_eq!(edit_distance("", "ssh"), 3);
        assert!(edit_distance("memory", "provision") > 2);
    }
}
