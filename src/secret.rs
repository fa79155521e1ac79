//! [`Secret`]: a password or passphrase that never shows.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// A secret string (a password, a passphrase, a PEM key): `Debug` prints
/// `<redacted>`, there is no `Display`, no error or log line of this crate
/// ever holds one, and its buffer is zeroed when the last clone is
/// dropped.
///
/// Cloning is cheap (the clones share one buffer), so one `Secret` can
/// serve a whole fleet. Copies made while the secret is sent (the SSH
/// layer's packet buffers) are not zeroed.
///
/// # Example
///
/// ```
/// use vmssh::Secret;
///
/// let pw = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{pw:?}"), "<redacted>");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Wraps `secret`. A `String` is moved in without a copy.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(Arc::new(Zeroizing::new(secret.into())))
    }

    /// The secret text, for the code that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_it() {
        let s = Secret::from("s3cr3t");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "s3cr3t");
    }
}
