//! Reading ssh_config files for one host the way OpenSSH's `readconf.c`
//! does: `Host` and `Match` blocks, first value wins, `Include`, a final
//! pass when a `Match final` asks for one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::StrictHostKeyChecking;
use super::expand::{self, LocalUser};
use super::keyword::{Kw, keyword};
use super::lex::{self, LineError};
use super::value::{connection_hash, parse_flag, parse_jump_host, parse_port, parse_time};
use super::warning::{Warning, WarningKind};
use crate::error::Error;

/// OpenSSH's limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a value was set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) path: PathBuf,
    pub(super) line: usize,
}

impl Loc {
    pub(super) fn error(&self, reason: impl Into<String>) -> Error {
        Error::SshConfig {
            path: self.path.clone(),
            line: Some(self.line),
            reason: reason.into(),
            source: None,
        }
    }
}

/// A warning for `option` at `at`.
pub(super) fn warning(at: &Loc, option: &str, kind: WarningKind) -> Warning {
    Warning::new(at.path.clone(), at.line, option, kind)
}

/// A value and the line that set it.
#[derive(Clone, Debug)]
pub(super) struct Set<T> {
    pub(super) value: T,
    pub(super) at: Loc,
}

/// What to resolve: the host as typed, and what a command line would have
/// fixed before the files are read (`-l`, `-p`, `-J`).
#[derive(Clone, Debug, Default)]
pub(super) struct Query {
    pub(super) host_arg: String,
    pub(super) user: Option<String>,
    pub(super) port: Option<u16>,
    /// A `-J` chain, given by the `ProxyJump` that led here.
    pub(super) jump: Option<Set<String>>,
}

/// Which files to read.
#[derive(Clone, Debug)]
pub(super) enum Files {
    /// `ssh -F FILE`: only this file, read as a user file.
    Explicit(PathBuf),
    /// `~/.ssh/config` (if present, permissions checked), then the system
    /// file (if present).
    Default { system: PathBuf },
}

/// The options that apply to one host, first value of each.
#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) hostname: Option<Set<String>>,
    pub(super) port: Option<Set<u16>>,
    pub(super) user: Option<Set<String>>,
    pub(super) identity_files: Vec<Set<String>>,
    pub(super) certificate_files: Vec<Set<String>>,
    pub(super) identities_only: Option<Set<bool>>,
    pub(super) identity_agent: Option<Set<String>>,
    pub(super) proxy_command: Option<Set<String>>,
    pub(super) jump: Option<Set<String>>,
    pub(super) user_known_hosts: Option<Set<Vec<String>>>,
    pub(super) strict: Option<Set<StrictHostKeyChecking>>,
    pub(super) host_key_alias: Option<Set<String>>,
    pub(super) connect_timeout: Option<Set<Duration>>,
    pub(super) server_alive_interval: Option<Set<Duration>>,
    pub(super) server_alive_count_max: Option<Set<u32>>,
    pub(super) kex_algorithms: Option<Set<String>>,
    pub(super) ciphers: Option<Set<String>>,
    pub(super) macs: Option<Set<String>>,
    pub(super) host_key_algorithms: Option<Set<String>>,
    pub(super) compression: Option<Set<bool>>,
    pub(super) forward_agent: Option<Set<String>>,
    pub(super) ignore_unknown: Option<Set<String>>,
    pub(super) warnings: Vec<Warning>,
}

/// The result of reading: the options, and the host name everything is
/// matched and expanded against (`%h`).
#[derive(Debug)]
pub(super) struct Evaluated {
    pub(super) opts: Options,
    /// HostName with `%h` expanded, lowercased unless an address.
    pub(super) host: String,
}

