//! The sinks the crate ships: a terminal, `provision.log` (live, or in
//! vmctl's layout), `tracing`, a bounded channel.

use std::sync::Arc;

mod channel;
mod log;
mod terminal;
mod tracing;
mod visible;
mod vmctl_log;

pub use self::channel::ChannelSink;
pub use self::log::LogFileSink;
pub use self::terminal::TerminalSink;
pub use self::tracing::TracingSink;
pub use self::visible::visible;
pub(crate) use self::vmctl_log::VmctlLabel;
pub use self::vmctl_log::VmctlLogSink;

/// Splits byte chunks into lines, per (vm, step, stream), keeping partial
/// lines until their end arrives (bounded: an overlong line is flushed in
/// pieces).
#[derive(Default)]
pub(crate) struct LineBuffers {
    partial: std::collections::HashMap<(Arc<str>, usize, bool), Vec<u8>>,
}

const MAX_LINE: usize = 64 * 1024;

impl LineBuffers {
    pub(crate) fn push(
        &mut self,
        key: (Arc<str>, usize, bool),
        data: &[u8],
        mut out: impl FnMut(&[u8]),
    ) {
        let buf = self.partial.entry(key.clone()).or_default();
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            if buf.is_empty() {
                out(&rest[..pos]);
            } else {
                buf.extend_from_slice(&rest[..pos]);
                out(buf);
                buf.clear();
            }
            rest = &rest[pos + 1..];
        }
        buf.extend_from_slice(rest);
        if buf.len() >= MAX_LINE {
            out(buf);
            buf.clear();
        }
        if buf.is_empty() {
            self.partial.remove(&key);
        }
    }

    pub(crate) fn flush(&mut self, vm: &str, step: usize, mut out: impl FnMut(bool, &[u8])) {
        let keys: Vec<_> = self
            .partial
            .keys()
            .filter(|(v, s, _)| &**v == vm && *s == step)
            .cloned()
            .collect();
        for k in keys {
            if let Some(buf) = self.partial.remove(&k) {
                out(k.2, &buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffers_split_and_flush() {
        let mut lb = LineBuffers::default();
        let key: (Arc<str>, usize, bool) = (Arc::from("vm"), 1, false);
        let mut got = Vec::new();
        lb.push(key.clone(), b"a\nb", |l| got.push(l.to_vec()));
        lb.push(key.clone(), b"c\n", |l| got.push(l.to_vec()));
        lb.push(key, b"tail", |l| got.push(l.to_vec()));
        lb.flush("vm", 1, |_, l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"tail".to_vec()]);
    }
}
