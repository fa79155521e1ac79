//! Ctrl-C: once stops the run gracefully (no new hosts, running commands
//! sent SIGTERM and their channels closed, then the summary and the
//! report); twice exits at once. SIGTERM (a Kubernetes pod being deleted)
//! counts as the first Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use vmssh::fleet::StopHandle;

/// Whether the run was interrupted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interrupted(Arc<AtomicBool>);

impl Interrupted {
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Listens for SIGINT and SIGTERM from now on: the first stops `stop`,
/// a second SIGINT exits with 130.
pub(crate) fn install(stop: StopHandle) -> std::io::Result<Interrupted> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let flag = Interrupted::default();
    let seen = flag.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        seen.0.store(true, Ordering::SeqCst);
        eprintln!(
            "vmssh: interrupted: starting no more hosts, stopping the running ones (interrupt again to exit at once)"
        );
        stop.stop();
        int.recv().await;
        eprintln!("vmssh: interrupted again: exiting");
        std::process::exit(crate::usage::Exit::Interrupted as i32);
    });
    Ok(flag)
}
