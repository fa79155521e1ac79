//! [`LineSplitter`]: output chunks cut into lines.

use std::collections::HashMap;

use crate::exec::Chunk;

/// Cuts output chunks into lines, per VM, step and stream, keeping a
/// partial line until its end arrives. Memory stays bounded: a line longer
/// than [`MAX_LINE`](Self::MAX_LINE) bytes is handed on in pieces of that
/// size.
///
/// ```
/// use vmssh::Chunk;
/// use vmssh::provision::LineSplitter;
///
/// let mut lines = LineSplitter::new();
/// let mut got = Vec::new();
/// lines.push("vm1", 1, &Chunk::Stdout("one\ntw".into()), |l| got.push(l.to_vec()));
/// lines.push("vm1", 1, &Chunk::Stdout("o\nthree".into()), |l| got.push(l.to_vec()));
/// lines.flush("vm1", 1, |_stderr, l| got.push(l.to_vec()));
/// assert_eq!(got, [&b"one"[..], b"two", b"three"]);
/// ```
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// Partial lines by VM, then by (step, stderr).
    partial: HashMap<String, HashMap<(usize, bool), Vec<u8>>>,
}

impl LineSplitter {
    /// The longest line handed on whole.
    pub const MAX_LINE: usize = 64 * 1024;

    /// A splitter with no partial lines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk of `vm`'s step `step` and hands each line it completes
    /// (without its `\n`) to `out`.
    pub fn push(&mut self, vm: &str, step: usize, chunk: &Chunk, mut out: impl FnMut(&[u8])) {
        let key = (step, chunk.is_stderr());
        let mut rest = &chunk.bytes()[..];
        let mut buf = self
            .partial
            .get_mut(vm)
            .and_then(|steps| steps.remove(&key))
            .unwrap_or_default();
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            if buf.is_empty() {
                out(&rest[..pos]);
            } else {
                buf.extend_from_slice(&rest[..pos]);
                out(&buf);
                buf.clear();
            }
            rest = &rest[pos + 1..];
        }
        buf.extend_from_slice(rest);
        while buf.len() >= Self::MAX_LINE {
            let tail = buf.split_off(Self::MAX_LINE);
            out(&buf);
            buf = tail;
        }
        if buf.is_empty() {
            if let Some(steps) = self.partial.get_mut(vm)
                && steps.is_empty()
            {
                self.partial.remove(vm);
            }
        } else {
            self.partial
                .entry(vm.to_string())
                .or_default()
                .insert(key, buf);
        }
    }

    /// Hands the unfinished lines of `vm`'s step `step`, which ended, to
    /// `out` (stdout's first), with whether each came from stderr.
    pub fn flush(&mut self, vm: &str, step: usize, mut out: impl FnMut(bool, &[u8])) {
        let Some(steps) = self.partial.get_mut(vm) else {
            return;
        };
        for stderr in [false, true] {
            if let Some(buf) = steps.remove(&(step, stderr)) {
                out(stderr, &buf);
            }
        }
        if steps.is_empty() {
            self.partial.remove(vm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(c: &[u8]) -> Chunk {
        Chunk::Stdout(bytes::Bytes::copy_from_slice(c))
    }

    #[test]
    fn lines_are_kept_apart_per_vm_step_and_stream() {
        let mut lines = LineSplitter::new();
        let mut got = Vec::new();
        lines.push("a", 1, &out(b"one\ntw"), |l| got.push(l.to_vec()));
        lines.push("b", 1, &out(b"other\n"), |l| got.push(l.to_vec()));
        lines.push("a", 1, &Chunk::Stderr("err".into()), |l| {
            got.push(l.to_vec())
        });
        lines.push("a", 1, &out(b"o\nthree"), |l| got.push(l.to_vec()));
        let mut flushed = Vec::new();
        lines.flush("a", 1, |e, l| flushed.push((e, l.to_vec())));
        assert_eq!(got, [&b"one"[..], b"other", b"two"]);
        assert_eq!(
            flushed,
            [(false, b"three".to_vec()), (true, b"err".to_vec())]
        );
        assert!(lines.partial.is_empty());
    }

    #[test]
    fn an_overlong_line_goes_in_pieces() {
        let mut lines = LineSplitter::new();
        let mut long = Vec::new();
        lines.push(
            "a",
            2,
            &out(&vec![b'x'; LineSplitter::MAX_LINE * 2 + 1]),
            |l| long.push(l.len()),
        );
        assert_eq!(long, [LineSplitter::MAX_LINE, LineSplitter::MAX_LINE]);
        lines.flush("a", 2, |_, l| long.push(l.len()));
        assert_eq!(long.last(), Some(&1));
    }
}
