//! OpenSSH client configuration (`~/.ssh/config`): a host alias resolved
//! the way `ssh -G ALIAS` resolves it, into a ready [`SshConfig`](crate::SshConfig) and the
//! address (and jump hosts or proxy command) to connect to.
//!
//! What is read, as OpenSSH reads it: `Host` and `Match` blocks (`host`,
//! `originalhost`, `user`, `localuser`, `exec`, `final`, `canonical`,
//! `all`), the first value of each option, `Include` (globs, relative to
//! `~/.ssh` or `/etc/ssh`), `IgnoreUnknown`, quoting, and the `%` tokens
//! (`%h %p %r %u %n %d %i %k %l %L %C %%`), `~` and `${VAR}` where OpenSSH
//! expands them.
//!
//! What is applied: `HostName`, `Port`, `User`, `IdentityFile` (several),
//! `IdentitiesOnly`, `IdentityAgent`, `ForwardAgent` (`yes`, `no`, a socket
//! path or `$VAR`), `ProxyJump` (comma chains; each hop
//! resolved through the same files, as `ssh -J` does), `ProxyCommand`,
//! `UserKnownHostsFile`, `StrictHostKeyChecking` (`yes`, `accept-new`,
//! `no`, `ask`), `ConnectTimeout`, `ServerAliveInterval` and
//! `ServerAliveCountMax`. Every other OpenSSH option that applies to the
//! host is listed in [`ResolvedHost::warnings`], never silently dropped;
//! an unknown directive is an error naming its file and line, as it is for
//! OpenSSH.
//!
//! No existing parser crate reads `Match`, names the line of an `Include`
//! loop or follows OpenSSH's first-value and token rules closely enough;
//! the tests hold this module to `ssh -G` on a corpus of files.
//!
//! Inside: this file holds the resolution (`resolve`, the `Host`/`Match`
//! walk over the files, jump chains); `host.rs` the [`ResolvedHost`] it
//! yields and how that becomes an `SshConfig` and a connection.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), vmssh::Error> {
//! let web = vmssh::ssh_config::resolve("web").await?;
//! for w in web.warnings() {
//!     eprintln!("warning: {w}");
//! }
//! println!("{}@{}:{}", web.user(), web.host(), web.port());
//! let cfg = web.ssh_config();
//! # let _ = cfg;
//! # Ok(())
//! # }
//! ```

mod expand;
mod host;
mod keyword;
mod lex;
mod reader;
mod value;
mod warning;

use std::path::{Path, PathBuf};

use crate::config::ForwardAgent;
use crate::error::Error;

use expand::LocalUser;
use host::AlgorithmOptions;
pub use host::{Proxy, ResolvedHost, StrictHostKeyChecking};
use reader::warning;
use reader::{Files, Loc, Query, Set};
use value::parse_flag;
pub use warning::{Warning, WarningKind};

/// The system-wide file read after `~/.ssh/config`.
const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// How deep `ProxyJump` chains may nest (each hop resolved again).
const MAX_JUMP_DEPTH: usize = 16;

/// Resolves `alias` from `~/.ssh/config` and then `/etc/ssh/ssh_config`,
/// as `ssh -G ALIAS` does.
///
/// # Errors
///
/// [`Error::SshConfig`], naming the file and line, for an unknown
/// directive, an `Include` loop, a bad value or token, a file others can
/// write, or an unreadable file. Missing files are not errors.
///
/// # Cancel safety
///
/// Cancel safe; the files are read on a blocking thread, which finishes
/// on its own.
pub async fn resolve(alias: &str) -> Result<ResolvedHost, Error> {
    let files = Files::Default {
        system: PathBuf::from(SYSTEM_CONFIG),
    };
    run(files, alias).await
}

/// Resolves `alias` from `file` alone, as `ssh -G -F FILE ALIAS` does.
///
/// # Errors
///
/// As [`resolve`]; a missing `file` is an error too.
///
/// # Cancel safety
///
/// Cancel safe, as [`resolve`].
pub async fn resolve_file(file: impl AsRef<Path>, alias: &str) -> Result<ResolvedHost, Error> {
    run(Files::Explicit(file.as_ref().to_path_buf()), alias).await
}

