//! DFL's layers (leras semantics, §5.0 of dfl-models.md) on burn tensors in NCHW layout.
//!
//! - Convolutions pad **symmetrically** by `k / 2` on every side, also at stride 2 (leras'
//!   "SAME"; TensorFlow's own SAME would be asymmetric there).
//! - Transposed convolutions follow TensorFlow's `conv2d_transpose` "SAME": output size
//!   `input * stride`, the extra row/column of the full result cut at the end.
//! - Weights use burn's layout (`[out, in, k, k]` for convolutions, `[in, out, k, k]` for
//!   transposed ones, `[in, out]` for dense layers); DFL stores HWIO, see
//!   `docs/checkpoint-format.md` for the mapping.
//! - Kernels start Glorot-uniform (TensorFlow's default), biases at zero.
//! - `flatten` is C-major (C, H, W) because NCHW is already that order; `depth_to_space` uses
//!   TensorFlow's DCR order, not PyTorch's `pixel_shuffle` order.

use crate::hostact::leaky_relu;
use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::sigmoid;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Device, Shape, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Where a layer's initial weights come from: a seeded host RNG and the device the weights are
/// created on.
///
/// Each parameter draws its own 64-bit seed from the RNG in construction order and is created
/// lazily from it, so building a network is cheap (parameter counts need no allocation), a
/// checkpoint load never pays for a random init it throws away, and the initial weights are
/// identical on every backend for a given model seed.
pub struct Init<'a> {
    /// Seeded generator handing out one seed per parameter.
    pub rng: &'a mut StdRng,
    /// Device for the new parameters (an autodiff device for training).
    pub device: &'a Device,
}

impl Init<'_> {
    /// A Glorot-uniform parameter: `U(-l, l)`, `l = sqrt(6 / (fan_in + fan_out))`.
    pub fn glorot<const D: usize>(
        &mut self,
        shape: [usize; D],
        fan_in: usize,
        fan_out: usize,
    ) -> Param<Tensor<D>> {
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
        let seed: u64 = self.rng.random();
        self.lazy(shape, move |n| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..n).map(|_| rng.random_range(-limit..limit)).collect()
        })
    }

    /// A parameter filled with `value`.
    pub fn constant<const D: usize>(&mut self, shape: [usize; D], value: f32) -> Param<Tensor<D>> {
        self.lazy(shape, move |n| vec![value; n])
    }

    fn lazy<const D: usize>(
        &mut self,
        shape: [usize; D],
        values: impl FnOnce(usize) -> Vec<f32> + Send + Sync + 'static,
    ) -> Param<Tensor<D>> {
        Param::uninitialized(
            ParamId::new(),
            move |device: &Device, require_grad: bool| {
                let n = shape.iter().product();
                Tensor::from_data(TensorData::new(values(n), shape), device)
                    .set_require_grad(require_grad)
            },
            self.device.clone(),
            true,
            Shape::from(shape),
        )
    }
}

/// The activation of DeepFakeArchi: LeakyReLU, or `x * cos(x)` for archis with `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Act {
    /// `leaky_relu(x, alpha)` with the slope given at each call site.
    #[default]
    LeakyRelu,
    /// `x * cos(x)` everywhere (the `-c` archi option); the slope is ignored.
    XCosX,
}

impl Act {
    /// Applies the activation; `alpha` is the LeakyReLU slope at this call site.
    pub fn apply<const D: usize>(self, x: Tensor<D>, alpha: f64) -> Tensor<D> {
        match self {
            Act::LeakyRelu => leaky_relu(x, alpha),
            Act::XCosX => x.clone() * x.cos(),
        }
    }
}

/// 2-D convolution with leras padding (symmetric `k/2`, or an explicit amount).
#[derive(Module, Debug)]
pub struct Conv2d {
    /// Kernel `[out, in, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out]`.
    pub bias: Param<Tensor<1>>,
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2d {
    /// A `k x k` convolution with leras "SAME" padding (`k / 2` on every side).
    pub fn same(init: &mut Init, in_ch: usize, out_ch: usize, k: usize, stride: usize) -> Self {
        Self::with_padding(init, in_ch, out_ch, k, stride, k / 2)
    }

    /// A `k x k` convolution with explicit symmetric padding (0 = VALID).
    pub fn with_padding(
        init: &mut Init,
        in_ch: usize,
        out_ch: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            weight: init.glorot([out_ch, in_ch, k, k], k * k * in_ch, k * k * out_ch),
            bias: init.constant([out_ch], 0.0),
            stride,
            padding,
        }
    }

    /// `[B, in, H, W] -> [B, out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::hostconv::conv2d(
            x,
            self.weight.val(),
            self.bias.val(),
            self.stride,
            self.padding,
        )
    }
}

/// Transposed convolution with TensorFlow "SAME" output size (`input * stride`).
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    /// Kernel `[in, out, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out]`.
    pub bias: Param<Tensor<1>>,
    /// Stride on both axes.
    pub stride: usize,
}

