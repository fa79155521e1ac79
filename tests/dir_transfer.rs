//! Directory trees: `upload_dir` and `download_dir` against real OpenSSH
//! sftp-server (under sshd and under dropbear). Modes (setuid dropped),
//! nested and empty directories, links kept as links and never followed
//! out of the tree, whole-tree progress, cancellation that leaves no
//! temporary file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore as _;
use vmssh::sftp::{Progress, TransferOptions};
use vmssh::{Error, SftpErrorKind};

fn write(path: &Path, len: usize, mode: u32) {
    // A random block repeated: random data is slow to make in a debug
    // build.
    let mut block = vec![0u8; len.min(64 * 1024)];
    rand::thread_rng().fill_bytes(&mut block);
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let n = block.len().min(len - data.len());
        data.extend_from_slice(&block[..n]);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What a tree holds, by relative path: files' bytes and modes,
/// directories' modes, links' targets. Links are never followed.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>, u32),
    Dir(u32),
    Link(String),
}

fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Link(
                    std::fs::read_link(&path)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            } else if meta.is_dir() {
                pending.push(path.clone());
                Node::Dir(mode)
            } else {
                Node::File(std::fs::read(&path).unwrap(), mode)
            };
            out.insert(rel, node);
        }
    }
    out
}

/// Names anywhere under `root` that look like a transfer's temporary file.
fn temp_files(root: &Path) -> Vec<String> {
    snapshot(root)
        .into_keys()
        .filter(|k| k.contains(".vmssh-"))
        .collect()
}

/// The source tree: several modes (a setuid file among them), nested,
/// empty and read-only directories, a link inside the tree and links out
/// of it (to a directory holding a marker file, and dangling).
fn make_tree(src: &Path, outside: &Path) {
    write(&src.join("run.sh"), 300, 0o755);
    write(&src.join("secret"), 40, 0o600);
    write(&src.join("suid-tool"), 1000, 0o4755);
    write(&src.join("nested/a/b/deep.txt"), 1_000_003, 0o644);
    write(&src.join("nested/a/zero"), 0, 0o640);
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::create_dir_all(src.join("nested/empty2")).unwrap();
    set_mode(&src.join("nested/empty2"), 0o750);
    write(&src.join("ro/inside"), 10, 0o444);
    set_mode(&src.join("ro"), 0o555);
    std::os::unix::fs::symlink("nested/a/b/deep.txt", src.join("link-in")).unwrap();
    std::fs::write(outside.join("outside-marker"), b"never read").unwrap();
    std::os::unix::fs::symlink(outside, src.join("link-out")).unwrap();
    std::os::unix::fs::symlink("../../nowhere/at/all", src.join("nested/dangling")).unwrap();
}

/// Makes read-only directories writable again so the temporary
/// directories can be removed by a non-root user.
fn unlock(root: &Path) {
    for (rel, node) in snapshot(root) {
        if let Node::Dir(_) = node {
            set_mode(&root.join(rel), 0o755);
        }
    }
}

async fn round_trip(srv: &support::Server) {
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    make_tree(&src, outside.path());
    let before = snapshot(&src);
    let total: u64 = before
        .values()
        .map(|n| match n {
            Node::File(b, _) => b.len() as u64,
            _ => 0,
        })
        .sum();

    let reports: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let seen = reports.clone();
    let opts = TransferOptions::new().on_progress(move |p| seen.lock().unwrap().push(p));
    let dst = remote.path().join("dst");
    let done = sess
        .upload_dir(&src, dst.to_str().unwrap(), &opts)
        .await
        .unwrap();
    assert_eq!(
        (done.files, done.dirs, done.links, done.bytes, done.skipped),
        (6, 7, 3, total, 0),
        "{}: {done:?}",
        srv.name()
    );

    // Bytes, modes (setuid dropped), empty directories, links as links.
    let up = snapshot(&dst);
    let mut want = before;
    if let Some(Node::File(_, mode)) = want.get_mut("suid-tool") {
        *mode = 0o755;
    }
    assert_eq!(
        up.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(up[k] == *v, "{}: {k} differs after upload_dir", srv.name());
    }
    assert_eq!(
        std::fs::read_link(dst.join("link-out")).unwrap(),
        outside.path(),
        "{}: the outside link's target text",
        srv.name()
    );
    assert!(
        !up.keys().any(|k| k.contains("outside-marker")),
        "{}: a link out of the tree was followed",
        srv.name()
    );
    assert_eq!(temp_files(&dst), Vec::<String>::new());

    // Progress: a running total over the whole tree, ending at it.
    let reports = reports.lock().unwrap().clone();
    assert!(
        reports.windows(2).all(|w| w[0].done <= w[1].done),
        "progress went backwards"
    );
    assert!(reports.iter().all(|p| p.total == Some(total)));
    let last = reports.last().unwrap();
    assert_eq!(
        (last.done, last.total),
        (total, Some(total)),
        "{}",
        srv.name()
    );

    // The remote copy made setuid again: the download drops it.
    set_mode(&dst.join("suid-tool"), 0o4755);
    let back = local.path().join("back");
    let down = sess
        .download_dir(
            dst.to_str().unwrap(),
            &back,
            &TransferOptions::new().preserve_mode(true),
        )
        .await
        .unwrap();
    assert_eq!(
        (down.files, down.dirs, down.links, down.bytes),
        (6, 7, 3, total),
        "{}",
        srv.name()
    );
    let got = snapshot(&back);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(
            got[k] == *v,
            "{}: {k} differs after download_dir",
            srv.name()
        );
    }

    // Again, into the trees that exist now: merged, replaced in place.
    sess.upload_dir(&src, dst.to_str().unwrap(), &TransferOptions::new())
        .await
        .unwrap();
    assert_eq!(temp_files(&dst), Vec::<String>::new());
    assert!(
        snapshot(&dst) == want,
        "{}: a second upload_dir differs",
        srv.name()
    );

    // A local link where the tree has a directory is not written through.
    let trap = local.path().join("trap");
    std::fs::create_dir_all(&trap).unwrap();
    std::os::unix::fs::symlink(outside.path(), trap.join("nested")).unwrap();
    let err = sess
        .download_dir(dst.to_str().unwrap(), &trap, &TransferOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(
        snapshot(outside.path()).into_keys().collect::<Vec<_>>(),
        ["outside-marker"],
        "{}: written through a link",
        srv.name()
    );
    for d in [&src, &dst, &back, &trap] {
        unlock(d);
    }
}
on_both_servers!(round_trip);

