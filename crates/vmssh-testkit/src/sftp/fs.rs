//! The filesystem behind the `sftp` subsystem: russh-sftp's server
//! [`Handler`] over the local filesystem, optionally under a root directory,
//! answering as OpenSSH's sftp-server does (directory listings with `.` and
//! `..` and `ls -l` lines, symlinks with OpenSSH's argument order, `realpath`
//! resolving symlinks).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{FileTimes, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
};
use russh_sftp::server::{Handler, StatusReply};

use super::MAX_IO;
use super::longname::longname;
use crate::users::Names;

/// Directory entries per `SSH_FXP_NAME` reply.
const DIR_BATCH: usize = 128;

/// What an open handle refers to.
pub(super) enum Node {
    File(Arc<std::fs::File>),
    Dir {
        path: PathBuf,
        entries: Option<Vec<File>>,
    },
}

/// The SFTP handler of one channel: open handles and the path mapping.
pub(super) struct SftpFs {
    root: Option<PathBuf>,
    handles: HashMap<String, Node>,
    next_handle: u64,
    names: Names,
}

impl SftpFs {
    pub(super) fn new(root: Option<PathBuf>) -> Self {
        SftpFs {
            root,
            handles: HashMap::new(),
            next_handle: 0,
            names: Names::default(),
        }
    }

    /// The client's view of `path`, absolute and without `.` or `..`.
    /// Under a root, the root is `/`; otherwise relative paths start at
    /// the server's working directory. Symlinks are not resolved.
    fn client_path(&self, path: &str) -> String {
        let base = match &self.root {
            Some(_) => PathBuf::from("/"),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        };
        let mut parts: Vec<OsString> = Vec::new();
        for comp in base.join(path).components() {
            match comp {
                Component::Normal(c) => parts.push(c.to_os_string()),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut out = PathBuf::from("/");
        out.extend(parts);
        out.to_string_lossy().into_owned()
    }

    /// Where `path` is on the local filesystem. Under a root, `..` cannot
    /// climb above it (lexically; symlinks inside the root can lead out:
    /// this is a convenience, not a sandbox).
    pub(super) fn local(&self, path: &str) -> PathBuf {
        match &self.root {
            None => PathBuf::from(if path.is_empty() { "." } else { path }),
            Some(root) => root.join(self.client_path(path).trim_start_matches('/')),
        }
    }

    fn new_handle(&mut self, node: Node) -> String {
        self.next_handle += 1;
        let h = self.next_handle.to_string();
        self.handles.insert(h.clone(), node);
        h
    }

    pub(super) fn file(&self, handle: &str) -> Result<Arc<std::fs::File>, StatusReply> {
        match self.handles.get(handle) {
            Some(Node::File(f)) => Ok(f.clone()),
            _ => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    pub(super) fn node(&self, handle: &str) -> Result<&Node, StatusReply> {
        self.handles
            .get(handle)
            .ok_or_else(|| StatusCode::Failure.with_message("invalid handle"))
    }

    /// The client's view of `path` with symlinks resolved, as sshd's
    /// `realpath`: every component but the last must exist. Under a root,
    /// `..` is applied first (it cannot climb out), and a symlink that
    /// leads out of the root is shown unresolved.
    pub(super) async fn resolve(&self, path: &str) -> Result<String, StatusReply> {
        let local = self.local(path);
        let real = match tokio::fs::canonicalize(&local).await {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (local.parent(), local.file_name()) else {
                    return Err(io_status(&e));
                };
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                tokio::fs::canonicalize(parent)
                    .await
                    .map_err(|e| io_status(&e))?
                    .join(name)
            }
            Err(e) => return Err(io_status(&e)),
        };
        let Some(root) = &self.root else {
            return Ok(real.to_string_lossy().into_owned());
        };
        let root = tokio::fs::canonicalize(root)
            .await
            .map_err(|e| io_status(&e))?;
        Ok(match real.strip_prefix(&root) {
            Ok(inside) => Path::new("/").join(inside).to_string_lossy().into_owned(),
            Err(_) => self.client_path(path),
        })
    }
}

pub(super) fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_string(),
        language_tag: "en-US".to_string(),
    }
}

/// Maps an I/O error to an SFTP status as OpenSSH's sftp-server does.
pub(super) fn io_status(e: &io::Error) -> StatusReply {
    let code = match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::EBADF | libc::ELOOP) => StatusCode::NoSuchFile,
        Some(libc::EPERM | libc::EACCES | libc::EFAULT) => StatusCode::PermissionDenied,
        Some(libc::ENAMETOOLONG | libc::EINVAL) => StatusCode::BadMessage,
        Some(libc::ENOSYS) => StatusCode::OpUnsupported,
        Some(_) => StatusCode::Failure,
        None => match e.kind() {
            io::ErrorKind::NotFound => StatusCode::NoSuchFile,
            io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
            _ => StatusCode::Failure,
        },
    };
    code.with_message(e.to_string())
}

