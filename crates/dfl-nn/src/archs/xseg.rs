//! The XSeg segmentation U-Net (§5.5): conv + FRN + TLU blocks, BlurPool downsampling, a dense
//! bottleneck and transposed-conv upsampling with skips. Input `[B, 3, 256, 256]` BGR in
//! `[0, 1]`; output logits and sigmoid mask `[B, 1, 256, 256]`.

use crate::layers::{Conv2d, ConvTranspose2d, Dense, Init, flatten};
use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

/// Filter response normalisation: `x * rsqrt(mean_HW(x^2) + |eps|) * gamma + beta`.
#[derive(Module, Debug)]
pub struct FrNorm2d {
    /// Per-channel scale (init 1).
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift (init 0).
    pub bias: Param<Tensor<1>>,
    /// Learnable scalar epsilon (init 1e-6).
    pub eps: Param<Tensor<1>>,
}

impl FrNorm2d {
    /// FRN on `ch` channels.
    pub fn new(init: &mut Init, ch: usize) -> Self {
        FrNorm2d {
            weight: init.constant([ch], 1.0),
            bias: init.constant([ch], 0.0),
            eps: init.constant([1], 1e-6),
        }
    }

    /// Same shape in and out.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, h, w] = x.dims();
        let nu2 = x
            .clone()
            .square()
            .reshape([0, c as i32, (h * w) as i32])
            .mean_dim(2);
        let nu2: Tensor<4> = nu2.unsqueeze_dim(3);
        let eps: Tensor<4> = self.eps.val().abs().reshape([1, 1, 1, 1]);
        let x = x * (nu2 + eps).sqrt().recip();
        x * self.weight.val().reshape([1, c, 1, 1]) + self.bias.val().reshape([1, c, 1, 1])
    }
}

/// Thresholded linear unit: `max(x, tau)` with per-channel `tau` (init 0).
#[derive(Module, Debug)]
pub struct Tlu {
    /// Per-channel threshold.
    pub tau: Param<Tensor<1>>,
}

impl Tlu {
    /// TLU on `ch` channels.
    pub fn new(init: &mut Init, ch: usize) -> Self {
        Tlu {
            tau: init.constant([ch], 0.0),
        }
    }

    /// Same shape in and out.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = x.dims()[1];
        let tau = self.tau.val().reshape([1, c, 1, 1]).expand(x.shape());
        x.max_pair(tau)
    }
}

/// conv3x3 -> FRN -> TLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// 3x3 convolution, padding 1.
    pub conv: Conv2d,
    /// Normalisation.
    pub frn: FrNorm2d,
    /// Activation.
    pub tlu: Tlu,
}

impl ConvBlock {
    /// `in -> out` channels.
    pub fn new(init: &mut Init, i: usize, o: usize) -> Self {
        ConvBlock {
            conv: Conv2d::same(init, i, o, 3, 1),
            frn: FrNorm2d::new(init, o),
            tlu: Tlu::new(init, o),
        }
    }

    /// Same spatial size.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.tlu.forward(self.frn.forward(self.conv.forward(x)))
    }
}

/// ConvTranspose 3x3 stride 2 (TF SAME) -> FRN -> TLU.
#[derive(Module, Debug)]
pub struct UpConvBlock {
    /// Transposed convolution doubling H and W.
    pub conv: ConvTranspose2d,
    /// Normalisation.
    pub frn: FrNorm2d,
    /// Activation.
    pub tlu: Tlu,
}

impl UpConvBlock {
    /// `in -> out` channels at twice the size.
    pub fn new(init: &mut Init, i: usize, o: usize) -> Self {
        UpConvBlock {
            conv: ConvTranspose2d::new(init, i, o, 3, 2),
            frn: FrNorm2d::new(init, o),
            tlu: Tlu::new(init, o),
        }
    }

    /// Doubles H and W.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.tlu.forward(self.frn.forward(self.conv.forward(x)))
    }
}

