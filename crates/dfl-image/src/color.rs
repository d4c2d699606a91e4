//! Colour spaces with OpenCV's float conventions: Lab (L 0..100, a/b about -127..127, D65,
//! sRGB gamma) and HSV (H in degrees 0..360, S and V 0..1). Function names say the channel
//! order of the RGB side; DFL works in BGR.
//!
//! BGR/RGB -> Lab reproduces OpenCV's float path: inputs are clipped to [0, 1], rounded to
//! 1/16384 and looked up in a 33^3 table of 16-bit Lab values with fixed-point trilinear
//! interpolation (OpenCV's `RGB2Lab_f` with `useInterpolation`). That table is up to 0.5 a/b
//! units away from the textbook formula, and DFL's RCT statistics are computed on it, so
//! matching it matters for reproducing DFL. OpenCV fills its table with its softfloat library;
//! ours uses hardware f32 in the same order, which rounds about 0.06 % of the nodes to the
//! neighbouring 16-bit value, so results agree to one table step (0.0061 L, 0.0156 a/b).
//! Lab -> BGR/RGB uses OpenCV's float formulas, clips to [0, 1] and applies the sRGB curve
//! through OpenCV's 1024-interval cubic spline of it.

use crate::error::Result;
use crate::image::Image;
use rayon::prelude::*;
use std::sync::OnceLock;

const LAB_LUT_DIM: usize = 33;
const LAB_BASE: f32 = 16384.0;