/// Runs blocking file work (positional reads and writes) off the runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StatusReply> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| io_status(&e)),
        Err(_) => Err(StatusCode::Failure.with_message("I/O task failed")),
    }
}

fn attrs_of(m: &Metadata) -> FileAttributes {
    FileAttributes {
        size: Some(m.size()),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        permissions: Some(m.mode()),
        atime: Some(u32::try_from(m.atime()).unwrap_or(0)),
        mtime: Some(u32::try_from(m.mtime()).unwrap_or(0)),
        ..FileAttributes::default()
    }
}

/// Applies the attributes a client set (size, mode, owner, times) to an
/// open file.
fn apply_attrs(file: &std::fs::File, attrs: &FileAttributes) -> io::Result<()> {
    if let Some(size) = attrs.size {
        file.set_len(size)?;
    }
    if let Some(mode) = attrs.permissions {
        file.set_permissions(Permissions::from_mode(mode & 0o7777))?;
    }
    if attrs.uid.is_some() || attrs.gid.is_some() {
        std::os::unix::fs::fchown(file, attrs.uid, attrs.gid)?;
    }
    if attrs.atime.is_some() || attrs.mtime.is_some() {
        let at = |t: u32| UNIX_EPOCH + Duration::from_secs(u64::from(t));
        let mut times = FileTimes::new();
        if let Some(a) = attrs.atime {
            times = times.set_accessed(at(a));
        }
        if let Some(m) = attrs.mtime {
            times = times.set_modified(at(m));
        }
        file.set_times(times)?;
    }
    Ok(())
}

