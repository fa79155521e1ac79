//! vmctl's home-directory rule: `~` and `~/...` in a plan's paths.

use std::path::{Path, PathBuf};

/// `~` and `~/...` name the home directory, as in vmctl.
pub(crate) fn expand_tilde(raw: &str) -> PathBuf {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    if raw == "~"
        && let Some(h) = home()
    {
        return h;
    }
    if let Some(rest) = raw.strip_prefix("~/")
        && let Some(h) = home()
    {
        return h.join(rest);
    }
    PathBuf::from(raw)
}

/// A local path as vmctl resolves it: a leading `~` is the home directory.
pub(crate) fn expand(path: &Path) -> PathBuf {
    match path.to_str() {
        Some(raw) => expand_tilde(raw),
        None => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(expand_tilde("~/k"), PathBuf::from(home).join("k"));
        }
        assert_eq!(expand_tilde("k/~"), PathBuf::from("k/~"));
    }
}
