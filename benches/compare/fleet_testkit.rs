//! `fleet_testkit`: the fleet plan on 1,000 VMs (quick: 100) served by one
//! `vmssh_testkit::TestServer` in a process of its own (the bench binary
//! as `--child testkit_server`), for every contender: it is an SSH server
//! on a port. Unlike the sshd fleet, the server costs little, so the rows
//! are about the clients.

use crate::{Env, Report};

pub(crate) fn fleet_testkit(env: &Env, report: &mut Report) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = env.data.join("testkit-server");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(&env.exe)
        .args(["--child", "testkit_server", "--dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut field = |name: &str| -> String {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        line.strip_prefix(&format!("RESULT {name} "))
            .unwrap_or_else(|| panic!("testkit server: expected {name}, got {line:?}"))
            .to_string()
    };
    let port: u16 = field("port").parse().unwrap();
    let user = field("user");
    let (key, host_key_file) = (dir.join("client_key"), dir.join("host_key_line"));
    let login = crate::peers::Login {
        user: &user,
        key: &key,
        host_key_file: &host_key_file,
    };
    // Ansible needs minutes per hundred VMs here: it runs at a tenth of
    // the size, beside vmssh, in rows of their own.
    let (ansible, others): (Vec<&'static str>, Vec<&'static str>) = env
        .peers
        .for_scenario("fleet")
        .into_iter()
        .partition(|p| *p == "ansible");
    let vms = if env.quick { 100 } else { 1000 };
    let server = "one vmssh_testkit::TestServer (its own process, multi_thread(2) runtime; it offers \
                  chacha20-poly1305, aes256-gcm and aes-ctr, so the contenders' AES-GCM preference gives \
                  aes256-gcm there)";
    if !ansible.is_empty() {
        crate::fleet_run(
            env,
            report,
            &crate::FleetTarget {
                label: format!("fleet[testkit,{}]", vms / 10),
                server: server.into(),
                vms: vms / 10,
                ports: &[port],
                login,
                rounds: env.rounds(1, 1),
                peers: ansible,
                old: false,
                server_pids: Vec::new(),
            },
        );
    }
    crate::fleet_run(
        env,
        report,
        &crate::FleetTarget {
            label: format!("fleet[testkit,{vms}]"),
            server: server.into(),
            vms,
            ports: &[port],
            login,
            rounds: env.rounds(1, 1),
            peers: others,
            old: true,
            server_pids: Vec::new(),
        },
    );
    // Closing its stdin stops the server.
    drop(child.stdin.take());
    let _ = child.wait();
}
