//! The two pretrained nets behind small, batch-friendly calls: faces in an image, and 68
//! landmarks in a square around a face. Weights are compiled into the binary (from
//! `assets/models/face-api/`, pinned by SHA-256), so extraction needs no files or network.

use crate::landmark68::{FaceLandmark68Net, LANDMARK_INPUT, LANDMARK_MEAN_RGB};
use crate::prep::{Crop, RgbView, sample_planar};
use crate::ssd::{RawBox, SSD_INPUT, SsdMobilenetV1, nms};
use crate::tfjs::{TfjsError, WeightMap};
use burn::tensor::Device;

const SSD_MANIFEST: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/models/face-api/ssd_mobilenetv1_model-weights_manifest.json"
));
const SSD_BIN: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/models/face-api/ssd_mobilenetv1_model.bin"
));
const LM_MANIFEST: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/models/face-api/face_landmark_68_model-weights_manifest.json"
));
const LM_BIN: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/models/face-api/face_landmark_68_model.bin"
));

/// 68 landmark points (x, y) in image pixels, iBUG-300W order.
pub type Landmarks = [[f32; 2]; 68];

/// A detected face: its box in image pixels and the detector's confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `[left, top, right, bottom]` in pixels, clipped to the image.
    pub rect: [f32; 4],
    /// Face probability, 0..1.
    pub score: f32,
}

impl Detection {
    /// Width and height of the box.
    pub fn size(&self) -> (f32, f32) {
        (self.rect[2] - self.rect[0], self.rect[3] - self.rect[1])
    }

    /// The square the landmark net reads for this box, as face-api builds it: centred on the
    /// box, side = the longer box side.
    pub fn crop(&self) -> Crop {
        let (w, h) = self.size();
        Crop::upright(
            [
                (self.rect[0] + self.rect[2]) / 2.0,
                (self.rect[1] + self.rect[3]) / 2.0,
            ],
            w.max(h).max(1.0),
        )
    }
}

/// The detector-like crop for a face whose landmarks are known (tracking, second pass),
/// rotated to undo the face's roll so the net sees an upright face.
///
/// Calibrated on face-api's own boxes over the 22 demo faces: in the face's upright frame,
/// side = 1.345 x the larger landmark extent, centre 0.155 of it above the centre of the
/// landmarks' bounding box (spread over the 22 faces: 0.09 and 0.03).
pub fn crop_from_landmarks(lm: &Landmarks) -> Crop {
    let eye = |r: std::ops::Range<usize>| {
        let n = r.len() as f32;
        r.fold([0f32; 2], |a, i| [a[0] + lm[i][0] / n, a[1] + lm[i][1] / n])
    };
    let (r, l) = (eye(36..42), eye(42..48));
    let angle = (l[1] - r[1]).atan2(l[0] - r[0]);
    let (s, c) = angle.sin_cos();
    // Landmarks in the upright frame (rotate by -angle).
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in lm {
        let (u, v) = (c * p[0] + s * p[1], -s * p[0] + c * p[1]);
        x0 = x0.min(u);
        y0 = y0.min(v);
        x1 = x1.max(u);
        y1 = y1.max(v);
    }
    let m = (x1 - x0).max(y1 - y0).max(1.0);
    let (u, v) = ((x0 + x1) / 2.0 + 0.014 * m, (y0 + y1) / 2.0 - 0.155 * m);
    Crop {
        center: [c * u - s * v, s * u + c * v],
        side: 1.345 * m,
        angle,
    }
}

/// Detector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    /// Minimum face probability (face-api's default 0.5).
    pub min_score: f32,
    /// IoU above which the weaker of two boxes is dropped (face-api: 0.5).
    pub iou: f32,
    /// At most this many faces per image.
    pub max_results: usize,
    /// Side of the square the image is letterboxed into (face-api: 512). The anchors cover
    /// the same fractions of the image at any size, so a smaller input is faster and loses
    /// only detail on small faces.
    pub input_size: usize,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self {
            min_score: 0.5,
            iou: 0.5,
            max_results: 100,
            input_size: SSD_INPUT,
        }
    }
}

