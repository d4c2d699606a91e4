//! DeepFakeArchi (§5.1): the Encoder, Inter and Decoder of SAEHD and Quick96, with every
//! combination of the `u`, `d`, `t`, `c` variant letters.
//!
//! Field names follow DFL's Python attribute names (`down1`, `upscale0`, `out_convm`…), so
//! the saved tensor names map one-to-one to DFL's weight keys.

use super::{AeDims, Archi};
use crate::layers::{
    Act, Conv2d, Dense, Downscale, DownscaleBlock, Init, ResidualBlock, Upscale, depth_to_space,
    flatten, pixel_norm, sig,
};
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

/// The first stage of the encoder: a 4-step DownscaleBlock (plain) or one Downscale (`t`).
#[derive(Module, Debug)]
pub enum EncoderDown1 {
    /// Without `t`: DownscaleBlock(3, e, 4, k5).
    Block(DownscaleBlock),
    /// With `t`: Downscale(3 -> e, k5).
    Single(Downscale),
}

/// DeepFakeArchi Encoder: image `[B, 3, R, R]` -> flat code `[B, 8e * (R/16 or R/32)^2]`.
///
/// The `t` layers are optional fields (not a nested struct) so tensor names stay DFL's.
#[derive(Module, Debug)]
pub struct Encoder {
    /// First downscale stage.
    pub down1: EncoderDown1,
    /// `t`: ResidualBlock(e).
    pub res1: Option<ResidualBlock>,
    /// `t`: Downscale(e -> 2e).
    pub down2: Option<Downscale>,
    /// `t`: Downscale(2e -> 4e).
    pub down3: Option<Downscale>,
    /// `t`: Downscale(4e -> 8e).
    pub down4: Option<Downscale>,
    /// `t`: Downscale(8e -> 8e).
    pub down5: Option<Downscale>,
    /// `t`: ResidualBlock(8e).
    pub res5: Option<ResidualBlock>,
    /// `u`: pixel_norm on the output.
    pub pixel_norm: bool,
}

impl Encoder {
    /// Builds the encoder for `dims`.
    pub fn new(init: &mut Init, dims: &AeDims) -> Self {
        let e = dims.e_dims;
        let act = dims.archi.act();
        if dims.archi.opts.t {
            Encoder {
                down1: EncoderDown1::Single(Downscale::new(init, 3, e, 5, act)),
                res1: Some(ResidualBlock::new(init, e, act)),
                down2: Some(Downscale::new(init, e, e * 2, 5, act)),
                down3: Some(Downscale::new(init, e * 2, e * 4, 5, act)),
                down4: Some(Downscale::new(init, e * 4, e * 8, 5, act)),
                down5: Some(Downscale::new(init, e * 8, e * 8, 5, act)),
                res5: Some(ResidualBlock::new(init, e * 8, act)),
                pixel_norm: dims.archi.opts.u,
            }
        } else {
            Encoder {
                down1: EncoderDown1::Block(DownscaleBlock::new(init, 3, e, 4, 5, act)),
                res1: None,
                down2: None,
                down3: None,
                down4: None,
                down5: None,
                res5: None,
                pixel_norm: dims.archi.opts.u,
            }
        }
    }

    /// Image to flat code.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = match &self.down1 {
            EncoderDown1::Block(b) => b.forward(x),
            EncoderDown1::Single(d) => d.forward(x),
        };
        if let Some(l) = &self.res1 {
            x = l.forward(x);
        }
        for d in [&self.down2, &self.down3, &self.down4, &self.down5]
            .into_iter()
            .flatten()
        {
            x = d.forward(x);
        }
        if let Some(l) = &self.res5 {
            x = l.forward(x);
        }
        let x = flatten(x);
        if self.pixel_norm { pixel_norm(x) } else { x }
    }
}

/// DeepFakeArchi Inter: Dense(in -> ae), Dense(ae -> ldr^2 * out), reshape to
/// `[out, ldr, ldr]` (C-major), then Upscale(out -> out) unless `t`.
#[derive(Module, Debug)]
pub struct Inter {
    /// Dense(in -> ae_ch), no activation.
    pub dense1: Dense,
    /// Dense(ae_ch -> ldr*ldr*ae_out_ch), no activation.
    pub dense2: Dense,
    /// Upscale(ae_out -> ae_out); absent with `t`.
    pub upscale1: Option<Upscale>,
    /// `lowest_dense_res`.
    pub ldr: usize,
    /// Output channels.
    pub out_ch: usize,
}

impl Inter {
    /// `Inter(in_ch, ae_ch, ae_out_ch)` for `dims`' archi and resolution.
    pub fn new(init: &mut Init, dims: &AeDims, in_ch: usize, ae_ch: usize, out_ch: usize) -> Self {
        let ldr = dims.lowest_dense_res();
        Inter {
            dense1: Dense::new(init, in_ch, ae_ch),
            dense2: Dense::new(init, ae_ch, ldr * ldr * out_ch),
            upscale1: (!dims.archi.opts.t)
                .then(|| Upscale::new(init, out_ch, out_ch, dims.archi.act())),
            ldr,
            out_ch,
        }
    }

