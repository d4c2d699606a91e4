//! `faceset recover-names`: give aligned faces back the names the extractor gave them
//! (`<frame stem>_<n>.jpg`), e.g. after a sort renamed them to `00000.jpg`...

use super::{Skipped, file_name, reason};
use crate::{Error, list_aligned, read_meta};
use dfl_core::Progress;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What [`recover_names`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverReport {
    /// Files renamed (files already carrying their name are not counted).
    pub renamed: usize,
    /// Files left alone (no metadata or no `source_filename`).
    pub skipped: Vec<Skipped>,
}

/// Renames every aligned face in `dir` to `<source_filename stem>_<n>.jpg`, `n` counting
/// 0, 1, 2... over the faces of the same source frame in name order (DFL's rule).
///
/// Unlike DFL, nothing is renamed if a target name is taken by a file outside the set, and
/// files without a source filename are left alone instead of aborting half-way. The rename
/// goes through temporary names (two phases) so that swaps within the set are safe.
pub fn recover_names(dir: &Path, progress: &dyn Progress) -> Result<RecoverReport, Error> {
    let files = list_aligned(dir)?;
    progress.start("reading", Some(files.len() as u64));
    let mut plan: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut skipped = Vec::new();
    let mut counters: HashMap<String, usize> = HashMap::new();
    for path in files {
        progress.inc(1);
        let src = match read_meta(&path) {
            Ok(m) => m.source_filename,
            Err(e) => {
                skipped.push(Skipped {
                    reason: reason(&e),
                    path,
                });
                continue;
            }
        };
        let Some(src) = src else {
            skipped.push(Skipped {
                path,
                reason: "no source_filename in the metadata".into(),
            });
            continue;
        };
        let stem = Path::new(&src)
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let Some(stem) = stem else {
            skipped.push(Skipped {
                path,
                reason: format!("source_filename '{src}' has no usable stem"),
            });
            continue;
        };
        let n = counters.entry(src.clone()).or_insert(0);
        let target = dir.join(format!("{stem}_{n}.jpg"));
        *n += 1;
        plan.push((path, target));
    }
    progress.finish();

    let sources: HashSet<&PathBuf> = plan.iter().map(|(s, _)| s).collect();
    let mut targets = HashSet::new();
    for (_, t) in &plan {
        if !targets.insert(t) {
            return Err(Error::Refused(format!(
                "two files would be renamed to {}",
                t.display()
            )));
        }
        if t.exists() && !sources.contains(t) {
            return Err(Error::Refused(format!(
                "{} exists and is not one of the renamed faces; nothing was renamed",
                t.display()
            )));
        }
    }
    let plan: Vec<_> = plan.into_iter().filter(|(s, t)| s != t).collect();
    let tmp_of = |p: &Path| -> Result<PathBuf, Error> {
        Ok(p.with_file_name(format!(".{}.recover-tmp", file_name(p)?)))
    };
    for (s, _) in &plan {
        let tmp = tmp_of(s)?;
        if tmp.exists() {
            return Err(Error::Refused(format!(
                "{} exists; remove it first",
                tmp.display()
            )));
        }
    }
    progress.start("renaming", Some(plan.len() as u64 * 2));
    for (s, _) in &plan {
        let tmp = tmp_of(s)?;
        std::fs::rename(s, &tmp).map_err(|e| Error::io(s, e))?;
        progress.inc(1);
    }
    for (s, t) in &plan {
        let tmp = tmp_of(s)?;
        std::fs::rename(&tmp, t).map_err(|e| Error::io(&tmp, e))?;
        progress.inc(1);
    }
    progress.finish();
    Ok(RecoverReport {
        renamed: plan.len(),
        skipped,
    })
}
