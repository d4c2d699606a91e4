//! Measuring the landmarks: NME against iBUG `.pts` annotations, and jitter on a sequence
//! with known motion (a photo moved by smooth affine motion; the motion is undone on the
//! found landmarks, whatever still moves is jitter).

use crate::find::{FaceFound, FindOptions, Models, find_faces, track_faces};
use crate::frame::{Frame, FrameError, load_frame};
use crate::nets::Landmarks;
use dfl_image::{Border, Image, Interp, Quantize, warp_affine};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `.pts` file is malformed.
    #[error("{path}: not an iBUG .pts file with 68 points: {reason}")]
    Pts {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An image could not be used.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Nothing to evaluate.
    #[error("{0}")]
    Empty(String),
    /// Building the synthetic sequence failed.
    #[error("synthetic sequence: {0}")]
    Sequence(String),
}

/// Reads an iBUG `.pts` file (`version: 1`, `n_points: 68`, `{`, 68 lines `x y`, `}`).
/// The format's coordinates are 1-based (Matlab): 1 is subtracted so they are pixels.
pub fn read_pts(path: &Path) -> Result<Vec<[f32; 2]>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pts(&text).map_err(|reason| EvalError::Pts {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses the text of an iBUG `.pts` file (see [`read_pts`]).
pub fn parse_pts(text: &str) -> Result<Vec<[f32; 2]>, String> {
    let mut n = None;
    let mut pts = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("n_points:") {
            n = v.trim().parse::<usize>().ok();
        } else if line == "{" {
            inside = true;
        } else if line == "}" {
            inside = false;
        } else if inside {
            let mut it = line.split_whitespace().map(str::parse::<f32>);
            match (it.next(), it.next()) {
                (Some(Ok(x)), Some(Ok(y))) if x.is_finite() && y.is_finite() => {
                    pts.push([x - 1.0, y - 1.0])
                }
                _ => return Err(format!("bad point line '{line}'")),
            }
        }
    }
    match n {
        Some(68) if pts.len() == 68 => Ok(pts),
        Some(k) if k != 68 => Err(format!("n_points is {k}")),
        _ => Err(format!("{} points", pts.len())),
    }
}

/// Normalised mean error: mean point distance divided by the distance between the outer eye
/// corners (36, 45) of the ground truth ("inter-ocular" NME of 300-W).
pub fn nme(pred: &Landmarks, gt: &[[f32; 2]]) -> Option<f32> {
    if gt.len() != 68 {
        return None;
    }
    let iod = ((gt[36][0] - gt[45][0]).powi(2) + (gt[36][1] - gt[45][1]).powi(2)).sqrt();
    if iod <= 0.0 || !iod.is_finite() {
        return None;
    }
    let sum: f32 = pred
        .iter()
        .zip(gt)
        .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
        .sum();
    Some(sum / 68.0 / iod)
}

/// One evaluated image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageNme {
    /// Image file name.
    pub image: String,
    /// NME of the matched face, or `None` when no found face matches the annotation.
    pub nme: Option<f32>,
}

/// Result of [`eval_landmarks`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LandmarkEval {
    /// Per image, sorted by name.
    pub images: Vec<ImageNme>,
    /// Mean NME over the images where the face was found.
    pub mean_nme: Option<f32>,
    /// Annotated faces the detector missed.
    pub missed: usize,
}

fn bbox(p: &[[f32; 2]]) -> [f32; 4] {
    p.iter()
        .fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |b, q| {
            [
                b[0].min(q[0]),
                b[1].min(q[1]),
                b[2].max(q[0]),
                b[3].max(q[1]),
            ]
        })
}

/// The found face that is the annotated one: the largest overlap of landmark bounding boxes
/// (at least 30 % IoU).
pub fn match_face<'a>(faces: &'a [FaceFound], gt: &[[f32; 2]]) -> Option<&'a FaceFound> {
    let g = bbox(gt);
    let iou = |a: [f32; 4], b: [f32; 4]| {
        let i =
            (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        let u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i;
        if u > 0.0 { i / u } else { 0.0 }
    };
    faces
        .iter()
        .map(|f| (iou(bbox(&f.landmarks), g), f))
        .filter(|(o, _)| *o >= 0.3)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
}

