//! The sinks the crate ships: a terminal, `provision.log` (live, or in
//! vmctl's layout), `tracing`, a bounded channel.

mod channel;
mod log;
mod terminal;
mod tracing;
mod visible;
mod vmctl_log;

pub use self::channel::ChannelSink;
pub use self::log::LogFileSink;
pub use self::terminal::TerminalSink;
pub use self::tracing::TracingSink;
pub use self::visible::visible;
pub(crate) use self::vmctl_log::VmctlLabel;
pub use self::vmctl_log::VmctlLogSink;