    /// Flat code to `[B, out_ch, r, r]` (r = 2*ldr, or ldr with `t`).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<4> {
        let b = x.dims()[0];
        let x = self.dense2.forward(self.dense1.forward(x));
        let x = x.reshape([b, self.out_ch, self.ldr, self.ldr]);
        match &self.upscale1 {
            Some(u) => u.forward(x),
            None => x,
        }
    }
}

/// DeepFakeArchi Decoder: code -> (rgb `[B, 3, R, R]`, mask `[B, 1, R, R]`), both sigmoid.
#[derive(Module, Debug)]
pub struct Decoder {
    /// Upscale(in -> 8d).
    pub upscale0: Upscale,
    /// Upscale(8d -> 4d), or (8d -> 8d) with `t`.
    pub upscale1: Upscale,
    /// Upscale(4d -> 2d), or (8d -> 4d) with `t`.
    pub upscale2: Upscale,
    /// ResidualBlock(8d).
    pub res0: ResidualBlock,
    /// ResidualBlock(4d), or (8d) with `t`.
    pub res1: ResidualBlock,
    /// ResidualBlock(2d), or (4d) with `t`.
    pub res2: ResidualBlock,
    /// `t`: Upscale(4d -> 2d), the fourth image upscale.
    pub upscale3: Option<Upscale>,
    /// `t`: ResidualBlock(2d).
    pub res3: Option<ResidualBlock>,
    /// Mask Upscale(in -> 8m).
    pub upscalem0: Upscale,
    /// Mask Upscale(8m -> 4m), or (8m -> 8m) with `t`.
    pub upscalem1: Upscale,
    /// Mask Upscale(4m -> 2m), or (8m -> 4m) with `t`.
    pub upscalem2: Upscale,
    /// Further mask Upscales: `t`: (4m -> 2m) then with `d` (2m -> m); plain `d`: (2m -> m).
    pub upscalem3: Option<Upscale>,
    /// `t` and `d`: mask Upscale(2m -> m).
    pub upscalem4: Option<Upscale>,
    /// Image head 1x1 (2d -> 3); sub-pixel (0,0) with `d`.
    pub out_conv: Conv2d,
    /// `d`: 3x3 head for sub-pixel (0,1).
    pub out_conv1: Option<Conv2d>,
    /// `d`: 3x3 head for sub-pixel (1,0).
    pub out_conv2: Option<Conv2d>,
    /// `d`: 3x3 head for sub-pixel (1,1).
    pub out_conv3: Option<Conv2d>,
    /// Mask head 1x1 (2m or m -> 1).
    pub out_convm: Conv2d,
}

impl Decoder {
    /// `Decoder(in_ch, d_ch, d_mask_ch)` for `archi`.
    pub fn new(init: &mut Init, archi: &Archi, in_ch: usize, d: usize, m: usize) -> Self {
        let act: Act = archi.act();
        let (t, dd) = (archi.opts.t, archi.opts.d);
        let up = |init: &mut Init, i, o| Upscale::new(init, i, o, act);
        let res = |init: &mut Init, c| ResidualBlock::new(init, c, act);
        // Construction order follows DFL's on_build (it fixes the RNG stream order only).
        let upscale0 = up(init, in_ch, d * 8);
        let (upscale1, upscale2, upscale3);
        if t {
            upscale1 = up(init, d * 8, d * 8);
            upscale2 = up(init, d * 8, d * 4);
            upscale3 = Some(up(init, d * 4, d * 2));
        } else {
            upscale1 = up(init, d * 8, d * 4);
            upscale2 = up(init, d * 4, d * 2);
            upscale3 = None;
        }
        let res0 = res(init, d * 8);
        let (res1, res2, res3);
        if t {
            res1 = res(init, d * 8);
            res2 = res(init, d * 4);
            res3 = Some(res(init, d * 2));
        } else {
            res1 = res(init, d * 4);
            res2 = res(init, d * 2);
            res3 = None;
        }
        let upscalem0 = up(init, in_ch, m * 8);
        let (upscalem1, upscalem2, mut upscalem3);
        if t {
            upscalem1 = up(init, m * 8, m * 8);
            upscalem2 = up(init, m * 8, m * 4);
            upscalem3 = Some(up(init, m * 4, m * 2));
        } else {
            upscalem1 = up(init, m * 8, m * 4);
            upscalem2 = up(init, m * 4, m * 2);
            upscalem3 = None;
        }
        let out_conv = Conv2d::same(init, d * 2, 3, 1, 1);
        let mut upscalem4 = None;
        let mut heads = [None, None, None];
        if dd {
            for h in heads.iter_mut() {
                *h = Some(Conv2d::same(init, d * 2, 3, 3, 1));
            }
            if t {
                upscalem4 = Some(up(init, m * 2, m));
            } else {
                upscalem3 = Some(up(init, m * 2, m));
            }
        }
        let [out_conv1, out_conv2, out_conv3] = heads;
        let out_convm = Conv2d::same(init, if dd { m } else { m * 2 }, 1, 1, 1);
        Decoder {
            upscale0,
            upscale1,
            upscale2,
            res0,
            res1,
            res2,
            upscale3,
            res3,
            upscalem0,
            upscalem1,
            upscalem2,
            upscalem3,
            upscalem4,
            out_conv,
            out_conv1,
            out_conv2,
            out_conv3,
            out_convm,
        }
    }

