//! vmctl's VM state as an inventory: `vms.json` fixtures in vmctl's serde
//! shape (tests/vmctl-corpus/state), the targets a plan gives, and a
//! "vmctl VM" (an sshd on loopback described by such a state file)
//! provisioned end to end: file modes, `provision.log` byte for byte, a
//! changed host key refused, a recreated instance trusted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use vmssh::fleet::{Fleet, Outcome};
use vmssh::plan::Plan;
use vmssh::provision::ProvisionDef;
use vmssh::vmctl::{Backend, Inventory, Network};
use vmssh::{Error, VmctlErrorKind};

fn state(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vmctl-corpus/state")
        .join(name)
}

fn vmfile(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vmctl-corpus/vmfiles")
        .join(name)
}

fn plan(text: &str) -> Plan {
    Plan::parse(text, "VMFile.kdl", Path::new("/plans")).unwrap()
}

#[track_caller]
fn vmctl_error(e: Error) -> VmctlErrorKind {
    match e {
        Error::Vmctl { kind, .. } => kind,
        other => panic!("expected Error::Vmctl, got {other:?}"),
    }
}

#[tokio::test]
async fn reads_vmctl_state() {
    let inv = Inventory::load(&state("two-vms.json")).await.unwrap();
    assert_eq!(inv.path(), state("two-vms.json"));
    let names: Vec<&str> = inv.instances().map(|i| i.name()).collect();
    assert_eq!(names, ["devbox", "tiny"]);
    let devbox = inv.get("devbox").unwrap();
    assert_eq!(devbox.id(), "qemu-6f1c2a4e-8d3b-4c55-9a71-2b0e9f3d1c07");
    assert_eq!(devbox.backend(), Backend::Qemu);
    assert_eq!(devbox.network(), &Network::User);
    assert_eq!(devbox.ssh_host_port(), Some(43817));
    assert_eq!(devbox.ssh_address().unwrap().to_string(), "127.0.0.1:43817");
    assert_eq!(
        devbox.generated_key(),
        Path::new("/home/dev/.local/share/vmctl/vms/devbox/id_ed25519_generated")
    );

    let mixed = Inventory::load(&state("mixed.json")).await.unwrap();
    let bridged = mixed.get("bridged").unwrap();
    assert_eq!(
        bridged.network(),
        &Network::Tap {
            bridge: "br1".into()
        }
    );
    assert_eq!(bridged.ssh_address(), None);
    let zone = mixed.get("zone").unwrap();
    assert_eq!(zone.backend(), Backend::Propolis);
    assert_eq!(
        zone.network(),
        &Network::Vnic {
            name: "vnic0".into()
        }
    );
    assert_eq!(mixed.get("offline").unwrap().backend(), Backend::Noop);
    assert_eq!(mixed.get("offline").unwrap().network(), &Network::None);
    // Written by an older vmctl: network and ssh_host_port missing, as
    // vmctl's serde defaults allow.
    let legacy = mixed.get("legacy").unwrap();
    assert_eq!(legacy.network(), &Network::User);
    assert_eq!(legacy.ssh_host_port(), None);

    let empty = Inventory::load(&state("empty.json")).await.unwrap();
    assert_eq!(empty.instances().count(), 0);
}

/// What vmctl's serde refuses, vmssh refuses: its documentation's own
/// example (`"type": "User"`), an unknown backend, a handle without id.
#[tokio::test]
async fn refuses_what_vmctl_refuses() {
    for file in [
        "docs-example.json",
        "unknown-backend.json",
        "missing-id.json",
    ] {
        let err = Inventory::load(&state(file)).await.unwrap_err();
        let shown = err.to_string();
        match &err {
            Error::Vmctl {
                path,
                kind: VmctlErrorKind::Invalid,
                source,
            } => {
                assert_eq!(path, &state(file));
                assert!(source.is_some(), "{file}: the JSON error is the source");
            }
            other => panic!("{file}: {other:?}"),
        }
        assert!(shown.contains(file), "{shown}");
    }
    let missing = Inventory::load(&state("nope.json")).await.unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
}