/// NME of every image in `images` that has a `<stem>.pts` in `pts`, faces found with `opts`.
pub fn eval_landmarks(
    models: &Models,
    images: &Path,
    pts: &Path,
    opts: &FindOptions,
) -> Result<LandmarkEval, EvalError> {
    let (frames, _) =
        crate::extract::list_input(images).map_err(|e| EvalError::Empty(e.to_string()))?;
    let mut out = Vec::new();
    let mut missed = 0;
    for img in frames {
        let Some(stem) = img.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        let p = pts.join(format!("{stem}.pts"));
        if !p.is_file() {
            continue;
        }
        let gt = read_pts(&p)?;
        let frame = load_frame(&img)?;
        let faces = find_faces(models, &frame, opts);
        let v = match_face(&faces, &gt).and_then(|f| nme(&f.landmarks, &gt));
        if v.is_none() {
            missed += 1;
        }
        out.push(ImageNme {
            image: img
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            nme: v,
        });
    }
    if out.is_empty() {
        return Err(EvalError::Empty(format!(
            "no image in {} has a .pts file of the same name in {}",
            images.display(),
            pts.display()
        )));
    }
    let found: Vec<f32> = out.iter().filter_map(|i| i.nme).collect();
    let mean_nme = (!found.is_empty()).then(|| found.iter().sum::<f32>() / found.len() as f32);
    Ok(LandmarkEval {
        images: out,
        mean_nme,
        missed,
    })
}

/// A 2x3 affine map (x' = a x + b y + c, y' = d x + e y + f).
pub type Motion = [[f64; 3]; 2];

fn apply(m: &Motion, p: [f32; 2]) -> [f32; 2] {
    let (x, y) = (f64::from(p[0]), f64::from(p[1]));
    [
        (m[0][0] * x + m[0][1] * y + m[0][2]) as f32,
        (m[1][0] * x + m[1][1] * y + m[1][2]) as f32,
    ]
}

fn invert(m: &Motion) -> Motion {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let (a, b, d, e) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
    [
        [a, b, -(a * m[0][2] + b * m[1][2])],
        [d, e, -(d * m[0][2] + e * m[1][2])],
    ]
}

/// A synthetic video: `base` placed in a `width` x `height` frame and moved by smooth known
/// motion (a Lissajous path of ±6 % of the frame, ±8° of roll, ±8 % of scale) over `n`
/// frames. Returns the frames and, per frame, the base → frame map.
pub fn moving_sequence(
    base: &Frame,
    n: usize,
    width: usize,
    height: usize,
) -> Result<(Vec<Frame>, Vec<Motion>), EvalError> {
    let img = Image::from_u8(base.width(), base.height(), 3, base.rgb())
        .map_err(|e| EvalError::Sequence(e.to_string()))?;
    let (bw, bh) = (base.width() as f64, base.height() as f64);
    let (w, h) = (width as f64, height as f64);
    let fit = (0.8 * h / bh).min(0.8 * w / bw);
    let mut frames = Vec::with_capacity(n);
    let mut motions = Vec::with_capacity(n);
    for t in 0..n {
        let s = t as f64 / n.max(1) as f64 * std::f64::consts::TAU;
        let angle = (8f64).to_radians() * (s * 1.0).sin();
        let scale = fit * (1.0 + 0.08 * (s * 2.0).sin());
        let (tx, ty) = (
            w / 2.0 + 0.06 * w * (s * 1.0).cos(),
            h / 2.0 + 0.06 * h * (s * 2.0).sin(),
        );
        let (sn, cs) = angle.sin_cos();
        // base centre → (tx, ty), rotated and scaled about it.
        let (cx, cy) = (bw / 2.0, bh / 2.0);
        let m: Motion = [
            [scale * cs, -scale * sn, tx - scale * (cs * cx - sn * cy)],
            [scale * sn, scale * cs, ty - scale * (sn * cx + cs * cy)],
        ];
        let warped = warp_affine(&img, &m, width, height, Interp::Linear, Border::Replicate)
            .map_err(|e| EvalError::Sequence(e.to_string()))?;
        let rgb = warped.to_u8(Quantize::Round);
        let f = Frame::new(width, height, rgb)
            .ok_or_else(|| EvalError::Sequence("frame size".into()))?;
        frames.push(f);
        motions.push(m);
    }
    Ok((frames, motions))
}

