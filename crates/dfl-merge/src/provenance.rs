//! The provenance manifest of a merged-frames folder (`provenance.json`, also in the mask
//! folder): which tool made these frames from what, with which model and settings, and a
//! plain statement that they contain synthetic faces. `dfl video build` embeds it into the
//! video's own manifest and sets the container comment from its presence.

use crate::config::MergerConfig;
use crate::error::{MergeError, Result};
use crate::model::ModelInfo;
use serde::Serialize;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// File name of the manifest (the name `dfl video build` looks for).
pub const MANIFEST_FILE: &str = dfl_video::FRAMES_PROVENANCE;

/// The statement every manifest carries.
pub const NOTICE: &str = "These frames contain synthetic faces produced by a face-swap model \
(dfl-rs, a DeepFaceLab reimplementation). Publishing them requires the consent of the people \
shown and must not deceive viewers.";

/// Inputs of a merge.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// The dst frames folder.
    pub dst_frames: String,
    /// The dst aligned faces (folder or faceset.pak's folder).
    pub dst_aligned: String,
    /// Where the source identity comes from: the model, trained on the source faceset.
    pub source_identity: String,
}

/// Frame counts of a merge run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Frames in the input folder.
    pub frames: usize,
    /// Frames of this run's shard.
    pub in_shard: usize,
    /// Frames merged in this run.
    pub merged: usize,
    /// Frames without a face, copied.
    pub copied: usize,
    /// Frames skipped because an identical merge was already there.
    pub resumed: usize,
    /// Faces merged in this run.
    pub faces: usize,
}

/// The manifest written into merged-frames folders.
#[derive(Debug, Clone, Serialize)]
pub struct MergeManifest {
    /// Always `dfl-rs`.
    pub tool: &'static str,
    /// dfl-rs version.
    pub version: &'static str,
    /// Always `merge`.
    pub step: &'static str,
    /// UTC time of writing, RFC 3339.
    pub created_utc: String,
    /// Always true: merged frames carry synthetic faces.
    pub synthetic_faces: bool,
    /// [`NOTICE`].
    pub notice: &'static str,
    /// `in progress` while merging, `complete` when the run finished.
    pub status: &'static str,
    /// The face-swap model.
    pub model: ModelInfo,
    /// The XSeg model used for XSeg mask modes, if any.
    pub xseg_model: Option<String>,
    /// Inputs.
    pub inputs: Inputs,
    /// The merged frames folder.
    pub output: String,
    /// The masks folder, if written.
    pub mask_output: Option<String>,
    /// The config of frames without their own entry in the session store.
    pub config: MergerConfig,
    /// Frames with their own config in `merger_session.json`.
    pub frames_with_own_config: usize,
    /// `--shard i/n` of the run that wrote this.
    pub shard: String,
    /// Frame counts of that run.
    pub counts: Counts,
}

impl MergeManifest {
    /// Writes the manifest as pretty JSON into `dir`, atomically.
    pub fn write_into(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| MergeError::Invalid(format!("provenance: {e}")))?;
        bytes.push(b'\n');
        dfl_core::atomic_write(&path, &bytes).map_err(|e| MergeError::io(&path, e))
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_dates() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