async fn run(files: Files, alias: &str) -> Result<ResolvedHost, Error> {
    let query = Query {
        host_arg: alias.to_string(),
        ..Query::default()
    };
    // Reading files (and `Match exec` commands) blocks: keep it off the
    // runtime's worker threads.
    tokio::task::spawn_blocking(move || {
        let me = LocalUser::current().map_err(|reason| Error::Config { reason })?;
        resolve_query(&files, &query, &me, &mut Vec::new())
    })
    .await
    .map_err(|e| Error::Config {
        reason: format!("ssh_config resolution did not finish: {e}"),
    })?
}

/// OpenSSH's identity files when none is configured (9.x order).
const DEFAULT_IDENTITIES: [&str; 7] = [
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
];

const DEFAULT_KNOWN_HOSTS: [&str; 2] = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];

/// Resolves one host; `chain` holds the hosts whose jump led here, to
/// catch `ProxyJump` loops.
fn resolve_query(
    files: &Files,
    q: &Query,
    me: &LocalUser,
    chain: &mut Vec<String>,
) -> Result<ResolvedHost, Error> {
    chain.push(query_key(q));
    let host = resolve_one(files, q, me, chain);
    chain.pop();
    host
}

/// What makes two hops the same hop.
fn query_key(q: &Query) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        q.host_arg,
        q.user,
        q.port,
        q.jump.as_ref().map(|j| &j.value)
    )
}

