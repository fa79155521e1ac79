//! `vmssh upload TARGETS [-r] LOCAL REMOTE` and `vmssh download TARGETS
//! [-r] REMOTE LOCAL_DIR`: a one-step plan on every host (a file step, a
//! download step; with -r a file step whose source is a directory, a
//! directory download step); downloads land in LOCAL_DIR/HOST/NAME.

use std::path::Path;

use vmssh::provision::ProvisionDef;

use crate::args::{DownloadArgs, UploadArgs};
use crate::credentials::Defaults;
use crate::render::Verb;
use crate::run::Look;
use crate::targets;
use crate::usage::{Exit, Usage};

pub(crate) async fn upload(a: UploadArgs) -> Result<Exit, Usage> {
    // A dry run lists a missing file among its problems, as each host's
    // step finds it.
    match tokio::fs::metadata(&a.local).await {
        _ if a.run.dry_run => {}
        Ok(m) if m.is_file() && !a.recursive => {}
        Ok(m) if m.is_dir() && a.recursive => {}
        Ok(m) if m.is_dir() => {
            return Err(Usage(format!(
                "upload: {} is a directory (use -r)",
                a.local.display()
            )));
        }
        Ok(_) if a.recursive => {
            return Err(Usage(format!(
                "upload -r: {} is not a directory",
                a.local.display()
            )));
        }
        Ok(_) => {
            return Err(Usage(format!(
                "upload: {} is not a file",
                a.local.display()
            )));
        }
        Err(e) => return Err(Usage(format!("upload: {}: {e}", a.local.display()))),
    }
    let remote = if a.remote.ends_with('/') {
        let name = a
            .local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Usage(format!("upload: {} has no file name", a.local.display())))?;
        format!("{}{name}", a.remote)
    } else {
        a.remote.clone()
    };
    if remote.is_empty() {
        return Err(Usage("upload: REMOTE is empty".into()));
    }
    let hosts = targets::collect(&a.targets, None).await?;
    let hosts = crate::rerun::select(hosts, &a.run, |h| &h.name).await?;
    let step = a.lanes.apply(ProvisionDef::file(&a.local, remote));
    if a.run.dry_run {
        let resolved = super::resolve(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
        let steps = |_: &str| vec![step.clone()];
        // The step accepts both; the flag says which one is meant.
        let extra = match std::fs::metadata(&a.local) {
            Ok(m) if m.is_dir() && !a.recursive => {
                vec![format!(
                    "upload: {} is a directory (use -r)",
                    a.local.display()
                )]
            }
            Ok(m) if !m.is_dir() && a.recursive => {
                vec![format!(
                    "upload -r: {} is not a directory",
                    a.local.display()
                )]
            }
            _ => Vec::new(),
        };
        return super::dry_run(resolved, steps, Path::new("."), &a.run, "upload", extra);
    }
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
    match super::targets(endpoints, &a.run, |_| vec![step.clone()]).await {
        Ok(targets) => {
            let look = Look {
                host_key_hint: super::host_key_hint(&a.auth),
                ..Look::new(Verb::Upload)
            };
            crate::run::run(targets, &a.run, look).await
        }
        Err(exit) => Ok(exit),
    }
}

pub(crate) async fn download(a: DownloadArgs) -> Result<Exit, Usage> {
    if a.remote.is_empty() {
        return Err(Usage("download: REMOTE is empty".into()));
    }
    // Each host's copy keeps the remote file's name, as pssh's pslurp
    // does: LOCAL_DIR/HOST/NAME. A directory may end in `/`.
    let name = match a.remote.trim_end_matches('/').rsplit('/').next() {
        Some(n)
            if !n.is_empty()
                && n != "."
                && n != ".."
                && (a.recursive || !a.remote.ends_with('/')) =>
        {
            n.to_string()
        }
        _ if a.recursive => {
            return Err(Usage(format!(
                "download -r: {} does not name a directory",
                a.remote
            )));
        }
        _ => {
            return Err(Usage(format!(
                "download: {} does not name a file",
                a.remote
            )));
        }
    };
    let hosts = targets::collect(&a.targets, None).await?;
    let hosts = crate::rerun::select(hosts, &a.run, |h| &h.name).await?;
    let steps = |host: &str| {
        let local = a.local_dir.join(host).join(&name);
        if a.recursive {
            vec![ProvisionDef::download_dir(a.remote.clone(), local)]
        } else {
            vec![
                a.lanes
                    .apply(ProvisionDef::download(a.remote.clone(), local)),
            ]
        }
    };
    if a.run.dry_run {
        // Nothing is created: a LOCAL_DIR that cannot be one is a problem.
        let extra = match std::fs::metadata(&a.local_dir) {
            Ok(m) if !m.is_dir() => vec![format!(
                "download: {} is not a directory",
                a.local_dir.display()
            )],
            _ => Vec::new(),
        };
        let resolved = super::resolve(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
        return super::dry_run(resolved, steps, Path::new("."), &a.run, "download", extra);
    }
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
    for e in &endpoints {
        let dir = a.local_dir.join(&e.name);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|err| format!("download: {}: {err}", dir.display()))?;
    }
    match super::targets(endpoints, &a.run, |e| steps(&e.name)).await {
        Ok(targets) => {
            let look = Look {
                host_key_hint: super::host_key_hint(&a.auth),
                ..Look::new(Verb::Download)
            };
            crate::run::run(targets, &a.run, look).await
        }
        Err(exit) => Ok(exit),
    }
}
