//! `vmssh`: provision, run commands on and copy files to and from many
//! hosts over SSH, with live prefixed output, a summary, JSON for machines
//! and shards for more hosts than one machine should drive.
//!
//! Built on the library's public API only, so that it also shows how the
//! library is meant to be used: targets become [`vmssh::fleet::Target`]s,
//! every verb is a [`vmssh::fleet::Fleet`] run (a one-step plan for
//! `exec`, `upload` and `download`), output is a set of
//! [`vmssh::provision::Sink`]s, Ctrl-C is a [`vmssh::fleet::StopHandle`]
//! and the report is the fleet's [`vmssh::fleet::FleetReport`].
//!
//! # Layout
//!
//! - `args.rs`: the command line (clap).
//! - `usage.rs`: usage errors (exit code 2) and the exit codes.
//! - `address.rs`, `inventory.rs`, `targets.rs`: hosts from `--host`,
//!   `--hosts FILE` and `--ssh-config`, named and checked (`--vmctl`:
//!   `commands/vmctl.rs`).
//! - `credentials.rs`: keys, agent, password and host-key policy, checked
//!   before anything connects.
//! - `jumps.rs`: jump hosts, connected once each and shared by their hosts.
//! - `dry_run.rs`: `--dry-run`: every host and step resolved and printed,
//!   problems listed, nothing connected.
//! - `sudo.rs`: the sudo password (`--sudo-password-env`,
//!   `--ask-sudo-password`), read before anything connects.
//! - `shard.rs`: `--shard K/N` by a stable hash of the host name.
//! - `rerun.rs`: `--rerun-failed`: the hosts a report lists as failed or
//!   cancelled.
//! - `run.rs`: one fleet run: sinks, Ctrl-C, summary, report, exit code.
//! - `signals.rs`: Ctrl-C (and SIGTERM) once stops, twice exits.
//! - `render/`: what the user sees: `tty.rs` (colours and a progress bar
//!   per host), plain prefixed lines (the library's `TerminalSink`),
//!   `json.rs` (one event per line), `collect.rs` (output grouped per host)
//!   and `summary.rs`.
//! - `commands/`: one file per verb; `vmssh shell` (`commands/shell.rs`)
//!   connects one host itself, with `terminal.rs` (raw mode, window
//!   size, standard input and output without blocking) and `escape.rs`
//!   (`~.` and the other escapes).
//!
//! Exit codes: 0 every host succeeded, 1 a host failed, 2 usage error
//! (nothing ran), 130 interrupted (the summary and report are still
//! written); `vmssh shell` exits with the remote shell's status, 255 when
//! the connection fails or is cut.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// The crate is a library only so that the binary (`main.rs`) and the
// integration tests' copy of it run the same code: nothing here is API.
#![doc(hidden)]
// Doc comments of the arguments are the `--help` text, written for a
// terminal: `DIR/<host>` is a placeholder there, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod address;
mod args;
mod commands;
mod credentials;
mod dry_run;
mod escape;
mod inventory;
mod jumps;
mod render;
mod rerun;
mod run;
mod shard;
mod signals;
mod sudo;
mod targets;
mod terminal;
mod usage;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command, ReportCommand};
use crate::usage::Exit;

/// The `vmssh` command: parses the command line, runs it, and returns
/// the exit code.
pub fn main() -> ExitCode {
    // Bad flags: clap prints the message and exits with 2.
    let cli = Cli::parse();
    // One thread drives every host: the library is async throughout.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vmssh: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    let exit = runtime.block_on(dispatch(cli));
    ExitCode::from(exit)
}

async fn dispatch(cli: Cli) -> u8 {
    let result = match cli.command {
        // The remote shell's status, not a fleet's.
        Command::Shell(a) => commands::shell::run(a).await,
        Command::Provision(a) => commands::provision::run(a).await.map(|e| e as u8),
        Command::Exec(a) => commands::exec::run(a).await.map(|e| e as u8),
        Command::Upload(a) => commands::copy::upload(a).await.map(|e| e as u8),
        Command::Download(a) => commands::copy::download(a).await.map(|e| e as u8),
        Command::Report(ReportCommand::Merge(a)) => {
            commands::report::merge(a).await.map(|e| e as u8)
        }
        Command::Report(ReportCommand::Show(a)) => commands::report::show(a).await.map(|e| e as u8),
        Command::Demo(a) => commands::demo::run(a).await.map(|e| e as u8),
    };
    match result {
        Ok(code) => code,
        Err(usage) => {
            // One mistake a line (a plan can have several).
            for line in usage.0.lines() {
                eprintln!("vmssh: error: {line}");
            }
            Exit::Usage as u8
        }
    }
}
