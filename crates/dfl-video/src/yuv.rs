//! 8-bit 4:2:0 YUV → RGB24, the fast path of extraction.
//!
//! Converting in ffmpeg (`-pix_fmt rgb24`) runs on ffmpeg's single filter thread and doubles
//! the bytes crossing the pipe; converting here runs on every extraction worker. The formula
//! is swscale's unscaled converter, which DFL's ffmpeg-written frames went through: each chroma
//! sample covers a 2x2 block (no interpolation), the coefficients are swscale's table for the
//! stream's colour matrix (BT.601 when unspecified) in 16.16 fixed point, limited or full
//! range. swscale's SIMD code rounds slightly differently, so results agree within a few
//! levels, not bit for bit; ffmpeg's own conversion stays the reference path (and the path for
//! every other pixel format).

/// The colour matrices swscale distinguishes for 8-bit video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matrix {
    /// ITU-R BT.601 (also `unknown`, `smpte170m`, `bt470bg`): swscale's default.
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
    /// FCC.
    Fcc,
    /// SMPTE 240M.
    Smpte240m,
    /// ITU-R BT.2020 (non-constant and constant luminance).
    Bt2020,
}

impl Matrix {
    /// The matrix ffmpeg uses for an ffprobe `color_space` value.
    pub(crate) fn from_ffprobe(color_space: Option<&str>) -> Matrix {
        match color_space.unwrap_or("") {
            "bt709" => Matrix::Bt709,
            "fcc" => Matrix::Fcc,
            "smpte240m" => Matrix::Smpte240m,
            "bt2020nc" | "bt2020c" => Matrix::Bt2020,
            _ => Matrix::Bt601,
        }
    }

    /// swscale's `ff_yuv2rgb_coeffs` row: (crv, cbu, cgu, cgv) in 16.16 fixed point, for
    /// limited range.
    fn table(self) -> [i64; 4] {
        match self {
            Matrix::Bt601 => [104_597, 132_201, 25_675, 53_279],
            Matrix::Bt709 => [117_489, 138_438, 13_975, 34_925],
            Matrix::Fcc => [104_448, 132_798, 24_759, 53_109],
            Matrix::Smpte240m => [117_579, 136_230, 16_907, 35_559],
            Matrix::Bt2020 => [110_013, 140_363, 12_277, 42_626],
        }
    }
}

/// Conversion constants as swscale's x86 code holds them: signed 16-bit factors with 13
/// fractional bits, applied with `pmulhw` to samples scaled by 8 (so each product lands in
/// whole levels, truncated toward minus infinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coeffs {
    y_coeff: i16,
    y_offset: i16,
    v2r: i16,
    u2b: i16,
    u2g: i16,
    v2g: i16,
}

