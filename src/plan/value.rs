//! The values of vmssh's extensions (`mode`, `port`, `timeout`, `sudo`,
//! `env`), checked: a malformed one is an error, not a warning.

use std::time::Duration;

use kdl::{KdlEntry, KdlNode, KdlValue};

use super::parse::{Cx, Invalid, MODE_EXPECTS, entry_text, name, show};

impl Cx<'_> {
    /// An octal mode string (`"0644"`), as `mode` takes.
    pub(super) fn mode_value(&self, entry: &KdlEntry) -> Result<u32, Invalid> {
        if let KdlValue::String(s) = entry.value()
            && (1..=5).contains(&s.len())
            && let Ok(m) = u32::from_str_radix(s, 8)
            && m <= 0o7777
        {
            return Ok(m);
        }
        Err(self.err_entry(
            entry,
            format!(
                "mode expects {MODE_EXPECTS} (found {})",
                show(entry.value())
            ),
        ))
    }

    /// The single argument of an extension field, with no properties or
    /// children.
    pub(super) fn single_arg<'n>(
        &self,
        node: &'n KdlNode,
        expects: &str,
    ) -> Result<&'n KdlEntry, Invalid> {
        let field = name(node);
        if node.children().is_some() {
            return Err(self.err(node, format!("{field} expects {expects} (found a block)")));
        }
        if let Some(p) = node.entries().iter().find(|e| e.name().is_some()) {
            return Err(self.err_entry(
                p,
                format!(
                    "{field} expects {expects} (found property {})",
                    entry_text(p)
                ),
            ));
        }
        match node.entries() {
            [e] => Ok(e),
            [] => Err(self.err(
                node,
                format!("{field} expects {expects} (found no argument)"),
            )),
            many => Err(self.err(
                node,
                format!("{field} expects {expects} (found {} arguments)", many.len()),
            )),
        }
    }

    pub(super) fn port_arg(&self, node: &KdlNode) -> Result<u16, Invalid> {
        const EXPECTS: &str = "an integer from 1 to 65535";
        let e = self.single_arg(node, EXPECTS)?;
        match e.value() {
            KdlValue::Integer(n) => match u16::try_from(*n) {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(self.err_entry(e, format!("port expects {EXPECTS} (found {n})"))),
            },
            v => Err(self.err_entry(e, format!("port expects {EXPECTS} (found {})", show(v)))),
        }
    }

    pub(super) fn seconds_arg(&self, node: &KdlNode) -> Result<Duration, Invalid> {
        const EXPECTS: &str = "a positive number of seconds, e.g. timeout 300";
        let e = self.single_arg(node, EXPECTS)?;
        let secs = match e.value() {
            KdlValue::Integer(n) => *n as f64,
            KdlValue::Float(f) => *f,
            v => {
                return Err(
                    self.err_entry(e, format!("timeout expects {EXPECTS} (found {})", show(v)))
                );
            }
        };
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.err_entry(
                e,
                format!("timeout expects {EXPECTS} (found {})", show(e.value())),
            )),
        }
    }

    pub(super) fn flag_arg(&self, node: &KdlNode) -> Result<bool, Invalid> {
        if node.entries().is_empty() && node.children().is_none() {
            return Ok(true);
        }
        let e = self.single_arg(node, "#true or #false")?;
        match e.value() {
            KdlValue::Bool(b) => Ok(*b),
            v => Err(self.err_entry(
                e,
                format!("sudo expects #true or #false (found {})", show(v)),
            )),
        }
    }

    pub(super) fn env_props(&self, node: &KdlNode) -> Result<Vec<(String, String)>, Invalid> {
        const EXPECTS: &str =
            "NAME=\"value\" properties, e.g. env DEBIAN_FRONTEND=\"noninteractive\"";
        if node.children().is_some() {
            return Err(self.err(node, format!("env expects {EXPECTS} (found a block)")));
        }
        if node.entries().is_empty() {
            return Err(self.err(node, format!("env expects {EXPECTS} (found nothing)")));
        }
        let mut vars = Vec::new();
        for e in node.entries() {
            let Some(key) = e.name() else {
                return Err(self.err_entry(
                    e,
                    format!("env expects {EXPECTS} (found {})", show(e.value())),
                ));
            };
            let key = key.value();
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.err_entry(
                    e,
                    format!(
                        "env variable name \"{key}\" is not valid (expected letters, digits and _)"
                    ),
                ));
            }
            let value = match e.value() {
                KdlValue::String(s) => s.clone(),
                KdlValue::Integer(n) => n.to_string(),
                KdlValue::Float(f) => f.to_string(),
                KdlValue::Bool(b) => b.to_string(),
                KdlValue::Null => {
                    return Err(self
                        .err_entry(e, format!("env {key} expects a string value (found #null)")));
                }
            };
            vars.push((key.to_string(), value));
        }
        Ok(vars)
    }
}
