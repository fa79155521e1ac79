//! Atomic replace: temporary names next to the destination, and the
//! cleanup of temporary files left by a failed or cancelled transfer.

use std::path::PathBuf;

pub(crate) fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&trimmed[..i]),
        None => None,
    }
}

pub(crate) fn file_name_of(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

pub(crate) fn temp_name_for(remote: &str) -> String {
    let tag: u64 = rand::random();
    let name = format!(".{}.vmssh-{tag:016x}.tmp", file_name_of(remote));
    match parent_of(remote) {
        Some("/") => format!("/{name}"),
        Some(dir) => format!("{dir}/{name}"),
        None => name,
    }
}

/// Removes a temporary local file unless defused.
pub(crate) struct TempCleanup(pub(crate) Option<PathBuf>);

impl Drop for TempCleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // A single unlink; cheap enough to do synchronously on drop.
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parent_of("/a/b/c"), Some("/a/b"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("a"), None);
        assert_eq!(parent_of("a/b/"), Some("a"));
        assert_eq!(file_name_of("/x/y z.txt"), "y z.txt");
        let t = temp_name_for("/etc/nginx/nginx.conf");
        assert!(t.starts_with("/etc/nginx/.nginx.conf.vmssh-"), "{t}");
        assert!(temp_name_for("/f").starts_with("/.f.vmssh-"));
        assert!(temp_name_for("f").starts_with(".f.vmssh-"));
    }
}