fn resolve_one(
    files: &Files,
    q: &Query,
    me: &LocalUser,
    chain: &mut Vec<String>,
) -> Result<ResolvedHost, Error> {
    let ev = reader::evaluate(files, q, me)?;
    let mut opts = ev.opts;
    let host = ev.host;
    let port = opts.port.as_ref().map(|p| p.value).unwrap_or(22);
    let user = opts
        .user
        .as_ref()
        .map(|u| u.value.clone())
        .unwrap_or_else(|| me.name.clone());
    let host_key_alias = opts
        .host_key_alias
        .as_ref()
        .map(|a| a.value.to_ascii_lowercase());

    let port_s = port.to_string();
    let home = me.home.to_string_lossy().into_owned();
    let uid = me.uid.to_string();
    let hash = value::connection_hash(&me.hostname, &host, &port_s, &user);
    let keyalias = host_key_alias.clone().unwrap_or_else(|| q.host_arg.clone());
    let tokens = [
        ('C', hash.as_str()),
        ('L', me.short_hostname()),
        ('d', home.as_str()),
        ('h', host.as_str()),
        ('i', uid.as_str()),
        ('k', keyalias.as_str()),
        ('l', me.hostname.as_str()),
        ('n', q.host_arg.as_str()),
        ('p', port_s.as_str()),
        ('r', user.as_str()),
        ('u', me.name.as_str()),
    ];
    let path_of = |s: &Set<String>, what: &str| -> Result<PathBuf, Error> {
        let t = expand::tilde(&s.value, me).map_err(|e| s.at.error(format!("{what}: {e}")))?;
        expand::percent(&t, &tokens, true)
            .map(PathBuf::from)
            .map_err(|e| s.at.error(format!("{what}: {e}")))
    };

    let mut warnings = std::mem::take(&mut opts.warnings);
    let mut identity_files = Vec::new();
    if opts.identity_files.is_empty() {
        for d in DEFAULT_IDENTITIES {
            let t = expand::tilde(d, me).map_err(|reason| Error::Config { reason })?;
            identity_files.push(PathBuf::from(t));
        }
    } else {
        for s in &opts.identity_files {
            if s.value.eq_ignore_ascii_case("none") {
                continue;
            }
            let p = path_of(s, "IdentityFile")?;
            if !p.exists() {
                warnings.push(warning(
                    &s.at,
                    "identityfile",
                    WarningKind::MissingIdentity(p.clone()),
                ));
            }
            identity_files.push(p);
        }
    }
    let mut certificate_files = Vec::new();
    for s in &opts.certificate_files {
        certificate_files.push(path_of(s, "CertificateFile")?);
        warnings.push(warning(&s.at, "certificatefile", WarningKind::Unsupported));
    }

    let mut known_hosts = Vec::new();
    match &opts.user_known_hosts {
        Some(set) => {
            for v in &set.value {
                if v.eq_ignore_ascii_case("none") {
                    continue;
                }
                let one = Set {
                    value: v.clone(),
                    at: set.at.clone(),
                };
                known_hosts.push(path_of(&one, "UserKnownHostsFile")?);
            }
            for extra in known_hosts.iter().skip(1) {
                warnings.push(warning(
                    &set.at,
                    "userknownhostsfile",
                    WarningKind::ExtraKnownHostsFile(extra.clone()),
                ));
            }
        }
        None => {
            for d in DEFAULT_KNOWN_HOSTS {
                let t = expand::tilde(d, me).map_err(|reason| Error::Config { reason })?;
                known_hosts.push(PathBuf::from(t));
            }
        }
    }
    let strict = opts
        .strict
        .as_ref()
        .map(|s| s.value)
        .unwrap_or(StrictHostKeyChecking::Ask);
    if let Some(s) = &opts.strict
        && s.value == StrictHostKeyChecking::No
    {
        warnings.push(warning(
            &s.at,
            "stricthostkeychecking",
            WarningKind::StillRefusesChangedKeys,
        ));
    }

    let agent = match &opts.identity_agent {
        Some(s) if s.value.eq_ignore_ascii_case("none") => None,
        Some(s) if s.value == "SSH_AUTH_SOCK" => {
            std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from)
        }
        Some(s) => Some(path_of(s, "IdentityAgent")?),
        None => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };

    // OpenSSH: yes, no, a socket path, or `$VAR` naming one (forwarding
    // off when the variable is unset).
    let forward_agent = match &opts.forward_agent {
        None => ForwardAgent::Off,
        Some(s) => match parse_flag(&s.value) {
            Some(true) => ForwardAgent::Env,
            Some(false) => ForwardAgent::Off,
            None => match s.value.strip_prefix('$') {
                Some(var) => std::env::var_os(var)
                    .filter(|v| !v.is_empty())
                    .map_or(ForwardAgent::Off, |v| ForwardAgent::At(PathBuf::from(v))),
                None => ForwardAgent::At(path_of(s, "ForwardAgent")?),
            },
        },
    };

    let proxy_tokens = [
        ('h', host.as_str()),
        ('n', q.host_arg.as_str()),
        ('p', port_s.as_str()),
        ('r', user.as_str()),
    ];
    let proxy = match (&opts.jump, &opts.proxy_command) {
        (Some(j), _) if !j.value.eq_ignore_ascii_case("none") => {
            let spec = expand::percent(&j.value, &proxy_tokens, false)
                .map_err(|e| j.at.error(format!("ProxyJump: {e}")))?;
            Some(Proxy::Jump(Box::new(resolve_jump(
                files,
                &spec,
                &j.at,
                (&host, port, &user),
                me,
                chain,
            )?)))
        }
        (_, Some(c)) if !c.value.eq_ignore_ascii_case("none") => Some(Proxy::Command(
            expand::percent(&c.value, &proxy_tokens, false)
                .map_err(|e| c.at.error(format!("ProxyCommand: {e}")))?,
        )),
        _ => None,
    };

    let algorithms = AlgorithmOptions::read(&opts, &mut warnings)?;
    Ok(ResolvedHost {
        alias: q.host_arg.clone(),
        host,
        port,
        user,
        identity_files,
        identities_only: opts.identities_only.map(|s| s.value).unwrap_or(false),
        agent,
        forward_agent,
        certificate_files,
        proxy,
        known_hosts,
        strict,
        host_key_alias,
        connect_timeout: opts
            .connect_timeout
            .map(|s| s.value)
            .filter(|t| !t.is_zero()),
        server_alive_interval: opts.server_alive_interval.map(|s| s.value),
        server_alive_count_max: opts.server_alive_count_max.map(|s| s.value).unwrap_or(3),
        algorithms,
        warnings,
    })
}

