//! `[USER@]ADDR[:PORT]`, as `--host`, inventory lines and `jump=` write
//! it: a host name, an IPv4 address, or an IPv6 address (in brackets when
//! a port follows).

/// Where to connect, and as whom when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

impl Address {
    /// Parses `[USER@]ADDR[:PORT]`.
    pub(crate) fn parse(s: &str) -> Result<Address, String> {
        let (user, rest) = match s.rsplit_once('@') {
            Some(("", _)) => return Err(format!("empty user in {s:?}")),
            Some((u, rest)) => (Some(u.to_string()), rest),
            None => (None, s),
        };
        let (host, port) = split_port(rest).map_err(|e| format!("{e} in {s:?}"))?;
        if host.is_empty() {
            return Err(format!("no address in {s:?}"));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(format!("{host:?} is not a host name or address"));
        }
        Ok(Address {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// `ADDR[:PORT]` as written, without the user: the name of a host
    /// given without one.
    pub(crate) fn name_of(s: &str) -> &str {
        s.rsplit_once('@').map_or(s, |(_, rest)| rest)
    }
}

fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port {p:?}")),
        Ok(n) => Ok(Some(n)),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, port(p)?)),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {after:?} after ]")),
        };
    }
    match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => Ok((h, port(p)?)),
        // A bare IPv6 address: no port.
        _ => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(user: Option<&str>, host: &str, port: Option<u16>) -> Address {
        Address {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(Address::parse("10.0.0.5"), Ok(addr(None, "10.0.0.5", None)));
        assert_eq!(
            Address::parse("ubuntu@web.example.com:2222"),
            Ok(addr(Some("ubuntu"), "web.example.com", Some(2222)))
        );
        assert_eq!(Address::parse("::1"), Ok(addr(None, "::1", None)));
        assert_eq!(
            Address::parse("root@[fe80::1]:22"),
            Ok(addr(Some("root"), "fe80::1", Some(22)))
        );
        assert_eq!(Address::parse("[::1]"), Ok(addr(None, "::1", None)));
        assert_eq!(Address::name_of("ubuntu@10.0.0.5:22"), "10.0.0.5:22");
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, why) in [
            ("", "no address"),
            ("@host", "empty user"),
            ("user@", "no address"),
            ("host:", "invalid port"),
            ("host:0", "invalid port"),
            ("host:99999", "invalid port"),
            ("host:ssh", "invalid port"),
            ("[::1", "unclosed ["),
            ("[::1]x", "unexpected"),
            ("a/b", "not a host name"),
        ] {
            let e = Address::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
