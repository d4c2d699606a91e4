//! The one error type of dfl-nn.

use std::path::PathBuf;

/// Everything that can go wrong when building, training, saving or loading a DFL network.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// An option value is outside what DFL accepts (names the option and the rule).
    #[error("option {option}: {message}")]
    InvalidOption {
        /// Option name as DFL spells it (`resolution`, `archi`, …).
        option: &'static str,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// A checkpoint was written for a different architecture than the one requested.
    #[error("{path}: checkpoint option {option} is {stored}, but {requested} was requested")]
    OptionMismatch {
        /// Checkpoint folder.
        path: PathBuf,
        /// Option that differs.
        option: &'static str,
        /// Value stored in the checkpoint.
        stored: String,
        /// Value asked for.
        requested: String,
    },
    /// A device string could not be parsed or names a backend this build lacks.
    #[error("device '{spec}': {message}")]
    Device {
        /// The string given by the user.
        spec: String,
        /// Why it cannot be used.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File or folder involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file exists but its content is wrong (bad header, missing tensor,
    /// shape that does not fit the architecture…).
    #[error("{path}: {message}")]
    BadFile {
        /// File involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// No complete checkpoint exists in a folder.
    #[error("{path}: no complete checkpoint found")]
    NoCheckpoint {
        /// Folder searched.
        path: PathBuf,
    },
    /// A batch handed to a model has the wrong shape.
    #[error("batch: {0}")]
    Batch(String),
    /// A training step produced a NaN or infinite loss; the weights were left unchanged, so
    /// a trainer can recover (reload the last checkpoint, lower the learning rate).
    #[error("loss is not finite (src {src}, dst {dst}); weights left unchanged")]
    NonFiniteLoss {
        /// Mean src loss of the step.
        src: f32,
        /// Mean dst loss of the step.
        dst: f32,
    },
}

/// Result alias of dfl-nn.
pub type Result<T> = std::result::Result<T, NnError>;

impl NnError {
    /// An [`NnError::InvalidOption`].
    pub(crate) fn option(option: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            message: message.into(),
        }
    }

    /// An [`NnError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`NnError::BadFile`] for `path`.
    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
