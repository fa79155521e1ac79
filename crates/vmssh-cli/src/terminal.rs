//! The local terminal of `vmssh shell`: whether standard input is one,
//! its size and modes, raw mode ([`RawMode`], restored when dropped), and
//! standard input and output read and written without blocking a thread
//! ([`Input`], [`Output`]).

use std::io::{self, Write as _};
use std::os::fd::{BorrowedFd, RawFd};

use tokio::io::AsyncReadExt as _;
use tokio::io::unix::AsyncFd;
use vmssh::TerminalMode;

pub(crate) const STDIN: RawFd = libc::STDIN_FILENO;
pub(crate) const STDOUT: RawFd = libc::STDOUT_FILENO;
pub(crate) const STDERR: RawFd = libc::STDERR_FILENO;

/// Whether `fd` is a terminal.
pub(crate) fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The size of the terminal on `fd`: columns, rows, and pixels (0 when
/// unknown); `None` when it is no terminal or says nothing.
pub(crate) fn size(fd: RawFd) -> Option<(u32, u32, u32, u32)> {
    // SAFETY: winsize is plain old data; zeroed is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize to the pointer given.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0 && ws.ws_row > 0).then(|| {
        (
            u32::from(ws.ws_col),
            u32::from(ws.ws_row),
            u32::from(ws.ws_xpixel),
            u32::from(ws.ws_ypixel),
        )
    })
}

