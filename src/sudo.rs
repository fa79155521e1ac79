//! `sudo` with a password ([`Command::sudo_password`](crate::Command::sudo_password)):
//! the command line that asks for it, and the [`Gate`] that reads sudo's
//! side of the conversation off the command's stderr.
//!
//! The command runs as `sudo -S -k -p PROMPT -- sh -c 'printf STARTED >&2;
//! COMMAND'`, where PROMPT and STARTED are markers carrying a random nonce.
//! Nothing is written to the channel's stdin until stderr says what sudo
//! does:
//!
//! - PROMPT: sudo reads a password from stdin; the password goes, one line
//!   (sudo reads it byte by byte, up to the newline, and no further);
//! - STARTED: the command runs (the password was right, or none was
//!   needed: `NOPASSWD`); only now do the environment lines and the
//!   command's own stdin go, so not a byte of the password can reach the
//!   command, and nothing of the command's stdin can reach sudo;
//! - PROMPT a second time: the password was wrong. End-of-file follows, on
//!   which sudo gives up (`-S` reads no other line) and exits; the stream
//!   ends with [`Error::SudoPasswordRejected`](crate::Error::SudoPasswordRejected).
//!
//! The markers are taken out of stderr; everything else sudo says (a
//! lecture, `Sorry, try again.`, `not in the sudoers file`) reaches the
//! caller as stderr. No message text is matched: sudo's are translated.
//!
//! `-k` ignores (and does not update) a cached sudo timestamp, so that a
//! wrong password is reported every time, whatever ran before on the
//! guest, and the guest's timestamp records are left alone. `-p` also
//! replaces the prompt of a PAM module (sudoers' `passprompt_override`
//! is on with `-p` unless sudoers turns it off explicitly).

use bytes::Bytes;

/// What the [`Gate`] saw sudo do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateEvent {
    /// sudo asked for the password (the first time).
    Prompted,
    /// The command started: stdin is the command's from now on.
    Started,
    /// sudo asked again: the password was wrong.
    Rejected,
}

/// The markers of one command, unique to it.
#[derive(Clone, Debug)]
pub(crate) struct Markers {
    nonce: String,
}

