//! Linear filters: Gaussian and box blur, separable and general 2-D correlation
//! (`filter2D`), and the 3x3/5x5 median.
//!
//! Borders are OpenCV's default, reflect-101, unless a function takes a [`Border`]. Sums run
//! in `f32` like OpenCV's float filters, so results agree to float rounding (about 1e-6).

use crate::border::Border;
use crate::error::{ImageError, Result};
use crate::image::Image;
use crate::simd::{conv_cols, conv_row};
use rayon::prelude::*;

/// Largest kernel side the blurs accept (a guard against runaway sizes from bad settings;
/// DFL's largest mask blur is 401).
pub const MAX_KERNEL: usize = 1 << 14;

/// OpenCV's kernel size for a Gaussian of `sigma` on float images when none is given:
/// `round(sigma * 4 * 2 + 1) | 1` (8-bit images use 3 instead of 4; we only have floats).
pub fn gaussian_ksize_for_sigma(sigma: f64) -> usize {
    (((sigma * 8.0 + 1.0).round_ties_even()).max(1.0) as usize) | 1
}

/// OpenCV's sigma for a Gaussian of odd size `ksize` when none is given:
/// `0.3 * ((ksize - 1) * 0.5 - 1) + 0.8`.
pub fn gaussian_sigma_for_ksize(ksize: usize) -> f64 {
    0.3 * ((ksize as f64 - 1.0) * 0.5 - 1.0) + 0.8
}

/// OpenCV's `getGaussianKernel(ksize, sigma, CV_32F)`: normalised 1-D Gaussian weights. With
/// `sigma <= 0` and `ksize` 1, 3, 5, 7 or 9 it returns OpenCV's fixed tables (binomial up to
/// 7, `[4, 13, 30, 51, 60, 51, 30, 13, 4] / 256` for 9; OpenCV 4.x+ `getGaussianKernelBitExact`),
/// else the sampled Gaussian with the sigma of [`gaussian_sigma_for_ksize`].
pub fn gaussian_kernel(ksize: usize, sigma: f64) -> Result<Vec<f32>> {
    if ksize == 0 || ksize.is_multiple_of(2) || ksize > MAX_KERNEL {
        return Err(ImageError::Parameter {
            op: "gaussian_kernel",
            msg: format!("kernel size must be odd and 1..={MAX_KERNEL}, got {ksize}"),
        });
    }
    if !sigma.is_finite() {
        return Err(ImageError::NonFinite {
            op: "gaussian_kernel",
        });
    }
    const SMALL: [&[f32]; 5] = [
        &[1.0],
        &[0.25, 0.5, 0.25],
        &[0.0625, 0.25, 0.375, 0.25, 0.0625],
        &[
            0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
        ],
        &[
            4.0 / 256.0,
            13.0 / 256.0,
            30.0 / 256.0,
            51.0 / 256.0,
            60.0 / 256.0,
            51.0 / 256.0,
            30.0 / 256.0,
            13.0 / 256.0,
            4.0 / 256.0,
        ],
    ];
    if sigma <= 0.0 && ksize <= 9 {
        return Ok(SMALL[ksize / 2].to_vec());
    }
    let s = if sigma > 0.0 {
        sigma
    } else {
        gaussian_sigma_for_ksize(ksize)
    };
    let scale2 = -0.5 / (s * s);
    let w: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale2 * x * x).exp()
        })
        .collect();
    let sum: f64 = w.iter().sum();
    Ok(w.iter().map(|v| (v / sum) as f32).collect())
}

/// `cv2.GaussianBlur(src, (ksize, ksize), sigma)` with reflect-101 borders. `ksize` 0 derives
/// the size from `sigma` ([`gaussian_ksize_for_sigma`]); `sigma <= 0` derives sigma from the
/// size (DFL's mask blur uses this). Size 1 returns a copy.
pub fn gaussian_blur(src: &Image, ksize: usize, sigma: f64) -> Result<Image> {
    let op = "gaussian_blur";
    if !sigma.is_finite() {
        return Err(ImageError::NonFinite { op });
    }
    let k = match (ksize, sigma > 0.0) {
        (0, true) => gaussian_ksize_for_sigma(sigma),
        (0, false) => {
            return Err(ImageError::Parameter {
                op,
                msg: "need a kernel size or a positive sigma".into(),
            });
        }
        (k, _) => k,
    };
    let kernel = gaussian_kernel(k, sigma)?;
    sep_filter(src, &kernel, &kernel, Border::Reflect101)
}

