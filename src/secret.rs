//! Decrypted key material.
//!
//! A [`Secret`] is the only type that holds plaintext private keys. It has no
//! `Display`, its `Debug` prints nothing of the content, the bytes are reached
//! through one explicit accessor, and they are zeroized when it is dropped.

use std::fmt;
use zeroize::Zeroizing;

pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The plaintext. Callers must not copy it anywhere that outlives them
    /// without zeroizing that copy too.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext, to fill a buffer made with [`Secret::new`] in place.
    /// Growing it past its capacity would leave an unzeroized copy behind:
    /// allocate enough first.
    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// The plaintext as UTF-8 text (a PEM document), if it is text.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([{} bytes redacted])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_content() {
        let s = Secret::new(b"-----BEGIN PRIVATE KEY-----".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("27 bytes"));
    }
}
