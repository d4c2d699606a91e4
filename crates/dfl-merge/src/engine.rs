//! The per-face merge of DFL's `MergeMaskedFace` (design notes §7.3) and the per-frame
//! combination of `MergeMasked` (§7.4), step by step.
//!
//! A face is merged in three parts so a batch driver can run the network once for many faces:
//! [`prepare_face`] cuts the dst face out of the frame, the model predicts (see
//! [`crate::model`]), and [`merge_face`] puts the prediction back. [`combine`] joins the faces
//! of one frame.
//!
//! Fast path: every frame-sized step of DFL (mask warp, paste, blend, seamless clone,
//! post-processing) is computed only inside the face's region of interest, the bounding box
//! of the face squares mapped into the frame plus the interpolation reach. Outside it DFL's
//! result equals the frame exactly (the frame mask is 0 there), so nothing is lost;
//! [`Region::FullFrame`] runs the same code on the whole frame as the plain reference, and a
//! test checks that both agree. Settings that DFL applies to the whole frame (denoise,
//! bicubic degrade, colour degrade) use the whole frame.
//!
//! Decisions where DFL is undefined or buggy (documented at each step):
//! - DFL pastes with `BORDER_TRANSPARENT` into an uninitialised buffer, so pixels outside the
//!   predicted square hold whatever memory held. Here the paste border is 0 (those pixels
//!   have a zero mask anyway); the post-processing paste keeps the frame pixel where its
//!   source lies outside the face square (what "transparent" means), which matters only when
//!   `output_face_scale < 0` grows the mask beyond that square.
//! - `raw-rgb`'s warped all-ones mask is clipped to [0, 1] (bicubic overshoots at its edge).
//! - XSeg masks resized to the face size, and raw modes' working mask, are clipped to [0, 1]
//!   (DFL leaves the bicubic overshoot, which wraps around in raw-predict's 8-bit mask).

use crate::config::{ColorTransfer, MaskMode, MergerConfig, Mode};
use crate::error::{MergeError, Result};
use dfl_geom::{FaceType, Pt};
use dfl_image::{
    Affine, Border, Image, Interp, MaskStats, SotParams, StructuringElement, apply_mask,
    bicubic_degrade, blursharpen, clone_center, color_degrade, denoise, dilate, erode,
    gaussian_blur, hist_match, idt, invert_affine, lct, linear_motion_blur, mix, mkl, rct, resize,
    seamless_clone, sot, warp_affine, warp_affine_inverse,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Side of XSeg's input and output masks.
pub const XSEG_SIZE: usize = 256;

/// DFL's noise floor for masks: values below one 8-bit step are zeroed.
const MASK_FLOOR: f32 = 1.0 / 255.0;

/// What the model works on: its face size `R` and face type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceSpec {
    /// Model resolution `R` (the predicted square's side).
    pub resolution: usize,
    /// Face type the model was trained on (decides the crop).
    pub face_type: FaceType,
}

/// A dst face cut out of its frame, ready for the model.
#[derive(Debug, Clone)]
pub struct PreparedFace {
    /// The face's 68 landmarks in frame pixels.
    pub landmarks: Vec<Pt>,
    /// `clip(warp(F, M_face, R), 0, 1)`, bicubic: the model's input (R x R x 3, BGR).
    pub dst_face: Image,
}

/// What the networks said about one face, every image at the model resolution `R`.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The swapped face, R x R x 3 BGR in [0, 1].
    pub face: Image,
    /// Learned mask of the predicted face (R x R x 1, in [0, 1]; only when a mask mode needs
    /// it: each learned mask is a mask decoder's work).
    pub prd_mask: Option<Image>,
    /// Learned mask of the dst face (R x R x 1, in [0, 1]; only when a mask mode needs it).
    pub dst_mask: Option<Image>,
    /// XSeg mask of the predicted face, resized to R (only when a mask mode needs it).
    pub xseg_prd: Option<Image>,
    /// XSeg mask of the dst face, resized to R (only when a mask mode needs it).
    pub xseg_dst: Option<Image>,
}

/// The face's motion between its neighbouring frames (for motion blur).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// Length of the face centre's displacement from the previous to the next frame, pixels.
    pub power: f64,
    /// Its direction, degrees (DFL's `-atan2(y, x)`).
    pub deg: f64,
}

