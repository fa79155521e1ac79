//! Channels opened ahead of their use: a plan's next command's channel
//! (and, through [`opens_ahead`], its SFTP channel) opened while other
//! work runs.

use std::sync::Arc;

use super::{ChannelLease, Closing, closing, open_now};
use crate::connection::Connection;

/// A session channel being opened ahead of the command that will run on
/// it (a plan's next step), so that the command costs one round trip
/// instead of two. Only on servers that keep a channel with no request
/// yet ([`Connection::keeps_unstarted_channels`]) and only while the
/// session has two slots free, so it never takes the last one; and it
/// gives way (is closed) as soon as the session learns that the server
/// allows fewer channels than it thought, so no other open ever waits
/// for it. Dropping it closes the channel, opened yet or not.
pub(crate) struct Ahead {
    want: tokio::sync::oneshot::Sender<()>,
    lease: tokio::sync::oneshot::Receiver<ChannelLease>,
}

/// Whether a channel may be opened ahead of its use now (see [`Ahead`]):
/// the server keeps it, and two slots are free.
pub(crate) fn opens_ahead(conn: &Connection) -> bool {
    !conn.is_closed() && conn.keeps_unstarted_channels() && conn.slots.free() >= 2
}

/// Starts opening a channel ahead of its use, where that is safe (see
/// [`Ahead`]).
pub(crate) fn open_ahead(conn: &Arc<Connection>) -> Option<Ahead> {
    if !opens_ahead(conn) {
        return None;
    }
    let (want, wanted) = tokio::sync::oneshot::channel();
    let (give, lease) = tokio::sync::oneshot::channel();
    let owned = conn.clone();
    let mut limit = conn.slots.limit_changes();
    let open = closing::carrying_own(async move { open_now(&owned, Closing::Terminate).await });
    tokio::spawn(async move {
        let opened = match open.await {
            Ok(opened) => opened,
            Err(e) => {
                tracing::debug!("a channel opened ahead failed: {e}");
                return;
            }
        };
        tokio::select! {
            biased;
            // The server allows fewer channels: this one must not hold a
            // slot another open waits for.
            Ok(()) = limit.changed() => {}
            asked = wanted => {
                if asked.is_ok() {
                    let _ = give.send(opened);
                }
            }
        }
    });
    Some(Ahead { want, lease })
}

impl Ahead {
    /// The channel, once open; `None` if it could not be opened or gave
    /// way (the command then opens its own, and that open's error is its
    /// error).
    pub(crate) async fn lease(self) -> Option<ChannelLease> {
        let _ = self.want.send(());
        self.lease.await.ok()
    }

    /// Closes the channel, once open, and waits until the close is sent.
    pub(crate) async fn close(self) {
        if let Some(lease) = self.lease().await {
            lease.close_unstarted().await;
        }
    }
}
