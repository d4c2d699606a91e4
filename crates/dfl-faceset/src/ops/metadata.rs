//! `faceset metadata-save` / `metadata-restore`: keep alignment data safe while the images
//! are edited in another program (which usually drops the APP15 segment).
//!
//! `meta.dat` is DFL's own format, a pickle of `{file name: ((h, w, c), metadata dict)}`, so
//! DFL can restore a `meta.dat` written by dfl-rs and vice versa. The metadata dicts are
//! kept exactly as read (unknown keys included).

use super::{
    Skipped, atomic_write_with, decode_rgb, encode_jpeg, file_name, reason, to_float, to_rgb8,
};
use crate::jpeg::{parse_header, replace_app15};
use crate::pickle::{self, Value};
use crate::{Error, list_aligned};
use dfl_core::Progress;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metadata backup's file name inside the faceset folder.
pub const META_DAT: &str = "meta.dat";

/// What [`metadata_save`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// The backup written.
    pub path: PathBuf,
    /// Files whose metadata was saved.
    pub saved: usize,
    /// Files without readable metadata (left out of the backup).
    pub skipped: Vec<Skipped>,
}

/// Saves the metadata and image shape of every aligned face in `dir` to `dir/meta.dat`.
pub fn metadata_save(dir: &Path, progress: &dyn Progress) -> Result<SaveReport, Error> {
    let files = list_aligned(dir)?;
    progress.start("saving metadata", Some(files.len() as u64));
    let mut entries = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for path in files {
        let name = file_name(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let entry = (|| -> Result<Value, Error> {
            let header = parse_header(&bytes)?;
            let payload = header.app15(&bytes).ok_or(Error::NotAligned)?;
            let dict = pickle::loads(payload)?;
            if !matches!(dict, Value::Dict(_)) {
                return Err(Error::Metadata {
                    key: "(root)".into(),
                    problem: "not a dict".into(),
                });
            }
            let shape = Value::Tuple(vec![
                Value::Int(i64::from(header.height)),
                Value::Int(i64::from(header.width)),
                Value::Int(i64::from(header.components)),
            ]);
            Ok(Value::Tuple(vec![shape, dict]))
        })();
        match entry {
            Ok(v) => entries.push((Value::Str(name), v)),
            Err(e) => skipped.push(Skipped {
                reason: reason(&e),
                path,
            }),
        }
        progress.inc(1);
    }
    progress.finish();
    let out = dir.join(META_DAT);
    let saved = entries.len();
    let data = pickle::dumps(&Value::Dict(entries));
    atomic_write_with(&out, |w| w.write_all(&data).map_err(|e| Error::io(&out, e)))?;
    Ok(SaveReport {
        path: out,
        saved,
        skipped,
    })
}

/// Options of [`metadata_restore`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Delete `meta.dat` after a restore without errors (DFL always deletes it).
    pub delete_meta: bool,
}

/// What [`metadata_restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Files whose metadata was written back.
    pub restored: usize,
    /// Of those, files that had changed size and were resized back (Lanczos4, quality 100).
    pub resized: usize,
    /// Of those, files that already carried exactly the saved metadata (left untouched).
    pub unchanged: usize,
    /// Entries of meta.dat without a file in the folder.
    pub missing: Vec<String>,
    /// Files that could not be restored.
    pub skipped: Vec<Skipped>,
    /// Whether meta.dat was deleted.
    pub meta_deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    Written,
    Resized,
}

fn parse_shape(v: &Value) -> Option<(u32, u32)> {
    match v.as_seq()? {
        [h, w, ..] => Some((
            u32::try_from(h.as_i64()?).ok()?,
            u32::try_from(w.as_i64()?).ok()?,
        )),
        _ => None,
    }
}

/// Writes the metadata saved in `dir/meta.dat` back into the images of `dir`. An image
/// whose size changed is first resized back to the saved size (Lanczos4) and re-encoded at
/// JPEG quality 100, as DFL does. Each file is rewritten crash-safely.
pub fn metadata_restore(
    dir: &Path,
    opts: RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, Error> {
    let meta_path = dir.join(META_DAT);
    let raw = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let saved = pickle::loads(&raw).map_err(|e| Error::from(e).at(&meta_path))?;
    let Value::Dict(items) = saved else {
        return Err(Error::Refused(format!(
            "{}: not a metadata backup (dict)",
            meta_path.display()
        )));
    };
    progress.start("restoring metadata", Some(items.len() as u64));
    let mut report = RestoreReport {
        restored: 0,
        resized: 0,
        unchanged: 0,
        missing: Vec::new(),
        skipped: Vec::new(),
        meta_deleted: false,
    };
    for (k, v) in &items {
        progress.inc(1);
        let Some(name) = k.as_str() else { continue };
        // Only plain names inside `dir`.
        if name.contains(['/', '\\']) || name == ".." || name == "." || name.is_empty() {
            report.skipped.push(Skipped {
                path: PathBuf::from(name),
                reason: "not a plain file name".into(),
            });
            continue;
        }
        let path = dir.join(name);
        if !path.is_file() {
            report.missing.push(name.to_string());
            continue;
        }
        let result = (|| -> Result<Outcome, Error> {
            let (shape, dict) = match v.as_seq() {
                Some([shape, dict @ Value::Dict(_)]) => (shape, dict),
                _ => return Err(Error::Refused("meta.dat entry is not (shape, dict)".into())),
            };
            let (h, w) = parse_shape(shape)
                .ok_or_else(|| Error::Refused("meta.dat entry has a bad shape".into()))?;
            let mut bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let mut header = parse_header(&bytes)?;
            let mut resized = false;
            if (header.width, header.height) == (w, h)
                && let Some(current) = header.app15(&bytes)
                && pickle::loads(current).ok().as_ref() == Some(dict)
            {
                return Ok(Outcome::Unchanged);
            }
            if (header.width, header.height) != (w, h) {
                let img = to_float(&decode_rgb(&bytes)?)?;
                let back =
                    dfl_image::resize(&img, w as usize, h as usize, dfl_image::Interp::Lanczos4)
                        .map_err(|e| Error::Image(e.to_string()))?;
                bytes = encode_jpeg(&to_rgb8(&back)?, 100)?;
                header = parse_header(&bytes)?;
                resized = true;
            }
            let payload = pickle::dumps(dict);
            let out = replace_app15(&bytes, &header, &payload)?;
            dfl_core::atomic_write(&path, &out).map_err(|e| Error::io(&path, e))?;
            Ok(if resized {
                Outcome::Resized
            } else {
                Outcome::Written
            })
        })();
        match result {
            Ok(outcome) => {
                report.restored += 1;
                report.resized += usize::from(outcome == Outcome::Resized);
                report.unchanged += usize::from(outcome == Outcome::Unchanged);
            }
            Err(e) => report.skipped.push(Skipped {
                reason: reason(&e),
                path,
            }),
        }
    }
    progress.finish();
    if opts.delete_meta && report.skipped.is_empty() {
        std::fs::remove_file(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        report.meta_deleted = true;
    }
    Ok(report)
}