/// `cv2.blur(src, (kw, kh))`: normalised box filter, anchor at the centre (`k / 2`, so even
/// sizes reach one pixel further left/up), reflect-101 borders.
pub fn box_blur(src: &Image, kw: usize, kh: usize) -> Result<Image> {
    if kw == 0 || kh == 0 || kw > MAX_KERNEL || kh > MAX_KERNEL {
        return Err(ImageError::Parameter {
            op: "box_blur",
            msg: format!("kernel size {kw}x{kh} must be 1..={MAX_KERNEL} per side"),
        });
    }
    let kx = vec![1.0 / kw as f32; kw];
    let ky = vec![1.0 / kh as f32; kh];
    sep_filter(src, &kx, &ky, Border::Reflect101)
}

/// Separable correlation (`cv2.sepFilter2D`): rows with `kx`, then columns with `ky`, anchors
/// at `len / 2`, every channel independently. Non-finite input is refused.
pub fn sep_filter(src: &Image, kx: &[f32], ky: &[f32], border: Border) -> Result<Image> {
    let op = "sep_filter";
    if kx.is_empty() || ky.is_empty() {
        return Err(ImageError::Parameter {
            op,
            msg: "empty kernel".into(),
        });
    }
    if kx.iter().chain(ky).any(|v| !v.is_finite()) {
        return Err(ImageError::NonFinite { op });
    }
    src.check_finite(op)?;
    let (w, h, c) = src.shape();
    let row_len = w * c;
    let ax = kx.len() / 2;
    let ay = ky.len() / 2;
    // Vertical pass first, straight from the source rows into one row buffer, then the
    // horizontal pass from that row padded: no intermediate image. Rows outside the image are
    // constant rows; a vertically filtered constant column is `sum(ky) * value`, which is what
    // the horizontal padding must use.
    let cval = border.constant();
    let const_row = vec![cval; row_len];
    let hborder = match border {
        Border::Constant(v) => Border::Constant(v * ky.iter().sum::<f32>()),
        b => b,
    };
    let mut out = src.zeros_like();
    out.data_mut()
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each_init(
            || (Vec::new(), vec![0f32; row_len], Vec::new()),
            |(rows, vrow, pad): &mut (Vec<&[f32]>, Vec<f32>, Vec<f32>), (y, orow)| {
                rows.clear();
                for k in 0..ky.len() {
                    rows.push(match border.index(y as i64 + k as i64 - ay as i64, h) {
                        Some(sy) => src.row(sy),
                        None => &const_row,
                    });
                }
                conv_cols(rows, ky, vrow);
                pad_row(vrow, w, c, ax, kx.len() - 1 - ax, hborder, pad);
                conv_row(pad, kx, c, false, orow);
            },
        );
    Ok(out)
}

/// Copies `row` (w pixels of c channels) into `pad` with `left`/`right` border pixels.
fn pad_row(
    row: &[f32],
    w: usize,
    c: usize,
    left: usize,
    right: usize,
    border: Border,
    pad: &mut Vec<f32>,
) {
    pad.clear();
    pad.reserve((w + left + right) * c);
    for i in 0..left {
        push_px(row, i as i64 - left as i64, w, c, border, pad);
    }
    pad.extend_from_slice(row);
    for i in 0..right {
        push_px(row, (w + i) as i64, w, c, border, pad);
    }
}

fn push_px(row: &[f32], x: i64, w: usize, c: usize, border: Border, pad: &mut Vec<f32>) {
    match border.index(x, w) {
        Some(i) => pad.extend_from_slice(&row[i * c..(i + 1) * c]),
        None => pad.extend(std::iter::repeat_n(border.constant(), c)),
    }
}

/// A 2-D correlation kernel (row-major weights), as passed to `cv2.filter2D`.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    width: usize,
    height: usize,
    weights: Vec<f32>,
}

impl Kernel {
    /// A `width x height` kernel; fails on a zero side, a length mismatch or non-finite
    /// weights.
    pub fn new(width: usize, height: usize, weights: Vec<f32>) -> Result<Kernel> {
        let op = "Kernel::new";
        if width == 0 || height == 0 || weights.len() != width * height {
            return Err(ImageError::Parameter {
                op,
                msg: format!("{width}x{height} kernel with {} weights", weights.len()),
            });
        }
        if weights.iter().any(|v| !v.is_finite()) {
            return Err(ImageError::NonFinite { op });
        }
        Ok(Kernel {
            width,
            height,
            weights,
        })
    }

    /// Width in taps.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in taps.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Weights, row-major.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
}

