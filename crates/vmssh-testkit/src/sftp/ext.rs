//! The OpenSSH extensions of the `sftp` subsystem (`SSH_FXP_EXTENDED`),
//! with the wire formats of OpenSSH's PROTOCOL file.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::{Buf, Bytes};
use russh_sftp::protocol::{ExtendedReply, File, Name, Packet, StatusCode, Version};
use russh_sftp::server::{Handler, StatusReply};

use super::fs::{Node, SftpFs, blocking, io_status, ok};
use super::{MAX_IO, MAX_PACKET};
use crate::users;

/// The extensions announced in the `SSH_FXP_VERSION` reply, with the
/// versions sshd's sftp-server announces.
const ADVERTISED: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"),
    ("copy-data", "1"),
];

/// Bytes `copy-data` moves per read: bounded, whatever the length asked.
const COPY_CHUNK: usize = 64 * 1024;

/// The reply to `SSH_FXP_INIT`: version 3 and the extensions served here.
pub(super) fn version() -> Version {
    let mut v = Version::new();
    for (name, version) in ADVERTISED {
        v.extensions.insert(name.to_string(), version.to_string());
    }
    v
}

/// Answers an `SSH_FXP_EXTENDED` request.
pub(super) async fn extended(
    fs: &mut SftpFs,
    id: u32,
    request: &str,
    data: Vec<u8>,
) -> Result<Packet, StatusReply> {
    let mut data = Bytes::from(data);
    let d = &mut data;
    match request {
        "limits@openssh.com" => {
            // Packet length, read length, write length, open handles (0:
            // no limit).
            let limits = [
                u64::from(MAX_PACKET),
                u64::from(MAX_IO),
                u64::from(MAX_IO),
                0,
            ];
            Ok(reply(id, &limits))
        }
        "fsync@openssh.com" => {
            let file = fs.file(&string(d)?)?;
            blocking(move || file.sync_all()).await?;
            Ok(ok(id).into())
        }
        "posix-rename@openssh.com" => {
            let (from, to) = (string(d)?, string(d)?);
            tokio::fs::rename(fs.local(&from), fs.local(&to))
                .await
                .map_err(|e| io_status(&e))?;
            Ok(ok(id).into())
        }
        "hardlink@openssh.com" => {
            let (from, to) = (string(d)?, string(d)?);
            tokio::fs::hard_link(fs.local(&from), fs.local(&to))
                .await
                .map_err(|e| io_status(&e))?;
            Ok(ok(id).into())
        }
        "statvfs@openssh.com" => {
            let path = fs.local(&string(d)?);
            let st = blocking(move || statvfs(&path)).await?;
            Ok(reply(id, &st))
        }
        "fstatvfs@openssh.com" => {
            let st = match fs.node(&string(d)?)? {
                Node::File(f) => {
                    let f = f.clone();
                    blocking(move || fstatvfs(&f)).await?
                }
                Node::Dir { path, .. } => {
                    let path = path.clone();
                    blocking(move || statvfs(&path)).await?
                }
            };
            Ok(reply(id, &st))
        }
        "expand-path@openssh.com" => {
            let path = expand_tilde(&string(d)?)?;
            Ok(Name {
                id,
                files: vec![File::dummy(fs.resolve(&path).await?)],
            }
            .into())
        }
        "copy-data" => {
            let read = fs.file(&string(d)?)?;
            let (offset, len) = (u64_of(d)?, u64_of(d)?);
            let write = fs.file(&string(d)?)?;
            let to = u64_of(d)?;
            blocking(move || copy(&read, offset, len, &write, to)).await?;
            Ok(ok(id).into())
        }
        _ => Err(fs.unimplemented()),
    }
}

/// `expand-path@openssh.com` before `realpath`, as sftp-server: `~` and
/// `~/x` start at the subsystem's starting directory (the login directory
/// there, the server's working directory here), `~user/x` at that user's
/// home directory.
fn expand_tilde(path: &str) -> Result<String, StatusReply> {
    let Some(rest) = path.strip_prefix('~') else {
        return Ok(path.to_string());
    };
    let (user, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let home = if user.is_empty() {
        ".".to_string()
    } else {
        users::home_of(user).ok_or_else(|| StatusCode::NoSuchFile.with_message("no such user"))?
    };
    Ok(if tail.is_empty() {
        home
    } else {
        format!("{home}/{tail}")
    })
}

/// An `SSH_FXP_EXTENDED_REPLY` of big-endian `u64`s.
fn reply(id: u32, values: &[u64]) -> Packet {
    let data = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    ExtendedReply { id, data }.into()
}

fn bad() -> StatusReply {
    StatusCode::BadMessage.with_message("malformed extension request")
}

/// An SSH string (u32 length, then UTF-8 bytes).
fn string(data: &mut Bytes) -> Result<String, StatusReply> {
    if data.remaining() < 4 {
        return Err(bad());
    }
    let len = data.get_u32() as usize;
    if data.remaining() < len {
        return Err(bad());
    }
    String::from_utf8(data.split_to(len).to_vec()).map_err(|_| bad())
}

fn u64_of(data: &mut Bytes) -> Result<u64, StatusReply> {
    if data.remaining() < 8 {
        return Err(bad());
    }
    Ok(data.get_u64())
}

/// `statvfs(2)` in the reply's order: block size, fragment size, blocks,
/// free blocks, blocks available, inodes, free inodes, inodes available,
/// filesystem id, flags (read-only 1, nosuid 2), longest name.
fn statvfs(path: &Path) -> io::Result<[u64; 11]> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: all-zero is a valid `statvfs` (plain integers).
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is live and writable.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fields(&st))
}