/// swscale's `roundToInt16` of a 16.16 value scaled by `2^shift`.
fn round16(v: i64, shift: u32) -> i16 {
    (((v << shift) + (1 << 15)) >> 16).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

impl Coeffs {
    /// The constants for `matrix`, limited (`full_range == false`, 16..235) or full range,
    /// derived as swscale's `ff_yuv2rgb_c_init_tables` does (default contrast, saturation and
    /// brightness).
    pub(crate) fn new(matrix: Matrix, full_range: bool) -> Coeffs {
        let [crv, cbu, cgu, cgv] = matrix.table();
        let (mut crv, mut cbu, mut cgu, mut cgv) = (crv, cbu, -cgu, -cgv);
        let (cy, oy) = if full_range {
            // C integer division truncates toward zero, as Rust's does.
            crv = crv * 224 / 255;
            cbu = cbu * 224 / 255;
            cgu = cgu * 224 / 255;
            cgv = cgv * 224 / 255;
            (1i64 << 16, 0)
        } else {
            ((1i64 << 16) * 255 / 219, 16i64 << 16)
        };
        Coeffs {
            y_coeff: round16(cy, 13),
            y_offset: round16(oy, 3),
            v2r: round16(crv, 13),
            u2b: round16(cbu, 13),
            u2g: round16(cgu, 13),
            v2g: round16(cgv, 13),
        }
    }
}

/// Bytes of one raw yuv420p frame of even size `width` x `height`.
pub(crate) fn frame_bytes(width: u32, height: u32) -> usize {
    let luma = width as usize * height as usize;
    luma + luma / 2
}

/// `pmulhw`: the high 16 bits of the signed 32-bit product.
#[inline(always)]
fn mulhi(a: i16, b: i16) -> i16 {
    ((i32::from(a) * i32::from(b)) >> 16) as i16
}

/// Chroma terms (red, green, blue offsets) of one U/V pair.
#[inline(always)]
fn chroma(u: u8, v: u8, c: &Coeffs) -> (i16, i16, i16) {
    let u8x = (i16::from(u) << 3).saturating_sub(1024);
    let v8x = (i16::from(v) << 3).saturating_sub(1024);
    (
        mulhi(v8x, c.v2r),
        mulhi(u8x, c.u2g).saturating_add(mulhi(v8x, c.v2g)),
        mulhi(u8x, c.u2b),
    )
}

/// Scaled luma of one sample.
#[inline(always)]
fn luma(y: u8, c: &Coeffs) -> i16 {
    mulhi((i16::from(y) << 3).wrapping_sub(c.y_offset), c.y_coeff)
}

#[inline(always)]
fn to_u8(v: i16) -> u8 {
    v.clamp(0, 255) as u8
}

/// Pixels per block of the vectorisable kernel.
const BLOCK: usize = 16;

/// Converts one row: `y` has `w` samples, `u`/`v` `w / 2`, `out` `3 * w` bytes. Blocks of 16
/// pixels use fixed-size arrays so the compiler can vectorise them; the tail goes pixel by
/// pixel with the same arithmetic.
#[inline(always)]
fn convert_row_kernel(y: &[u8], u: &[u8], v: &[u8], c: &Coeffs, out: &mut [u8]) {
    let mut yb = y.chunks_exact(BLOCK);
    let mut ub = u.chunks_exact(BLOCK / 2);
    let mut vb = v.chunks_exact(BLOCK / 2);
    let mut ob = out.chunks_exact_mut(3 * BLOCK);
    for (((ys, us), vs), os) in (&mut yb).zip(&mut ub).zip(&mut vb).zip(&mut ob) {
        let mut ro = [0i16; BLOCK / 2];
        let mut go = [0i16; BLOCK / 2];
        let mut bo = [0i16; BLOCK / 2];
        for i in 0..BLOCK / 2 {
            (ro[i], go[i], bo[i]) = chroma(us[i], vs[i], c);
        }
        let mut r = [0u8; BLOCK];
        let mut g = [0u8; BLOCK];
        let mut b = [0u8; BLOCK];
        for i in 0..BLOCK {
            let l = luma(ys[i], c);
            r[i] = to_u8(l.saturating_add(ro[i / 2]));
            g[i] = to_u8(l.saturating_add(go[i / 2]));
            b[i] = to_u8(l.saturating_add(bo[i / 2]));
        }
        for i in 0..BLOCK {
            os[3 * i] = r[i];
            os[3 * i + 1] = g[i];
            os[3 * i + 2] = b[i];
        }
    }
    // Tail: fewer than 16 pixels (an even number, as the width is even).
    let (yt, ut, vt, ot) = (
        yb.remainder(),
        ub.remainder(),
        vb.remainder(),
        ob.into_remainder(),
    );
    for (((ys, &u), &v), os) in yt
        .chunks_exact(2)
        .zip(ut)
        .zip(vt)
        .zip(ot.chunks_exact_mut(6))
    {
        let (ro, go, bo) = chroma(u, v, c);
        for (i, &yv) in ys.iter().enumerate() {
            let l = luma(yv, c);
            os[3 * i] = to_u8(l.saturating_add(ro));
            os[3 * i + 1] = to_u8(l.saturating_add(go));
            os[3 * i + 2] = to_u8(l.saturating_add(bo));
        }
    }
}

/// The portable version: plain Rust, vectorised for the build's baseline CPU (SSE2 on
/// x86-64), and the reference the AVX2 version must agree with.
fn convert_row_portable(y: &[u8], u: &[u8], v: &[u8], c: &Coeffs, out: &mut [u8]) {
    convert_row_kernel(y, u, v, c, out);
}

/// The same kernel compiled for AVX2 (which has the byte shuffles RGB interleaving needs):
/// 2.5x faster than the SSE2 build on 1280x720 frames.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_row_avx2(y: &[u8], u: &[u8], v: &[u8], c: &Coeffs, out: &mut [u8]) {
    convert_row_kernel(y, u, v, c, out);
}

/// A row converter: Y row, U row, V row, constants, RGB output row.
type RowFn = fn(&[u8], &[u8], &[u8], &Coeffs, &mut [u8]);

/// Picks the fastest row converter this CPU supports.
fn row_converter() -> RowFn {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return |y, u, v, c, out| {
            // SAFETY: AVX2 support was detected at run time just above, which is the only
            // requirement of `convert_row_avx2` (its body is safe Rust).
            unsafe { convert_row_avx2(y, u, v, c, out) }
        };
    }
    convert_row_portable
}

/// Converts one planar yuv420p frame (`Y` plane, then `U`, then `V`; even width and height)
/// to interleaved RGB24 in `rgb` (resized to `width * height * 3`). A short input gives a
/// black frame.
pub(crate) fn yuv420_to_rgb(yuv: &[u8], width: u32, height: u32, c: &Coeffs, rgb: &mut Vec<u8>) {
    convert_with(row_converter(), yuv, width, height, c, rgb);
}

