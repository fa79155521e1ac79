//! A fleet of two real guests, one running OpenSSH's sshd and one dropbear,
//! connected while they boot and provisioned from one plan; each guest
//! reboots between two steps and `Fleet::reconnects` carries the plan on
//! into the new boot. Once with Debian 12's servers, once with Debian 13's
//! (OpenSSH 10 and its `PerSourcePenalties`: the boot-time connects, the
//! reboot's own session and the reconnect all come from one address).
//! And the guide's `vmssh demo --qemu 2`, as written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use vmssh::Chunk;
use vmssh::fleet::{Fleet, Target};
use vmssh::provision::{Event, ProvisionDef, Sink};
use vmssh_testkit::qemu::Guest;

use support::qemu::{self, Release};

/// Reboots a VM's guest once its step 1 has finished, and records every
/// VM's stdout and connects.
struct RebootAfterStep1 {
    guests: HashMap<String, Arc<Guest>>,
    stdout: Mutex<HashMap<String, Vec<u8>>>,
    connects: Mutex<HashMap<String, usize>>,
}

impl Sink for RebootAfterStep1 {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match event {
                Event::Connecting { vm, .. } => {
                    *self
                        .connects
                        .lock()
                        .unwrap()
                        .entry(vm.to_string())
                        .or_default() += 1;
                }
                Event::Output {
                    vm,
                    chunk: Chunk::Stdout(data),
                    ..
                } => {
                    self.stdout
                        .lock()
                        .unwrap()
                        .entry(vm.to_string())
                        .or_default()
                        .extend_from_slice(data);
                }
                Event::StepFinished { vm, step: 1, .. } => {
                    let guest = &self.guests[&**vm];
                    tokio::time::timeout(Duration::from_secs(90), guest.reboot())
                        .await
                        .expect("the reboot hung")
                        .unwrap();
                }
                _ => {}
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]
async fn two_guests_reconnect_across_reboots() {
    two_guests(Release::Bookworm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(vmssh_have_qemu_trixie),
    ignore = "needs QEMU and the Debian 13 VM image"
)]
async fn two_trixie_guests_reconnect_across_reboots() {
    two_guests(Release::Trixie).await;
}

async fn two_guests(release: Release) {
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("setup.sh"),
        "#!/bin/sh\nset -eu\necho \"setup on $(uname -n)\"\n",
    )
    .unwrap();
    std::fs::write(base.path().join("motd"), "provisioned by vmssh\n").unwrap();
    let steps = vec![
        ProvisionDef::inline("echo boot1=$(cat /proc/sys/kernel/random/boot_id)"),
        ProvisionDef::inline("echo boot2=$(cat /proc/sys/kernel/random/boot_id)"),
        ProvisionDef::script("setup.sh"),
        ProvisionDef::file("motd", "/etc/motd"),
        ProvisionDef::inline("cat /etc/motd"),
    ];

    let (a, b) = tokio::join!(
        release.boot(qemu::BOTH[0], "vm-openssh"),
        release.boot(qemu::BOTH[1], "vm-dropbear")
    );
    let guests: HashMap<String, Arc<Guest>> = [
        ("vm-openssh".to_string(), Arc::new(a)),
        ("vm-dropbear".to_string(), Arc::new(b)),
    ]
    .into();
    let targets = guests
        .iter()
        .map(|(name, g)| {
            Target::new(name, g.host(), g.port(), qemu::config(g), steps.clone())
                .base_dir(base.path())
        })
        .collect();
    let sink = Arc::new(RebootAfterStep1 {
        guests: guests.clone(),
        stdout: Mutex::default(),
        connects: Mutex::default(),
    });
    let report = Fleet::new()
        .connect_deadline(qemu::BOOT_DEADLINE)
        .reconnects(1)
        .shared_sink(sink.clone())
        .provision(targets)
        .await;

    for name in guests.keys() {
        let vm = report.get(name).unwrap();
        assert!(
            vm.failure.is_none(),
            "{name}: {:?}\nconsole:\n{}",
            vm.failure,
            guests[name].console()
        );
        assert_eq!(vm.steps.len(), 5, "{name}: {:?}", vm.steps);
        assert_eq!(
            sink.connects.lock().unwrap()[name],
            2,
            "{name} reconnected once"
        );
        let out = String::from_utf8(sink.stdout.lock().unwrap()[name].clone()).unwrap();
        let id = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{name}: no {key} in {out}"))
                .to_string()
        };
        assert_ne!(
            id("boot1="),
            id("boot2="),
            "{name}: step 2 ran before the reboot"
        );
        assert!(out.contains(&format!("setup on {name}")), "{out}");
        assert!(out.contains("provisioned by vmssh"), "{out}");
    }
    assert_eq!(report.succeeded().len(), 2);
}

/// docs/command-line.md's `demo --qemu 2`, as written: two guests booted
/// (one with OpenSSH's sshd, one with dropbear), provisioned from the demo
/// plan and stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_qemu), ignore = "needs QEMU and the VM image")]
async fn the_guides_qemu_demo_runs_as_written() {
    let line = cli_harness::doc_command(
        "docs/command-line.md",
        "cargo run --release -p vmssh-cli -- demo",
    );
    let args = line
        .strip_prefix("cargo run --release -p vmssh-cli -- ")
        .unwrap();
    assert_eq!(args, "demo --qemu 2");
    let dir = tempfile::tempdir().unwrap();
    let mut c = cli_harness::command(dir.path());
    c.args(args.split_whitespace());
    let o = cli_harness::run(c).await;
    cli_harness::assert_exit(&o, 0);
    let err = cli_harness::stderr(&o);
    assert!(err.contains("2 succeeded, 0 failed"), "{err}");
    assert!(
        err.contains("running OpenSsh") && err.contains("running Dropbear"),
        "{err}"
    );
}
