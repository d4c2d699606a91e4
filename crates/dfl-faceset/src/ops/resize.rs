//! `faceset resize`: DFL's faceset resizer (`facesettool resize`), keeping every piece of
//! metadata consistent with the new image.

use super::{
    Skipped, atomic_write_with, decode_rgb, encode_jpeg, file_name, reason, to_float, to_rgb8,
};
use crate::xseg::{GrayMask, XsegMask};
use crate::{AlignedFace, Error, FaceMeta, embed_meta, list_aligned};
use dfl_core::{Progress, Shard};
use dfl_geom::{Affine, FaceType, Pt, transform_mat, transform_points};
use dfl_image::{Border, Interp};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// Options of [`resize_faceset`].
#[derive(Debug, Clone, Copy)]
pub struct ResizeOptions {
    /// New side length in pixels.
    pub size: u32,
    /// `None`: keep each face's type (plain resize). `Some(t)`: re-crop to face type `t`.
    pub face_type: Option<FaceType>,
    /// Replace files that already exist in the output folder.
    pub overwrite: bool,
    /// This process's share of the files (`--shard i/n`; [`Shard::ALL`] for all).
    pub shard: Shard,
}

/// What [`resize_faceset`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeReport {
    /// Files written.
    pub written: usize,
    /// Files that could not be resized.
    pub skipped: Vec<Skipped>,
}

fn to_dfl_image_affine(m: &Affine) -> dfl_image::Affine {
    [
        [m[(0, 0)], m[(0, 1)], m[(0, 2)]],
        [m[(1, 0)], m[(1, 1)], m[(1, 2)]],
    ]
}

fn scale_points(pts: &[Pt], k: f64) -> Vec<Pt> {
    pts.iter().map(|p| [p[0] * k, p[1] * k]).collect()
}

/// Resizes (or re-crops) one aligned face; returns the new file's bytes.
pub fn resize_face(face: &AlignedFace, opts: &ResizeOptions) -> Result<Vec<u8>, Error> {
    let (w, h) = (face.header.width, face.header.height);
    if w != h {
        return Err(Error::Refused(format!(
            "the image is {w}x{h}; DFL's resizer needs square faces"
        )));
    }
    if opts.size == 0 {
        return Err(Error::Refused("size must be at least 1".into()));
    }
    let size = opts.size as usize;
    let img = to_float(&decode_rgb(&face.bytes)?)?;
    let mut meta: FaceMeta = face.meta.clone();
    let landmarks = meta.landmarks.clone().ok_or_else(|| Error::Metadata {
        key: "landmarks".into(),
        problem: "missing".into(),
    })?;
    let img_err = |e: dfl_image::ImageError| Error::Image(e.to_string());
    let new_type = opts.face_type.unwrap_or(meta.face_type_or_default());
    let out = match opts.face_type {
        None => {
            // Same crop, new size: Lanczos4 resize, scale the aligned-space data.
            let k = size as f64 / f64::from(w);
            let out = dfl_image::resize(&img, size, size, Interp::Lanczos4).map_err(img_err)?;
            meta.landmarks = Some(scale_points(&landmarks, k));
            if let Some(polys) = &mut meta.seg_ie_polys {
                for p in polys.iter_mut() {
                    for q in p.pts.iter_mut() {
                        *q = [(f64::from(q[0]) * k) as f32, (f64::from(q[1]) * k) as f32];
                    }
                }
            }
            out
        }
        Some(t) => {
            // Re-crop from the aligned image (DFL does not go back to the frame).
            let m = transform_mat(&landmarks, size as f64, t, 1.0)?;
            let out = dfl_image::warp_affine(
                &img,
                &to_dfl_image_affine(&m),
                size,
                size,
                Interp::Lanczos4,
                Border::Constant(0.0),
            )
            .map_err(img_err)?;
            if let Some(mask) = &meta.xseg_mask {
                meta.xseg_mask = Some(recrop_mask(mask, &landmarks, f64::from(w), t)?);
            }
            if let Some(polys) = &mut meta.seg_ie_polys {
                for p in polys.iter_mut() {
                    let pts: Vec<Pt> = p
                        .pts
                        .iter()
                        .map(|q| [f64::from(q[0]), f64::from(q[1])])
                        .collect();
                    p.pts = transform_points(&pts, &m, false)?
                        .into_iter()
                        .map(|q| [q[0] as f32, q[1] as f32])
                        .collect();
                }
            }
            meta.landmarks = Some(transform_points(&landmarks, &m, false)?);
            meta.face_type = Some(t);
            out
        }
    };
    // The frame → face matrix follows from the source landmarks, as DFL recomputes it.
    if meta.image_to_face_mat.is_some()
        && let Some(src) = &meta.source_landmarks
    {
        meta.image_to_face_mat = Some(transform_mat(src, size as f64, new_type, 1.0)?);
    }
    let jpeg = encode_jpeg(&to_rgb8(&out)?, 100)?;
    embed_meta(&jpeg, &meta)
}

