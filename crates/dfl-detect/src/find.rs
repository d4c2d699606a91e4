//! Faces in one frame, DFL's way: detect (with the rotation fallback), drop small boxes,
//! largest first, landmarks, then the second "accurate" landmark pass; and the video-aware
//! variant that seeds each frame from the previous frame's landmarks.

use crate::frame::{Frame, Rotation};
use crate::nets::{Detection, FaceDetector, Landmarker, Landmarks, crop_from_landmarks};
use crate::prep::{Crop, RgbView};
use crate::tfjs::TfjsError;
use burn::tensor::Device;

/// Frames whose shorter side is below this have no faces (DFL's S3FD rule).
pub const MIN_FRAME_SIDE: usize = 128;
/// Detector boxes narrower or shorter than this many pixels are dropped (DFL: 40).
pub const MIN_FACE_SIDE: f32 = 40.0;
/// Tracking is lost when the second pass moves the landmarks by more than this fraction of
/// the face size on average (the net no longer agrees with itself: no face under the crop).
pub const TRACK_LOST: f32 = 0.06;

/// The two nets, loaded once.
pub struct Models {
    /// The face detector.
    pub detector: FaceDetector,
    /// The 68-point landmark net.
    pub landmarker: Landmarker,
}

impl Models {
    /// The bundled face-api weights on `device`.
    pub fn bundled(device: &Device) -> Result<Self, TfjsError> {
        Ok(Self {
            detector: FaceDetector::bundled(device)?,
            landmarker: Landmarker::bundled(device)?,
        })
    }
}

/// One face found in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceFound {
    /// `[left, top, right, bottom]` in frame pixels: the detector's box, or for tracked faces
    /// a box derived from the landmarks.
    pub rect: [f32; 4],
    /// Detector confidence (tracked faces keep the score of the detection they came from).
    pub score: f32,
    /// 68 landmarks in frame pixels after the accurate pass.
    pub landmarks: Landmarks,
}

impl FaceFound {
    /// Area of `rect`.
    pub fn area(&self) -> f32 {
        (self.rect[2] - self.rect[0]).max(0.0) * (self.rect[3] - self.rect[1]).max(0.0)
    }
}

/// How the second pass samples: this many crops (centre and 4 diagonal shifts of one net
/// pixel, DFL's `multi_sample`), averaged. 1 disables averaging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindOptions {
    /// Keep at most this many faces, the largest ones (0 = all).
    pub max_faces: usize,
    /// Crops averaged in the accurate pass (1 or 5).
    pub samples: usize,
    /// Also look for small faces in overlapping tiles (one detector run per tile, see
    /// [`FaceDetector::detect_tiled`]).
    pub small_faces: bool,
}

impl Default for FindOptions {
    fn default() -> Self {
        Self {
            max_faces: 0,
            samples: 5,
            small_faces: false,
        }
    }
}

/// Every face in `frame`, largest first, with accurate landmarks.
///
/// Rotation fallback: when nothing is found upright, DFL tries 90°, 270° and 180° and takes
/// the first rotation with any detection. The detector here also fires (more weakly) on
/// sideways and upside-down faces, so the first hit is often a wrong orientation whose
/// landmarks are garbage; all three are tried and the one with the highest summed score wins.
pub fn find_faces(models: &Models, frame: &Frame, opts: &FindOptions) -> Vec<FaceFound> {
    if frame.width().min(frame.height()) < MIN_FRAME_SIDE {
        return Vec::new();
    }
    let detect = |f: &Frame| -> Vec<Detection> {
        let found = if opts.small_faces {
            models.detector.detect_tiled(f.view())
        } else {
            models
                .detector
                .detect(&[f.view()])
                .into_iter()
                .flatten()
                .collect()
        };
        found
            .into_iter()
            .filter(|d| d.size().0 >= MIN_FACE_SIDE && d.size().1 >= MIN_FACE_SIDE)
            .collect()
    };
    let mut chosen = (Rotation::R0, None, detect(frame));
    if chosen.2.is_empty() {
        let mut best = 0f32;
        for rot in [Rotation::R90, Rotation::R270, Rotation::R180] {
            let f = frame.rotated(rot);
            let dets = detect(&f);
            let total: f32 = dets.iter().map(|d| d.score).sum();
            if total > best {
                best = total;
                chosen = (rot, Some(f), dets);
            }
        }
    }
    let (rot, rotated, mut dets) = chosen;
    if dets.is_empty() {
        return Vec::new();
    }
    let f = rotated.as_ref().unwrap_or(frame);
    let area = |d: &Detection| d.size().0 * d.size().1;
    dets.sort_by(|a, b| area(b).total_cmp(&area(a)));
    if opts.max_faces > 0 {
        dets.truncate(opts.max_faces);
    }
    let view = f.view();
    let jobs: Vec<_> = dets.iter().map(|d| (view, d.crop())).collect();
    let first = models.landmarker.landmarks(&jobs);
    let accurate = refine(&models.landmarker, view, &first, opts.samples);
    let (w, h) = (frame.width(), frame.height());
    dets.iter()
        .zip(accurate)
        .map(|(d, lm)| FaceFound {
            rect: rot.rect_back(d.rect, w, h),
            score: d.score,
            landmarks: lm.map(|p| rot.point_back(p, w, h)),
        })
        .collect()
}