/// `cv2.filter2D(src, -1, kernel)`: correlation with anchor (`width / 2`, `height / 2`),
/// every channel independently, with the given border (OpenCV's default is
/// [`Border::Reflect101`]). All-zero kernel rows are skipped.
pub fn filter2d(src: &Image, kernel: &Kernel, border: Border) -> Result<Image> {
    let op = "filter2d";
    src.check_finite(op)?;
    let (w, h, c) = src.shape();
    let row_len = w * c;
    let (ax, ay) = (kernel.width / 2, kernel.height / 2);
    let right = kernel.width - 1 - ax;
    // Pad every source row once; rows outside the image are resolved per output row.
    let mut padded = vec![0f32; h * (w + kernel.width - 1) * c];
    let prow_len = (w + kernel.width - 1) * c;
    padded.par_chunks_mut(prow_len).enumerate().for_each_init(
        Vec::new,
        |pad: &mut Vec<f32>, (y, out)| {
            pad_row(src.row(y), w, c, ax, right, border, pad);
            out.copy_from_slice(pad);
        },
    );
    let const_row = vec![border.constant(); prow_len];
    let mut out = src.zeros_like();
    let padded = &padded;
    out.data_mut()
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(y, orow)| {
            for ky in 0..kernel.height {
                let prow = match border.index(y as i64 + ky as i64 - ay as i64, h) {
                    Some(sy) => &padded[sy * prow_len..(sy + 1) * prow_len],
                    None => &const_row[..],
                };
                let wrow = &kernel.weights[ky * kernel.width..(ky + 1) * kernel.width];
                if wrow.iter().any(|&v| v != 0.0) {
                    conv_row(prow, wrow, c, true, orow);
                }
            }
        });
    Ok(out)
}

/// `cv2.medianBlur(src, ksize)` for float images (OpenCV accepts only 3 and 5 there): the
/// median of each channel over a `ksize x ksize` window, edges replicated.
pub fn median_blur(src: &Image, ksize: usize) -> Result<Image> {
    let op = "median_blur";
    if ksize != 3 && ksize != 5 {
        return Err(ImageError::Parameter {
            op,
            msg: format!("float median supports kernel size 3 or 5, got {ksize}"),
        });
    }
    src.check_finite(op)?;
    let (w, h, c) = src.shape();
    let r = (ksize / 2) as i64;
    let mut out = src.zeros_like();
    out.data_mut()
        .par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(y, orow)| {
            let rows: Vec<&[f32]> = (-r..=r)
                .map(|d| src.row((y as i64 + d).clamp(0, h as i64 - 1) as usize))
                .collect();
            let mut win = [0f32; 25];
            let n = ksize * ksize;
            for x in 0..w {
                for ch in 0..c {
                    let mut k = 0;
                    for row in &rows {
                        for dx in -r..=r {
                            let sx = (x as i64 + dx).clamp(0, w as i64 - 1) as usize;
                            win[k] = row[sx * c + ch];
                            k += 1;
                        }
                    }
                    let (_, m, _) = win[..n].select_nth_unstable_by(n / 2, f32::total_cmp);
                    orow[x * c + ch] = *m;
                }
            }
        });
    Ok(out)
}

