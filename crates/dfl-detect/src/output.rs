//! From found faces to files: DFL's sanity filter, the aligned crop (warp + JPEG + DFL
//! metadata through `dfl-faceset`), and the `aligned_debug` picture of the frame.

use crate::find::FaceFound;
use crate::frame::Frame;
use dfl_faceset::FaceMeta;
use dfl_faceset::draw::{self, Color};
use dfl_geom::{Affine, FaceType, Pt, hull_mask, transform_mat, transform_points};
use dfl_image::{Border, Image, Interp, Quantize, warp_affine};
use image::RgbImage;

const GREEN: Color = [0, 255, 0];
const BLUE: Color = [0, 0, 255];
const RED: Color = [255, 0, 0];

/// Why an aligned face could not be produced (never because of the data: geometry failures
/// drop the face; these are encoder/metadata failures).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// JPEG encoding failed.
    #[error("encoding {name}: {reason}")]
    Encode {
        /// The output file name.
        name: String,
        /// The encoder's message.
        reason: String,
    },
    /// The metadata could not be embedded.
    #[error("metadata of {name}: {source}")]
    Meta {
        /// The output file name.
        name: String,
        /// The faceset error.
        source: dfl_faceset::Error,
    },
}

/// One aligned face ready to be written: `<frame stem>_<k>.jpg` and its bytes.
#[derive(Debug, Clone)]
pub struct AlignedFile {
    /// File name inside the output folder.
    pub name: String,
    /// JPEG bytes with DFL's APP15 metadata.
    pub bytes: Vec<u8>,
    /// The frame → face matrix (`None` for mark_only).
    pub mat: Option<Affine>,
}

/// Crop settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropOptions {
    /// DFL face type.
    pub face_type: FaceType,
    /// Side of the aligned square in pixels.
    pub size: usize,
    /// JPEG quality 1..=100.
    pub jpeg_quality: u8,
}

/// Landmarks as DFL's `f64` points.
pub fn to_pts(lm: &crate::Landmarks) -> Vec<Pt> {
    lm.iter()
        .map(|p| [f64::from(p[0]), f64::from(p[1])])
        .collect()
}

/// DFL's sanity filter (automatic extraction, face types up to FULL_NO_ALIGN): the face square
/// mapped back into the frame must not exceed 4 x the detector box's area.
pub fn passes_sanity(face: &FaceFound, mat: &Affine, face_type: FaceType, size: usize) -> bool {
    if face_type.code() > FaceType::FullNoAlign.code() {
        return true;
    }
    let det = mat[(0, 0)] * mat[(1, 1)] - mat[(0, 1)] * mat[(1, 0)];
    if det.abs() < 1e-12 {
        return false;
    }
    let square_area = (size * size) as f64 / det.abs();
    square_area <= 4.0 * f64::from(face.area())
}