/// Jitter of one mode on a moving sequence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Jitter {
    /// Frames where the face was found.
    pub frames_with_face: usize,
    /// Jitter: RMS frame-to-frame change of the motion-compensated landmarks (the motion is
    /// smooth, so what changes between neighbouring frames is noise), as a fraction of the
    /// mean inter-ocular distance (outer eye corners) in the base photo.
    pub jitter: f32,
    /// RMS deviation of the motion-compensated landmarks from their per-point mean, same
    /// unit: jitter plus the slow, pose-dependent bias of the net.
    pub spread: f32,
}

/// Runs the nets over `frames` (detector every frame, or tracking when `track`), keeps the
/// largest face, undoes `motions` and measures what still moves.
pub fn measure_jitter(
    models: &Models,
    frames: &[Frame],
    motions: &[Motion],
    track: bool,
) -> Result<Jitter, EvalError> {
    let opts = FindOptions::default();
    let mut prev: Vec<FaceFound> = Vec::new();
    let mut seq: Vec<Landmarks> = Vec::new();
    for (f, m) in frames.iter().zip(motions) {
        let faces = if track {
            track_faces(models, f, &prev, &opts).unwrap_or_else(|| find_faces(models, f, &opts))
        } else {
            find_faces(models, f, &opts)
        };
        let Some(face) = faces.first() else {
            prev.clear();
            continue;
        };
        prev = vec![face.clone()];
        let inv = invert(m);
        seq.push(face.landmarks.map(|p| apply(&inv, p)));
    }
    if seq.len() < 2 {
        return Err(EvalError::Empty(format!(
            "the face was found in {} of {} frames",
            seq.len(),
            frames.len()
        )));
    }
    let n = seq.len() as f32;
    let mut mean = [[0f32; 2]; 68];
    for l in &seq {
        for (m, p) in mean.iter_mut().zip(l) {
            m[0] += p[0] / n;
            m[1] += p[1] / n;
        }
    }
    let iod = ((mean[36][0] - mean[45][0]).powi(2) + (mean[36][1] - mean[45][1]).powi(2)).sqrt();
    let sq = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let var: f32 = seq
        .iter()
        .flat_map(|l| l.iter().zip(&mean).map(|(p, m)| sq(*p, *m)))
        .sum::<f32>()
        / (n * 68.0);
    let f2f: f32 = seq
        .windows(2)
        .flat_map(|w| w[0].iter().zip(&w[1]).map(|(a, b)| sq(*a, *b)))
        .sum::<f32>()
        / ((n - 1.0) * 68.0);
    Ok(Jitter {
        frames_with_face: seq.len(),
        jitter: f2f.sqrt() / iod,
        spread: var.sqrt() / iod,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_parse_and_nme() {
        let mut text = String::from("version: 1\nn_points:  68\n{\n");
        for i in 0..68 {
            text.push_str(&format!("{} {}\n", i as f32 + 1.0, 2.0 * i as f32 + 1.0));
        }
        text.push_str("}\n");
        let p = parse_pts(&text).unwrap();
        assert_eq!(p[3], [3.0, 6.0]);
        let mut pred = [[0f32; 2]; 68];
        for (a, b) in pred.iter_mut().zip(&p) {
            *a = [b[0] + 3.0, b[1] + 4.0];
        }
        // Every point off by 5 px; eye corners 36 and 45 are 9 * sqrt(5) apart.
        let want = 5.0 / (9.0 * 5f32.sqrt());
        assert!((nme(&pred, &p).unwrap() - want).abs() < 1e-6);
        assert!(parse_pts("n_points: 19\n{\n1 2\n}").is_err());
        assert!(parse_pts(&text.replace("3 5", "3 x")).is_err());
    }

    #[test]
    fn motion_inverse_round_trips() {
        let m: Motion = [[0.9, -0.2, 10.0], [0.2, 0.9, -4.0]];
        let p = [13.0, 7.5];
        let q = apply(&invert(&m), apply(&m, p));
        assert!((q[0] - p[0]).abs() < 1e-4 && (q[1] - p[1]).abs() < 1e-4);
    }
}
