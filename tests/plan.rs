//! Plans read from VMFile.kdl: valid files, each kind of mistake with its
//! line and message, and a corpus of mangled plans that must never panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use vmssh::Error;
use vmssh::plan::Plan;
use vmssh::provision::{ProvisionDef, StepKind};

const FULL: &str = r#"vm "webserver" {
    image-url "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
    vcpus 2
    memory 2048
    disk 20
    network "user"
    cloud-init {
        hostname "webserver"
    }
    ssh {
        user "ubuntu"
        private-key "keys/id_ed25519"
        port 2222
    }
    provision "shell" {
        inline "sudo apt-get update && sudo apt-get install -y nginx"
    }
    provision "shell" {
        script "scripts/setup.sh"
    }
    provision "file" {
        source "nginx.conf"
        destination "/etc/nginx/nginx.conf"
    }
}
"#;

const SHARED: &str = r#"// Steps for every host named on the command line.
provision "shell" {
    inline "uname -a"
}
provision "file" {
    source "motd"
    destination "/etc/motd"
}
"#;

const MULTI: &str = r#"vm "db" {
    ssh { user "postgres"; }
    provision "shell" { inline "echo db"; }
}
vm "web" {
    provision "shell" {
        inline "echo web"
        timeout 30
        env DEBIAN_FRONTEND="noninteractive" RETRIES=3
        sudo #true
    }
}
vm "bare" {
    image "bare.qcow2"
}
provision "shell" { inline "echo everyone"; }
"#;

fn parse(text: &str) -> Result<Plan, Error> {
    Plan::parse(text, "VMFile.kdl", Path::new("/plans/demo"))
}

/// Parses `text`, expecting an error on `line` whose reason contains `needle`.
#[track_caller]
fn invalid(text: &str, line: usize, needle: &str) {
    match parse(text) {
        Err(Error::Plan { origin, reason }) => {
            assert_eq!(origin, format!("VMFile.kdl:{line}"), "reason: {reason}");
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            );
        }
        Err(e) => panic!("expected Error::Plan, got {e:?}"),
        Ok(p) => panic!("expected an error, got {p:?}"),
    }
}

#[test]
fn full_vmfile() {
    let plan = parse(FULL).unwrap();
    assert_eq!(plan.base_dir, Path::new("/plans/demo"));
    assert!(plan.shared.is_empty());
    assert_eq!(plan.vms.len(), 1);
    let vm = &plan.vms[0];
    assert_eq!(vm.name, "webserver");
    assert_eq!(vm.ssh.user.as_deref(), Some("ubuntu"));
    assert_eq!(
        vm.ssh.private_key.as_deref(),
        Some(Path::new("/plans/demo/keys/id_ed25519"))
    );
    assert_eq!(vm.ssh.port, Some(2222));
    assert_eq!(
        vm.steps,
        vec![
            ProvisionDef::inline("sudo apt-get update && sudo apt-get install -y nginx"),
            ProvisionDef::script("scripts/setup.sh"),
            ProvisionDef::file("nginx.conf", "/etc/nginx/nginx.conf"),
        ]
    );
    assert_eq!(plan.steps_for("webserver"), vm.steps);
    assert!(plan.steps_for("other").is_empty());
}

#[test]
fn top_level_provisions() {
    let plan = parse(SHARED).unwrap();
    assert!(plan.vms.is_empty());
    assert_eq!(
        plan.shared,
        vec![
            ProvisionDef::inline("uname -a"),
            ProvisionDef::file("motd", "/etc/motd")
        ]
    );
    assert_eq!(plan.steps_for("anything"), plan.shared);
}

#[test]
fn several_vms_and_extensions() {
    let plan = parse(MULTI).unwrap();
    let names: Vec<&str> = plan.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["db", "web", "bare"]);
    assert_eq!(plan.vm("db").unwrap().ssh.user.as_deref(), Some("postgres"));
    assert_eq!(plan.vm("web").unwrap().ssh, Default::default());
    assert_eq!(
        plan.vm("web").unwrap().steps,
        vec![
            ProvisionDef::inline("echo web")
                .timeout(Duration::from_secs(30))
                .env("DEBIAN_FRONTEND", "noninteractive")
                .env("RETRIES", "3")
                .sudo(true)
        ]
    );
    assert!(plan.vm("bare").unwrap().steps.is_empty());
    // Shared steps first, then the VM's own.
    assert_eq!(
        plan.steps_for("db"),
        vec![
            ProvisionDef::inline("echo everyone"),
            ProvisionDef::inline("echo db")
        ]
    );
    assert_eq!(
        plan.steps_for("bare"),
        vec![ProvisionDef::inline("echo everyone")]
    );
}

