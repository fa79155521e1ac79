//! [`VmctlLogSink`]: `provision.log` in vmctl's layout.

use std::fmt;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Mutex;

use super::home::expand;
use crate::provision::sink::Sink;
use crate::provision::step::{ProvisionDef, StepKind};
use crate::report::Event;

/// What vmctl writes for one step: the label of a command step (the
/// inline command, the script as written), or `file-upload` with
/// `SOURCE -> DESTINATION` as its stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VmctlLabel {
    Command(String),
    Upload(String),
}

impl VmctlLabel {
    /// The label vmctl would give `step`, its sources under `base_dir`.
    fn of(step: &ProvisionDef, base_dir: &Path) -> Self {
        match step.kind() {
            StepKind::Inline(cmd) => VmctlLabel::Command(cmd.clone()),
            StepKind::Script(path) => VmctlLabel::Command(path.display().to_string()),
            StepKind::File {
                source,
                destination,
            } => VmctlLabel::Upload(format!(
                "{} -> {destination}",
                base_dir.join(expand(source)).display()
            )),
            StepKind::Download {
                source,
                destination,
            } => VmctlLabel::Command(format!(
                "download {source} -> {}",
                base_dir.join(destination).display()
            )),
            StepKind::DownloadDir {
                source,
                destination,
            } => VmctlLabel::Command(format!(
                "download -r {source} -> {}",
                base_dir.join(destination).display()
            )),
        }
    }
}

/// Appends to `provision.log` what vmctl appends, byte for byte, so that
/// tools reading vmctl's logs keep working: after each step,
///
/// ```text
/// === Step N: LABEL ===
/// --- stdout ---
/// (the step's stdout)
/// --- stderr ---
/// (the step's stderr)
///
/// ```
///
/// A section is left out when its stream was empty, and a newline is
/// added to a stream that does not end with one. Output is written as
/// UTF-8, invalid sequences replaced by U+FFFD, as vmctl does. LABEL is the
/// inline command or the script path as written; a file step is written as
/// `file-upload` with `SOURCE -> DESTINATION` as its stdout, SOURCE
/// resolved as vmctl does (`~` expanded, joined to the base directory). Like vmctl, a
/// command step is logged when it ran to an exit status (zero or not), a
/// file step when it succeeded; a step that did not complete is not
/// logged.
///
/// The step's output is spooled to an unlinked temporary file next to the
/// log, not held in memory. One sink per VM: events of other VMs than the
/// first one seen are ignored. For live output, add another sink
/// ([`LogFileSink`](crate::provision::LogFileSink), [`TerminalSink`](crate::provision::TerminalSink)).
pub struct VmctlLogSink {
    path: PathBuf,
    labels: Vec<VmctlLabel>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    vm: Option<std::sync::Arc<str>>,
    step: usize,
    stdout: Spool,
    stderr: Spool,
}

/// One stream of the running step, in a temporary file.
#[derive(Default)]
struct Spool {
    file: Option<File>,
    len: u64,
    last: Option<u8>,
    /// Set when the spool could not be written: the entry is skipped.
    broken: bool,
}

impl fmt::Debug for VmctlLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmctlLogSink")
            .field("path", &self.path)
            .field("steps", &self.labels.len())
            .finish()
    }
}

impl VmctlLogSink {
    /// Appends to `dir/provision.log` (vmctl's work directory of the VM)
    /// for `steps`, whose sources are under `base_dir`.
    pub fn new(dir: impl AsRef<Path>, steps: &[ProvisionDef], base_dir: impl AsRef<Path>) -> Self {
        let labels = steps
            .iter()
            .map(|s| VmctlLabel::of(s, base_dir.as_ref()))
            .collect();
        Self::with_labels(dir, labels)
    }