fn convert_with(row: RowFn, yuv: &[u8], width: u32, height: u32, c: &Coeffs, rgb: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let cw = w / 2;
    // Every byte is overwritten below, so a buffer of the right size is reused as is.
    rgb.resize(w * h * 3, 0);
    if w == 0 || cw == 0 || yuv.len() < frame_bytes(width, height) {
        rgb.fill(0);
        return;
    }
    let (y_plane, rest) = yuv.split_at(w * h);
    let (u_plane, v_plane) = rest.split_at(cw * (h / 2));
    for (((y_pair, u_row), v_row), out_pair) in y_plane
        .chunks_exact(2 * w)
        .zip(u_plane.chunks_exact(cw))
        .zip(v_plane.chunks_exact(cw))
        .zip(rgb.chunks_exact_mut(6 * w))
    {
        let (y0, y1) = y_pair.split_at(w);
        let (o0, o1) = out_pair.split_at_mut(3 * w);
        row(y0, u_row, v_row, c, o0);
        row(y1, u_row, v_row, c, o1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Float BT.601/709 conversion from the standards, as a plain reference.
    fn reference(y: u8, u: u8, v: u8, kr: f64, kb: f64, full: bool) -> [f64; 3] {
        let (yf, uf, vf) = if full {
            (f64::from(y), f64::from(u) - 128.0, f64::from(v) - 128.0)
        } else {
            (
                (f64::from(y) - 16.0) * 255.0 / 219.0,
                (f64::from(u) - 128.0) * 255.0 / 224.0,
                (f64::from(v) - 128.0) * 255.0 / 224.0,
            )
        };
        let kg = 1.0 - kr - kb;
        let r = yf + 2.0 * (1.0 - kr) * vf;
        let b = yf + 2.0 * (1.0 - kb) * uf;
        let g = yf - (2.0 * kb * (1.0 - kb) / kg) * uf - (2.0 * kr * (1.0 - kr) / kg) * vf;
        [r, g, b].map(|x| x.clamp(0.0, 255.0))
    }

    #[test]
    fn agrees_with_the_standard_formulas() {
        for (matrix, kr, kb) in [
            (Matrix::Bt601, 0.299, 0.114),
            (Matrix::Bt709, 0.2126, 0.0722),
        ] {
            for full in [false, true] {
                let c = Coeffs::new(matrix, full);
                let mut worst = 0.0f64;
                for y in (0..=255u8).step_by(5) {
                    for u in (0..=255u8).step_by(15) {
                        for v in (0..=255u8).step_by(15) {
                            // One 2x2 frame: four equal lumas, one chroma pair.
                            let yuv = [y, y, y, y, u, v];
                            let mut rgb = Vec::new();
                            yuv420_to_rgb(&yuv, 2, 2, &c, &mut rgb);
                            let want = reference(y, u, v, kr, kb, full);
                            for px in rgb.chunks_exact(3) {
                                for k in 0..3 {
                                    worst = worst.max((f64::from(px[k]) - want[k]).abs());
                                }
                            }
                        }
                    }
                }
                // Each of up to three truncated terms loses less than one level.
                assert!(worst <= 3.0, "{matrix:?} full={full}: off by {worst}");
            }
        }
    }

    #[test]
    fn coefficients_match_swscale() {
        // Values swscale computes for BT.601 limited range (y offset 16 << 3).
        let c = Coeffs::new(Matrix::Bt601, false);
        assert_eq!(
            (c.y_coeff, c.y_offset, c.v2r, c.u2b, c.u2g, c.v2g),
            (9539, 128, 13075, 16525, -3209, -6660)
        );
        let f = Coeffs::new(Matrix::Bt709, true);
        assert_eq!((f.y_coeff, f.y_offset), (8192, 0));
    }

    /// The dispatched (AVX2 where available) converter gives exactly the portable result,
    /// on a frame whose width exercises both the 16-pixel blocks and the tail.
    #[test]
    fn fast_path_agrees_with_portable() {
        let (w, h) = (70u32, 6u32);
        let yuv: Vec<u8> = (0..frame_bytes(w, h))
            .map(|i| (i * 73 % 256) as u8)
            .collect();
        for c in [
            Coeffs::new(Matrix::Bt601, false),
            Coeffs::new(Matrix::Bt709, true),
        ] {
            let mut fast = Vec::new();
            let mut portable = Vec::new();
            yuv420_to_rgb(&yuv, w, h, &c, &mut fast);
            convert_with(convert_row_portable, &yuv, w, h, &c, &mut portable);
            assert_eq!(fast, portable);
            assert_eq!(fast.len(), (w * h * 3) as usize);
        }
    }

    #[test]
    fn chroma_covers_two_by_two_blocks() {
        // 4x2 frame: left block grey, right block saturated red-ish.
        let yuv = [
            128, 128, 81, 81, //
            128, 128, 81, 81, //
            128, 90, // U
            128, 240, // V
        ];
        let mut rgb = Vec::new();
        yuv420_to_rgb(&yuv, 4, 2, &Coeffs::new(Matrix::Bt601, false), &mut rgb);
        assert_eq!(rgb.len(), 24);
        for row in 0..2 {
            let px = |x: usize| &rgb[(row * 4 + x) * 3..(row * 4 + x) * 3 + 3];
            assert_eq!(px(0), px(1));
            assert_eq!(px(0)[0], px(0)[1]);
            assert_eq!(px(2), px(3));
            assert!(px(2)[0] > 200 && px(2)[1] < 40, "{:?}", px(2));
        }
    }
}
