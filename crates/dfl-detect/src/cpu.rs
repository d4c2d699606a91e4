//! CPU fast paths of the two nets: the same SSD detector as [`crate::ssd`] and the same
//! landmark net as [`crate::landmark68`], in NHWC layout, with bias and activation fused into
//! each layer, depthwise convolutions vectorised over channels and every pointwise
//! convolution as one matrix product on all cores.
//!
//! Why: on the CPU the engine path spends most of a frame outside the matrix products
//! (layout changes around each depthwise convolution, a separate pass for each activation,
//! buffers zeroed and copied per layer); this path does the same arithmetic in one pass per
//! layer. The engine path stays the reference (and the path for GPUs): tests keep the two
//! equal.

use crate::layers::{Conv, same_pad};
use burn::tensor::Device;
use rayon::prelude::*;

/// Row-major `c[m x n] = a[m x k] * b[k x n]`, on all cores when the product is large.
fn sgemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "sgemm operands too short for {m}x{k} * {k}x{n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    let parallelism = if m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above keeps every access of the row-major m x k, k x n and m x n
    // operands (unit column stride, row strides k, n and n) inside the three slices, and
    // `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// What follows a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Nothing (the predictor heads).
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

fn activate(v: &mut [f32], act: Act) {
    match act {
        Act::None => {}
        Act::Relu => {
            for x in v {
                *x = x.max(0.0);
            }
        }
        Act::Relu6 => {
            for x in v {
                *x = x.clamp(0.0, 6.0);
            }
        }
    }
}

/// An NHWC feature map of one image.
#[derive(Debug, Clone)]
pub struct Map {
    /// `h * w * c` values, channels innermost.
    pub data: Vec<f32>,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Map {
    /// An NHWC map from one image of a planar NCHW buffer (`c` planes of `h x w`).
    pub fn from_planar(planes: &[f32], c: usize, h: usize, w: usize) -> Self {
        let plane = h * w;
        let mut data = vec![0f32; plane * c];
        for (i, px) in data.chunks_exact_mut(c).enumerate() {
            for (k, v) in px.iter_mut().enumerate() {
                *v = planes.get(k * plane + i).copied().unwrap_or(0.0);
            }
        }
        Self { data, h, w, c }
    }
}

/// A regular `k x k` convolution with TF "same" padding, TF's `[kh, kw, in, out]` filters
/// (which, read row-major, are already the `(k*k*in) x out` matrix of an im2col product).
#[derive(Debug, Clone)]
pub struct DenseConv {
    weights: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    stride: usize,
    cin: usize,
    cout: usize,
    act: Act,
}

impl DenseConv {
    /// From TF filters of shape `[k, k, cin, cout]` and a bias of `cout`.
    pub fn new(filters: &[f32], shape: [usize; 4], bias: &[f32], stride: usize, act: Act) -> Self {
        let [k, _, cin, cout] = shape;
        Self {
            weights: filters.to_vec(),
            bias: bias.to_vec(),
            k,
            stride: stride.max(1),
            cin,
            cout,
            act,
        }
    }

    /// The same layer for the engine path (without the activation, which the engine path
    /// applies itself).
    pub fn to_engine(&self, device: &Device) -> Conv {
        Conv::dense(
            &self.weights,
            [self.k, self.k, self.cin, self.cout],
            Some(&self.bias),
            self.stride,
            device,
        )
    }