/// sRGB -> XYZ (D65), rows X, Y, Z; columns R, G, B (OpenCV's `sRGB2XYZ_D65`).
const RGB2XYZ: [[f64; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
/// XYZ -> sRGB (D65), rows R, G, B (OpenCV's `XYZ2sRGB_D65`).
const XYZ2RGB: [[f64; 3]; 3] = [
    [3.240479, -1.53715, -0.498535],
    [-0.969256, 1.875991, 0.041556],
    [0.055648, -0.204043, 1.057311],
];
/// D65 white point X and Z (Y = 1).
const WHITE_X: f64 = 0.950456;
const WHITE_Z: f64 = 1.088754;

fn srgb_to_linear(x: f64) -> f64 {
    if x <= 0.04045 {
        x / 12.92
    } else {
        ((x + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb_exact(x: f64) -> f64 {
    if x <= 0.003_130_8 {
        x * 12.92
    } else {
        1.055 * x.powf(1.0 / 2.4) - 0.055
    }
}

/// OpenCV's `splineBuild`: natural cubic spline coefficients (4 per interval) through
/// `f[0..=n]` at unit spacing.
fn spline_build(f: &[f32]) -> Vec<[f32; 4]> {
    let n = f.len() - 1;
    let mut tab = vec![[0f32; 4]; n];
    for i in 1..n {
        let t = (f[i + 1] - f[i] * 2.0 + f[i - 1]) * 3.0;
        let l = 1.0 / (4.0 - tab[i - 1][0]);
        tab[i][0] = l;
        tab[i][1] = (t - tab[i - 1][1]) * l;
    }
    let mut cn = 0f32;
    for i in (0..n).rev() {
        let c = tab[i][1] - tab[i][0] * cn;
        let b = f[i + 1] - f[i] - (cn + c * 2.0) / 3.0;
        let d = (cn - c) / 3.0;
        tab[i] = [f[i], b, c, d];
        cn = c;
    }
    tab
}

/// OpenCV's `sRGBInvGammaTab`: the spline of the sRGB curve through 1025 exact samples.
fn srgb_spline() -> &'static [[f32; 4]] {
    static TAB: OnceLock<Vec<[f32; 4]>> = OnceLock::new();
    TAB.get_or_init(|| {
        let f: Vec<f32> = (0..=1024)
            .map(|i| linear_to_srgb_exact(i as f64 / 1024.0) as f32)
            .collect();
        spline_build(&f)
    })
}

/// sRGB companding of a linear value in [0, 1] as OpenCV's float Lab->RGB does it, through
/// [`srgb_spline`] (within 1e-6 of the exact curve).
#[inline(always)]
fn linear_to_srgb(tab: &[[f32; 4]], x: f32) -> f32 {
    let x = x * 1024.0;
    let ix = (x as i64).clamp(0, 1023) as usize;
    let t = x - ix as f32;
    let c = tab[ix];
    ((c[3] * t + c[2]) * t + c[1]) * t + c[0]
}

/// OpenCV's 33^3 RGB -> Lab table: per grid node (R, G, B) = (i, j, k) / 32, the Lab value as
/// 16-bit fixed point (`L / 100`, `(a + 128) / 256`, `(b + 128) / 256` times 16384, rounded),
/// stored per cell like OpenCV: cell `(r * 33 + g) * 33 + b` holds its 8 corners' L values,
/// then the 8 a values, then the 8 b values (corner `4 dr + 2 dg + db`, clamped at the last
/// node), so one pixel reads 24 consecutive values.
fn lab_lut() -> &'static [[i16; 24]] {
    static LUT: OnceLock<Vec<[i16; 24]>> = OnceLock::new();
    LUT.get_or_init(|| {
        // Mirrors OpenCV's softfloat (f32) arithmetic: linear values and white-scaled
        // coefficients rounded to f32, products and sums in f32.
        let mut lut = vec![0i32; LAB_LUT_DIM * LAB_LUT_DIM * LAB_LUT_DIM * 3];
        let step = (LAB_LUT_DIM - 1) as f64;
        let white = [WHITE_X, 1.0, WHITE_Z];
        let s: [[f32; 3]; 3] =
            std::array::from_fn(|i| std::array::from_fn(|j| (RGB2XYZ[i][j] / white[i]) as f32));
        let thresh = 216.0f32 / 24389.0;
        let f = |t: f32| {
            if t > thresh {
                t.cbrt()
            } else {
                t * (841.0f32 / 108.0) + 16.0f32 / 116.0
            }
        };
        for r in 0..LAB_LUT_DIM {
            for g in 0..LAB_LUT_DIM {
                for b in 0..LAB_LUT_DIM {
                    let lin = [r, g, b].map(|v| srgb_to_linear(v as f64 / step) as f32);
                    let xyz = s.map(|row| row[0] * lin[0] + row[1] * lin[1] + row[2] * lin[2]);
                    let (fx, fy, fz) = (f(xyz[0]), f(xyz[1]), f(xyz[2]));
                    let l = if xyz[1] > thresh {
                        116.0 * fy - 16.0
                    } else {
                        (24389.0f32 / 27.0) * xyz[1]
                    };
                    let a = 500.0 * (fx - fy);
                    let bb = 200.0 * (fy - fz);
                    let i = ((r * LAB_LUT_DIM + g) * LAB_LUT_DIM + b) * 3;
                    lut[i] = (LAB_BASE * l / 100.0).round_ties_even() as i32;
                    lut[i + 1] = (LAB_BASE * (a + 128.0) / 256.0).round_ties_even() as i32;
                    lut[i + 2] = (LAB_BASE * (bb + 128.0) / 256.0).round_ties_even() as i32;
                }
            }
        }
        let last = LAB_LUT_DIM - 1;
        let mut cells = vec![[0i16; 24]; LAB_LUT_DIM * LAB_LUT_DIM * LAB_LUT_DIM];
        for r in 0..LAB_LUT_DIM {
            for g in 0..LAB_LUT_DIM {
                for b in 0..LAB_LUT_DIM {
                    let cell = &mut cells[(r * LAB_LUT_DIM + g) * LAB_LUT_DIM + b];
                    for corner in 0..8 {
                        let (dr, dg, db) = (corner >> 2, (corner >> 1) & 1, corner & 1);
                        let node = (((r + dr).min(last) * LAB_LUT_DIM + (g + dg).min(last))
                            * LAB_LUT_DIM
                            + (b + db).min(last))
                            * 3;
                        for k in 0..3 {
                            // Node values are within 0..=16384 and fit i16.
                            cell[k * 8 + corner] = lut[node + k] as i16;
                        }
                    }
                }
            }
        }
        cells
    })
}

/// One pixel: (R, G, B) in [0, 1] -> (L, a, b) through OpenCV's table.
#[inline(always)]
fn rgb_to_lab_px(lut: &[[i16; 24]], r: f32, g: f32, b: f32) -> [f32; 3] {
    // cvRound(clip(v) * LAB_BASE): integer position in 1/16384 units.
    let q = |v: f32| -> i32 {
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        (v * LAB_BASE).round_ties_even() as i32
    };
    let (cr, cg, cb) = (q(r), q(g), q(b));
    // Cell origin (9 bits per cell) and fraction in 1/16 of a cell.
    let cell_index = (((cr >> 9) as usize * LAB_LUT_DIM) + (cg >> 9) as usize) * LAB_LUT_DIM
        + (cb >> 9) as usize;
    let cell = &lut[cell_index];
    let (fr, fg, fb) = ((cr >> 5) & 15, (cg >> 5) & 15, (cb >> 5) & 15);
    let wr = [16 - fr, fr];
    let wg = [16 - fg, fg];
    let wb = [16 - fb, fb];
    // Weights are at most 16^3 = 4096 and table values at most 16384: 16-bit inputs, 32-bit
    // products (a multiply-add pattern the compiler vectorises).
    let mut w = [0i16; 8];
    for (corner, wc) in w.iter_mut().enumerate() {
        *wc = (wr[corner >> 2] * wg[(corner >> 1) & 1] * wb[corner & 1]) as i16;
    }
    let dot = |k: usize| -> i32 {
        let v = &cell[k * 8..k * 8 + 8];
        let mut s = 0i32;
        for corner in 0..8 {
            s += i32::from(v[corner]) * i32::from(w[corner]);
        }
        s
    };
    let acc = [dot(0), dot(1), dot(2)];
    let d = |v: i32| ((v + (1 << 11)) >> 12) as f32 / LAB_BASE;
    [
        d(acc[0]) * 100.0,
        d(acc[1]) * 256.0 - 128.0,
        d(acc[2]) * 256.0 - 128.0,
    ]
}

/// One pixel (L, a, b) -> (R, G, B) with OpenCV's float `Lab2RGB` formulas, clipped to [0, 1].
#[inline(always)]
fn lab_to_rgb_px(tab: &[[f32; 4]], l: f32, a: f32, b: f32) -> [f32; 3] {
    // OpenCV's vectorised path multiplies by reciprocals; so do we (and select instead of
    // branching, so the loop stays straight).
    let y_lin = l * (1.0 / 903.3);
    let fy_lin = 7.787 * y_lin + 16.0 / 116.0;
    let fy_cub = (l + 16.0) * (1.0 / 116.0);
    let low = l <= 8.0;
    let y = if low { y_lin } else { fy_cub * fy_cub * fy_cub };
    let fy = if low { fy_lin } else { fy_cub };
    let finv = |t: f32| {
        let lin = (t - 16.0 / 116.0) * (1.0 / 7.787);
        if t <= 6.0 / 29.0 { lin } else { t * t * t }
    };
    let x = finv(a * 0.002 + fy) * WHITE_X as f32;
    let z = finv(fy - b * 0.005) * WHITE_Z as f32;
    // Written out (no `array::map`, which the compiler does not inline here).
    let ch = |row: &[f64; 3]| {
        let v = row[0] as f32 * x + row[1] as f32 * y + row[2] as f32 * z;
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        linear_to_srgb(tab, v)
    };
    [ch(&XYZ2RGB[0]), ch(&XYZ2RGB[1]), ch(&XYZ2RGB[2])]
}

/// The float conversions of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    BgrToLab,
    RgbToLab,
    LabToBgr,
    LabToRgb,
    BgrToHsv,
    RgbToHsv,
    HsvToBgr,
    HsvToRgb,
}

/// Applies `f` to every 3-channel pixel of a chunk.
#[inline(always)]
fn each_pixel(src: &[f32], dst: &mut [f32], f: impl Fn(f32, f32, f32) -> [f32; 3]) {
    for (o, p) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
        o.copy_from_slice(&f(p[0], p[1], p[2]));
    }
}

/// One chunk of a conversion (the loop is compiled once per conversion and CPU build).
#[inline(always)]
fn convert_body<const FMA: bool>(conv: Conv, src: &[f32], dst: &mut [f32]) {
    let lut = lab_lut();
    let tab = srgb_spline();
    let rev = |p: [f32; 3]| [p[2], p[1], p[0]];
    match conv {
        Conv::BgrToLab => each_pixel(src, dst, |b, g, r| rgb_to_lab_px(lut, r, g, b)),
        Conv::RgbToLab => each_pixel(src, dst, |r, g, b| rgb_to_lab_px(lut, r, g, b)),
        Conv::LabToBgr => each_pixel(src, dst, |l, a, b| rev(lab_to_rgb_px(tab, l, a, b))),
        Conv::LabToRgb => each_pixel(src, dst, |l, a, b| lab_to_rgb_px(tab, l, a, b)),
        Conv::BgrToHsv => each_pixel(src, dst, |b, g, r| rgb_to_hsv_px(r, g, b)),
        Conv::RgbToHsv => each_pixel(src, dst, rgb_to_hsv_px),
        Conv::HsvToBgr => each_pixel(src, dst, |h, s, v| rev(hsv_to_rgb_px(h, s, v))),
        Conv::HsvToRgb => each_pixel(src, dst, hsv_to_rgb_px),
    }
}

crate::simd::multiversion!(
    /// One chunk of a conversion, AVX2+FMA build when available.
    fn convert_chunk / convert_chunk_avx2 => convert_body(conv: Conv, src: &[f32], dst: &mut [f32])
);

/// Runs a conversion over a 3-channel image, in parallel.
fn convert(src: &Image, op: &'static str, conv: Conv) -> Result<Image> {
    src.check_channels(op, &[3], "3")?;
    src.check_finite(op)?;
    let mut out = src.zeros_like();
    out.data_mut()
        .par_chunks_mut(3 * 2048)
        .zip(src.data().par_chunks(3 * 2048))
        .for_each(|(o, s)| convert_chunk(conv, s, o));
    Ok(out)
}

/// `cv2.cvtColor(img, cv2.COLOR_BGR2Lab)` on float BGR in [0, 1] (inputs are clipped to
/// [0, 1], like OpenCV). Every conversion of this module refuses NaN or infinite input.
pub fn bgr_to_lab(src: &Image) -> Result<Image> {
    convert(src, "bgr_to_lab", Conv::BgrToLab)
}

/// `cv2.cvtColor(img, cv2.COLOR_RGB2Lab)` on float RGB in [0, 1].
pub fn rgb_to_lab(src: &Image) -> Result<Image> {
    convert(src, "rgb_to_lab", Conv::RgbToLab)
}

/// `cv2.cvtColor(lab, cv2.COLOR_Lab2BGR)`: float Lab to BGR clipped to [0, 1].
pub fn lab_to_bgr(src: &Image) -> Result<Image> {
    convert(src, "lab_to_bgr", Conv::LabToBgr)
}

/// `cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)`: float Lab to RGB clipped to [0, 1].
pub fn lab_to_rgb(src: &Image) -> Result<Image> {
    convert(src, "lab_to_rgb", Conv::LabToRgb)
}

/// OpenCV's 8-bit sRGB gamma table (`sRGBGammaTab_b`): `round(2040 * gamma(i / 255))`.
fn gamma_tab_b() -> &'static [i32; 256] {
    static T: OnceLock<[i32; 256]> = OnceLock::new();
    T.get_or_init(|| {
        std::array::from_fn(|i| {
            (2040.0 * srgb_to_linear(i as f64 / 255.0)).round_ties_even() as i32
        })
    })
}

/// OpenCV's 8-bit cube-root table (`LabCbrtTab_b`, 3072 entries, 15 fractional bits).
fn cbrt_tab_b() -> &'static [i32] {
    static T: OnceLock<Vec<i32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..3072)
            .map(|i| {
                let x = i as f64 / 2040.0;
                let f = if x < 216.0 / 24389.0 {
                    x * (841.0 / 108.0) + 16.0 / 116.0
                } else {
                    x.cbrt()
                };
                (32768.0 * f).round_ties_even() as i32
            })
            .collect()
    })
}

