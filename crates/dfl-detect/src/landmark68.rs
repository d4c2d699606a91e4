//! face-api's FaceLandmark68Net on burn: 68 iBUG points from a 112x112 face crop.
//!
//! Topology (from the npm package's TypeScript sources): input RGB minus the mean
//! (122.782, 117.001, 104.298), divided by 255; four dense blocks (32, 64, 128, 256 channels),
//! each halving the size: `o1 = relu(conv0(x))` (a plain 3x3 stride-2 conv in block 0, a
//! separable one in the others), then separable 3x3 convs `o2 = c1(o1)`,
//! `o3 = c2(relu(o1 + o2))`, `o4 = c3(relu(o1 + o2 + o3))`, output `relu(o1 + o2 + o3 + o4)`;
//! a 7x7 average pool to 1x1x256 and a fully connected layer to 136 values: (x, y) pairs in
//! units of the input square.

use crate::cpu::{self, Act, CpuLandmarks, DenseConv, DepthwiseConv};
use crate::layers::{Conv, get1, get4};
use crate::tfjs::{TfjsError, WeightMap};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

/// Side of the square network input.
pub const LANDMARK_INPUT: usize = 112;
/// Per-channel mean subtracted from 0..255 RGB before dividing by 255.
pub const LANDMARK_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// Depthwise then pointwise 3x3 convolution with one bias, TF "same" padding.
struct Separable {
    depthwise: Conv,
    pointwise: Conv,
}

impl Separable {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pointwise.forward(self.depthwise.forward(x))
    }
}

enum First {
    Plain(Box<Conv>),
    Separable(Box<Separable>),
}

struct DenseBlock {
    conv0: First,
    rest: [Separable; 3],
}

impl DenseBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let o1 = relu(match &self.conv0 {
            First::Plain(c) => c.forward(x),
            First::Separable(s) => s.forward(x),
        });
        let o2 = self.rest[0].forward(o1.clone());
        let o3 = self.rest[1].forward(relu(o1.clone() + o2.clone()));
        let o4 = self.rest[2].forward(relu(o1.clone() + o2.clone() + o3.clone()));
        relu(o1 + o2 + o3 + o4)
    }
}

/// The 68-point landmark net with its weights on one device.
pub struct FaceLandmark68Net {
    blocks: Vec<DenseBlock>,
    fc_w: Tensor<2>,
    fc_b: Tensor<2>,
    /// The same net for the CPU fast path, built when `device` is burn's CPU backend.
    cpu: Option<CpuLandmarks>,
    device: Device,
}

impl FaceLandmark68Net {
    /// Builds the net from face-api's `face_landmark_68_model` weights (with the CPU fast path
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
        let separable = |s: &cpu::Separable| Separable {
            depthwise: s.depthwise.to_engine(device),
            pointwise: s.pointwise.to_engine(device),
        };
        let blocks = cpu
            .blocks
            .iter()
            .map(|b| DenseBlock {
                conv0: match &b.conv0 {
                    Ok(c) => First::Plain(Box::new(c.to_engine(device))),
                    Err(s) => First::Separable(Box::new(separable(s))),
                },
                rest: [
                    separable(&b.rest[0]),
                    separable(&b.rest[1]),
                    separable(&b.rest[2]),
                ],
            })
            .collect();
        let (fw, fb) = (cpu.fc_w.clone(), cpu.fc_b.clone());
        Ok(Self {
            blocks,
            fc_w: Tensor::from_data(TensorData::new(fw, [256, 136]), device),
            fc_b: Tensor::from_data(TensorData::new(fb, [1, 136]), device),
            cpu: keep_cpu.then_some(cpu),
            device: device.clone(),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the net on `n` normalised planar images `[3, 112, 112]` back to back in
    /// `planes`; returns `n` rows of 68 (x, y) points in units of the input square (0..1
    /// inside). Uses the CPU fast path when the net lives on the CPU, else the engine.
    pub fn landmarks_planar(&self, planes: Vec<f32>, n: usize) -> Vec<[[f32; 2]; 68]> {
        let s = LANDMARK_INPUT;
        match &self.cpu {
            Some(cpu) => {
                use rayon::prelude::*;
                planes
                    .par_chunks_exact(3 * s * s)
                    .take(n)
                    .map(|img| cpu.forward(img, s))
                    .collect()
            }
            None => self.forward(Tensor::from_data(
                TensorData::new(planes, [n, 3, s, s]),
                &self.device,
            )),
        }
    }

    /// The engine path of [`FaceLandmark68Net::landmarks_planar`] on a batch
    /// `[n, 3, 112, 112]`.
    pub fn forward(&self, x: Tensor<4>) -> Vec<[[f32; 2]; 68]> {
        let n = x.dims()[0];
        let mut out = x;
        for b in &self.blocks {
            out = b.forward(out);
        }
        // 7x7 "valid" average pool with stride 2 on a 7x7 map = the mean over the map.
        let pooled: Tensor<2> = out.mean_dims(&[2, 3]).reshape([n, 256]);
        let y = pooled.matmul(self.fc_w.clone()) + self.fc_b.clone();
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap_or_default();
        v.chunks_exact(136)
            .map(|row| {
                let mut p = [[0f32; 2]; 68];
                for (k, q) in p.iter_mut().enumerate() {
                    *q = [row[2 * k], row[2 * k + 1]];
                }
                p
            })
            .collect()
    }
}

/// The CPU fast path's copy of the net (same weights, NHWC layers).
fn cpu_from_weights(w: &WeightMap) -> Result<CpuLandmarks, TfjsError> {
    let separable = |prefix: &str, stride: usize| -> Result<cpu::Separable, TfjsError> {
        let (df, ds) = get4(w, &format!("{prefix}/depthwise_filter"))?;
        let (pf, ps) = get4(w, &format!("{prefix}/pointwise_filter"))?;
        let b = get1(w, &format!("{prefix}/bias"), ps[3])?;
        Ok(cpu::Separable {
            depthwise: DepthwiseConv::new(df, ds, &[], &[], stride, Act::None),
            pointwise: DenseConv::new(pf, ps, b, 1, Act::None),
        })
    };
    let mut blocks = Vec::new();
    for i in 0..4 {
        let p = format!("dense{i}");
        let conv0 = if i == 0 {
            let (f, s) = get4(w, &format!("{p}/conv0/filters"))?;
            let b = get1(w, &format!("{p}/conv0/bias"), s[3])?;
            Ok(DenseConv::new(f, s, b, 2, Act::None))
        } else {
            Err(separable(&format!("{p}/conv0"), 2)?)
        };
        blocks.push(cpu::DenseBlock {
            conv0,
            rest: [
                separable(&format!("{p}/conv1"), 1)?,
                separable(&format!("{p}/conv2"), 1)?,
                separable(&format!("{p}/conv3"), 1)?,
            ],
        });
    }
    Ok(CpuLandmarks {
        blocks,
        fc_w: w.get("fc/weights", &[256, 136])?.data.clone(),
        fc_b: get1(w, "fc/bias", 136)?.to_vec(),
    })
}
