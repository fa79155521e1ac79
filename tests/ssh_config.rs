//! `vmssh::ssh_config` against OpenSSH's own resolution: for every alias of
//! a corpus of configuration files, `ssh -G -F FILE ALIAS` is the oracle
//! for the options, `ssh -v` (with a proxy command that exits at once, so
//! nothing leaves the machine) for the expanded identity files and proxy
//! commands, and each `ProxyJump` hop is checked against the `ssh -G` that
//! OpenSSH would run for it (`-l`, `-p`, `-J`). Bad files must fail in
//! both, ours naming the file and line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use vmssh::Error;
use vmssh::ssh_config::{self, Proxy, ResolvedHost, StrictHostKeyChecking};

/// Configuration files; `{DIR}` is the directory they are written to.
/// The first line lists the aliases to resolve.
const CORPUS: &[(&str, &str)] = &[
    (
        "basic.conf",
        "# aliases: web db1 db-backup other WEB web.example.invalid
Host web web.example.invalid
    HostName 10.9.0.10
    User deploy
    Port 2201
Host db* !db-backup
    User dba
    Port=2202
Host db-backup
    HostName backup.example.invalid
Host *
    User fallback
    Port 2299
    HostName %h.internal.invalid
",
    ),
    (
        "match.conf",
        "# aliases: a b c d e f
Host a
    HostName gw.example.invalid
Match host gw.example.invalid
    Port 2301
Match originalhost b
    User bob
Match user bob host b
    Port 2302
Match !host c* localuser *
    ServerAliveInterval 9
Match exec \"test %h = d\"
    User exec-d
Match host x,e,!f
    IdentitiesOnly yes
Host c
    Match host c
        HostKeyAlias Alias-C
Match all
    ConnectTimeout 17
",
    ),
    (
        "final.conf",
        "# aliases: a z
Host a
    HostName Real.Example.Invalid
Match final host real.example.invalid
    User final-user
Host real.example.invalid
    Port 2401
Match canonical
    ServerAliveCountMax 7
",
    ),
    (
        "include.conf",
        "# aliases: inc1 inc2 inc3 none
Host inc1
    Include {DIR}/inc.d/*.inc
Host inc2
    Include {DIR}/inc.d/b.inc {DIR}/missing-*.inc
    User inc2-user
Host *
    Include {DIR}/inc.d/nested.inc
",
    ),
    (
        "inc.d/a.inc",
        "# aliases:
Port 2501
Host inc3
    User inc3-from-a
",
    ),
    (
        "inc.d/b.inc",
        "# aliases:
User from-b
Match host inc2
    Port 2502
",
    ),
    (
        "inc.d/nested.inc",
        "# aliases:
HostName nested-%h.invalid
Include {DIR}/inc.d/deeper.inc
",
    ),
    (
        "inc.d/deeper.inc",
        "# aliases:
ConnectTimeout 1m5s
",
    ),
    (
        "tokens.conf",
        "# aliases: t1 t2 T3
Host t1
    HostName %h.tok.invalid
    User tokuser
    Port 2601
    IdentityFile ~/.ssh/id_%h_%p_%r
    IdentityFile %d/k_%u_%n_%i_%k_%%
    IdentityFile /keys/${HOME}/%L/%l/%C
    UserKnownHostsFile ~/kh_%h %d/kh2_%r
    ProxyCommand true %h %p %r %n %%
Host t2
    HostKeyAlias SomeAlias
    IdentityFile /k/%k
    IdentityFile none
    ProxyCommand true connect to %h:%p
Host T3
    HostName UPPER.tok.invalid
    IdentityFile /k/%h-%n
",
    ),
    (
        "jumps.conf",
        "# aliases: j-chain j-user j-uri j-none j-cmd-first j-jump-first j-nested j-ipv6
Host j-chain
    HostName 10.9.1.1
    ProxyJump hop1,hop2
Host j-user
    ProxyJump alice@hop3:2203
Host j-uri
    ProxyJump ssh://carol@hop1:2204
Host j-none
    ProxyJump none
    ProxyCommand true none-then-command %h
Host j-cmd-first
    ProxyCommand true cmd-first %h
    ProxyJump hop1
Host j-jump-first
    ProxyJump hop2
    ProxyCommand true never
Host j-nested
    ProxyJump hop4
Host j-ipv6
    ProxyJump [::1]:2299
Host hop1
    HostName 10.9.1.101
    User hop1-user
    ProxyJump hop-outer
Host hop2
    Port 2702
    ProxyJump hop-outer
Host hop4
    ProxyJump hop1
Host hop*
    User hop-default
",
    ),
    (
        "edge.conf",
        "# aliases: e1 e2 e3 e4 x.internal
Host !e1
    Port 2801 # a negation alone never matches
Host e1 !e1
    User never
Host e2
Host e3
    User e3user
Host e*
    ProxyCommand none
    ProxyJump hop-e
Host e4
    ProxyCommand true e4
Host *.internal
    HostName %h.example.invalid
    Port 2802
",
    ),
    (
        "options.conf",
        "# aliases: o1 o2 o3 o4 o5 o6
IgnoreUnknown UseKeychain,AddKeysToAgentX
HOST o1
\tSTRICTHOSTKEYCHECKING accept-new
\tIdentitiesOnly true
\tServerAliveInterval 1m
\tServerAliveCountMax 5
\tPort ssh
Host o2
    StrictHostKeyChecking no
    User \"quoted user\"
    HostKeyAlias o2.alias
    ConnectTimeout 0
Host o3
    StrictHostKeyChecking yes
    IdentityFile \"/path with/spaces\" # trailing comment
    UserKnownHostsFile none
Host o4
    StrictHostKeyChecking off
    SendEnv LANG LC_*
    ForwardAgent yes
    Compression yes
Host o5
    StrictHostKeyChecking ask
    IdentitiesOnly no
    UseKeychain yes
Host o6
    Protocol 2
    Cipher blowfish
    StrictHostKeyChecking=false
",
    ),
];

/// Files OpenSSH and vmssh must both refuse, with the line vmssh must name
/// (the file is the one named second).
const BAD: &[(&str, &str, &str, usize)] = &[
    (
        "unknown.conf",
        "unknown.conf",
        "Host a\n  Port 22\n  NoSuchOption yes\n",
        3,
    ),
    (
        "unknown-inactive.conf",
        "unknown-inactive.conf",
        "Host zzz\n  NoSuchOption yes\n",
        2,
    ),
    ("badport.conf", "badport.conf", "Host zzz\n  Port 0\n", 2),
    ("quotes.conf", "quotes.conf", "Host a\n  User \"open\n", 2),
    ("extra.conf", "extra.conf", "Host a\n  User a b\n", 2),
    ("noarg.conf", "noarg.conf", "Host a\n  User\n", 2),
    (
        "match-attr.conf",
        "match-attr.conf",
        "Match colour blue\n",
        1,
    ),
    ("match-all.conf", "match-all.conf", "Match all host a\n", 1),
    (
        "strict.conf",
        "strict.conf",
        "StrictHostKeyChecking maybe\n",
        1,
    ),
    ("jump.conf", "jump.conf", "Host a\n  ProxyJump a@:22\n", 2),
    (
        "loop.conf",
        "loop2.inc",
        "Host a\n  Include {DIR}/loop2.inc\n",
        2,
    ),
    (
        "unknown-in-include.conf",
        "bad.inc",
        "Include {DIR}/bad.inc\n",
        3,
    ),
];

const BAD_INCLUDES: &[(&str, &str)] = &[
    ("loop2.inc", "# two\nInclude {DIR}/loop.conf\n"),
    ("bad.inc", "Host a\n  User x\n  Bogus 1\n"),
];

fn ssh_bin() -> PathBuf {
    for p in ["/usr/bin/ssh", "/usr/local/bin/ssh"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("OpenSSH's ssh client is needed as the oracle (apt-get install openssh-client)");
}

fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text.replace("{DIR}", &dir.display().to_string())).unwrap();
        // OpenSSH refuses group- or world-writable included files.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

fn ssh(args: &[&str]) -> std::process::Output {
    Command::new(ssh_bin())
        .args(args)
        .stdin(Stdio::null())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap()
}

/// `ssh -G` output as key -> values (in order).
fn oracle(args: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut full = vec!["-G"];
    full.extend_from_slice(args);
    let out = ssh(&full);
    assert!(
        out.status.success(),
        "ssh {full:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    map
}

fn one<'a>(g: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    g.get(key)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or("")
}

/// `ssh -v` lines after `prefix`, with a proxy command that exits at once
/// unless `keep_proxy`.
fn verbose(args: &[&str], prefix: &str, keep_proxy: bool) -> Vec<String> {
    let mut full = vec!["-v", "-o", "BatchMode=yes"];
    if !keep_proxy {
        full.extend_from_slice(&["-o", "ProxyCommand=true"]);
    }
    full.extend_from_slice(args);
    let out = ssh(&full);
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
        .collect()
}

/// Compares one resolved host with OpenSSH, hops included. `args` are the
/// `ssh` arguments that select the host (`-F FILE [-l U] [-p P] [-J J] H`).
fn check(ours: &ResolvedHost, args: &[&str], what: &str) {
    let g = oracle(args);
    let ctx = format!("{what} (ssh -G {})", args.join(" "));
    assert_eq!(ours.alias(), one(&g, "host"), "host: {ctx}");
    assert_eq!(ours.host(), one(&g, "hostname"), "hostname: {ctx}");
    assert_eq!(ours.port().to_string(), one(&g, "port"), "port: {ctx}");
    assert_eq!(ours.user(), one(&g, "user"), "user: {ctx}");
    let only = if ours.identities_only() { "yes" } else { "no" };
    assert_eq!(only, one(&g, "identitiesonly"), "identitiesonly: {ctx}");
    let strict = match ours.strict_host_key_checking() {
        StrictHostKeyChecking::Yes => "true",
        StrictHostKeyChecking::No => "false",
        StrictHostKeyChecking::Ask => "ask",
        StrictHostKeyChecking::AcceptNew => "accept-new",
        other => panic!("new variant {other:?}"),
    };
    assert_eq!(strict, one(&g, "stricthostkeychecking"), "strict: {ctx}");
    assert_eq!(
        ours.host_key_alias().unwrap_or(""),
        one(&g, "hostkeyalias"),
        "hostkeyalias: {ctx}"
    );
    let timeout = ours
        .connect_timeout()
        .map(|t| t.as_secs().to_string())
        .unwrap_or_else(|| "none".to_string());
    let theirs = match one(&g, "connecttimeout") {
        "0" => "none",
        t => t,
    };
    assert_eq!(timeout, theirs, "connecttimeout: {ctx}");
    let interval = ours
        .server_alive_interval()
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .to_string();
    assert_eq!(
        interval,
        one(&g, "serveraliveinterval"),
        "serveraliveinterval: {ctx}"
    );
    assert_eq!(
        ours.server_alive_count_max().to_string(),
        one(&g, "serveralivecountmax"),
        "serveralivecountmax: {ctx}"
    );
    let known: Vec<String> = one(&g, "userknownhostsfile")
        .split(' ')
        .filter(|f| *f != "none" && !f.is_empty())
        .map(str::to_string)
        .collect();
    let ours_known: Vec<String> = ours
        .known_hosts_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(ours_known, known, "userknownhostsfile: {ctx}");

    // A -J would make ssh connect to the jump; it does not change the
    // identity files, so the identity check runs without it.
    let no_jump: Vec<&str> = match args.iter().position(|a| *a == "-J") {
        Some(i) => [&args[..i], &args[i + 2..]].concat(),
        None => args.to_vec(),
    };
    let identities: Vec<String> = verbose(&no_jump, "debug1: identity file ", false)
        .into_iter()
        .filter_map(|l| l.rsplit_once(" type ").map(|(f, _)| f.to_string()))
        .filter(|f| !f.ends_with("-cert"))
        .collect();
    let ours_ids: Vec<String> = ours
        .identity_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(ours_ids, identities, "identity files: {ctx}");

    match (ours.proxy(), g.get("proxyjump"), g.get("proxycommand")) {
        (None, None, None) => {}
        (Some(Proxy::Command(cmd)), None, Some(_)) => {
            let executed = verbose(args, "debug1: Executing proxy command: exec ", true);
            assert_eq!(executed, std::slice::from_ref(cmd), "proxy command: {ctx}");
        }
        (Some(Proxy::Jump(hop)), Some(spec), _) => {
            let spec = &spec[0];
            let (rest, last) = match spec.rsplit_once(',') {
                Some((r, l)) => (Some(r), l),
                None => (None, spec.as_str()),
            };
            let last = last.strip_prefix("ssh://").unwrap_or(last);
            let (user, hostport) = match last.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, last),
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, p) = v6.split_once(']').unwrap();
                (h, p.strip_prefix(':'))
            } else {
                match hostport.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hostport, None),
                }
            };
            let mut hop_args = vec![args[0], args[1]];
            if let Some(u) = user {
                hop_args.extend_from_slice(&["-l", u]);
            }
            if let Some(p) = port {
                hop_args.extend_from_slice(&["-p", p]);
            }
            if let Some(r) = rest {
                hop_args.extend_from_slice(&["-J", r]);
            }
            hop_args.push(host);
            check(hop, &hop_args, &format!("{what} -> hop {host}"));
        }
        (ours, jump, cmd) => {
            panic!(
                "proxy differs: ours {ours:?}, ssh proxyjump {jump:?} proxycommand {cmd:?}: {ctx}"
            )
        }
    }
}

#[tokio::test]
#[cfg_attr(not(vmssh_have_openssh_client), ignore = "needs OpenSSH's ssh client")]
async fn corpus_resolves_like_ssh_g() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), CORPUS);
    let mut checked = 0;
    for (name, text) in CORPUS {
        let aliases = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# aliases:"))
            .unwrap();
        let file = dir.path().join(name);
        let file_s = file.display().to_string();
        for alias in aliases.split_whitespace() {
            let ours = ssh_config::resolve_file(&file, alias)
                .await
                .unwrap_or_else(|e| panic!("{name} {alias}: {e}"));
            check(&ours, &["-F", &file_s, alias], &format!("{name} {alias}"));
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} aliases checked");
}

#[tokio::test]
#[cfg_attr(not(vmssh_have_openssh_client), ignore = "needs OpenSSH's ssh client")]
async fn bad_files_fail_in_both_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(&str, &str)> = BAD
        .iter()
        .map(|(name, _, text, _)| (*name, *text))
        .chain(BAD_INCLUDES.iter().copied())
        .collect();
    write_tree(dir.path(), &files);
    for (name, culprit, _, line) in BAD {
        let file = dir.path().join(name);
        let out = ssh(&["-G", "-F", &file.display().to_string(), "a"]);
        assert!(!out.status.success(), "ssh -G accepted {name}");
        match ssh_config::resolve_file(&file, "a").await {
            Err(Error::SshConfig {
                path, line: got, ..
            }) => {
                assert_eq!(
                    (path.as_path(), got),
                    (dir.path().join(culprit).as_path(), Some(*line)),
                    "{name}"
                );
            }
            other => panic!("{name}: expected an ssh_config error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn jump_loops_are_errors_not_recursion() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[(
            "c",
            "Host a\n  ProxyJump b\nHost b\n  ProxyJump c\nHost c\n  ProxyJump a\n",
        )],
    );
    let e = ssh_config::resolve_file(dir.path().join("c"), "a")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::SshConfig { line: Some(6), .. }), "{e:?}");
}

#[tokio::test]
async fn missing_explicit_file_is_an_error() {
    let e = ssh_config::resolve_file("/nonexistent/vmssh/config", "a")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::SshConfig { line: None, .. }), "{e:?}");
}

#[tokio::test]
async fn warnings_name_what_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), CORPUS);
    let o4 = ssh_config::resolve_file(dir.path().join("options.conf"), "o4")
        .await
        .unwrap();
    let shown: Vec<String> = o4.warnings().iter().map(|w| w.to_string()).collect();
    let file = dir.path().join("options.conf").display().to_string();
    for (line, opt) in [(19, "stricthostkeychecking"), (20, "sendenv")] {
        let prefix = format!("{file}:{line}: {opt}: ");
        assert!(
            shown.iter().any(|s| s.starts_with(&prefix)),
            "{prefix} not in {shown:#?}"
        );
    }
    // `ForwardAgent` (line 21) and `Compression` (line 22) are applied.
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(o4.forward_agent() && o4.ssh_config().forwards_agent());
}

/// The default files (`~/.ssh/config`, then `/etc/ssh/ssh_config` with
/// Debian's `Include`) against plain `ssh -G`, options only: a real user
/// file may name proxies, which must not run here.
#[tokio::test]
#[cfg_attr(not(vmssh_have_openssh_client), ignore = "needs OpenSSH's ssh client")]
async fn default_files_resolve_like_ssh_g() {
    let alias = "vmssh-default-files.invalid";
    let ours = ssh_config::resolve(alias).await.unwrap();
    let g = oracle(&[alias]);
    assert_eq!(ours.host(), one(&g, "hostname"));
    assert_eq!(ours.port().to_string(), one(&g, "port"));
    assert_eq!(ours.user(), one(&g, "user"));
}
