//! `~`, `%x` tokens and `${VAR}` in ssh_config values, and the local
//! facts they refer to (user, home, uid, host name), taken where OpenSSH
//! takes them: the password database, not `$HOME`.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// The local user as OpenSSH sees it (`getpwuid(getuid())`).
#[derive(Clone, Debug)]
pub(super) struct LocalUser {
    pub(super) name: String,
    pub(super) home: PathBuf,
    pub(super) uid: u32,
    /// `gethostname`, with the domain (`%l`).
    pub(super) hostname: String,
}

impl LocalUser {
    pub(super) fn current() -> Result<LocalUser, String> {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let (name, home) = passwd_by_uid(uid)
            .ok_or_else(|| format!("no password database entry for uid {uid}"))?;
        Ok(LocalUser {
            name,
            home,
            uid,
            hostname: hostname(),
        })
    }

    /// `%L`: the host name up to its first dot.
    pub(super) fn short_hostname(&self) -> &str {
        self.hostname.split('.').next().unwrap_or_default()
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Name and home directory of `uid`.
fn passwd_by_uid(uid: libc::uid_t) -> Option<(String, PathBuf)> {
    with_passwd(|pwd, buf, result| {
        // SAFETY: all pointers are valid for the call; see with_passwd.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

/// Home directory of the user called `name` (for `~name/`).
pub(super) fn home_of(name: &str) -> Option<PathBuf> {
    let cname = CString::new(name).ok()?;
    with_passwd(|pwd, buf, result| {
        // SAFETY: all pointers are valid for the call; see with_passwd.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
    .map(|(_, home)| home)
}

fn with_passwd(
    call: impl Fn(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> Option<(String, PathBuf)> {
    let mut size = 1024;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; size];
        // SAFETY: passwd is plain old data; zeroed is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let r = call(&mut pwd, &mut buf, &mut result);
        if r == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if r != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success pw_name and pw_dir point to NUL-terminated
        // strings inside buf, which is still alive.
        let (name, dir) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
        return Some((
            name.to_string_lossy().into_owned(),
            PathBuf::from(dir.to_string_lossy().into_owned()),
        ));
    }
}

/// `~` and `~/...` to the home directory, `~user/...` to that user's.
pub(super) fn tilde(s: &str, me: &LocalUser) -> Result<String, String> {
    let Some(rest) = s.strip_prefix('~') else {
        return Ok(s.to_string());
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        me.home.clone()
    } else {
        home_of(user).ok_or_else(|| format!("no such user {user:?} in {s:?}"))?
    };
    let home = home.to_string_lossy().into_owned();
    Ok(format!("{}{}", home.trim_end_matches('/'), tail))
}

/// `%x` tokens (the letters in `tokens`) and, if `dollar`, `${VAR}` from
/// the environment, in one pass. Unknown tokens and unset variables are
/// errors, as in OpenSSH.
pub(super) fn percent(s: &str, tokens: &[(char, &str)], dollar: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('%') => out.push('%'),
                Some(t) => match tokens.iter().find(|(k, _)| *k == t) {
                    Some((_, v)) => out.push_str(v),
                    None => return Err(format!("unknown token %{t} in {s:?}")),
                },
                None => return Err(format!("lone % at the end of {s:?}")),
            },
            '$' if dollar && chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                if name.is_empty() {
                    return Err(format!("empty ${{}} in {s:?}"));
                }
                match std::env::var(&name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => {
                        return Err(format!("environment variable {name} is not set ({s:?})"));
                    }
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> LocalUser {
        LocalUser {
            name: "me".into(),
            home: "/home/me".into(),
            uid: 1000,
            hostname: "box.example.org".into(),
        }
    }

    #[test]
    fn tilde_forms() {
        assert_eq!(tilde("~/.ssh/id", &me()).unwrap(), "/home/me/.ssh/id");
        assert_eq!(tilde("~", &me()).unwrap(), "/home/me");
        assert_eq!(tilde("/abs/~x", &me()).unwrap(), "/abs/~x");
        assert_eq!(tilde("~root/k", &me()).unwrap(), "/root/k");
        assert!(tilde("~no-such-user-here/k", &me()).is_err());
    }

    #[test]
    fn tokens_and_env() {
        let t = [('h', "web"), ('p', "22")];
        assert_eq!(percent("%h:%p %%", &t, false).unwrap(), "web:22 %");
        assert!(percent("%x", &t, false).is_err());
        assert!(percent("50%", &t, false).is_err());
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("VMSSH_EXPAND_TEST", "v") };
        assert_eq!(
            percent("${VMSSH_EXPAND_TEST}/%h", &t, true).unwrap(),
            "v/web"
        );
        assert_eq!(
            percent("${VMSSH_EXPAND_TEST}", &t, false).unwrap(),
            "${VMSSH_EXPAND_TEST}"
        );
        assert!(percent("${VMSSH_EXPAND_UNSET_VAR}", &t, true).is_err());
    }

    #[test]
    fn current_user_exists() {
        let me = LocalUser::current().unwrap();
        assert!(!me.name.is_empty());
        assert!(me.home.is_absolute());
        assert_eq!(me.short_hostname(), me.hostname.split('.').next().unwrap());
    }
}
