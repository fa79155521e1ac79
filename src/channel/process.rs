//! The remote process of a command channel, and how it is stopped when the
//! server does not stop it.
//!
//! A command's line starts with [`ANNOUNCE`]: the remote shell prints its
//! PID, behind a marker byte, as the first line of stderr, and the lease
//! takes that line out before anyone reads stderr ([`PidReader`]), so the
//! command's own output is untouched. When an abandoned command outlives
//! the `signal` request (OpenSSH ignores it for root logins, tinysshd and
//! some others always), [`stop_line`] is run on a second channel: it
//! signals the command's process group (sshd and dropbear start each
//! command in a session of its own, led by that shell), then kills what
//! is left of it a second later.

use bytes::Bytes;

/// Prepended to a command's line: prints the shell's PID on stderr. POSIX
/// shell, as the login shells of the servers vmssh drives.
pub(crate) const ANNOUNCE: &str = "printf '\\036vmssh-pid %s\\n' \"$$\" >&2; ";

/// The first bytes of the line [`ANNOUNCE`] prints.
const MARKER: &[u8] = b"\x1evmssh-pid ";

/// The longest announcement line kept while waiting for its end.
const MAX_LINE: usize = 64;

/// Reads the announcement off the start of a command's stderr.
#[derive(Debug, Default)]
pub(crate) struct PidReader {
    /// Bytes of stderr held while they may still be the announcement.
    held: Vec<u8>,
    /// The announcement was read, or stderr turned out not to carry one.
    done: bool,
}

impl PidReader {
    /// Takes stderr bytes; returns the PID once the announcement is
    /// complete, and the bytes that are the command's own stderr.
    pub(crate) fn feed(&mut self, data: Bytes) -> (Option<u32>, Bytes) {
        if self.done {
            return (None, data);
        }
        self.held.extend_from_slice(&data);
        let prefix = self.held.len().min(MARKER.len());
        if self.held[..prefix] != MARKER[..prefix] {
            // Not an announcement (the shell failed before printing it):
            // all of it is the command's.
            return (None, self.flush());
        }
        let Some(end) = self.held.iter().position(|&b| b == b'\n') else {
            if self.held.len() > MAX_LINE {
                return (None, self.flush());
            }
            return (None, Bytes::new());
        };
        self.done = true;
        let pid = std::str::from_utf8(&self.held[MARKER.len().min(end)..end])
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let rest = Bytes::copy_from_slice(&self.held[end + 1..]);
        self.held = Vec::new();
        (pid, rest)
    }

    /// Gives back what is held (stderr ended before a whole announcement).
    pub(crate) fn flush(&mut self) -> Bytes {
        self.done = true;
        Bytes::from(std::mem::take(&mut self.held))
    }
}

/// A command that stops process `pid`'s group, or the process alone where
/// it leads none: SIGTERM, then SIGKILL to whatever is left after a
/// second. (`kill -SIG -PGID`, without `--`, which dash's `kill` refuses.)
pub(crate) fn stop_line(pid: u32) -> String {
    format!(
        "kill -TERM -{pid} 2>/dev/null || kill -TERM {pid} 2>/dev/null || exit 0; \
         for _ in 1 2 3 4 5 6 7 8 9 10; do \
         kill -0 -{pid} 2>/dev/null || kill -0 {pid} 2>/dev/null || exit 0; sleep 0.1; done; \
         kill -KILL -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; exit 0"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_is_taken_out_whole_or_in_pieces() {
        let mut r = PidReader::default();
        assert_eq!(
            r.feed(Bytes::from_static(b"\x1evmssh-p")),
            (None, Bytes::new())
        );
        assert_eq!(
            r.feed(Bytes::from_static(b"id 4242\nboom\n")),
            (Some(4242), Bytes::from_static(b"boom\n"))
        );
        assert_eq!(
            r.feed(Bytes::from_static(b"\x1evmssh-pid 1\n")),
            (None, Bytes::from_static(b"\x1evmssh-pid 1\n")),
            "only the first line is the announcement"
        );
    }

    #[test]
    fn stderr_without_an_announcement_is_kept() {
        let mut r = PidReader::default();
        assert_eq!(
            r.feed(Bytes::from_static(b"sh: 1: printf: not found\n")),
            (None, Bytes::from_static(b"sh: 1: printf: not found\n"))
        );
        let mut r = PidReader::default();
        assert_eq!(r.feed(Bytes::from_static(b"\x1evm")), (None, Bytes::new()));
        assert_eq!(r.flush(), Bytes::from_static(b"\x1evm"));
    }

    #[test]
    fn the_announcement_is_what_the_reader_reads() {
        // What `sh -c ANNOUNCE` prints for PID 77.
        let printed = ANNOUNCE
            .trim_start_matches("printf '")
            .split("' ")
            .next()
            .unwrap()
            .replace("\\036", "\x1e")
            .replace("%s", "77")
            .replace("\\n", "\n");
        let mut r = PidReader::default();
        assert_eq!(r.feed(Bytes::from(printed)), (Some(77), Bytes::new()));
    }
}
