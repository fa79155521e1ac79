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
    // The table shows each error's first line; the stderr tails follow it.
    for v in &report.vms {
        if let Some(e) = &v.error
            && e.contains('\n')
        {
            let _ = writeln!(out, "\n{}: {e}", v.name);
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
                "name": "web", "host": "10.0.0.5", "port": 22, "outcome": "Failed",
                "failed_step": 2, "error": "step 2 failed: exit 3\n  stderr: disk full",
                "connect": {"secs": 0, "nanos": 5}, "steps": [],
                "total": {"secs": 1, "nanos": 0}
            }],
            "wall": {"secs": 1, "nanos": 0}
        }))
        .unwrap();
        let text = render(&report, false);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("web") && text.contains("FAILED"), "{text}");
        assert!(
            text.contains("\nweb: step 2 failed: exit 3\n  stderr: disk full"),
            "{text}"
        );
        assert!(render(&report, true).contains('\x1b'));
    }
}