fn fstatvfs(file: &std::fs::File) -> io::Result<[u64; 11]> {
    // SAFETY: all-zero is a valid `statvfs` (plain integers).
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the borrow of `file`, and `st` is
    // live and writable.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fields(&st))
}

#[allow(clippy::useless_conversion)] // The field types differ between targets.
fn fields(st: &libc::statvfs) -> [u64; 11] {
    let mut flag = 0;
    if st.f_flag & libc::ST_RDONLY != 0 {
        flag |= 1;
    }
    if st.f_flag & libc::ST_NOSUID != 0 {
        flag |= 2;
    }
    [
        u64::from(st.f_bsize),
        u64::from(st.f_frsize),
        u64::from(st.f_blocks),
        u64::from(st.f_bfree),
        u64::from(st.f_bavail),
        u64::from(st.f_files),
        u64::from(st.f_ffree),
        u64::from(st.f_favail),
        u64::from(st.f_fsid),
        flag,
        u64::from(st.f_namemax),
    ]
}

/// `copy-data`: `len` bytes (0: up to the end) from `offset` of `from` to
/// `to` at `at`, in bounded chunks.
fn copy(
    from: &std::fs::File,
    offset: u64,
    len: u64,
    to: &std::fs::File,
    at: u64,
) -> io::Result<()> {
    let mut buf = vec![0; COPY_CHUNK];
    let mut done = 0u64;
    while len == 0 || done < len {
        let want = if len == 0 {
            COPY_CHUNK
        } else {
            usize::try_from(len - done).map_or(COPY_CHUNK, |n| n.min(COPY_CHUNK))
        };
        let n = match from.read_at(&mut buf[..want], offset + done) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all_at(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_of_a_directory() {
        let st = statvfs(Path::new("/")).unwrap();
        assert!(st[0] > 0, "block size");
        assert!(st[10] > 0, "longest name");
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("f")).unwrap();
        assert_eq!(fstatvfs(&f).unwrap()[0], statvfs(dir.path()).unwrap()[0]);
    }

    #[test]
    fn copy_is_bounded_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("a"), &data).unwrap();
        let from = std::fs::File::open(dir.path().join("a")).unwrap();
        let to = std::fs::File::create(dir.path().join("b")).unwrap();
        copy(&from, 10, 0, &to, 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), &data[10..]);
        let to = std::fs::File::create(dir.path().join("c")).unwrap();
        copy(&from, 100, 70_000, &to, 5).unwrap();
        let c = std::fs::read(dir.path().join("c")).unwrap();
        assert_eq!(&c[5..], &data[100..70_100]);
    }

    #[test]
    fn tilde_paths() {
        assert_eq!(expand_tilde("/a/b").unwrap(), "/a/b");
        assert_eq!(expand_tilde("~").unwrap(), ".");
        assert_eq!(expand_tilde("~/x/y").unwrap(), "./x/y");
        assert_eq!(
            expand_tilde("~root").unwrap(),
            users::home_of("root").unwrap()
        );
        assert!(expand_tilde("~root/x").unwrap().ends_with("/x"));
        let e = expand_tilde("~no-such-user-here/x").unwrap_err();
        assert_eq!(e.status_code, StatusCode::NoSuchFile);
    }

    #[test]
    fn truncated_requests_are_bad_messages() {
        let mut d = Bytes::from_static(&[0, 0, 0, 9, b'a']);
        assert_eq!(
            string(&mut d).unwrap_err().status_code,
            StatusCode::BadMessage
        );
        let mut d = Bytes::from_static(&[0, 0, 1]);
        assert_eq!(
            u64_of(&mut d).unwrap_err().status_code,
            StatusCode::BadMessage
        );
    }
}