/// Where frame-sized steps are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Only the face's region of interest (the fast path).
    FaceRoi,
    /// The whole frame, as DFL does (the plain reference).
    FullFrame,
}

/// One merged face inside its frame: the frame with this face merged equals the frame except
/// inside the rectangle at (`x`, `y`) of `img`'s size, where it is `img`; the merge mask is
/// `mask` there and 0 elsewhere.
#[derive(Debug, Clone)]
pub struct FramePatch {
    /// Left edge in the frame.
    pub x: usize,
    /// Top edge in the frame.
    pub y: usize,
    /// The merged pixels of the rectangle (BGR).
    pub img: Image,
    /// The merge mask of the rectangle (1 channel, in [0, 1]).
    pub mask: Image,
}

/// The result of merging one face.
#[derive(Debug, Clone)]
pub enum FaceResult {
    /// A face merged into the frame.
    Frame(FramePatch),
    /// `raw-predict`: the predicted face itself and its working mask (R x R).
    Raw {
        /// Predicted face (after colour handling none: DFL outputs it as predicted).
        face: Image,
        /// Working mask at R x R.
        mask: Image,
    },
}

/// A merged frame: the picture and the merge mask, both in [0, 1].
#[derive(Debug, Clone)]
pub struct Merged {
    /// BGR image (frame size, or R x R in raw-predict mode).
    pub image: Image,
    /// 1-channel merge mask of the same size.
    pub mask: Image,
}

fn to_affine(m: &dfl_geom::Affine) -> Affine {
    [
        [m[(0, 0)], m[(0, 1)], m[(0, 2)]],
        [m[(1, 0)], m[(1, 1)], m[(1, 2)]],
    ]
}

/// DFL's `get_transform_mat(landmarks, size, face_type, scale)` as a dfl-image matrix.
fn face_mat(lm: &[Pt], size: usize, face_type: FaceType, scale: f64) -> Result<Affine> {
    Ok(to_affine(&dfl_geom::transform_mat(
        lm,
        size as f64,
        face_type,
        scale,
    )?))
}

/// A frame→face matrix re-expressed for a crop whose top-left corner is (`ox`, `oy`).
fn shifted(m: &Affine, ox: usize, oy: usize) -> Affine {
    let (ox, oy) = (ox as f64, oy as f64);
    [
        [m[0][0], m[0][1], m[0][2] + m[0][0] * ox + m[0][1] * oy],
        [m[1][0], m[1][1], m[1][2] + m[1][0] * ox + m[1][1] * oy],
    ]
}

/// Cuts the dst face for the model: `clip(warp(F, M_face(R), R), 0, 1)` with bicubic
/// interpolation and a zero border (DFL's `dst_face_bgr`; its resize to the model input is
/// the identity).
pub fn prepare_face(frame: &Image, landmarks: &[Pt], spec: FaceSpec) -> Result<PreparedFace> {
    let r = spec.resolution;
    let m = face_mat(landmarks, r, spec.face_type, 1.0)?;
    let mut dst_face = warp_affine(frame, &m, r, r, Interp::Cubic, Border::Constant(0.0))?;
    dst_face.clip(0.0, 1.0);
    Ok(PreparedFace {
        landmarks: landmarks.to_vec(),
        dst_face,
    })
}

/// XSeg's input for the dst face: the frame warped (bicubic) to a 256 crop of the model's
/// face type (DFL uses the model's face type here, not the XSeg model's).
pub fn xseg_dst_input(frame: &Image, landmarks: &[Pt], spec: FaceSpec) -> Result<Image> {
    let m = face_mat(landmarks, XSEG_SIZE, spec.face_type, 1.0)?;
    Ok(warp_affine(
        frame,
        &m,
        XSEG_SIZE,
        XSEG_SIZE,
        Interp::Cubic,
        Border::Constant(0.0),
    )?)
}

/// XSeg's input for the predicted face: the face resized (bicubic) to 256.
pub fn xseg_prd_input(predicted_face: &Image) -> Result<Image> {
    Ok(resize(predicted_face, XSEG_SIZE, XSEG_SIZE, Interp::Cubic)?)
}

/// An XSeg output (256 x 256) resized to the model resolution (bicubic), clipped to [0, 1].
pub fn xseg_to_face_size(mask: &Image, resolution: usize) -> Result<Image> {
    let mut m = resize(mask, resolution, resolution, Interp::Cubic)?;
    m.clip(0.0, 1.0);
    Ok(m)
}

