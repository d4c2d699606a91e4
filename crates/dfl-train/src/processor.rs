//! DFL's `SampleProcessor` for SAEHD and Quick96 (§6.3): from one decoded aligned face and
//! one per-sample seed, the warped input, the target, the full-face mask and the eyes+mouth
//! mask, all sharing the same random geometry.
//!
//! Per output, as DFL: the face is brought to the model's face type (`get_transform_mat`,
//! cubic/replicate for images, linear/constant for masks) or resized to the resolution
//! (cubic images, linear masks); src images get the colour transfer towards a dst partner
//! and (warped input only) the random HSV shift; then grid warp (warped input only), random
//! affine and flip; images are clipped to [0, 1]. Masks come from the applied XSeg mask when
//! the file has one, else from the landmark hull; the eyes+mouth mask is the blurred eye and
//! mouth hulls times the binarised face mask, divided by its maximum after the warp.
//!
//! Differences from DFL, on purpose:
//! - The face-type conversion, colour transfer and masks are computed once per sample and
//!   shared by its outputs (DFL recomputes them per output). For rct/lct/mkl the results are
//!   identical; for the random idt/sot, DFL's warped input and target get two different
//!   random transfers, here they get the same one, so the target matches the input colours.
//! - The eye/mouth blur only visits the region the dilated hulls can reach (the mask is zero
//!   elsewhere): the same values as blurring the whole image, a fraction of the work.

use crate::error::{Result, TrainError};
use crate::faceset::{LoadedFace, SampleMeta};
use crate::warp::{WarpParams, WarpRanges};
use dfl_geom::FaceType;
use dfl_image::{Border, Image, Interp, StructuringElement, TransferMode};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What one side's samples look like (DFL's `output_sample_types` of SAEHD/Quick96).
#[derive(Debug, Clone, PartialEq)]
pub struct SideSpec {
    /// Model resolution.
    pub resolution: usize,
    /// Model face type.
    pub face_type: FaceType,
    /// Grid warp of the input (`random_warp`).
    pub random_warp: bool,
    /// Random horizontal flip (`random_src_flip` / `random_dst_flip`).
    pub random_flip: bool,
    /// Random affine ranges.
    pub ranges: WarpRanges,
    /// Colour transfer of the images towards a dst partner (src side only).
    pub ct_mode: Option<TransferMode>,
    /// Random HSV shift of the input (`random_hsv_power`, src side only).
    pub hsv_power: f32,
    /// Whether the eyes+mouth mask is needed.
    pub eyes_mouth: bool,
}

/// The outputs of one sample, HWC `f32`.
#[derive(Debug, Clone)]
pub struct ProcessedSample {
    /// Network input: grid-warped (if on), transformed, flipped, colour-adjusted image.
    pub warped: Image,
    /// Loss target: same transform and flip, no grid warp.
    pub target: Image,
    /// Full-face mask (1 channel), aligned with `target`.
    pub mask: Image,
    /// Eyes+mouth mask (1 channel), when asked for.
    pub eyes_mouth: Option<Image>,
}

fn img_err(path: &str) -> impl Fn(dfl_image::ImageError) -> TrainError + '_ {
    move |e| TrainError::sample(path, e)
}

/// A dfl-geom mask as a one-channel float image.
fn mask_image(m: &dfl_geom::Mask) -> Result<Image> {
    Image::new(
        m.width,
        m.height,
        1,
        m.data.iter().map(|&v| f32::from(v)).collect(),
    )
    .map_err(|e| TrainError::Pipeline(format!("mask: {e}")))
}

/// The full-face mask at the aligned image size: the XSeg mask (resized cubic, clipped) when
/// present, else DFL's landmark hull with the eyebrow push.
pub fn full_face_mask(meta: &SampleMeta, face: &LoadedFace) -> Result<Image> {
    let (w, h) = (face.image.width(), face.image.height());
    match &face.xseg {
        Some(x) => {
            let mut m = if (x.width(), x.height()) != (w, h) {
                dfl_image::resize(x, w, h, Interp::Cubic).map_err(img_err(&meta.name))?
            } else {
                x.clone()
            };
            m.clip(0.0, 1.0);
            Ok(m)
        }
        None => {
            let m = dfl_geom::hull_mask(
                w,
                h,
                &meta.landmarks_f64(),
                f64::from(meta.eyebrows_expand_mod),
            )
            .map_err(|e| TrainError::sample(&meta.name, e))?;
            mask_image(&m)
        }
    }
}