/// OpenCV's `COLOR_BGR2Lab` on 8-bit BGR (`RGB2Lab_b`, integer arithmetic reproduced):
/// L scaled to 0..255, a and b offset by 128. `bgr.len()` must be a multiple of 3.
pub fn bgr8_to_lab8(bgr: &[u8]) -> Vec<u8> {
    let gamma = gamma_tab_b();
    let cbrt = cbrt_tab_b();
    let white = [WHITE_X, 1.0, WHITE_Z];
    // Row i of XYZ with coefficients for (B, G, R) in 12-bit fixed point.
    let coef: [[i32; 3]; 3] = std::array::from_fn(|i| {
        let c = |j: usize| (4096.0 * RGB2XYZ[i][j] / white[i]).round_ties_even() as i32;
        [c(2), c(1), c(0)]
    });
    let descale = |v: i32, n: u32| (v + (1 << (n - 1))) >> n;
    let mut out = Vec::with_capacity(bgr.len());
    for p in bgr.chunks_exact(3) {
        let t = [
            gamma[p[0] as usize],
            gamma[p[1] as usize],
            gamma[p[2] as usize],
        ];
        let f = coef.map(|row| {
            let idx = descale(row[0] * t[0] + row[1] * t[1] + row[2] * t[2], 12);
            cbrt[idx.clamp(0, 3071) as usize]
        });
        let l = descale(296 * f[1] - 1_336_934, 15);
        let a = descale(500 * (f[0] - f[1]) + 128 * (1 << 15), 15);
        let b = descale(200 * (f[1] - f[2]) + 128 * (1 << 15), 15);
        out.extend([l, a, b].map(|v| v.clamp(0, 255) as u8));
    }
    out
}

