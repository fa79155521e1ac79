//! One connection: authentication, channels, and replies to channel
//! requests. The work of each channel runs in its own task.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, Pty};

use super::Shared;
use super::conn::ConnCtx;
use super::process::{self, Spec};
use super::valve::Valve;

/// What a session channel has been asked to do so far.
#[derive(Debug, PartialEq, Eq)]
enum ChanState {
    Idle,
    Started,
}

/// The russh handler of one connection.
pub(crate) struct ConnHandler {
    ctx: Arc<ConnCtx>,
    channels: HashMap<ChannelId, ChanState>,
}

impl ConnHandler {
    pub(crate) fn new(shared: Arc<Shared>, valve: Arc<Valve>) -> Self {
        ConnHandler {
            ctx: Arc::new(ConnCtx::new(shared, valve)),
            channels: HashMap::new(),
        }
    }

    fn key_ok(&self, key: &PublicKey) -> bool {
        !self.ctx.shared.opts.reject_auth && key.key_data() == self.ctx.shared.client_key.key_data()
    }

    /// Accepts the first request that starts something on a channel and
    /// refuses later ones (the channel task applies the same rule).
    fn start(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        match self.channels.get_mut(&channel) {
            Some(state) if *state == ChanState::Idle => {
                *state = ChanState::Started;
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    fn known(&self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if self.channels.contains_key(&channel) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}

impl russh::server::Handler for ConnHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.key_ok(offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.key_ok(key.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_password(&mut self, _user: &str, password: &str) -> Result<Auth, Self::Error> {
        let opts = &self.ctx.shared.opts;
        let ok = !opts.reject_auth && opts.password.as_ref().is_some_and(|p| p.0 == password);
        Ok(if ok { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        // Armed, not engaged: the success message is still to be written.
        let opts = &self.ctx.shared.opts;
        if opts.freeze_after_auth {
            self.ctx.valve.arm_freeze();
        } else if opts.ignore_keepalives {
            self.ctx.valve.arm_discard();
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let open = self
            .ctx
            .open_channels
            .load(std::sync::atomic::Ordering::SeqCst);
        if open >= self.ctx.shared.opts.max_sessions as u64 {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id(), ChanState::Idle);
        reply.accept().await;
        let handle = session.handle();
        let ctx = self.ctx.clone();
        ctx.open_channels
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.ctx.shared.tasks.spawn("session channel", async move {
            serve_channel(channel, handle, ctx.clone()).await;
            ctx.open_channels
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.known(channel, session)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.known(channel, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let unanswered = self.ctx.shared.unanswered_execs.fetch_update(
            Ordering::SeqCst,
            Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if unanswered.is_ok()
            && let Some(state) = self.channels.get_mut(&channel)
            && *state == ChanState::Idle
        {
            // Runs (the channel task sees the request) without a reply.
            *state = ChanState::Started;
            return Ok(());
        }
        self.start(channel, session)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.ctx.shared.opts.probe_agent && self.channels.contains_key(&channel))
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            self.start(channel, session)
        } else {
            session.channel_failure(channel)
        }
    }
}

/// The task of one session channel: collects `env` and `pty-req`, then
/// runs the first `exec`, `shell` or `sftp` request (replies were sent by
/// the handler, in order with the requests).
async fn serve_channel(
    mut channel: Channel<Msg>,
    handle: russh::server::Handle,
    ctx: Arc<ConnCtx>,
) {
    let mut env = Vec::new();
    let mut pty_term = None;
    let command = loop {
        match channel.wait().await {
            None | Some(ChannelMsg::Close) => return,
            Some(ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            }) => env.push((variable_name, variable_value)),
            Some(ChannelMsg::RequestPty { term, .. }) => pty_term = Some(term),
            Some(ChannelMsg::Exec { command, .. }) => break Some(command),
            Some(ChannelMsg::RequestShell { .. }) => break None,
            Some(ChannelMsg::RequestSubsystem { name, .. }) if name == "sftp" => {
                let root = ctx.shared.opts.sftp_root.clone();
                super::sftp::serve(channel, root).await;
                return;
            }
            // Data before a command runs has nowhere to go.
            Some(_) => {}
        }
    };
    if ctx.shared.opts.probe_agent {
        env.push(("TESTKIT_AGENT".to_string(), probe_agent(&handle).await));
    }
    let (read, write) = channel.split();
    let spec = Spec {
        command,
        env,
        pty_term,
    };
    process::run(read, write, handle, spec, ctx).await;
}

/// Opens an agent channel to the client and asks the agent for its
/// identities ([`TestServerBuilder::probe_agent`](crate::TestServerBuilder::probe_agent)):
/// `refused`, `N identities` or `no answer`.
async fn probe_agent(handle: &russh::server::Handle) -> String {
    /// SSH_AGENTC_REQUEST_IDENTITIES, length-prefixed.
    const REQUEST: [u8; 5] = [0, 0, 0, 1, 11];
    /// SSH_AGENT_IDENTITIES_ANSWER.
    const ANSWER: u8 = 12;
    let Ok(mut channel) = handle.channel_open_agent().await else {
        return "refused".to_string();
    };
    let asked = async {
        channel.data(&REQUEST[..]).await.ok()?;
        let mut got = Vec::new();
        // length (4), type (1), count (4)
        while got.len() < 9 {
            match channel.wait().await? {
                ChannelMsg::Data { data } => got.extend_from_slice(&data),
                ChannelMsg::Eof | ChannelMsg::Close => return None,
                _ => {}
            }
        }
        (got[4] == ANSWER).then(|| u32::from_be_bytes([got[5], got[6], got[7], got[8]]))
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), asked).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
    match answer {
        Ok(Some(n)) => format!("{n} identities"),
        _ => "no answer".to_string(),
    }
}
