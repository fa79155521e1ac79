//! Directory trees over SFTP: the walk of a local or remote tree, then
//! its directories, files and symbolic links recreated on the other side.
//!
//! A tree is walked whole first (its size is the progress total), then:
//! directories are created in one pipelined batch (parents first; the
//! server handles one channel's requests in order), files move
//! [`FILES_IN_FLIGHT`] at a time on the one channel, each with its own
//! pipelining and atomic replace, links are recreated as links, and last
//! the directories get their modes, deepest first (a read-only directory
//! would have refused its own files).
//!
//! Links are never followed: a link's target is copied as text, whether it
//! points inside the tree or out of it, and what it points to is never
//! read. Only the root given by the caller is followed if it is a link.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;
use futures::stream::{FuturesOrdered, FuturesUnordered};

use super::atomic::{RemoteTemp, Remover, local_mode, temp_name_for};
use super::options::{Progress, ProgressFn, TransferOptions};
use super::{Sftp, mode_attrs, submit};
use crate::error::{Error, SftpErrorKind};

/// Files transferred at once on the one channel. Each keeps its own
/// requests in flight; more files at once hide the per-file round trips
/// (open, close, rename) of small files.
pub(crate) const FILES_IN_FLIGHT: usize = 4;

/// Directory requests (mkdir, setstat, readlink) in flight at once.
const DIR_REQUESTS_IN_FLIGHT: usize = 64;

/// Remote directories listed at once (each listing is a few requests in
/// a row).
const DIRS_LISTED_AT_ONCE: usize = 8;

/// What a directory transfer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeSummary {
    /// Regular files transferred.
    pub files: u64,
    /// Directories created or merged into, the root included.
    pub dirs: u64,
    /// Symbolic links recreated (as links, never followed).
    pub links: u64,
    /// Bytes of file data transferred.
    pub bytes: u64,
    /// Entries that are neither files, directories nor links (sockets,
    /// fifos, devices): left out.
    pub skipped: u64,
}

/// One entry of a walked tree, by its path relative to the root
/// (`/`-separated, never empty, no `.` or `..`).
#[derive(Debug)]
struct Entry {
    rel: String,
    kind: Kind,
    /// Permission bits, setuid and friends included (`0o7777`).
    mode: u32,
}

#[derive(Debug)]
enum Kind {
    Dir,
    File { len: u64 },
    Link { target: String },
}

/// A walked tree: entries sorted by path, so a directory comes before
/// what it holds.
#[derive(Debug, Default)]
struct Tree {
    entries: Vec<Entry>,
    skipped: u64,
}

impl Tree {
    fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                Kind::File { len } => len,
                _ => 0,
            })
            .sum()
    }

    fn sort(&mut self) {
        // A path sorts after its proper prefixes: parents first.
        self.entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    }
}

/// `base` and a relative path, for a remote path.
fn remote_join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        return base.to_string();
    }
    let base = base.trim_end_matches('/');
    format!("{base}/{rel}")
}

fn rel_join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn local_join(base: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

fn local_err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", p.display()), e)
}

/// The permission bits a tree's entry gets on the other side: setuid,
/// setgid and sticky only under
/// [`keep_setuid`](TransferOptions::keep_setuid).
fn tree_mode(mode: u32, opts: &TransferOptions) -> u32 {
    if opts.keep_setuid {
        mode & 0o7777
    } else {
        mode & 0o777
    }
}

/// Walks a local tree without following links (the root excepted). Done
/// in place: metadata calls, as `local_file` does for the files it opens.
fn walk_local(root: &Path) -> Result<Tree, Error> {
    let meta = std::fs::metadata(root).map_err(|e| local_err("cannot read", root, e))?;
    if !meta.is_dir() {
        return Err(local_err(
            "not a directory:",
            root,
            std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    let mut tree = Tree::default();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = local_join(root, &rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| local_err("cannot list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| local_err("cannot list", &dir, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(local_err(
                    "not a UTF-8 name (SFTP paths are text):",
                    &path,
                    std::io::Error::from(std::io::ErrorKind::InvalidData),
                ));
            };
            let child = rel_join(&rel, name);
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| local_err("cannot read", &path, e))?;
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map_err(|e| local_err("cannot read link", &path, e))?;
                let Some(target) = target.to_str() else {
                    return Err(local_err(
                        "link target is not UTF-8:",
                        &path,
                        std::io::Error::from(std::io::ErrorKind::InvalidData),
                    ));
                };
                Kind::Link {
                    target: target.to_string(),
                }
            } else if ft.is_dir() {
                pending.push(child.clone());
                Kind::Dir
            } else if ft.is_file() {
                Kind::File { len: meta.len() }
            } else {
                tracing::warn!(path = %path.display(), "not a file, directory or link: left out");
                tree.skipped += 1;
                continue;
            };
            tree.entries.push(Entry {
                rel: child,
                kind,
                mode,
            });
        }
    }
    tree.sort();
    Ok(tree)
}