    /// With the labels a plan recorded (the script paths as written).
    pub(crate) fn with_labels(dir: impl AsRef<Path>, labels: Vec<VmctlLabel>) -> Self {
        VmctlLogSink {
            path: dir.as_ref().join("provision.log"),
            labels,
            state: Mutex::new(State::default()),
        }
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn spool_file(&self) -> std::io::Result<File> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await?;
        let spool = dir.join(format!(
            ".provision.log.{:016x}.spool",
            rand::random::<u64>()
        ));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&spool)
            .await?;
        // Unlinked at once: the data lives as long as the handle.
        tokio::fs::remove_file(&spool).await?;
        Ok(file)
    }

    async fn write_entry(&self, state: &mut State, step: usize) -> std::io::Result<()> {
        let Some(label) = self.labels.get(step.wrapping_sub(1)) else {
            return Ok(());
        };
        let mut log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        // Assembled in a bounded buffer, appended in pieces of at most
        // COPY bytes; an entry is small unless its output is.
        let mut out = Vec::with_capacity(COPY);
        match label {
            VmctlLabel::Command(text) => {
                out.extend_from_slice(format!("=== Step {step}: {text} ===\n").as_bytes());
                for (name, spool) in [("stdout", &mut state.stdout), ("stderr", &mut state.stderr)]
                {
                    if spool.len == 0 {
                        continue;
                    }
                    out.extend_from_slice(format!("--- {name} ---\n").as_bytes());
                    copy_lossy(spool, &mut out, &mut log).await?;
                    if spool.last != Some(b'\n') {
                        out.push(b'\n');
                    }
                }
            }
            VmctlLabel::Upload(text) => {
                out.extend_from_slice(
                    format!("=== Step {step}: file-upload ===\n--- stdout ---\n{text}\n")
                        .as_bytes(),
                );
            }
        }
        out.push(b'\n');
        log.write_all(&out).await?;
        log.flush().await
    }
}

/// Pieces in which spooled output is copied to the log.
const COPY: usize = 64 * 1024;

/// Appends `spool`'s bytes, decoded as UTF-8 with invalid sequences
/// replaced (as `String::from_utf8_lossy` does), to `out`, flushing `out`
/// to `log` whenever it fills.
async fn copy_lossy(spool: &mut Spool, out: &mut Vec<u8>, log: &mut File) -> std::io::Result<()> {
    let Some(file) = spool.file.as_mut() else {
        return Ok(());
    };
    file.flush().await?;
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut decoder = Utf8Lossy::default();
    let mut buf = vec![0; COPY];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        decoder.push(&buf[..n], out);
        if out.len() >= COPY {
            log.write_all(out).await?;
            out.clear();
        }
    }
    decoder.finish(out);
    Ok(())
}

/// Streaming `String::from_utf8_lossy`: the same output whatever the
/// chunking.
#[derive(Default)]
struct Utf8Lossy {
    /// The start of a sequence cut at the end of the previous chunk.
    pending: Vec<u8>,
}

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