/// `cv2.GaussianBlur` of a mask that is zero outside `bbox` (x0, y0, x1, y1 inclusive),
/// computing only the rows and columns the kernel can reach from it. Equal to blurring the
/// whole image (reflect-101 borders), because every other pixel stays 0: falls back to the
/// whole image when the reach touches a border.
fn blur_sparse(m: &Image, bbox: Option<[usize; 4]>, ksize: usize) -> Result<Image> {
    let err = |e| TrainError::Pipeline(format!("eye/mouth mask blur: {e}"));
    let (w, h) = (m.width(), m.height());
    let Some([x0, y0, x1, y1]) = bbox else {
        return Ok(m.clone());
    };
    let r = ksize / 2;
    // Pad by two radii: the reach of the blur plus the reflected border of the crop.
    let pad = 2 * r + 1;
    if x0 < pad || y0 < pad || x1 + pad >= w || y1 + pad >= h {
        return dfl_image::gaussian_blur(m, ksize, 0.0).map_err(err);
    }
    let (cx, cy) = (x0 - pad, y0 - pad);
    let (cw, ch) = (x1 + pad + 1 - cx, y1 + pad + 1 - cy);
    let crop = m.crop(cx, cy, cw, ch).map_err(err)?;
    let blurred = dfl_image::gaussian_blur(&crop, ksize, 0.0).map_err(err)?;
    let mut out = Image::zeros(w, h, 1).map_err(err)?;
    // The blur reaches r pixels from the content; the crop edge (2r + 1 away) is all zeros
    // and so is its reflection, so the inner part is exact.
    let inner = blurred.crop(r, r, cw - 2 * r, ch - 2 * r).map_err(err)?;
    out.paste(&inner, cx + r, cy + r).map_err(err)?;
    Ok(out)
}

/// Bounding box (inclusive) of the non-zero pixels of a dfl-geom mask.
fn mask_bbox(m: &dfl_geom::Mask) -> Option<[usize; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for y in 0..m.height {
        for x in 0..m.width {
            if m.data[y * m.width + x] != 0 {
                b = Some(match b {
                    None => [x, y, x, y],
                    Some([a, c, d, e]) => [a.min(x), c.min(y), d.max(x), e.max(y)],
                });
            }
        }
    }
    b
}

/// DFL's eye mask or mouth mask: hulls dilated with an `H/32` ellipse, then blurred with an
/// odd `H/16` Gaussian (sigma from the size).
fn dilate_blur(hull: &dfl_geom::Mask, name: &str) -> Result<Image> {
    let (dil, blur) = dfl_geom::mask::eye_mouth_dilate_blur(hull.height);
    let img = mask_image(hull)?;
    let dilated = if dil > 0 {
        let el = StructuringElement::ellipse(dil, dil).map_err(img_err(name))?;
        dfl_image::dilate(&img, &el, 1).map_err(img_err(name))?
    } else {
        img
    };
    let bbox = mask_bbox(hull).map(|[x0, y0, x1, y1]| {
        [
            x0.saturating_sub(dil),
            y0.saturating_sub(dil),
            x1 + dil,
            y1 + dil,
        ]
    });
    blur_sparse(&dilated, bbox, blur)
}

/// DFL's eyes+mouth mask at the aligned image size: `clip(eyes + mouth, 0, 1)` times the
/// full-face mask with every non-zero value set to 1.
pub fn eyes_mouth_mask(meta: &SampleMeta, full: &Image) -> Result<Image> {
    let (w, h) = (full.width(), full.height());
    let lm = meta.landmarks_f64();
    let geom = |e: dfl_geom::GeomError| TrainError::sample(&meta.name, e);
    let eyes = dilate_blur(
        &dfl_geom::mask::eyes_hull_mask(w, h, &lm).map_err(geom)?,
        &meta.name,
    )?;
    let mouth = dilate_blur(
        &dfl_geom::mask::mouth_hull_mask(w, h, &lm).map_err(geom)?,
        &meta.name,
    )?;
    let data = eyes
        .data()
        .iter()
        .zip(mouth.data())
        .zip(full.data())
        .map(|((e, m), f)| {
            let em = (e + m).clamp(0.0, 1.0);
            if *f != 0.0 { em } else { 0.0 }
        })
        .collect();
    Image::new(w, h, 1, data).map_err(img_err(&meta.name))
}

/// Brings an aligned-size image to the model's face type and resolution: the face-type
/// crop when the types differ, else a plain resize (if needed).
fn to_model_frame(
    img: &Image,
    meta: &SampleMeta,
    spec: &SideSpec,
    interp: Interp,
    border: Border,
) -> Result<Image> {
    let r = spec.resolution;
    if spec.face_type != meta.face_type {
        let m = dfl_geom::transform_mat(&meta.landmarks_f64(), r as f64, spec.face_type, 1.0)
            .map_err(|e| TrainError::sample(&meta.name, e))?;
        let m = [
            [m[(0, 0)], m[(0, 1)], m[(0, 2)]],
            [m[(1, 0)], m[(1, 1)], m[(1, 2)]],
        ];
        dfl_image::warp_affine(img, &m, r, r, interp, border).map_err(img_err(&meta.name))
    } else if (img.width(), img.height()) != (r, r) {
        dfl_image::resize(img, r, r, interp).map_err(img_err(&meta.name))
    } else {
        Ok(img.clone())
    }
}

