//! Everything the server runs in the background: tasks it can cancel as a
//! whole, panics it must not hide, and child processes it must not leak.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

/// The server's background work.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    stop: CancellationToken,
    panics: Mutex<Vec<String>>,
    children: Mutex<HashSet<i32>>,
}

impl Tasks {
    /// Spawns `fut` on the current runtime. It is dropped when the server
    /// stops; a panic inside it is recorded (with `what` and the message)
    /// for the server's `Drop` to report.
    pub(crate) fn spawn<F>(self: &Arc<Self>, what: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = this.stop.cancelled() => {}
                r = AssertUnwindSafe(fut).catch_unwind() => {
                    if let Err(payload) = r {
                        this.record_panic(what, panic_message(payload.as_ref()));
                    }
                }
            }
        });
    }

    pub(crate) fn record_panic(&self, what: &str, message: String) {
        if let Ok(mut p) = self.panics.lock() {
            p.push(format!("{what}: {message}"));
        }
    }

    pub(crate) fn panics(&self) -> Vec<String> {
        self.panics.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Kills every live command's process group, then cancels all tasks.
    pub(crate) fn stop(&self) {
        if let Ok(children) = self.children.lock() {
            for &pgid in children.iter() {
                kill_group(pgid, libc::SIGKILL);
            }
        }
        self.stop.cancel();
    }

    /// Records a command's process group (its leader's pid) until the
    /// returned guard is dropped.
    pub(crate) fn register_child(self: &Arc<Self>, pid: Option<u32>) -> ChildGuard {
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).filter(|&p| p > 0);
        if let (Some(pgid), Ok(mut children)) = (pgid, self.children.lock()) {
            children.insert(pgid);
        }
        ChildGuard {
            tasks: self.clone(),
            pgid,
        }
    }
}

/// Keeps a process group registered with [`Tasks`].
#[derive(Debug)]
pub(crate) struct ChildGuard {
    tasks: Arc<Tasks>,
    pgid: Option<i32>,
}

impl ChildGuard {
    /// Sends `signal` to the whole process group.
    pub(crate) fn signal(&self, signal: i32) {
        if let Some(pgid) = self.pgid {
            kill_group(pgid, signal);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Kept registered until the command's channel is done, after the
        // leader was reaped too: background jobs it left in the group are
        // killed when the server stops. (The group's number cannot be
        // reused while any member lives.)
        if let (Some(pgid), Ok(mut children)) = (self.pgid.take(), self.tasks.children.lock()) {
            children.remove(&pgid);
        }
    }
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) takes plain integers and has no memory effects; a
    // negative pid addresses the process group, which exists only while
    // its members live (a stale group yields ESRCH, ignored).
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
