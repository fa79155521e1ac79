//! Many commands on one session, and many sessions at once, on real
//! servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use support::on_both_servers;

use std::time::Duration;

use support::Server;

/// 25 commands at once on one session limited to 10 channels (sshd's
/// MaxSessions is 10): the extra callers wait for a slot, all succeed,
/// each gets its own output. (dropbear: one channel at a time, see
/// `Server::max_parallel_channels`; the callers still all wait their turn.)
async fn many_commands_one_session(srv: &Server) {
    let sess = srv
        .connect_with(&srv.config().max_channels(srv.max_parallel_channels()))
        .await;
    let outs = tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::join_all((0..25).map(|i| {
            let sess = sess.clone();
            async move {
                sess.exec(&format!(
                    "sleep 0.2; echo {i}; echo e{i} >&2; exit {}",
                    i % 3
                ))
                .await
            }
        })),
    )
    .await
    .expect("concurrent commands hung");
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap_or_else(|e| panic!("{}: command {i}: {e} ({e:?})", srv.name()));
        assert_eq!(out.stdout_lossy(), format!("{i}\n"));
        assert_eq!(out.stderr_lossy(), format!("e{i}\n"));
        assert_eq!(out.status.code(), Some(i as u32 % 3));
    }
}
on_both_servers!(many_commands_one_session);

/// Clones of one session used from spawned tasks.
async fn session_clones_across_tasks(srv: &Server) {
    let sess = srv
        .connect_with(&srv.config().max_channels(srv.max_parallel_channels()))
        .await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let sess = sess.clone();
            tokio::spawn(async move {
                for j in 0..5 {
                    let out = sess.exec(&format!("echo {i}-{j}")).await?;
                    assert_eq!(out.stdout_lossy(), format!("{i}-{j}\n"));
                }
                Ok::<_, vmssh::Error>(())
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("task hung")
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {e} ({e:?})\nserver log:\n{}", srv.name(), srv.log()));
    }
}
on_both_servers!(session_clones_across_tasks);

/// 20 sessions connecting and running commands at once. dropbear resets
/// connections beyond 5 unauthenticated ones per source address
/// (MAX_UNAUTH_PER_IP), as a small VM would: `connect_with_retry` must
/// ride that out. sshd (MaxStartups 200 here) takes them all at once.
async fn many_sessions(srv: &Server) {
    let cfg = srv.config();
    let results = tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::join_all((0..20).map(|i| {
            let cfg = cfg.clone();
            let port = srv.port();
            let openssh = srv.is_openssh();
            async move {
                let sess = if openssh {
                    vmssh::Session::connect(support::HOST, port, &cfg).await?
                } else {
                    vmssh::Session::connect_with_retry(
                        support::HOST,
                        port,
                        &cfg,
                        Duration::from_secs(60),
                    )
                    .await?
                };
                let out = sess.exec(&format!("echo {i}")).await?;
                sess.close().await;
                Ok::<_, vmssh::Error>(out)
            }
        })),
    )
    .await
    .expect("concurrent connects hung");
    for (i, r) in results.into_iter().enumerate() {
        let out =
            r.unwrap_or_else(|e| panic!("{}: session {i}: {e} ({e:?})\n{}", srv.name(), srv.log()));
        assert_eq!(out.stdout_lossy(), format!("{i}\n"));
    }
}
on_both_servers!(many_sessions);
