//! The one error type of dfl-merge.

use std::path::PathBuf;

/// Everything that can stop a merge. Each variant's message is one line that names the file
/// or folder concerned.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Reading or writing a file or folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An input file or folder is not what the merge needs (unreadable frame, aligned face
    /// without landmarks, frames missing for aligned faces...).
    #[error("{}: {message}", path.display())]
    BadInput {
        /// File or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The model folder cannot be used for merging.
    #[error("{}: {message}", path.display())]
    Model {
        /// Model folder (or the file in it).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A merger config was refused.
    #[error("{}: {source}", origin)]
    Config {
        /// Where the config came from (a file, or a frame of the session store).
        origin: String,
        /// Why.
        source: crate::config::ConfigError,
    },
    /// The caller passed something inconsistent (a prediction of the wrong size, a missing
    /// mask the mask mode needs).
    #[error("{0}")]
    Invalid(String),
    /// A network failed to run.
    #[error("model: {0}")]
    Nn(#[from] dfl_nn::NnError),
    /// An image operation refused its input.
    #[error("{0}")]
    Image(#[from] dfl_image::ImageError),
    /// Face geometry failed (degenerate landmarks).
    #[error("landmarks: {0}")]
    Geom(#[from] dfl_geom::GeomError),
    /// Merging one frame failed.
    #[error("frame {frame}: {source}")]
    Frame {
        /// Frame file name.
        frame: String,
        /// The cause.
        source: Box<MergeError>,
    },
}

/// Result alias of dfl-merge.
pub type Result<T> = std::result::Result<T, MergeError>;

impl MergeError {
    /// A [`MergeError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MergeError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`MergeError::BadInput`] for `path`.
    pub fn bad(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        MergeError::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`MergeError::Model`] for `path`.
    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        MergeError::Model {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Wraps the error with the frame it happened on (unless it already names one).
    pub fn in_frame(self, frame: &str) -> Self {
        match self {
            MergeError::Frame { .. } | MergeError::Io { .. } | MergeError::BadInput { .. } => self,
            other => MergeError::Frame {
                frame: frame.to_string(),
                source: Box::new(other),
            },
        }
    }
}