/// `cv2.bilateralFilter(src, d, sigma_color, sigma_space)` for float images with 1 or 3
/// channels (what DFL's SOT regulariser calls), reflect-101 borders.
///
/// OpenCV's float rules: radius `d / 2`, or `round(1.5 * sigma_space)` when `d <= 0` (at least
/// 1); only offsets within that Euclidean radius; spatial weight `exp(-r^2 / (2 s^2))`; range
/// weight `exp(-D^2 / (2 c^2))` with `D` the L1 distance summed over channels, read from a
/// 4096-bins-per-channel table spanning the image's value range with linear interpolation; a
/// constant image is returned unchanged. Non-positive sigmas become 1, as in OpenCV. A
/// window radius over 1024 is refused (DFL uses 24).
pub fn bilateral_filter(src: &Image, d: i32, sigma_color: f64, sigma_space: f64) -> Result<Image> {
    let op = "bilateral_filter";
    src.check_channels(op, &[1, 3], "1 or 3")?;
    src.check_finite(op)?;
    if !sigma_color.is_finite() || !sigma_space.is_finite() {
        return Err(ImageError::NonFinite { op });
    }
    let (w, h, c) = src.shape();
    let sc = if sigma_color <= 0.0 { 1.0 } else { sigma_color };
    let ss = if sigma_space <= 0.0 { 1.0 } else { sigma_space };
    let color_coeff = -0.5 / (sc * sc);
    let space_coeff = -0.5 / (ss * ss);
    let radius = if d <= 0 {
        (ss * 1.5).round_ties_even() as i64
    } else {
        i64::from(d / 2)
    }
    .max(1);
    if radius > 1024 {
        return Err(ImageError::Parameter {
            op,
            msg: format!("window radius {radius} is over 1024"),
        });
    }
    let (lo, hi) = src
        .data()
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if (f64::from(hi) - f64::from(lo)).abs() < f64::from(f32::EPSILON) {
        return Ok(src.clone());
    }
    // Range-weight table over [0, (hi - lo) * c].
    let len = (hi - lo) * c as f32;
    let bins = 4096 * c;
    let scale_index = bins as f32 / len;
    let mut lut = vec![0f32; bins + 2];
    let mut last = 1f32;
    for (i, v) in lut.iter_mut().enumerate() {
        if last > 0.0 {
            let x = f64::from(i as f32 / scale_index);
            *v = (x * x * color_coeff).exp() as f32;
            last = *v;
        }
    }
    // Spatial offsets within the radius.
    let mut offsets = Vec::new();
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let r = ((dy * dy + dx * dx) as f64).sqrt();
            if r <= radius as f64 {
                offsets.push((dy, dx, (r * r * space_coeff).exp() as f32));
            }
        }
    }
    // Rows padded by `radius` pixels on both sides (reflect-101), built once.
    let r = radius as usize;
    let prow = (w + 2 * r) * c;
    let mut padded = vec![0f32; h * prow];
    padded.par_chunks_mut(prow).enumerate().for_each_init(
        Vec::new,
        |pad: &mut Vec<f32>, (y, out)| {
            pad_row(src.row(y), w, c, r, r, Border::Reflect101, pad);
            out.copy_from_slice(pad);
        },
    );
    let padded = &padded;
    let mut out = src.zeros_like();
    out.data_mut()
        .par_chunks_mut(w * c)
        .enumerate()
        .for_each_init(
            || (vec![0f32; w * c], vec![0f32; w]),
            |(sum, wsum), (y, orow)| {
                sum.fill(0.0);
                wsum.fill(0.0);
                let centre = &padded[y * prow + r * c..y * prow + r * c + w * c];
                for &(dy, dx, sw) in &offsets {
                    let sy = Border::Reflect101.index(y as i64 + dy, h).unwrap_or(0);
                    let start = sy * prow + (r as i64 + dx) as usize * c;
                    let nb = &padded[start..start + w * c];
                    bilateral_accumulate(centre, nb, c, sw, &lut, scale_index, sum, wsum);
                }
                for x in 0..w {
                    let inv = 1.0 / wsum[x];
                    for ch in 0..c {
                        orow[x * c + ch] = sum[x * c + ch] * inv;
                    }
                }
            },
        );
    Ok(out)
}

/// One spatial offset of the bilateral filter for a whole row; `c` is 1 or 3.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bilateral_accumulate_body<const FMA: bool>(
    centre: &[f32],
    nb: &[f32],
    c: usize,
    sw: f32,
    lut: &[f32],
    scale_index: f32,
    sum: &mut [f32],
    wsum: &mut [f32],
) {
    if c == 3 {
        bilateral_row::<3>(centre, nb, sw, lut, scale_index, sum, wsum);
    } else {
        bilateral_row::<1>(centre, nb, sw, lut, scale_index, sum, wsum);
    }
}

crate::simd::multiversion!(
    /// [`bilateral_accumulate_body`], AVX2+FMA build when available.
    #[allow(clippy::too_many_arguments)]
    fn bilateral_accumulate / bilateral_accumulate_avx2 => bilateral_accumulate_body(
        centre: &[f32],
        nb: &[f32],
        c: usize,
        sw: f32,
        lut: &[f32],
        scale_index: f32,
        sum: &mut [f32],
        wsum: &mut [f32],
    )
);