/// Checks a name a server listed: one path component, nothing that climbs.
fn check_remote_name(sftp: &Sftp, dir: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Sftp {
            host: sftp.inner.session.host().to_string(),
            port: sftp.inner.session.port(),
            op: "readdir".to_string(),
            path: dir.to_string(),
            kind: SftpErrorKind::Other,
            source: Some(format!("the server listed an unsafe name {name:?}").into()),
        });
    }
    Ok(())
}

/// The tree-wide progress: each file's progress added up.
struct TreeProgress {
    done: AtomicU64,
    total: u64,
    user: Option<ProgressFn>,
}

impl TreeProgress {
    fn new(total: u64, opts: &TransferOptions) -> Arc<Self> {
        Arc::new(TreeProgress {
            done: AtomicU64::new(0),
            total,
            user: opts.progress.clone(),
        })
    }

    /// A file's callback: it reports its own bytes so far; the tree's
    /// callback gets the sum over all files.
    fn for_file(self: &Arc<Self>) -> Option<ProgressFn> {
        self.user.as_ref()?;
        let tree = self.clone();
        let last = AtomicU64::new(0);
        Some(Arc::new(move |p: Progress| {
            let prev = last.swap(p.done, Ordering::Relaxed);
            if p.done > prev {
                let delta = p.done - prev;
                let done = tree.done.fetch_add(delta, Ordering::Relaxed) + delta;
                tree.report(done, tree.total.max(done));
            }
        }))
    }

    fn report(&self, done: u64, total: u64) {
        if let Some(f) = &self.user {
            f(Progress {
                done,
                total: Some(total),
            });
        }
    }
}

/// The options each file of a tree is moved with: the caller's, but with
/// the entry's own mode, no parents to create (the walk made them), and
/// the tree's progress.
fn file_opts(
    opts: &TransferOptions,
    mode: Option<u32>,
    progress: &Arc<TreeProgress>,
) -> TransferOptions {
    let mut o = opts.clone();
    o.mode = mode;
    o.create_parents = false;
    o.progress = progress.for_file();
    o
}

/// Removes a local temporary link unless defused.
struct LocalTemp(Option<PathBuf>);

impl Drop for LocalTemp {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // A single unlink; cheap enough on drop.
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Sftp {
    /// Creates a symbolic link at `link` whose target is the text
    /// `target` (argument order as [`std::os::unix::fs::symlink`]). The
    /// target is not checked or resolved.
    ///
    /// OpenSSH's sftp-server reads `SSH_FXP_SYMLINK`'s two paths in the
    /// opposite order to the SFTP draft (target first); the request is sent
    /// in OpenSSH's order, which is what servers in the field expect.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] ([`SftpErrorKind::AlreadyExists`] or
    /// [`SftpErrorKind::Other`] when `link` exists, depending on the
    /// server).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the link may have been created.
    pub async fn symlink(&self, target: &str, link: &str) -> Result<(), Error> {
        // russh-sftp puts its first argument first on the wire: the
        // target, for OpenSSH.
        self.call("symlink", link, self.inner.raw.symlink(target, link))
            .await
            .map(drop)
    }

    /// The target of the symbolic link `path`, as text.
    ///
    /// # Errors
    ///
    /// [`Error::Sftp`] (when `path` is not a link, among others).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn read_link(&self, path: &str) -> Result<String, Error> {
        let name = self
            .call("readlink", path, self.inner.raw.readlink(path))
            .await?;
        name.files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .ok_or_else(|| self.failed("readlink", path, SftpErrorKind::Other, Some("empty reply")))
    }