/// A rectangle of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Roi {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
}

/// The frame rectangle outside which every face-square warp of `mats` reads or writes
/// nothing: each `size x size` square, grown by 3 face pixels (bicubic reach), mapped into the
/// frame, bounded, grown by 3 frame pixels (bicubic reach on the frame side), clipped.
fn face_roi(mats: &[(&Affine, usize)], w: usize, h: usize) -> Result<Roi> {
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for (m, s) in mats {
        let inv = invert_affine(m)?;
        let s = *s as f64;
        for (u, v) in [
            (-3.0, -3.0),
            (s + 3.0, -3.0),
            (s + 3.0, s + 3.0),
            (-3.0, s + 3.0),
        ] {
            let px = inv[0][0] * u + inv[0][1] * v + inv[0][2];
            let py = inv[1][0] * u + inv[1][1] * v + inv[1][2];
            x0 = x0.min(px);
            y0 = y0.min(py);
            x1 = x1.max(px);
            y1 = y1.max(py);
        }
    }
    let clamp = |v: f64, hi: usize| v.clamp(0.0, hi as f64) as usize;
    let (xa, xb) = (clamp(x0.floor() - 3.0, w), clamp(x1.ceil() + 4.0, w));
    let (ya, yb) = (clamp(y0.floor() - 3.0, h), clamp(y1.ceil() + 4.0, h));
    if xa >= xb || ya >= yb {
        // The face lies entirely outside the frame: a 1-pixel rectangle with a zero mask
        // leaves the frame unchanged.
        return Ok(Roi {
            x: 0,
            y: 0,
            w: 1,
            h: 1,
        });
    }
    Ok(Roi {
        x: xa,
        y: ya,
        w: xb - xa,
        h: yb - ya,
    })
}

fn ones(size: usize) -> Result<Image> {
    Ok(Image::filled(size, size, 1, 1.0)?)
}

fn product(a: &Image, b: &Image) -> Result<Image> {
    a.check_same_size("mask product", b)?;
    let mut out = a.clone();
    for (o, v) in out.data_mut().iter_mut().zip(b.data()) {
        *o *= v;
    }
    Ok(out)
}

fn need<'a>(m: &'a Option<Image>, what: &str) -> Result<&'a Image> {
    m.as_ref().ok_or_else(|| {
        MergeError::Invalid(format!(
            "the mask mode needs the {what} mask, which was not predicted"
        ))
    })
}

/// Step 6: the working mask at R x R for the mask mode.
#[allow(clippy::too_many_arguments)] // the step's inputs, each used once
fn working_mask(
    mode: MaskMode,
    pred: &Prediction,
    frame_roi: &Image,
    roi: Roi,
    frame_w: usize,
    frame_h: usize,
    prep: &PreparedFace,
    m_face: &Affine,
    r: usize,
) -> Result<Image> {
    let prd = || need(&pred.prd_mask, "learned-prd");
    let dst = || need(&pred.dst_mask, "learned-dst");
    let xseg_prd = || need(&pred.xseg_prd, "XSeg-prd");
    let xseg_dst = || need(&pred.xseg_dst, "XSeg-dst");
    let mut wm = match mode {
        MaskMode::Full => ones(r)?,
        MaskMode::Dst => {
            // get_image_hull_mask on the frame, warped (bicubic) into the face square. Only
            // the region of interest is converted: the warp reads nothing outside it.
            let hull = dfl_geom::hull_mask(frame_w, frame_h, &prep.landmarks, 1.0)?;
            let mut win = Image::zeros(frame_roi.width(), frame_roi.height(), 1)?;
            for (yy, row) in win.data_mut().chunks_exact_mut(roi.w).enumerate() {
                let src = &hull.data[(roi.y + yy) * frame_w + roi.x..][..roi.w];
                for (o, &v) in row.iter_mut().zip(src) {
                    *o = f32::from(v);
                }
            }
            let mut m = warp_affine(
                &win,
                &shifted(m_face, roi.x, roi.y),
                r,
                r,
                Interp::Cubic,
                Border::Constant(0.0),
            )?;
            m.clip(0.0, 1.0);
            m
        }
        MaskMode::LearnedPrd => prd()?.clone(),
        MaskMode::LearnedDst => dst()?.clone(),
        MaskMode::LearnedPrdDst => product(prd()?, dst()?)?,
        MaskMode::LearnedPrdPlusDst => {
            let mut m = prd()?.clone();
            for (o, v) in m.data_mut().iter_mut().zip(dst()?.data()) {
                *o = (*o + v).clamp(0.0, 1.0);
            }
            m
        }
        MaskMode::XsegPrd => xseg_prd()?.clone(),
        MaskMode::XsegDst => xseg_dst()?.clone(),
        MaskMode::XsegPrdDst => product(xseg_prd()?, xseg_dst()?)?,
        MaskMode::LearnedXsegAll => product(
            &product(prd()?, dst()?)?,
            &product(xseg_prd()?, xseg_dst()?)?,
        )?,
    };
    // Step 7: noise floor.
    wm.map_inplace(|v| if v < MASK_FLOOR { 0.0 } else { v });
    Ok(wm)
}

