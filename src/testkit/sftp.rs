//! The `sftp` subsystem: russh-sftp's server [`Handler`] over the local
//! filesystem (optionally under a root directory), driven by a loop of our
//! own so that it runs as a cancellable, panic-reporting server task.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{FileTimes, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use russh::Channel;
use russh::server::Msg;
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use russh_sftp::server::{Handler, StatusReply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest request accepted, as OpenSSH's sftp-server.
const MAX_PACKET: u32 = 256 * 1024;
/// The most bytes one read or write moves (`limits@openssh.com`).
const MAX_IO: u32 = MAX_PACKET - 1024;
/// Directory entries per `SSH_FXP_NAME` reply.
const DIR_BATCH: usize = 128;

/// Serves SFTP on `channel` until the client closes it.
pub(crate) async fn serve(channel: Channel<Msg>, root: Option<PathBuf>) {
    let mut stream = channel.into_stream();
    let mut fs = SftpFs::new(root);
    loop {
        let Ok(len) = stream.read_u32().await else {
            return;
        };
        if len > MAX_PACKET {
            // Out of sync or hostile: drop the channel (closing it).
            return;
        }
        let mut body = vec![0; len as usize];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = Bytes::from(body);
        let reply = match Packet::try_from(&mut body) {
            Ok(request) => dispatch(&mut fs, request).await,
            Err(_) => Packet::error(0, StatusCode::BadMessage),
        };
        let Ok(out) = Bytes::try_from(reply) else {
            return;
        };
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// Calls the handler method for `request`, as russh-sftp's own server
/// loop does, turning errors into status replies.
async fn dispatch(fs: &mut SftpFs, request: Packet) -> Packet {
    let id = request.get_request_id();
    let result: Result<Packet, StatusReply> = match request {
        Packet::Init(p) => fs.init(p.version, p.extensions).await.map(Into::into),
        Packet::Open(p) => fs
            .open(p.id, p.filename, p.pflags, p.attrs)
            .await
            .map(Into::into),
        Packet::Close(p) => fs.close(p.id, p.handle).await.map(Into::into),
        Packet::Read(p) => fs
            .read(p.id, p.handle, p.offset, p.len)
            .await
            .map(Into::into),
        Packet::Write(p) => fs
            .write(p.id, p.handle, p.offset, p.data)
            .await
            .map(Into::into),
        Packet::Lstat(p) => fs.lstat(p.id, p.path).await.map(Into::into),
        Packet::Fstat(p) => fs.fstat(p.id, p.handle).await.map(Into::into),
        Packet::SetStat(p) => fs.setstat(p.id, p.path, p.attrs).await.map(Into::into),
        Packet::FSetStat(p) => fs.fsetstat(p.id, p.handle, p.attrs).await.map(Into::into),
        Packet::OpenDir(p) => fs.opendir(p.id, p.path).await.map(Into::into),
        Packet::ReadDir(p) => fs.readdir(p.id, p.handle).await.map(Into::into),
        Packet::Remove(p) => fs.remove(p.id, p.filename).await.map(Into::into),
        Packet::MkDir(p) => fs.mkdir(p.id, p.path, p.attrs).await.map(Into::into),
        Packet::RmDir(p) => fs.rmdir(p.id, p.path).await.map(Into::into),
        Packet::RealPath(p) => fs.realpath(p.id, p.path).await.map(Into::into),
        Packet::Stat(p) => fs.stat(p.id, p.path).await.map(Into::into),
        Packet::Rename(p) => fs.rename(p.id, p.oldpath, p.newpath).await.map(Into::into),
        Packet::ReadLink(p) => fs.readlink(p.id, p.path).await.map(Into::into),
        Packet::Symlink(p) => fs
            .symlink(p.id, p.linkpath, p.targetpath)
            .await
            .map(Into::into),
        Packet::Extended(p) => fs.extended(p.id, p.request, p.data).await,
        _ => Err(StatusReply::new(StatusCode::BadMessage)),
    };
    result.unwrap_or_else(|e| {
        let message = e.error_message.unwrap_or_else(|| e.status_code.to_string());
        Packet::status(id, e.status_code, &message, "en-US")
    })
}

enum Node {
    File(Arc<std::fs::File>),
    Dir {
        path: PathBuf,
        entries: Option<Vec<File>>,
    },
}

/// The SFTP handler of one channel: open handles and the path mapping.
struct SftpFs {
    root: Option<PathBuf>,
    handles: HashMap<String, Node>,
    next_handle: u64,
}

impl SftpFs {
    fn new(root: Option<PathBuf>) -> Self {
        SftpFs {
            root,
            handles: HashMap::new(),
            next_handle: 0,
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
    fn local(&self, path: &str) -> PathBuf {
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

    fn file(&self, handle: &str) -> Result<Arc<std::fs::File>, StatusReply> {
        match self.handles.get(handle) {
            Some(Node::File(f)) => Ok(f.clone()),
            _ => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_string(),
        language_tag: "en-US".to_string(),
    }
}

/// Maps an I/O error to an SFTP status as OpenSSH's sftp-server does.
fn io_status(e: &io::Error) -> StatusReply {
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
async fn blocking<T: Send + 'static>(
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

/// Reads an SSH string (u32 length, then bytes) from extension data.
fn ssh_string(data: &mut Bytes) -> Option<String> {
    if data.remaining() < 4 {
        return None;
    }
    let len = data.get_u32() as usize;
    if data.remaining() < len {
        return None;
    }
    String::from_utf8(data.split_to(len).to_vec()).ok()
}

impl Handler for SftpFs {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusReply::new(StatusCode::OpUnsupported)
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut v = Version::new();
        for ext in [
            russh_sftp::extensions::LIMITS,
            russh_sftp::extensions::FSYNC,
            russh_sftp::extensions::HARDLINK,
            "posix-rename@openssh.com",
        ] {
            v.extensions.insert(ext.to_string(), "1".to_string());
        }
        Ok(v)
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
        let Some(Node::Dir { path, entries }) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("invalid handle"));
        };
        if entries.is_none() {
            let mut list = Vec::new();
            let mut rd = tokio::fs::read_dir(&*path)
                .await
                .map_err(|e| io_status(&e))?;
            while let Some(entry) = rd.next_entry().await.map_err(|e| io_status(&e))? {
                // The entry may vanish meanwhile: skip it then.
                if let Ok(m) = tokio::fs::symlink_metadata(entry.path()).await {
                    list.push(File::new(entry.file_name().to_string_lossy(), attrs_of(&m)));
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
            files: vec![File::dummy(self.client_path(&path))],
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

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        let mut data = Bytes::from(data);
        let bad = || StatusReply::new(StatusCode::BadMessage);
        match request.as_str() {
            russh_sftp::extensions::LIMITS => {
                let mut out = Vec::with_capacity(32);
                for v in [
                    u64::from(MAX_PACKET),
                    u64::from(MAX_IO),
                    u64::from(MAX_IO),
                    0,
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                Ok(ExtendedReply { id, data: out }.into())
            }
            russh_sftp::extensions::FSYNC => {
                let handle = ssh_string(&mut data).ok_or_else(bad)?;
                let file = self.file(&handle)?;
                blocking(move || file.sync_all()).await?;
                Ok(ok(id).into())
            }
            "posix-rename@openssh.com" => {
                let from = ssh_string(&mut data).ok_or_else(bad)?;
                let to = ssh_string(&mut data).ok_or_else(bad)?;
                tokio::fs::rename(self.local(&from), self.local(&to))
                    .await
                    .map_err(|e| io_status(&e))?;
                Ok(ok(id).into())
            }
            russh_sftp::extensions::HARDLINK => {
                let from = ssh_string(&mut data).ok_or_else(bad)?;
                let to = ssh_string(&mut data).ok_or_else(bad)?;
                tokio::fs::hard_link(self.local(&from), self.local(&to))
                    .await
                    .map_err(|e| io_status(&e))?;
                Ok(ok(id).into())
            }
            _ => Err(self.unimplemented()),
        }
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
