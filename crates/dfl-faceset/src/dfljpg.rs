//! DFLJPG: an aligned face is a JPEG whose APP15 segment holds the pickled metadata dict.

use crate::jpeg::{JpegHeader, parse_header, replace_app15};
use crate::meta::FaceMeta;
use crate::{Error, pickle};
use std::path::{Path, PathBuf};

/// An aligned-face file in memory: the JPEG bytes, their header layout and the metadata.
#[derive(Debug, Clone)]
pub struct AlignedFace {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Its header segments and dimensions.
    pub header: JpegHeader,
    /// The decoded metadata.
    pub meta: FaceMeta,
}

impl AlignedFace {
    /// Parses a file's bytes. Errors: not a JPEG / PNG / empty / truncated, no APP15 ("not an
    /// aligned face"), or metadata that is not DFL's dict.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<AlignedFace, Error> {
        let header = parse_header(&bytes)?;
        let meta = meta_from_header(&bytes, &header)?;
        Ok(AlignedFace {
            bytes,
            header,
            meta,
        })
    }

    /// Reads and parses `path`; errors name the file.
    pub fn load(path: &Path) -> Result<AlignedFace, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        AlignedFace::from_bytes(bytes).map_err(|e| e.at(path))
    }

    /// The file bytes with `meta` embedded (APP15 replaced, everything else unchanged).
    pub fn with_meta(&self, meta: &FaceMeta) -> Result<Vec<u8>, Error> {
        replace_app15(&self.bytes, &self.header, &meta_payload(meta)?)
    }
}

/// The APP15 payload for `meta`: its pickle, which must fit one JPEG segment.
pub fn meta_payload(meta: &FaceMeta) -> Result<Vec<u8>, Error> {
    let payload = pickle::dumps(&meta.to_value());
    if payload.len() > crate::jpeg::MAX_SEGMENT_PAYLOAD {
        return Err(Error::MetadataTooLarge(payload.len()));
    }
    Ok(payload)
}

fn meta_from_header(bytes: &[u8], header: &JpegHeader) -> Result<FaceMeta, Error> {
    meta_with(bytes, header, pickle::loads)
}

/// The metadata in the APP15 segment, decoded by `loads` (full or compact).
fn meta_with(
    bytes: &[u8],
    header: &JpegHeader,
    loads: fn(&[u8]) -> Result<pickle::Value, pickle::PickleError>,
) -> Result<FaceMeta, Error> {
    let payload = header.app15(bytes).ok_or(Error::NotAligned)?;
    FaceMeta::from_value(&loads(payload)?)
}

/// Reads only the metadata of an aligned face held in memory.
pub fn read_meta_bytes(bytes: &[u8]) -> Result<FaceMeta, Error> {
    let header = parse_header(bytes)?;
    meta_from_header(bytes, &header)
}

/// Reads only the metadata of the aligned face at `path`.
pub fn read_meta(path: &Path) -> Result<FaceMeta, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_meta_bytes(&bytes).map_err(|e| e.at(path))
}

/// Reads the metadata and the image size (width, height) of the aligned face at `path` for
/// scanning a faceset: number lists come back as arrays ([`pickle::loads_compact`]), so the
/// metadata is for reading, not for writing back. Errors name the file.
pub fn scan_meta(path: &Path) -> Result<(FaceMeta, u32, u32), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let scan = || {
        let header = parse_header(&bytes)?;
        let meta = meta_with(&bytes, &header, pickle::loads_compact)?;
        Ok((meta, header.width, header.height))
    };
    scan().map_err(|e: Error| e.at(path))
}

/// Embeds `meta` into any JPEG (aligned or not), keeping every other byte.
pub fn embed_meta(jpeg: &[u8], meta: &FaceMeta) -> Result<Vec<u8>, Error> {
    let header = parse_header(jpeg)?;
    replace_app15(jpeg, &header, &meta_payload(meta)?)
}

/// Rewrites the metadata of the JPEG at `path` in place, crash-safely (temp file, fsync,
/// rename): a crash leaves the old or the new file, never a broken one.
pub fn write_meta(path: &Path, meta: &FaceMeta) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let out = embed_meta(&bytes, meta).map_err(|e| e.at(path))?;
    dfl_core::atomic_write(path, &out).map_err(|e| Error::io(path, e))
}

/// Whether DFL treats `path` as an aligned face: the suffix is exactly `.jpg`
/// (case-sensitive; DFL ignores `.jpeg` and `.JPG`).
pub fn is_aligned_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "jpg")
}

/// The aligned-face files directly inside `dir`, sorted by name.
pub fn list_aligned(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_file = entry
            .file_type()
            .map_err(|e| Error::io(&path, e))?
            .is_file();
        if is_file && is_aligned_name(&path) {
            out.push(path);
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}