/// A tree transfer dropped mid-way leaves no temporary file on either
/// side; the files it finished are whole.
async fn cancelled_leaves_no_temp_files(srv: &support::Server) {
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let src = local.path().join("big");
    for i in 0..12 {
        write(&src.join(format!("d{}/f{i}", i % 3)), 2 << 20, 0o644);
    }
    let dst = remote.path().join("dst");

    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let opts = TransferOptions::new().on_progress(move |p| {
        if p.done > 0 {
            flag.store(true, Ordering::SeqCst);
        }
    });
    tokio::select! {
        r = sess.upload_dir(&src, dst.to_str().unwrap(), &opts) => panic!("finished before it was dropped: {r:?}"),
        _ = async {
            while !started.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => {}
    }
    // The next channel waits for the dropped files' clean-up.
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
    assert_eq!(
        temp_files(&dst),
        Vec::<String>::new(),
        "{}: temporary files left behind",
        srv.name()
    );
    for (rel, node) in snapshot(&dst) {
        if let Node::File(b, _) = node {
            assert_eq!(b.len(), 2 << 20, "{}: {rel} is partial", srv.name());
        }
    }

    // The whole tree, then a download dropped mid-way.
    sess.upload_dir(&src, dst.to_str().unwrap(), &TransferOptions::new())
        .await
        .unwrap();
    let back = local.path().join("back");
    started.store(false, Ordering::SeqCst);
    let flag = started.clone();
    let opts = TransferOptions::new().on_progress(move |p| {
        if p.done > 0 {
            flag.store(true, Ordering::SeqCst);
        }
    });
    tokio::select! {
        r = sess.download_dir(dst.to_str().unwrap(), &back, &opts) => panic!("finished before it was dropped: {r:?}"),
        _ = async {
            while !started.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => {}
    }
    assert_eq!(temp_files(&back), Vec::<String>::new(), "{}", srv.name());
    for (rel, node) in snapshot(&back) {
        if let Node::File(b, _) = node {
            assert_eq!(b.len(), 2 << 20, "{}: {rel} is partial", srv.name());
        }
    }
    assert_eq!(sess.exec("echo ok").await.unwrap().stdout, b"ok\n");
}
on_both_servers!(cancelled_leaves_no_temp_files);

/// Without SFTP a directory transfer is a typed error naming the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(vmssh_have_sshd), ignore = "needs OpenSSH sshd")]
async fn without_sftp_directories_are_unsupported() {
    let srv = support::Sshd::builder().no_sftp().start();
    let sess = srv.connect().await;
    let local = tempfile::tempdir().unwrap();
    write(&local.path().join("f"), 10, 0o644);
    let remote = tempfile::tempdir().unwrap();
    let err = sess
        .upload_dir(
            local.path(),
            remote.path().join("d").to_str().unwrap(),
            &TransferOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sftp {
                kind: SftpErrorKind::Unsupported,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.chain().to_string().contains("need SFTP"),
        "{}",
        err.chain()
    );
    // Single files still go through the fallback.
    sess.upload(
        &local.path().join("f"),
        remote.path().join("f").to_str().unwrap(),
    )
    .await
    .unwrap();
}

/// In a VMFile, a file step whose source is a directory uploads the tree
/// (a vmssh extension; the plan's check accepts it), and a directory
/// download step brings a tree back.
async fn plan_file_step_with_a_directory(srv: &support::Server) {
    let sess = srv.connect().await;
    let base = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    write(&base.path().join("site/conf/app.conf"), 100, 0o640);
    write(&base.path().join("site/bin/run"), 100, 0o755);
    std::fs::create_dir_all(base.path().join("site/empty")).unwrap();
    let dst = remote.path().join("srv/site");
    let text = format!(
        "vm \"web\" {{\n    provision \"file\" {{\n        source \"site\"\n        destination \"{}\"\n    }}\n}}\n",
        dst.display()
    );
    let plan = vmssh::plan::Plan::parse(&text, "VMFile.kdl", base.path()).unwrap();
    plan.check_local_files().await.unwrap();
    let mut steps = plan.steps_for("web");
    steps.push(vmssh::provision::ProvisionDef::download_dir(
        dst.to_str().unwrap(),
        "back",
    ));
    vmssh::provision::run_provisions(&sess, &steps, base.path(), "web", None)
        .await
        .unwrap();
    let want = snapshot(&base.path().join("site"));
    // Each file keeps its own mode, not the 0755 vmctl gives a file step.
    assert!(
        snapshot(&dst) == want,
        "{}: uploaded tree differs",
        srv.name()
    );
    let back = snapshot(&base.path().join("back"));
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{}",
        srv.name()
    );
}
on_both_servers!(plan_file_step_with_a_directory);