    /// Uploads the local directory `local_dir` to `remote_dir`. See
    /// [`Session::upload_dir`](crate::Session::upload_dir).
    ///
    /// # Errors
    ///
    /// As [`Session::upload_dir`](crate::Session::upload_dir).
    ///
    /// # Cancel safety
    ///
    /// As [`Session::upload_dir`](crate::Session::upload_dir).
    pub async fn upload_dir(
        &self,
        local_dir: &Path,
        remote_dir: &str,
        opts: &TransferOptions,
    ) -> Result<TreeSummary, Error> {
        let tree = walk_local(local_dir)?;
        let root_mode = std::fs::metadata(local_dir)
            .map_err(|e| local_err("cannot read", local_dir, e))?
            .permissions()
            .mode();
        let mut summary = TreeSummary {
            skipped: tree.skipped,
            ..TreeSummary::default()
        };
        let progress = TreeProgress::new(tree.total_bytes(), opts);
        progress.report(0, progress.total);

        // The root: merged into if it is a directory, created otherwise.
        let root_created = match self.root_exists(remote_dir).await? {
            true => false,
            false => {
                if opts.create_parents
                    && let Some(parent) = super::atomic::parent_of(remote_dir)
                {
                    self.mkdir_all(parent).await?;
                }
                match self
                    .call(
                        "mkdir",
                        remote_dir,
                        self.inner.raw.mkdir(remote_dir, mode_attrs(0o700)),
                    )
                    .await
                {
                    Ok(_) => true,
                    // Made meanwhile by someone else (another upload of
                    // the same tree): merged into.
                    Err(e) => match self.root_exists(remote_dir).await {
                        Ok(true) => false,
                        _ => return Err(e),
                    },
                }
            }
        };
        summary.dirs += 1;

        // Directories, parents first, pipelined.
        let dirs: Vec<&Entry> = tree
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Dir))
            .collect();
        self.make_remote_dirs(
            dirs.iter()
                .map(|e| (remote_join(remote_dir, &e.rel), e.mode))
                .collect(),
        )
        .await?;
        summary.dirs += dirs.len() as u64;

        // Files, a few at once.
        let files: Vec<&Entry> = tree
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::File { .. }))
            .collect();
        let mut files = files.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < FILES_IN_FLIGHT {
                let Some(e) = files.next() else {
                    break;
                };
                in_flight.push(self.upload_entry(local_dir, remote_dir, e, opts, &progress));
            }
            let Some(sent) = in_flight.next().await else {
                break;
            };
            summary.bytes += sent?;
            summary.files += 1;
        }

        // Links, as links: created under a temporary name, renamed over.
        for e in &tree.entries {
            if let Kind::Link { target } = &e.kind {
                self.put_link(target, &remote_join(remote_dir, &e.rel), opts)
                    .await?;
                summary.links += 1;
            }
        }

        // Modes, deepest first; the root's only if it is ours.
        let mut modes: Vec<(String, u32)> = dirs
            .iter()
            .rev()
            .map(|e| (remote_join(remote_dir, &e.rel), tree_mode(e.mode, opts)))
            .collect();
        if root_created {
            modes.push((remote_dir.to_string(), tree_mode(root_mode, opts)));
        }
        self.set_remote_modes(modes).await?;
        progress.report(summary.bytes, summary.bytes);
        Ok(summary)
    }

    /// Whether `path` is a directory (links followed: it is the root the
    /// caller named); false when it does not exist.
    async fn root_exists(&self, path: &str) -> Result<bool, Error> {
        match self.stat(path).await {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(self.not_a_directory("mkdir", path)),
            Err(Error::Sftp {
                kind: SftpErrorKind::NotFound,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates directories (parents before children), owner-writable until
    /// their modes are set at the end. An existing directory is merged
    /// into; anything else in the way (a link included: it is never
    /// followed) fails.
    async fn make_remote_dirs(&self, dirs: Vec<(String, u32)>) -> Result<(), Error> {
        let raw = &self.inner.raw;
        let mut in_flight = FuturesOrdered::new();
        let mut dirs = dirs.into_iter();
        loop {
            while in_flight.len() < DIR_REQUESTS_IN_FLIGHT {
                let Some((path, mode)) = dirs.next() else {
                    break;
                };
                let attrs = mode_attrs(0o700 | (mode & 0o777));
                let p = path.clone();
                let fut = submit(async move { raw.mkdir(p, attrs).await }).await;
                in_flight.push_back(async move { (path, mode, fut.await) });
            }
            let Some((path, mode, r)) = (tokio::select! {
                r = in_flight.next() => r,
                _ = self.gone() => return Err(self.inner.session.lost("SFTP channel closed")),
            }) else {
                return Ok(());
            };
            let Err(e) = r else {
                continue;
            };
            match self.lstat(&path).await {
                // Merged into: writable by us until its mode is set.
                Ok(m) if m.is_dir() => {
                    if m.mode.is_some_and(|m| m & 0o700 != 0o700) {
                        self.set_mode(&path, 0o700 | (mode & 0o777)).await?;
                    }
                }
                Ok(_) => return Err(self.not_a_directory("mkdir", &path)),
                // Refused while its parent, merged into, was read-only:
                // the parent is writable now.
                Err(Error::Sftp {
                    kind: SftpErrorKind::NotFound,
                    ..
                }) => {
                    self.call(
                        "mkdir",
                        &path,
                        raw.mkdir(path.as_str(), mode_attrs(0o700 | (mode & 0o777))),
                    )
                    .await?;
                }
                Err(_) => return Err(self.err("mkdir", &path, e)),
            }
        }
    }

    /// Sets directory modes, pipelined.
    async fn set_remote_modes(&self, modes: Vec<(String, u32)>) -> Result<(), Error> {
        let raw = &self.inner.raw;
        let mut in_flight = FuturesOrdered::new();
        let mut modes = modes.into_iter();
        loop {
            while in_flight.len() < DIR_REQUESTS_IN_FLIGHT {
                let Some((path, mode)) = modes.next() else {
                    break;
                };
                let p = path.clone();
                let fut = submit(async move { raw.setstat(p, mode_attrs(mode)).await }).await;
                in_flight.push_back(async move { (path, fut.await) });
            }
            let Some((path, r)) = (tokio::select! {
                r = in_flight.next() => r,
                _ = self.gone() => return Err(self.inner.session.lost("SFTP channel closed")),
            }) else {
                return Ok(());
            };
            r.map_err(|e| self.err("setstat", &path, e))?;
        }
    }

    /// Recreates a link at `remote`: made under a temporary name, then
    /// renamed over whatever is there (a directory there fails the rename).
    async fn put_link(
        &self,
        target: &str,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<(), Error> {
        let temp = temp_name_for(remote);
        // Before the request: dropped while it is in flight, the link may
        // exist all the same.
        let guard = RemoteTemp::new(temp.clone(), Remover::Sftp(self.clone()));
        if let Err(e) = self.symlink(target, &temp).await {
            guard.keep();
            return Err(e);
        }
        let renamed = if opts.overwrite {
            self.rename(&temp, remote).await
        } else {
            self.rename_no_replace(&temp, remote).await
        };
        match renamed {
            Ok(()) => {
                guard.keep();
                Ok(())
            }
            Err(e) => {
                let _ = guard.remove().await;
                Err(e)
            }
        }
    }

    /// Walks a remote tree without following links (the root excepted):
    /// the directories of one level listed a few at once.
    async fn walk_remote(&self, root: &str) -> Result<(Tree, Option<u32>), Error> {
        let root_mode = match self.stat(root).await {
            Ok(m) if m.is_dir() => m.mode,
            Ok(_) => {
                return Err(self.failed(
                    "opendir",
                    root,
                    SftpErrorKind::Other,
                    Some("not a directory"),
                ));
            }
            Err(e) => return Err(e),
        };
        let mut tree = Tree::default();
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let mut listed = Vec::new();
            let mut pending = level.into_iter();
            let mut in_flight = FuturesUnordered::new();
            loop {
                while in_flight.len() < DIRS_LISTED_AT_ONCE {
                    let Some(rel) = pending.next() else {
                        break;
                    };
                    in_flight.push(self.list_rel(root, rel));
                }
                let Some(r) = in_flight.next().await else {
                    break;
                };
                listed.push(r?);
            }
            let mut next = Vec::new();
            for (rel, entries) in listed {
                let dir = remote_join(root, &rel);
                for entry in entries {
                    check_remote_name(self, &dir, &entry.name)?;
                    let child = rel_join(&rel, &entry.name);
                    let mut meta = entry.metadata;
                    if meta.file_type.is_none() {
                        meta = self.lstat(&remote_join(root, &child)).await?;
                    }
                    let mode = meta.mode.unwrap_or(0o644);
                    let kind = if meta.is_symlink() {
                        // Target read below, many at once.
                        Kind::Link {
                            target: String::new(),
                        }
                    } else if meta.is_dir() {
                        next.push(child.clone());
                        Kind::Dir
                    } else if meta.is_file() {
                        Kind::File {
                            len: meta.size.unwrap_or(0),
                        }
                    } else {
                        tracing::warn!(path = %remote_join(root, &child), "not a file, directory or link: left out");
                        tree.skipped += 1;
                        continue;
                    };
                    tree.entries.push(Entry {
                        rel: child,
                        kind,
                        mode,
                    });
                }
            }
            level = next;
        }
        // Link targets, many at once.
        let links: Vec<usize> = (0..tree.entries.len())
            .filter(|&i| matches!(tree.entries[i].kind, Kind::Link { .. }))
            .collect();
        let mut links = links.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < DIR_REQUESTS_IN_FLIGHT {
                let Some(i) = links.next() else {
                    break;
                };
                in_flight.push(self.read_link_at(i, remote_join(root, &tree.entries[i].rel)));
            }
            let Some(r) = in_flight.next().await else {
                break;
            };
            let (i, t) = r?;
            tree.entries[i].kind = Kind::Link { target: t };
        }
        tree.sort();
        Ok((tree, root_mode))
    }

    async fn read_link_at(&self, i: usize, path: String) -> Result<(usize, String), Error> {
        Ok((i, self.read_link(&path).await?))
    }

    /// Lists the directory `rel` of the tree at `root`.
    async fn list_rel(
        &self,
        root: &str,
        rel: String,
    ) -> Result<(String, Vec<super::DirEntry>), Error> {
        let entries = self.read_dir(&remote_join(root, &rel)).await?;
        Ok((rel, entries))
    }

    /// Uploads one file of a tree.
    async fn upload_entry(
        &self,
        local_dir: &Path,
        remote_dir: &str,
        e: &Entry,
        opts: &TransferOptions,
        progress: &Arc<TreeProgress>,
    ) -> Result<u64, Error> {
        let o = file_opts(opts, Some(tree_mode(e.mode, opts)), progress);
        self.upload_with(
            &local_join(local_dir, &e.rel),
            &remote_join(remote_dir, &e.rel),
            &o,
        )
        .await
    }

    /// Downloads one file of a tree.
    async fn download_entry(
        &self,
        remote_dir: &str,
        local_dir: &Path,
        e: &Entry,
        opts: &TransferOptions,
        progress: &Arc<TreeProgress>,
    ) -> Result<u64, Error> {
        let o = file_opts(opts, None, progress);
        self.download_with(
            &remote_join(remote_dir, &e.rel),
            &local_join(local_dir, &e.rel),
            &o,
        )
        .await
    }

    /// Downloads the remote directory `remote_dir` to `local_dir`. See
    /// [`Session::download_dir`](crate::Session::download_dir).
    ///
    /// # Errors
    ///
    /// As [`Session::download_dir`](crate::Session::download_dir).
    ///
    /// # Cancel safety
    ///
    /// As [`Session::download_dir`](crate::Session::download_dir).
    pub async fn download_dir(
        &self,
        remote_dir: &str,
        local_dir: &Path,
        opts: &TransferOptions,
    ) -> Result<TreeSummary, Error> {
        let (tree, root_mode) = self.walk_remote(remote_dir).await?;
        let mut summary = TreeSummary {
            skipped: tree.skipped,
            ..TreeSummary::default()
        };
        let progress = TreeProgress::new(tree.total_bytes(), opts);
        progress.report(0, progress.total);

        // The root: merged into if it is a directory, created otherwise.
        let root_created = match std::fs::metadata(local_dir) {
            Ok(m) if m.is_dir() => false,
            Ok(_) => {
                return Err(local_err(
                    "exists and is not a directory:",
                    local_dir,
                    std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if opts.create_parents
                    && let Some(parent) = local_dir.parent().filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| local_err("cannot create local directory", parent, e))?;
                }
                match std::fs::DirBuilder::new().mode(0o700).create(local_dir) {
                    Ok(()) => true,
                    // Made meanwhile by someone else: merged into.
                    Err(_) if std::fs::metadata(local_dir).is_ok_and(|m| m.is_dir()) => false,
                    Err(e) => {
                        return Err(local_err("cannot create local directory", local_dir, e));
                    }
                }
            }
            Err(e) => return Err(local_err("cannot read", local_dir, e)),
        };
        summary.dirs += 1;

        let dirs: Vec<&Entry> = tree
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Dir))
            .collect();
        for e in &dirs {
            let path = local_join(local_dir, &e.rel);
            if let Err(err) = std::fs::DirBuilder::new()
                .mode(0o700 | (e.mode & 0o777))
                .create(&path)
            {
                // Merged into if it is a real directory; never through a
                // link (it could lead anywhere).
                match std::fs::symlink_metadata(&path) {
                    // Merged into: writable by us until its mode is set.
                    Ok(m) if m.is_dir() => {
                        if m.permissions().mode() & 0o700 != 0o700 {
                            std::fs::set_permissions(
                                &path,
                                std::fs::Permissions::from_mode(0o700 | (e.mode & 0o777)),
                            )
                            .map_err(|err| local_err("cannot set mode of", &path, err))?;
                        }
                    }
                    Ok(_) => {
                        return Err(local_err(
                            "exists and is not a directory:",
                            &path,
                            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                        ));
                    }
                    Err(_) => return Err(local_err("cannot create local directory", &path, err)),
                }
            }
        }
        summary.dirs += dirs.len() as u64;

        let files: Vec<&Entry> = tree
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::File { .. }))
            .collect();
        let mut files = files.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < FILES_IN_FLIGHT {
                let Some(e) = files.next() else {
                    break;
                };
                in_flight.push(self.download_entry(remote_dir, local_dir, e, opts, &progress));
            }
            let Some(got) = in_flight.next().await else {
                break;
            };
            summary.bytes += got?;
            summary.files += 1;
        }

        for e in &tree.entries {
            if let Kind::Link { target } = &e.kind {
                put_local_link(target, &local_join(local_dir, &e.rel), opts)?;
                summary.links += 1;
            }
        }

        let mut modes: Vec<(PathBuf, Option<u32>)> = dirs
            .iter()
            .rev()
            .map(|e| (local_join(local_dir, &e.rel), Some(e.mode)))
            .collect();
        if root_created {
            modes.push((local_dir.to_path_buf(), root_mode));
        }
        let dir_opts = {
            let mut o = opts.clone();
            o.mode = None;
            o
        };
        for (path, remote_mode) in modes {
            if let Some(mode) = local_mode(remote_mode, &dir_opts) {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| local_err("cannot set mode of", &path, e))?;
            }
        }
        progress.report(summary.bytes, summary.bytes);
        Ok(summary)
    }
}

