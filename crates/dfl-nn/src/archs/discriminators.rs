//! SAEHD's discriminators: the true-face code discriminator (§5.2 step 6) and the U-Net patch
//! discriminator for GAN training (§5.2 step 7), including DFL's layer search.

use crate::hostact::leaky_relu;
use crate::layers::{Conv2d, ConvTranspose2d, Init};
use burn::module::Module;
use burn::tensor::Tensor;

/// True-face CodeDiscriminator on the inter output: `1 + code_res/8` stride-2 convs (kernel 4
/// first, then 3) with `256 * min(2^i, 8)` channels and LeakyReLU 0.1, then a 1x1 conv to one
/// logit map.
#[derive(Module, Debug)]
pub struct CodeDiscriminator {
    /// The strided convolutions.
    pub convs: Vec<Conv2d>,
    /// 1x1 conv to logits.
    pub out_conv: Conv2d,
}

impl CodeDiscriminator {
    /// `CodeDiscriminator(in_ch, code_res)` with DFL's base width 256.
    pub fn new(init: &mut Init, in_ch: usize, code_res: usize) -> Self {
        let n = 1 + code_res / 8;
        let mut convs = Vec::with_capacity(n);
        let mut prev = in_ch;
        for i in 0..n {
            let cur = 256 * (1usize << i).min(8);
            let k = if i == 0 { 4 } else { 3 };
            convs.push(Conv2d::same(init, prev, cur, k, 2));
            prev = cur;
        }
        CodeDiscriminator {
            convs,
            out_conv: Conv2d::with_padding(init, prev, 1, 1, 1, 0),
        }
    }

    /// Code `[B, ae, r, r]` -> logits `[B, 1, r', r']`.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for c in &self.convs {
            x = leaky_relu(c.forward(x), 0.1);
        }
        self.out_conv.forward(x)
    }
}

/// One layer of a patch discriminator: kernel size and stride.
pub type PatchLayer = (usize, usize);

/// Receptive field of a stack of convolutions: `k0 + sum_{i>=1} (k_i - 1) * prod_{j<i} s_j`.
pub fn receptive_field(layers: &[PatchLayer]) -> usize {
    let mut rf = 0;
    let mut ts = 1;
    for (i, &(k, s)) in layers.iter().enumerate() {
        if i == 0 {
            rf = k;
        } else {
            rf += (k - 1) * ts;
        }
        ts *= s;
    }
    rf
}

/// DFL's `find_archi`: among all 1..=9-layer stacks of 3x3 convs (first stride 2, others 1
/// or 2) keep, per receptive field, the fewest layers (ties: larger stride sum, then first
/// found), and return the one whose receptive field is closest to `patch_size` (ties: the
/// smaller field).
pub fn find_patch_layers(patch_size: usize) -> Vec<PatchLayer> {
    // rf -> (layer count, stride sum, layers); BTreeMap keeps rf sorted like DFL's sorted().
    let mut best: std::collections::BTreeMap<usize, (usize, usize, Vec<PatchLayer>)> =
        std::collections::BTreeMap::new();
    for n in 1..=9usize {
        let mut val: u32 = 1 << (n - 1);
        loop {
            // DFL decrements first, so the all-ones pattern for n-1 bits comes first and 0
            // last; for n = 1 the loop runs once with val = 0.
            val = val.wrapping_sub(1);
            let mut layers = vec![(3, 2)];
            let mut sum_st = 2;
            for i in 0..n - 1 {
                let st = 1 + usize::from(val & (1 << i) != 0);
                layers.push((3, st));
                sum_st += st;
            }
            let rf = receptive_field(&layers);
            let replace = match best.get(&rf) {
                None => true,
                Some(&(cnt, st, _)) => n < cnt || (n == cnt && sum_st > st),
            };
            if replace {
                best.insert(rf, (n, sum_st, layers));
            }
            if val == 0 {
                break;
            }
        }
    }
    let mut pick: Option<(usize, &Vec<PatchLayer>)> = None;
    for (&rf, (_, _, layers)) in &best {
        let d = rf.abs_diff(patch_size);
        if pick.is_none_or(|(pd, _)| d < pd) {
            pick = Some((d, layers));
        }
    }
    pick.map(|(_, l)| l.clone()).unwrap_or_else(|| vec![(3, 2)])
}