#[test]
fn provision_without_type_is_shell_as_in_vmctl() {
    let plan = parse("provision {\n inline \"true\"\n}\n").unwrap();
    assert_eq!(plan.shared, vec![ProvisionDef::inline("true")]);
}

#[test]
fn tilde_is_the_home_directory() {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return;
    };
    let plan = parse("vm \"a\" {\n ssh { private-key \"~/.ssh/id\"; }\n provision \"shell\" { script \"~/s.sh\"; }\n}").unwrap();
    assert_eq!(plan.vms[0].ssh.private_key, Some(home.join(".ssh/id")));
    assert!(matches!(plan.vms[0].steps[0].kind(), StepKind::Script(p) if *p == home.join("s.sh")));
}

#[test]
fn mistakes_name_their_line() {
    invalid(
        "vm \"a\" {\n  provision \"shell\" {\n  }\n}\n",
        2,
        "provision \"shell\" needs exactly one of inline or script (found neither)",
    );
    invalid(
        "vm \"a\" {\n  provision \"shell\" {\n    inline \"x\"\n    script \"s.sh\"\n  }\n}\n",
        4,
        "provision \"shell\" needs exactly one of inline or script (found inline and script",
    );
    invalid(
        "provision \"shell\" {\n  inline \"x\"\n  inline \"y\"\n}\n",
        3,
        "needs exactly one of inline or script (found inline twice",
    );
    invalid(
        "\n\nprovision \"ansible\" {\n  playbook \"p.yml\"\n}\n",
        3,
        "unknown provision type \"ansible\" (expected \"shell\" or \"file\")",
    );
    invalid(
        "vm \"a\" {\n  provision \"file\" {\n    source \"a.conf\"\n  }\n}\n",
        2,
        "provision \"file\" needs source and destination (missing destination)",
    );
    invalid(
        "provision \"file\" {\n}\n",
        1,
        "provision \"file\" needs source and destination (missing both)",
    );
    invalid(
        "provision \"shell\" {\n  inline 42\n}\n",
        2,
        "inline expects a string argument (found 42)",
    );
    invalid(
        "provision \"shell\" {\n  inline\n}\n",
        2,
        "inline expects a string argument (found no argument)",
    );
    invalid(
        "provision \"shell\" {\n  inline \"a\" \"b\"\n}\n",
        2,
        "inline expects a string argument (found 2 arguments)",
    );
    invalid(
        "provision \"shell\" {\n  inline cmd=\"a\"\n}\n",
        2,
        "inline expects a string argument (found property cmd=\"a\")",
    );
    invalid(
        "provision \"shell\" {\n  inline \"  \"\n}\n",
        2,
        "inline expects a non-empty string",
    );
    invalid(
        "provision \"shell\"\n",
        1,
        "provision \"shell\" needs a body",
    );
    invalid(
        "provision 7 {\n inline \"x\"\n}\n",
        1,
        "provision expects a type string",
    );
}

#[test]
fn typos_inside_provision_and_ssh_are_errors() {
    invalid(
        "provision \"shell\" {\n  inlne \"x\"\n}\n",
        2,
        "unknown node \"inlne\" in provision \"shell\" (expected inline, script, timeout, env or sudo)",
    );
    invalid(
        "provision \"file\" {\n  source \"a\"\n  dest \"/b\"\n}\n",
        3,
        "unknown node \"dest\" in provision \"file\"",
    );
    invalid(
        "vm \"a\" {\n  ssh {\n    user \"u\"\n    prvate-key \"k\"\n  }\n}\n",
        4,
        "unknown node \"prvate-key\" in ssh (expected user, private-key or port)",
    );
    invalid(
        "vm \"a\" {\n  ssh {\n    port 70000\n  }\n}\n",
        3,
        "port expects an integer from 1 to 65535 (found 70000)",
    );
    invalid(
        "vm \"a\" {\n  ssh {\n    port \"22\"\n  }\n}\n",
        3,
        "port expects an integer from 1 to 65535 (found \"22\")",
    );
    invalid(
        "vm \"a\" {\n  ssh {\n    user \"u\"\n    user \"v\"\n  }\n}\n",
        4,
        "user given twice (first at line 3)",
    );
    invalid(
        "vm \"a\" {\n  ssh { }\n  ssh { }\n}\n",
        3,
        "ssh given twice in vm \"a\" (first at line 2)",
    );
    invalid(
        "provision \"shell\" {\n  inline \"x\"\n  timeout \"5m\"\n}\n",
        3,
        "timeout expects a positive number of seconds",
    );
    invalid(
        "provision \"shell\" {\n  inline \"x\"\n  env \"A\"\n}\n",
        3,
        "env expects NAME=\"value\" properties",
    );
    invalid(
        "provision \"shell\" {\n  inline \"x\"\n  sudo \"yes\"\n}\n",
        3,
        "sudo expects #true or #false",
    );
}

