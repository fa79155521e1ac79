//! The sinks the crate ships: a terminal, raw output (vmctl's), a live
//! `provision.log`, `tracing`, a bounded channel. vmctl's log layout is
//! `vmctl/log.rs`'s.

mod channel;
mod log;
pub(crate) mod raw;
mod terminal;
pub(crate) mod tracing;
mod visible;

pub use self::channel::ChannelSink;
pub use self::log::LogFileSink;
pub use self::raw::RawSink;
pub use self::terminal::TerminalSink;
pub use self::tracing::TracingSink;
pub use self::visible::visible;