/// DFL's UNetPatchDiscriminator: an encoder of strided 3x3 convs found by
/// [`find_patch_layers`], a centre logit map, and a decoder of transposed convs with skips
/// ending in a full-resolution logit map.
#[derive(Module, Debug)]
pub struct UNetPatchDiscriminator {
    /// 1x1 conv in -> base.
    pub in_conv: Conv2d,
    /// Encoder convs.
    pub convs: Vec<Conv2d>,
    /// Decoder transposed convs, deepest first.
    pub upconvs: Vec<ConvTranspose2d>,
    /// 1x1 conv on the deepest features -> centre logits.
    pub center_out: Conv2d,
    /// 1x1 conv on the deepest features before the decoder.
    pub center_conv: Conv2d,
    /// 1x1 conv 2*base -> full-resolution logits.
    pub out_conv: Conv2d,
}

impl UNetPatchDiscriminator {
    /// `UNetPatchDiscriminator(patch_size, in_ch, base_ch)`.
    pub fn new(init: &mut Init, patch_size: usize, in_ch: usize, base_ch: usize) -> Self {
        let layers = find_patch_layers(patch_size);
        let n = layers.len();
        // ch(i - 1) = min(base * 2^i, 512) for i = 0..=n.
        let ch = |i: isize| -> usize { (base_ch << ((i + 1) as usize)).min(512) };
        let in_conv = Conv2d::with_padding(init, in_ch, ch(-1), 1, 1, 0);
        let mut convs = Vec::with_capacity(n);
        let mut upconvs = Vec::with_capacity(n);
        for (i, &(k, s)) in layers.iter().enumerate() {
            let i = i as isize;
            convs.push(Conv2d::same(init, ch(i - 1), ch(i), k, s));
            let up_in = ch(i) * if i as usize != n - 1 { 2 } else { 1 };
            upconvs.insert(0, ConvTranspose2d::new(init, up_in, ch(i - 1), k, s));
        }
        let deep = ch(n as isize - 1);
        let out_conv = Conv2d::with_padding(init, ch(-1) * 2, 1, 1, 1, 0);
        let center_out = Conv2d::with_padding(init, deep, 1, 1, 1, 0);
        let center_conv = Conv2d::with_padding(init, deep, deep, 1, 1, 0);
        UNetPatchDiscriminator {
            in_conv,
            convs,
            upconvs,
            center_out,
            center_conv,
            out_conv,
        }
    }

    /// Total stride of the encoder: inputs must have H and W divisible by it.
    pub fn total_stride(&self) -> usize {
        self.convs.iter().map(|c| c.stride).product()
    }

    /// Image `[B, C, H, W]` -> (centre logits `[B, 1, H/S, W/S]`, full logits `[B, 1, H, W]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut x = leaky_relu(self.in_conv.forward(x), 0.2);
        let mut encs = Vec::with_capacity(self.convs.len());
        for c in &self.convs {
            encs.push(x.clone());
            x = leaky_relu(c.forward(x), 0.2);
        }
        let center = self.center_out.forward(x.clone());
        x = leaky_relu(self.center_conv.forward(x), 0.2);
        for (up, enc) in self.upconvs.iter().zip(encs.into_iter().rev()) {
            x = leaky_relu(up.forward(x), 0.2);
            x = Tensor::cat(vec![enc, x], 1);
        }
        (center, self.out_conv.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strides(p: usize) -> (usize, Vec<usize>) {
        let l = find_patch_layers(p);
        (receptive_field(&l), l.iter().map(|x| x.1).collect())
    }

    #[test]
    fn layer_search_matches_dfl_examples() {
        assert_eq!(strides(16), (15, vec![2, 2, 2]));
        assert_eq!(strides(32), (31, vec![2, 2, 2, 2]));
        assert_eq!(strides(28), (27, vec![2, 1, 2, 1, 2]));
        assert_eq!(strides(3), (3, vec![2]));
    }
}