    /// Code `[B, in, r, r]` -> (rgb `[B, 3, R, R]`, mask `[B, 1, R, R]`).
    pub fn forward(&self, z: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        (self.forward_rgb(z.clone()), self.forward_mask(z))
    }

    /// The image branch alone: code `[B, in, r, r]` -> rgb `[B, 3, R, R]` (the two
    /// branches share only the input, so a caller that needs one skips the other's cost).
    pub fn forward_rgb(&self, z: Tensor<4>) -> Tensor<4> {
        let mut x = self.upscale0.forward(z);
        x = self.res0.forward(x);
        x = self.upscale1.forward(x);
        x = self.res1.forward(x);
        x = self.upscale2.forward(x);
        x = self.res2.forward(x);
        if let (Some(u), Some(r)) = (&self.upscale3, &self.res3) {
            x = r.forward(u.forward(x));
        }
        match (&self.out_conv1, &self.out_conv2, &self.out_conv3) {
            (Some(c1), Some(c2), Some(c3)) => {
                sig(depth_to_space(d_head(&self.out_conv, [c1, c2, c3], x), 2))
            }
            _ => sig(self.out_conv.forward(x)),
        }
    }

    /// The mask branch alone: code `[B, in, r, r]` -> mask `[B, 1, R, R]`.
    pub fn forward_mask(&self, z: Tensor<4>) -> Tensor<4> {
        let mut m = self.upscalem0.forward(z);
        m = self.upscalem1.forward(m);
        m = self.upscalem2.forward(m);
        if let Some(u) = &self.upscalem3 {
            m = u.forward(m);
        }
        if let Some(u) = &self.upscalem4 {
            m = u.forward(m);
        }
        sig(self.out_convm.forward(m))
    }
}

/// The `d` image head: `concat(out_conv(x), out_conv1(x), out_conv2(x), out_conv3(x))` as one
/// 3x3 convolution with 12 output channels. The 1x1 kernel of `out_conv` becomes the centre
/// tap of a zero 3x3 kernel, which with padding 1 gives the same values; one im2col of the
/// widest map instead of four.
pub fn d_head(out_conv: &Conv2d, convs: [&Conv2d; 3], x: Tensor<4>) -> Tensor<4> {
    let w0 = out_conv
        .weight
        .val()
        .pad([(0, 0), (0, 0), (1, 1), (1, 1)], PadMode::Constant(0.0));
    let mut ws = vec![w0];
    let mut bs = vec![out_conv.bias.val()];
    for c in convs {
        ws.push(c.weight.val());
        bs.push(c.bias.val());
    }
    crate::hostconv::conv2d(x, Tensor::cat(ws, 0), Tensor::cat(bs, 0), 1, 1)
}

/// `d_head` as DFL writes it: four convolutions, then the channel concat (reference path).
pub fn d_head_reference(out_conv: &Conv2d, convs: [&Conv2d; 3], x: Tensor<4>) -> Tensor<4> {
    let mut outs = vec![out_conv.forward(x.clone())];
    for c in convs {
        outs.push(c.forward(x.clone()));
    }
    Tensor::cat(outs, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};
    use rand::SeedableRng;

    #[test]
    fn fused_d_head_matches_four_convs() {
        let dev = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut init = Init {
            rng: &mut rng,
            device: &dev,
        };
        let c0 = Conv2d::same(&mut init, 8, 3, 1, 1);
        let cs: Vec<Conv2d> = (0..3)
            .map(|_| Conv2d::same(&mut init, 8, 3, 3, 1))
            .collect();
        let x = Tensor::<4>::random([2, 8, 9, 9], Distribution::Default, &dev);
        let a = d_head(&c0, [&cs[0], &cs[1], &cs[2]], x.clone());
        let b = d_head_reference(&c0, [&cs[0], &cs[1], &cs[2]], x);
        let d: f32 = (a - b).abs().max().into_scalar();
        assert!(d < 1e-5, "{d}");
    }
}