/// OpenCV's 8-bit inverse gamma table (`sRGBInvGammaTab_b`, 4096 entries).
fn inv_gamma_tab_b() -> &'static [i32] {
    static T: OnceLock<Vec<i32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..4096)
            .map(|i| {
                let x = i as f64 / 4096.0;
                let g = if x <= 0.003_130_8 {
                    x * 12.92
                } else {
                    1.055 * x.powf(1.0 / 2.4) - 0.055
                };
                (255.0 * g).round_ties_even() as i32
            })
            .collect()
    })
}

/// OpenCV's `LabToYF_b`: per 8-bit L, (y, f(y)) in 14-bit fixed point.
fn lab_to_yf_b() -> &'static [(i64, i64); 256] {
    static T: OnceLock<[(i64, i64); 256]> = OnceLock::new();
    T.get_or_init(|| {
        let base = 16384.0;
        std::array::from_fn(|i| {
            let fi = i as f64;
            if i <= 20 {
                let y = (fi * base * 20.0 * 9.0 / (17.0 * 24389.0)).round_ties_even() as i64;
                let ify = (base * (16.0 / 116.0 + fi * 5.0 / (3.0 * 17.0 * 29.0))).round_ties_even()
                    as i64;
                (y, ify)
            } else {
                let fy = fi * 100.0 * base / (255.0 * 116.0) + 16.0 * base / 116.0;
                (
                    (fy * fy * fy / (base * base)).round_ties_even() as i64,
                    fy.round_ties_even() as i64,
                )
            }
        })
    })
}