/// DFL's random HSV shift: hue by `randint(-n, n)` degrees with `n = max(1, int(180 a))`,
/// saturation and value by `(U - 0.5) a`, clipped.
fn random_hsv(img: &Image, amount: f32, rng: &mut StdRng, name: &str) -> Result<Image> {
    let mut hsv = dfl_image::bgr_to_hsv(img).map_err(img_err(name))?;
    let n = ((360.0 * amount * 0.5) as i32).max(1);
    let dh = rng.random_range(-n..=n) as f32;
    let ds = (rng.random::<f32>() - 0.5) * amount;
    let dv = (rng.random::<f32>() - 0.5) * amount;
    for p in hsv.data_mut().chunks_exact_mut(3) {
        p[0] = (p[0] + dh).rem_euclid(360.0);
        p[1] = (p[1] + ds).clamp(0.0, 1.0);
        p[2] = (p[2] + dv).clamp(0.0, 1.0);
    }
    let mut out = dfl_image::hsv_to_bgr(&hsv).map_err(img_err(name))?;
    out.clip(0.0, 1.0);
    Ok(out)
}

/// Seeds of the per-output random streams derived from the sample seed (the grid/affine
/// streams use the seed itself, see [`WarpParams::generate`]).
const CT_STREAM: u64 = 0x0C7;
const HSV_STREAM: u64 = 0x45F;

/// All outputs of one sample. `ct_partner` is the decoded dst partner image when
/// `spec.ct_mode` is set.
pub fn process_sample(
    meta: &SampleMeta,
    face: &LoadedFace,
    spec: &SideSpec,
    seed: u64,
    ct_partner: Option<&Image>,
) -> Result<ProcessedSample> {
    let name = meta.name.as_str();
    let r = spec.resolution;
    let params = WarpParams::generate(r, spec.random_flip, &spec.ranges, seed)?;

    let mut base = to_model_frame(&face.image, meta, spec, Interp::Cubic, Border::Replicate)?;
    if let (Some(mode), Some(partner)) = (spec.ct_mode, ct_partner) {
        let partner = dfl_image::resize(partner, r, r, Interp::Linear).map_err(img_err(name))?;
        let mut rng = StdRng::seed_from_u64(seed ^ CT_STREAM);
        base = dfl_image::color_transfer(mode, &base, &partner, &mut rng).map_err(img_err(name))?;
    }
    let input = if spec.hsv_power > 0.0 {
        let mut rng = StdRng::seed_from_u64(seed ^ HSV_STREAM);
        random_hsv(&base, spec.hsv_power, &mut rng, name)?
    } else {
        base.clone()
    };
    let mut warped = params.apply(&input, spec.random_warp, true, true, true, Interp::Cubic)?;
    warped.clip(0.0, 1.0);
    let mut target = params.apply(&base, false, true, true, true, Interp::Cubic)?;
    target.clip(0.0, 1.0);

    let full = full_face_mask(meta, face)?;
    let em_full = if spec.eyes_mouth {
        Some(eyes_mouth_mask(meta, &full)?)
    } else {
        None
    };
    let mask_out = |m: &Image| -> Result<Image> {
        let m = to_model_frame(m, meta, spec, Interp::Linear, Border::Constant(0.0))?;
        params.apply(&m, false, true, true, false, Interp::Linear)
    };
    let mask = mask_out(&full)?;
    let eyes_mouth = match em_full {
        Some(em) => {
            let mut em = mask_out(&em)?;
            let max = em.data().iter().copied().fold(0.0f32, f32::max);
            if max > 0.0 {
                em.map_inplace(|v| v / max);
            }
            Some(em)
        }
        None => None,
    };
    Ok(ProcessedSample {
        warped,
        target,
        mask,
        eyes_mouth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_blur_equals_full_blur() {
        let mut m = dfl_geom::Mask::new(120, 100);
        dfl_geom::mask::fill_convex_poly(&mut m, &[[40, 30], [70, 35], [60, 60], [45, 55]], 1);
        let img = mask_image(&m).unwrap();
        let bbox = mask_bbox(&m);
        let fast = blur_sparse(&img, bbox, 7).unwrap();
        let full = dfl_image::gaussian_blur(&img, 7, 0.0).unwrap();
        let worst = fast
            .data()
            .iter()
            .zip(full.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{worst}");
        // Near the border it falls back to the full blur.
        let mut e = dfl_geom::Mask::new(40, 40);
        dfl_geom::mask::fill_convex_poly(&mut e, &[[0, 0], [5, 0], [5, 5]], 1);
        let img = mask_image(&e).unwrap();
        let a = blur_sparse(&img, mask_bbox(&e), 9).unwrap();
        let b = dfl_image::gaussian_blur(&img, 9, 0.0).unwrap();
        assert_eq!(a.data(), b.data());
    }
}
