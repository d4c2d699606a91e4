//! A 5x5 convolution with stride 2 and padding 2 (leras' `Downscale`, every encoder layer) as
//! a 3x3/1/1 convolution over the four 2x2 phases of its input stacked as channels, so that
//! Winograd can compute it.
//!
//! With `ky = 2a + py` (`py` the row phase), output row `i` reads input row `2i + ky - 2 =
//! 2(i + a - 1) + py`: row `i + a - 1` of phase `py`, `a` in `0..3` for `py = 0` and `0..2`
//! for `py = 1`; columns alike. So channel `4c + 2py + px` of the phased input holds
//! `x[c][2i + py][2j + px]` (zero past the edge), and its 3x3 kernel holds the taps
//! `w[o][c][2a + py][2b + px]` (zero where `2a + py` or `2b + px` is 5). Every step is a
//! rearrangement, so the result is the same sum; F(4x4) on the phased shape takes 9
//! multiplies per output and input channel instead of 25.

use super::ConvShape;
use rayon::prelude::*;

/// The 3x3/1/1 shape that computes `s`, when `s` is 5x5 with stride 2 and padding 2.
pub(super) fn shape(s: &ConvShape) -> Option<ConvShape> {
    (s.k == 5 && s.stride == 2 && s.pad == 2).then(|| ConvShape {
        n: s.n,
        c: 4 * s.c,
        h: s.h.div_ceil(2),
        w: s.w.div_ceil(2),
        o: s.o,
        k: 3,
        stride: 1,
        pad: 1,
    })
}

/// The phased input (`[n][4c][h2][w2]`) of `x` (`[n][c][h][w]`): channel `4c + 2py + px`
/// holds `x[c][2i + py][2j + px]`, zero past the edge.
pub(super) fn input(s: &ConvShape, x: &[f32]) -> Vec<f32> {
    let (h2, w2) = (s.h.div_ceil(2), s.w.div_ceil(2));
    let mut out = vec![0.0f32; s.n * 4 * s.c * h2 * w2];
    out.par_chunks_mut(h2 * w2)
        .enumerate()
        .for_each(|(index, dst)| {
            let (image, ch) = (index / (4 * s.c), index % (4 * s.c));
            let (c, py, px) = (ch / 4, (ch / 2) % 2, ch % 2);
            let plane = &x[(image * s.c + c) * s.h * s.w..][..s.h * s.w];
            for (row, y) in dst.chunks_exact_mut(w2).zip((py..s.h).step_by(2)) {
                let src = plane[y * s.w..][..s.w].iter().skip(px).step_by(2);
                for (v, &val) in row.iter_mut().zip(src) {
                    *v = val;
                }
            }
        });
    out
}

/// The gradient of `x` (`[n][c][h][w]`) from that of its phased input: every position of `x`
/// is exactly one phased element, so this is the inverse rearrangement.
pub(super) fn input_grad(s: &ConvShape, phased: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; s.n * s.c * s.h * s.w];
    let (h2, w2) = (s.h.div_ceil(2), s.w.div_ceil(2));
    dx.par_chunks_mut(s.h * s.w)
        .enumerate()
        .for_each(|(index, dst)| {
            let (image, c) = (index / s.c, index % s.c);
            for (y, row) in dst.chunks_exact_mut(s.w).enumerate() {
                for (x, v) in row.iter_mut().enumerate() {
                    let ch = 4 * c + 2 * (y % 2) + x % 2;
                    *v = phased[((image * 4 * s.c + ch) * h2 + y / 2) * w2 + x / 2];
                }
            }
        });
    dx
}

/// The 3x3 kernels (`[o][4c][3][3]`) of the phased convolution from `w` (`[o][c][5][5]`).
pub(super) fn kernel(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; s.o * 4 * s.c * 9];
    for (o, dst) in out.chunks_exact_mut(4 * s.c * 9).enumerate() {
        for (ch, k3) in dst.chunks_exact_mut(9).enumerate() {
            let (c, py, px) = (ch / 4, (ch / 2) % 2, ch % 2);
            let k5 = &w[(o * s.c + c) * 25..][..25];
            for (t, v) in k3.iter_mut().enumerate() {
                let (ky, kx) = (2 * (t / 3) + py, 2 * (t % 3) + px);
                if ky < 5 && kx < 5 {
                    *v = k5[ky * 5 + kx];
                }
            }
        }
    }
    out
}

/// The gradient of `w` (`[o][c][5][5]`) from that of the phased kernels (the taps that are
/// always zero get none).
pub(super) fn kernel_grad(s: &ConvShape, dw3: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0f32; s.o * s.c * 25];
    for (oc, k5) in dw.chunks_exact_mut(25).enumerate() {
        let (o, c) = (oc / s.c, oc % s.c);
        for (t, v) in k5.iter_mut().enumerate() {
            let (ky, kx) = (t / 5, t % 5);
            let ch = 4 * c + 2 * (ky % 2) + kx % 2;
            *v = dw3[((o * 4 * s.c + ch) * 3 + ky / 2) * 3 + kx / 2];
        }
    }
    dw
}
