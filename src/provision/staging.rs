//! [`ScriptStaging`]: where a script step's script is put on the guest,
//! with which mode, and whether it is removed after the run.

/// Where a script step's script is uploaded before it runs, with which
/// mode, and whether it is removed afterwards.
///
/// The path is a template: `{vm}` is replaced by the VM's name (characters
/// other than letters, digits, `-` and `_` as `_`, at most 40), `{step}`
/// by the 1-based step number, `{rand}` by 16 random hex digits. A path
/// with `{rand}` is created afresh (an existing file is an error, so that
/// nothing else's file is replaced); one without is overwritten.
///
/// # Example
///
/// vmctl's way ([`ScriptStaging::vmctl`]) spelled out:
///
/// ```
/// use vmssh::provision::ScriptStaging;
///
/// let staging = ScriptStaging::new("/tmp/vmctl-provision-{step}.sh")
///     .mode(0o755)
///     .keep(true);
/// assert_eq!(staging, ScriptStaging::vmctl());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ScriptStaging {
    template: String,
    mode: u32,
    keep: bool,
}

impl Default for ScriptStaging {
    /// `/tmp/vmssh-{vm}-{rand}.sh`, mode 0700, removed after the run
    /// (also when the run is dropped): a name no one can guess, readable
    /// by the login user only, nothing left behind.
    fn default() -> Self {
        ScriptStaging {
            template: "/tmp/vmssh-{vm}-{rand}.sh".to_string(),
            mode: 0o700,
            keep: false,
        }
    }
}

impl ScriptStaging {
    /// Scripts uploaded to `template` (see the type's docs for the
    /// placeholders), mode 0700, removed after the run.
    pub fn new(template: impl Into<String>) -> Self {
        ScriptStaging {
            template: template.into(),
            ..ScriptStaging::default()
        }
    }

    /// vmctl's way: `/tmp/vmctl-provision-{step}.sh`, mode 0755, left in
    /// place after the run (the next run overwrites it).
    pub fn vmctl() -> Self {
        ScriptStaging::new("/tmp/vmctl-provision-{step}.sh")
            .mode(0o755)
            .keep(true)
    }

    /// Sets the script's permission bits.
    ///
    /// Default: 0700.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// Sets whether the script is left on the guest after it ran.
    ///
    /// Default: false (removed).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The path template.
    pub fn template(&self) -> &str {
        &self.template
    }

    pub(crate) fn file_mode(&self) -> u32 {
        self.mode
    }

    pub(crate) fn keeps(&self) -> bool {
        self.keep
    }

    /// Whether each run gets a fresh name (created, never overwritten).
    pub(crate) fn is_unique(&self) -> bool {
        self.template.contains("{rand}")
    }

    /// The path for step `step` (1-based) of `vm`.
    pub(crate) fn path(&self, vm: &str, step: usize) -> String {
        self.template
            .replace("{vm}", &sanitize(vm))
            .replace("{step}", &step.to_string())
            .replace("{rand}", &format!("{:016x}", rand::random::<u64>()))
    }
}

/// A VM name as part of a remote file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_the_template() {
        assert_eq!(
            ScriptStaging::vmctl().path("vm 1", 3),
            "/tmp/vmctl-provision-3.sh"
        );
        let p = ScriptStaging::default().path("vm 1/x", 3);
        assert!(
            p.starts_with("/tmp/vmssh-vm_1_x-") && p.ends_with(".sh"),
            "{p}"
        );
        assert_eq!(p.len(), "/tmp/vmssh-vm_1_x-".len() + 16 + 3);
        assert!(ScriptStaging::default().is_unique());
        assert!(!ScriptStaging::vmctl().is_unique());
        assert_eq!(ScriptStaging::new("/x").mode(0o100755).file_mode(), 0o755);
    }
}
