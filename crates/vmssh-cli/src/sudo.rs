//! The sudo password: `--sudo-password-env VAR` or `--ask-sudo-password`
//! (once, on the terminal, without echo), read before anything connects.

use std::io::{BufRead as _, Write as _};
use std::os::fd::AsRawFd as _;

use vmssh::Secret;

use crate::args::SudoArgs;
use crate::usage::Usage;

impl SudoArgs {
    /// The password the flags give, if any.
    pub(crate) async fn password(&self) -> Result<Option<Secret>, Usage> {
        if let Some(var) = &self.sudo_password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
                Ok(_) => Err(Usage(format!(
                    "--sudo-password-env {var}: the variable is empty"
                ))),
                Err(_) => Err(Usage(format!(
                    "--sudo-password-env {var}: the variable is not set"
                ))),
            };
        }
        if !self.ask_sudo_password {
            return Ok(None);
        }
        // A terminal read, before any connection: nothing else runs yet.
        match tokio::task::spawn_blocking(ask).await {
            Ok(r) => r.map(Some),
            Err(e) => Err(Usage(format!("--ask-sudo-password: {e}"))),
        }
    }
}

/// Prompts on the controlling terminal and reads one line with echo off
/// (restored however the read ends).
fn ask() -> Result<Secret, Usage> {
    let fail = |e: std::io::Error| {
        Usage(format!(
            "--ask-sudo-password: cannot use the terminal ({e}); use --sudo-password-env"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(fail)?;
    let mut out = &tty;
    let line = {
        // Echo off before the prompt, as readpassphrase(3) does: turning
        // it off flushes pending input, which must not be an answer typed
        // after the prompt showed (it would be lost, and the read wait).
        let _quiet = NoEcho::on(&tty).map_err(fail)?;
        out.write_all(b"sudo password: ").map_err(fail)?;
        let mut line = String::new();
        std::io::BufReader::new(&tty)
            .read_line(&mut line)
            .map_err(fail)?;
        line
    };
    let _ = out.write_all(b"\n");
    // Trimmed in place and moved into the Secret: no copy left behind.
    let mut line = line;
    let len = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(len);
    if line.is_empty() {
        return Err(Usage("--ask-sudo-password: no password was typed".into()));
    }
    Ok(Secret::new(line))
}

/// The terminal's settings with echo off, restored on drop.
struct NoEcho<'a> {
    tty: &'a std::fs::File,
    saved: libc::termios,
}

impl<'a> NoEcho<'a> {
    fn on(tty: &'a std::fs::File) -> std::io::Result<Self> {
        let fd = tty.as_raw_fd();
        // SAFETY: termios is plain data, filled in by tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open for the lifetime of `tty`; saved is valid.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL);
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(NoEcho { tty, saved })
    }
}

impl Drop for NoEcho<'_> {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `on` on the same open fd.
        unsafe {
            libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSAFLUSH, &self.saved);
        }
    }
}