/// OpenCV's `abToXZ_b` (index `v + 8145`): inverse of the Lab companding in 14-bit fixed point.
fn ab_to_xz(v: i64) -> i64 {
    if v <= 3390 {
        v * 108 / 841 - 290
    } else {
        v * v / 16384 * v / 16384
    }
}

/// OpenCV's `COLOR_Lab2BGR` on 8-bit Lab (`Lab2RGBinteger`, integer arithmetic reproduced).
/// `lab.len()` must be a multiple of 3.
pub fn lab8_to_bgr8(lab: &[u8]) -> Vec<u8> {
    let yf = lab_to_yf_b();
    let inv = inv_gamma_tab_b();
    let white = [WHITE_X, 1.0, WHITE_Z];
    // Output rows (B, G, R), columns (x, y, z), 12-bit fixed point.
    let coef: [[i64; 3]; 3] = [2, 1, 0].map(|row| {
        std::array::from_fn(|i| (4096.0 * XYZ2RGB[row][i] * white[i]).round_ties_even() as i64)
    });
    let mut out = Vec::with_capacity(lab.len());
    for p in lab.chunks_exact(3) {
        let (y, ify) = yf[p[0] as usize];
        let (aa, bb) = (i64::from(p[1]), i64::from(p[2]));
        let adiv = ((5 * aa * 53687 + (1 << 7)) >> 13) - 4194;
        let bdiv = ((bb * 41943 + (1 << 4)) >> 9) - 10484;
        let x = ab_to_xz(ify + adiv);
        let z = ab_to_xz(ify - bdiv);
        out.extend(coef.map(|c| {
            let v = (c[0] * x + c[1] * y + c[2] * z + (1 << 13)) >> 14;
            inv[v.clamp(0, 4095) as usize].clamp(0, 255) as u8
        }));
    }
    out
}

