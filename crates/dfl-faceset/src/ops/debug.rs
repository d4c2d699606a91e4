//! `faceset debug`: aligned_debug-style pictures of aligned faces, to check landmarks and
//! crops at a glance.

use super::{Skipped, atomic_write_with, decode_rgb, encode_jpeg, file_name, reason};
use crate::draw::{self, Color};
use crate::{AlignedFace, Error, list_aligned};
use dfl_core::{Progress, Shard};
use dfl_geom::{FaceType, Pt, hull_mask, transform_mat, transform_points};
use image::RgbImage;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

const GREEN: Color = [0, 255, 0];
const BLUE: Color = [0, 0, 255];
const RED: Color = [255, 0, 0];

/// DFL's `draw_landmarks`: open polylines for brows, jaw and nose (27..35, closed back to
/// 30), closed ones for the eyes and mouth, small circles at every point (bigger on the jaw).
pub fn draw_landmarks(img: &mut RgbImage, lm: &[Pt], color: Color) {
    if lm.len() != 68 {
        return;
    }
    let mut nose: Vec<Pt> = lm[27..36].to_vec();
    nose.push(lm[30]);
    for part in [&lm[17..22], &lm[0..17], &lm[22..27], &nose[..]] {
        draw::polyline(img, part, false, color, 1.0);
    }
    for part in [&lm[36..42], &lm[42..48], &lm[48..68]] {
        draw::polyline(img, part, true, color, 1.0);
    }
    for p in &lm[17..68] {
        draw::circle(img, *p, 1.0, color);
    }
    for p in &lm[0..17] {
        draw::circle(img, *p, 2.0, color);
    }
}

/// Draws DFL's debug overlay on a decoded aligned face: hull darkened to half, landmarks in
/// green, the source detector rect (mapped into the face) in blue, and in red the crop
/// square of the face type recomputed from the landmarks plus DFL's "up" marker (it
/// coincides with the image border when the alignment is consistent). For mark_only faces
/// the FULL crop square is drawn, as DFL does.
pub fn draw_debug(img: &mut RgbImage, face: &AlignedFace) -> Result<(), Error> {
    let meta = &face.meta;
    let Some(lm) = &meta.landmarks else {
        return Err(Error::Metadata {
            key: "landmarks".into(),
            problem: "missing".into(),
        });
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    if let Ok(mask) = hull_mask(w, h, lm, meta.eyebrows_expand_mod_or_default()) {
        draw::darken(img, &mask, 0.5);
    }
    draw_landmarks(img, lm, GREEN);
    if let (Some(r), Some(m)) = (&meta.source_rect, &meta.image_to_face_mat) {
        let corners = [r[0], r[1], r[2], r[1], r[2], r[3], r[0], r[3]].map(|v| v as f64);
        let quad: Vec<Pt> = corners.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        if let Ok(q) = transform_points(&quad, m, false) {
            draw::polyline(img, &q, true, BLUE, 2.0);
        }
    }
    let t = match meta.face_type_or_default() {
        FaceType::MarkOnly => FaceType::Full,
        t => t,
    };
    let s = w as f64;
    if let Ok(m) = transform_mat(lm, s, t, 1.0) {
        let square = [
            [0.0, 0.0],
            [0.0, s - 1.0],
            [s - 1.0, s - 1.0],
            [s - 1.0, 0.0],
        ];
        let up = [
            [(s * 0.05).trunc(), 0.0],
            [(s * 0.1).trunc(), (s * 0.1).trunc()],
            [0.0, (s * 0.1).trunc()],
        ];
        for (pts, closed) in [(&square[..], true), (&up[..], true)] {
            if let Ok(q) = transform_points(pts, &m, true) {
                draw::polyline(img, &q, closed, RED, 2.0);
            }
        }
    }
    Ok(())
}

/// What [`debug_images`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugReport {
    /// Pictures written.
    pub written: usize,
    /// Files that could not be drawn.
    pub skipped: Vec<Skipped>,
}

/// Writes a debug picture (JPEG quality 50, as DFL) for every aligned face of `input` (this
/// `shard`'s share of them) into `output`, under the same file name. Runs in parallel.
pub fn debug_images(
    input: &Path,
    output: &Path,
    shard: Shard,
    progress: &dyn Progress,
) -> Result<DebugReport, Error> {
    if input.canonicalize().ok() == output.canonicalize().ok() && output.exists() {
        return Err(Error::Refused(
            "the output folder must differ from the input folder (debug pictures would replace the faces)".into(),
        ));
    }
    let files = shard.select(list_aligned(input)?);
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    progress.start("drawing", Some(files.len() as u64));
    let results: Vec<Result<(), Skipped>> = files
        .par_iter()
        .map(|path| {
            let r = (|| -> Result<(), Error> {
                let face = AlignedFace::load(path)?;
                let mut img = decode_rgb(&face.bytes).map_err(|e| e.at(path))?;
                draw_debug(&mut img, &face).map_err(|e| e.at(path))?;
                let bytes = encode_jpeg(&img, 50)?;
                let target = output.join(file_name(path)?);
                atomic_write_with(&target, |w| {
                    w.write_all(&bytes).map_err(|e| Error::io(&target, e))
                })
            })();
            progress.inc(1);
            r.map_err(|e| Skipped {
                path: path.clone(),
                reason: reason(&e),
            })
        })
        .collect();
    progress.finish();
    let mut report = DebugReport {
        written: 0,
        skipped: Vec::new(),
    };
    for r in results {
        match r {
            Ok(()) => report.written += 1,
            Err(s) => report.skipped.push(s),
        }
    }
    Ok(report)
}
