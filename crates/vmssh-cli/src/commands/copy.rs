//! `vmssh upload TARGETS LOCAL REMOTE` and `vmssh download TARGETS REMOTE
//! LOCAL_DIR`: a one-step plan on every host (a file step, a download
//! step).

use vmssh::provision::ProvisionDef;

use crate::args::{DownloadArgs, UploadArgs};
use crate::credentials::{Defaults, Endpoint};
use crate::targets;
use crate::usage::{Exit, Usage};

pub(crate) async fn upload(a: UploadArgs) -> Result<Exit, Usage> {
    match tokio::fs::metadata(&a.local).await {
        Ok(m) if m.is_file() => {}
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
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
    let step = ProvisionDef::file(&a.local, remote);
    match super::targets(endpoints, &a.run, |_| vec![step.clone()]).await {
        Ok(targets) => crate::run::run(targets, &a.run, false).await,
        Err(exit) => Ok(exit),
    }
}

pub(crate) async fn download(a: DownloadArgs) -> Result<Exit, Usage> {
    if a.remote.is_empty() {
        return Err(Usage("download: REMOTE is empty".into()));
    }
    let hosts = targets::collect(&a.targets, None).await?;
    let endpoints = super::endpoints(hosts, &a.targets, &a.auth, |_| Defaults::default()).await?;
    tokio::fs::create_dir_all(&a.local_dir)
        .await
        .map_err(|e| format!("download: {}: {e}", a.local_dir.display()))?;
    let steps = |e: &Endpoint| {
        let local = a.local_dir.join(&e.name);
        vec![ProvisionDef::download(a.remote.clone(), local)]
    };
    match super::targets(endpoints, &a.run, steps).await {
        Ok(targets) => crate::run::run(targets, &a.run, false).await,
        Err(exit) => Ok(exit),
    }
}
