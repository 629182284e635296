//! The one error type of kaws.
//!
//! Every error carries three things a user needs: what went wrong, about which
//! file or value (folded into the message), and what to do next (the hint).
//! The kind decides the process exit status, so scripts can tell a refused
//! input from an AWS failure without parsing text.

use std::fmt;
use std::path::Path;

/// What class of failure this is; each maps to one documented exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value or file the user gave is not acceptable.
    Input,
    /// Something already exists (or is locked) and kaws will not overwrite it.
    Conflict,
    /// AWS (KMS, credentials, the endpoint) refused or could not be reached.
    Aws,
    /// KMS answered, and refused the ciphertext itself: the file is damaged,
    /// or belongs to another cluster or file. The same exit status as
    /// [`ErrorKind::Aws`]; `cluster check` reports it as an invalid file
    /// rather than as an outage.
    Ciphertext,
    /// A check found invalid, expired or exposed material.
    CheckFailed,
    /// An external program (terraform, a user's editor of files) failed.
    External,
    /// Reading or writing the local file system failed.
    Io,
}

impl ErrorKind {
    /// The process exit status for this kind (see docs/reference/exit-codes.md).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Io => 1,
            ErrorKind::Input => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Aws | ErrorKind::Ciphertext => 5,
            ErrorKind::CheckFailed => 6,
            ErrorKind::External => 7,
        }
    }
}

/// An error with a message and, usually, a hint saying what to do next.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn aws(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Aws, message)
    }

    /// An I/O failure on `path`, phrased as "<path>: could not <action>: <cause>".
    /// The `io::Error` is kept as the error's source, for callers that
    /// match on it.
    pub fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => {
                Some("check the file's permissions and owner".to_string())
            }
            std::io::ErrorKind::NotFound => Some("check that the path exists".to_string()),
            _ => None,
        };
        Error {
            kind: ErrorKind::Io,
            message: format!(
                "{}: could not {action}: {err}",
                crate::text::escape_path(path)
            ),
            hint,
            source: Some(Box::new(err)),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Add `hint` unless the error already says what to do.
    pub fn or_hint(self, hint: impl Into<String>) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.with_hint(hint)
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Prefix the message with the file it concerns, unless it already names it.
    pub fn in_file(mut self, path: &Path) -> Self {
        let shown = crate::text::escape_path(path);
        if !self.message.starts_with(&shown) {
            self.message = format!("{shown}: {}", self.message);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_cause() {
        let e = Error::io(
            "read",
            Path::new("x"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        let source = std::error::Error::source(&e).unwrap();
        let io = source.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(e.message().contains(&io.to_string()));
    }
}