/// Reads the files for `q`.
pub(super) fn evaluate(files: &Files, q: &Query, me: &LocalUser) -> Result<Evaluated, Error> {
    let mut r = Reader {
        opts: Options::default(),
        me,
        host_arg: q.host_arg.clone(),
        host: q.host_arg.clone(),
        final_pass: false,
        want_final: false,
        stack: Vec::new(),
    };
    let cmdline = Loc {
        path: PathBuf::from("<command line>"),
        line: 0,
    };
    if let Some(user) = &q.user {
        r.opts.user = Some(Set {
            value: user.clone(),
            at: cmdline.clone(),
        });
    }
    if let Some(port) = q.port {
        r.opts.port = Some(Set {
            value: port,
            at: cmdline.clone(),
        });
    }
    if let Some(jump) = &q.jump {
        r.proxy_jump(&jump.value, &jump.at, true)?;
    }
    r.read_all(files)?;
    let mut host = match &r.opts.hostname {
        Some(h) => expand::percent(&h.value, &[('h', &q.host_arg)], false)
            .map_err(|e| h.at.error(format!("HostName: {e}")))?,
        None => q.host_arg.clone(),
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        host = host.to_ascii_lowercase();
    }
    if r.want_final {
        let at = r
            .opts
            .hostname
            .as_ref()
            .map(|h| h.at.clone())
            .unwrap_or(cmdline);
        r.opts.hostname = Some(Set {
            value: host.clone(),
            at,
        });
        r.host = host.clone();
        r.final_pass = true;
        r.read_all(files)?;
    }
    Ok(Evaluated { opts: r.opts, host })
}

struct Reader<'a> {
    opts: Options,
    me: &'a LocalUser,
    host_arg: String,
    /// What `Host` lines match: the host as typed, or in the final pass the
    /// resolved host name.
    host: String,
    final_pass: bool,
    want_final: bool,
    /// Files being read, outermost first, to catch `Include` loops.
    stack: Vec<PathBuf>,
}

#[derive(Clone, Copy)]
struct Flags {
    user_file: bool,
    check_perm: bool,
    never_match: bool,
}

