//! The last lines of a step's stdout and stderr, kept for its error.

/// Keeps the last lines of one stream, bounded in bytes.
pub(crate) struct Tail {
    buf: std::collections::VecDeque<u8>,
    lines: usize,
}

impl Tail {
    const MAX_BYTES: usize = 8 * 1024;

    pub(crate) fn new(lines: usize) -> Self {
        Tail {
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

/// The tails of a step's two streams, as a failure carries them.
#[derive(Debug, Default)]
pub(crate) struct Tails {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        let mut t = Tail::new(2);
        t.push(b"one\ntwo\nthr");
        t.push(b"ee\n");
        assert_eq!(t.text(), "two\nthree");
        let mut big = Tail::new(3);
        big.push(&vec![b'x'; 100_000]);
        assert!(big.text().len() <= Tail::MAX_BYTES);
    }
}
