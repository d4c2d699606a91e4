//! The data side of DFL's manual fix ("5) data_dst faceset extract + manual fix"): which frames
//! got no face, and landmarks + an aligned face for a rectangle the user draws. The later UI
//! drives these; the CLI exposes them as `dfl extract --manual-fix`.

use crate::extract::{ExtractError, ExtractOptions, read_state, state_files, write_state_file};
use crate::find::{FaceFound, Models, refine};
use crate::frame::load_frame;
use crate::output::aligned_files;
use crate::prep::Crop;
use dfl_core::atomic_write;
use std::path::Path;

/// Frames recorded with no face by any shard's extraction state in `output`, sorted.
pub fn frames_without_faces(output: &Path) -> Result<Vec<String>, ExtractError> {
    let mut out = Vec::new();
    for p in state_files(output) {
        let st = read_state(&p)?;
        out.extend(
            st.frames
                .into_iter()
                .filter(|(_, n)| *n == 0)
                .map(|(k, _)| k),
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Landmarks for a face inside `rect` (`[l, t, r, b]`, frame pixels) that the detector
/// missed: the landmark net on the rectangle's square, then the accurate pass.
pub fn face_in_rect(
    models: &Models,
    frame: &crate::Frame,
    rect: [f32; 4],
    samples: usize,
) -> FaceFound {
    let side = (rect[2] - rect[0]).max(rect[3] - rect[1]).max(1.0);
    let crop = Crop::upright([(rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0], side);
    let view = frame.view();
    let first = models.landmarker.landmarks(&[(view, crop)]);
    let landmarks = refine(&models.landmarker, view, &first, samples)
        .into_iter()
        .next()
        .unwrap_or([[0.0; 2]; 68]);
    FaceFound {
        rect,
        score: 1.0,
        landmarks,
    }
}

/// Adds the face inside `rect` of frame `input/frame_name` to `output` as the next
/// `<stem>_<k>.jpg` (no sanity filter, as DFL's manual mode) and records it in the extraction
/// state. Returns the written file name.
pub fn add_manual_face(
    models: &Models,
    input: &Path,
    frame_name: &str,
    rect: [f32; 4],
    output: &Path,
    opts: &ExtractOptions,
) -> Result<String, ExtractError> {
    let path = input.join(frame_name);
    let frame = load_frame(&path).map_err(|e| ExtractError::State {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let face = face_in_rect(models, &frame, rect, opts.samples);
    let stem = Path::new(frame_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut k = 0;
    while output.join(format!("{stem}_{k}.jpg")).exists() {
        k += 1;
    }
    let crop = crate::output::CropOptions {
        face_type: opts.face_type,
        size: opts.image_size,
        jpeg_quality: opts.jpeg_quality,
    };
    let files = aligned_files(&frame, frame_name, &[face], &crop, k, false)?;
    let Some(file) = files.into_iter().next() else {
        return Err(ExtractError::State {
            path,
            reason: "the landmarks found in the rectangle do not define a face crop".into(),
        });
    };
    let p = output.join(&file.name);
    atomic_write(&p, &file.bytes).map_err(|source| ExtractError::Io { path: p, source })?;
    for sp in state_files(output) {
        let mut st = read_state(&sp)?;
        if let Some(n) = st.frames.get_mut(frame_name) {
            *n += 1;
            write_state_file(&sp, &st)?;
        }
    }
    Ok(file.name)
}
