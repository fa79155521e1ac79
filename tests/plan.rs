//! Plans read from VMFile.kdl as vmctl reads them: a corpus of VMFiles in
//! vmctl's grammar (tests/vmctl-corpus/vmfiles), each with its expected
//! reading (steps, user, key, warnings) or error; vmssh's extensions; and
//! mangled plans that must never panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vmssh::Error;
use vmssh::plan::{Plan, WarningKind};
use vmssh::provision::{ProvisionDef, StepKind};

const BASE: &str = "/plans";

fn parse(text: &str) -> Result<Plan, Error> {
    Plan::parse(text, "VMFile.kdl", Path::new(BASE))
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vmctl-corpus/vmfiles")
}

/// `~` for the home directory, so that expectations do not depend on it.
fn shown(p: &Path) -> String {
    let s = p.display().to_string();
    match std::env::var("HOME") {
        Ok(home) if !home.is_empty() && s.starts_with(&home) => format!("~{}", &s[home.len()..]),
        _ => s,
    }
}

fn render_step(out: &mut String, n: usize, step: &ProvisionDef) {
    let plain = match step.kind() {
        StepKind::Inline(cmd) => {
            write!(out, "  {n} inline {cmd:?}").unwrap();
            ProvisionDef::inline(cmd.clone())
        }
        StepKind::Script(p) => {
            write!(out, "  {n} script {}", shown(p)).unwrap();
            ProvisionDef::script(p.clone())
        }
        StepKind::File {
            source,
            destination,
        } => {
            write!(out, "  {n} file {} -> {destination}", shown(source)).unwrap();
            // vmctl's mode; another one is a vmssh extension.
            ProvisionDef::file(source.clone(), destination.clone()).mode(0o755)
        }
        other => panic!("unexpected step kind {other:?}"),
    };
    // Extension values are checked one by one in `extensions_are_applied`.
    if *step != plain {
        out.push_str(" (with extensions)");
    }
    out.push('\n');
}

/// The reading of a plan as text: VMs with user, key and steps, shared
/// steps, then warnings.
fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for vm in &plan.vms {
        writeln!(out, "vm {:?}", vm.name).unwrap();
        writeln!(out, "  user {}", vm.user()).unwrap();
        match &vm.ssh.private_key {
            Some(k) => writeln!(out, "  key {}", shown(k)).unwrap(),
            None => writeln!(out, "  key generated").unwrap(),
        }
        if let Some(port) = vm.ssh.port {
            writeln!(out, "  port {port}").unwrap();
        }
        for (i, step) in vm.steps.iter().enumerate() {
            render_step(&mut out, i + 1, step);
        }
    }
    if !plan.shared.is_empty() {
        out.push_str("shared\n");
        for (i, step) in plan.shared.iter().enumerate() {
            render_step(&mut out, i + 1, step);
        }
    }
    for w in plan.warnings() {
        let kind = match w.kind() {
            WarningKind::Ignored => "ignored",
            WarningKind::Extension => "extension",
            WarningKind::VmctlRefuses => "vmctl-refuses",
            other => panic!("unexpected warning kind {other:?}"),
        };
        assert_eq!(w.file(), "VMFile.kdl");
        assert_eq!(
            w.to_string(),
            format!("VMFile.kdl:{}: {}", w.line(), w.message())
        );
        writeln!(out, "warning {} {kind}: {}", w.line(), w.message()).unwrap();
    }
    out
}

