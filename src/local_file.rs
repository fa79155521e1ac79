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
//! left. The data of an upload stays on `tokio::fs`, through [`Reader`]:
//! at most [`READS_IN_FLIGHT`] reads at once, process-wide, which took
//! that fleet from 9 threads to 4. Downloads write through `tokio::fs`.

use std::io::Read as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

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

/// Opens `path` for reading: the open and the `fstat` in place, the data
/// through [`Reader`]. Returns the reader and the file's metadata.
pub(crate) fn open(path: &Path) -> std::io::Result<(Reader, std::fs::Metadata)> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    Ok((Reader::new(tokio::fs::File::from_std(file)), meta))
}

/// Blocking-pool reads of local files in flight at once, process-wide.
///
/// A local disk serves a few reads at once as fast as many, and each read
/// in flight holds a blocking-pool thread: a fleet uploading to 64 VMs at
/// once otherwise starts a thread per upload.
const READS_IN_FLIGHT: usize = 2;

fn read_gate() -> Arc<Semaphore> {
    static GATE: OnceLock<Arc<Semaphore>> = OnceLock::new();
    GATE.get_or_init(|| Arc::new(Semaphore::new(READS_IN_FLIGHT)))
        .clone()
}

/// A local file read through `tokio::fs`, at most [`READS_IN_FLIGHT`]
/// reads of all such files in flight at once.
pub(crate) struct Reader {
    file: tokio::fs::File,
    gate: PollSemaphore,
    /// Held from the first poll of a read to its end: the file's read runs
    /// on the blocking pool meanwhile.
    permit: Option<OwnedSemaphorePermit>,
}

impl Reader {
    fn new(file: tokio::fs::File) -> Self {
        Reader {
            file,
            gate: PollSemaphore::new(read_gate()),
            permit: None,
        }
    }
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // The gate is never closed (`None`); the read would go ungated.
        if this.permit.is_none() {
            this.permit = std::task::ready!(this.gate.poll_acquire(cx));
        }
        let read = std::task::ready!(Pin::new(&mut this.file).poll_read(cx, buf));
        this.permit = None;
        Poll::Ready(read)
    }
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

    /// More readers than the gate lets read at once, on one thread: each
    /// waits its turn and reads its own file whole.
    #[tokio::test]
    async fn gated_readers_read_their_files_whole() {
        use tokio::io::AsyncReadExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mut reads = Vec::new();
        for i in 0..(4 * READS_IN_FLIGHT) {
            let path = dir.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..300_000u32).map(|b| (b % 251) as u8 ^ i as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let (mut reader, meta) = open(&path).unwrap();
            assert_eq!(meta.len(), data.len() as u64);
            reads.push(async move {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).await.unwrap();
                assert!(got == data, "file {i} read back differs");
            });
        }
        futures::future::join_all(reads).await;
        assert_eq!(read_gate().available_permits(), READS_IN_FLIGHT);
    }
}
