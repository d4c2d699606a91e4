//! Turning RGB pixels into the nets' input tensors: an axis-aligned square (or letterboxed)
//! region resampled bilinearly into a planar, normalised `f32` buffer in one pass.
//!
//! This is detection-specific glue (sampling, padding and normalisation fused so no
//! intermediate image is built), not a general resize: the aligned crops written to disk use
//! `dfl-image`'s warps.

/// A borrowed 8-bit RGB image, rows top to bottom, pixels interleaved `R G B`.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    width: usize,
    height: usize,
    data: &'a [u8],
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

/// An axis-aligned square region of an image, in pixel coordinates (may leave the image: the
/// outside reads as black).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Square {
    /// Left edge (x of the region's left border).
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Side length, > 0.
    pub side: f32,
}

impl Square {
    /// Maps a point in units of the square (0..1 inside) to image pixels.
    pub fn to_image(&self, u: f32, v: f32) -> [f32; 2] {
        [self.x + u * self.side, self.y + v * self.side]
    }
}

/// Resamples `src` region (`x0, y0` top-left, `sx, sy` source pixels per output pixel) into an
/// `out_w` x `out_h` planar CHW buffer, bilinear with pixel centres at +0.5, black outside;
/// each channel value `v` (0..255) is stored as `v * scale[c] + shift[c]`.
#[allow(clippy::too_many_arguments)]
pub fn sample_planar(
    src: &RgbView<'_>,
    x0: f32,
    y0: f32,
    sx: f32,
    sy: f32,
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
    let (w, h) = (src.width as isize, src.height as isize);
    let data = src.data;
    // Horizontal taps are the same for every row: precompute them.
    let xs: Vec<(isize, f32)> = (0..out_w)
        .map(|ox| {
            let fx = x0 + (ox as f32 + 0.5) * sx - 0.5;
            let x = fx.floor();
            (x as isize, fx - x)
        })
        .collect();
    let px = |x: isize, y: isize| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let i = ((y * w + x) * 3) as usize;
        match data.get(i..i + 3) {
            Some(p) => [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])],
            None => [0.0; 3],
        }
    };
    for oy in 0..out_h {
        let fy = y0 + (oy as f32 + 0.5) * sy - 0.5;
        let yf = fy.floor();
        let (y, wy) = (yf as isize, fy - yf);
        for (ox, &(x, wx)) in xs.iter().enumerate() {
            let (a, b, c, d) = (px(x, y), px(x + 1, y), px(x, y + 1), px(x + 1, y + 1));
            for ch in 0..3 {
                let top = a[ch] + (b[ch] - a[ch]) * wx;
                let bot = c[ch] + (d[ch] - c[ch]) * wx;
                let v = top + (bot - top) * wy;
                dst[ch * plane + oy * out_w + ox] = v * scale[ch] + shift[ch];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sampling_copies_pixels_and_normalises() {
        let data: Vec<u8> = (0..2 * 2 * 3).map(|v| (v * 10) as u8).collect();
        let img = RgbView::new(2, 2, &data).unwrap();
        let mut out = vec![0f32; 12];
        sample_planar(
            &img,
            0.0,
            0.0,
            1.0,
            1.0,
            2,
            2,
            [1.0, 2.0, 1.0],
            [0.0, 0.0, -1.0],
            &mut out,
        );
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
        sample_planar(&img, 0.0, 0.0, 2.0, 2.0, 2, 2, [1.0; 3], [0.0; 3], &mut out);
        assert!(out.iter().all(|&v| (v - 100.0).abs() < 1e-4));
        // Shifted fully outside: black.
        sample_planar(
            &img, 10.0, 10.0, 1.0, 1.0, 2, 2, [1.0; 3], [0.0; 3], &mut out,
        );
        assert!(out.iter().all(|&v| v == 0.0));
        assert!(RgbView::new(4, 4, &data[1..]).is_none());
    }
}
