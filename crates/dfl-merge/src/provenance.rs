//! The provenance manifest of a merged-frames folder (`provenance.json`, also in the mask
//! folder): which tool made these frames from what, with which model and settings, and a
//! plain statement that they contain synthetic faces. `dfl video build` embeds it into the
//! video's own manifest and sets the container comment from its presence.

use crate::config::MergerConfig;
use crate::error::{MergeError, Result};
use crate::model::ModelInfo;
use serde::Serialize;
use std::path::Path;

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
