//! The aligned-face file (DFLJPG with its APP15 pickle), faceset.pak, and faceset utilities,
//! compatible with DeepFaceLab.
//!
//! - [`pickle`]: a safe reader/writer for the pickles DFL stores (never executes anything).
//! - [`jpeg`]: the segment walker; metadata edits keep every other byte of the JPEG.
//! - [`FaceMeta`]: DFL's metadata keys with DFL's Python/numpy types, so DFL reads our files.
//! - [`pak`]: `faceset.pak` read (including DFL's absolute last offset) and write.
//! - [`ops`]: the "4.2 util" jobs: pack/unpack, metadata save/restore, recover names,
//!   resize, debug images.
//!
//! The format decisions are written up in `docs/aligned-file-format.md`.

mod dfljpg;
pub mod draw;
pub mod jpeg;
mod meta;
pub mod ops;
pub mod pak;
pub mod pickle;
mod xseg;

pub use dfljpg::{
    AlignedFace, embed_meta, is_aligned_name, list_aligned, meta_payload, read_meta,
    read_meta_bytes, scan_meta, write_meta,
};
pub use meta::{FaceMeta, KNOWN_KEYS, PolyType, SegPoly};
pub use xseg::{GrayMask, MAX_MASK_BYTES, MaskEncoding, XsegMask};

use std::path::{Path, PathBuf};

/// Everything that can go wrong reading or writing aligned faces and facesets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error about a particular file; the cause says what.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<Error>,
    },
    /// Reading or writing failed.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A zero-byte file.
    #[error("empty file")]
    Empty,
    /// A PNG: DFL 2.0 aligned faces are always JPEG.
    #[error("a PNG file, not an aligned face (DFL 2.0 stores aligned faces as .jpg only)")]
    Png,
    /// Not a JPEG at all.
    #[error("not a JPEG file")]
    NotJpeg,
    /// The JPEG ends too early.
    #[error("truncated JPEG: {0}")]
    Truncated(String),
    /// The JPEG structure is broken.
    #[error("corrupt JPEG: {0}")]
    CorruptJpeg(String),
    /// A valid JPEG without DFL metadata.
    #[error("not an aligned face: the JPEG has no DFL metadata (APP15) segment")]
    NotAligned,
    /// The metadata pickle was refused.
    #[error("unreadable metadata")]
    Pickle(#[from] pickle::PickleError),
    /// A metadata key has the wrong type or shape.
    #[error("metadata key '{key}': {problem}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The pickled metadata exceeds one JPEG segment.
    #[error(
        "metadata is {0} bytes pickled; a JPEG segment holds at most 65533 (is the XSeg mask too large?)"
    )]
    MetadataTooLarge(usize),
    /// Image encoding/decoding failed.
    #[error("image: {0}")]
    Image(String),
    /// A faceset.pak is malformed.
    #[error("faceset.pak: {0}")]
    Pak(String),
    /// A faceset operation cannot proceed (existing output, missing input...).
    #[error("{0}")]
    Refused(String),
    /// Geometry failed (degenerate landmarks...).
    #[error("geometry")]
    Geom(#[from] dfl_geom::GeomError),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Attaches the file this error is about (unless it already names one).
    pub fn at(self, path: &Path) -> Error {
        match self {
            Error::File { .. } | Error::Io { .. } => self,
            other => Error::File {
                path: path.to_path_buf(),
                source: Box::new(other),
            },
        }
    }

    /// The innermost error (past the file wrappers), to match on its kind.
    pub fn kind(&self) -> &Error {
        match self {
            Error::File { source, .. } => source.kind(),
            other => other,
        }
    }
}