/// Every `NAME.kdl` of the corpus reads as `NAME.expect` says: the
/// rendering above, or `error LINE: REASON` (REASON a prefix of the
/// plan error's reason).
#[test]
fn vmctl_corpus() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 30, "corpus has {} files", entries.len());
    let mut failures = Vec::new();
    for kdl in &entries {
        let text = std::fs::read_to_string(kdl).unwrap();
        let expected = std::fs::read_to_string(kdl.with_extension("expect"))
            .unwrap_or_else(|e| panic!("{}: no .expect file: {e}", kdl.display()));
        let name = kdl.file_name().unwrap().to_string_lossy().into_owned();
        match (parse(&text), expected.strip_prefix("error ")) {
            (Ok(plan), None) => {
                let got = render(&plan);
                if got != expected {
                    failures.push(format!(
                        "{name}: reading differs\n--- expected\n{expected}--- got\n{got}"
                    ));
                }
            }
            (Err(Error::Plan { origin, reason }), Some(want)) => {
                let (line, want_reason) = want.trim_end().split_once(": ").unwrap();
                if origin != format!("VMFile.kdl:{line}") || !reason.starts_with(want_reason) {
                    failures.push(format!(
                        "{name}: expected error {line}: {want_reason}\n  got {origin}: {reason}"
                    ));
                }
            }
            (Ok(plan), Some(want)) => failures.push(format!(
                "{name}: expected error {want}  got a plan:\n{}",
                render(&plan)
            )),
            (Err(e), _) => failures.push(format!("{name}: unexpected error {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The corpus really covers each difference from vmctl the issue lists:
/// if a file is renamed or emptied, this says which case went missing.
#[test]
fn corpus_covers_each_difference() {
    let dir = corpus_dir();
    let expect = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let cases = [
        ("repeated-fields.expect", "vmctl reads only the first"),
        (
            "unknown-nodes.expect",
            "unknown node \"identity\" in ssh ignored",
        ),
        ("args-and-properties.expect", "property when=\"always\""),
        (
            "args-and-properties.expect",
            "extra argument \"second-name\"",
        ),
        ("defaults.expect", "user vm"),
        ("docs-full.expect", "key generated"),
        ("extensions.expect", "provision outside a vm block"),
        ("quoted-names.expect", "written in quotes"),
        ("vmctl-refuses.expect", "no image or image-url"),
        ("error-no-vm.expect", "no vm block"),
        ("error-duplicate.expect", "duplicate vm name"),
        ("error-shell-both.expect", "exactly one of inline or script"),
        (
            "error-file-no-source.expect",
            "needs source and destination",
        ),
    ];
    for (file, needle) in cases {
        assert!(expect(file).contains(needle), "{file} lacks {needle:?}");
    }
}

/// A step missing a field because it is misspelt says which node was
/// probably meant, as an unknown node's warning does.
#[test]
fn a_misspelt_field_is_named_in_the_error() {
    let cases = [
        (
            "vm \"a\" {\n  provision \"shell\" {\n    inlne \"true\"\n  }\n}\n",
            "VMFile.kdl:2",
            "provision \"shell\" needs exactly one of inline or script (found neither) \
             (did you mean inline? line 3 has \"inlne\")",
        ),
        (
            "vm \"a\" {\n  provision \"file\" {\n    sorce \"a\"\n    destination \"/b\"\n  }\n}\n",
            "VMFile.kdl:2",
            "provision \"file\" needs source and destination (missing source) \
             (did you mean source? line 3 has \"sorce\")",
        ),
    ];
    for (text, want_origin, want_reason) in cases {
        match parse(text) {
            Err(Error::Plan { origin, reason }) => {
                assert_eq!(
                    (origin.as_str(), reason.as_str()),
                    (want_origin, want_reason)
                );
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn user_defaults_to_vm() {
    let plan = parse(
        "vm \"a\" {\n  image \"x\"\n}\nvm \"b\" {\n  image \"x\"\n  ssh {\n  }\n}\n\
         vm \"c\" {\n  image \"x\"\n  ssh { user \"ubuntu\"; }\n}\n",
    )
    .unwrap();
    assert_eq!(plan.vm("a").unwrap().user(), "vm");
    assert_eq!(plan.vm("b").unwrap().user(), "vm");
    assert_eq!(plan.vm("b").unwrap().ssh.user, None);
    assert_eq!(plan.vm("c").unwrap().user(), "ubuntu");
    assert!(plan.warnings().is_empty(), "{:?}", plan.warnings());
}

#[test]
fn extensions_are_applied() {
    let text = std::fs::read_to_string(corpus_dir().join("extensions.kdl")).unwrap();
    let plan = parse(&text).unwrap();
    assert_eq!(plan.shared, vec![ProvisionDef::inline("uname -a")]);
    let vm = plan.vm("extended").unwrap();
    assert_eq!(vm.ssh.port, Some(2222));
    assert_eq!(
        vm.steps,
        vec![
            ProvisionDef::inline("apt-get install -y nginx")
                .timeout(Duration::from_secs(300))
                .env("DEBIAN_FRONTEND", "noninteractive")
                .env("RETRIES", "3")
                .sudo(true)
        ]
    );
    // Shared steps first, then the VM's own.
    assert_eq!(
        plan.steps_for("extended"),
        vec![plan.shared[0].clone(), vm.steps[0].clone()]
    );
    assert_eq!(plan.steps_for("elsewhere"), plan.shared);
    let kinds: Vec<WarningKind> = plan.warnings().iter().map(|w| w.kind()).collect();
    assert_eq!(kinds, vec![WarningKind::Extension; 6]);
}

/// File steps of a VMFile are uploaded with mode 0755, as vmctl does;
/// `mode` (a child or a property) is a vmssh extension.
#[test]
fn file_modes() {
    let text = std::fs::read_to_string(corpus_dir().join("file-modes.kdl")).unwrap();
    let plan = parse(&text).unwrap();
    assert_eq!(
        plan.vm("modes").unwrap().steps,
        vec![
            ProvisionDef::file("bin/tool", "/usr/local/bin/tool").mode(0o755),
            ProvisionDef::file("motd", "/etc/motd").mode(0o644),
            ProvisionDef::file("secret", "/etc/secret").mode(0o600),
        ]
    );
    for bad in [
        "mode \"rw-r--r--\"",
        "mode 644",
        "mode \"99\"",
        "mode \"17777\"",
    ] {
        let text = format!(
            "vm \"a\" {{\n  image \"x\"\n  provision \"file\" {{\n    source \"a\"\n    destination \"/a\"\n    {bad}\n  }}\n}}\n"
        );
        match parse(&text) {
            Err(Error::Plan { origin, reason }) => {
                assert_eq!(origin, "VMFile.kdl:6", "{bad}");
                assert!(
                    reason.starts_with("mode expects an octal mode string"),
                    "{bad}: {reason}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn tilde_is_the_home_directory() {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        panic!("HOME is not set");
    };
    let plan = parse(
        "vm \"a\" {\n image \"x\"\n ssh { private-key \"~/.ssh/id\"; }\n \
         provision \"shell\" { script \"~/s.sh\"; }\n}",
    )
    .unwrap();
    assert_eq!(plan.vms[0].ssh.private_key, Some(home.join(".ssh/id")));
    assert!(matches!(plan.vms[0].steps[0].kind(), StepKind::Script(p) if *p == home.join("s.sh")));
}

/// Malformed vmssh extensions are errors: the file uses vmssh's grammar,
/// and a typo there must stop the run.
#[test]
fn malformed_extensions_are_errors() {
    let cases = [
        (
            "port 70000",
            "port expects an integer from 1 to 65535 (found 70000)",
        ),
        (
            "port \"22\"",
            "port expects an integer from 1 to 65535 (found \"22\")",
        ),
    ];
    for (line, reason) in cases {
        let text = format!("vm \"a\" {{\n  image \"x\"\n  ssh {{\n    {line}\n  }}\n}}\n");
        match parse(&text) {
            Err(Error::Plan { origin, reason: r }) => {
                assert_eq!(origin, "VMFile.kdl:4");
                assert_eq!(r, reason);
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    let shell = [
        ("timeout 0", "timeout expects a positive number of seconds"),
        ("env \"A\"", "env expects NAME=\"value\" properties"),
        ("env \"1A\"=\"x\"", "env variable name \"1A\" is not valid"),
        ("sudo \"yes\"", "sudo expects #true or #false"),
    ];
    for (line, reason) in shell {
        let text = format!(
            "vm \"a\" {{\n  image \"x\"\n  provision \"shell\" {{\n    inline \"x\"\n    {line}\n  }}\n}}\n"
        );
        match parse(&text) {
            Err(Error::Plan { origin, reason: r }) => {
                assert_eq!(origin, "VMFile.kdl:5", "{line}");
                assert!(r.starts_with(reason), "{line}: {r}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn load_resolves_against_the_file_and_checks_local_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/dev-tools.sh"), "echo hi\n").unwrap();
    let file = dir.path().join("VMFile.kdl");
    std::fs::copy(corpus_dir().join("docs-full.kdl"), &file).unwrap();

    let plan = Plan::load(&file).await.unwrap();
    assert_eq!(plan.base_dir, dir.path());
    assert_eq!(
        plan.vm("bridged").unwrap().ssh.private_key.as_deref(),
        Some(dir.path().join("keys/bridged_ed25519").as_path())
    );
    for w in plan.warnings() {
        assert!(
            w.to_string().starts_with(&format!("{}:", file.display())),
            "{w}"
        );
    }
    match plan.check_local_files().await {
        Err(Error::Plan { origin, reason }) => {
            assert_eq!(origin, format!("{}:24", file.display()));
            assert!(
                reason.starts_with("source dotfiles/bashrc cannot be read"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::create_dir_all(dir.path().join("dotfiles")).unwrap();
    std::fs::write(dir.path().join("dotfiles/bashrc"), "set -o vi\n").unwrap();
    match plan.check_local_files().await {
        Err(Error::Plan { origin, reason }) => {
            assert_eq!(origin, format!("{}:49", file.display()));
            assert!(
                reason.starts_with("private-key keys/bridged_ed25519 cannot be read"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/bridged_ed25519"), "k").unwrap();
    plan.check_local_files().await.unwrap();

    // A bare file name resolves against ".", as vmctl's does.
    let here = Plan::parse("vm \"a\" { image \"x\"; }", "VMFile.kdl", Path::new("."));
    assert_eq!(here.unwrap().base_dir, Path::new("."));

    let missing = Plan::load(&dir.path().join("nope.kdl")).await.unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
}

/// Deterministic mutations of the corpus: every prefix, every byte
/// dropped or doubled, neighbours swapped, structural characters replaced.
fn mutations() -> Vec<String> {
    let mut out = Vec::new();
    for base in ["extensions.kdl", "unknown-nodes.kdl", "quoted-names.kdl"] {
        let text = std::fs::read_to_string(corpus_dir().join(base)).unwrap();
        let chars: Vec<char> = text.chars().collect();
        let s = |v: &[char]| v.iter().collect::<String>();
        for i in 0..=chars.len() {
            if i % 2 == 0 {
                out.push(s(&chars[..i]));
            }
        }
        for i in 0..chars.len() {
            if i % 3 == 0 {
                let mut dropped = chars.clone();
                dropped.remove(i);
                out.push(s(&dropped));
            }
            if i % 7 == 0 {
                let mut doubled = chars.clone();
                doubled.insert(i, chars[i]);
                out.push(s(&doubled));
            }
            if i + 1 < chars.len() && i % 5 == 1 {
                let mut swapped = chars.clone();
                swapped.swap(i, i + 1);
                out.push(s(&swapped));
            }
        }
        for (i, c) in chars.iter().enumerate() {
            if matches!(c, '"' | '{' | '}' | ';' | '\n' | ' ') && i % 3 == 0 {
                for r in ['"', '}', '#', '\\', 'é', '\0', '\u{feff}'] {
                    let mut v = chars.clone();
                    v[i] = r;
                    out.push(s(&v));
                }
            }
        }
    }
    out
}

#[test]
fn mutated_plans_never_panic() {
    let corpus = mutations();
    assert!(corpus.len() > 500, "corpus has {} entries", corpus.len());
    let (mut ok, mut err) = (0, 0);
    for text in &corpus {
        match parse(text) {
            Ok(plan) => {
                ok += 1;
                for w in plan.warnings() {
                    assert!(w.line() >= 1 && w.line() <= text.lines().count().max(1) + 1);
                }
            }
            Err(Error::Plan { origin, reason }) => {
                err += 1;
                let line: usize = origin.rsplit(':').next().unwrap().parse().unwrap();
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "{origin} for {text:?}"
                );
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("unexpected error kind {e:?} for {text:?}"),
        }
    }
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}