impl Handler for SftpFs {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusReply::new(StatusCode::OpUnsupported)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let mut opts = std::fs::OpenOptions::from(pflags);
        if let Some(mode) = attrs.permissions {
            opts.mode(mode & 0o7777);
        }
        let file = tokio::fs::OpenOptions::from(opts)
            .open(self.local(&filename))
            .await
            .map_err(|e| io_status(&e))?;
        let file = file.into_std().await;
        let handle = self.new_handle(Node::File(Arc::new(file)));
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(_) => Ok(ok(id)),
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let file = self.file(&handle)?;
        let len = len.min(MAX_IO) as usize;
        let data = blocking(move || {
            let mut buf = vec![0; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        })
        .await?;
        if data.is_empty() && len > 0 {
            return Err(StatusReply::new(StatusCode::Eof));
        }
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        blocking(move || file.write_all_at(&data, offset)).await?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let m = tokio::fs::symlink_metadata(self.local(&path))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&m),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let m = match self.handles.get(&handle) {
            Some(Node::File(f)) => {
                let f = f.clone();
                blocking(move || f.metadata()).await?
            }
            Some(Node::Dir { path, .. }) => {
                tokio::fs::metadata(path).await.map_err(|e| io_status(&e))?
            }
            None => return Err(StatusCode::Failure.with_message("invalid handle")),
        };
        Ok(Attrs {
            id,
            attrs: attrs_of(&m),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = self.local(&path);
        // Opened for writing only when the size changes: chmod, chown and
        // utimes work on a read-only descriptor (and on directories).
        let writable = attrs.size.is_some();
        blocking(move || {
            let file = std::fs::OpenOptions::new()
                .read(!writable)
                .write(writable)
                .open(path)?;
            apply_attrs(&file, &attrs)
        })
        .await?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        blocking(move || apply_attrs(&file, &attrs)).await?;
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = self.local(&path);
        let m = tokio::fs::metadata(&path)
            .await
            .map_err(|e| io_status(&e))?;
        if !m.is_dir() {
            return Err(StatusCode::NoSuchFile.with_message("not a directory"));
        }
        let handle = self.new_handle(Node::Dir {
            path,
            entries: None,
        });
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let SftpFs { handles, names, .. } = self;
        let Some(Node::Dir { path, entries }) = handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("invalid handle"));
        };
        if entries.is_none() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let mut list = Vec::new();
            let mut entry = |name: &str, m: &Metadata| File {
                filename: name.to_string(),
                longname: longname(name, m, names, now),
                attrs: attrs_of(m),
            };
            // readdir(3) lists `.` and `..` too, and so does sftp-server.
            for dot in [".", ".."] {
                let m = tokio::fs::symlink_metadata(path.join(dot))
                    .await
                    .map_err(|e| io_status(&e))?;
                list.push(entry(dot, &m));
            }
            let mut rd = tokio::fs::read_dir(&*path)
                .await
                .map_err(|e| io_status(&e))?;
            while let Some(e) = rd.next_entry().await.map_err(|e| io_status(&e))? {
                // The entry may vanish meanwhile: skip it then.
                if let Ok(m) = tokio::fs::symlink_metadata(e.path()).await {
                    list.push(entry(&e.file_name().to_string_lossy(), &m));
                }
            }
            list.reverse();
            *entries = Some(list);
        }
        let list = entries.get_or_insert_with(Vec::new);
        if list.is_empty() {
            return Err(StatusReply::new(StatusCode::Eof));
        }
        let batch = list.split_off(list.len().saturating_sub(DIR_BATCH));
        Ok(Name {
            id,
            files: batch.into_iter().rev().collect(),
        })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_file(self.local(&filename))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let mut b = tokio::fs::DirBuilder::new();
        b.mode(attrs.permissions.map_or(0o777, |m| m & 0o7777));
        b.create(self.local(&path))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_dir(self.local(&path))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(self.resolve(&path).await?)],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let m = tokio::fs::metadata(self.local(&path))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&m),
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        // SFTP v3 rename does not replace an existing file (OpenSSH links
        // then unlinks); posix-rename@openssh.com does.
        let (from, to) = (self.local(&oldpath), self.local(&newpath));
        if tokio::fs::symlink_metadata(&to).await.is_ok() {
            return Err(StatusCode::Failure.with_message("destination exists"));
        }
        tokio::fs::rename(from, to)
            .await
            .map_err(|e| io_status(&e))?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = tokio::fs::read_link(self.local(&path))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(Name {
            id,
            files: vec![File::dummy(target.to_string_lossy())],
        })
    }

    /// OpenSSH's client sends the target first and the link second (the
    /// reverse of the draft, whose names russh-sftp uses): sftp-server
    /// follows the client, and so does this. The target is stored as given.
    async fn symlink(
        &mut self,
        id: u32,
        linkpath: String,
        targetpath: String,
    ) -> Result<Status, Self::Error> {
        let (target, link) = (linkpath, targetpath);
        tokio::fs::symlink(target, self.local(&link))
            .await
            .map_err(|e| io_status(&e))?;
        Ok(ok(id))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let fs = SftpFs::new(Some(PathBuf::from("/srv/root")));
        assert_eq!(fs.client_path("."), "/");
        assert_eq!(fs.client_path("a/../../b"), "/b");
        assert_eq!(
            fs.local("/../../etc/passwd"),
            Path::new("/srv/root/etc/passwd")
        );
        assert_eq!(fs.local("x/./y"), Path::new("/srv/root/x/y"));
        let plain = SftpFs::new(None);
        assert_eq!(plain.local("/etc/hosts"), Path::new("/etc/hosts"));
        assert_eq!(plain.client_path("/a/b/../c"), "/a/c");
    }

    #[test]
    fn errors_map_like_openssh() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_status(&e).status_code, StatusCode::NoSuchFile);
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(io_status(&e).status_code, StatusCode::PermissionDenied);
        let e = io::Error::from_raw_os_error(libc::EEXIST);
        assert_eq!(io_status(&e).status_code, StatusCode::Failure);
    }
}
