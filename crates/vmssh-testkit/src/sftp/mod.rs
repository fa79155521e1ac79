//! The `sftp` subsystem, as OpenSSH's sftp-server serves it: requests are
//! read from the channel and answered in order by [`fs::SftpFs`] (russh-sftp's
//! server [`Handler`] over the local filesystem, optionally under a root
//! directory), from a loop of our own so that it runs as a cancellable,
//! panic-reporting server task. When the client sends EOF the subsystem
//! ends like sftp-server exiting: exit status 0, then EOF and CLOSE
//! (OpenSSH's `scp` fails a transfer whose subsystem reports no status).

mod ext;
mod fs;
mod longname;

use std::path::PathBuf;

use bytes::{Buf, Bytes, BytesMut};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelWriteHalf};
use russh_sftp::protocol::{Packet, StatusCode};
use russh_sftp::server::{Handler, StatusReply};

use self::fs::SftpFs;

/// The largest request accepted, as OpenSSH's sftp-server.
const MAX_PACKET: u32 = 256 * 1024;
/// The most bytes one read or write moves (`limits@openssh.com`).
const MAX_IO: u32 = MAX_PACKET - 1024;

/// How the subsystem ended.
enum End {
    /// The client sent EOF: report `status`, send EOF and close.
    Exit(u32),
    /// The channel is closed or the connection is gone: nothing to send.
    Gone,
}

/// Serves SFTP on `channel` until the client sends EOF or closes it.
pub(crate) async fn serve(channel: Channel<Msg>, root: Option<PathBuf>) {
    let (mut read, write) = channel.split();
    let mut fs = SftpFs::new(root);
    // Holds at most one partial request (complete ones are answered before
    // more data is read) plus the data message that completes it.
    let mut buf = BytesMut::new();
    let end = loop {
        match answer_complete(&mut fs, &mut buf, &write).await {
            Ok(()) => {}
            Err(end) => break end,
        }
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
            Some(ChannelMsg::Eof) => break End::Exit(0),
            Some(ChannelMsg::Close) | None => break End::Gone,
            Some(_) => {}
        }
    };
    // Open handles close before the status goes out, as when sftp-server
    // exits.
    drop(fs);
    if let End::Exit(status) = end {
        let _ = write.exit_status(status).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    }
}

/// Answers every complete request in `buf`, in order.
async fn answer_complete(
    fs: &mut SftpFs,
    buf: &mut BytesMut,
    write: &ChannelWriteHalf<Msg>,
) -> Result<(), End> {
    while buf.len() >= 4 {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len > MAX_PACKET {
            // Out of sync or hostile: sftp-server gives up with an error.
            return Err(End::Exit(1));
        }
        let total = 4 + len as usize;
        if buf.len() < total {
            // Room for the rest: at most one request is ever buffered.
            buf.reserve(total - buf.len());
            return Ok(());
        }
        let mut body = buf.split_to(total).freeze();
        body.advance(4);
        let reply = match Packet::try_from(&mut body) {
            Ok(request) => dispatch(fs, request).await,
            Err(_) => Packet::error(0, StatusCode::BadMessage),
        };
        let out = Bytes::try_from(reply).map_err(|_| End::Exit(1))?;
        if write.data_bytes(out).await.is_err() {
            return Err(End::Gone);
        }
    }
    Ok(())
}

/// Calls the handler method for `request`, as russh-sftp's own server
/// loop does, turning errors into status replies.
async fn dispatch(fs: &mut SftpFs, request: Packet) -> Packet {
    let id = request.get_request_id();
    let result: Result<Packet, StatusReply> = match request {
        // The version and the extensions are ext.rs's to say and to serve.
        Packet::Init(_) => Ok(ext::version().into()),
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
        Packet::Extended(p) => ext::extended(fs, p.id, &p.request, p.data).await,
        _ => Err(StatusReply::new(StatusCode::BadMessage)),
    };
    result.unwrap_or_else(|e| {
        let message = e.error_message.unwrap_or_else(|| e.status_code.to_string());
        Packet::status(id, e.status_code, &message, "en-US")
    })
}
