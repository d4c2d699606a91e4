//! [`Image`]: the raster type every dfl-rs stage passes around.
//!
//! Interleaved (HWC) `f32` samples, normally in [0, 1], 1 to 4 channels. The channel order is
//! whatever the caller put there: DFL works in BGR, so functions that care about the order
//! (Lab, HSV) say it in their name, and the conversions from/to the `image` crate say whether
//! they swap red and blue.

use crate::error::{ImageError, Result};

/// Largest channel count an [`Image`] may have.
pub const MAX_CHANNELS: usize = 4;

/// Largest width or height accepted (keeps `width * height * channels` far from overflow and
/// every coordinate exactly representable in `f32` arithmetic on indices).
pub const MAX_SIDE: usize = 1 << 20;

/// Largest number of samples (`width * height * channels`) of one image: 2^30 (4 GiB of
/// `f32`), so a bad size is an error instead of an allocation abort.
pub const MAX_SAMPLES: usize = 1 << 30;

/// How float samples in [0, 1] become 8-bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantize {
    /// `round(x * 255)` with ties to even, saturated: OpenCV's `convertTo(CV_8U, 255)`.
    Round,
    /// `floor(clip(x * 255, 0, 255))`: numpy's `(x * 255).astype(np.uint8)` after a clip, which
    /// is what DFL uses when it writes merged frames and masks.
    Truncate,
}

impl Quantize {
    /// Converts one sample; NaN becomes 0.
    #[inline]
    pub fn apply(self, v: f32) -> u8 {
        let s = v * 255.0;
        if s.is_nan() {
            return 0;
        }
        let s = s.clamp(0.0, 255.0);
        match self {
            Quantize::Round => s.round_ties_even() as u8,
            Quantize::Truncate => s as u8,
        }
    }
}

/// An image of `f32` samples, interleaved (row-major, channels last), 1 to 4 channels.
///
/// The invariants (non-zero size, at most [`MAX_SIDE`] per side, 1..=[`MAX_CHANNELS`]
/// channels, buffer length = `width * height * channels`) are checked by every constructor, so
/// the operations of this crate never index out of bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<f32>,
}

fn check_shape(op: &'static str, width: usize, height: usize, channels: usize) -> Result<usize> {
    let err = |reason| ImageError::Shape {
        op,
        width,
        height,
        channels,
        reason,
    };
    if width == 0 || height == 0 {
        return Err(err("width and height must be at least 1"));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(err("a side is larger than 1048576"));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(err("channels must be 1 to 4"));
    }
    width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels))
        .filter(|&n| n <= MAX_SAMPLES)
        .ok_or_else(|| err("more than 2^30 samples"))
}

