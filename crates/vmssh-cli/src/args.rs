//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::shard::Shard;

/// Where output goes, at the end of every verb's --help.
const OUTPUT_HELP: &str = "\
Output: on a terminal, coloured lines per host, progress bars, then a summary.
Piped (or --plain): the hosts' output on standard output as `[host] line`;
their standard error (`[host] ! line`), progress, failures and the summary on
standard error. --json: one JSON event per line on standard output.";

/// Provision, run commands on and copy files to and from many hosts over
/// SSH, with live output, a summary and a JSON report.
///
/// Exit codes: 0 every host succeeded, 1 a host failed, 2 usage error
/// (nothing ran on any host), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "vmssh", version, about, long_about = None, after_help = OUTPUT_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a vmctl VMFile.kdl plan on many hosts.
    #[command(after_help = OUTPUT_HELP)]
    Provision(ProvisionArgs),
    /// Run one command on every host, output live and prefixed per host.
    #[command(after_help = OUTPUT_HELP)]
    Exec(ExecArgs),
    /// Copy a local file (or, with -r, a directory) to every host.
    #[command(after_help = OUTPUT_HELP)]
    Upload(UploadArgs),
    /// Copy a remote file (or, with -r, a directory) from every host into
    /// LOCAL_DIR/<host>/<name>.
    #[command(after_help = OUTPUT_HELP)]
    Download(DownloadArgs),
    /// Merge or show reports (--report FILE.json).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Open an interactive shell on one host, as `ssh HOST` does (exits
    /// with the remote shell's status, 255 when the connection fails or
    /// is cut with `~.`).
    Shell(ShellArgs),
    /// Provision embedded VMs (SSH servers in this process), or real QEMU
    /// guests booted here, with the demo plan.
    #[command(after_help = OUTPUT_HELP)]
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Merge the reports of shards into one, written to standard output.
    Merge(MergeArgs),
    /// Print a report's summary; exits 1 unless every host succeeded.
    Show(ShowArgs),
}

/// Where the hosts come from; at least one source is needed. Every host
/// has a name (used in output, logs, reports and --shard), unique across
/// sources.
#[derive(Debug, Args)]
#[command(next_help_heading = "Targets")]
pub(crate) struct TargetArgs {
    /// A host: NAME=[USER@]ADDR[:PORT], or [USER@]ADDR[:PORT] named by its
    /// address (repeatable).
    #[arg(long = "host", value_name = "[NAME=][USER@]ADDR[:PORT]")]
    pub(crate) hosts: Vec<String>,

    /// An inventory: one host a line, `NAME [USER@]ADDR[:PORT] [key=FILE]
    /// [jump=[USER@]HOST[:PORT]]`; blank lines and `#` comments are
    /// ignored (repeatable).
    #[arg(long = "hosts", value_name = "FILE")]
    pub(crate) inventories: Vec<PathBuf>,

    /// Reach the --host and --hosts hosts through this jump host (a
    /// bastion), as `ssh -J` does: one connection to it carries them all,
    /// their addresses as it sees them; an inventory line's `jump=` wins.
    /// It is authenticated with --key, --agent or --password-env, its host
    /// key checked as the hosts' are.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub(crate) jump: Option<String>,

    /// Hosts from ~/.ssh/config (and /etc/ssh/ssh_config), resolved as
    /// `ssh -G ALIAS` does; comma-separated, repeatable.
    #[arg(
        long = "ssh-config",
        value_name = "ALIAS[,ALIAS...]",
        value_delimiter = ','
    )]
    pub(crate) aliases: Vec<String>,

    /// Read the --ssh-config aliases from this file alone (as `ssh -F`).
    #[arg(long = "ssh-config-file", value_name = "FILE", requires = "aliases")]
    pub(crate) ssh_config_file: Option<PathBuf>,

    /// User for hosts that name none [default: the plan's, for provision;
    /// else the local user]. --ssh-config hosts keep their configured user.
    #[arg(long, value_name = "USER")]
    pub(crate) user: Option<String>,

    /// Run only the hosts whose name hashes into shard K of N (K from 0 to
    /// N-1): N runs with K = 0..N-1 cover every host exactly once.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<Shard>,
}

/// How to authenticate and how to trust host keys.
#[derive(Debug, Args)]
#[command(next_help_heading = "Authentication")]
pub(crate) struct AuthArgs {
    /// A private key file, tried in order (repeatable).
    #[arg(long = "key", value_name = "FILE")]
    pub(crate) keys: Vec<PathBuf>,

    /// The passphrase of encrypted --key files, from this environment
    /// variable.
    #[arg(long, value_name = "VAR")]
    pub(crate) passphrase_env: Option<String>,

    /// Try the ssh-agent at SSH_AUTH_SOCK (after the keys).
    #[arg(long)]
    pub(crate) agent: bool,

    /// Forward the ssh-agent at SSH_AUTH_SOCK to the hosts' commands, as
    /// `ssh -A` does, while each runs (file copies never get it). Root on
    /// a host can then use your keys through it: only for hosts you trust.
    /// --ssh-config hosts forward as their ForwardAgent says without it.
    #[arg(short = 'A', long)]
    pub(crate) forward_agent: bool,