/// Accumulates the neighbour row `nb` into `sum` / `wsum` with OpenCV's range weight (L1
/// distance over the channels, table with linear interpolation) times `sw`.
#[inline(always)]
fn bilateral_row<const C: usize>(
    centre: &[f32],
    nb: &[f32],
    sw: f32,
    lut: &[f32],
    scale_index: f32,
    sum: &mut [f32],
    wsum: &mut [f32],
) {
    let n = wsum.len();
    let (centre, nb, sum) = (&centre[..n * C], &nb[..n * C], &mut sum[..n * C]);
    let last = lut.len() - 2;
    for (x, ws) in wsum.iter_mut().enumerate() {
        let p = &centre[x * C..x * C + C];
        let q = &nb[x * C..x * C + C];
        let mut dist = 0f32;
        for ch in 0..C {
            dist += (q[ch] - p[ch]).abs();
        }
        // alpha >= 0, so truncation is OpenCV's cvFloor.
        let alpha = dist * scale_index;
        let idx = (alpha as usize).min(last);
        let frac = alpha - idx as f32;
        let (l0, l1) = (lut[idx], lut[idx + 1]);
        let wgt = sw * (l0 + frac * (l1 - l0));
        let s = &mut sum[x * C..x * C + C];
        for ch in 0..C {
            s[ch] += q[ch] * wgt;
        }
        *ws += wgt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn img(w: usize, h: usize, c: usize) -> Image {
        Image::from_fn(w, h, c, |x, y, ch| {
            ((x * 31 + y * 17 + ch * 7) % 23) as f32 / 22.0
        })
        .unwrap()
    }

    fn max_diff(a: &Image, b: &Image) -> f32 {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn kernel_rules_match_opencv() {
        assert!(gaussian_blur(&img(4, 4, 1), 0, 1e7).is_err());
        assert!(box_blur(&img(4, 4, 1), MAX_KERNEL + 1, 3).is_err());
        assert_eq!(gaussian_ksize_for_sigma(2.0), 17);
        assert_eq!(gaussian_ksize_for_sigma(10.0), 81);
        assert_eq!(gaussian_ksize_for_sigma(0.1), 3);
        assert!((gaussian_sigma_for_ksize(9) - 1.7).abs() < 1e-12);
        assert_eq!(gaussian_kernel(3, 0.0).unwrap(), vec![0.25, 0.5, 0.25]);
        let k = gaussian_kernel(9, 0.0).unwrap();
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(gaussian_kernel(4, 1.0).is_err());
        assert!(gaussian_blur(&img(4, 4, 1), 0, 0.0).is_err());
    }

    #[test]
    fn sep_and_2d_filters_agree_with_reference() {
        let src = img(17, 13, 3);
        let kx = [0.1, -0.3, 0.7, 0.2];
        let ky = [0.25, 0.5, 0.125, 0.0625, 0.0625];
        for border in [
            Border::Reflect101,
            Border::Replicate,
            Border::Reflect,
            Border::Constant(0.5),
            Border::Wrap,
        ] {
            let fast = sep_filter(&src, &kx, &ky, border).unwrap();
            let mut k2 = Vec::new();
            for a in ky {
                for b in kx {
                    k2.push(a * b);
                }
            }
            let kernel = Kernel::new(4, 5, k2).unwrap();
            let slow = reference::filter2d(&src, &kernel, border).unwrap();
            let fast2 = filter2d(&src, &kernel, border).unwrap();
            assert!(max_diff(&fast, &slow) < 1e-5, "{border:?}");
            assert!(max_diff(&fast2, &slow) < 1e-5, "{border:?}");
        }
    }

    #[test]
    fn bilateral_portable_and_simd_builds_agree() {
        let lut: Vec<f32> = (0..4098).map(|i| (-(i as f32) / 900.0).exp()).collect();
        for c in [1usize, 3] {
            let centre: Vec<f32> = (0..40 * c).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
            let nb: Vec<f32> = (0..40 * c).map(|i| ((i * 5) % 13) as f32 / 12.0).collect();
            let (mut s1, mut w1) = (vec![0f32; 40 * c], vec![0f32; 40]);
            let (mut s2, mut w2) = (vec![0f32; 40 * c], vec![0f32; 40]);
            bilateral_accumulate(&centre, &nb, c, 0.7, &lut, 1000.0, &mut s1, &mut w1);
            bilateral_accumulate_body::<false>(
                &centre, &nb, c, 0.7, &lut, 1000.0, &mut s2, &mut w2,
            );
            for (a, b) in s1.iter().zip(&s2).chain(w1.iter().zip(&w2)) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn median_agrees_with_reference_and_refuses_nan() {
        let src = img(11, 9, 3);
        for k in [3, 5] {
            let fast = median_blur(&src, k).unwrap();
            let slow = reference::median_blur(&src, k).unwrap();
            assert_eq!(fast, slow);
        }
        assert!(median_blur(&src, 7).is_err());
        let mut bad = src.clone();
        bad.data_mut()[5] = f32::NAN;
        assert!(matches!(
            median_blur(&bad, 5),
            Err(ImageError::NonFinite { .. })
        ));
        assert!(matches!(
            gaussian_blur(&bad, 3, 0.0),
            Err(ImageError::NonFinite { .. })
        ));
    }
}