impl Image {
    /// Wraps an interleaved buffer; fails if the shape is invalid or the length does not match.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<f32>) -> Result<Self> {
        let expected = check_shape("Image::new", width, height, channels)?;
        if data.len() != expected {
            return Err(ImageError::BufferLength {
                op: "Image::new",
                width,
                height,
                channels,
                expected,
                got: data.len(),
            });
        }
        Ok(Image {
            width,
            height,
            channels,
            data,
        })
    }

    /// An image with every sample equal to `value`.
    pub fn filled(width: usize, height: usize, channels: usize, value: f32) -> Result<Self> {
        let n = check_shape("Image::filled", width, height, channels)?;
        Ok(Image {
            width,
            height,
            channels,
            data: vec![value; n],
        })
    }

    /// An all-zero image.
    pub fn zeros(width: usize, height: usize, channels: usize) -> Result<Self> {
        Self::filled(width, height, channels, 0.0)
    }

    /// An image whose sample at (x, y, c) is `f(x, y, c)`.
    pub fn from_fn(
        width: usize,
        height: usize,
        channels: usize,
        mut f: impl FnMut(usize, usize, usize) -> f32,
    ) -> Result<Self> {
        let n = check_shape("Image::from_fn", width, height, channels)?;
        let mut data = Vec::with_capacity(n);
        for y in 0..height {
            for x in 0..width {
                for c in 0..channels {
                    data.push(f(x, y, c));
                }
            }
        }
        Ok(Image {
            width,
            height,
            channels,
            data,
        })
    }

    /// An image of the same shape as `self`, all zeros (infallible: the shape is valid).
    pub fn zeros_like(&self) -> Self {
        Image {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: vec![0.0; self.data.len()],
        }
    }

    /// 8-bit interleaved samples divided by 255 (channel order kept).
    pub fn from_u8(width: usize, height: usize, channels: usize, data: &[u8]) -> Result<Self> {
        let expected = check_shape("Image::from_u8", width, height, channels)?;
        if data.len() != expected {
            return Err(ImageError::BufferLength {
                op: "Image::from_u8",
                width,
                height,
                channels,
                expected,
                got: data.len(),
            });
        }
        Ok(Image {
            width,
            height,
            channels,
            data: data.iter().map(|&v| f32::from(v) / 255.0).collect(),
        })
    }

    /// 8-bit interleaved samples (channel order kept), quantised as `q` says.
    pub fn to_u8(&self, q: Quantize) -> Vec<u8> {
        self.data.iter().map(|&v| q.apply(v)).collect()
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Channels per pixel (1 to 4).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// (width, height, channels).
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.width, self.height, self.channels)
    }

    /// Pixels per image (`width * height`).
    pub fn pixel_count(&self) -> usize {
        self.width * self.height
    }

    /// All samples, interleaved, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All samples, mutable (the length cannot change, so the invariants hold).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The sample buffer.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Samples of row `y`. Panics if `y >= height` (a programming error, not a data error).
    pub fn row(&self, y: usize) -> &[f32] {
        let n = self.width * self.channels;
        &self.data[y * n..(y + 1) * n]
    }

    /// Mutable samples of row `y`. Panics if `y >= height`.
    pub fn row_mut(&mut self, y: usize) -> &mut [f32] {
        let n = self.width * self.channels;
        &mut self.data[y * n..(y + 1) * n]
    }

    /// Samples of pixel (x, y). Panics if out of bounds.
    pub fn pixel(&self, x: usize, y: usize) -> &[f32] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }

    /// Mutable samples of pixel (x, y). Panics if out of bounds.
    pub fn pixel_mut(&mut self, x: usize, y: usize) -> &mut [f32] {
        let i = (y * self.width + x) * self.channels;
        &mut self.data[i..i + self.channels]
    }

    /// Sample (x, y, c). Panics if out of bounds.
    pub fn get(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// Whether `other` has the same width and height (channels may differ).
    pub fn same_size(&self, other: &Image) -> bool {
        self.width == other.width && self.height == other.height
    }

    /// `Err(SizeMismatch)` unless `other` has the same width and height.
    pub fn check_same_size(&self, op: &'static str, other: &Image) -> Result<()> {
        if self.same_size(other) {
            Ok(())
        } else {
            Err(ImageError::SizeMismatch {
                op,
                a_width: self.width,
                a_height: self.height,
                b_width: other.width,
                b_height: other.height,
            })
        }
    }

    /// `Err(Channels)` unless the image has one of the `allowed` channel counts.
    pub fn check_channels(
        &self,
        op: &'static str,
        allowed: &[usize],
        expected: &'static str,
    ) -> Result<()> {
        if allowed.contains(&self.channels) {
            Ok(())
        } else {
            Err(ImageError::Channels {
                op,
                expected,
                got: self.channels,
            })
        }
    }

    /// `Err(NonFinite)` if any sample is NaN or infinite.
    pub fn check_finite(&self, op: &'static str) -> Result<()> {
        // Exponent bits all set <=> NaN or infinite; OR-ed over chunks so it vectorises.
        let bad = self.data.chunks(256).any(|c| {
            c.iter().fold(0u32, |m, v| {
                m | u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000)
            }) != 0
        });
        if !bad {
            Ok(())
        } else {
            Err(ImageError::NonFinite { op })
        }
    }

    /// One channel as a 1-channel image.
    pub fn channel(&self, c: usize) -> Result<Image> {
        if c >= self.channels {
            return Err(ImageError::Parameter {
                op: "Image::channel",
                msg: format!("channel {c} of a {}-channel image", self.channels),
            });
        }
        Ok(Image {
            width: self.width,
            height: self.height,
            channels: 1,
            data: self
                .data
                .chunks_exact(self.channels)
                .map(|p| p[c])
                .collect(),
        })
    }

    /// Interleaves 1-channel images of equal size into one image (OpenCV's `merge`).
    pub fn from_channels(planes: &[Image]) -> Result<Image> {
        let op = "Image::from_channels";
        let first = planes.first().ok_or(ImageError::Parameter {
            op,
            msg: "no planes given".into(),
        })?;
        let n = check_shape(op, first.width, first.height, planes.len())?;
        for p in planes {
            first.check_same_size(op, p)?;
            p.check_channels(op, &[1], "1")?;
        }
        let mut data = Vec::with_capacity(n);
        for i in 0..first.pixel_count() {
            for p in planes {
                data.push(p.data[i]);
            }
        }
        Ok(Image {
            width: first.width,
            height: first.height,
            channels: planes.len(),
            data,
        })
    }

    /// Swaps the first and third channel (RGB <-> BGR, RGBA <-> BGRA); no-op below 3
    /// channels.
    pub fn swap_rb(&mut self) {
        if self.channels >= 3 {
            for p in self.data.chunks_exact_mut(self.channels) {
                p.swap(0, 2);
            }
        }
    }

    /// Applies `f` to every sample.
    pub fn map_inplace(&mut self, f: impl Fn(f32) -> f32) {
        for v in &mut self.data {
            *v = f(*v);
        }
    }

    /// Clamps every sample into [lo, hi]; NaN becomes `lo` (so clipped output is never NaN).
    pub fn clip(&mut self, lo: f32, hi: f32) {
        for v in &mut self.data {
            *v = if v.is_nan() { lo } else { v.clamp(lo, hi) };
        }
    }

    /// Copy of the rectangle (x, y, width, height), which must lie inside the image.
    pub fn crop(&self, x: usize, y: usize, width: usize, height: usize) -> Result<Image> {
        let op = "Image::crop";
        check_shape(op, width, height, self.channels)?;
        if x + width > self.width || y + height > self.height {
            return Err(ImageError::OutOfBounds {
                op,
                x: x as i64,
                y: y as i64,
                width,
                height,
                img_width: self.width,
                img_height: self.height,
            });
        }
        let c = self.channels;
        let mut data = Vec::with_capacity(width * height * c);
        for yy in y..y + height {
            let row = self.row(yy);
            data.extend_from_slice(&row[x * c..(x + width) * c]);
        }
        Ok(Image {
            width,
            height,
            channels: c,
            data,
        })
    }

    /// Copies `patch` into `self` with its top-left corner at (x, y); the patch must fit and
    /// have the same channel count.
    pub fn paste(&mut self, patch: &Image, x: usize, y: usize) -> Result<()> {
        let op = "Image::paste";
        if patch.channels != self.channels {
            return Err(ImageError::Channels {
                op,
                expected: "the destination's count",
                got: patch.channels,
            });
        }
        if x + patch.width > self.width || y + patch.height > self.height {
            return Err(ImageError::OutOfBounds {
                op,
                x: x as i64,
                y: y as i64,
                width: patch.width,
                height: patch.height,
                img_width: self.width,
                img_height: self.height,
            });
        }
        let c = self.channels;
        for yy in 0..patch.height {
            let src = patch.row(yy);
            let dst = self.row_mut(y + yy);
            dst[x * c..(x + patch.width) * c].copy_from_slice(src);
        }
        Ok(())
    }

    /// `cv2.copyMakeBorder(img, top, bottom, left, right, border)`: a larger image with the
    /// original in the middle and the margins filled by the border rule (DFL pads the merge
    /// mask with zeros before eroding and blurring it).
    pub fn copy_make_border(
        &self,
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
        border: crate::Border,
    ) -> Result<Image> {
        let (w, h, c) = (
            self.width + left + right,
            self.height + top + bottom,
            self.channels,
        );
        let mut out = Image::zeros(w, h, c)?;
        for y in 0..h {
            let sy = border.index(y as i64 - top as i64, self.height);
            for x in 0..w {
                let sx = border.index(x as i64 - left as i64, self.width);
                let px = out.pixel_mut(x, y);
                match (sx, sy) {
                    (Some(sx), Some(sy)) => {
                        let i = (sy * self.width + sx) * c;
                        px.copy_from_slice(&self.data[i..i + c]);
                    }
                    _ => px.fill(border.constant()),
                }
            }
        }
        Ok(out)
    }

    /// Sets every sample of the rectangle (x, y, width, height), clipped to the image, to
    /// `value` (DFL zeroes border bands of the merge mask this way).
    pub fn fill_rect(&mut self, x: usize, y: usize, width: usize, height: usize, value: f32) {
        let x1 = x.saturating_add(width).min(self.width);
        let y1 = y.saturating_add(height).min(self.height);
        let c = self.channels;
        for yy in y.min(self.height)..y1 {
            let row = self.row_mut(yy);
            for v in &mut row[x.min(x1) * c..x1 * c] {
                *v = value;
            }
        }
    }

    /// `a * (1 - m) + b * m` per pixel with `m` = channel 0 of `mask` (DFL's blend of the
    /// pasted face into the frame). All three must have the same size; `a` and `b` the same
    /// channel count.
    pub fn blend(a: &Image, b: &Image, mask: &Image) -> Result<Image> {
        let op = "Image::blend";
        a.check_same_size(op, b)?;
        a.check_same_size(op, mask)?;
        if a.channels != b.channels {
            return Err(ImageError::Channels {
                op,
                expected: "the first image's count",
                got: b.channels,
            });
        }
        let (c, mc) = (a.channels, mask.channels);
        let mut out = a.clone();
        for ((o, pb), m) in out
            .data
            .chunks_exact_mut(c)
            .zip(b.data.chunks_exact(c))
            .zip(mask.data.chunks_exact(mc))
        {
            let m = m[0];
            for (v, &bv) in o.iter_mut().zip(pb) {
                *v = *v * (1.0 - m) + bv * m;
            }
        }
        Ok(out)
    }

    /// RGB 8-bit image, channel order kept (R, G, B).
    pub fn from_rgb8(img: &image::RgbImage) -> Result<Image> {
        Self::from_u8(img.width() as usize, img.height() as usize, 3, img.as_raw())
    }

    /// RGB 8-bit image converted to DFL's BGR order.
    pub fn bgr_from_rgb8(img: &image::RgbImage) -> Result<Image> {
        let mut out = Self::from_rgb8(img)?;
        out.swap_rb();
        Ok(out)
    }

    /// RGBA 8-bit image, channel order kept (R, G, B, A).
    pub fn from_rgba8(img: &image::RgbaImage) -> Result<Image> {
        Self::from_u8(img.width() as usize, img.height() as usize, 4, img.as_raw())
    }

    /// Gray 8-bit image as one channel.
    pub fn from_gray8(img: &image::GrayImage) -> Result<Image> {
        Self::from_u8(img.width() as usize, img.height() as usize, 1, img.as_raw())
    }

    fn to_buffer<P: image::Pixel<Subpixel = u8>>(
        &self,
        op: &'static str,
        channels: usize,
        swap: bool,
        q: Quantize,
    ) -> Result<image::ImageBuffer<P, Vec<u8>>> {
        self.check_channels(
            op,
            &[channels],
            match channels {
                1 => "1",
                3 => "3",
                _ => "4",
            },
        )?;
        let mut bytes = self.to_u8(q);
        if swap {
            for p in bytes.chunks_exact_mut(channels) {
                p.swap(0, 2);
            }
        }
        // The shape invariants guarantee the length matches, so `from_raw` cannot fail; map
        // the impossible case to an error instead of panicking anyway.
        image::ImageBuffer::from_raw(self.width as u32, self.height as u32, bytes).ok_or(
            ImageError::Shape {
                op,
                width: self.width,
                height: self.height,
                channels,
                reason: "does not fit an 8-bit image buffer",
            },
        )
    }

    /// 3-channel image to an RGB 8-bit image, channel order kept.
    pub fn to_rgb8(&self, q: Quantize) -> Result<image::RgbImage> {
        self.to_buffer("Image::to_rgb8", 3, false, q)
    }

    /// 3-channel BGR image to an RGB 8-bit image (red and blue swapped).
    pub fn bgr_to_rgb8(&self, q: Quantize) -> Result<image::RgbImage> {
        self.to_buffer("Image::bgr_to_rgb8", 3, true, q)
    }

    /// 4-channel image to an RGBA 8-bit image, channel order kept.
    pub fn to_rgba8(&self, q: Quantize) -> Result<image::RgbaImage> {
        self.to_buffer("Image::to_rgba8", 4, false, q)
    }

    /// 1-channel image to a gray 8-bit image.
    pub fn to_gray8(&self, q: Quantize) -> Result<image::GrayImage> {
        self.to_buffer("Image::to_gray8", 1, false, q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_validate_shape() {
        assert!(Image::new(2, 2, 3, vec![0.0; 12]).is_ok());
        assert!(matches!(
            Image::new(2, 2, 3, vec![0.0; 11]),
            Err(ImageError::BufferLength {
                expected: 12,
                got: 11,
                ..
            })
        ));
        assert!(matches!(
            Image::zeros(0, 2, 1),
            Err(ImageError::Shape { .. })
        ));
        assert!(matches!(
            Image::zeros(2, 2, 5),
            Err(ImageError::Shape { .. })
        ));
        assert!(matches!(
            Image::zeros(2, 2, 0),
            Err(ImageError::Shape { .. })
        ));
        assert!(matches!(
            Image::zeros(MAX_SIDE + 1, 1, 1),
            Err(ImageError::Shape { .. })
        ));
        assert!(matches!(
            Image::zeros(MAX_SIDE, MAX_SIDE, 4),
            Err(ImageError::Shape { .. })
        ));
    }

    #[test]
    fn quantize_matches_opencv_and_numpy() {
        // OpenCV rounds half to even; numpy's astype truncates.
        assert_eq!(Quantize::Round.apply(0.5 / 255.0), 0);
        assert_eq!(Quantize::Round.apply(1.5 / 255.0), 2);
        assert_eq!(Quantize::Truncate.apply(254.99 / 255.0), 254);
        assert_eq!(Quantize::Truncate.apply(2.0), 255);
        assert_eq!(Quantize::Round.apply(-1.0), 0);
        assert_eq!(Quantize::Round.apply(f32::NAN), 0);
    }

    #[test]
    fn rgb8_round_trip_and_bgr_swap() {
        let rgb =
            image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 80, y as u8 * 100, 7]));
        let img = Image::from_rgb8(&rgb).unwrap();
        assert_eq!(img.to_rgb8(Quantize::Round).unwrap(), rgb);
        let bgr = Image::bgr_from_rgb8(&rgb).unwrap();
        assert_eq!(bgr.pixel(1, 1)[0], 7.0 / 255.0);
        assert_eq!(bgr.bgr_to_rgb8(Quantize::Round).unwrap(), rgb);
        assert!(matches!(
            img.to_gray8(Quantize::Round),
            Err(ImageError::Channels { .. })
        ));
    }

    #[test]
    fn border_fill_and_blend_helpers() {
        let img = Image::from_fn(3, 2, 1, |x, y, _| (x + 10 * y) as f32).unwrap();
        let p = img
            .copy_make_border(1, 0, 2, 1, crate::Border::Reflect101)
            .unwrap();
        assert_eq!(p.shape(), (6, 3, 1));
        // Row -1 reflects to row 1; columns -2, -1 reflect to 2, 1.
        assert_eq!(p.row(0), &[12.0, 11.0, 10.0, 11.0, 12.0, 11.0]);
        assert_eq!(p.row(1), &[2.0, 1.0, 0.0, 1.0, 2.0, 1.0]);
        let z = img
            .copy_make_border(1, 1, 1, 1, crate::Border::Constant(0.0))
            .unwrap();
        assert_eq!(z.get(0, 0, 0), 0.0);
        assert_eq!(z.get(1, 1, 0), 0.0);
        assert_eq!(z.get(3, 2, 0), 12.0);
        let mut f = img.clone();
        f.fill_rect(1, 1, 10, 10, -1.0);
        assert_eq!(f.row(1), &[10.0, -1.0, -1.0]);
        assert_eq!(f.row(0), img.row(0));
        let a = Image::filled(2, 2, 3, 0.0).unwrap();
        let b = Image::filled(2, 2, 3, 1.0).unwrap();
        let m = Image::new(2, 2, 1, vec![0.0, 0.25, 1.0, 0.5]).unwrap();
        let out = Image::blend(&a, &b, &m).unwrap();
        assert_eq!(out.pixel(1, 0), &[0.25, 0.25, 0.25]);
        assert!(Image::blend(&a, &b, &Image::zeros(3, 2, 1).unwrap()).is_err());
    }

    #[test]
    fn channels_split_merge_crop_paste() {
        let img = Image::from_fn(4, 3, 3, |x, y, c| (x + 10 * y + 100 * c) as f32).unwrap();
        let planes: Vec<_> = (0..3).map(|c| img.channel(c).unwrap()).collect();
        assert_eq!(Image::from_channels(&planes).unwrap(), img);
        let crop = img.crop(1, 1, 2, 2).unwrap();
        assert_eq!(crop.pixel(0, 0), img.pixel(1, 1));
        let mut canvas = img.zeros_like();
        canvas.paste(&crop, 2, 1).unwrap();
        assert_eq!(canvas.pixel(3, 2), img.pixel(2, 2));
        assert!(img.crop(3, 0, 2, 1).is_err());
        assert!(canvas.paste(&img, 1, 0).is_err());
    }
}