    /// Applies the convolution (and the activation).
    pub fn forward(&self, x: &Map) -> Map {
        let (oh, ow) = (x.h.div_ceil(self.stride), x.w.div_ceil(self.stride));
        let rows = oh * ow;
        let mut out = vec![0f32; rows * self.cout];
        if self.k == 1 && self.stride == 1 {
            sgemm(&x.data, &self.weights, &mut out, rows, self.cin, self.cout);
        } else {
            let (pt, _) = same_pad(x.h, self.k, self.stride);
            let (pl, _) = same_pad(x.w, self.k, self.stride);
            let cols = self.k * self.k * self.cin;
            let mut col = vec![0f32; rows * cols];
            col.par_chunks_mut(ow * cols)
                .enumerate()
                .for_each(|(oy, row)| {
                    for (ox, patch) in row.chunks_exact_mut(cols).enumerate() {
                        for ky in 0..self.k {
                            let iy = (oy * self.stride + ky).checked_sub(pt);
                            for kx in 0..self.k {
                                let ix = (ox * self.stride + kx).checked_sub(pl);
                                let dst = &mut patch[(ky * self.k + kx) * self.cin..][..self.cin];
                                match (iy, ix) {
                                    (Some(iy), Some(ix)) if iy < x.h && ix < x.w => {
                                        let at = (iy * x.w + ix) * x.c;
                                        dst.copy_from_slice(&x.data[at..at + self.cin]);
                                    }
                                    _ => dst.fill(0.0),
                                }
                            }
                        }
                    }
                });
            sgemm(&col, &self.weights, &mut out, rows, cols, self.cout);
        }
        out.par_chunks_mut(self.cout.max(1) * 64).for_each(|chunk| {
            for px in chunk.chunks_exact_mut(self.cout) {
                for (v, b) in px.iter_mut().zip(&self.bias) {
                    *v += b;
                }
                activate(px, self.act);
            }
        });
        Map {
            data: out,
            h: oh,
            w: ow,
            c: self.cout,
        }
    }
}

/// A depthwise `k x k` convolution with TF "same" padding, an optional folded batch norm
/// (the scale in the filters, the shift as a bias) and an activation.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    /// `k * k * c`, channels innermost (TF's `[kh, kw, c, 1]` order), scale folded in.
    weights: Vec<f32>,
    /// `c` values (zeros without a batch norm).
    bias: Vec<f32>,
    k: usize,
    stride: usize,
    act: Act,
}

impl DepthwiseConv {
    /// From TF filters `[k, k, c, 1]` and the per-channel batch-norm `scale` and `shift`
    /// (empty slices: none).
    pub fn new(
        filters: &[f32],
        shape: [usize; 4],
        scale: &[f32],
        shift: &[f32],
        stride: usize,
        act: Act,
    ) -> Self {
        let [k, _, c, _] = shape;
        let weights = filters
            .iter()
            .enumerate()
            .map(|(i, w)| w * scale.get(i % c.max(1)).copied().unwrap_or(1.0))
            .collect();
        let bias = (0..c)
            .map(|i| shift.get(i).copied().unwrap_or(0.0))
            .collect();
        Self {
            weights,
            bias,
            k,
            stride: stride.max(1),
            act,
        }
    }

    /// The same layer for the engine path (batch-norm scale already in the filters, the shift
    /// as the bias; without the activation, which the engine path applies itself).
    pub fn to_engine(&self, device: &Device) -> Conv {
        let c = self.bias.len();
        Conv::depthwise(
            &self.weights,
            [self.k, self.k, c, 1],
            &self.bias,
            self.stride,
            device,
        )
    }

    /// Applies the convolution, batch norm and activation.
    pub fn forward(&self, x: &Map) -> Map {
        let c = x.c;
        let (oh, ow) = (x.h.div_ceil(self.stride), x.w.div_ceil(self.stride));
        let (pt, _) = same_pad(x.h, self.k, self.stride);
        let (pl, _) = same_pad(x.w, self.k, self.stride);
        let mut out = vec![0f32; oh * ow * c];
        out.par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(oy, row)| self.row(x, oy, [pt, pl], row));
        Map {
            data: out,
            h: oh,
            w: ow,
            c,
        }
    }
}