impl ConvTranspose2d {
    /// A `k x k` transposed convolution `in -> out` with the given stride.
    pub fn new(init: &mut Init, in_ch: usize, out_ch: usize, k: usize, stride: usize) -> Self {
        Self {
            weight: init.glorot([in_ch, out_ch, k, k], k * k * out_ch, k * k * in_ch),
            bias: init.constant([out_ch], 0.0),
            stride,
        }
    }

    /// `[B, in, H, W] -> [B, out, H*stride, W*stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let k = self.weight.dims()[2];
        let s = self.stride;
        // TF SAME: the forward conv this is the transpose of pads `max(k - s, 0)` in total,
        // the smaller half first.
        let pad_total = k.saturating_sub(s);
        let before = pad_total / 2;
        let out = conv_transpose2d(
            x,
            self.weight.val(),
            Some(self.bias.val()),
            ConvTransposeOptions::new(
                [s, s],
                [before, before],
                [s.saturating_sub(k); 2],
                [1, 1],
                1,
            ),
        );
        if pad_total % 2 == 1 {
            let [b, c, _, _] = out.dims();
            out.slice([0..b, 0..c, 0..h * s, 0..w * s])
        } else {
            out
        }
    }
}

/// Fully connected layer, weight `[in, out]` as in DFL.
#[derive(Module, Debug)]
pub struct Dense {
    /// Weight `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// Bias `[out]`.
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    /// A Glorot-initialised `in -> out` layer.
    pub fn new(init: &mut Init, in_f: usize, out_f: usize) -> Self {
        Self {
            weight: init.glorot([in_f, out_f], in_f, out_f),
            bias: init.constant([out_f], 0.0),
        }
    }

    /// `[B, in] -> [B, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze::<2>()
    }
}

/// TensorFlow `depth_to_space` (DCR): `out[c, 2y+dy, 2x+dx] = in[(dy*2 + dx)*C + c, y, x]`.
pub fn depth_to_space(x: Tensor<4>, block: usize) -> Tensor<4> {
    let [b, c4, h, w] = x.dims();
    let c = c4 / (block * block);
    x.reshape([b, block, block, c, h, w])
        .permute([0, 3, 4, 1, 5, 2])
        .reshape([b, c, h * block, w * block])
}

/// C-major flatten `[B, C, H, W] -> [B, C*H*W]` (leras' `flatten`).
pub fn flatten(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c * h * w])
}

/// leras `pixel_norm` over the last axis: `x * rsqrt(mean(x^2) + 1e-6)`.
pub fn pixel_norm(x: Tensor<2>) -> Tensor<2> {
    let ms = x.clone().square().mean_dim(1);
    x * (ms + 1e-6).sqrt().recip()
}

/// Sigmoid, re-exported so archs read like DFL.
pub fn sig<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x)
}

/// DeepFakeArchi `Downscale`: conv `k x k` stride 2 then act(0.1).
#[derive(Module, Debug)]
pub struct Downscale {
    /// The strided convolution.
    pub conv1: Conv2d,
    /// Activation of the archi.
    #[module(skip)]
    pub act: Act,
}

impl Downscale {
    /// `in -> out` channels, kernel `k`.
    pub fn new(init: &mut Init, in_ch: usize, out_ch: usize, k: usize, act: Act) -> Self {
        Self {
            conv1: Conv2d::same(init, in_ch, out_ch, k, 2),
            act,
        }
    }

    /// Halves H and W.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.apply(self.conv1.forward(x), 0.1)
    }
}

/// DeepFakeArchi `DownscaleBlock`: `n` Downscales with `ch * min(2^i, 8)` channels.
#[derive(Module, Debug)]
pub struct DownscaleBlock {
    /// The Downscales in order.
    pub downs: Vec<Downscale>,
}

impl DownscaleBlock {
    /// `n` Downscales starting from `in_ch`.
    pub fn new(init: &mut Init, in_ch: usize, ch: usize, n: usize, k: usize, act: Act) -> Self {
        let mut downs = Vec::with_capacity(n);
        let mut last = in_ch;
        for i in 0..n {
            let cur = ch * (1usize << i).min(8);
            downs.push(Downscale::new(init, last, cur, k, act));
            last = cur;
        }
        Self { downs }
    }

    /// Applies every Downscale.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for d in &self.downs {
            x = d.forward(x);
        }
        x
    }
}

/// DeepFakeArchi `Upscale`: conv `k x k` to `4*out`, act(0.1), depth_to_space(2).
#[derive(Module, Debug)]
pub struct Upscale {
    /// The convolution producing `4 * out` channels.
    pub conv1: Conv2d,
    /// Activation of the archi.
    #[module(skip)]
    pub act: Act,
}

impl Upscale {
    /// `in -> out` channels at twice the resolution.
    pub fn new(init: &mut Init, in_ch: usize, out_ch: usize, act: Act) -> Self {
        Self {
            conv1: Conv2d::same(init, in_ch, out_ch * 4, 3, 1),
            act,
        }
    }

