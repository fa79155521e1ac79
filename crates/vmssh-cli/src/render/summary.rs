//! The summary after a run (and `vmssh report show`): one line per host
//! with why it failed, in the run's words ([`Verb`]), then the stderr
//! tails of the failures. Text that spans lines keeps its line breaks,
//! continued under its column.

use std::fmt::Write as _;

use console::Style;
use vmssh::fleet::{FleetReport, Outcome};

use super::verb::{Verb, lines_of};

/// The summary as text; coloured rows when `color`.
pub(crate) fn render(report: &FleetReport, color: bool, verb: Verb) -> String {
    let column = verb.column();
    let width = report
        .vms
        .iter()
        .map(|v| v.name.len())
        .chain([column.len()])
        .max()
        .unwrap_or(2);
    let paint = |style: Style, text: &str| style.force_styling(color).apply_to(text).to_string();
    let plain = Style::new();
    let mut out = String::new();
    let header = format!(
        "{column:<width$}  {:<9}  {:>9}  {:>9}  detail",
        "RESULT", "CONNECT", "TOTAL"
    );
    let _ = writeln!(out, "{}", paint(plain.clone().bold(), &header));
    // Continuation lines of a detail start under it.
    let indent = " ".repeat(width + 2 + 9 + 2 + 9 + 2 + 9 + 2);
    for v in &report.vms {
        let result = Verb::verdict(v.failure.as_ref());
        let style = match v.outcome {
            Outcome::Succeeded => plain.clone().green(),
            Outcome::Failed => plain.clone().red(),
            _ => plain.clone().yellow(),
        };
        let connect = v
            .connect
            .map(|d| format!("{:.2}s", d.as_secs_f64()))
            .unwrap_or_else(|| "-".into());
        let detail = match &v.failure {
            Some(f) => verb.failure_after(f, v.deadline_passed),
            None => verb.success(v),
        };
        let mut lines = lines_of(&detail).into_iter();
        let first = lines.next().unwrap_or_default();
        let row = format!(
            "{:<width$}  {result:<9}  {connect:>9}  {:>8.2}s  {first}",
            v.name,
            v.total.as_secs_f64()
        );
        let _ = writeln!(out, "{}", paint(style.clone(), &row));
        for more in lines {
            let _ = writeln!(out, "{}", paint(style.clone(), &format!("{indent}{more}")));
        }
    }
    let totals = format!("{} in {:.2}s", counts(report), report.wall.as_secs_f64());
    let _ = writeln!(out, "{}", paint(plain.bold(), &totals));
    // The table shows each failure; the stderr tails follow it.
    for v in &report.vms {
        if let Some(tail) = &v.stderr_tail {
            let _ = writeln!(out, "\n{}: stderr:", v.name);
            for line in lines_of(tail) {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

/// `2 succeeded, 1 failed, 3 stopped, 4 not started`: the hosts by
/// result, the last two only when there are some.
pub(crate) fn counts(report: &FleetReport) -> String {
    let mut out = format!(
        "{} succeeded, {} failed",
        report.succeeded().len(),
        report.failed().len()
    );
    for word in ["stopped", "not started"] {
        let n = report
            .vms
            .iter()
            .filter(|v| Verb::verdict(v.failure.as_ref()) == word)
            .count();
        if n > 0 {
            let _ = write!(out, ", {n} {word}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failure: serde_json::Value) -> FleetReport {
        serde_json::from_value(serde_json::json!({
            "vms": [{
                "name": "web", "host": "10.0.0.5", "port": 22, "outcome": "failed",
                "failure": failure,
                "stderr_tail": "disk full\nreally",
                "connect": 0.000005, "steps": [], "total": 1.0
            }, {
                "name": "db", "host": "10.0.0.6", "port": 22, "outcome": "succeeded",
                "connect": 0.1,
                "steps": [{"step": 1, "description": "inline: x", "ok": true,
                    "status": {"code": 0}, "duration": 0.5}],
                "total": 1.0
            }],
            "wall": 1.0
        }))
        .unwrap()
    }

    #[test]
    fn plain_summary_has_no_escapes() {
        let report = report(serde_json::json!({"kind": "step", "step": 2,
            "description": "inline: x", "reason": "exit status 3", "status": {"code": 3},
            "message": "step 2 failed: exit 3"}));
        let text = render(&report, false, Verb::Provision);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.starts_with("VM  "), "{text}");
        assert!(text.contains("web") && text.contains("FAILED"), "{text}");
        assert!(text.contains("step 2 failed: exit 3"), "{text}");
        assert!(
            text.contains("\nweb: stderr:\n  disk full\n  really\n"),
            "{text}"
        );
        assert!(text.contains("1 step\n"), "{text}");
        assert!(render(&report, true, Verb::Provision).contains('\x1b'));
        // A command's summary speaks of hosts and exit statuses.
        let text = render(&report, false, Verb::Exec);
        assert!(text.starts_with("HOST  "), "{text}");
        assert!(!text.contains("step"), "{text}");
        assert!(text.contains("  exit status 3\n"), "{text}");
        assert!(text.contains("  exit status 0\n"), "{text}");
    }

    #[test]
    fn a_detail_on_two_lines_stays_in_its_column() {
        let report = report(serde_json::json!({"kind": "connect",
            "message": "first line\nsecond line"}));
        let text = render(&report, false, Verb::Exec);
        let lines: Vec<&str> = text.lines().collect();
        let row = lines.iter().position(|l| l.starts_with("web ")).unwrap();
        let column = lines[row].find("connect failed: first line").unwrap();
        assert_eq!(lines[row + 1].find("second line"), Some(column), "{text}");
        assert!(lines[row + 1][..column].trim().is_empty(), "{text}");
        assert!(!text.contains("^J"), "{text}");
    }
}
