//! Guest text made safe for the operator's terminal: control characters
//! shown as `cat -v` shows them, colours (SGR sequences) kept on request.
//!
//! A guest controls every byte of its output. Passed raw, an escape
//! sequence can move the cursor over earlier lines, retitle the window,
//! set the clipboard (OSC 52) or answer back through the terminal; only
//! Select Graphic Rendition (`ESC [ digits ; ... m`) is harmless.

/// Appends `text` to `out` with every control character visible: C0
/// controls as `^X` (`ESC` is `^[`), `DEL` as `^?`, C1 controls (8-bit, or
/// UTF-8 encoded) as `M-^X`, tab kept. With `keep_sgr`, SGR sequences are
/// kept as they are; without it they are left out. Returns whether an SGR
/// sequence was kept (the caller then resets the colours at the line's
/// end).
pub(crate) fn push_visible(text: &[u8], keep_sgr: bool, out: &mut Vec<u8>) -> bool {
    let mut kept = false;
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        if b == 0x1b
            && let Some(len) = sgr_len(rest)
        {
            if keep_sgr {
                out.extend_from_slice(&rest[..len]);
                kept = true;
            }
            rest = &rest[len..];
            continue;
        }
        match b {
            b'\t' => out.push(b),
            0x00..=0x1f => out.extend_from_slice(&[b'^', b + 0x40]),
            0x7f => out.extend_from_slice(b"^?"),
            0x80..=0xff => {
                let (char_len, c1) = utf8_char(rest);
                match c1 {
                    Some(c) => out.extend_from_slice(&[b'M', b'-', b'^', c + 0x40]),
                    None => out.extend_from_slice(&rest[..char_len]),
                }
                rest = &rest[char_len..];
                continue;
            }
            _ => out.push(b),
        }
        rest = tail;
    }
    kept
}

/// The length of the SGR sequence `text` starts with (`ESC [`, parameters
/// of digits, `;` and `:`, then `m`), if it starts with one.
fn sgr_len(text: &[u8]) -> Option<usize> {
    let params = text.strip_prefix(b"\x1b[")?;
    let n = params
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';' || **b == b':')
        .count();
    (params.get(n) == Some(&b'm')).then_some(2 + n + 1)
}

/// For `text` starting with a byte >= 0x80: the length of the UTF-8
/// character it starts with (1 for a byte that starts none), and the C1
/// control (0x80..=0x9f) it stands for, if it is one: a raw 8-bit byte in
/// that range, or its two-byte UTF-8 encoding.
fn utf8_char(text: &[u8]) -> (usize, Option<u8>) {
    let b = text[0];
    if (0x80..=0x9f).contains(&b) {
        return (1, Some(b - 0x80));
    }
    let len = match b {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (1, None),
    };
    match text.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) => {
            let c = s.chars().next().map_or(0, u32::from);
            match u8::try_from(c) {
                Ok(c) if (0x80..=0x9f).contains(&c) => (len, Some(c - 0x80)),
                _ => (len, None),
            }
        }
        // Not valid UTF-8: the byte alone, which terminals show as a
        // replacement character.
        _ => (1, None),
    }
}

/// Guest output made safe to print on the operator's terminal, for
/// renderers of their own (a command line's live view, output grouped per
/// host): line breaks kept and a carriage return before each dropped;
/// every other control character or escape sequence shown as `cat -v`
/// shows it (`ESC` as `^[`); colours (SGR sequences) kept when
/// `keep_colours`, and then reset at the end of every line that set one,
/// else left out. [`TerminalSink`](super::TerminalSink) shows output the
/// same way.
///
/// ```
/// let shown = vmssh::provision::visible(b"\x1b[31mred\x1b[0m \x1b]52;c;owned\x07\r\n", false);
/// assert_eq!(shown, "red ^[]52;c;owned^G\n");
/// ```
pub fn visible(text: &[u8], keep_colours: bool) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if push_visible(line, keep_colours, &mut out) {
            out.extend_from_slice(b"\x1b[0m");
        }
        if lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(text: &[u8], keep_sgr: bool) -> (String, bool) {
        let mut out = Vec::new();
        let kept = push_visible(text, keep_sgr, &mut out);
        (String::from_utf8(out).unwrap(), kept)
    }

    #[test]
    fn colours_are_kept() {
        let text = b"\x1b[1;31merror\x1b[0m: \x1b[38;5;208mx\x1b[m";
        assert_eq!(
            visible(text, true),
            (String::from_utf8(text.to_vec()).unwrap(), true)
        );
        assert_eq!(visible(text, false), ("error: x".to_string(), false));
    }

    #[test]
    fn every_other_control_is_visible() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x1b[2J\x1b[H", "^[[2J^[[H"),               // clear screen, home
            (b"\x1b]0;pwned\x07", "^[]0;pwned^G"),         // window title
            (b"\x1b]52;c;aGk=\x1b\\", "^[]52;c;aGk=^[\\"), // clipboard
            (b"\x1b[6n", "^[[6n"),                         // cursor report
            (b"\x1b[31", "^[[31"),                         // cut SGR
            (b"a\rb\x08c\x7f", "a^Mb^Hc^?"),
            (b"\x00\x1f", "^@^_"),
            (b"\x9b2J", "M-^[2J"),             // 8-bit CSI
            ("\u{9b}2J".as_bytes(), "M-^[2J"), // CSI as UTF-8
            (b"\x90q\x9c", "M-^PqM-^\\"),      // DCS ... ST
        ];
        for (text, want) in cases {
            assert_eq!(visible(text, true), (want.to_string(), false), "{text:?}");
        }
    }

    #[test]
    fn text_and_tabs_pass() {
        let text = "naïve\tcafé ✓ 日本 🎉".as_bytes();
        assert_eq!(
            visible(text, true).0,
            String::from_utf8(text.to_vec()).unwrap()
        );
        // Invalid UTF-8 passes byte by byte (shown as replacement
        // characters by the terminal), without swallowing what follows.
        let mut out = Vec::new();
        push_visible(b"\xe2\x28\x1b[K", true, &mut out);
        assert_eq!(out, b"\xe2(^[[K");
    }

    #[test]
    fn whole_text_keeps_its_lines() {
        assert_eq!(super::visible(b"a\r\nb\x1b[2Jc\n", false), "a\nb^[[2Jc\n");
        assert_eq!(
            super::visible(b"\x1b[32mok\nplain", true),
            "\x1b[32mok\x1b[0m\nplain"
        );
        assert_eq!(super::visible(b"", true), "");
    }
}
