//! Small local files read on every connect (private keys, certificates,
//! known_hosts), the check that a plan's local inputs exist, and the
//! opening of a file to upload: done in place, on the calling task's
//! thread.
//!
//! `tokio::fs` hands each call to the blocking pool, which starts a thread
//! per call in flight: a fleet connecting to hundreds of VMs at once grew
//! it to dozens of threads for files of a few KiB, each read costing a
//! thread hop more than the read itself. In a 200-VM fleet, each VM's
//! check of its scripts and file sources before it starts was 20 of the
//! 22 threads it started, and opening the files to upload 6 of the 12
//! left. The data of uploads and downloads stays on `tokio::fs`.

use std::io::Read as _;
use std::path::Path;

/// The most read from such a file: a larger one is not a key,
/// certificate or known_hosts file this crate would use, and reading it
/// whole could stall the runtime.
const LIMIT: u64 = 16 << 20;

/// Reads `path` whole, as at most [`LIMIT`] bytes.
pub(crate) fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    file.take(LIMIT + 1).read_to_end(&mut out)?;
    if out.len() as u64 > LIMIT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", LIMIT >> 20),
        ));
    }
    Ok(out)
}

/// [`read`], as UTF-8 text.
pub(crate) fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The metadata of `path`, symbolic links followed: one `stat`.
pub(crate) fn metadata(path: &Path) -> std::io::Result<std::fs::Metadata> {
    std::fs::metadata(path)
}

/// Opens `path` for reading (its data is then read through `tokio::fs`).
pub(crate) fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_files_and_refuses_huge_ones() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"ssh-ed25519 AAAA\n").unwrap();
        assert_eq!(read_to_string(&small).unwrap(), "ssh-ed25519 AAAA\n");
        let huge = dir.path().join("huge");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(LIMIT + 1)
            .unwrap();
        assert_eq!(
            read(&huge).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        let missing = dir.path().join("missing");
        assert_eq!(
            read(&missing).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
