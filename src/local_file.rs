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
//! left. The data of an upload is read on the blocking pool, through
//! [`Reader`]: [`BLOCK`] bytes per read, at most [`READS_IN_FLIGHT`]
//! reads at once, process-wide, which took that fleet from 9 threads to
//! 4. Downloads write through `tokio::fs`.

use std::future::Future as _;
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
    let block = usize::try_from(meta.len().saturating_add(1)).map_or(BLOCK, |n| n.min(BLOCK));
    Ok((Reader::new(file, block), meta))
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

/// What one read on the blocking pool fetches. An upload asks for 64 KiB
/// at a time: one thread hop serves four such requests. Each hop costs
/// more than copying its bytes (two thread wake-ups); reading a request
/// per hop put four times as many through the pool.
const BLOCK: usize = 256 * 1024;

/// A local file read on the blocking pool, [`BLOCK`] bytes at a time, at
/// most [`READS_IN_FLIGHT`] reads of all such files in flight at once.
pub(crate) struct Reader {
    state: State,
    gate: PollSemaphore,
    /// Held from the first poll of a read to its end: the file's read runs
    /// on the blocking pool meanwhile.
    permit: Option<OwnedSemaphorePermit>,
}

enum State {
    /// Between reads: `block[pos..filled]` is read and not yet handed out.
    Idle {
        file: std::fs::File,
        block: Box<[u8]>,
        pos: usize,
        filled: usize,
        end: bool,
    },
    /// A read on the blocking pool, which gives the file and the block back.
    Reading(tokio::task::JoinHandle<Fetched>),
    /// A read's task ended without giving them back (the runtime is
    /// shutting down).
    Gone,
}

struct Fetched {
    file: std::fs::File,
    block: Box<[u8]>,
    read: std::io::Result<usize>,
}

impl Reader {
    /// A reader of `file` whose reads fetch `block` bytes (at most
    /// [`BLOCK`]; one more than a smaller file holds, so that its first
    /// read also sees its end).
    fn new(file: std::fs::File, block: usize) -> Self {
        Reader {
            state: State::Idle {
                file,
                block: vec![0; block].into_boxed_slice(),
                pos: 0,
                filled: 0,
                end: false,
            },
            gate: PollSemaphore::new(read_gate()),
            permit: None,
        }
    }
}

/// Fills `block` from `file` as far as it goes: fewer bytes than the
/// block holds only at the file's end.
fn fetch(mut file: std::fs::File, mut block: Box<[u8]>) -> Fetched {
    let mut n = 0;
    let read = loop {
        match file.read(&mut block[n..]) {
            Ok(0) => break Ok(n),
            Ok(k) => {
                n += k;
                if n == block.len() {
                    break Ok(n);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    Fetched { file, block, read }
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle {
                    block,
                    pos,
                    filled,
                    end,
                    ..
                } => {
                    if *pos < *filled {
                        let n = buf.remaining().min(*filled - *pos);
                        buf.put_slice(&block[*pos..*pos + n]);
                        *pos += n;
                        return Poll::Ready(Ok(()));
                    }
                    if *end || buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // The gate is never closed (`None`); the read would go
                    // ungated.
                    if this.permit.is_none() {
                        this.permit = std::task::ready!(this.gate.poll_acquire(cx));
                    }
                    let State::Idle { file, block, .. } =
                        std::mem::replace(&mut this.state, State::Gone)
                    else {
                        unreachable!("matched Idle above");
                    };
                    this.state =
                        State::Reading(tokio::task::spawn_blocking(move || fetch(file, block)));
                }
                State::Reading(task) => {
                    let done = std::task::ready!(Pin::new(task).poll(cx));
                    this.permit = None;
                    let Ok(Fetched { file, block, read }) = done else {
                        this.state = State::Gone;
                        continue;
                    };
                    let (filled, end, result) = match read {
                        Ok(n) => (n, n < block.len(), Ok(())),
                        Err(e) => (0, false, Err(e)),
                    };
                    this.state = State::Idle {
                        file,
                        block,
                        pos: 0,
                        filled,
                        end,
                    };
                    result?;
                }
                State::Gone => {
                    return Poll::Ready(Err(std::io::Error::other(
                        "the local file's read was cancelled",
                    )));
                }
            }
        }
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

    /// The tests that count the process-wide gate's permits, one at a time.
    static GATE_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// More readers than the gate lets read at once, on one thread: each
    /// waits its turn and reads its own file whole.
    #[tokio::test]
    async fn gated_readers_read_their_files_whole() {
        use tokio::io::AsyncReadExt as _;
        let _alone = GATE_TESTS.lock().await;
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

    /// A read that fails (a directory opens, but does not read) is an
    /// error, not an early end, and gives its gate's permit back.
    #[tokio::test]
    async fn a_failed_read_is_an_error() {
        use tokio::io::AsyncReadExt as _;
        let _alone = GATE_TESTS.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, _) = open(dir.path()).unwrap();
        let mut got = Vec::new();
        let err = reader.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        assert_eq!(read_gate().available_permits(), READS_IN_FLIGHT);
    }
}