#[test]
fn vm_blocks() {
    // vmctl's own nodes are ignored, so are unknown ones; misspelled
    // provision/ssh are not.
    assert!(
        parse(
            "vm \"a\" {\n  image-url \"x\"\n  gpu 1\n  provision \"shell\" { inline \"x\"; }\n}\n"
        )
        .is_ok()
    );
    invalid(
        "vm \"a\" {\n  image-url \"x\"\n  provison \"shell\" {\n  }\n}\n",
        3,
        "unknown node \"provison\" in vm \"a\" (did you mean provision?)",
    );
    invalid(
        "vm \"a\" {\n  shh { user \"u\"; }\n}\n",
        2,
        "unknown node \"shh\" in vm \"a\" (did you mean ssh?)",
    );
    invalid(
        "provisions \"shell\" {\n  inline \"x\"\n}\n",
        1,
        "unknown node \"provisions\" at the top level (did you mean provision?)",
    );
    invalid(
        "vm \"a\" {\n}\n\nvm \"a\" {\n}\n",
        4,
        "duplicate vm name \"a\" (first defined at line 1)",
    );
    invalid("vm {\n}\n", 1, "vm expects a name string");
    invalid("vm 3 {\n}\n", 1, "vm expects a name string");
    invalid("vm \"a\"\n", 1, "vm \"a\" needs a body");
    invalid(
        "ssh {\n  user \"u\"\n}\nvm \"a\" {\n}\n",
        1,
        "ssh at the top level is not supported",
    );
    invalid(
        "// nothing here\nsettings {\n}\n",
        1,
        "no vm block and no top-level provision found",
    );
}

#[test]
fn kdl_syntax_errors_have_their_line() {
    invalid(
        "vm \"a\" {\n  provision \"shell\" {\n    inline \"unterminated\n  }\n}\n",
        3,
        "invalid KDL: Unexpected newline in single-line quoted string",
    );
    invalid(
        "vm \"a\" {\n  provision \"shell\" {\n    inline \"x\"\n}\n",
        1,
        "invalid KDL: No closing '}' for child block",
    );
    // KDL 1 keywords are not KDL 2.
    invalid(
        "vm \"a\" {\n  provision \"shell\" {\n    inline \"x\"\n    sudo true\n  }\n}\n",
        4,
        "invalid KDL",
    );
}

#[tokio::test]
async fn load_resolves_against_the_file_and_checks_local_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/setup.sh"), "echo hi\n").unwrap();
    let file = dir.path().join("VMFile.kdl");
    std::fs::write(&file, FULL).unwrap();

    let plan = Plan::load(&file).await.unwrap();
    assert_eq!(plan.base_dir, dir.path());
    assert_eq!(
        plan.vms[0].ssh.private_key.as_deref(),
        Some(dir.path().join("keys/id_ed25519").as_path())
    );
    match plan.check_local_files().await {
        Err(Error::Plan { origin, reason }) => {
            assert_eq!(origin, format!("{}:12", file.display()));
            assert!(
                reason.starts_with("private-key keys/id_ed25519 cannot be read"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/id_ed25519"), "k").unwrap();
    match plan.check_local_files().await {
        Err(Error::Plan { origin, reason }) => {
            assert_eq!(origin, format!("{}:22", file.display()));
            assert!(
                reason.starts_with("source nginx.conf cannot be read"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.path().join("nginx.conf"), "events {}\n").unwrap();
    plan.check_local_files().await.unwrap();

    let missing = Plan::load(&dir.path().join("nope.kdl")).await.unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
}

/// Deterministic mutations of the valid plans: every prefix, every byte
/// dropped or doubled, neighbours swapped, structural characters replaced.
fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for base in [FULL, SHARED, MULTI] {
        let chars: Vec<char> = base.chars().collect();
        let s = |v: &[char]| v.iter().collect::<String>();
        for i in 0..=chars.len() {
            out.push(s(&chars[..i]));
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
fn seed_corpus_never_panics() {
    let corpus = corpus();
    assert!(corpus.len() > 500, "corpus has {} entries", corpus.len());
    let (mut ok, mut err) = (0, 0);
    for text in &corpus {
        match parse(text) {
            Ok(_) => ok += 1,
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