/// Recreates a link locally: made under a temporary name, then renamed
/// over whatever is there (a directory there fails the rename).
fn put_local_link(target: &str, local: &Path, opts: &TransferOptions) -> Result<(), Error> {
    if !opts.overwrite && std::fs::symlink_metadata(local).is_ok() {
        return Err(local_err(
            "local file exists:",
            local,
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag: u64 = rand::random();
    let temp = local.with_file_name(format!(".{name}.vmssh-{tag:016x}.tmp"));
    std::os::unix::fs::symlink(target, &temp)
        .map_err(|e| local_err("cannot create link", local, e))?;
    let mut guard = LocalTemp(Some(temp.clone()));
    std::fs::rename(&temp, local).map_err(|e| local_err("cannot rename into place", local, e))?;
    guard.0 = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins() {
        assert_eq!(remote_join("/srv/site", "a/b"), "/srv/site/a/b");
        assert_eq!(remote_join("/srv/site/", "a"), "/srv/site/a");
        assert_eq!(remote_join("/", "a"), "/a");
        assert_eq!(remote_join("rel", ""), "rel");
        assert_eq!(rel_join("", "x"), "x");
        assert_eq!(rel_join("a", "x"), "a/x");
    }

    #[test]
    fn modes_drop_setuid_unless_asked() {
        let plain = TransferOptions::new();
        assert_eq!(tree_mode(0o4755, &plain), 0o755);
        assert_eq!(tree_mode(0o2775, &plain), 0o775);
        let keep = TransferOptions::new().keep_setuid(true);
        assert_eq!(tree_mode(0o4755, &keep), 0o4755);
    }

    #[test]
    fn local_walk_keeps_links_as_links_and_sorts_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::write(root.join("b/c/f"), b"12345").unwrap();
        std::fs::write(root.join("a"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::os::unix::fs::symlink("b/c/f", root.join("in")).unwrap();
        let tree = walk_local(root).unwrap();
        let rels: Vec<&str> = tree.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["a", "b", "b/c", "b/c/f", "empty", "in", "out"]);
        assert_eq!(tree.total_bytes(), 6);
        assert!(matches!(&tree.entries[6].kind, Kind::Link { target } if target == "/etc"));
    }
}