/// Step 8: erode/dilate, clip band and blur in the zero-padded 4R mask space.
fn process_mask(wm: Image, r: usize, ero: i32, blur: i32) -> Result<Image> {
    if ero == 0 && blur <= 0 {
        // Padding, zeroing exactly the padding and cropping it off again is the identity.
        let mut m = wm;
        m.clip(0.0, 1.0);
        return Ok(m);
    }
    let sub = wm.width();
    let padded = wm.copy_make_border(r, r, r, r, Border::Constant(0.0))?;
    let mut m = if ero > 0 {
        let e = ero.unsigned_abs() as usize;
        erode(&padded, &StructuringElement::ellipse(e, e)?, 1)?
    } else if ero < 0 {
        let e = ero.unsigned_abs() as usize;
        dilate(&padded, &StructuringElement::ellipse(e, e)?, 1)?
    } else {
        padded
    };
    let blur = blur.max(0) as usize;
    let band = r + blur / 2;
    let (pw, ph) = (m.width(), m.height());
    m.fill_rect(0, 0, pw, band, 0.0);
    m.fill_rect(0, ph.saturating_sub(band), pw, band, 0.0);
    m.fill_rect(0, 0, band, ph, 0.0);
    m.fill_rect(pw.saturating_sub(band), 0, band, ph, 0.0);
    if blur > 0 {
        let k = blur + 1 - blur % 2;
        m = gaussian_blur(&m, k, 0.0)?;
    }
    let mut m = m.crop(r, r, sub, sub)?;
    m.clip(0.0, 1.0);
    Ok(m)
}

/// Step 11a (and the seamless post-processing): the colour transfer of `face` towards `dst`.
fn transfer(
    mode: ColorTransfer,
    face: &Image,
    dst: &Image,
    area: &Image,
    rng: &mut StdRng,
) -> Result<Image> {
    let masked = |img: &Image| apply_mask(img, area);
    Ok(match mode {
        ColorTransfer::None => face.clone(),
        ColorTransfer::Rct => rct(face, dst, Some(area), Some(area), MaskStats::DflZeroed)?,
        ColorTransfer::Lct => lct(face, dst)?,
        ColorTransfer::Mkl => mkl(face, dst)?,
        ColorTransfer::MklM => mkl(&masked(face)?, &masked(dst)?)?,
        ColorTransfer::Idt => idt(face, dst, rng)?,
        ColorTransfer::IdtM => idt(&masked(face)?, &masked(dst)?, rng)?,
        ColorTransfer::SotM => {
            let mut o = sot(&masked(face)?, &masked(dst)?, SotParams::MERGER, rng)?;
            o.clip(0.0, 1.0);
            o
        }
        ColorTransfer::MixM => mix(&masked(face)?, &masked(dst)?, rng)?,
    })
}

/// `a * (1 - m) + b * m` in place on `a` (m: 1 channel of the same size).
fn blend_into(a: &mut Image, b: &Image, m: &Image) -> Result<()> {
    a.check_same_size("blend", b)?;
    a.check_same_size("blend", m)?;
    let c = a.channels();
    for ((pa, pb), &mv) in a
        .data_mut()
        .chunks_exact_mut(c)
        .zip(b.data().chunks_exact(c))
        .zip(m.data())
    {
        if mv == 0.0 {
            continue;
        }
        for (va, &vb) in pa.iter_mut().zip(pb) {
            *va = *va * (1.0 - mv) + vb * mv;
        }
    }
    Ok(())
}