/// The accurate pass: landmarks again on a crop built from the first landmarks (upright, the
/// roll undone), averaged over `samples` shifted crops; one batch for all faces.
pub fn refine(
    lm: &Landmarker,
    view: RgbView<'_>,
    first: &[Landmarks],
    samples: usize,
) -> Vec<Landmarks> {
    const SHIFTS: [[f32; 2]; 5] = [
        [0.0, 0.0],
        [-1.0, -1.0],
        [1.0, -1.0],
        [1.0, 1.0],
        [-1.0, 1.0],
    ];
    let samples = samples.clamp(1, SHIFTS.len());
    let mut jobs = Vec::with_capacity(first.len() * samples);
    for l in first {
        let c = crop_from_landmarks(l);
        let px = c.side / crate::landmark68::LANDMARK_INPUT as f32;
        for s in &SHIFTS[..samples] {
            jobs.push((
                view,
                Crop {
                    center: [c.center[0] + s[0] * px, c.center[1] + s[1] * px],
                    ..c
                },
            ));
        }
    }
    let out = lm.landmarks(&jobs);
    out.chunks(samples)
        .map(|group| {
            let mut avg = [[0f32; 2]; 68];
            for l in group {
                for (a, p) in avg.iter_mut().zip(l) {
                    a[0] += p[0] / group.len() as f32;
                    a[1] += p[1] / group.len() as f32;
                }
            }
            avg
        })
        .collect()
}

/// Size of a landmark set: the larger side of its bounding box.
pub fn landmark_extent(lm: &Landmarks) -> f32 {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in lm {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    (x1 - x0).max(y1 - y0).max(0.0)
}

/// Mean distance between two landmark sets.
pub fn mean_distance(a: &Landmarks, b: &Landmarks) -> f32 {
    a.iter()
        .zip(b)
        .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
        .sum::<f32>()
        / 68.0
}

/// Video-aware step: each face of the previous frame seeds this frame's crop, the accurate
/// pass follows. `None` when any face is lost (the caller runs the detector instead).
pub fn track_faces(
    models: &Models,
    frame: &Frame,
    prev: &[FaceFound],
    opts: &FindOptions,
) -> Option<Vec<FaceFound>> {
    if prev.is_empty() || frame.width().min(frame.height()) < MIN_FRAME_SIDE {
        return None;
    }
    let view = frame.view();
    let jobs: Vec<_> = prev
        .iter()
        .map(|f| (view, crop_from_landmarks(&f.landmarks)))
        .collect();
    let first = models.landmarker.landmarks(&jobs);
    let accurate = refine(&models.landmarker, view, &first, opts.samples);
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let mut out = Vec::with_capacity(prev.len());
    for ((p, a), b) in prev.iter().zip(&first).zip(accurate) {
        let size = landmark_extent(&b);
        let c = crop_from_landmarks(&b);
        let inside = c.center[0] >= 0.0 && c.center[1] >= 0.0 && c.center[0] < w && c.center[1] < h;
        if size < MIN_FACE_SIDE || !inside || mean_distance(a, &b) > TRACK_LOST * size {
            return None;
        }
        let half = c.side / 2.0;
        out.push(FaceFound {
            rect: [
                (c.center[0] - half).max(0.0),
                (c.center[1] - half).max(0.0),
                (c.center[0] + half).min(w),
                (c.center[1] + half).min(h),
            ],
            score: p.score,
            landmarks: b,
        });
    }
    Some(out)
}