#[tokio::test]
async fn targets_follow_vmctl() {
    let inv = Inventory::load(&state("two-vms.json")).await.unwrap();
    let full = Plan::load(&vmfile("docs-full.kdl")).await.unwrap();
    let targets = inv.targets(&full).unwrap();
    // Only devbox has steps: vmctl skips the others.
    assert_eq!(targets.len(), 1);
    let t = &targets[0];
    assert_eq!(t.name(), "devbox");
    assert_eq!((t.host(), t.port()), ("127.0.0.1", 43817));
    assert_eq!(t.config().user_name(), "ubuntu");
    assert_eq!(
        t.steps(),
        [
            ProvisionDef::inline(
                "sudo apt-get update && sudo apt-get install -y build-essential git"
            ),
            ProvisionDef::file("dotfiles/bashrc", "/home/ubuntu/.bashrc").mode(0o755),
            ProvisionDef::script("scripts/dev-tools.sh"),
        ]
    );
    assert_eq!(full.base_dir, vmfile("docs-full.kdl").parent().unwrap());
    // No private-key: the key vmctl generated in the work directory.
    let shown = format!("{t:?}");
    assert!(
        shown.contains("/home/dev/.local/share/vmctl/vms/devbox/id_ed25519_generated"),
        "{shown}"
    );
    // An explicit private-key wins.
    let own = plan(
        "vm \"devbox\" {\n  image \"x\"\n  ssh { private-key \"keys/dev\"; }\n  \
         provision \"shell\" { inline \"true\"; }\n}\n",
    );
    let t = &inv.targets(&own).unwrap()[0];
    assert_eq!(t.config().user_name(), "vm");
    let shown = format!("{t:?}");
    assert!(shown.contains("/plans/keys/dev"), "{shown}");
    assert!(!shown.contains("id_ed25519_generated"), "{shown}");
}

#[tokio::test]
async fn targets_name_what_is_missing() {
    let inv = Inventory::load(&state("mixed.json")).await.unwrap();
    let one = |vm: &str| {
        plan(&format!(
            "vm \"{vm}\" {{\n  image \"x\"\n  provision \"shell\" {{ inline \"true\"; }}\n}}\n"
        ))
    };
    match vmctl_error(inv.targets(&one("ghost")).unwrap_err()) {
        VmctlErrorKind::UnknownVm { vm, known } => {
            assert_eq!(vm, "ghost");
            assert_eq!(known, ["bridged", "legacy", "offline", "zone"]);
        }
        other => panic!("{other:?}"),
    }
    for (vm, mode) in [("bridged", "tap"), ("zone", "vnic"), ("offline", "no")] {
        let err = inv.targets(&one(vm)).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("fleet::Target::new(\"{vm}\", ADDRESS")),
            "{shown}"
        );
        match vmctl_error(err) {
            VmctlErrorKind::NoAddress { vm: v, network } => {
                assert_eq!((v.as_str(), network.as_str()), (vm, mode));
            }
            other => panic!("{vm}: {other:?}"),
        }
    }
    let err = inv.targets(&one("legacy")).unwrap_err();
    assert!(err.to_string().contains("ssh_host_port"), "{err}");
    assert!(matches!(vmctl_error(err), VmctlErrorKind::NoPort { vm } if vm == "legacy"));
    // A VM without steps is not looked up, as in vmctl.
    let quiet = plan("vm \"ghost\" {\n  image \"x\"\n}\n");
    assert!(inv.targets(&quiet).unwrap().is_empty());
}

/// A VM vmctl would have created: its work directory with the generated
/// key, and its handle in `vms.json`.
struct VmctlVm {
    name: &'static str,
    work_dir: PathBuf,
}

