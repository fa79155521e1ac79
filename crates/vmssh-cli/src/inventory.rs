//! The `--hosts FILE` inventory: one host a line.
//!
//! ```text
//! # NAME    [USER@]ADDR[:PORT]          [key=FILE]        [jump=[USER@]HOST[:PORT]]
//! web-01    ubuntu@10.0.0.5
//! web-02    ubuntu@10.0.0.6:2222        key=~/.ssh/web
//! db        10.0.0.7                    jump=admin@bastion.example.com
//! 10.0.0.8                              # one field: named by its address
//! ```
//!
//! Fields are separated by spaces or tabs; `#` starts a comment (at the
//! start of a field); blank lines are ignored. A relative `key=` path is
//! relative to the inventory's directory, `~/` to the home directory.
//! Every mistake is an error naming `FILE:LINE`: nothing runs on a host
//! when one line is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::address::Address;

/// One line of an inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) address: Address,
    pub(crate) key: Option<PathBuf>,
    pub(crate) jump: Option<Address>,
    /// 1-based.
    pub(crate) line: usize,
}

/// Reads and parses `path`.
pub(crate) async fn load(path: &Path) -> Result<Vec<Entry>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read inventory {}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), dir)
}

/// Parses an inventory's text; `origin` names it in errors, `dir` is where
/// relative key paths start.
pub(crate) fn parse(text: &str, origin: &str, dir: &Path) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = |reason: String| format!("{origin}:{line}: {reason}");
        let fields: Vec<&str> = raw
            .split_whitespace()
            .take_while(|f| !f.starts_with('#'))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let (positional, options): (Vec<&str>, Vec<&str>) =
            fields.iter().partition(|f| !f.contains('='));
        // Options come after the address.
        if let Some(first_option) = fields.iter().position(|f| f.contains('='))
            && fields[first_option..].iter().any(|f| !f.contains('='))
        {
            return Err(at(format!(
                "{:?} after the options: expected NAME [USER@]ADDR[:PORT] [key=FILE] [jump=HOST]",
                fields[first_option..]
                    .iter()
                    .find(|f| !f.contains('='))
                    .unwrap_or(&"")
            )));
        }
        let (name, addr) = match positional.as_slice() {
            [addr] => (Address::name_of(addr), *addr),
            [name, addr] => (*name, *addr),
            [] => return Err(at("no address before the options".to_string())),
            [_, _, extra, ..] => {
                return Err(at(format!(
                    "unexpected {extra:?}: expected NAME [USER@]ADDR[:PORT] [key=FILE] [jump=HOST]"
                )));
            }
        };
        check_name(name).map_err(at)?;
        let address = Address::parse(addr).map_err(at)?;
        let mut key = None;
        let mut jump = None;
        for option in options {
            let (k, v) = option.split_once('=').unwrap_or((option, ""));
            if v.is_empty() {
                return Err(at(format!("{k}= has no value")));
            }
            match k {
                "key" if key.is_none() => key = Some(resolve_path(v, dir)),
                "jump" if jump.is_none() => {
                    jump = Some(Address::parse(v).map_err(|e| at(format!("jump: {e}")))?)
                }
                "key" | "jump" => return Err(at(format!("{k}= given twice"))),
                _ => {
                    return Err(at(format!(
                        "unknown field {k:?} (expected key=FILE or jump=[USER@]HOST[:PORT])"
                    )));
                }
            }
        }
        if let Some(first) = seen.insert(name.to_string(), line) {
            return Err(at(format!("host {name:?} already named on line {first}")));
        }
        entries.push(Entry {
            name: name.to_string(),
            address,
            key,
            jump,
            line,
        });
    }
    Ok(entries)
}

/// `~/` is the home directory; a relative path starts at `dir`.
pub(crate) fn resolve_path(p: &str, dir: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    dir.join(p)
}

/// Whether `name` can name a host: it becomes a file name (logs,
/// downloads), so no `/`, no whitespace or control characters, not `.` or
/// `..`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{name:?} cannot be a host name (it names files: no '/', spaces or control characters, not . or ..)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Entry> {
        parse(text, "hosts", Path::new("/inv")).unwrap()
    }

    #[test]
    fn reads_every_form() {
        let hosts = parse_ok(
            "# a comment\n\
             \n\
             web-01  ubuntu@10.0.0.5\n\
             web-02\tubuntu@10.0.0.6:2222  key=keys/web   # trailing comment\n\
             db 10.0.0.7 jump=admin@bastion:2200 key=/abs/key\n\
             10.0.0.8:2022\n\
             v6 [::1]:22\n",
        );
        assert_eq!(hosts.len(), 5);
        assert_eq!(hosts[0].name, "web-01");
        assert_eq!(hosts[0].address.user.as_deref(), Some("ubuntu"));
        assert_eq!(hosts[0].line, 3);
        assert_eq!(hosts[1].address.port, Some(2222));
        assert_eq!(hosts[1].key.as_deref(), Some(Path::new("/inv/keys/web")));
        assert_eq!(hosts[2].key.as_deref(), Some(Path::new("/abs/key")));
        let jump = hosts[2].jump.as_ref().unwrap();
        assert_eq!(
            (jump.user.as_deref(), jump.host.as_str(), jump.port),
            (Some("admin"), "bastion", Some(2200))
        );
        assert_eq!(hosts[3].name, "10.0.0.8:2022");
        assert_eq!(hosts[3].address.host, "10.0.0.8");
        assert_eq!(hosts[4].address.host, "::1");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (text, want) in [
            ("web host:0\n", "hosts:1: invalid port"),
            ("ok 10.0.0.1\nweb a b\n", "hosts:2: unexpected \"b\""),
            ("web 10.0.0.1 key=\n", "hosts:1: key= has no value"),
            ("web 10.0.0.1 user=x\n", "hosts:1: unknown field \"user\""),
            ("web 10.0.0.1 key=a key=b\n", "hosts:1: key= given twice"),
            (
                "web key=a 10.0.0.1\n",
                "hosts:1: \"10.0.0.1\" after the options",
            ),
            ("key=a\n", "hosts:1: no address"),
            (
                "a 10.0.0.1\n\na 10.0.0.2\n",
                "hosts:3: host \"a\" already named on line 1",
            ),
            ("web 10.0.0.1 jump=@x\n", "hosts:1: jump: empty user"),
            ("../x 10.0.0.1\n", "hosts:1: \"../x\" cannot be a host name"),
            ("web @10.0.0.1\n", "hosts:1: empty user"),
        ] {
            let e = parse(text, "hosts", Path::new(".")).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }
}