    /// Password authentication, the password read from this environment
    /// variable (never from the command line).
    #[arg(long, value_name = "VAR")]
    pub(crate) password_env: Option<String>,

    /// Retry a refused login until --connect-deadline, as a refused
    /// connection is: for a VM that installs its key after its SSH server
    /// starts (cloud-init). A new connection at most every 5 s, as OpenSSH
    /// 9.8+ penalises failed logins.
    #[arg(long)]
    pub(crate) retry_auth: bool,

    /// Trust the host keys in this known_hosts file [default:
    /// ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE", help_heading = "Host keys")]
    pub(crate) known_hosts: Option<PathBuf>,

    /// Trust a host seen for the first time and record its key in the
    /// known_hosts file; a changed key is still refused.
    #[arg(long, help_heading = "Host keys")]
    pub(crate) accept_new: bool,

    /// Accept any host key (throwaway test machines only: anyone on the
    /// path can impersonate the host).
    #[arg(
        long,
        conflicts_with_all = ["known_hosts", "accept_new"],
        help_heading = "Host keys"
    )]
    pub(crate) insecure_accept_any: bool,
}

/// The password sudo asks for: `sudo` steps of a plan, `exec --sudo`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sudo")]
pub(crate) struct SudoArgs {
    /// The password sudo asks for, from this environment variable (never
    /// from the command line). It goes to sudo over the command's stdin
    /// (`sudo -S`), only when sudo asks; never into a log or the report.
    #[arg(long, value_name = "VAR", conflicts_with = "ask_sudo_password")]
    pub(crate) sudo_password_env: Option<String>,

    /// Ask for the sudo password once, on the terminal, without echo
    /// (Ansible's --ask-become-pass), before anything connects.
    #[arg(long)]
    pub(crate) ask_sudo_password: bool,
}

/// How the fleet runs and what it writes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Run")]
pub(crate) struct RunArgs {
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub(crate) concurrency: usize,

    /// Connection attempts (handshake and authentication) in flight at
    /// once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(crate) connect_concurrency: usize,

    /// How long each host may take to accept a connection (a VM still
    /// booting), retrying, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub(crate) connect_deadline: u64,

    /// Stop at the first failure: hosts not yet started are not started,
    /// running ones are stopped.
    #[arg(long, conflicts_with = "max_fail")]
    pub(crate) fail_fast: bool,

    /// Stop once more than PCT percent of the hosts (of this shard) have
    /// failed.
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub(crate) max_fail: Option<u8>,

    /// Reconnect a host found disconnected at the start of a step (a VM
    /// that rebooted) up to N times.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) reconnects: u32,

    /// Resolve every host (address, user, port, keys, jump hosts, where
    /// host keys are trusted from) and every step, print them (--json: as
    /// one JSON document) and connect nowhere: exit 0, or 2 with every
    /// problem found (a key that cannot be read, a missing script or
    /// file).
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Run only the hosts that this report (an earlier run's --report)
    /// lists as failed or cancelled, as the hosts given here define them
    /// (one missing here is an error); the new report says it is a rerun
    /// of this one (`rerun_of`).
    #[arg(long, value_name = "REPORT.json")]
    pub(crate) rerun_failed: Option<PathBuf>,

    /// Rolling batches, as Ansible's `serial`: `1,5,20%` runs 1 host,
    /// then 5, then 20 % of the hosts at a time until all have run, each
    /// batch once the previous one has ended. With --fail-fast or
    /// --max-fail, no batch starts after the limit is passed: its hosts
    /// are reported cancelled, never connected to.
    #[arg(long, value_name = "N|PCT%[,...]", value_delimiter = ',')]
    pub(crate) serial: Vec<vmssh::fleet::Batch>,

    /// Write each host's output to DIR/<host>/provision.log.
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,

    /// Write the report (JSON; `vmssh report merge` combines shards) here,
    /// also when interrupted.
    #[arg(long, value_name = "FILE.json")]
    pub(crate) report: Option<PathBuf>,

    /// One JSON event per line on standard output, for machines.
    #[arg(long, help_heading = "Output")]
    pub(crate) json: bool,

    /// Plain prefixed lines even on a terminal (no progress bars): the
    /// hosts' output on standard output, everything else on standard
    /// error, as when piped.
    #[arg(long, conflicts_with = "json", help_heading = "Output")]
    pub(crate) plain: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// The plan: hosts are matched to its `vm` blocks by name; its
    /// top-level `provision` steps run on every host.
    #[arg(long, value_name = "VMFile.kdl", default_value = "VMFile.kdl")]
    pub(crate) plan: PathBuf,

    /// Read the plan as vmctl does: unknown nodes, misspelt fields and
    /// everything else vmctl ignores are skipped with a warning. Without
    /// it, they are errors and nothing runs.
    #[arg(long)]
    pub(crate) lenient: bool,

    /// The plan's VMs that vmctl runs, from its state file [default:
    /// $XDG_DATA_HOME/vmctl/vms.json], reached as vmctl does (its user,
    /// keys, host keys; provision.log in each VM's work directory), a
    /// refused login retried until --connect-deadline (as --retry-auth).
    /// Give another state file as --vmctl=STATE.
    // `Option<Option<_>>`: absent, bare, or with a value; the value only
    // after `=`, so a bare --vmctl never takes the next argument.
    #[arg(
        long = "vmctl",
        value_name = "STATE",
        num_args = 0..=1,
        require_equals = true,
        help_heading = "Targets"
    )]
    pub(crate) vmctl: Option<Option<PathBuf>>,
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    #[command(flatten)]
    pub(crate) sudo: SudoArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Run the command as root through sudo: `sudo -n` (no password), or
    /// answering sudo with --sudo-password-env or --ask-sudo-password.
    #[arg(long, help_heading = "Sudo")]
    pub(crate) sudo: bool,
    #[command(flatten)]
    pub(crate) sudo_password: SudoArgs,

    /// Print each host's output as one block when the host finishes (as
    /// `pssh -i` does) instead of live lines.
    #[arg(long, conflicts_with = "json", help_heading = "Output")]
    pub(crate) collect: bool,

    /// Fail a host whose command runs longer than SECS.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u64>,

    /// The command, run by each host's shell; its words are joined with
    /// spaces, as ssh does. Flags after its first word are its own; put
    /// `--` before a command that starts with `-`.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Copy a directory, recursively: files (each replaced atomically,
    /// several at once), empty directories, modes (setuid and setgid
    /// dropped) and symbolic links (kept as links, never followed). Needs
    /// SFTP on the hosts.
    #[arg(short = 'r', long)]
    pub(crate) recursive: bool,

    #[command(flatten)]
    pub(crate) lanes: LanesArgs,

    /// The local file (a directory with -r).
    #[arg(value_name = "LOCAL")]
    pub(crate) local: PathBuf,

    /// Where it goes on each host (parents created, replaced atomically);
    /// ending in `/`, a directory that gets the file's (or directory's)
    /// name. With -r, the directory the tree's contents go in, merged into
    /// if it exists.
    #[arg(value_name = "REMOTE")]
    pub(crate) remote: String,
}