fn termios(fd: RawFd) -> io::Result<libc::termios> {
    // SAFETY: termios is plain old data; zeroed is a valid value.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes a termios to the pointer given.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

/// The modes of the terminal on `fd` that the remote terminal should
/// share (its control characters and line discipline), as ssh sends
/// them; none when it is no terminal.
pub(crate) fn modes(fd: RawFd) -> Vec<(TerminalMode, u32)> {
    let Ok(t) = termios(fd) else {
        return Vec::new();
    };
    let chars = [
        (TerminalMode::Vintr, libc::VINTR),
        (TerminalMode::Vquit, libc::VQUIT),
        (TerminalMode::Verase, libc::VERASE),
        (TerminalMode::Vkill, libc::VKILL),
        (TerminalMode::Veof, libc::VEOF),
        (TerminalMode::Vsusp, libc::VSUSP),
        (TerminalMode::Vwerase, libc::VWERASE),
    ];
    let flag = |set: libc::tcflag_t, bit: libc::tcflag_t| u32::from(set & bit != 0);
    let mut modes: Vec<(TerminalMode, u32)> = chars
        .iter()
        .map(|&(m, i)| (m, u32::from(t.c_cc[i])))
        .collect();
    modes.extend([
        (TerminalMode::Icrnl, flag(t.c_iflag, libc::ICRNL)),
        (TerminalMode::Ixon, flag(t.c_iflag, libc::IXON)),
        (TerminalMode::Iutf8, flag(t.c_iflag, libc::IUTF8)),
        (TerminalMode::Isig, flag(t.c_lflag, libc::ISIG)),
        (TerminalMode::Icanon, flag(t.c_lflag, libc::ICANON)),
        (TerminalMode::Echo, flag(t.c_lflag, libc::ECHO)),
        (TerminalMode::Echoe, flag(t.c_lflag, libc::ECHOE)),
        (TerminalMode::Echok, flag(t.c_lflag, libc::ECHOK)),
        (TerminalMode::Echoctl, flag(t.c_lflag, libc::ECHOCTL)),
        (TerminalMode::Iexten, flag(t.c_lflag, libc::IEXTEN)),
        (TerminalMode::Opost, flag(t.c_oflag, libc::OPOST)),
        (TerminalMode::Onlcr, flag(t.c_oflag, libc::ONLCR)),
        (TerminalMode::Cs8, flag(t.c_cflag, libc::CS8)),
    ]);
    modes
}

/// The terminal on a descriptor in raw mode (every key passed through as
/// typed: `^C` goes to the remote shell, not to this process), put back
/// as it was when dropped, on every way out (an error, a panic's
/// unwinding).
#[derive(Debug)]
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts the terminal on `fd` in raw mode.
    pub(crate) fn enter(fd: RawFd) -> io::Result<RawMode> {
        let saved = termios(fd)?;
        let mut raw = saved;
        // SAFETY: cfmakeraw only changes the termios given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: a termios read from this terminal, then changed.
        if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the termios this terminal had.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}

/// A standard descriptor that can wait in the runtime (a terminal, a
/// pipe, a socket): set non-blocking while held, its flags put back when
/// dropped (the descriptor's file is shared with the shell that started
/// us).
#[derive(Debug)]
pub(crate) struct Polled {
    fd: AsyncFd<BorrowedFd<'static>>,
    flags: libc::c_int,
}

impl Polled {
    /// `None` for a descriptor the runtime cannot wait on (a regular
    /// file, `/dev/null`): those never block for long.
    fn new(raw: RawFd) -> Option<Polled> {
        // SAFETY: F_GETFL only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        if flags < 0 {
            return None;
        }
        // SAFETY: standard descriptors stay open for the life of the
        // process.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        // SAFETY: adds O_NONBLOCK to the flags just read.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return None;
        }
        // `AsyncFd::register`'s conditions hold (a standard descriptor,
        // open as long as the process); `new` is kept for the tokio
        // versions that have no `register`.
        #[allow(deprecated)]
        let registered = AsyncFd::new(fd);
        match registered {
            Ok(fd) => Some(Polled { fd, flags }),
            Err(_) => {
                // SAFETY: the flags it had.
                unsafe { libc::fcntl(raw, libc::F_SETFL, flags) };
                None
            }
        }
    }

    fn raw(&self) -> RawFd {
        use std::os::fd::AsRawFd as _;
        self.fd.get_ref().as_raw_fd()
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            let raw = self.raw();
            // SAFETY: reads into buf, at most its length.
            let read = ready.try_io(|_| {
                let n = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(r) => return r,
                Err(_would_block) => {}
            }
        }
    }

    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut ready = self.fd.writable().await?;
            let raw = self.raw();
            // SAFETY: writes from buf, at most its length.
            let wrote = ready.try_io(|_| {
                let n = unsafe { libc::write(raw, buf.as_ptr().cast(), buf.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match wrote {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        // SAFETY: the flags it had.
        unsafe { libc::fcntl(self.raw(), libc::F_SETFL, self.flags) };
    }
}

/// Standard input.
#[derive(Debug)]
pub(crate) enum Input {
    Polled(Polled),
    /// A file: read on tokio's blocking pool (reads end promptly).
    Other(tokio::io::Stdin),
}

impl Input {
    pub(crate) fn stdin() -> Input {
        match Polled::new(STDIN) {
            Some(p) => Input::Polled(p),
            None => Input::Other(tokio::io::stdin()),
        }
    }

    /// Reads what is there; 0 at end-of-file.
    ///
    /// Cancel safe: nothing read is lost when the future is dropped.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Polled(p) => p.read(buf).await,
            Input::Other(s) => s.read(buf).await,
        }
    }
}

/// Standard output or error.
#[derive(Debug)]
pub(crate) enum Output {
    Polled(Polled),
    /// A file: written directly (writes end promptly).
    Stdout(io::Stdout),
    /// As [`Output::Stdout`].
    Stderr(io::Stderr),
}

impl Output {
    pub(crate) fn stdout() -> Output {
        match Polled::new(STDOUT) {
            Some(p) => Output::Polled(p),
            None => Output::Stdout(io::stdout()),
        }
    }

    pub(crate) fn stderr() -> Output {
        match Polled::new(STDERR) {
            Some(p) => Output::Polled(p),
            None => Output::Stderr(io::stderr()),
        }
    }

    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Polled(p) => p.write_all(buf).await,
            Output::Stdout(s) => {
                s.write_all(buf)?;
                s.flush()
            }
            Output::Stderr(s) => s.write_all(buf),
        }
    }
}
