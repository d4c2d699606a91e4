//! The dst alignments a merge needs: for every frame (by file stem), the source landmarks
//! of each aligned face extracted from it, read from the aligned faces' metadata (a folder of
//! `.jpg` files or DFL's `faceset.pak`), in file-name order as DFL does.

use crate::error::{MergeError, Result};
use dfl_faceset::pak::read_pak;
use dfl_faceset::{FaceMeta, list_aligned, read_meta, read_meta_bytes};
use dfl_geom::Pt;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of DFL's packed faceset file.
pub const PAK_NAME: &str = "faceset.pak";

/// Landmarks of the faces of each frame.
#[derive(Debug, Clone, Default)]
pub struct Alignments {
    /// Frame file stem → the frame-space landmarks of each face, in aligned-file order.
    pub frames: BTreeMap<String, Vec<Vec<Pt>>>,
    /// Aligned files without a `source_filename` (DFL ignores them too).
    pub ignored: Vec<String>,
    /// For each frame stem, the aligned file of its first face (for error messages).
    pub first_file: BTreeMap<String, String>,
}

impl Alignments {
    /// Number of faces.
    pub fn face_count(&self) -> usize {
        self.frames.values().map(Vec::len).sum()
    }

    /// Whether any frame has more than one face (DFL then computes no motion vectors).
    pub fn has_multiple_faces(&self) -> bool {
        self.frames.values().any(|f| f.len() > 1)
    }
}

/// What one aligned file contributes: its name, and the frame stem and landmarks (or `None`
/// when it names no source frame).
type Entry = (String, Option<(String, Vec<Pt>)>);

fn entry(name: String, meta: &FaceMeta, origin: &Path) -> Result<Entry> {
    let Some(source) = &meta.source_filename else {
        return Ok((name, None));
    };
    let stem = Path::new(source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lm = meta.source_landmarks.clone().ok_or_else(|| {
        MergeError::bad(
            origin,
            "aligned face has a source_filename but no source_landmarks; re-extract it",
        )
    })?;
    dfl_geom::check_landmarks(&lm)
        .map_err(|e| MergeError::bad(origin, format!("source_landmarks: {e}")))?;
    Ok((name, Some((stem, lm))))
}

/// Reads the alignments of `dir`: every aligned `.jpg` in it, or, when it has none, its
/// `faceset.pak`. A folder with neither gives empty alignments (every frame is then copied,
/// as DFL does); a missing folder or an unreadable face is an error naming the file.
pub fn read_alignments(dir: &Path) -> Result<Alignments> {
    let files = list_aligned(dir).map_err(|e| MergeError::bad(dir, e.to_string()))?;
    let entries: Vec<Entry> = if files.is_empty() && dir.join(PAK_NAME).is_file() {
        let pak_path = dir.join(PAK_NAME);
        let bytes = std::fs::read(&pak_path).map_err(|e| MergeError::io(&pak_path, e))?;
        let samples = read_pak(&bytes).map_err(|e| MergeError::bad(&pak_path, e.to_string()))?;
        samples
            .par_iter()
            .map(|s| {
                let origin: PathBuf = pak_path.join(&s.filename);
                let data = bytes
                    .get(s.range.clone())
                    .ok_or_else(|| MergeError::bad(&origin, "sample lies outside the pak file"))?;
                let meta =
                    read_meta_bytes(data).map_err(|e| MergeError::bad(&origin, e.to_string()))?;
                entry(s.filename.clone(), &meta, &origin)
            })
            .collect::<Result<_>>()?
    } else {
        files
            .par_iter()
            .map(|p| {
                let meta = read_meta(p).map_err(|e| MergeError::bad(p, e.to_string()))?;
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                entry(name, &meta, p)
            })
            .collect::<Result<_>>()?
    };
    let mut out = Alignments::default();
    for (name, e) in entries {
        match e {
            Some((stem, lm)) => {
                out.first_file.entry(stem.clone()).or_insert(name);
                out.frames.entry(stem).or_default().push(lm);
            }
            None => out.ignored.push(name),
        }
    }
    Ok(out)
}