/// Re-crops an XSeg mask to face type `t`. The mask has its own resolution (256 when XSeg
/// apply wrote it): landmarks are scaled from the image size to the mask size, the mask is
/// warped (Lanczos4) at its own size and binarised at 0.5, as DFL does. (DFL assumes the mask
/// is 256 px; scaling by the real mask width is the same for those and right for others.)
fn recrop_mask(
    mask: &XsegMask,
    landmarks: &[Pt],
    image_side: f64,
    t: FaceType,
) -> Result<XsegMask, Error> {
    let g = mask.decode()?;
    let res = g.width as usize;
    if g.width != g.height {
        return Err(Error::Metadata {
            key: "xseg_mask".into(),
            problem: format!("mask is {}x{}, expected square", g.width, g.height),
        });
    }
    let lm = scale_points(landmarks, res as f64 / image_side);
    let m = transform_mat(&lm, res as f64, t, 1.0)?;
    let src =
        dfl_image::Image::from_u8(res, res, 1, &g.data).map_err(|e| Error::Image(e.to_string()))?;
    let warped = dfl_image::warp_affine(
        &src,
        &to_dfl_image_affine(&m),
        res,
        res,
        Interp::Lanczos4,
        Border::Constant(0.0),
    )
    .map_err(|e| Error::Image(e.to_string()))?;
    let data = warped
        .data()
        .iter()
        .map(|&v| if v >= 0.5 { 255 } else { 0 })
        .collect();
    XsegMask::encode(&GrayMask {
        width: g.width,
        height: g.height,
        data,
    })
}

/// Resizes every aligned face of `input` into `output` (same file names). Files that fail
/// are reported and skipped; the others are written crash-safely. Runs in parallel.
pub fn resize_faceset(
    input: &Path,
    output: &Path,
    opts: ResizeOptions,
    progress: &dyn Progress,
) -> Result<ResizeReport, Error> {
    if input.canonicalize().ok() == output.canonicalize().ok() && output.exists() {
        return Err(Error::Refused(
            "the output folder must differ from the input folder".into(),
        ));
    }
    let files = opts.shard.select(list_aligned(input)?);
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    if !opts.overwrite {
        for f in &files {
            let target = output.join(file_name(f)?);
            if target.exists() {
                return Err(Error::Refused(format!(
                    "{} exists (pass --overwrite to replace files in the output folder)",
                    target.display()
                )));
            }
        }
    }
    progress.start("resizing", Some(files.len() as u64));
    let results: Vec<Result<(), Skipped>> = files
        .par_iter()
        .map(|path| {
            let r = (|| -> Result<(), Error> {
                let face = AlignedFace::load(path)?;
                let bytes = resize_face(&face, &opts).map_err(|e| e.at(path))?;
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
    let mut report = ResizeReport {
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