/// The frame region a `size` x `size` crop through `m` reads (plus the 4-pixel reach of the
/// Lanczos kernel) as a float image, and `m` moved to that region's origin. `None` when the
/// crop lies entirely outside the frame or the matrix is singular.
pub fn crop_region(frame: &Frame, m: &Affine, size: usize) -> Option<(Image, [[f64; 3]; 2])> {
    let s = size as f64;
    let corners = [[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]];
    let back = transform_points(&corners, m, true).ok()?;
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in &back {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let (w, h) = (frame.width() as f64, frame.height() as f64);
    let left = (x0.floor() - 4.0).clamp(0.0, w) as usize;
    let top = (y0.floor() - 4.0).clamp(0.0, h) as usize;
    let right = (x1.ceil() + 5.0).clamp(0.0, w) as usize;
    let bottom = (y1.ceil() + 5.0).clamp(0.0, h) as usize;
    if right <= left || bottom <= top {
        return None;
    }
    let (rw, rh) = (right - left, bottom - top);
    let mut bytes = Vec::with_capacity(rw * rh * 3);
    for row in frame
        .rgb()
        .chunks_exact(frame.width() * 3)
        .skip(top)
        .take(rh)
    {
        bytes.extend_from_slice(row.get(left * 3..right * 3)?);
    }
    let img = Image::from_u8(rw, rh, 3, &bytes).ok()?;
    let (ox, oy) = (left as f64, top as f64);
    let mm = [
        [
            m[(0, 0)],
            m[(0, 1)],
            m[(0, 0)] * ox + m[(0, 1)] * oy + m[(0, 2)],
        ],
        [
            m[(1, 0)],
            m[(1, 1)],
            m[(1, 0)] * ox + m[(1, 1)] * oy + m[(1, 2)],
        ],
    ];
    Some((img, mm))
}

/// Encodes RGB pixels as a baseline JPEG.
pub fn encode_jpeg(img: &RgbImage, quality: u8, name: &str) -> Result<Vec<u8>, OutputError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode_image(img)
        .map_err(|e| OutputError::Encode {
            name: name.into(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// The aligned files of one frame, numbered `_0, _1, ...` from `first_index` in the order of
/// `faces` (largest first); faces failing the sanity filter (when `sanity`) or whose geometry
/// is degenerate are skipped without using a number.
pub fn aligned_files(
    frame: &Frame,
    frame_name: &str,
    faces: &[FaceFound],
    opts: &CropOptions,
    first_index: usize,
    sanity: bool,
) -> Result<Vec<AlignedFile>, OutputError> {
    let stem = std::path::Path::new(frame_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| frame_name.to_string());
    let mut out = Vec::new();
    for face in faces {
        let name = format!("{stem}_{}.jpg", first_index + out.len());
        let lm = to_pts(&face.landmarks);
        let rect = face.rect.map(|v| v.round() as i64);
        let (pixels, landmarks, mat) = if opts.face_type == FaceType::MarkOnly {
            let img = RgbImage::from_raw(
                frame.width() as u32,
                frame.height() as u32,
                frame.rgb().to_vec(),
            );
            match img {
                Some(img) => (img, lm.clone(), None),
                None => continue,
            }
        } else {
            let Ok(m) = transform_mat(&lm, opts.size as f64, opts.face_type, 1.0) else {
                continue;
            };
            if sanity && !passes_sanity(face, &m, opts.face_type, opts.size) {
                continue;
            }
            // Only the part of the frame the crop reads is converted to float (a whole
            // 1280x720 frame costs more than the warp itself).
            let Some((roi, mm)) = crop_region(frame, &m, opts.size) else {
                continue;
            };
            // DFL meant LANCZOS4 here but passed it in the `dst` slot of warpAffine, so it got
            // bilinear; we do what it meant (sharper training faces).
            let Ok(warped) = warp_affine(
                &roi,
                &mm,
                opts.size,
                opts.size,
                Interp::Lanczos4,
                Border::Constant(0.0),
            ) else {
                continue;
            };
            let Ok(rgb) = warped.to_rgb8(Quantize::Round) else {
                continue;
            };
            let Ok(face_lm) = transform_points(&lm, &m, false) else {
                continue;
            };
            (rgb, face_lm, Some(m))
        };
        let jpeg = encode_jpeg(&pixels, opts.jpeg_quality, &name)?;
        let meta = FaceMeta {
            face_type: Some(opts.face_type),
            landmarks: Some(landmarks),
            source_filename: Some(frame_name.to_string()),
            source_rect: Some(rect),
            source_landmarks: Some(lm),
            image_to_face_mat: mat,
            ..FaceMeta::default()
        };
        let bytes = dfl_faceset::embed_meta(&jpeg, &meta).map_err(|source| OutputError::Meta {
            name: name.clone(),
            source,
        })?;
        out.push(AlignedFile { name, bytes, mat });
    }
    Ok(out)
}

/// DFL's `draw_landmarks` (open brows/jaw/nose, closed eyes/mouth, dots). dfl-faceset has the
/// same function in a private module (`ops::debug`); once it is re-exported this copy goes.
fn draw_landmarks(img: &mut RgbImage, lm: &[Pt], color: Color) {
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
    for (i, p) in lm.iter().enumerate() {
        draw::circle(img, *p, if i < 17 { 2.0 } else { 1.0 }, color);
    }
}

/// The `aligned_debug` picture of a frame (DFL's `draw_rect_landmarks` for every face): hull
/// darkened to half, landmarks in green, the detector box in blue, the face-type crop square
/// and its "up" marker in red. Returns JPEG bytes at quality 50, as DFL.
pub fn debug_picture(
    frame: &Frame,
    faces: &[FaceFound],
    face_type: FaceType,
    name: &str,
) -> Result<Vec<u8>, OutputError> {
    let Some(mut img) = RgbImage::from_raw(
        frame.width() as u32,
        frame.height() as u32,
        frame.rgb().to_vec(),
    ) else {
        return Err(OutputError::Encode {
            name: name.into(),
            reason: "frame buffer size mismatch".into(),
        });
    };
    let t = if face_type == FaceType::MarkOnly {
        FaceType::Full
    } else {
        face_type
    };
    for f in faces {
        let lm = to_pts(&f.landmarks);
        if let Ok(mask) = hull_mask(frame.width(), frame.height(), &lm, 1.0) {
            draw::darken(&mut img, &mask, 0.5);
        }
        draw_landmarks(&mut img, &lm, GREEN);
        let r = f.rect.map(f64::from);
        let rect = [[r[0], r[1]], [r[2], r[1]], [r[2], r[3]], [r[0], r[3]]];
        draw::polyline(&mut img, &rect, true, BLUE, 2.0);
        let s = 256.0;
        if let Ok(m) = transform_mat(&lm, s, t, 1.0) {
            let square = [
                [0.0, 0.0],
                [0.0, s - 1.0],
                [s - 1.0, s - 1.0],
                [s - 1.0, 0.0],
            ];
            let up = [[s * 0.05, 0.0], [s * 0.1, s * 0.1], [0.0, s * 0.1]];
            for pts in [&square[..], &up[..]] {
                if let Ok(q) = transform_points(pts, &m, true) {
                    draw::polyline(&mut img, &q, true, RED, 2.0);
                }
            }
        }
    }
    encode_jpeg(&img, 50, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cropped_region_warps_like_the_whole_frame() {
        let (w, h) = (97usize, 61usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|v| (v * 31 % 253) as u8).collect();
        let frame = Frame::new(w, h, rgb).unwrap();
        let m = dfl_geom::Affine::new(1.7, 0.3, -40.0, -0.3, 1.7, -20.0);
        let (roi, mm) = crop_region(&frame, &m, 32).unwrap();
        assert!(roi.width() < w && roi.height() < h);
        let full = Image::from_u8(w, h, 3, frame.rgb()).unwrap();
        let fm = [[1.7, 0.3, -40.0], [-0.3, 1.7, -20.0]];
        let a = warp_affine(&full, &fm, 32, 32, Interp::Lanczos4, Border::Constant(0.0)).unwrap();
        let b = warp_affine(&roi, &mm, 32, 32, Interp::Lanczos4, Border::Constant(0.0)).unwrap();
        let diff = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }
}