/// Whether any frame-mask pixel is at least 0.1 and their bounding box is at least 4 pixels
/// in both directions (DFL's minimum region for the non-raw modes).
fn region_big_enough(fm: &Image) -> bool {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..fm.height() {
        for (x, &v) in fm.row(y).iter().enumerate() {
            if v >= 0.1 {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    x0 != usize::MAX && (x1 - x0).min(y1 - y0) >= 4
}

/// Step 11c: the binary clone mask, from the first threshold `i/10` (i = 1..9) that some
/// frame-mask pixel exceeds.
fn clone_mask(fm: &Image) -> Option<Image> {
    (1..10).find_map(|i| {
        let t = i as f32 / 10.0;
        fm.data().iter().any(|&v| v > t).then(|| {
            let mut m = fm.clone();
            m.map_inplace(|v| if v > t { 1.0 } else { 0.0 });
            m
        })
    })
}

/// Inverse warp of `face` into `base`'s rectangle where the source position lies inside the
/// face square, keeping `base` elsewhere (OpenCV's `BORDER_TRANSPARENT`, with the frame as
/// the destination buffer).
fn paste_transparent(face: &Image, m: &Affine, base: &Image) -> Result<Image> {
    let mut out = warp_affine_inverse(
        face,
        m,
        base.width(),
        base.height(),
        Interp::Cubic,
        Border::Constant(0.0),
    )?;
    let (fw, fh) = (face.width() as f64, face.height() as f64);
    let c = out.channels();
    for y in 0..out.height() {
        let yf = y as f64;
        for x in 0..out.width() {
            let xf = x as f64;
            let sx = (m[0][0] * xf + m[0][1] * yf + m[0][2]).floor();
            let sy = (m[1][0] * xf + m[1][1] * yf + m[1][2]).floor();
            let inside = sx >= 0.0 && sy >= 0.0 && sx < fw && sy < fh;
            if !inside {
                let i = (y * out.width() + x) * c;
                let src = base.pixel(x, y);
                out.data_mut()[i..i + c].copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

/// Merges one face into `frame` (§7.3): mask by mask mode, erode/blur, frame mask, colour
/// transfer, hist match, paste or seamless clone, blend, post-processing, colour degrade.
///
/// `motion` is the face's motion for motion blur (`None` when DFL computes none: first run
/// with several faces in a frame, or no neighbours). `seed` seeds the random colour
/// transfers (idt, sot-m, mix-m) so a frame merges the same way every time. The config must
/// be valid ([`MergerConfig::validate`]); super resolution is not available.
#[allow(clippy::too_many_arguments)] // DFL's MergeMaskedFace inputs, one per argument
pub fn merge_face(
    frame: &Image,
    prep: &PreparedFace,
    pred: &Prediction,
    cfg: &MergerConfig,
    spec: FaceSpec,
    motion: Option<Motion>,
    seed: u64,
    region: Region,
) -> Result<FaceResult> {
    cfg.validate().map_err(|source| MergeError::Config {
        origin: "merge_face".into(),
        source,
    })?;
    let r = spec.resolution;
    let ft = spec.face_type;
    let (out, sub) = (r, 4 * r);
    let (fw, fh) = (frame.width(), frame.height());
    for (what, img, ch) in [
        ("predicted face", Some(&pred.face), 3),
        ("learned-prd mask", pred.prd_mask.as_ref(), 1),
        ("learned-dst mask", pred.dst_mask.as_ref(), 1),
    ] {
        let Some(img) = img else { continue };
        if img.width() != r || img.height() != r || img.channels() != ch {
            return Err(MergeError::Invalid(format!(
                "{what} is {}x{}x{}, expected {r}x{r}x{ch}",
                img.width(),
                img.height(),
                img.channels()
            )));
        }
    }

    // Step 2: matrices.
    let scale = 1.0 + 0.01 * f64::from(cfg.output_face_scale);
    let m_face = face_mat(&prep.landmarks, out, ft, 1.0)?;
    let m_out = face_mat(&prep.landmarks, out, ft, scale)?;
    let m_mask = face_mat(&prep.landmarks, sub, ft, scale)?;

    let roi = if region == Region::FullFrame || cfg.touches_whole_frame() {
        Roi {
            x: 0,
            y: 0,
            w: fw,
            h: fh,
        }
    } else {
        face_roi(&[(&m_face, out), (&m_out, out), (&m_mask, sub)], fw, fh)?
    };
    let f_roi = if roi.w == fw && roi.h == fh {
        frame.clone()
    } else {
        frame.crop(roi.x, roi.y, roi.w, roi.h)?
    };
    let m_face_r = shifted(&m_face, roi.x, roi.y);
    let m_out_r = shifted(&m_out, roi.x, roi.y);
    let m_mask_r = shifted(&m_mask, roi.x, roi.y);

    // Steps 6-7: working mask, noise floor, to the 4R mask space.
    let mut wm = working_mask(cfg.mask_mode, pred, &f_roi, roi, fw, fh, prep, &m_face, r)?;
    if sub != out {
        wm = resize(&wm, sub, sub, Interp::Cubic)?;
    }
    // Step 8: erode / blur (not in raw modes).
    if cfg.mode.is_raw() {
        // DFL leaves the bicubic overshoot of the two resizes in raw modes, and raw-predict's
        // 8-bit mask then wraps around; clipped here.
        wm.clip(0.0, 1.0);
    } else {
        wm = process_mask(wm, r, cfg.erode_mask_modifier, cfg.blur_mask_modifier)?;
    }
    // Step 9: frame mask.
    let mut fm = warp_affine_inverse(
        &wm,
        &m_mask_r,
        roi.w,
        roi.h,
        Interp::Cubic,
        Border::Constant(0.0),
    )?;
    fm.map_inplace(|v| {
        let v = v.clamp(0.0, 1.0);
        if v < MASK_FLOOR { 0.0 } else { v }
    });
    if sub != out {
        wm = resize(&wm, out, out, Interp::Cubic)?;
        if cfg.mode.is_raw() {
            wm.clip(0.0, 1.0);
        }
    }
    let mut face_area = wm.clone();
    face_area.map_inplace(|v| if v > 0.0 { 1.0 } else { 0.0 });

    let patch = |img: Image, mask: Image| {
        Ok(FaceResult::Frame(FramePatch {
            x: roi.x,
            y: roi.y,
            img,
            mask,
        }))
    };

    // Step 10: original and raw modes.
    match cfg.mode {
        Mode::Original => return patch(f_roi, fm),
        Mode::RawPredict => {
            return Ok(FaceResult::Raw {
                face: pred.face.clone(),
                mask: wm,
            });
        }
        Mode::RawRgb => {
            let paste = warp_affine_inverse(
                &pred.face,
                &m_out_r,
                roi.w,
                roi.h,
                Interp::Cubic,
                Border::Constant(0.0),
            )?;
            let mut o = warp_affine_inverse(
                &ones(out)?,
                &m_out_r,
                roi.w,
                roi.h,
                Interp::Cubic,
                Border::Constant(0.0),
            )?;
            o.clip(0.0, 1.0);
            let mut img = f_roi;
            blend_into(&mut img, &paste, &o)?;
            img.clip(0.0, 1.0);
            return patch(img, fm);
        }
        _ => {}
    }

    // Step 11: the blending modes, only for a large enough mask.
    if !region_big_enough(&fm) {
        return patch(f_roi, fm);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut prd = pred.face.clone();
    // a. colour transfer.
    if !cfg.mode.is_seamless() && cfg.color_transfer_mode != ColorTransfer::None {
        prd = transfer(
            cfg.color_transfer_mode,
            &prd,
            &prep.dst_face,
            &face_area,
            &mut rng,
        )?;
    }
    // b. histogram match.
    if cfg.mode == Mode::HistMatch {
        let h = if cfg.masked_hist_match {
            face_area.clone()
        } else {
            ones(out)?
        };
        let lift = |img: &Image| -> Result<Image> {
            let mut o = apply_mask(img, &h)?;
            let c = o.channels();
            for (px, &hv) in o.data_mut().chunks_exact_mut(c).zip(h.data()) {
                for v in px {
                    *v = (*v + (1.0 - hv)).min(1.0);
                }
            }
            Ok(o)
        };
        prd = hist_match(
            &lift(&prd)?,
            &lift(&prep.dst_face)?,
            cfg.hist_match_threshold as f32,
        )?;
    }
    // d. paste.
    let mut paste = warp_affine_inverse(
        &prd,
        &m_out_r,
        roi.w,
        roi.h,
        Interp::Cubic,
        Border::Constant(0.0),
    )?;
    paste.clip(0.0, 1.0);
    // c, e. seamless clone.
    if cfg.mode.is_seamless()
        && let Some(cm) = clone_mask(&fm)
        && let Some(center) = clone_center(&cm)
    {
        match seamless_clone(&paste, &f_roi, &cm, center) {
            Ok(cloned) => paste = cloned,
            // DFL prints the exception and keeps the plain paste.
            Err(e) => tracing::warn!("seamless clone failed, face pasted without it: {e}"),
        }
    }
    // f. blend.
    let mut out_img = f_roi.clone();
    blend_into(&mut out_img, &paste, &fm)?;
    // g. post-processing.
    if cfg.needs_post() {
        let mut face = warp_affine(
            &out_img,
            &m_face_r,
            out,
            out,
            Interp::Cubic,
            Border::Constant(0.0),
        )?;
        if cfg.mode.is_seamless() && cfg.color_transfer_mode != ColorTransfer::None {
            face = transfer(
                cfg.color_transfer_mode,
                &face,
                &prep.dst_face,
                &face_area,
                &mut rng,
            )?;
        }
        if cfg.mode == Mode::SeamlessHistMatch {
            face = hist_match(&face, &prep.dst_face, cfg.hist_match_threshold as f32)?;
        }
        if cfg.motion_blur_power != 0
            && let Some(mv) = motion
        {
            let k = (mv.power * f64::from(cfg.motion_blur_power) / 100.0) as i64;
            if k >= 1 {
                let k = (k + 1).clamp(2, 50) as usize;
                face = linear_motion_blur(&face, k, mv.deg)?;
            }
        }
        if cfg.blursharpen_amount != 0 {
            face = blursharpen(
                &face,
                cfg.sharpen_mode.image_mode(),
                3,
                cfg.blursharpen_amount,
            )?;
        }
        let mut base = f_roi;
        if cfg.image_denoise_power != 0 {
            base = denoise(&base, cfg.image_denoise_power.unsigned_abs())?;
        }
        if cfg.bicubic_degrade_power != 0 {
            base = bicubic_degrade(&base, cfg.bicubic_degrade_power.unsigned_abs())?;
        }
        let new = paste_transparent(&face, &m_face_r, &base)?;
        out_img = base;
        blend_into(&mut out_img, &new, &fm)?;
        out_img.clip(0.0, 1.0);
    }
    // h. colour degrade (the whole frame, as DFL).
    if cfg.color_degrade_power != 0 {
        out_img = color_degrade(&out_img, cfg.color_degrade_power.unsigned_abs())?;
    }
    patch(out_img, fm)
}

/// Joins the merged faces of one frame (§7.4): the first face's result is the base; each
/// further face is blended in with its mask, and the masks add up (clipped). Without faces
/// the frame is returned with an all-zero mask.
pub fn combine(frame: &Image, results: &[FaceResult]) -> Result<Merged> {
    let mut raw: Option<Merged> = None;
    let mut image = frame.clone();
    let mut mask = Image::zeros(frame.width(), frame.height(), 1)?;
    let mut first = true;
    for res in results {
        match res {
            FaceResult::Raw { face, mask: m } => match &mut raw {
                None => {
                    raw = Some(Merged {
                        image: face.clone(),
                        mask: m.clone(),
                    })
                }
                Some(acc) => {
                    blend_into(&mut acc.image, face, m)?;
                    for (a, v) in acc.mask.data_mut().iter_mut().zip(m.data()) {
                        *a = (*a + v).clamp(0.0, 1.0);
                    }
                }
            },
            FaceResult::Frame(p) => {
                if first {
                    image.paste(&p.img, p.x, p.y)?;
                    mask.paste(&p.mask, p.x, p.y)?;
                    first = false;
                    continue;
                }
                let mut cur = image.crop(p.x, p.y, p.img.width(), p.img.height())?;
                blend_into(&mut cur, &p.img, &p.mask)?;
                image.paste(&cur, p.x, p.y)?;
                let mut cm = mask.crop(p.x, p.y, p.mask.width(), p.mask.height())?;
                for (a, v) in cm.data_mut().iter_mut().zip(p.mask.data()) {
                    *a = (*a + v).clamp(0.0, 1.0);
                }
                mask.paste(&cm, p.x, p.y)?;
            }
        }
    }
    Ok(raw.unwrap_or(Merged { image, mask }))
}
