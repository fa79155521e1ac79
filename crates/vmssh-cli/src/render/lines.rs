//! Output chunks cut into lines per (host, step, stream), partial lines
//! kept until their end arrives; an overlong line is cut, so memory stays
//! bounded.

use std::collections::HashMap;

/// The longest line kept whole.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Lines {
    partial: HashMap<(String, usize, bool), Vec<u8>>,
}

impl Lines {
    /// Adds `data` and hands each completed line (without its `\n`) to
    /// `out`.
    pub(crate) fn push(
        &mut self,
        vm: &str,
        step: usize,
        err: bool,
        data: &[u8],
        mut out: impl FnMut(&[u8]),
    ) {
        let key = (vm.to_string(), step, err);
        let mut buf = self.partial.remove(&key).unwrap_or_default();
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(&rest[..pos]);
            out(&buf);
            buf.clear();
            rest = &rest[pos + 1..];
        }
        buf.extend_from_slice(rest);
        while buf.len() >= MAX_LINE {
            let tail = buf.split_off(MAX_LINE);
            out(&buf);
            buf = tail;
        }
        if !buf.is_empty() {
            self.partial.insert(key, buf);
        }
    }

    /// Hands the unfinished lines of a step that ended to `out`.
    pub(crate) fn flush(&mut self, vm: &str, step: usize, mut out: impl FnMut(bool, &[u8])) {
        for err in [false, true] {
            if let Some(buf) = self.partial.remove(&(vm.to_string(), step, err)) {
                out(err, &buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_join_and_flush() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        lines.push("a", 1, false, b"one\ntw", |l| got.push(l.to_vec()));
        lines.push("b", 1, false, b"other\n", |l| got.push(l.to_vec()));
        lines.push("a", 1, false, b"o\nthree", |l| got.push(l.to_vec()));
        lines.flush("a", 1, |_, l| got.push(l.to_vec()));
        assert_eq!(got, [&b"one"[..], b"other", b"two", b"three"]);
        let mut long = Vec::new();
        lines.push("a", 2, true, &vec![b'x'; MAX_LINE * 2 + 1], |l| {
            long.push(l.len())
        });
        assert_eq!(long, [MAX_LINE, MAX_LINE]);
    }
}
