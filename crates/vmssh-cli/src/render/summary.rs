//! The summary after a run (and `vmssh report show`): the report's table,
//! one line per host with why it failed, then the stderr tails of the
//! failures.

use std::fmt::Write as _;

use console::Style;
use vmssh::fleet::{FleetReport, Outcome};

/// The summary as text; coloured rows when `color`.
pub(crate) fn render(report: &FleetReport, color: bool) -> String {
    let table = report.summary();
    let mut out = String::new();
    let rows: Vec<&str> = table.lines().collect();
    for (i, row) in rows.iter().enumerate() {
        // Row 0 is the header, the last the totals; the others follow the
        // report's hosts.
        let style = match i.checked_sub(1).and_then(|v| report.vms.get(v)) {
            _ if !color => Style::new(),
            Some(v) => match v.outcome {
                Outcome::Succeeded => Style::new().green(),
                Outcome::Failed => Style::new().red(),
                _ => Style::new().yellow(),
            },
            None => Style::new().bold(),
        };
        let _ = writeln!(out, "{}", style.force_styling(color).apply_to(row));
    }
    // The table shows each failure; the stderr tails follow it.
    for v in &report.vms {
        if let Some(tail) = &v.stderr_tail {
            let _ = writeln!(out, "\n{}: stderr:", v.name);
            for line in tail.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_summary_has_no_escapes() {
        let report: FleetReport = serde_json::from_value(serde_json::json!({
            "vms": [{
                "name": "web", "host": "10.0.0.5", "port": 22, "outcome": "failed",
                "failure": {"kind": "step", "step": 2, "description": "inline: x",
                    "reason": "exit status 3", "status": {"code": 3},
                    "message": "step 2 failed: exit 3"},
                "stderr_tail": "disk full",
                "connect": 0.000005, "steps": [], "total": 1.0
            }],
            "wall": 1.0
        }))
        .unwrap();
        let text = render(&report, false);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("web") && text.contains("FAILED"), "{text}");
        assert!(text.contains("step 2 failed: exit 3"), "{text}");
        assert!(text.contains("\nweb: stderr:\n  disk full\n"), "{text}");
        assert!(render(&report, true).contains('\x1b'));
    }
}
