//! The one error type of dfl-train.

use std::path::PathBuf;

/// Everything that can go wrong while loading facesets, preparing samples or training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A network, optimizer or checkpoint error (already names its file where it has one).
    #[error(transparent)]
    Nn(#[from] dfl_nn::NnError),
    /// An aligned face or faceset.pak could not be read (names the file).
    #[error(transparent)]
    Faceset(#[from] dfl_faceset::Error),
    /// A sample could not be prepared (decode, warp, mask…).
    #[error("{path}: {message}")]
    Sample {
        /// The aligned face (or `faceset.pak` entry) involved.
        path: PathBuf,
        /// What went wrong.
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
    /// A file of the model folder exists but its content is wrong.
    #[error("{path}: {message}")]
    BadFile {
        /// File involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An option value or combination is refused (names the option as DFL spells it).
    #[error("option {option}: {message}")]
    Option {
        /// Option name (`resolution`, `batch_size`…).
        option: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// A faceset folder has no usable aligned face.
    #[error("{path}: no aligned faces to train on{detail}")]
    EmptyFaceset {
        /// The folder.
        path: PathBuf,
        /// Why files were skipped, when some were.
        detail: String,
    },
    /// Something the caller asked for cannot be done (missing folder, existing target…).
    #[error("{0}")]
    Refused(String),
    /// A data-pipeline worker stopped unexpectedly.
    #[error("data pipeline: {0}")]
    Pipeline(String),
}

/// Result alias of dfl-train.
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// A [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`TrainError::Sample`] for `path`.
    pub fn sample(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Self::Sample {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// A [`TrainError::Option`].
    pub fn option(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Option {
            option: option.into(),
            message: message.into(),
        }
    }

    /// A [`TrainError::BadFile`] for `path`.
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
