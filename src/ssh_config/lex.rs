//! The text of an ssh_config file: lines into keyword and arguments,
//! OpenSSH's quoting, host patterns and file globs.

use std::path::{Path, PathBuf};

/// One configuration line, split as OpenSSH splits it.
#[derive(Debug, PartialEq)]
pub(super) struct Line<'a> {
    /// The keyword, lowercased.
    pub(super) keyword: String,
    /// Everything after the keyword and its separator, as written
    /// (`ProxyCommand` and `ProxyJump` take it raw).
    pub(super) rest: &'a str,
    /// The arguments, unquoted, up to a `#` that starts an argument.
    pub(super) args: Vec<String>,
}

/// Why a line could not be split.
#[derive(Debug, PartialEq)]
pub(super) enum LineError {
    /// A keyword with nothing after it.
    NoArgument(String),
    /// An opening quote without its closing quote.
    UnbalancedQuotes,
}

/// Splits a line into keyword and arguments; `Ok(None)` for blank and
/// comment lines. Follows OpenSSH's `readconf.c`: the keyword ends at
/// whitespace or a single `=`, arguments are split like `argv_split`.
pub(super) fn split_line(line: &str) -> Result<Option<Line<'_>>, LineError> {
    let line = line.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
    let s = line.trim_start_matches([' ', '\t']);
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let end = s.find([' ', '\t', '=']).unwrap_or(s.len());
    let keyword = s[..end].to_ascii_lowercase();
    let mut rest = s[end..].trim_start_matches([' ', '\t']);
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start_matches([' ', '\t']);
    }
    if rest.is_empty() {
        return Err(LineError::NoArgument(keyword));
    }
    let args = split_args(rest)?;
    Ok(Some(Line {
        keyword,
        rest,
        args,
    }))
}

/// OpenSSH's `argv_split` with comments ending the line: whitespace
/// separates arguments, single or double quotes group, a backslash escapes
/// a quote, a backslash or (outside quotes) a space.
pub(super) fn split_args(s: &str) -> Result<Vec<String>, LineError> {
    let chars: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\t' {
            i += 1;
            continue;
        }
        if c == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if c == '\\' {
                match next {
                    Some(n @ ('\'' | '"' | '\\')) => {
                        arg.push(n);
                        i += 1;
                    }
                    Some(' ') if quote.is_none() => {
                        arg.push(' ');
                        i += 1;
                    }
                    _ => arg.push('\\'),
                }
            } else if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if quote == Some(c) {
                quote = None;
            } else {
                arg.push(c);
            }
            i += 1;
        }
        if quote.is_some() {
            return Err(LineError::UnbalancedQuotes);
        }
        args.push(arg);
    }
    Ok(args)
}

/// OpenSSH's `match_pattern`: `*` and `?` wildcards, case-sensitive.
pub(super) fn match_pattern(s: &str, pattern: &str) -> bool {
    fn rec(s: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| rec(&s[i..], rest)),
            Some(('?', rest)) => !s.is_empty() && rec(&s[1..], rest),
            Some((c, rest)) => s.first() == Some(c) && rec(&s[1..], rest),
        }
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    rec(&s, &p)
}

/// OpenSSH's `match_pattern_list`: a comma-separated list of patterns, each
/// possibly negated with `!`. Some(true) when a positive pattern matches and
/// no negated one does, Some(false) when a negated one matches, None when
/// nothing matches.
pub(super) fn match_pattern_list(s: &str, list: &str, lowercase: bool) -> Option<bool> {
    let s = if lowercase {
        s.to_ascii_lowercase()
    } else {
        s.to_string()
    };
    let mut got_positive = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let pattern = if lowercase {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_string()
        };
        if match_pattern(&s, &pattern) {
            if negated {
                return Some(false);
            }
            got_positive = true;
        }
    }
    got_positive.then_some(true)
}

