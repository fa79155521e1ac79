//! `vmssh shell` on sshd and dropbear, driven through a terminal the test
//! owns (a pty whose other end is the command's controlling terminal):
//! typed commands, a resize of that terminal seen by the remote shell,
//! the remote exit status as the command's, `~.`, and the terminal put
//! back as it was. Piped input without a terminal; usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_harness;

use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use cli_harness::{assert_exit, run, stderr, stdout};
use support::{Server, on_both_servers};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

/// The command's terminal: the test types on the master side and reads
/// the screen from it.
struct Terminal {
    master: std::fs::File,
    /// Kept open by the test, so that the terminal's state can be read
    /// after the command exited.
    slave: OwnedFd,
    screen: watch::Receiver<Vec<u8>>,
    /// How much of the screen earlier waits consumed.
    seen: usize,
}

impl Terminal {
    fn open(cols: u16, rows: u16) -> Terminal {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors; the size is read.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty failed");
        // SAFETY: both descriptors are fresh and owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let (tx, screen) = watch::channel(Vec::new());
        let mut reading = std::fs::File::from(master.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last slave descriptor closes: the end.
            while let Ok(n) = reading.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tx.send_modify(|s| s.extend_from_slice(&buf[..n]));
            }
        });
        Terminal {
            master: std::fs::File::from(master),
            slave,
            screen,
            seen: 0,
        }
    }

    /// `vmssh shell ARGS` with this terminal as its controlling terminal
    /// and standard input, output and error.
    fn spawn(&self, dir: &std::path::Path, args: &[String]) -> tokio::process::Child {
        let mut c = cli_harness::command(dir);
        c.arg("shell")
            .args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::from(self.slave.try_clone().unwrap()))
            .stdout(Stdio::from(self.slave.try_clone().unwrap()))
            .stderr(Stdio::from(self.slave.try_clone().unwrap()));
        let tty = self.slave.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls: a
        // new session whose controlling terminal is the pty, so that a
        // resize sends it SIGWINCH.
        unsafe {
            c.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.spawn().unwrap()
    }

    fn typed(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Waits until `found` accepts the screen written since the last
    /// wait; panics with the screen after 60 s.
    async fn wait_for(&mut self, what: &str, found: impl Fn(&str) -> Option<usize>) {
        let seen = self.seen;
        let mut end = None;
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            self.screen.wait_for(|s| {
                end = found(&String::from_utf8_lossy(&s[seen.min(s.len())..]));
                end.is_some()
            }),
        )
        .await
        .map(|r| r.is_ok());
        let screen = String::from_utf8_lossy(&self.screen.borrow()[seen..]).into_owned();
        assert!(
            waited == Ok(true),
            "never saw {what}; the screen has: {screen:?}"
        );
        self.seen = seen + end.unwrap_or(0);
    }

    /// Waits for `needle` on the screen.
    async fn wait_text(&mut self, needle: &str) {
        self.wait_for(needle, |s| s.find(needle).map(|at| at + needle.len()))
            .await;
    }

    fn resize(&self, cols: u16, rows: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize; the kernel sends SIGWINCH
        // to the terminal's foreground process group.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0);
    }

    /// The line discipline's settings and the file flags of the
    /// command's descriptors (shared with the test's).
    fn state(&self) -> (libc::tcflag_t, libc::tcflag_t, libc::tcflag_t, bool) {
        // SAFETY: termios is plain old data, written by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above; F_GETFL only reads.
        let (rc, flags) = unsafe {
            (
                libc::tcgetattr(self.slave.as_raw_fd(), &mut t),
                libc::fcntl(self.slave.as_raw_fd(), libc::F_GETFL),
            )
        };
        assert_eq!(rc, 0);
        (
            t.c_lflag,
            t.c_iflag,
            t.c_oflag,
            flags & libc::O_NONBLOCK != 0,
        )
    }
}

/// `--host`, `--key` and `--known-hosts` for `srv`, files in `dir`.
fn host_args(srv: &Server, dir: &std::path::Path) -> Vec<String> {
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", srv.port(), srv.host_key_line()),
    )
    .unwrap();
    vec![
        "--host".into(),
        format!("srv={}@127.0.0.1:{}", srv.user(), srv.port()),
        "--key".into(),
        srv.client_key().private.display().to_string(),
        "--known-hosts".into(),
        known.display().to_string(),
    ]
}

async fn exit_status(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("vmssh shell did not exit")
        .unwrap()
}

