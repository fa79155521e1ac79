//! `fleet_server_cost`: what the servers spend per VM on each part of the
//! fleet plan, vmssh alone: the fleet's 200 VMs (quick: 50) on the same
//! four sshds, with the plan cut short: connecting only, one bare command
//! (`true`), three, the plan's command, then its file step, then its
//! script. The server's CPU is what the listeners reaped (see
//! [`measure::reaped_tree_cpu_secs`]): on a busy fleet it is most of the
//! machine's, and it is the floor under any client's wall time.

use std::time::Duration;

use crate::measure;
use crate::sshd::Sshd;
use crate::{Better, Env, Goal, Report, Row, Sample, med, rounds, run_child};

/// The plans, as the child's `--steps`, and their row labels.
const SHAPES: &[(&str, &str)] = &[
    ("", "connect only"),
    ("true", "+ `true`"),
    ("true,true,true", "+ 3x `true`"),
    ("command", "+ the plan's command"),
    ("command,file", "+ its file (1 MiB)"),
    ("command,file,script", "+ its script (the whole plan)"),
];

pub(crate) fn fleet_server_cost(env: &Env, report: &mut Report) {
    let vms: u64 = if env.quick { 50 } else { 200 };
    let pool = crate::server_pool(env, 4);
    let ports: Vec<u16> = pool.iter().map(|s| s.port).collect();
    let pids: Vec<u32> = pool.iter().map(Sshd::pid).collect();
    let (payload, script, remote_dir) = crate::fleet_plan_files(env, "fleet-cost");
    let per_vm = |s: Sample| -> Sample {
        s.into_iter()
            .filter(|(k, _)| k == "server_cpu" || k == "cpu")
            .map(|(k, v)| (k, v * 1e3 / vms as f64))
            .collect()
    };
    let contenders: Vec<(&str, crate::RunFn<'_>)> = SHAPES
        .iter()
        .map(|&(steps, label)| {
            let run: crate::RunFn<'_> = Box::new(|| {
                let cpu0 = measure::reaped_tree_cpu_secs(&pids);
                let extra = vec![
                    ("vms", vms.to_string()),
                    ("concurrency", "64".to_string()),
                    ("connect-cap", "32".to_string()),
                    ("file", payload.display().to_string()),
                    ("script", script.display().to_string()),
                    ("remote-dir", remote_dir.display().to_string()),
                    ("steps", steps.to_string()),
                ];
                let s = run_child(Some(env.vmssh("fleet", &ports, &extra)), "vmssh");
                let _ = std::fs::remove_dir_all(&remote_dir);
                // The listeners reap what served the run.
                std::thread::sleep(Duration::from_secs(1));
                let server = measure::reaped_tree_cpu_secs(&pids) - cpu0;
                s.filter(|s| s.get("failed") == Some(&0.0)).map(|mut s| {
                    s.insert("server_cpu".into(), server);
                    per_vm(s)
                })
            });
            (label, run)
        })
        .collect();
    let res = rounds(
        "fleet_server_cost",
        env.rounds(3, 1),
        contenders,
        "server_cpu",
    );
    for &(_, label) in SHAPES {
        report.rows.push(
            Row::new(
                format!("fleet_server_cost[{label}] server"),
                "ms/VM",
                Better::Lower,
                Goal::Info,
            )
            .vals(med(&res, label, "server_cpu"), None, None),
        );
        report.rows.push(
            Row::new(
                format!("fleet_server_cost[{label}] client"),
                "ms/VM",
                Better::Lower,
                Goal::Info,
            )
            .vals(med(&res, label, "cpu"), None, None),
        );
    }
    report.notes.push(format!(
        "fleet_server_cost: vmssh's Fleet on {vms} VMs over 4 sshds (64 at once, 32 connects in flight), the fleet \
         plan cut short as each row says; server = CPU the sshd listeners reaped during the run (each connection's \
         sshd and all it ran), client = the vmssh process's; per VM, medians of {} round(s); a run with failed VMs \
         is left out",
        env.rounds(3, 1)
    ));
}
