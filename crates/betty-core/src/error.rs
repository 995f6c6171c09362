//! Typed errors of the registry world and the one mapping from outcomes to exit codes.
//!
//! Every error says which input it is about (a path, a flag, stdin) and what is wrong, so a
//! binary can print it as is. The exit-code contract (0 passed, 1 findings, 2 error, 3 pending)
//! lives here and nowhere else.

use std::path::PathBuf;

use crate::source::{Pos, SourceName};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a command could not go on. All of these are exit 2: nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", crate::escape::Escaped(&path.to_string_lossy()))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", crate::escape::Escaped(&path.to_string_lossy()))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{input}` is {size} bytes, over the limit of {limit} bytes for this kind of file")]
    TooLarge {
        input: SourceName,
        size: u64,
        limit: u64,
    },
    #[error("`{input}` is not valid UTF-8 (first bad byte at offset {offset}); save it as UTF-8")]
    NotUtf8 { input: SourceName, offset: usize },
    #[error("`{input}` is empty; expected {expected}")]
    Empty {
        input: SourceName,
        expected: &'static str,
    },
    #[error("{input}:{pos}: {message}")]
    Syntax {
        input: SourceName,
        pos: Pos,
        message: String,
    },
    #[error("{input}:{pos}: {message}")]
    Invalid {
        input: SourceName,
        pos: Pos,
        message: String,
    },
    #[error(
        "`{input}` is corrupt at {location}: {message}; it was left untouched; repair or restore it"
    )]
    Corrupt {
        input: SourceName,
        location: String,
        message: String,
    },
    #[error("`{}` is {what}, not a {expected}: {hint}", crate::escape::Escaped(&path.to_string_lossy()))]
    NotRegular {
        path: PathBuf,
        /// What was found: "a symbolic link", "a FIFO (named pipe)", "a folder", ...
        what: &'static str,
        /// What belongs there: "regular file" or "folder".
        expected: &'static str,
        hint: &'static str,
    },
    #[error(
        "{origin} names `{path}`, which {problem}; Betty does not fall back to another registry: create the folder or fix {origin}"
    )]
    RegistryUnusable {
        /// `--registry`, `BETTY_REGISTRY` or `BETTY_HOME`.
        origin: &'static str,
        path: PathBuf,
        problem: &'static str,
    },
    #[error("no registry found; looked at: {}\nhint: pass `--registry DIR`, set `BETTY_REGISTRY`, or run inside a project with a `registry/` folder", looked.join(", "))]
    RegistryNotFound { looked: Vec<String> },
    #[error("invalid {what} `{}`: {reason}", crate::escape::Escaped(value))]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid {what} `{}`: {reason}", crate::escape::Escaped(value))]
    InvalidArgument {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// An SSH key could not be read or could not sign (`sshsig::KeyRef`).
    #[error("SSH key `{key}`: {message}")]
    SshKey { key: String, message: String },
    /// git's signing configuration (`gpg.format`, `user.signingkey`) is missing or unusable.
    #[error("git configuration in `{}`: {message}", cwd.display())]
    GitConfig { cwd: PathBuf, message: String },
    #[error("{what} `{value}` does not validate against `{schema}`: {reason}")]
    Schema {
        what: &'static str,
        value: String,
        schema: &'static str,
        reason: String,
    },
}

impl Error {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(input: &SourceName, pos: Pos, message: impl Into<String>) -> Self {
        Error::Invalid {
            input: input.clone(),
            pos,
            message: message.into(),
        }
    }

    /// Every error of this crate is an input, configuration or I/O problem: exit 2.
    pub fn exit_status(&self) -> ExitStatus {
        ExitStatus::Error
    }
}

/// The only way out of a Betty binary. The numbers are a published contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// 0: passed, approved, nothing to report.
    Success,
    /// 1: findings: blocking violations, rejected or expired approval, failed checks.
    Failure,
    /// 2: usage, configuration, input or I/O error; nothing was written.
    Error,
    /// 3: an approval is still pending.
    Pending,
}

impl ExitStatus {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const PENDING: u8 = 3;

    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => Self::SUCCESS,
            ExitStatus::Failure => Self::FAILURE,
            ExitStatus::Error => Self::ERROR,
            ExitStatus::Pending => Self::PENDING,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_published_contract() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Failure.code(), 1);
        assert_eq!(ExitStatus::Error.code(), 2);
        assert_eq!(ExitStatus::Pending.code(), 3);
        let e = Error::RegistryNotFound {
            looked: vec!["--registry".into()],
        };
        assert_eq!(e.exit_status(), ExitStatus::Error);
        assert!(e.to_string().contains("--registry"));
    }
}