    /// Doubles H and W.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        depth_to_space(self.act.apply(self.conv1.forward(x), 0.1), 2)
    }
}

/// DeepFakeArchi `ResidualBlock`: `act(x + conv2(act(conv1(x), 0.2)), 0.2)`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// First 3x3 convolution.
    pub conv1: Conv2d,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Activation of the archi.
    #[module(skip)]
    pub act: Act,
}

impl ResidualBlock {
    /// A block on `ch` channels.
    pub fn new(init: &mut Init, ch: usize, act: Act) -> Self {
        Self {
            conv1: Conv2d::same(init, ch, ch, 3, 1),
            conv2: Conv2d::same(init, ch, ch, 3, 1),
            act,
        }
    }

    /// Same shape in and out.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.act.apply(self.conv1.forward(x.clone()), 0.2);
        let y = self.conv2.forward(y);
        self.act.apply(x + y, 0.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t4(values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    #[test]
    fn depth_to_space_uses_dcr_order() {
        // C_out = 1, so input channel (dy*2 + dx) goes to sub-pixel (dy, dx).
        let x = t4(vec![1.0, 2.0, 3.0, 4.0], [1, 4, 1, 1]);
        let y: Vec<f32> = depth_to_space(x, 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0]);
        // C_out = 2: channel index = (dy*2+dx)*2 + c.
        let x = t4((0..8).map(|v| v as f32).collect(), [1, 8, 1, 1]);
        let y: Vec<f32> = depth_to_space(x, 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // out[c=0] = [in0, in2; in4, in6], out[c=1] = [in1, in3; in5, in7]
        assert_eq!(y, vec![0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
    }

    #[test]
    fn stride2_conv_pads_symmetrically() {
        let dev = Device::flex();
        let mut rng = StdRng::seed_from_u64(1);
        let mut init = Init {
            rng: &mut rng,
            device: &dev,
        };
        // k=4 s=2 pads 2/2 -> H/2 + 1 (leras, not TF SAME).
        let c = Conv2d::same(&mut init, 1, 1, 4, 2);
        assert_eq!(
            c.forward(Tensor::zeros([1, 1, 8, 8], &dev)).dims(),
            [1, 1, 5, 5]
        );
        let c = Conv2d::same(&mut init, 1, 1, 5, 2);
        assert_eq!(
            c.forward(Tensor::zeros([1, 1, 8, 8], &dev)).dims(),
            [1, 1, 4, 4]
        );
        // With an all-ones 3x3 kernel at stride 2 the top-left output sums a 2x2 corner (one
        // pixel of padding before), proving the padding is not TF's 0-before/1-after.
        let ones = Conv2d {
            weight: Param::from_data(TensorData::new(vec![1.0f32; 9], [1, 1, 3, 3]), &dev),
            bias: Param::from_data(TensorData::new(vec![0.0f32], [1]), &dev),
            stride: 2,
            padding: 1,
        };
        let y: Vec<f32> = ones
            .forward(Tensor::ones([1, 1, 4, 4], &dev))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(y, vec![4.0, 6.0, 6.0, 9.0]);
    }

    #[test]
    fn transposed_conv_same_doubles_and_matches_tf() {
        let dev = Device::flex();
        // 1 channel, all-ones kernel 3x3, stride 2, input 2x2 of ones. TF SAME crops the full
        // 5x5 result [0..4, 0..4]: rows/cols alternate coverage 1,2,1,2 (last row cut).
        let t = ConvTranspose2d {
            weight: Param::from_data(TensorData::new(vec![1.0f32; 9], [1, 1, 3, 3]), &dev),
            bias: Param::from_data(TensorData::new(vec![0.0f32], [1]), &dev),
            stride: 2,
        };
        let y = t.forward(Tensor::ones([1, 1, 2, 2], &dev));
        assert_eq!(y.dims(), [1, 1, 4, 4]);
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        let cov = [1.0, 1.0, 2.0, 1.0];
        for yy in 0..4 {
            for xx in 0..4 {
                assert_eq!(v[yy * 4 + xx], cov[yy] * cov[xx], "({yy},{xx})");
            }
        }
    }

    #[test]
    fn glorot_limits_and_pixel_norm() {
        let dev = Device::flex();
        let mut rng = StdRng::seed_from_u64(7);
        let mut init = Init {
            rng: &mut rng,
            device: &dev,
        };
        let d = Dense::new(&mut init, 100, 50);
        let w: Vec<f32> = d.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let l = (6.0f32 / 150.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= l));
        assert!(w.iter().any(|v| v.abs() > 0.9 * l));
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &dev);
        let y: Vec<f32> = pixel_norm(x).into_data().try_to_vec::<f32>().unwrap();
        let r = (12.5f32 + 1e-6).sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 4.0 / r).abs() < 1e-6);
    }
}