impl DepthwiseConv {
    /// Output row `oy` (`[pad_top, pad_left]` given), on AVX2 + FMA where the CPU has them.
    fn row(&self, x: &Map, oy: usize, pad: [usize; 2], row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            unsafe { self.row_avx2(x, oy, pad, row) };
            return;
        }
        self.row_with::<false>(x, oy, pad, row);
    }

    /// [`Self::row_with`] compiled for AVX2 + FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2(&self, x: &Map, oy: usize, pad: [usize; 2], row: &mut [f32]) {
        self.row_with::<true>(x, oy, pad, row);
    }

    /// One output row, channels innermost so the inner loop vectorises; `FMA` fuses the
    /// multiply-adds (the portable build keeps them separate).
    #[inline(always)]
    fn row_with<const FMA: bool>(&self, x: &Map, oy: usize, pad: [usize; 2], row: &mut [f32]) {
        let c = x.c;
        let [pt, pl] = pad;
        for (ox, o) in row.chunks_exact_mut(c).enumerate() {
            o.copy_from_slice(&self.bias[..c]);
            for ky in 0..self.k {
                let Some(iy) = (oy * self.stride + ky).checked_sub(pt) else {
                    continue;
                };
                if iy >= x.h {
                    continue;
                }
                for kx in 0..self.k {
                    let Some(ix) = (ox * self.stride + kx).checked_sub(pl) else {
                        continue;
                    };
                    if ix >= x.w {
                        continue;
                    }
                    let at = (iy * x.w + ix) * c;
                    let inp = &x.data[at..at + c];
                    let w = &self.weights[(ky * self.k + kx) * c..][..c];
                    for ((o, i), w) in o.iter_mut().zip(inp).zip(w) {
                        *o = if FMA { i.mul_add(*w, *o) } else { *o + i * w };
                    }
                }
            }
            activate(o, self.act);
        }
    }
}

/// The whole SSD-MobileNetV1 on the CPU; built by [`crate::ssd::SsdMobilenetV1`].
#[derive(Debug, Clone)]
pub struct CpuSsd {
    /// The first 3x3 stride-2 convolution.
    pub conv0: DenseConv,
    /// The 13 depthwise + pointwise pairs.
    pub pairs: Vec<(DepthwiseConv, DenseConv)>,
    /// The 8 extra convolutions.
    pub extra: Vec<DenseConv>,
    /// Per prediction layer, the box encoder and the class predictor.
    pub heads: Vec<(DenseConv, DenseConv)>,
}

impl CpuSsd {
    /// Runs the net on one image (planar `[3, s, s]`, scaled to [-1, 1]) and returns the raw
    /// box encodings (4 per anchor), class logits (3 per anchor) and the grid side of each
    /// prediction layer, in the order the engine path gives them.
    pub fn forward(&self, planes: &[f32], s: usize) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let x = Map::from_planar(planes, 3, s, s);
        let mut out = self.conv0.forward(&x);
        let mut feats = Vec::new();
        for (i, (dw, pw)) in self.pairs.iter().enumerate() {
            out = pw.forward(&dw.forward(&out));
            if i + 1 == 11 {
                feats.push(out.clone());
            }
        }
        if feats.is_empty() {
            feats.push(out.clone());
        }
        feats.push(out.clone());
        let mut e = out;
        for (i, c) in self.extra.iter().enumerate() {
            e = c.forward(&e);
            if i % 2 == 1 {
                feats.push(e.clone());
            }
        }
        let mut boxes = Vec::new();
        let mut classes = Vec::new();
        let mut grids = Vec::new();
        for (f, (b, c)) in feats.iter().zip(&self.heads) {
            boxes.extend(b.forward(f).data);
            classes.extend(c.forward(f).data);
            grids.push(f.h);
        }
        (boxes, classes, grids)
    }
}

/// A depthwise then pointwise convolution with one bias (the landmark net's separable conv).
#[derive(Debug, Clone)]
pub struct Separable {
    /// Depthwise `3 x 3`, no bias.
    pub depthwise: DepthwiseConv,
    /// Pointwise `1 x 1` with the bias.
    pub pointwise: DenseConv,
}

impl Separable {
    fn forward(&self, x: &Map) -> Map {
        self.pointwise.forward(&self.depthwise.forward(x))
    }
}

/// One dense block of the landmark net (see [`crate::landmark68`]).
#[derive(Debug, Clone)]
pub struct DenseBlock {
    /// The first, stride-2 convolution: plain in block 0, separable in the others.
    pub conv0: Result<DenseConv, Separable>,
    /// The three separable convolutions.
    pub rest: [Separable; 3],
}

