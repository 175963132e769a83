//! One error type for the libraries. `Input` and `Format` errors are the user's to fix
//! (the binary exits with status 2 for them); the rest are failures of the machine or of us.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something the user gave us is wrong: a flag, a config value, a missing input.
    /// The message says what was wrong and what to do.
    #[error("{0}")]
    Input(String),

    /// A file exists but is not what we expected (truncated shard, foreign file, bad header).
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The run was interrupted (Ctrl-C); the last checkpoint is intact.
    #[error("interrupted")]
    Interrupted,

    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    /// True when the user can fix this by changing their input: the binary exits with 2.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Input(_) | Error::Format { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            _ => false,
        }
    }
}

/// Attach a path to an `std::io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