/// glob(3) for `Include`: `*`, `?` and `[...]` in any path component, no
/// match for a leading `.` unless the pattern has one, results sorted.
pub(super) fn glob(pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let mut found = vec![PathBuf::new()];
    for comp in path.components() {
        let part = comp.as_os_str().to_string_lossy();
        if !has_magic(&part) {
            for p in &mut found {
                p.push(comp.as_os_str());
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let read = if dir.as_os_str().is_empty() {
                std::fs::read_dir(".")
            } else {
                std::fs::read_dir(dir)
            };
            let Ok(entries) = read else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| fnmatch(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    Ok(found.into_iter().filter(|p| p.exists()).collect())
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// fnmatch(3) for one path component.
fn fnmatch(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed incl. ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn rec(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| rec(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && rec(rest, &s[1..]),
            Some(('[', rest)) => match (s.first(), class(rest, s.first().copied().unwrap_or('\0')))
            {
                (Some(_), Some((true, n))) => rec(&rest[n..], &s[1..]),
                (Some(_), Some((false, _))) => false,
                // An unclosed '[' is an ordinary character.
                (first, None) => first == Some(&'[') && rec(rest, &s[1..]),
                (None, _) => false,
            },
            Some((c, rest)) => s.first() == Some(c) && rec(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    rec(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        split_line(line).unwrap().unwrap().args
    }

    #[test]
    fn keyword_and_separator() {
        let l = split_line("  Port=33").unwrap().unwrap();
        assert_eq!((l.keyword.as_str(), l.rest), ("port", "33"));
        let l = split_line("User = \"my user\"").unwrap().unwrap();
        assert_eq!(l.args, ["my user"]);
        let l = split_line("ProxyCommand nc %h %p  # not a comment here")
            .unwrap()
            .unwrap();
        assert_eq!(l.rest, "nc %h %p  # not a comment here");
        assert_eq!(l.args, ["nc", "%h", "%p"]);
        assert_eq!(split_line("   # comment").unwrap(), None);
        assert_eq!(split_line("").unwrap(), None);
        assert_eq!(
            split_line("Port").unwrap_err(),
            LineError::NoArgument("port".into())
        );
    }

    #[test]
    fn quoting_like_argv_split() {
        assert_eq!(args("X a\"b c\"d e"), ["ab cd", "e"]);
        assert_eq!(args("X 'a b' \\\"q"), ["a b", "\"q"]);
        assert_eq!(args("X a\\ b c\\d"), ["a b", "c\\d"]);
        assert_eq!(args("X a #b c"), ["a"]);
        assert_eq!(args("X a#b"), ["a#b"]);
        assert_eq!(
            split_line("X \"open").unwrap_err(),
            LineError::UnbalancedQuotes
        );
    }

    #[test]
    fn patterns() {
        assert!(match_pattern("web1", "web*"));
        assert!(match_pattern("web1", "we?1"));
        assert!(!match_pattern("Web1", "web*"));
        assert!(match_pattern("", "*"));
        assert_eq!(
            match_pattern_list("a.example", "*.example,!b*", false),
            Some(true)
        );
        assert_eq!(
            match_pattern_list("b.example", "*.example,!b*", false),
            Some(false)
        );
        assert_eq!(match_pattern_list("c", "a,b", false), None);
        assert_eq!(match_pattern_list("HOST", "host", true), Some(true));
    }

    #[test]
    fn fnmatch_classes() {
        assert!(fnmatch("*.conf", "a.conf"));
        assert!(!fnmatch("*", ".hidden"));
        assert!(fnmatch("[ab]x", "bx"));
        assert!(fnmatch("[!a]x", "bx"));
        assert!(!fnmatch("[!a]x", "ax"));
        assert!(fnmatch("[0-9]", "5"));
        assert!(fnmatch("[x", "[x"));
    }

    #[test]
    fn glob_sorts_and_skips_missing() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.conf", "a.conf", ".h.conf", "c.txt"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let pat = format!("{}/*.conf", dir.path().display());
        let got = glob(&pat).unwrap();
        assert_eq!(got, [dir.path().join("a.conf"), dir.path().join("b.conf")]);
        let missing = format!("{}/nope", dir.path().display());
        assert!(glob(&missing).unwrap().is_empty());
    }
}