/// OpenCV's float `RGB2HSV`: (R, G, B) -> (H degrees, S, V).
#[inline(always)]
fn rgb_to_hsv_px(r: f32, g: f32, b: f32) -> [f32; 3] {
    let v = r.max(g).max(b);
    let vmin = r.min(g).min(b);
    let diff = v - vmin;
    let s = diff / (v.abs() + f32::EPSILON);
    let k = (60.0 / (f64::from(diff) + f64::from(f32::EPSILON))) as f32;
    let mut h = if v == r {
        (g - b) * k
    } else if v == g {
        (b - r) * k + 120.0
    } else {
        (r - g) * k + 240.0
    };
    if h < 0.0 {
        h += 360.0;
    }
    [h, s, v]
}

/// OpenCV's float `HSV2RGB`: (H degrees, S, V) -> (R, G, B); H wraps modulo 360.
#[inline(always)]
fn hsv_to_rgb_px(h: f32, s: f32, v: f32) -> [f32; 3] {
    if s == 0.0 {
        return [v, v, v];
    }
    const SECTOR: [[usize; 3]; 6] = [
        [1, 3, 0],
        [1, 0, 2],
        [3, 0, 1],
        [0, 2, 1],
        [0, 1, 3],
        [2, 1, 0],
    ];
    let mut h = h * (6.0 / 360.0);
    if !(0.0..6.0).contains(&h) {
        h = h.rem_euclid(6.0);
        if h >= 6.0 {
            h = 0.0;
        }
    }
    let mut sector = h.floor() as i64;
    h -= sector as f32;
    if !(0..6).contains(&sector) {
        sector = 0;
        h = 0.0;
    }
    let tab = [
        v,
        v * (1.0 - s),
        v * (1.0 - s * h),
        v * (1.0 - s * (1.0 - h)),
    ];
    let sd = SECTOR[sector as usize];
    // sector_data gives (b, g, r).
    [tab[sd[2]], tab[sd[1]], tab[sd[0]]]
}