/// `relu(sum of maps)`, all of one shape.
fn relu_sum(maps: &[&Map]) -> Map {
    let mut out = maps[0].clone();
    for m in &maps[1..] {
        for (o, v) in out.data.iter_mut().zip(&m.data) {
            *o += v;
        }
    }
    activate(&mut out.data, Act::Relu);
    out
}

impl DenseBlock {
    fn forward(&self, x: &Map) -> Map {
        let mut o1 = match &self.conv0 {
            Ok(c) => c.forward(x),
            Err(s) => s.forward(x),
        };
        activate(&mut o1.data, Act::Relu);
        let o2 = self.rest[0].forward(&o1);
        let o3 = self.rest[1].forward(&relu_sum(&[&o1, &o2]));
        let o4 = self.rest[2].forward(&relu_sum(&[&o1, &o2, &o3]));
        relu_sum(&[&o1, &o2, &o3, &o4])
    }
}

/// The whole FaceLandmark68Net on the CPU; built by [`crate::landmark68::FaceLandmark68Net`].
#[derive(Debug, Clone)]
pub struct CpuLandmarks {
    /// The four dense blocks.
    pub blocks: Vec<DenseBlock>,
    /// Fully connected weights `[256, 136]`, row-major.
    pub fc_w: Vec<f32>,
    /// Fully connected bias `[136]`.
    pub fc_b: Vec<f32>,
}

impl CpuLandmarks {
    /// Runs the net on one normalised planar image `[3, s, s]`; returns 68 (x, y) points in
    /// units of the input square.
    pub fn forward(&self, planes: &[f32], s: usize) -> [[f32; 2]; 68] {
        let mut x = Map::from_planar(planes, 3, s, s);
        for b in &self.blocks {
            x = b.forward(&x);
        }
        let c = x.c;
        let mut pooled = vec![0f32; c];
        for px in x.data.chunks_exact(c.max(1)) {
            for (p, v) in pooled.iter_mut().zip(px) {
                *p += v;
            }
        }
        let area = (x.h * x.w).max(1) as f32;
        pooled.iter_mut().for_each(|p| *p /= area);
        let mut y = self.fc_b.clone();
        for (p, row) in pooled.iter().zip(self.fc_w.chunks_exact(y.len().max(1))) {
            for (o, w) in y.iter_mut().zip(row) {
                *o += p * w;
            }
        }
        let mut pts = [[0f32; 2]; 68];
        for (k, q) in pts.iter_mut().enumerate() {
            *q = [
                y.get(2 * k).copied().unwrap_or(0.0),
                y.get(2 * k + 1).copied().unwrap_or(0.0),
            ];
        }
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The depthwise convolution's portable build and the one this CPU runs (AVX2 + FMA on
    /// x86-64) agree, at both strides and with the asymmetric "same" padding.
    #[test]
    fn depthwise_builds_agree() {
        let (h, w, c) = (9, 7, 24);
        let val = |i: usize| ((i * 7919) % 113) as f32 / 56.0 - 1.0;
        let x = Map {
            data: (0..h * w * c).map(val).collect(),
            h,
            w,
            c,
        };
        let filters: Vec<f32> = (0..9 * c).map(|i| val(i + 5)).collect();
        let shift: Vec<f32> = (0..c).map(|i| val(i + 11)).collect();
        for stride in [1, 2] {
            let dw = DepthwiseConv::new(&filters, [3, 3, c, 1], &[], &shift, stride, Act::Relu6);
            let fast = dw.forward(&x);
            let (pt, _) = same_pad(h, 3, stride);
            let (pl, _) = same_pad(w, 3, stride);
            let mut portable = vec![0f32; fast.data.len()];
            for (oy, row) in portable.chunks_mut(fast.w * c).enumerate() {
                dw.row_with::<false>(&x, oy, [pt, pl], row);
            }
            let worst = fast
                .data
                .iter()
                .zip(&portable)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "stride {stride}: {worst}");
            assert!(portable.iter().any(|&v| v > 0.0 && v < 6.0));
        }
    }
}