/// How many SFTP channels one copied file may use (upload, download).
#[derive(Debug, Args)]
pub(crate) struct LanesArgs {
    /// SFTP channels one file may move over at once, 1 to 16 [default:
    /// automatic: more than one only for a file of 8 MiB or more on a
    /// long link (a round trip of 10 ms or more), one per 4 MiB, at most
    /// 4]. Not with -r.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=16), conflicts_with = "recursive")]
    pub(crate) channels: Option<u8>,
}

impl LanesArgs {
    /// `step` with the channel count given, if one was.
    pub(crate) fn apply(
        &self,
        step: vmssh::provision::ProvisionDef,
    ) -> vmssh::provision::ProvisionDef {
        match self.channels {
            Some(n) => step.channels(usize::from(n)),
            None => step,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Copy a directory, recursively (as upload -r). Needs SFTP on the
    /// hosts.
    #[arg(short = 'r', long)]
    pub(crate) recursive: bool,

    #[command(flatten)]
    pub(crate) lanes: LanesArgs,

    /// The remote file (a directory with -r).
    #[arg(value_name = "REMOTE")]
    pub(crate) remote: String,

    /// The local directory (created if missing): each host's copy is
    /// LOCAL_DIR/<host>/<name>, as pssh's pslurp does.
    #[arg(value_name = "LOCAL_DIR")]
    pub(crate) local_dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,

    /// Ask for a terminal even when standard input is not one (as
    /// `ssh -t`).
    #[arg(short = 't', long = "tty", conflicts_with = "no_tty")]
    pub(crate) tty: bool,

    /// Never ask for a terminal (as `ssh -T`): the remote shell reads
    /// commands from standard input.
    #[arg(short = 'T', long = "no-tty")]
    pub(crate) no_tty: bool,

    /// How long the host may take to accept a connection (a VM still
    /// booting), retrying, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) connect_deadline: u64,

    /// The host: the name of one of the hosts given by --host, --hosts
    /// or --ssh-config (needed when they give more than one); alone,
    /// [USER@]ADDR[:PORT] as --host takes it.
    #[arg(value_name = "HOST")]
    pub(crate) host: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// The reports to merge (each shard's --report).
    #[arg(required = true, value_name = "REPORT.json")]
    pub(crate) reports: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The report.
    #[arg(value_name = "REPORT.json")]
    pub(crate) report: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many embedded VMs to start.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub(crate) vms: usize,

    /// Boot N real QEMU guests instead (OpenSSH's sshd and dropbear
    /// alternately; the image is built by scripts/vm-image.sh on first
    /// use), stopped at the end; a refused login is retried until
    /// --connect-deadline (as --retry-auth).
    #[arg(long, value_name = "N", conflicts_with = "vms")]
    pub(crate) qemu: Option<usize>,

    /// Make this VM's script step fail (to see a failure).
    #[arg(long = "break", value_name = "VM", hide = true)]
    pub(crate) break_vm: Option<String>,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
