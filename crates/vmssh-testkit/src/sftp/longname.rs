//! The `longname` of a directory entry: the `ls -l` line OpenSSH's
//! sftp-server writes (its `ls_file`), which OpenSSH's `sftp` prints
//! verbatim for `ls -l`.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use crate::users::Names;

/// Six months, the age beyond which `ls` shows the year instead of the
/// time of day.
const HALF_YEAR: i64 = 365 * 24 * 60 * 60 / 2;

/// `drwxr-xr-x    2 root     root         4096 Jan  1 12:00 name`.
pub(super) fn longname(name: &str, m: &Metadata, names: &mut Names, now: i64) -> String {
    let user = names.user(m.uid()).to_string();
    let group = names.group(m.gid());
    format!(
        "{} {:>3} {:<8} {:<8} {:>8} {} {}",
        mode_string(m.mode()),
        m.nlink(),
        user,
        group,
        m.size(),
        mtime(m.mtime(), now),
        name
    )
}

/// `strmode(3)`: the type letter, nine permission letters (with set-id and
/// sticky bits), and a space where an ACL marker would go.
fn mode_string(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        libc::S_IFREG => '-',
        _ => '?',
    };
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    // The execute letter of a triple, merged with its special bit.
    let exec =
        |x: u32, special: u32, set: char, unset: char| match (mode & x != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
        ' ',
    ]
    .into_iter()
    .collect()
}

/// The modification time as `ls` shows it, in local time: `Jan  1 12:00`
/// within the last six months, `Jan  1  2020` otherwise.
fn mtime(t: i64, now: i64) -> String {
    let recent = now - HALF_YEAR < t && now >= t;
    let format = if recent { c"%b %e %H:%M" } else { c"%b %e  %Y" };
    // Where time_t is 32 bits, far dates wrap: only a display is at stake.
    let t = t as libc::time_t;
    // SAFETY: all-zero is a valid `tm` (integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live values of the right types.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is writable for its length, `format` is a
    // NUL-terminated string and `tm` was filled in by localtime_r.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(libc::S_IFDIR | 0o755), "drwxr-xr-x ");
        assert_eq!(mode_string(libc::S_IFREG | 0o644), "-rw-r--r-- ");
        assert_eq!(mode_string(libc::S_IFLNK | 0o777), "lrwxrwxrwx ");
        assert_eq!(mode_string(libc::S_IFREG | 0o4755), "-rwsr-xr-x ");
        assert_eq!(mode_string(libc::S_IFREG | 0o2644), "-rw-r-Sr-- ");
        assert_eq!(mode_string(libc::S_IFDIR | 0o1777), "drwxrwxrwt ");
        assert_eq!(mode_string(libc::S_IFDIR | 0o1770), "drwxrwx--T ");
    }

    #[test]
    fn old_files_show_the_year() {
        let now = 1_700_000_000;
        assert!(mtime(now - 60, now).contains(':'));
        let old = mtime(now - 2 * HALF_YEAR, now);
        assert!(!old.contains(':') && old.ends_with("2022"), "{old}");
        // In the future: the year too, as ls does.
        assert!(!mtime(now + 3600, now).contains(':'));
    }

    #[test]
    fn a_line_has_the_columns_sftp_expects() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        let m = std::fs::symlink_metadata(&file).unwrap();
        let now = m.mtime() + 1;
        let line = longname("f", &m, &mut Names::default(), now);
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols[0].starts_with("-rw"), "{line}");
        assert_eq!(cols[1], "1");
        assert_eq!(cols[4], "5");
        assert_eq!(*cols.last().unwrap(), "f");
    }
}