impl Markers {
    /// Fresh markers (a random nonce: earlier output cannot fake them).
    pub(crate) fn new() -> Self {
        Markers {
            nonce: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// sudo's prompt (printed without a newline; `%` would be an escape
    /// for sudo, and there is none).
    fn prompt(&self) -> String {
        format!("[vmssh-sudo-prompt {}]", self.nonce)
    }

    /// What the command prints on stderr before it runs.
    fn started(&self) -> String {
        format!("\x1evmssh-sudo-started {}\n", self.nonce)
    }

    /// The `sudo` line running `inner` (a shell command line) as root,
    /// the password read from stdin.
    pub(crate) fn line(&self, inner: &str) -> String {
        let started = format!(
            "printf '\\036vmssh-sudo-started %s\\n' {} >&2; ",
            self.nonce
        );
        format!(
            "sudo -S -k -p {} -- sh -c {}",
            crate::quote::shell_quote(&self.prompt()),
            crate::quote::shell_quote(&format!("{started}{inner}"))
        )
    }
}

/// Reads stderr until the command started (or sudo gave up), taking the
/// markers out. Holds at most a marker's length of bytes.
#[derive(Debug)]
pub(crate) struct Gate {
    prompt: Vec<u8>,
    started: Vec<u8>,
    /// Bytes that may be the start of a marker.
    held: Vec<u8>,
    prompts: u8,
}

impl Gate {
    pub(crate) fn new(markers: &Markers) -> Self {
        Gate {
            prompt: markers.prompt().into_bytes(),
            started: markers.started().into_bytes(),
            held: Vec::new(),
            prompts: 0,
        }
    }

    /// Takes stderr bytes; returns what is the caller's (everything but
    /// the markers and a possible marker's start, held for the next call)
    /// and what sudo did. After [`GateEvent::Started`] or
    /// [`GateEvent::Rejected`] the gate is done: what follows in `data`
    /// is returned, and the caller passes later stderr on untouched.
    pub(crate) fn feed(&mut self, data: &[u8]) -> (Bytes, Vec<GateEvent>) {
        self.held.extend_from_slice(data);
        let mut out = Vec::new();
        let mut events = Vec::new();
        loop {
            let prompt = find(&self.held, &self.prompt);
            let started = find(&self.held, &self.started);
            let (at, len, event) = match (prompt, started) {
                (Some(p), Some(s)) if s < p => (s, self.started.len(), GateEvent::Started),
                (Some(p), _) => {
                    self.prompts += 1;
                    let event = match self.prompts {
                        1 => GateEvent::Prompted,
                        _ => GateEvent::Rejected,
                    };
                    (p, self.prompt.len(), event)
                }
                (None, Some(s)) => (s, self.started.len(), GateEvent::Started),
                (None, None) => break,
            };
            out.extend_from_slice(&self.held[..at]);
            self.held.drain(..at + len);
            events.push(event);
            if event != GateEvent::Prompted {
                out.append(&mut self.held);
                return (Bytes::from(out), events);
            }
        }
        // Keep the longest tail that may begin a marker.
        let keep = (1..=self.held.len())
            .rev()
            .find(|&n| {
                let tail = &self.held[self.held.len() - n..];
                self.prompt.starts_with(tail) || self.started.starts_with(tail)
            })
            .unwrap_or(0);
        out.extend(self.held.drain(..self.held.len() - keep));
        (Bytes::from(out), events)
    }

    /// What is held (stderr ended without completing a marker).
    pub(crate) fn flush(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> (Markers, Gate) {
        let m = Markers::new();
        let g = Gate::new(&m);
        (m, g)
    }

    #[test]
    fn a_right_password_prompt_then_start() {
        let (m, mut g) = gate();
        let (out, ev) = g.feed(m.prompt().as_bytes());
        assert_eq!((&out[..], &ev[..]), (&b""[..], &[GateEvent::Prompted][..]));
        let (out, ev) = g.feed(format!("{}own stderr", m.started()).as_bytes());
        assert_eq!(
            (&out[..], &ev[..]),
            (&b"own stderr"[..], &[GateEvent::Started][..])
        );
    }

    #[test]
    fn markers_split_anywhere_are_found_and_other_text_kept() {
        let (m, _) = gate();
        let all = format!("lecture\n{}Sorry, try again.\n{}", m.prompt(), m.prompt());
        for cut in 0..all.len() {
            let mut g = Gate::new(&m);
            let (a, mut ev) = g.feed(&all.as_bytes()[..cut]);
            let (b, ev2) = g.feed(&all.as_bytes()[cut..]);
            ev.extend(ev2);
            let text = [&a[..], &b[..], &g.flush()[..]].concat();
            assert_eq!(text, b"lecture\nSorry, try again.\n", "cut {cut}");
            assert_eq!(ev, [GateEvent::Prompted, GateEvent::Rejected], "cut {cut}");
        }
    }

    #[test]
    fn nopasswd_starts_without_a_prompt() {
        let (m, mut g) = gate();
        let (out, ev) = g.feed(format!("x{}y", m.started()).as_bytes());
        assert_eq!((&out[..], &ev[..]), (&b"xy"[..], &[GateEvent::Started][..]));
    }

    #[test]
    fn a_partial_marker_at_the_end_is_given_back() {
        let (m, mut g) = gate();
        let (out, ev) = g.feed(b"sudo: not found\n[vmssh-sudo");
        assert_eq!(&out[..], b"sudo: not found\n");
        assert!(ev.is_empty());
        assert_eq!(&g.flush()[..], b"[vmssh-sudo");
        let _ = m;
    }

    #[test]
    fn the_line_quotes_the_command_and_carries_no_secret() {
        let m = Markers::new();
        let line = m.line("echo 'a b'");
        assert!(
            line.starts_with("sudo -S -k -p '[vmssh-sudo-prompt "),
            "{line}"
        );
        assert!(line.ends_with("echo '\\''a b'\\'''"), "{line}");
    }
}