impl Utf8Lossy {
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let joined;
        let mut rest = if self.pending.is_empty() {
            data
        } else {
            let mut j = std::mem::take(&mut self.pending);
            j.extend_from_slice(data);
            joined = j;
            &joined[..]
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.extend_from_slice(s.as_bytes());
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.extend_from_slice(&rest[..valid]);
                    match e.error_len() {
                        Some(bad) => {
                            out.extend_from_slice(REPLACEMENT);
                            rest = &rest[valid + bad..];
                        }
                        None => {
                            // Possibly completed by the next chunk.
                            self.pending = rest[valid..].to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if !std::mem::take(&mut self.pending).is_empty() {
            out.extend_from_slice(REPLACEMENT);
        }
    }
}

impl Sink for VmctlLogSink {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(event_vm) = event.vm() else {
                return;
            };
            let mut state = self.state.lock().await;
            match &state.vm {
                Some(vm) if **vm != *event_vm => return,
                Some(_) => {}
                None => state.vm = Some(std::sync::Arc::from(event_vm)),
            }
            match event {
                Event::StepStarted { step, .. } => {
                    state.step = *step;
                    state.stdout = Spool::default();
                    state.stderr = Spool::default();
                }
                Event::Output { step, chunk, .. } if *step == state.step => {
                    let data = chunk.bytes();
                    if data.is_empty() {
                        return;
                    }
                    let opened = if chunk.is_stderr() {
                        state.stderr.file.is_some()
                    } else {
                        state.stdout.file.is_some()
                    };
                    let fresh = if opened {
                        None
                    } else {
                        match self.spool_file().await {
                            Ok(f) => Some(f),
                            Err(e) => {
                                tracing::warn!(path = %self.path.display(), error = %e, "cannot create a spool file for the vmctl provision log");
                                None
                            }
                        }
                    };
                    let spool = if chunk.is_stderr() {
                        &mut state.stderr
                    } else {
                        &mut state.stdout
                    };
                    if let Some(f) = fresh {
                        spool.file = Some(f);
                    }
                    let written = match spool.file.as_mut() {
                        Some(f) => f.write_all(data).await.is_ok(),
                        None => false,
                    };
                    if written {
                        spool.len += data.len() as u64;
                        spool.last = data.last().copied();
                    } else {
                        spool.broken = true;
                    }
                }
                Event::StepFinished {
                    step, status, ok, ..
                } if *step == state.step => {
                    let step = *step;
                    let logged = match self.labels.get(step.wrapping_sub(1)) {
                        Some(VmctlLabel::Command(_)) => status.is_some(),
                        Some(VmctlLabel::Upload(_)) => *ok,
                        None => false,
                    };
                    if logged && !state.stdout.broken && !state.stderr.broken {
                        if let Err(e) = self.write_entry(&mut state, step).await {
                            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the vmctl provision log");
                        }
                    } else if logged {
                        tracing::warn!(path = %self.path.display(), step, "step output lost while spooling: not logged");
                    }
                    state.stdout = Spool::default();
                    state.stderr = Spool::default();
                }
                _ => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy_in_pieces(data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut d = Utf8Lossy::default();
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            let c = c.clamp(at, data.len());
            d.push(&data[at..c], &mut out);
            at = c;
        }
        d.push(&data[at..], &mut out);
        d.finish(&mut out);
        out
    }

    #[test]
    fn lossy_decoding_does_not_depend_on_chunking() {
        let samples: Vec<Vec<u8>> = vec![
            b"plain ascii\n".to_vec(),
            "h\u{e9}llo \u{1F600} w\u{f6}rld".as_bytes().to_vec(),
            vec![
                0xff, b'a', 0xe2, 0x82, b'b', 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98,
            ],
            vec![0xc3],
            vec![0xed, 0xa0, 0x80, b'x', 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf],
            vec![0xe2, 0x82, 0xe2, 0x82, 0xac, 0x80, 0x80],
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut inputs = samples.clone();
        for _ in 0..200 {
            let len = (next() % 40) as usize;
            let pool = [
                0x41, 0x0a, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff,
            ];
            inputs.push((0..len).map(|_| pool[(next() % 12) as usize]).collect());
        }
        for input in &inputs {
            let expected = String::from_utf8_lossy(input).into_owned().into_bytes();
            assert_eq!(lossy_in_pieces(input, &[]), expected, "{input:x?}");
            for cut in 0..=input.len() {
                assert_eq!(
                    lossy_in_pieces(input, &[cut]),
                    expected,
                    "{input:x?} cut {cut}"
                );
            }
            let cuts: Vec<usize> = (0..input.len()).collect();
            assert_eq!(
                lossy_in_pieces(input, &cuts),
                expected,
                "{input:x?} bytewise"
            );
        }
    }

    #[test]
    fn labels_as_vmctl_writes_them() {
        let base = Path::new("./plans");
        assert_eq!(
            VmctlLabel::of(&ProvisionDef::inline("apt-get update"), base),
            VmctlLabel::Command("apt-get update".into())
        );
        assert_eq!(
            VmctlLabel::of(&ProvisionDef::script("scripts/a.sh"), base),
            VmctlLabel::Command("scripts/a.sh".into())
        );
        assert_eq!(
            VmctlLabel::of(&ProvisionDef::file("f/motd", "/etc/motd"), base),
            VmctlLabel::Upload("./plans/f/motd -> /etc/motd".into())
        );
    }
}