/// Writes vmctl's `vms.json` for `vms` (name, instance id, port), every
/// field as vmctl's `serde_json::to_string_pretty` writes a `VmHandle`.
fn write_state(path: &Path, vms: &[(&VmctlVm, &str, u16)]) {
    let mut map = serde_json::Map::new();
    for (vm, id, port) in vms {
        let w = |f: &str| vm.work_dir.join(f).display().to_string();
        map.insert(
            vm.name.to_string(),
            serde_json::json!({
                "id": id,
                "name": vm.name,
                "backend": "qemu",
                "work_dir": vm.work_dir,
                "overlay_path": w("overlay.qcow2"),
                "seed_iso_path": w("seed.iso"),
                "pid": 4242,
                "qmp_socket": w("qmp.sock"),
                "console_socket": w("console.sock"),
                "vnc_addr": null,
                "vcpus": 1,
                "memory_mb": 1024,
                "disk_gb": null,
                "network": {"type": "user"},
                "ssh_host_port": port,
                "mac_addr": "52:54:00:12:34:56",
                "uefi": false
            }),
        );
    }
    std::fs::write(path, serde_json::to_string_pretty(&map).unwrap()).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// vmctl's provision path, end to end, on two "vmctl VMs" (sshds on
/// loopback, user-mode: 127.0.0.1 and their port): the steps, user, key
/// and file modes vmctl would use, its `provision.log` byte for byte;
/// then the VM recreated on the same port with a new host key: refused
/// under the old instance id, trusted under a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn provisions_a_vmctl_vm() {
    let web_srv = support::sshd();
    let db_srv = support::sshd();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("vmctl");
    let state_path = data.join("vms.json");
    let out = root.path().join("guest");
    std::fs::create_dir_all(&out).unwrap();

    // The VMs' work directories, with the key `vmctl up` generated.
    let web = VmctlVm {
        name: "web",
        work_dir: data.join("vms/web"),
    };
    let db = VmctlVm {
        name: "db",
        work_dir: data.join("vms/db"),
    };
    for (vm, srv) in [(&web, &web_srv), (&db, &db_srv)] {
        std::fs::create_dir_all(&vm.work_dir).unwrap();
        let key = vm.work_dir.join("id_ed25519_generated");
        std::fs::copy(&srv.client_key().private, &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    write_state(
        &state_path,
        &[
            (&web, "qemu-aaaa0001", web_srv.port()),
            (&db, "qemu-bbbb0001", db_srv.port()),
        ],
    );

    // The project: a VMFile, a script, files with mode 0644 locally.
    let project = root.path().join("project");
    std::fs::create_dir_all(project.join("scripts")).unwrap();
    std::fs::create_dir_all(project.join("files")).unwrap();
    std::fs::write(
        project.join("scripts/hello.sh"),
        "#!/bin/sh\nprintf '\\377\\376 caf\\303\\251\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(
        project.join("scripts/hello.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(project.join("files/tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    std::fs::write(project.join("files/app.conf"), "key = value\n").unwrap();
    for f in ["files/tool.sh", "files/app.conf"] {
        std::fs::set_permissions(project.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let user = web_srv.user().to_string();
    let tool = out.join("bin/tool.sh");
    let conf = out.join("app.conf");
    let vmfile_text = format!(
        r#"vm "web" {{
    image-url "https://cloud-images.example.org/noble.img"
    cloud-init {{
        hostname "web"
    }}
    ssh {{
        user "{user}"
    }}
    provision "shell" {{
        inline "printf 'out1\nout2'; printf 'err1\n' >&2"
    }}
    provision "shell" {{
        script "scripts/hello.sh"
    }}
    provision "file" {{
        source "files/tool.sh"
        destination "{tool}"
    }}
    provision "file" {{
        source "files/app.conf"
        destination "{conf}"
        mode "0640"
    }}
    provision "shell" {{
        inline "true"
    }}
}}

vm "db" {{
    image-url "https://cloud-images.example.org/noble.img"
    ssh {{
        user "{user}"
    }}
    provision "shell" {{
        inline "echo before; echo oops >&2; exit 3"
    }}
    provision "shell" {{
        inline "echo never"
    }}
}}
"#,
        tool = tool.display(),
        conf = conf.display(),
    );
    let vmfile_path = project.join("VMFile.kdl");
    std::fs::write(&vmfile_path, vmfile_text).unwrap();

    let plan = Plan::load(&vmfile_path).await.unwrap();
    let warnings: Vec<String> = plan.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [format!(
            "{}:22: mode is a vmssh extension: vmctl ignores it and uploads with mode 0755",
            vmfile_path.display()
        )]
    );
    let inv = Inventory::load(&state_path).await.unwrap();
    let report = Fleet::new().provision(inv.targets(&plan).unwrap()).await;

    let web_report = report.get("web").unwrap();
    assert_eq!(web_report.outcome, Outcome::Succeeded, "{report}");
    assert_eq!(web_report.port, web_srv.port());
    let db_report = report.get("db").unwrap();
    assert_eq!(db_report.outcome, Outcome::Failed, "{report}");
    assert_eq!(db_report.failed_step(), Some(1));

    // vmctl's mode for every VMFile file, whatever the local mode; the
    // vmssh extension where asked.
    assert_eq!(mode_of(&tool), 0o755);
    assert_eq!(mode_of(&conf), 0o640);
    assert_eq!(std::fs::read(&tool).unwrap(), b"#!/bin/sh\necho tool\n");

    // provision.log as vmctl writes it, in each work directory.
    let web_log = format!(
        "=== Step 1: printf 'out1\nout2'; printf 'err1\n' >&2 ===\n\
         --- stdout ---\nout1\nout2\n--- stderr ---\nerr1\n\n\
         === Step 2: scripts/hello.sh ===\n\
         --- stdout ---\n\u{FFFD}\u{FFFD} caf\u{e9}\n\n\
         === Step 3: file-upload ===\n\
         --- stdout ---\n{p}/files/tool.sh -> {tool}\n\n\
         === Step 4: file-upload ===\n\
         --- stdout ---\n{p}/files/app.conf -> {conf}\n\n\
         === Step 5: true ===\n\n",
        p = project.display(),
        tool = tool.display(),
        conf = conf.display(),
    );
    let read_log = |vm: &VmctlVm| {
        String::from_utf8(std::fs::read(vm.work_dir.join("provision.log")).unwrap()).unwrap()
    };
    assert_eq!(read_log(&web), web_log);
    // A failing command is logged (then provisioning stops), as in vmctl.
    let db_log = "=== Step 1: echo before; echo oops >&2; exit 3 ===\n\
                  --- stdout ---\nbefore\n--- stderr ---\noops\n\n";
    assert_eq!(read_log(&db), db_log);
    // Nothing else left in the work directory but the known host key.
    let mut left: Vec<String> = std::fs::read_dir(&web.work_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["id_ed25519_generated", "provision.log", "vmssh_known_hosts"]
    );
    let known = std::fs::read_to_string(web.work_dir.join("vmssh_known_hosts")).unwrap();
    let key_only = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        known,
        format!("qemu-aaaa0001 {}\n", key_only(web_srv.host_key_line()))
    );

    // `vmctl reload`: the VM comes back on the same port with a new host
    // key. Under the old instance id that is a changed key: refused, and
    // nothing ran or was logged.
    let port = web_srv.port();
    let old_key = web_srv.host_key_line().to_string();
    drop(web_srv);
    let web_srv = support::Sshd::builder().port(port).start();
    assert_ne!(key_only(&old_key), key_only(web_srv.host_key_line()));
    std::fs::copy(
        &web_srv.client_key().private,
        web.work_dir.join("id_ed25519_generated"),
    )
    .unwrap();
    std::fs::remove_file(&tool).unwrap();
    let only_web = Plan::parse(
        std::fs::read_to_string(&vmfile_path)
            .unwrap()
            .split("vm \"db\"")
            .next()
            .unwrap(),
        "VMFile.kdl",
        &project,
    )
    .unwrap();
    let report = Fleet::new()
        .provision(inv.targets(&only_web).unwrap())
        .await;
    let r = report.get("web").unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{report}");
    let error = r.failure.as_ref().unwrap().to_string();
    assert!(error.contains("has changed"), "{error}");
    assert!(r.steps.is_empty());
    assert!(!tool.exists());
    assert_eq!(read_log(&web), web_log);

    // The recreated VM has a new instance id in vmctl's state: trusted
    // afresh, recorded next to the old one, provisioned, logged again.
    write_state(
        &state_path,
        &[
            (&web, "qemu-aaaa0002", port),
            (&db, "qemu-bbbb0001", db_srv.port()),
        ],
    );
    let inv = Inventory::load(&state_path).await.unwrap();
    let report = Fleet::new()
        .provision(inv.targets(&only_web).unwrap())
        .await;
    assert_eq!(
        report.get("web").unwrap().outcome,
        Outcome::Succeeded,
        "{report}"
    );
    assert_eq!(mode_of(&tool), 0o755);
    let known = std::fs::read_to_string(web.work_dir.join("vmssh_known_hosts")).unwrap();
    assert_eq!(
        known,
        format!(
            "qemu-aaaa0001 {}\nqemu-aaaa0002 {}\n",
            key_only(&old_key),
            key_only(web_srv.host_key_line())
        )
    );
    assert_eq!(read_log(&web), format!("{web_log}{web_log}"));
}