/// SSD-MobileNetV1 face detector.
pub struct FaceDetector {
    net: SsdMobilenetV1,
    /// Thresholds used by [`FaceDetector::detect`].
    pub options: DetectorOptions,
}

impl FaceDetector {
    /// The bundled face-api weights on `device`.
    pub fn bundled(device: &Device) -> Result<Self, TfjsError> {
        let w = WeightMap::from_bytes(
            "ssd_mobilenetv1_model-weights_manifest.json",
            SSD_MANIFEST,
            &[SSD_BIN.to_vec()],
        )?;
        Self::from_weights(&w, device)
    }

    /// A detector from already loaded weights.
    pub fn from_weights(w: &WeightMap, device: &Device) -> Result<Self, TfjsError> {
        Ok(Self {
            net: SsdMobilenetV1::from_weights(w, device)?,
            options: DetectorOptions::default(),
        })
    }

    /// Faces in each image, best score first. Each image is letterboxed (scaled so its longer
    /// side is 512, padded black at the right or bottom) as face-api does.
    pub fn detect(&self, images: &[RgbView<'_>]) -> Vec<Vec<Detection>> {
        let regions: Vec<_> = images
            .iter()
            .map(|img| {
                let longest = img.width().max(img.height()).max(1) as f32;
                (
                    *img,
                    Region {
                        x: 0.0,
                        y: 0.0,
                        side: longest,
                    },
                )
            })
            .collect();
        self.detect_regions(&regions)
    }

    /// Faces in square regions of images (one batch), in image pixels, clipped to the region
    /// and the image; best score first per region.
    pub fn detect_regions(&self, jobs: &[(RgbView<'_>, Region)]) -> Vec<Vec<Detection>> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let n = self.options.input_size.clamp(64, 2048);
        let buf = Self::planar_input(jobs, n);
        let raw = self.net.detect_planar(buf, jobs.len(), n);
        jobs.iter()
            .zip(raw)
            .map(|((img, r), boxes)| {
                let x1 = (r.x + r.side).min(img.width() as f32);
                let y1 = (r.y + r.side).min(img.height() as f32);
                let (x0, y0) = (r.x.max(0.0), r.y.max(0.0));
                nms(
                    &boxes,
                    self.options.iou,
                    self.options.min_score,
                    self.options.max_results,
                )
                .into_iter()
                .map(|i| {
                    let b = boxes[i].yxyx;
                    Detection {
                        rect: [
                            (r.x + b[1] * r.side).clamp(x0, x1),
                            (r.y + b[0] * r.side).clamp(y0, y1),
                            (r.x + b[3] * r.side).clamp(x0, x1),
                            (r.y + b[2] * r.side).clamp(y0, y1),
                        ],
                        score: boxes[i].score,
                    }
                })
                .filter(|d| d.size().0 > 0.0 && d.size().1 > 0.0)
                .collect()
            })
            .collect()
    }

    /// The regions resampled to the net's `n x n` input, planar, scaled to [-1, 1].
    fn planar_input(jobs: &[(RgbView<'_>, Region)], n: usize) -> Vec<f32> {
        let mut buf = vec![0f32; jobs.len() * 3 * n * n];
        for ((img, r), dst) in jobs.iter().zip(buf.chunks_mut(3 * n * n)) {
            let s = r.side / n as f32;
            let k = 1.0 / 127.5;
            // TF's resizeBilinear without half-pixel centres (output pixel i reads source
            // i * s), as face-api feeds the net: boxes then match face-api's to IoU > 0.98.
            sample_planar(
                img,
                [[s, 0.0, r.x], [0.0, s, r.y]],
                n,
                n,
                [k; 3],
                [-1.0; 3],
                dst,
            );
        }
        buf
    }

    /// Faces including small ones: the whole image, then overlapping square tiles (side
    /// `max(512, longer side / 2)`, at most the shorter side, 25 % overlap) so that faces down
    /// to ~5 % of the longer side are seen at a size the net finds. Tile boxes cut by an inner
    /// tile border are dropped (the overlapping tile sees them whole); everything is merged
    /// by NMS. Costs one detector run per tile.
    pub fn detect_tiled(&self, img: RgbView<'_>) -> Vec<Detection> {
        let (w, h) = (img.width() as f32, img.height() as f32);
        let (long, short) = (w.max(h), w.min(h));
        let side = (long / 2.0).max(512.0).min(short);
        let mut jobs = vec![(
            img,
            Region {
                x: 0.0,
                y: 0.0,
                side: long,
            },
        )];
        if side < long * 0.75 {
            let starts = |len: f32| -> Vec<f32> {
                let n = ((len - side) / (0.75 * side)).ceil().max(0.0) as usize + 1;
                (0..n)
                    .map(|i| {
                        if n == 1 {
                            0.0
                        } else {
                            (len - side) * i as f32 / (n - 1) as f32
                        }
                    })
                    .collect()
            };
            for y in starts(h) {
                for x in starts(w) {
                    jobs.push((img, Region { x, y, side }));
                }
            }
        }
        let per = self.detect_regions(&jobs);
        let mut all: Vec<Detection> = Vec::new();
        for ((_, r), dets) in jobs.iter().zip(per) {
            for d in dets {
                let cut = |v: f32, edge: f32, inner: bool| inner && (v - edge).abs() < 2.0;
                let touches = cut(d.rect[0], r.x, r.x > 0.5)
                    || cut(d.rect[1], r.y, r.y > 0.5)
                    || cut(d.rect[2], r.x + r.side, r.x + r.side < w - 0.5)
                    || cut(d.rect[3], r.y + r.side, r.y + r.side < h - 0.5);
                if r.side < long && touches {
                    continue;
                }
                all.push(d);
            }
        }
        let raw: Vec<RawBox> = all
            .iter()
            .map(|d| RawBox {
                yxyx: [d.rect[1], d.rect[0], d.rect[3], d.rect[2]],
                score: d.score,
            })
            .collect();
        nms(
            &raw,
            self.options.iou,
            self.options.min_score,
            self.options.max_results,
        )
        .into_iter()
        .filter_map(|i| all.get(i).copied())
        .collect()
    }
}

/// A square region of an image for the detector, in pixels (may extend past the image; the
/// outside reads black).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Side length.
    pub side: f32,
}

/// FaceLandmark68Net: 68 points for a square around a face.
pub struct Landmarker {
    net: FaceLandmark68Net,
}

impl Landmarker {
    /// The bundled face-api weights on `device`.
    pub fn bundled(device: &Device) -> Result<Self, TfjsError> {
        let w = WeightMap::from_bytes(
            "face_landmark_68_model-weights_manifest.json",
            LM_MANIFEST,
            &[LM_BIN.to_vec()],
        )?;
        Self::from_weights(&w, device)
    }

    /// A landmarker from already loaded weights.
    pub fn from_weights(w: &WeightMap, device: &Device) -> Result<Self, TfjsError> {
        Ok(Self {
            net: FaceLandmark68Net::from_weights(w, device)?,
        })
    }

    /// Landmarks for every `(image, crop)` pair, in image pixels, computed as one batch.
    pub fn landmarks(&self, jobs: &[(RgbView<'_>, Crop)]) -> Vec<Landmarks> {
        if jobs.is_empty() {
            return Vec::new();
        }
        self.net
            .landmarks_planar(Self::planar_input(jobs), jobs.len())
            .into_iter()
            .zip(jobs)
            .map(|(pts, (_, crop))| pts.map(|[u, v]| crop.to_image(u, v)))
            .collect()
    }

    /// The crops resampled to the net's 112 x 112 input, planar, normalised as face-api does.
    fn planar_input(jobs: &[(RgbView<'_>, Crop)]) -> Vec<f32> {
        let n = LANDMARK_INPUT;
        let mut buf = vec![0f32; jobs.len() * 3 * n * n];
        let k = 1.0 / 255.0;
        let shift = LANDMARK_MEAN_RGB.map(|m| -m / 255.0);
        for ((img, crop), dst) in jobs.iter().zip(buf.chunks_mut(3 * n * n)) {
            sample_planar(img, crop.sampling_matrix(n), n, n, [k; 3], shift, dst);
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::load_frame;
    use burn::tensor::{Tensor, TensorData};
    use std::path::Path;

    /// The detector's CPU fast path gives the engine path's boxes and scores on every anchor
    /// of a real photo, at face-api's input size and another one, one and two images a call.
    #[test]
    fn cpu_fast_path_matches_the_engine() {
        let dev = Device::flex();
        let det = FaceDetector::bundled(&dev).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/samples/sample1.jpg");
        let frame = load_frame(&path).unwrap();
        let img = frame.view();
        let side = img.width().max(img.height()) as f32;
        let region = Region {
            x: 0.0,
            y: 0.0,
            side,
        };
        let half = Region {
            x: 0.0,
            y: 0.0,
            side: side / 2.0,
        };
        for (n, jobs) in [
            (512, vec![(img, region)]),
            (320, vec![(img, region), (img, half)]),
        ] {
            let buf = FaceDetector::planar_input(&jobs, n);
            let fast = det.net.detect_planar(buf.clone(), jobs.len(), n);
            let engine = det.net.forward(Tensor::from_data(
                TensorData::new(buf, [jobs.len(), 3, n, n]),
                &dev,
            ));
            assert_eq!(fast.len(), jobs.len());
            for (f, e) in fast.iter().zip(&engine) {
                assert_eq!(f.len(), e.len());
                let (mut d_box, mut d_score) = (0f32, 0f32);
                for (a, b) in f.iter().zip(e) {
                    d_score = d_score.max((a.score - b.score).abs());
                    for k in 0..4 {
                        d_box = d_box.max((a.yxyx[k] - b.yxyx[k]).abs());
                    }
                }
                assert!(
                    d_box < 1e-4 && d_score < 1e-4,
                    "input {n}: boxes {d_box}, scores {d_score}"
                );
                assert!(f.iter().any(|b| b.score > 0.9), "input {n}: no face found");
            }
        }
    }

    /// The landmark net's CPU fast path gives the engine path's points on the faces of a
    /// real photo (several crops in one call, one of them the landmark-based crop of the
    /// second, accurate pass).
    #[test]
    fn landmark_cpu_fast_path_matches_the_engine() {
        let dev = Device::flex();
        let det = FaceDetector::bundled(&dev).unwrap();
        let lm = Landmarker::bundled(&dev).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/samples/sample1.jpg");
        let frame = load_frame(&path).unwrap();
        let img = frame.view();
        let faces = det.detect(&[img]).remove(0);
        assert!(faces.len() >= 2, "{} faces", faces.len());
        let mut jobs: Vec<(RgbView<'_>, Crop)> = faces.iter().map(|f| (img, f.crop())).collect();
        let pts = lm.landmarks(&jobs[..1]).remove(0);
        jobs.push((img, crate::nets::crop_from_landmarks(&pts)));
        let n = LANDMARK_INPUT;
        let buf = Landmarker::planar_input(&jobs);
        let fast = lm.net.landmarks_planar(buf.clone(), jobs.len());
        let engine = lm.net.forward(Tensor::from_data(
            TensorData::new(buf, [jobs.len(), 3, n, n]),
            &dev,
        ));
        assert_eq!(fast.len(), jobs.len());
        let worst = fast
            .iter()
            .zip(&engine)
            .flat_map(|(a, b)| {
                a.iter()
                    .zip(b)
                    .map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs()))
            })
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "landmarks differ by {worst} of the crop");
    }
}
