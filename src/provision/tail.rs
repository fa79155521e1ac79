//! The last lines of a step's stderr, kept for its error.

/// Keeps the last lines of stderr, bounded in bytes.
pub(crate) struct StderrTail {
    buf: std::collections::VecDeque<u8>,
    lines: usize,
}

impl StderrTail {
    const MAX_BYTES: usize = 8 * 1024;

    pub(crate) fn new(lines: usize) -> Self {
        StderrTail {
            buf: std::collections::VecDeque::new(),
            lines,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        let data = if data.len() > Self::MAX_BYTES {
            &data[data.len() - Self::MAX_BYTES..]
        } else {
            data
        };
        self.buf.extend(data.iter().copied());
        while self.buf.len() > Self::MAX_BYTES {
            self.buf.pop_front();
        }
    }

    pub(crate) fn text(&self) -> String {
        let bytes: Vec<u8> = self.buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let trimmed = text.trim_end_matches('\n');
        let lines: Vec<&str> = trimmed.lines().collect();
        let start = lines.len().saturating_sub(self.lines);
        lines[start..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_last_lines() {
        let mut t = StderrTail::new(2);
        t.push(b"one\ntwo\nthr");
        t.push(b"ee\n");
        assert_eq!(t.text(), "two\nthree");
        let mut big = StderrTail::new(3);
        big.push(&vec![b'x'; 100_000]);
        assert!(big.text().len() <= StderrTail::MAX_BYTES);
    }
}