/// Typed commands run, a resize of the local terminal reaches the remote
/// one (its shell gets SIGWINCH and reads the new size), `exit 7` is the
/// command's exit code, and the terminal is as it was.
async fn typed_resized_and_exit_code(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut term = Terminal::open(80, 24);
    let before = term.state();
    let mut child = term.spawn(dir.path(), &host_args(srv, dir.path()));
    // The output shows the arithmetic done: the remote shell ran it.
    term.typed("echo \"ready-$((6*7))\"\r");
    term.wait_text("ready-42").await;
    term.typed("echo hi\r");
    term.wait_text("echo hi").await;
    term.wait_for("hi on a line of its own", |s| {
        s.split(['\r', '\n'])
            .position(|line| line == "hi")
            .map(|_| s.find("hi\r").map_or(s.len(), |at| at + 3))
    })
    .await;
    term.typed("stty size\r");
    term.wait_text("24 80").await;
    // A program that waits for the remote terminal's SIGWINCH, then
    // prints the size it has.
    term.typed(
        "sh -c 'trap \"echo winch-$((3+4)) \\$(stty size); exit\" WINCH; \
         echo armed-$((2+2)); while :; do sleep 1 & wait $!; done'\r",
    );
    term.wait_text("armed-4").await;
    term.resize(100, 30);
    term.wait_text("winch-7 30 100").await;
    term.typed("exit 7\r");
    let status = exit_status(&mut child).await;
    assert_eq!(status.code(), Some(7), "{}", srv.name());
    assert_eq!(term.state(), before, "the terminal was not put back");
}
on_both_servers!(typed_resized_and_exit_code);

/// `~.` at the start of a line cuts the connection: exit 255, the
/// terminal back in its cooked mode with echo; `~~` types one `~`.
async fn tilde_dot_disconnects(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut term = Terminal::open(80, 24);
    let before = term.state();
    assert_ne!(before.0 & libc::ECHO, 0, "a new terminal echoes");
    let mut child = term.spawn(dir.path(), &host_args(srv, dir.path()));
    term.typed("echo \"ready-$((6*7))\"\r");
    term.wait_text("ready-42").await;
    // `~~` at a line start sends one `~`: the shell expands `~/...` to
    // a path in the home directory (`~~/...` would stay as typed).
    term.typed("~~/nonexistent-$((1+2))\r");
    term.wait_text("/nonexistent-3: ").await;
    term.typed("echo \"tilde-$((1+1))\"\r");
    term.wait_text("tilde-2").await;
    let screen = String::from_utf8_lossy(&term.screen.borrow()).into_owned();
    assert!(!screen.contains("~~"), "two tildes sent: {screen:?}");
    term.typed("\r~.");
    let status = exit_status(&mut child).await;
    assert_eq!(status.code(), Some(255), "{}", srv.name());
    term.wait_text("connection to srv closed").await;
    assert_eq!(term.state(), before, "the terminal was not put back");
}
on_both_servers!(tilde_dot_disconnects);

/// Standard input that is no terminal: no pty, the remote shell reads
/// commands from it and its status is the command's.
async fn piped_commands(srv: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cli_harness::command(dir.path());
    c.arg("shell")
        .args(host_args(srv, dir.path()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"test -t 0 || echo \"no-tty-$((1+1))\"; echo err >&2; exit 4\n")
        .await
        .unwrap();
    drop(stdin);
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_exit(&o, 4);
    assert_eq!(stdout(&o), "no-tty-2\n");
    assert_eq!(stderr(&o), "err\n");
}
on_both_servers!(piped_commands);

/// One host, named: several targets without a name, or a name none of
/// them has, are usage errors; nothing connects.
#[tokio::test]
async fn one_host_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cli_harness::command(dir.path());
    c.args([
        "shell",
        "--host",
        "a=127.0.0.1:1",
        "--host",
        "b=127.0.0.1:2",
    ]);
    let o = run(c).await;
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("one host at a time"), "{}", stderr(&o));
    let mut c = cli_harness::command(dir.path());
    c.args(["shell", "--host", "a=127.0.0.1:1", "c"]);
    let o = run(c).await;
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("no host named \"c\""), "{}", stderr(&o));
    let mut c = cli_harness::command(dir.path());
    c.arg("shell");
    let o = run(c).await;
    assert_exit(&o, 2);
}

/// A host that refuses the connection: 255, as ssh.
#[tokio::test]
async fn connection_refused_exits_255() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut c = cli_harness::command(dir.path());
    c.args([
        "shell",
        "--insecure-accept-any",
        "--password-env",
        "VMSSH_T_PW",
    ])
    .args(["--connect-deadline", "0"])
    .env("VMSSH_T_PW", "x")
    .arg(format!("root@127.0.0.1:{port}"));
    let o = run(c).await;
    assert_exit(&o, 255);
}
