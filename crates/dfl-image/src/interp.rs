//! Interpolation kernels with OpenCV's exact coefficients.

use std::sync::OnceLock;

/// Interpolation method (OpenCV's `INTER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interp {
    /// Nearest neighbour (`INTER_NEAREST`).
    Nearest,
    /// Bilinear (`INTER_LINEAR`).
    Linear,
    /// Bicubic with OpenCV's A = -0.75 (`INTER_CUBIC`).
    Cubic,
    /// Pixel-area relation for resizes (`INTER_AREA`); warps treat it as [`Interp::Linear`],
    /// as OpenCV does.
    Area,
    /// 8x8 Lanczos (`INTER_LANCZOS4`).
    Lanczos4,
}

/// Sub-pixel positions per pixel OpenCV uses for table-driven warps (`INTER_TAB_SIZE`).
pub(crate) const TAB_SIZE: usize = 32;

/// OpenCV's `interpolateCubic`: the 4 weights of taps at offsets -1, 0, 1, 2 for a fractional
/// position `x` in [0, 1), computed in `f32` like OpenCV.
#[inline(always)]
pub fn cubic_weights(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let w0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let w2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// OpenCV's `interpolateLanczos4`: the 8 weights of taps at offsets -3..=4 for a fractional
/// position `x` in [0, 1), normalised to sum 1.
pub fn lanczos4_weights(x: f32) -> [f32; 8] {
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-S45, -S45],
        [0.0, 1.0],
        [S45, -S45],
        [-1.0, 0.0],
        [S45, S45],
        [0.0, -1.0],
        [-S45, S45],
    ];
    let mut w = [0f32; 8];
    let y0 = -(f64::from(x) + 3.0) * std::f64::consts::PI * 0.25;
    let (s0, c0) = y0.sin_cos();
    let mut sum = 0f32;
    for i in 0..8 {
        let d = x + 3.0 - i as f32;
        w[i] = if d.abs() >= 1e-6 {
            let y = -f64::from(d) * std::f64::consts::PI * 0.25;
            ((CS[i][0] * s0 + CS[i][1] * c0) / (y * y)) as f32
        } else {
            1e30
        };
        sum += w[i];
    }
    let inv = 1.0 / sum;
    for v in &mut w {
        *v *= inv;
    }
    w
}

/// Lanczos4 weights at the 32 table positions OpenCV's warps and remaps quantise to.
pub(crate) fn lanczos4_table() -> &'static [[f32; 8]; TAB_SIZE] {
    static TABLE: OnceLock<[[f32; 8]; TAB_SIZE]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0f32; 8]; TAB_SIZE];
        for (i, row) in t.iter_mut().enumerate() {
            *row = lanczos4_weights(i as f32 / TAB_SIZE as f32);
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_sum_to_one_and_interpolate() {
        for i in 0..=20 {
            let x = i as f32 / 21.0;
            let c: f32 = cubic_weights(x).iter().sum();
            let l: f32 = lanczos4_weights(x).iter().sum();
            assert!((c - 1.0).abs() < 1e-6 && (l - 1.0).abs() < 1e-5, "x={x}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        let l0 = lanczos4_weights(0.0);
        assert!((l0[3] - 1.0).abs() < 1e-6 && l0[0].abs() < 1e-6);
        // OpenCV's cubic at x = 0.5: (-0.09375, 0.59375, 0.59375, -0.09375).
        let c = cubic_weights(0.5);
        assert!((c[0] + 0.09375).abs() < 1e-7 && (c[1] - 0.59375).abs() < 1e-7);
    }
}
