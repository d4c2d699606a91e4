//! face-api's SSD-MobileNetV1 face detector on burn.
//!
//! Topology (from the npm package's TypeScript sources; weights from its TF.js files):
//! input 512x512 RGB scaled to [-1, 1]; MobileNetV1 (a 3x3 stride-2 conv, then 13
//! depthwise + pointwise pairs, depthwise strides 2 at pairs 2, 4, 6 and 12, batch norm folded,
//! ReLU6 everywhere); 8 extra pointwise convs (strides 2 at 1, 3, 5, 7); 6 box predictors (1x1
//! convs) on pair 11's output (32x32, 3 anchors per cell), the backbone output (16x16, 6) and
//! extra convs 1, 3, 5, 7 (8x8, 4x4, 2x2, 1x1; 6 each): 5,118 anchors, stored in the weights
//! as `Output/extra_dim`. Box decoding is the TF object-detection one (centre offsets / 10,
//! log-size / 5); the face score is `sigmoid(class logit 1)`.

use crate::cpu::{Act, CpuSsd, DenseConv, DepthwiseConv};
use crate::layers::{Conv, get1, get4};
use crate::tfjs::{TfjsError, WeightMap};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

/// Side of the square network input face-api uses (and the default here).
pub const SSD_INPUT: usize = 512;
/// Number of anchors (and raw detections) per image.
pub const SSD_ANCHORS: usize = 5118;
const BN_EPS: f32 = 0.001;

/// One raw detection in the network's unit square: `[ymin, xmin, ymax, xmax]` and a score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawBox {
    /// `[ymin, xmin, ymax, xmax]`, in units of the padded square input (0..1 inside).
    pub yxyx: [f32; 4],
    /// Face probability.
    pub score: f32,
}

struct Pair {
    depthwise: Conv,
    pointwise: Conv,
}

/// The SSD-MobileNetV1 detector with its weights on one device.
pub struct SsdMobilenetV1 {
    conv0: Conv,
    pairs: Vec<Pair>,
    extra: Vec<Conv>,
    box_enc: Vec<Conv>,
    class: Vec<Conv>,
    /// Per prediction layer, the anchor boxes' (height, width) in units of the input square,
    /// read from the stored anchors; they tile any grid (see [`anchors_for`]).
    shapes: Vec<Vec<[f32; 2]>>,
    /// The same net for the CPU fast path, built when `device` is burn's CPU backend.
    cpu: Option<CpuSsd>,
    device: Device,
}

/// The grids of the six prediction layers at the stored 512 input, and anchors per cell.
const STORED_GRIDS: [(usize, usize); 6] = [(32, 3), (16, 6), (8, 6), (4, 6), (2, 6), (1, 6)];

/// Anchors `[ymin, xmin, ymax, xmax]` for prediction layers with grids `grids` (side of each
/// square feature map): every cell centre `((i + 0.5) / g, (j + 0.5) / g)` with every shape of
/// its layer, row-major, shapes innermost (TF object detection's grid anchor generator).
pub fn anchors_for(shapes: &[Vec<[f32; 2]>], grids: &[usize]) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (sh, &g) in shapes.iter().zip(grids) {
        for i in 0..g {
            for j in 0..g {
                let (cy, cx) = ((i as f32 + 0.5) / g as f32, (j as f32 + 0.5) / g as f32);
                for [h, w] in sh {
                    out.push([cy - h / 2.0, cx - w / 2.0, cy + h / 2.0, cx + w / 2.0]);
                }
            }
        }
    }
    out
}

impl SsdMobilenetV1 {
    /// Builds the net from face-api's `ssd_mobilenetv1_model` weights (with the CPU fast path
    /// when `device` is burn's CPU backend).
    pub fn from_weights(w: &WeightMap, device: &Device) -> Result<Self, TfjsError> {
        Self::build(w, device, *device == Device::flex())
    }

    /// The engine path only (the reference the CPU fast path is tested against). Its layers
    /// are built from the CPU path's, so the weight names are read in one place.
    pub fn engine_from_weights(w: &WeightMap, device: &Device) -> Result<Self, TfjsError> {
        Self::build(w, device, false)
    }

