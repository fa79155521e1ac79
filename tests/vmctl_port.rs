//! The guide's port of vmctl's SSH layer (docs/vmctl.md, "Porting vmctl")
//! runs: its two files, kept in `tests/vmctl_port/` and checked to be the
//! guide's text, compiled against stand-ins for vmctl's own types and run
//! against sshd and dropbear: a key that lands late, commands, an upload,
//! and a plan whose failing step comes back as vmctl's error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unreachable_pub, dead_code)]

extern crate futures as futures_util;

use std::time::{Duration, Instant};

use support::{Server, on_both_servers};

#[path = "vmctl_port/provision.rs"]
mod provision;
#[path = "vmctl_port/ssh.rs"]
mod ssh;

/// vmctl's types the port uses, as vm-manager defines them.
mod error {
    #[derive(Debug)]
    pub enum VmError {
        SshFailed {
            detail: String,
        },
        ProvisionFailed {
            vm: String,
            step: usize,
            detail: String,
        },
    }
    pub type Result<T> = std::result::Result<T, VmError>;
}

mod types {
    #[derive(Debug, Clone)]
    pub struct SshConfig {
        pub user: String,
        pub public_key: Option<String>,
        pub private_key_path: Option<std::path::PathBuf>,
        pub private_key_pem: Option<String>,
    }
}

mod vmfile {
    pub enum ProvisionDef {
        Shell(ShellProvision),
        File(FileProvision),
    }
    pub struct ShellProvision {
        pub inline: Option<String>,
        pub script: Option<String>,
    }
    pub struct FileProvision {
        pub source: String,
        pub destination: String,
    }
}

use error::VmError;
use vmfile::{FileProvision, ProvisionDef, ShellProvision};

#[test]
fn the_files_are_the_guides() {
    let guide = include_str!("../docs/vmctl.md");
    for (name, text) in [
        ("ssh.rs", include_str!("vmctl_port/ssh.rs")),
        ("provision.rs", include_str!("vmctl_port/provision.rs")),
    ] {
        assert!(
            guide.contains(text),
            "docs/vmctl.md does not show tests/vmctl_port/{name} as it is"
        );
        let lines = text.lines().count();
        assert!(lines < 100, "{name}: {lines} lines");
    }
}

async fn the_port_works(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let late = support::ed25519_key(dir.path(), "late");
    let config = types::SshConfig {
        user: srv.user().to_string(),
        public_key: None,
        private_key_path: Some(late.private.clone()),
        private_key_pem: None,
    };
    // The key lands a second after vmctl starts connecting.
    let start = Instant::now();
    let lands = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        srv.authorize(&late.public_line);
    };
    let connect = ssh::connect_with_retry(srv.host(), srv.port(), &config, Duration::from_secs(60));
    let ((), sess) = tokio::join!(lands, connect);
    let sess = sess.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));

    let (out, err, code) = ssh::exec(&sess, "echo out; echo err >&2; exit 4")
        .await
        .unwrap();
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 4));
    let (mut to_out, mut to_err) = (Vec::new(), Vec::new());
    let (out, _, code) = ssh::exec_streaming(
        &sess,
        "printf 'a\\nb'; echo c >&2",
        &mut to_out,
        &mut to_err,
    )
    .await
    .unwrap();
    assert_eq!((out.as_str(), code), ("a\nb", 0));
    assert_eq!(
        (to_out.as_slice(), to_err.as_slice()),
        (&b"a\nb"[..], &b"c\n"[..])
    );

    let guest = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.conf"), "x = 1\n").unwrap();
    let remote = guest.path().join("app.conf");
    ssh::upload(&sess, &dir.path().join("app.conf"), &remote)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "x = 1\n");

    let shell = |cmd: &str| {
        ProvisionDef::Shell(ShellProvision {
            inline: Some(cmd.to_string()),
            script: None,
        })
    };
    let g = guest.path().display();
    let plan = [
        shell("echo first"),
        ProvisionDef::File(FileProvision {
            source: "app.conf".into(),
            destination: format!("{g}/copy.conf"),
        }),
        shell("echo partial; echo 'it broke' >&2; exit 3"),
        shell(&format!("touch '{g}/after'")),
    ];
    let logs = tempfile::tempdir().unwrap();
    let err = provision::run_provisions(&sess, &plan, dir.path(), "vm1", Some(logs.path()))
        .await
        .unwrap_err();
    match err {
        VmError::ProvisionFailed { vm, step, detail } => {
            assert_eq!((vm.as_str(), step), ("vm1", 3));
            assert_eq!(detail, "exit status 3\nstdout: partial\nstderr: it broke");
        }
        other => panic!("{other:?}"),
    }
    assert!(!guest.path().join("after").exists());
    let log = std::fs::read_to_string(logs.path().join("provision.log")).unwrap();
    assert!(
        log.starts_with("=== Step 1: echo first ===\n--- stdout ---\nfirst\n\n"),
        "{log}"
    );

    // A key that is not the guest's: refused until the deadline, saying so.
    let stranger = support::ed25519_key(dir.path(), "stranger");
    let config = types::SshConfig {
        private_key_path: Some(stranger.private.clone()),
        ..config
    };
    let err = ssh::connect_with_retry(srv.host(), srv.port(), &config, Duration::from_secs(3))
        .await
        .unwrap_err();
    let VmError::SshFailed { detail } = err else {
        panic!("{err:?}");
    };
    assert!(
        detail.starts_with("connect: authentication as "),
        "{detail}"
    );
    assert!(detail.contains("kept failing for"), "{detail}");
}
on_both_servers!(the_port_works);