/// leras BlurPool: binomial filter of size `f` (2, 3 or 4), zero padding `(f-1)/2` before and
/// `ceil((f-1)/2)` after, depthwise, stride 2.
pub fn blur_pool(x: Tensor<4>, f: usize) -> Tensor<4> {
    let a: &[f32] = match f {
        2 => &[1.0, 1.0],
        3 => &[1.0, 2.0, 1.0],
        _ => &[1.0, 3.0, 3.0, 1.0],
    };
    let f = a.len();
    let sum: f32 = a.iter().sum::<f32>().powi(2);
    let c = x.dims()[1];
    let mut k = Vec::with_capacity(c * f * f);
    for _ in 0..c {
        for &ay in a {
            for &ax in a {
                k.push(ay * ax / sum);
            }
        }
    }
    let device = x.device();
    let w = Tensor::<4>::from_data(TensorData::new(k, [c, 1, f, f]), &device);
    let before = (f - 1) / 2;
    let after = f - 1 - before;
    conv2d(
        x,
        w,
        None,
        ConvOptions::new_with_padding([2, 2], [(before, after); 2], [1, 1], c),
    )
}

/// `nn.XSeg(in_ch=3, base_ch=32, out_ch=1)`.
#[derive(Module, Debug)]
#[allow(missing_docs)] // Layer names are DFL's; the table in §5.5 describes each.
pub struct XSeg {
    pub conv01: ConvBlock,
    pub conv02: ConvBlock,
    pub conv11: ConvBlock,
    pub conv12: ConvBlock,
    pub conv21: ConvBlock,
    pub conv22: ConvBlock,
    pub conv31: ConvBlock,
    pub conv32: ConvBlock,
    pub conv33: ConvBlock,
    pub conv41: ConvBlock,
    pub conv42: ConvBlock,
    pub conv43: ConvBlock,
    pub conv51: ConvBlock,
    pub conv52: ConvBlock,
    pub conv53: ConvBlock,
    pub dense1: Dense,
    pub dense2: Dense,
    pub up5: UpConvBlock,
    pub uconv53: ConvBlock,
    pub uconv52: ConvBlock,
    pub uconv51: ConvBlock,
    pub up4: UpConvBlock,
    pub uconv43: ConvBlock,
    pub uconv42: ConvBlock,
    pub uconv41: ConvBlock,
    pub up3: UpConvBlock,
    pub uconv33: ConvBlock,
    pub uconv32: ConvBlock,
    pub uconv31: ConvBlock,
    pub up2: UpConvBlock,
    pub uconv22: ConvBlock,
    pub uconv21: ConvBlock,
    pub up1: UpConvBlock,
    pub uconv12: ConvBlock,
    pub uconv11: ConvBlock,
    pub up0: UpConvBlock,
    pub uconv02: ConvBlock,
    pub uconv01: ConvBlock,
    pub out_conv: Conv2d,
    /// Base channel count (32 in DFL).
    pub base_ch: usize,
}

/// Input size the XSeg net is built for.
pub const XSEG_RESOLUTION: usize = 256;

impl XSeg {
    /// `XSeg(in_ch, base_ch, out_ch)`; DFL uses (3, 32, 1) at 256 x 256.
    pub fn new(init: &mut Init, in_ch: usize, base: usize, out_ch: usize) -> Self {
        let cb = |init: &mut Init, i, o| ConvBlock::new(init, i, o);
        let ub = |init: &mut Init, i, o| UpConvBlock::new(init, i, o);
        XSeg {
            conv01: cb(init, in_ch, base),
            conv02: cb(init, base, base),
            conv11: cb(init, base, base * 2),
            conv12: cb(init, base * 2, base * 2),
            conv21: cb(init, base * 2, base * 4),
            conv22: cb(init, base * 4, base * 4),
            conv31: cb(init, base * 4, base * 8),
            conv32: cb(init, base * 8, base * 8),
            conv33: cb(init, base * 8, base * 8),
            conv41: cb(init, base * 8, base * 8),
            conv42: cb(init, base * 8, base * 8),
            conv43: cb(init, base * 8, base * 8),
            conv51: cb(init, base * 8, base * 8),
            conv52: cb(init, base * 8, base * 8),
            conv53: cb(init, base * 8, base * 8),
            dense1: Dense::new(init, 4 * 4 * base * 8, 512),
            dense2: Dense::new(init, 512, 4 * 4 * base * 8),
            up5: ub(init, base * 8, base * 4),
            uconv53: cb(init, base * 12, base * 8),
            uconv52: cb(init, base * 8, base * 8),
            uconv51: cb(init, base * 8, base * 8),
            up4: ub(init, base * 8, base * 4),
            uconv43: cb(init, base * 12, base * 8),
            uconv42: cb(init, base * 8, base * 8),
            uconv41: cb(init, base * 8, base * 8),
            up3: ub(init, base * 8, base * 4),
            uconv33: cb(init, base * 12, base * 8),
            uconv32: cb(init, base * 8, base * 8),
            uconv31: cb(init, base * 8, base * 8),
            up2: ub(init, base * 8, base * 4),
            uconv22: cb(init, base * 8, base * 4),
            uconv21: cb(init, base * 4, base * 4),
            up1: ub(init, base * 4, base * 2),
            uconv12: cb(init, base * 4, base * 2),
            uconv11: cb(init, base * 2, base * 2),
            up0: ub(init, base * 2, base),
            uconv02: cb(init, base * 2, base),
            uconv01: cb(init, base, base),
            out_conv: Conv2d::same(init, base, out_ch, 3, 1),
            base_ch: base,
        }
    }

