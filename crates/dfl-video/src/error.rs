//! The one error type of the video stage. Every message is one line that names the file and
//! what is wrong, because the CLI prints it as is.

use std::path::PathBuf;

/// Why a video step failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// ffmpeg or ffprobe could not be started because it is not installed (or not on PATH).
    #[error(
        "{tool} was not found: dfl needs ffmpeg and ffprobe installed and on PATH \
         (Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg; \
         Windows: winget install ffmpeg), or set {env} to the program's full path"
    )]
    ToolMissing {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// The environment variable that overrides the program's location.
        env: &'static str,
    },
    /// ffmpeg or ffprobe exists but could not be started or talked to.
    #[error("cannot run {tool}: {cause}")]
    ToolIo {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// The underlying error (shown in the message, not chained as a source, so the CLI
        /// prints it once).
        cause: std::io::Error,
    },
    /// An input file or folder does not exist.
    #[error("{}: no such file or folder", path.display())]
    Missing {
        /// The missing path.
        path: PathBuf,
    },
    /// ffprobe could not read the file as a media file.
    #[error("{}: not a video ffmpeg can read ({reason})", path.display())]
    NotAVideo {
        /// The file.
        path: PathBuf,
        /// ffprobe's own explanation (one line).
        reason: String,
    },
    /// The file is a media file without a (non cover-art) video stream.
    #[error("{}: has no video stream", path.display())]
    NoVideoStream {
        /// The file.
        path: PathBuf,
    },
    /// The video stopped decoding before its end (truncated or damaged file). The frames
    /// decoded before the damage have been written.
    #[error(
        "{}: decoding stopped at frame {frames}{} (t = {seconds:.3} s); the {frames} frames \
         before it were written; {reason}",
        path.display(),
        expected.map(|e| format!(" of {e}")).unwrap_or_default()
    )]
    Truncated {
        /// The video.
        path: PathBuf,
        /// Frames written before the damage.
        frames: u64,
        /// Frames the container announced (or the duration implied), when known.
        expected: Option<u64>,
        /// Presentation time of the first missing frame.
        seconds: f64,
        /// Why: a truncated file, or ffmpeg's own error lines.
        reason: String,
    },
    /// ffmpeg ran but failed; `reason` is its first error line.
    #[error("{}: ffmpeg failed: {reason}", path.display())]
    Ffmpeg {
        /// The file ffmpeg was reading or writing.
        path: PathBuf,
        /// ffmpeg's first error line (or its exit status).
        reason: String,
    },
    /// The output folder already holds frames and overwriting was not asked for.
    #[error(
        "{}: already holds {count} image files (e.g. {example}); nothing was written \
         (pass --overwrite to replace the frames)",
        dir.display()
    )]
    OutputHasFrames {
        /// The output folder.
        dir: PathBuf,
        /// How many image files it holds.
        count: usize,
        /// One of them, as an example.
        example: String,
    },
    /// The output file already exists and overwriting was not asked for.
    #[error("{}: already exists; nothing was written (pass --overwrite to replace it)", path.display())]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A folder could not be created (for example because a parent is a regular file or is
    /// read-only).
    #[error("cannot create folder {}: {cause}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The underlying error (shown in the message, not chained as a source, so the CLI
        /// prints it once).
        cause: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, not chained as a source, so the CLI
        /// prints it once).
        cause: std::io::Error,
    },
    /// A file or folder could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error (shown in the message, not chained as a source, so the CLI
        /// prints it once).
        cause: std::io::Error,
    },
    /// An image frame could not be decoded or encoded.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The frame file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A frame has a different size than the first frame of its folder.
    #[error(
        "{}: is {width}x{height} but the first frame is {first_width}x{first_height}; all \
         frames of a video must have the same size",
        path.display()
    )]
    SizeMismatch {
        /// The frame file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The first frame's width.
        first_width: u32,
        /// The first frame's height.
        first_height: u32,
    },
    /// A folder that should hold frames holds none.
    #[error("{}: holds no image frames (.png, .jpg, .jpeg)", dir.display())]
    NoFrames {
        /// The folder.
        dir: PathBuf,
    },
    /// A provenance record exists but cannot be read as JSON.
    #[error("{}: {reason}", path.display())]
    Provenance {
        /// The record.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An option value is out of range or malformed.
    #[error("{0}")]
    InvalidOption(String),
}

/// Result of the video stage.
pub type Result<T, E = VideoError> = std::result::Result<T, E>;
