//! The `vmssh` command; everything is in the crate's library (`lib.rs`).

fn main() -> std::process::ExitCode {
    vmssh_cli::main()
}