/// `cv2.cvtColor(img, cv2.COLOR_BGR2HSV)` on float BGR: H in degrees [0, 360), S and V.
pub fn bgr_to_hsv(src: &Image) -> Result<Image> {
    convert(src, "bgr_to_hsv", Conv::BgrToHsv)
}

/// `cv2.cvtColor(img, cv2.COLOR_RGB2HSV)` on float RGB.
pub fn rgb_to_hsv(src: &Image) -> Result<Image> {
    convert(src, "rgb_to_hsv", Conv::RgbToHsv)
}

/// `cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)` on float HSV. H is in degrees and wraps modulo 360
/// for any value (OpenCV 5 returns out-of-range values for negative hues; DFL never passes
/// them).
pub fn hsv_to_bgr(src: &Image) -> Result<Image> {
    convert(src, "hsv_to_bgr", Conv::HsvToBgr)
}

/// `cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)` on float HSV.
pub fn hsv_to_rgb(src: &Image) -> Result<Image> {
    convert(src, "hsv_to_rgb", Conv::HsvToRgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_of_white_black_and_grey() {
        let img = Image::new(3, 1, 3, vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]).unwrap();
        let lab = bgr_to_lab(&img).unwrap();
        let p = lab.data();
        assert!((p[0] - 100.0).abs() < 0.01 && p[1].abs() < 0.02 && p[2].abs() < 0.02);
        assert!(p[3].abs() < 1e-6);
        assert!((p[6] - 53.39).abs() < 0.05, "grey L {}", p[6]);
        let back = lab_to_bgr(&lab).unwrap();
        for (a, b) in back.data().iter().zip(img.data()) {
            assert!((a - b).abs() < 2e-3);
        }
    }

    #[test]
    fn portable_and_simd_builds_agree() {
        let src: Vec<f32> = (0..3 * 500)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        for conv in [
            Conv::BgrToLab,
            Conv::LabToBgr,
            Conv::BgrToHsv,
            Conv::HsvToBgr,
        ] {
            let mut a = vec![0f32; src.len()];
            let mut b = vec![0f32; src.len()];
            convert_chunk(conv, &src, &mut a);
            convert_body::<false>(conv, &src, &mut b);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{conv:?}");
            }
        }
    }

    #[test]
    fn hsv_round_trip_and_wrap() {
        let img = Image::from_fn(7, 5, 3, |x, y, c| {
            ((x * 3 + y * 5 + c * 7) % 11) as f32 / 10.0
        })
        .unwrap();
        let hsv = bgr_to_hsv(&img).unwrap();
        assert!(hsv.data().chunks(3).all(|p| (0.0..360.0).contains(&p[0])));
        let back = hsv_to_bgr(&hsv).unwrap();
        for (a, b) in back.data().iter().zip(img.data()) {
            assert!((a - b).abs() < 1e-5);
        }
        // Hue wraps: 720 + 120 degrees is pure green.
        let g = Image::new(1, 1, 3, vec![840.0, 1.0, 1.0]).unwrap();
        let rgb = hsv_to_rgb(&g).unwrap();
        for (a, b) in rgb.data().iter().zip([0.0, 1.0, 0.0]) {
            assert!((a - b).abs() < 1e-5);
        }
        // Negative hues wrap too: -240 degrees is green as well.
        let g = Image::new(1, 1, 3, vec![-240.0, 1.0, 1.0]).unwrap();
        let rgb = hsv_to_rgb(&g).unwrap();
        for (a, b) in rgb.data().iter().zip([0.0, 1.0, 0.0]) {
            assert!((a - b).abs() < 1e-5);
        }
        assert!(bgr_to_hsv(&Image::zeros(2, 2, 1).unwrap()).is_err());
    }
}