impl Reader<'_> {
    fn read_all(&mut self, files: &Files) -> Result<(), Error> {
        match files {
            Files::Explicit(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::SshConfig {
                    path: path.clone(),
                    line: None,
                    reason: "cannot read the configuration file".to_string(),
                    source: Some(Box::new(e)),
                })?;
                let flags = Flags {
                    user_file: true,
                    check_perm: false,
                    never_match: false,
                };
                self.read_text(path, &text, flags, &mut true)
            }
            Files::Default { system } => {
                let user = self.me.home.join(".ssh").join("config");
                for (path, flags) in [
                    (
                        user,
                        Flags {
                            user_file: true,
                            check_perm: true,
                            never_match: false,
                        },
                    ),
                    (
                        system.clone(),
                        Flags {
                            user_file: false,
                            check_perm: false,
                            never_match: false,
                        },
                    ),
                ] {
                    match std::fs::read_to_string(&path) {
                        Ok(text) => {
                            if flags.check_perm {
                                check_permissions(&path, self.me, None)?;
                            }
                            self.read_text(&path, &text, flags, &mut true)?;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Error::SshConfig {
                                path,
                                line: None,
                                reason: "cannot read the configuration file".to_string(),
                                source: Some(Box::new(e)),
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn read_text(
        &mut self,
        path: &Path,
        text: &str,
        flags: Flags,
        active: &mut bool,
    ) -> Result<(), Error> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.stack.push(canonical);
        let result = text.lines().enumerate().try_for_each(|(i, line)| {
            let at = Loc {
                path: path.to_path_buf(),
                line: i + 1,
            };
            self.line(line, &at, flags, active)
        });
        self.stack.pop();
        result
    }

    fn line(&mut self, text: &str, at: &Loc, flags: Flags, active: &mut bool) -> Result<(), Error> {
        let line = match lex::split_line(text) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(LineError::NoArgument(k)) => {
                return Err(at.error(format!("no argument after keyword {k:?}")));
            }
            Err(LineError::UnbalancedQuotes) => return Err(at.error("unbalanced quotes")),
        };
        let args = &line.args;
        let on = *active;
        let kw = keyword(&line.keyword);
        let single = |what: &str| -> Result<String, Error> {
            match args.as_slice() {
                [a] => Ok(a.clone()),
                [] => Err(at.error(format!("{what}: missing argument"))),
                _ => Err(at.error(format!("{what}: extra arguments at end of line"))),
            }
        };
        match kw {
            Kw::Host => {
                *active = false;
                if !flags.never_match {
                    for pattern in args {
                        let (negated, p) = match pattern.strip_prefix('!') {
                            Some(p) => (true, p),
                            None => (false, pattern.as_str()),
                        };
                        if lex::match_pattern(&self.host, p) {
                            if negated {
                                *active = false;
                                break;
                            }
                            *active = true;
                        }
                    }
                }
            }
            Kw::Match => {
                let matched = self.match_line(args, at)?;
                *active = !flags.never_match && matched;
            }
            Kw::Include => self.include(args, at, flags, active)?,
            Kw::IgnoreUnknown => {
                let v = single("IgnoreUnknown")?;
                set_first(&mut self.opts.ignore_unknown, on, v, at);
            }
            Kw::HostName => {
                let v = single("HostName")?;
                set_first(&mut self.opts.hostname, on, v, at);
            }
            Kw::Port => {
                let v = single("Port")?;
                let port = parse_port(&v).ok_or_else(|| at.error(format!("bad port {v:?}")))?;
                set_first(&mut self.opts.port, on, port, at);
            }
            Kw::User => {
                let v = single("User")?;
                set_first(&mut self.opts.user, on, v, at);
            }
            Kw::IdentityFile => {
                let v = single("IdentityFile")?;
                if on {
                    self.opts.identity_files.push(Set {
                        value: v,
                        at: at.clone(),
                    });
                }
            }
            Kw::CertificateFile => {
                let v = single("CertificateFile")?;
                if on {
                    self.opts.certificate_files.push(Set {
                        value: v,
                        at: at.clone(),
                    });
                }
            }
            Kw::IdentitiesOnly => {
                let v = parse_flag(&single("IdentitiesOnly")?)
                    .ok_or_else(|| at.error("IdentitiesOnly: expected yes or no"))?;
                set_first(&mut self.opts.identities_only, on, v, at);
            }
            Kw::IdentityAgent => {
                let v = single("IdentityAgent")?;
                set_first(&mut self.opts.identity_agent, on, v, at);
            }
            Kw::ProxyCommand => {
                set_first(&mut self.opts.proxy_command, on, line.rest.to_string(), at);
            }
            Kw::ProxyJump => self.proxy_jump(line.rest, at, on)?,
            Kw::UserKnownHostsFile => {
                set_first(&mut self.opts.user_known_hosts, on, args.clone(), at);
            }
            Kw::StrictHostKeyChecking => {
                let v = single("StrictHostKeyChecking")?;
                let v = match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" => StrictHostKeyChecking::Yes,
                    "no" | "false" | "off" => StrictHostKeyChecking::No,
                    "ask" => StrictHostKeyChecking::Ask,
                    "accept-new" => StrictHostKeyChecking::AcceptNew,
                    _ => {
                        return Err(at.error(format!(
                            "StrictHostKeyChecking: unknown value {v:?} \
                             (yes, accept-new, no, ask)"
                        )));
                    }
                };
                set_first(&mut self.opts.strict, on, v, at);
            }
            Kw::HostKeyAlias => {
                let v = single("HostKeyAlias")?;
                set_first(&mut self.opts.host_key_alias, on, v, at);
            }
            Kw::ConnectTimeout => {
                let v = single("ConnectTimeout")?;
                let t = parse_time(&v)
                    .ok_or_else(|| at.error(format!("ConnectTimeout: bad time {v:?}")))?;
                set_first(&mut self.opts.connect_timeout, on, t, at);
            }
            Kw::ServerAliveInterval => {
                let v = single("ServerAliveInterval")?;
                let t = parse_time(&v)
                    .ok_or_else(|| at.error(format!("ServerAliveInterval: bad time {v:?}")))?;
                set_first(&mut self.opts.server_alive_interval, on, t, at);
            }
            Kw::ServerAliveCountMax => {
                let v = single("ServerAliveCountMax")?;
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= i32::MAX as u32)
                    .ok_or_else(|| at.error(format!("ServerAliveCountMax: bad number {v:?}")))?;
                set_first(&mut self.opts.server_alive_count_max, on, n, at);
            }
            Kw::KexAlgorithms => {
                let v = single("KexAlgorithms")?;
                set_first(&mut self.opts.kex_algorithms, on, v, at);
            }
            Kw::Ciphers => {
                let v = single("Ciphers")?;
                set_first(&mut self.opts.ciphers, on, v, at);
            }
            Kw::Macs => {
                let v = single("MACs")?;
                set_first(&mut self.opts.macs, on, v, at);
            }
            Kw::HostKeyAlgorithms => {
                let v = single("HostKeyAlgorithms")?;
                set_first(&mut self.opts.host_key_algorithms, on, v, at);
            }
            Kw::Compression => {
                let v = parse_flag(&single("Compression")?)
                    .ok_or_else(|| at.error("Compression: expected yes or no"))?;
                set_first(&mut self.opts.compression, on, v, at);
            }
            Kw::ForwardAgent => {
                let v = single("ForwardAgent")?;
                set_first(&mut self.opts.forward_agent, on, v, at);
            }
            Kw::Unsupported | Kw::Deprecated if on => {
                let kind = if kw == Kw::Deprecated {
                    WarningKind::Deprecated
                } else {
                    WarningKind::Unsupported
                };
                self.warn(at, kind, &line.keyword);
            }
            Kw::Unsupported | Kw::Deprecated | Kw::Ignore => {}
            Kw::Unknown => {
                let ignored = self.opts.ignore_unknown.as_ref().is_some_and(|i| {
                    lex::match_pattern_list(&line.keyword, &i.value, true) == Some(true)
                });
                if !ignored {
                    return Err(at.error(format!("unknown directive {:?}", line.keyword)));
                }
            }
        }
        Ok(())
    }

    fn warn(&mut self, at: &Loc, kind: WarningKind, option: &str) {
        let w = warning(at, option, kind);
        if !self.opts.warnings.contains(&w) {
            self.opts.warnings.push(w);
        }
    }

    /// `ProxyJump`: checked always, taken when active and neither a jump nor
    /// a proxy command is set yet; a real jump also blocks `ProxyCommand`.
    fn proxy_jump(&mut self, raw: &str, at: &Loc, on: bool) -> Result<(), Error> {
        let spec = raw.split('#').next().unwrap_or_default().trim_end();
        if spec.is_empty() {
            return Err(at.error("ProxyJump: missing argument"));
        }
        if !spec.eq_ignore_ascii_case("none") {
            for hop in spec.split(',') {
                parse_jump_host(hop).map_err(|e| at.error(format!("ProxyJump: {e}")))?;
            }
        }
        if on && self.opts.proxy_command.is_none() && self.opts.jump.is_none() {
            self.opts.jump = Some(Set {
                value: spec.to_string(),
                at: at.clone(),
            });
            if !spec.eq_ignore_ascii_case("none") {
                self.opts.proxy_command = Some(Set {
                    value: "none".to_string(),
                    at: at.clone(),
                });
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        args: &[String],
        at: &Loc,
        flags: Flags,
        active: &mut bool,
    ) -> Result<(), Error> {
        for arg in args {
            if arg.starts_with('~') && !flags.user_file {
                return Err(at.error(format!(
                    "Include: {arg:?}: a system file cannot include from a home directory"
                )));
            }
            let full = if arg.starts_with('/') || arg.starts_with('~') {
                arg.clone()
            } else if flags.user_file {
                format!("~/.ssh/{arg}")
            } else {
                format!("/etc/ssh/{arg}")
            };
            let full =
                expand::tilde(&full, self.me).map_err(|e| at.error(format!("Include: {e}")))?;
            let paths = lex::glob(&full).map_err(|e| Error::SshConfig {
                path: at.path.clone(),
                line: Some(at.line),
                reason: format!("Include: cannot list {full}"),
                source: Some(Box::new(e)),
            })?;
            let outer_active = *active;
            for path in paths {
                let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if self.stack.contains(&canonical) {
                    return Err(at.error(format!(
                        "Include loop: {} is already being read",
                        path.display()
                    )));
                }
                if self.stack.len() > MAX_INCLUDE_DEPTH {
                    return Err(at.error(format!(
                        "Include: more than {MAX_INCLUDE_DEPTH} nested includes"
                    )));
                }
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(Error::SshConfig {
                            path: at.path.clone(),
                            line: Some(at.line),
                            reason: format!("Include: cannot read {}", path.display()),
                            source: Some(Box::new(e)),
                        });
                    }
                };
                check_permissions(&path, self.me, Some(at))?;
                let inner = Flags {
                    check_perm: true,
                    never_match: flags.never_match || !outer_active,
                    ..flags
                };
                self.read_text(&path, &text, inner, active)?;
                // A Match inside the included file does not change the
                // including file's state.
                *active = outer_active;
            }
        }
        Ok(())
    }

    /// OpenSSH's `match_cfg_line`.
    fn match_line(&mut self, args: &[String], at: &Loc) -> Result<bool, Error> {
        let host = if self.final_pass {
            self.opts
                .hostname
                .as_ref()
                .map(|h| h.value.clone())
                .unwrap_or_else(|| self.host.clone())
        } else if let Some(h) = &self.opts.hostname {
            expand::percent(&h.value, &[('h', &self.host_arg)], false)
                .map_err(|e| h.at.error(format!("HostName: {e}")))?
        } else {
            self.host_arg.clone()
        };
        let ruser = self
            .opts
            .user
            .as_ref()
            .map(|u| u.value.clone())
            .unwrap_or_else(|| self.me.name.clone());
        let mut result = true;
        let mut attributes = 0;
        let mut i = 0;
        while i < args.len() {
            let raw = &args[i];
            i += 1;
            let (negate, attrib) = match raw.strip_prefix('!') {
                Some(a) => (true, a),
                None => (false, raw.as_str()),
            };
            let attrib = attrib.to_ascii_lowercase();
            if attrib == "all" {
                if attributes > 1 || i < args.len() {
                    return Err(at.error(format!(
                        "Match: '{raw}' cannot be combined with other Match attributes"
                    )));
                }
                if result {
                    result = !negate;
                }
                return Ok(result);
            }
            attributes += 1;
            if attrib == "canonical" || attrib == "final" {
                if attrib == "final" {
                    self.want_final = true;
                }
                if self.final_pass == negate {
                    result = false;
                }
                continue;
            }
            let Some(arg) = args.get(i) else {
                return Err(at.error(format!("Match: missing criteria for {raw}")));
            };
            i += 1;
            let matched = match attrib.as_str() {
                "host" => lex::match_pattern_list(&host, arg, true) == Some(true),
                "originalhost" => lex::match_pattern_list(&self.host_arg, arg, true) == Some(true),
                "user" => lex::match_pattern_list(&ruser, arg, false) == Some(true),
                "localuser" => lex::match_pattern_list(&self.me.name, arg, false) == Some(true),
                "exec" => {
                    if !result {
                        // A criterion before it already failed: don't run it.
                        continue;
                    }
                    self.match_exec(arg, &host, &ruser, at)?
                }
                _ => {
                    return Err(at.error(format!("Match: unsupported attribute {raw:?}")));
                }
            };
            if matched == negate {
                result = false;
            }
        }
        if attributes == 0 {
            return Err(at.error("Match: one or more attributes required"));
        }
        Ok(result)
    }

    fn match_exec(&self, cmd: &str, host: &str, ruser: &str, at: &Loc) -> Result<bool, Error> {
        let port = self
            .opts
            .port
            .as_ref()
            .map(|p| p.value)
            .unwrap_or(22)
            .to_string();
        let me = self.me;
        let home = me.home.to_string_lossy().into_owned();
        let uid = me.uid.to_string();
        let hash = connection_hash(&me.hostname, host, &port, ruser);
        let keyalias = self
            .opts
            .host_key_alias
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_else(|| host.to_string());
        let tokens = [
            ('C', hash.as_str()),
            ('L', me.short_hostname()),
            ('d', home.as_str()),
            ('h', host),
            ('i', uid.as_str()),
            ('k', keyalias.as_str()),
            ('l', me.hostname.as_str()),
            ('n', self.host_arg.as_str()),
            ('p', port.as_str()),
            ('r', ruser),
            ('u', me.name.as_str()),
        ];
        let cmd = expand::percent(cmd, &tokens, false)
            .map_err(|e| at.error(format!("Match exec: {e}")))?;
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_string());
        let status = std::process::Command::new(&shell)
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| Error::SshConfig {
                path: at.path.clone(),
                line: Some(at.line),
                reason: format!("Match exec: cannot run {shell}"),
                source: Some(Box::new(e)),
            })?;
        Ok(status.success())
    }
}

fn set_first<T>(slot: &mut Option<Set<T>>, active: bool, value: T, at: &Loc) {
    if active && slot.is_none() {
        *slot = Some(Set {
            value,
            at: at.clone(),
        });
    }
}

/// OpenSSH refuses user configuration files that others can write.
fn check_permissions(path: &Path, me: &LocalUser, at: Option<&Loc>) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if (meta.uid() != 0 && meta.uid() != me.uid) || meta.mode() & 0o022 != 0 {
        let reason = format!("bad owner or permissions on {}", path.display());
        return Err(match at {
            Some(at) => at.error(reason),
            None => Error::SshConfig {
                path: path.to_path_buf(),
                line: None,
                reason,
                source: None,
            },
        });
    }
    Ok(())
}