    /// Image `[B, 3, 256, 256]` -> (logits, sigmoid mask), both `[B, 1, 256, 256]`. With
    /// `pretrain` every skip connection is replaced by zeros (DFL's pretrain mode).
    pub fn forward(&self, x: Tensor<4>, pretrain: bool) -> (Tensor<4>, Tensor<4>) {
        let x = self.conv01.forward(x);
        let x0 = self.conv02.forward(x);
        let x = blur_pool(x0.clone(), 4);
        let x = self.conv11.forward(x);
        let x1 = self.conv12.forward(x);
        let x = blur_pool(x1.clone(), 3);
        let x = self.conv21.forward(x);
        let x2 = self.conv22.forward(x);
        let x = blur_pool(x2.clone(), 2);
        let x = self.conv31.forward(x);
        let x = self.conv32.forward(x);
        let x3 = self.conv33.forward(x);
        let x = blur_pool(x3.clone(), 2);
        let x = self.conv41.forward(x);
        let x = self.conv42.forward(x);
        let x4 = self.conv43.forward(x);
        let x = blur_pool(x4.clone(), 2);
        let x = self.conv51.forward(x);
        let x = self.conv52.forward(x);
        let x5 = self.conv53.forward(x);
        let x = blur_pool(x5.clone(), 2);

        let b = x.dims()[0];
        let x = self.dense2.forward(self.dense1.forward(flatten(x)));
        let x = x.reshape([b, self.base_ch * 8, 4, 4]);

        let skip = |s: Tensor<4>| if pretrain { s.zeros_like() } else { s };
        let x = self.up5.forward(x);
        let x = self.uconv53.forward(Tensor::cat(vec![x, skip(x5)], 1));
        let x = self.uconv52.forward(x);
        let x = self.uconv51.forward(x);
        let x = self.up4.forward(x);
        let x = self.uconv43.forward(Tensor::cat(vec![x, skip(x4)], 1));
        let x = self.uconv42.forward(x);
        let x = self.uconv41.forward(x);
        let x = self.up3.forward(x);
        let x = self.uconv33.forward(Tensor::cat(vec![x, skip(x3)], 1));
        let x = self.uconv32.forward(x);
        let x = self.uconv31.forward(x);
        let x = self.up2.forward(x);
        let x = self.uconv22.forward(Tensor::cat(vec![x, skip(x2)], 1));
        let x = self.uconv21.forward(x);
        let x = self.up1.forward(x);
        let x = self.uconv12.forward(Tensor::cat(vec![x, skip(x1)], 1));
        let x = self.uconv11.forward(x);
        let x = self.up0.forward(x);
        let x = self.uconv02.forward(Tensor::cat(vec![x, skip(x0)], 1));
        let x = self.uconv01.forward(x);
        let logits = self.out_conv.forward(x);
        let mask = crate::layers::sig(logits.clone());
        (logits, mask)
    }
}
