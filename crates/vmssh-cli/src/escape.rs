//! OpenSSH's escape sequences on what the user types into `vmssh shell`:
//! `~` at the start of a line (after Enter, or first) begins one; `~.`
//! disconnects, `~~` sends one `~`, `~?` lists them; `~` followed by
//! anything else is sent as typed.

/// What the typed bytes asked for, besides the bytes to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing: send the bytes.
    None,
    /// `~.`: disconnect (what came before it is sent first).
    Disconnect,
    /// `~?`: show [`HELP`].
    Help,
}

/// The list `~?` shows, with terminal line endings (the terminal is raw).
pub(crate) const HELP: &str = "\r\nSupported escape sequences:\r\n \
    ~.   - terminate connection\r\n \
    ~?   - this message\r\n \
    ~~   - send the escape character by typing it twice\r\n\
    (Note that escapes are only recognized immediately after newline.)\r\n";

/// The escape state between reads.
#[derive(Debug)]
pub(crate) struct Escapes {
    /// The last byte ended a line (or nothing was typed yet).
    at_line_start: bool,
    /// A `~` at the start of a line was held back.
    pending: bool,
}

impl Default for Escapes {
    fn default() -> Self {
        Escapes {
            at_line_start: true,
            pending: false,
        }
    }
}

impl Escapes {
    /// Filters `input` into `out` (the bytes to send), stopping at the
    /// first sequence that asks for more than sending; the bytes after
    /// it are returned for the next call.
    pub(crate) fn feed<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> (Action, &'a [u8]) {
        for (i, &b) in input.iter().enumerate() {
            if self.pending {
                self.pending = false;
                match b {
                    b'.' => return (Action::Disconnect, &input[i + 1..]),
                    b'?' => {
                        self.at_line_start = false;
                        return (Action::Help, &input[i + 1..]);
                    }
                    b'~' => {
                        out.push(b'~');
                        self.at_line_start = false;
                        continue;
                    }
                    _ => out.push(b'~'),
                }
            } else if self.at_line_start && b == b'~' {
                self.pending = true;
                self.at_line_start = false;
                continue;
            }
            out.push(b);
            self.at_line_start = b == b'\r' || b == b'\n';
        }
        (Action::None, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Vec<Action>) {
        let mut e = Escapes::default();
        let (mut out, mut actions) = (Vec::new(), Vec::new());
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            loop {
                let (action, after) = e.feed(rest, &mut out);
                if action != Action::None {
                    actions.push(action);
                }
                if after.is_empty() {
                    break;
                }
                rest = after;
            }
        }
        (out, actions)
    }

    #[test]
    fn tilde_dot_at_a_line_start_disconnects() {
        assert_eq!(run(&[b"~."]), (vec![], vec![Action::Disconnect]));
        assert_eq!(
            run(&[b"ls\r~."]),
            (b"ls\r".to_vec(), vec![Action::Disconnect])
        );
        // Split across reads.
        assert_eq!(
            run(&[b"ls\n", b"~", b"."]),
            (b"ls\n".to_vec(), vec![Action::Disconnect])
        );
    }

    #[test]
    fn elsewhere_a_tilde_is_a_tilde() {
        assert_eq!(run(&[b"cd ~.\r"]), (b"cd ~.\r".to_vec(), vec![]));
        assert_eq!(run(&[b"~~."]), (b"~.".to_vec(), vec![]));
        assert_eq!(run(&[b"~x"]), (b"~x".to_vec(), vec![]));
        assert_eq!(run(&[b"\r~/bin\r"]), (b"\r~/bin\r".to_vec(), vec![]));
    }

    #[test]
    fn tilde_question_mark_asks_for_help_and_the_rest_follows() {
        assert_eq!(run(&[b"~?ls"]), (b"ls".to_vec(), vec![Action::Help]));
        // After the help, not at a line start: ~. is typed.
        assert_eq!(run(&[b"~?~."]), (b"~.".to_vec(), vec![Action::Help]));
    }
}
