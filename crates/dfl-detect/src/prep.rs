//! Turning RGB pixels into the nets' input tensors: an axis-aligned square (or letterboxed)
//! region resampled bilinearly into a planar, normalised `f32` buffer in one pass.
//!
//! This is detection-specific glue (sampling, padding and normalisation fused so no
//! intermediate image is built), not a general resize: the aligned crops written to disk use
//! `dfl-image`'s warps.

/// A borrowed 8-bit RGB image, rows top to bottom, pixels interleaved `R G B`.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) data: &'a [u8],
}

impl<'a> RgbView<'a> {
    /// A view of `data` as `width` x `height` RGB; `None` when the length does not match.
    pub fn new(width: usize, height: usize, data: &'a [u8]) -> Option<Self> {
        (width.checked_mul(height)?.checked_mul(3)? == data.len()).then_some(Self {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The interleaved bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// A square region of an image that a net reads: centre, side and rotation, in pixels (may
/// leave the image: the outside reads as black).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    /// Centre (x, y) in image pixels.
    pub center: [f32; 2],
    /// Side length in image pixels, > 0.
    pub side: f32,
    /// Rotation of the crop's x axis in the image, radians (counter-clockwise in a y-down
    /// image means the crop's x axis points down-right for positive angles).
    pub angle: f32,
}

impl Crop {
    /// An upright crop.
    pub fn upright(center: [f32; 2], side: f32) -> Self {
        Self {
            center,
            side,
            angle: 0.0,
        }
    }

    /// Maps a point in units of the crop (0..1 inside, y down) to image pixels.
    pub fn to_image(&self, u: f32, v: f32) -> [f32; 2] {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = ((u - 0.5) * self.side, (v - 0.5) * self.side);
        [
            self.center[0] + c * dx - s * dy,
            self.center[1] + s * dx + c * dy,
        ]
    }

    /// The map from pixel centres of an `n` x `n` sampling of this crop to image coordinates
    /// (OpenCV convention: pixel centres at integer positions).
    pub fn sampling_matrix(&self, n: usize) -> [[f32; 3]; 2] {
        let k = self.side / n as f32;
        let (s, c) = self.angle.sin_cos();
        // Output pixel o has crop coordinate (o + 0.5) / n; image = to_image(..) - 0.5 for
        // OpenCV's integer pixel centres.
        let o = self.to_image(0.5 / n as f32, 0.5 / n as f32);
        [[c * k, -s * k, o[0] - 0.5], [s * k, c * k, o[1] - 0.5]]
    }
}

/// Resamples `src` into an `out_w` x `out_h` planar CHW buffer: output pixel (x, y) reads
/// `m * (x, y, 1)` bilinearly (black outside); each channel value `v` (0..255) is stored as
/// `v * scale[c] + shift[c]`. Axis-aligned maps take a separable fast path
/// ([`sample_planar_reference`] is the plain version).
pub fn sample_planar(
    src: &RgbView<'_>,
    m: [[f32; 3]; 2],
    out_w: usize,
    out_h: usize,
    scale: [f32; 3],
    shift: [f32; 3],
    dst: &mut [f32],
) {
    if m[0][1] != 0.0 || m[1][0] != 0.0 {
        return sample_planar_reference(src, m, out_w, out_h, scale, shift, dst);
    }
    let plane = out_w * out_h;
    if dst.len() < plane * 3 {
        return;
    }
    // Horizontal taps are the same for every row: precompute them.
    let xs: Vec<(isize, f32)> = (0..out_w)
        .map(|ox| {
            let fx = m[0][0] * ox as f32 + m[0][2];
            let x = fx.floor();
            (x as isize, fx - x)
        })
        .collect();
    for oy in 0..out_h {
        let fy = m[1][1] * oy as f32 + m[1][2];
        let yf = fy.floor();
        let (y, wy) = (yf as isize, fy - yf);
        for (ox, &(x, wx)) in xs.iter().enumerate() {
            let v = bilinear(src, x, y, wx, wy);
            for ch in 0..3 {
                dst[ch * plane + oy * out_w + ox] = v[ch] * scale[ch] + shift[ch];
            }
        }
    }
}

/// The plain per-pixel version of [`sample_planar`] for any affine map.
pub fn sample_planar_reference(
    src: &RgbView<'_>,
    m: [[f32; 3]; 2],
    out_w: usize,
    out_h: usize,
    scale: [f32; 3],
    shift: [f32; 3],
    dst: &mut [f32],
) {
    let plane = out_w * out_h;
    if dst.len() < plane * 3 {
        return;
    }
    for oy in 0..out_h {
        for ox in 0..out_w {
            let (fx, fy) = (ox as f32, oy as f32);
            let sx = m[0][0] * fx + m[0][1] * fy + m[0][2];
            let sy = m[1][0] * fx + m[1][1] * fy + m[1][2];
            let (x, y) = (sx.floor(), sy.floor());
            let v = bilinear(src, x as isize, y as isize, sx - x, sy - y);
            for ch in 0..3 {
                dst[ch * plane + oy * out_w + ox] = v[ch] * scale[ch] + shift[ch];
            }
        }
    }
}

#[inline]
fn bilinear(src: &RgbView<'_>, x: isize, y: isize, wx: f32, wy: f32) -> [f32; 3] {
    let (w, h) = (src.width as isize, src.height as isize);
    let px = |x: isize, y: isize| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let i = ((y * w + x) * 3) as usize;
        match src.data.get(i..i + 3) {
            Some(p) => [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])],
            None => [0.0; 3],
        }
    };
    let (a, b, c, d) = (px(x, y), px(x + 1, y), px(x, y + 1), px(x + 1, y + 1));
    let mut out = [0f32; 3];
    for ch in 0..3 {
        let top = a[ch] + (b[ch] - a[ch]) * wx;
        let bot = c[ch] + (d[ch] - c[ch]) * wx;
        out[ch] = top + (bot - top) * wy;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sampling_copies_pixels_and_normalises() {
        let data: Vec<u8> = (0..2 * 2 * 3).map(|v| (v * 10) as u8).collect();
        let img = RgbView::new(2, 2, &data).unwrap();
        let mut out = vec![0f32; 12];
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        sample_planar(&img, id, 2, 2, [1.0, 2.0, 1.0], [0.0, 0.0, -1.0], &mut out);
        // R plane: pixels 0,3,6,9 -> 0,30,60,90; G doubled; B minus one.
        assert_eq!(&out[0..4], &[0.0, 30.0, 60.0, 90.0]);
        assert_eq!(&out[4..8], &[20.0, 80.0, 140.0, 200.0]);
        assert_eq!(&out[8..12], &[19.0, 49.0, 79.0, 109.0]);
    }

    #[test]
    fn outside_reads_black_and_halving_averages() {
        let data = vec![100u8; 4 * 4 * 3];
        let img = RgbView::new(4, 4, &data).unwrap();
        let mut out = vec![0f32; 3 * 4];
        // 2x downscale of the whole image: every output is the mean of a 2x2 block.
        let crop = Crop::upright([2.0, 2.0], 4.0);
        sample_planar(
            &img,
            crop.sampling_matrix(2),
            2,
            2,
            [1.0; 3],
            [0.0; 3],
            &mut out,
        );
        assert!(out.iter().all(|&v| (v - 100.0).abs() < 1e-4));
        // Shifted fully outside: black.
        sample_planar(
            &img,
            [[1.0, 0.0, 10.0], [0.0, 1.0, 10.0]],
            2,
            2,
            [1.0; 3],
            [0.0; 3],
            &mut out,
        );
        assert!(out.iter().all(|&v| v == 0.0));
        assert!(RgbView::new(4, 4, &data[1..]).is_none());
    }

    #[test]
    fn fast_path_agrees_with_reference_and_rotation_maps_back() {
        let data: Vec<u8> = (0..37 * 23 * 3).map(|v| (v * 7 % 251) as u8).collect();
        let img = RgbView::new(37, 23, &data).unwrap();
        let crop = Crop::upright([15.3, 9.7], 17.0);
        let m = crop.sampling_matrix(12);
        let (mut a, mut b) = (vec![0f32; 3 * 144], vec![0f32; 3 * 144]);
        sample_planar(&img, m, 12, 12, [0.5; 3], [1.0; 3], &mut a);
        sample_planar_reference(&img, m, 12, 12, [0.5; 3], [1.0; 3], &mut b);
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "{diff}");
        // A rotated crop's sampling matrix sends output pixel centres to to_image().
        let r = Crop {
            center: [10.0, 20.0],
            side: 8.0,
            angle: 0.3,
        };
        let m = r.sampling_matrix(4);
        let (ox, oy) = (3.0f32, 1.0f32);
        let p = r.to_image((ox + 0.5) / 4.0, (oy + 0.5) / 4.0);
        let q = [
            m[0][0] * ox + m[0][1] * oy + m[0][2] + 0.5,
            m[1][0] * ox + m[1][1] * oy + m[1][2] + 0.5,
        ];
        assert!(
            (p[0] - q[0]).abs() < 1e-4 && (p[1] - q[1]).abs() < 1e-4,
            "{p:?} {q:?}"
        );
    }
}
