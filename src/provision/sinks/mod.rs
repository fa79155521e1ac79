//! The sinks the crate ships: a terminal, raw output (vmctl's), `provision.log`
//! (live, or in vmctl's layout), `tracing`, a bounded channel.

mod channel;
mod log;
mod raw;
mod terminal;
mod tracing;
mod visible;
mod vmctl_log;

pub use self::channel::ChannelSink;
pub use self::log::LogFileSink;
pub use self::raw::RawSink;
pub use self::terminal::TerminalSink;
pub use self::tracing::TracingSink;
pub use self::visible::visible;
pub use self::vmctl_log::VmctlLogSink;
pub(crate) use self::vmctl_log::{VmctlLabel, expand};
