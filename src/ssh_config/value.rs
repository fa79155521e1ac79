//! ssh_config values: ports, flags, times (OpenSSH's `convtime`), jump
//! hosts, and the `%C` connection hash.

use std::time::Duration;

/// `%C`: hex SHA-1 of local host name, host, port and user (OpenSSH 9.2).
pub(super) fn connection_hash(local: &str, host: &str, port: &str, user: &str) -> String {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    for part in [local, host, port, user] {
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A port number or a TCP service name from `/etc/services`.
pub(super) fn parse_port(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return (n > 0).then_some(n);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let services = std::fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut words = line.split_whitespace();
        let name = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let names_match = name == s || words.any(|alias| alias == s);
        (names_match && proto == "tcp")
            .then(|| port.parse::<u16>().ok())
            .flatten()
            .filter(|&p| p > 0)
    })
}

pub(super) fn parse_flag(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// OpenSSH's `convtime`: `90`, `90s`, `1m30s`, `1h`, `2d`, `1w`.
pub(super) fn parse_time(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
            if chars.peek().is_some() {
                continue;
            }
            total = total.checked_add(digits.parse::<u64>().ok()?)?;
            break;
        }
        if digits.is_empty() {
            return None;
        }
        let mult = match c {
            's' | 'S' => 1,
            'm' | 'M' => 60,
            'h' | 'H' => 3600,
            'd' | 'D' => 86_400,
            'w' | 'W' => 604_800,
            _ => return None,
        };
        total = total.checked_add(digits.parse::<u64>().ok()?.checked_mul(mult)?)?;
        digits.clear();
    }
    (total <= i32::MAX as u64).then(|| Duration::from_secs(total))
}

/// One `ProxyJump` hop: `[user@]host[:port]` or `ssh://[user@]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct JumpHost {
    pub(super) user: Option<String>,
    pub(super) host: String,
    pub(super) port: Option<u16>,
}

pub(super) fn parse_jump_host(s: &str) -> Result<JumpHost, String> {
    let bad = || format!("invalid jump host {s:?}");
    let (uri, s) = match s.strip_prefix("ssh://") {
        Some(rest) => (true, rest.strip_suffix('/').unwrap_or(rest)),
        None => (false, s),
    };
    if uri && s.contains('/') {
        return Err(bad());
    }
    let (user, hostport) = match s.rfind('@') {
        Some(0) => return Err(bad()),
        Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
        None => (None, s),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(bad)?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (&rest[..end], port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?),
        None => None,
    };
    Ok(JumpHost {
        user,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("0"), Some(Duration::ZERO));
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("m"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("2222"), Some(2222));
        assert_eq!(parse_port("0"), None);
        assert_eq!(parse_port("70000"), None);
        assert_eq!(parse_port("no-such-service-name"), None);
    }

    #[test]
    fn jump_hosts() {
        let j = |s| parse_jump_host(s).unwrap();
        assert_eq!(
            j("bob@gw.example:2222"),
            JumpHost {
                user: Some("bob".into()),
                host: "gw.example".into(),
                port: Some(2222)
            }
        );
        assert_eq!(j("gw").port, None);
        assert_eq!(j("[::1]:22").host, "::1");
        assert_eq!(j("ssh://a@b:23/").user.as_deref(), Some("a"));
        assert_eq!(j("a@b@c").user.as_deref(), Some("a@b"));
        for bad in ["", "@h", "h:0", "h:x", "ssh://h/path", "[::1"] {
            assert!(parse_jump_host(bad).is_err(), "{bad}");
        }
    }
}