    /// The engine layers on `device`, and the CPU path's when `keep_cpu`.
    fn build(w: &WeightMap, device: &Device, keep_cpu: bool) -> Result<Self, TfjsError> {
        let cpu = cpu_from_weights(w)?;
        let conv0 = cpu.conv0.to_engine(device);
        let pairs = cpu
            .pairs
            .iter()
            .map(|(dw, pw)| Pair {
                depthwise: dw.to_engine(device),
                pointwise: pw.to_engine(device),
            })
            .collect();
        let extra = cpu.extra.iter().map(|c| c.to_engine(device)).collect();
        let box_enc = cpu.heads.iter().map(|h| h.0.to_engine(device)).collect();
        let class = cpu.heads.iter().map(|h| h.1.to_engine(device)).collect();
        let a = w.get("Output/extra_dim", &[1, SSD_ANCHORS, 4])?;
        let stored: Vec<[f32; 4]> = a
            .data
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        let mut shapes = Vec::new();
        let mut start = 0;
        for (g, k) in STORED_GRIDS {
            let cell = stored.get(start..start + k).unwrap_or(&[]);
            shapes.push(cell.iter().map(|b| [b[2] - b[0], b[3] - b[1]]).collect());
            start += g * g * k;
        }
        // The stored anchors must be exactly a grid tiling of these shapes, otherwise other
        // input sizes could not be served.
        let grids: Vec<usize> = STORED_GRIDS.iter().map(|g| g.0).collect();
        let tiled = anchors_for(&shapes, &grids);
        let off = tiled
            .iter()
            .zip(&stored)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max);
        if tiled.len() != stored.len() || off > 1e-4 {
            return Err(TfjsError::Missing {
                model: w.model.clone(),
                name: "Output/extra_dim".into(),
                what: format!("is not a regular anchor grid (off by {off})"),
            });
        }
        Ok(Self {
            conv0,
            pairs,
            extra,
            box_enc,
            class,
            shapes,
            cpu: keep_cpu.then_some(cpu),
            device: device.clone(),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the net on `n` planar images `[3, s, s]` back to back in `planes`, already
    /// scaled to [-1, 1] (face-api uses s = 512; any size works, the anchors are re-tiled to
    /// the feature maps), and returns every anchor's decoded box and score, per image. Uses
    /// the CPU fast path when the net lives on the CPU, else the engine.
    pub fn detect_planar(&self, planes: Vec<f32>, n: usize, s: usize) -> Vec<Vec<RawBox>> {
        match &self.cpu {
            Some(cpu) => planes
                .chunks_exact(3 * s * s)
                .take(n)
                .map(|img| {
                    let (b, c, grids) = cpu.forward(img, s);
                    let scores: Vec<f32> = c
                        .chunks_exact(3)
                        .map(|l| 1.0 / (1.0 + (-l[1]).exp()))
                        .collect();
                    let anchors = anchors_for(&self.shapes, &grids);
                    decode_all(&anchors, &b, &scores, 1)
                        .pop()
                        .unwrap_or_default()
                })
                .collect(),
            None => self.forward(Tensor::from_data(
                TensorData::new(planes, [n, 3, s, s]),
                &self.device,
            )),
        }
    }

    /// The engine path of [`SsdMobilenetV1::detect_planar`] on a batch `[n, 3, s, s]`.
    pub fn forward(&self, x: Tensor<4>) -> Vec<Vec<RawBox>> {
        let relu6 = |t: Tensor<4>| t.clamp(0.0, 6.0);
        let mut out = relu6(self.conv0.forward(x));
        let mut conv11 = None;
        for (i, p) in self.pairs.iter().enumerate() {
            out = relu6(p.depthwise.forward(out));
            out = relu6(p.pointwise.forward(out));
            if i + 1 == 11 {
                conv11 = Some(out.clone());
            }
        }
        let mut feats = vec![conv11.unwrap_or_else(|| out.clone()), out.clone()];
        let mut e = out;
        for (i, c) in self.extra.iter().enumerate() {
            e = relu6(c.forward(e));
            if i % 2 == 1 {
                feats.push(e.clone());
            }
        }
        let n = feats[0].dims()[0];
        let grids: Vec<usize> = feats.iter().map(|f| f.dims()[2]).collect();
        let anchors = anchors_for(&self.shapes, &grids);
        let mut boxes = Vec::new();
        let mut classes = Vec::new();
        for (i, f) in feats.into_iter().enumerate() {
            let b = self.box_enc[i].forward(f.clone()).permute([0, 2, 3, 1]);
            let c = self.class[i].forward(f).permute([0, 2, 3, 1]);
            boxes.push(b.reshape([n as i64, -1, 4]));
            classes.push(c.reshape([n as i64, -1, 3]));
        }
        let boxes: Tensor<3> = Tensor::cat(boxes, 1);
        let scores = sigmoid(Tensor::cat(classes, 1).narrow(2, 1, 1));
        let b: Vec<f32> = boxes.into_data().try_to_vec::<f32>().unwrap_or_default();
        let s: Vec<f32> = scores.into_data().try_to_vec::<f32>().unwrap_or_default();
        decode_all(&anchors, &b, &s, n)
    }
}

/// Decoded boxes of `n` images from their box encodings (4 per anchor) and scores.
fn decode_all(anchors: &[[f32; 4]], b: &[f32], s: &[f32], n: usize) -> Vec<Vec<RawBox>> {
    let count = anchors.len();
    (0..n)
        .map(|bi| {
            (0..count)
                .filter_map(|k| {
                    let enc = b.get((bi * count + k) * 4..(bi * count + k) * 4 + 4)?;
                    let score = *s.get(bi * count + k)?;
                    let a = anchors.get(k)?;
                    Some(RawBox {
                        yxyx: decode_box(a, enc),
                        score,
                    })
                })
                .collect()
        })
        .collect()
}

/// A depthwise layer's batch norm folded into a per-channel `(scale, shift)`.
fn folded_batch_norm(
    w: &WeightMap,
    prefix: &str,
    c: usize,
) -> Result<(Vec<f32>, Vec<f32>), TfjsError> {
    let gamma = get1(w, &format!("{prefix}/BatchNorm/gamma"), c)?;
    let beta = get1(w, &format!("{prefix}/BatchNorm/beta"), c)?;
    let mean = get1(w, &format!("{prefix}/BatchNorm/moving_mean"), c)?;
    let var = get1(w, &format!("{prefix}/BatchNorm/moving_variance"), c)?;
    let scale: Vec<f32> = (0..c)
        .map(|k| gamma[k] / (var[k] + BN_EPS).sqrt())
        .collect();
    let shift = (0..c).map(|k| beta[k] - mean[k] * scale[k]).collect();
    Ok((scale, shift))
}

/// The CPU fast path's copy of the net (same weights, NHWC layers).
fn cpu_from_weights(w: &WeightMap) -> Result<CpuSsd, TfjsError> {
    let dense = |prefix: &str, bias: &str, stride: usize, act: Act| {
        let (f, s) = get4(w, &format!("{prefix}/weights"))?;
        let b = get1(w, &format!("{prefix}/{bias}"), s[3])?;
        Ok::<_, TfjsError>(DenseConv::new(f, s, b, stride, act))
    };
    let bn = "convolution_bn_offset";
    let conv0 = dense("MobilenetV1/Conv2d_0_pointwise", bn, 2, Act::Relu6)?;
    let mut pairs = Vec::new();
    for i in 1..=13 {
        let p = format!("MobilenetV1/Conv2d_{i}_depthwise");
        let (f, s) = get4(w, &format!("{p}/depthwise_weights"))?;
        let (scale, shift) = folded_batch_norm(w, &p, s[2])?;
        let stride = if [2, 4, 6, 12].contains(&i) { 2 } else { 1 };
        pairs.push((
            DepthwiseConv::new(f, s, &scale, &shift, stride, Act::Relu6),
            dense(
                &format!("MobilenetV1/Conv2d_{i}_pointwise"),
                bn,
                1,
                Act::Relu6,
            )?,
        ));
    }
    let extra = (0..8)
        .map(|i| {
            dense(
                &format!("Prediction/Conv2d_{i}_pointwise"),
                bn,
                1 + i % 2,
                Act::Relu6,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let heads = (0..6)
        .map(|i| {
            let p = format!("Prediction/BoxPredictor_{i}");
            Ok((
                dense(&format!("{p}/BoxEncodingPredictor"), "biases", 1, Act::None)?,
                dense(&format!("{p}/ClassPredictor"), "biases", 1, Act::None)?,
            ))
        })
        .collect::<Result<Vec<_>, TfjsError>>()?;
    Ok(CpuSsd {
        conv0,
        pairs,
        extra,
        heads,
    })
}

/// TF object-detection box decoding of `enc` (`[ty, tx, th, tw]`) against `anchor`
/// (`[ymin, xmin, ymax, xmax]`), as face-api does it.
pub fn decode_box(anchor: &[f32; 4], enc: &[f32]) -> [f32; 4] {
    let (h, w) = (anchor[2] - anchor[0], anchor[3] - anchor[1]);
    let (cy, cx) = (anchor[0] + h / 2.0, anchor[1] + w / 2.0);
    let half_h = (enc[2] / 5.0).exp() * h / 2.0;
    let half_w = (enc[3] / 5.0).exp() * w / 2.0;
    let y = enc[0] / 10.0 * h + cy;
    let x = enc[1] / 10.0 * w + cx;
    [y - half_h, x - half_w, y + half_h, x + half_w]
}

/// face-api's greedy non-maximum suppression: candidates with `score > min_score`, best
/// first; a candidate is dropped when its IoU with a kept box exceeds `iou`. Returns indices.
pub fn nms(boxes: &[RawBox], iou: f32, min_score: f32, max_results: usize) -> Vec<usize> {
    let mut cand: Vec<usize> = (0..boxes.len())
        .filter(|&i| boxes[i].score > min_score)
        .collect();
    cand.sort_by(|&a, &b| boxes[b].score.total_cmp(&boxes[a].score));
    let mut keep: Vec<usize> = Vec::new();
    for c in cand {
        if keep.len() >= max_results {
            break;
        }
        if keep
            .iter()
            .all(|&k| iou_yxyx(&boxes[c].yxyx, &boxes[k].yxyx) <= iou)
        {
            keep.push(c);
        }
    }
    keep
}

/// Intersection over union of two `[ymin, xmin, ymax, xmax]` boxes (0 for empty ones).
pub fn iou_yxyx(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let norm = |r: &[f32; 4]| {
        [
            r[0].min(r[2]),
            r[1].min(r[3]),
            r[0].max(r[2]),
            r[1].max(r[3]),
        ]
    };
    let (a, b) = (norm(a), norm(b));
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let (aa, ab) = (area(&a), area(&b));
    if aa <= 0.0 || ab <= 0.0 {
        return 0.0;
    }
    let ih = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iw = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ih * iw;
    inter / (aa + ab - inter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_encoding_returns_the_anchor() {
        let a = [0.1, 0.2, 0.5, 0.4];
        let d = decode_box(&a, &[0.0; 4]);
        for k in 0..4 {
            assert!((d[k] - a[k]).abs() < 1e-6);
        }
        // A log-size of 5 * ln 2 doubles the box about its centre.
        let d = decode_box(&a, &[0.0, 0.0, 5.0 * 2f32.ln(), 0.0]);
        assert!((d[0] - (-0.1)).abs() < 1e-6 && (d[2] - 0.7).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let b = |y: f32, s: f32| RawBox {
            yxyx: [y, 0.0, y + 1.0, 1.0],
            score: s,
        };
        let boxes = [b(0.0, 0.9), b(0.1, 0.95), b(3.0, 0.6), b(5.0, 0.4)];
        assert_eq!(nms(&boxes, 0.5, 0.5, 100), vec![1, 2]);
        assert_eq!(nms(&boxes, 0.5, 0.5, 1), vec![1]);
        assert!((iou_yxyx(&boxes[0].yxyx, &boxes[1].yxyx) - 0.9 / 1.1).abs() < 1e-6);
    }
}