/// The last hop of a `ProxyJump` chain, resolved as `ssh -J REST HOP`
/// would resolve it: its user and port from the spec when given, the hops
/// before it as its own jump.
fn resolve_jump(
    files: &Files,
    spec: &str,
    at: &Loc,
    (host, port, user): (&str, u16, &str),
    me: &LocalUser,
    chain: &mut Vec<String>,
) -> Result<ResolvedHost, Error> {
    if chain.len() >= MAX_JUMP_DEPTH {
        return Err(at.error(format!(
            "ProxyJump: more than {MAX_JUMP_DEPTH} nested jump hosts"
        )));
    }
    let (rest, last) = match spec.rsplit_once(',') {
        Some((rest, last)) => (Some(rest), last),
        None => (None, spec),
    };
    let hop = value::parse_jump_host(last).map_err(|e| at.error(format!("ProxyJump: {e}")))?;
    let hop_user = hop.user.clone().unwrap_or_else(|| user.to_string());
    if hop.host == host && hop.port.unwrap_or(22) == port && hop_user == user {
        return Err(at.error(format!("ProxyJump: jump host loop via {}", hop.host)));
    }
    let q = Query {
        host_arg: hop.host,
        user: hop.user,
        port: hop.port,
        jump: rest.map(|r| Set {
            value: r.to_string(),
            at: at.clone(),
        }),
    };
    if chain.contains(&query_key(&q)) {
        return Err(at.error(format!(
            "ProxyJump loop: {} is reached through itself",
            q.host_arg
        )));
    }
    resolve_query(files, &q, me, chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SshConfig;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn resolve_in(path: &Path, alias: &str) -> Result<ResolvedHost, Error> {
        let me = LocalUser::current().unwrap();
        let q = Query {
            host_arg: alias.to_string(),
            ..Query::default()
        };
        resolve_query(
            &Files::Explicit(path.to_path_buf()),
            &q,
            &me,
            &mut Vec::new(),
        )
    }

    fn line_of(e: &Error) -> (PathBuf, Option<usize>) {
        match e {
            Error::SshConfig { path, line, .. } => (path.clone(), *line),
            other => panic!("not an ssh_config error: {other:?}"),
        }
    }

    #[test]
    fn unknown_directive_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "c", "Host a\n  Port 2\n\n  Frobnicate yes\n");
        let e = resolve_in(&f, "other").unwrap_err();
        assert_eq!(line_of(&e), (f.clone(), Some(4)));
        assert!(
            e.to_string().contains(&format!("{}:4:", f.display())),
            "{e}"
        );
        let f = write(dir.path(), "d", "IgnoreUnknown frob*\nFrobnicate yes\n");
        assert!(resolve_in(&f, "a").is_ok());
    }

    #[test]
    fn include_loop_names_the_include_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, format!("Host x\n  Port 3\nInclude {}\n", b.display())).unwrap();
        std::fs::write(&b, format!("# b\nInclude {}\n", a.display())).unwrap();
        let e = resolve_in(&a, "x").unwrap_err();
        assert_eq!(line_of(&e), (b, Some(2)));
        assert!(e.to_string().contains("Include loop"), "{e}");
    }

    #[test]
    fn first_value_wins_and_jump_chains() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "c",
            "Host web\n  User u1\n  ProxyJump j1,j2@j2h:2022\nHost *\n  User u2\n  Port 7\n\
             Host j1\n  ProxyJump none\n  HostName 10.0.0.1\n",
        );
        let web = resolve_in(&f, "web").unwrap();
        assert_eq!((web.user(), web.port()), ("u1", 7));
        let Some(Proxy::Jump(j2)) = web.proxy() else {
            panic!("no jump: {web:?}")
        };
        assert_eq!((j2.alias(), j2.user(), j2.port()), ("j2h", "j2", 2022));
        let Some(Proxy::Jump(j1)) = j2.proxy() else {
            panic!("no inner jump: {j2:?}")
        };
        assert_eq!((j1.host(), j1.user(), j1.port()), ("10.0.0.1", "u2", 7));
        assert!(j1.proxy().is_none());
    }

    #[test]
    fn self_jump_is_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "c", "Host a\n  ProxyJump a\n");
        let e = resolve_in(&f, "a").unwrap_err();
        assert_eq!(line_of(&e).1, Some(2));
        let f = write(
            dir.path(),
            "d",
            "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n",
        );
        let e = resolve_in(&f, "a").unwrap_err();
        assert_eq!(line_of(&e).1, Some(4), "{e}");
    }

    #[test]
    fn unsupported_options_are_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "c",
            "Host a\n  ForwardX11 yes\n  SendEnv LANG\nHost b\n  Tunnel yes\n",
        );
        let a = resolve_in(&f, "a").unwrap();
        let opts: Vec<_> = a
            .warnings()
            .iter()
            .map(|w| (w.option(), w.line()))
            .collect();
        assert_eq!(opts, [("forwardx11", 2), ("sendenv", 3)]);
        assert!(
            a.warnings()[0]
                .to_string()
                .ends_with("c:2: forwardx11: not supported by vmssh; ignored")
        );
    }

    #[test]
    fn forward_agent_yes_no_path_and_variable() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "c",
            "Host yes\n  ForwardAgent yes\nHost no\n  ForwardAgent no\n\
             Host path\n  ForwardAgent /run/agent-%r.sock\n\
             Host unset\n  ForwardAgent $VMSSH_TEST_NO_SUCH_VARIABLE\n",
        );
        let yes = resolve_in(&f, "yes").unwrap();
        assert!(yes.forward_agent() && yes.forward_agent_socket().is_none());
        assert!(yes.ssh_config().forwards_agent());
        assert!(yes.warnings().is_empty(), "{:?}", yes.warnings());
        let no = resolve_in(&f, "no").unwrap();
        assert!(!no.forward_agent() && !no.ssh_config().forwards_agent());
        let path = resolve_in(&f, "path").unwrap();
        let user = path.user().to_string();
        assert_eq!(
            path.forward_agent_socket(),
            Some(Path::new(&format!("/run/agent-{user}.sock")))
        );
        assert_eq!(
            path.ssh_config().forward_agent,
            ForwardAgent::At(format!("/run/agent-{user}.sock").into())
        );
        // OpenSSH turns forwarding off when the variable is unset.
        assert!(!resolve_in(&f, "unset").unwrap().forward_agent());
        assert!(!resolve_in(&f, "other").unwrap().forward_agent());
        let bad = write(dir.path(), "bad", "Host *\n  ForwardAgent\n");
        let e = resolve_in(&bad, "x").unwrap_err();
        assert_eq!(line_of(&e).1, Some(2), "{e}");
    }

    #[test]
    fn algorithm_options_reach_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "c",
            "Host a\n  KexAlgorithms ecdh-sha2-nistp256\n  Ciphers +aes128-cbc\n  \
             MACs hmac-sha2-256\n  HostKeyAlgorithms rsa-sha2-256,ssh-ed25519\n  \
             Compression yes\n  KexAlgorithms curve25519-sha256\n",
        );
        let a = resolve_in(&f, "a").unwrap();
        assert!(a.warnings().is_empty(), "{:?}", a.warnings());
        let p = a.ssh_config().algorithms.resolve().unwrap().preferred;
        let names = |v: Vec<&str>| v.join(",");
        // First value wins, as everywhere in ssh_config.
        assert_eq!(
            names(p.kex.iter().map(|n| n.as_ref()).collect()),
            "ecdh-sha2-nistp256,ext-info-c,kex-strict-c-v00@openssh.com"
        );
        assert_eq!(p.cipher.last().map(|n| n.as_ref()), Some("aes128-cbc"));
        assert_eq!(
            names(p.mac.iter().map(|n| n.as_ref()).collect()),
            "hmac-sha2-256"
        );
        assert_eq!(
            names(p.key.iter().map(|k| k.as_str()).collect()),
            "rsa-sha2-256,ssh-ed25519"
        );
        assert_eq!(p.compression[0].as_ref(), "zlib@openssh.com");
        // Nothing said: the defaults.
        let b = resolve_in(&f, "b").unwrap();
        let cfg = b.ssh_config();
        assert_eq!(cfg.algorithms, SshConfig::new("x").algorithms);
    }

    #[test]
    fn unknown_algorithms_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "c",
            "Host a\n  Port 2\n  MACs umac-64-etm@openssh.com\n",
        );
        let e = resolve_in(&f, "a").unwrap_err();
        assert_eq!(line_of(&e), (f.clone(), Some(3)));
        assert!(e.to_string().contains("umac-64-etm@openssh.com"), "{e}");
        // Another host's lists are not checked for this one.
        assert!(resolve_in(&f, "b").is_ok());
    }

    #[test]
    fn openssh_algorithms_vmssh_lacks_are_left_out_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "c",
            "Host a\n  KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256\n  \
             MACs umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com\n\
             Host b\n  MACs -umac-64@openssh.com\n\
             Host c\n  KexAlgorithms curve25519-sha256,no-such-kex\n",
        );
        let a = resolve_in(&f, "a").unwrap();
        let p = a.ssh_config().algorithms.resolve().unwrap().preferred;
        assert_eq!(
            p.mac.iter().map(|n| n.as_ref()).collect::<Vec<_>>(),
            ["hmac-sha2-256-etm@openssh.com"]
        );
        assert!(p.kex.iter().any(|n| n.as_ref() == "curve25519-sha256"));
        assert!(!p.kex.iter().any(|n| n.as_ref().starts_with("sntrup")));
        let kinds: Vec<_> = a
            .warnings()
            .iter()
            .map(|w| (w.line(), w.kind().clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    2,
                    WarningKind::AlgorithmNotImplemented(
                        "sntrup761x25519-sha512@openssh.com".into()
                    )
                ),
                (
                    3,
                    WarningKind::AlgorithmNotImplemented("umac-128-etm@openssh.com".into())
                ),
            ]
        );
        // Removing an algorithm vmssh never offers leaves the defaults.
        let b = resolve_in(&f, "b").unwrap();
        assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
        let macs = |cfg: SshConfig| cfg.algorithms.resolve().unwrap().preferred.mac;
        assert_eq!(macs(b.ssh_config()), macs(SshConfig::new("x")));
        // A name no client knows is still an error, with its line.
        let e = resolve_in(&f, "c").unwrap_err();
        assert_eq!(line_of(&e), (f.clone(), Some(7)));
        assert!(e.to_string().contains("no-such-kex"), "{e}");
    }

    #[test]
    fn ready_ssh_config() {
        let dir = tempfile::tempdir().unwrap();
        let key = write(dir.path(), "id", "not a real key");
        let kh = dir.path().join("kh");
        let f = write(
            dir.path(),
            "c",
            &format!(
                "Host a\n  IdentityFile {}\n  IdentityFile {}/missing\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n  ConnectTimeout 7\n  \
                 ServerAliveInterval 0\n",
                key.display(),
                dir.path().display(),
                kh.display()
            ),
        );
        let a = resolve_in(&f, "a").unwrap();
        assert!(matches!(
            a.warnings()[0].kind(),
            WarningKind::MissingIdentity(_)
        ));
        let cfg = a.ssh_config();
        let shown = format!("{cfg:?}");
        assert!(shown.contains(&key.display().to_string()), "{shown}");
        assert!(!shown.contains("missing"), "{shown}");
        assert!(!shown.contains("Agent"), "{shown}");
        assert!(shown.contains("AcceptNew"), "{shown}");
        assert!(shown.contains("connect_timeout: 7s"), "{shown}");
        assert!(shown.contains("keepalive_interval: None"), "{shown}");
    }
}
