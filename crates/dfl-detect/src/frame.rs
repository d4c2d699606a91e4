//! Reading frames the way DFL's extractor does: any 8/16-bit gray, RGB or RGBA image becomes 3
//! channels (gray replicated, alpha dropped), then odd widths/heights lose their last
//! column/row. Oversized or broken files are refused with a one-line reason before anything
//! big is allocated.

use crate::prep::RgbView;
use std::path::{Path, PathBuf};

/// Frames above this many pixels are refused (a 16000x16000 photo would need 768 MB as RGB
/// and several GB in the warps); 100 MP is above 8K video (33 MP) and any common camera.
pub const MAX_FRAME_PIXELS: u64 = 100_000_000;

/// Why a frame could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a decodable image (unknown format, truncated, corrupt).
    #[error("{path}: not a readable image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// The image is larger than [`MAX_FRAME_PIXELS`].
    #[error(
        "{path}: {width}x{height} is {mp:.0} megapixels, above the {max} MP limit of extraction; downscale it first",
        mp = *width as f64 * *height as f64 / 1e6,
        max = MAX_FRAME_PIXELS / 1_000_000
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
}

/// An 8-bit RGB frame, even-sized where the source allowed it (DFL crops odd sides).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Frame {
    /// A frame from interleaved RGB bytes; `None` when the length does not match.
    pub fn new(width: usize, height: usize, rgb: Vec<u8>) -> Option<Self> {
        (width.checked_mul(height)?.checked_mul(3)? == rgb.len()).then_some(Self {
            width,
            height,
            rgb,
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

    /// Interleaved RGB bytes, `width * height * 3` of them.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// A borrowed view for the nets.
    pub fn view(&self) -> RgbView<'_> {
        RgbView {
            width: self.width,
            height: self.height,
            data: &self.rgb,
        }
    }

    /// The frame rotated by `rot` (a new buffer).
    pub fn rotated(&self, rot: Rotation) -> Frame {
        let (w, h) = (self.width, self.height);
        let (nw, nh) = match rot {
            Rotation::R0 | Rotation::R180 => (w, h),
            Rotation::R90 | Rotation::R270 => (h, w),
        };
        let mut out = vec![0u8; self.rgb.len()];
        for y in 0..nh {
            for x in 0..nw {
                let (sx, sy) = match rot {
                    Rotation::R0 => (x, y),
                    Rotation::R90 => (y, h - 1 - x),
                    Rotation::R270 => (w - 1 - y, x),
                    Rotation::R180 => (w - 1 - x, h - 1 - y),
                };
                let (d, s) = ((y * nw + x) * 3, (sy * w + sx) * 3);
                out[d..d + 3].copy_from_slice(&self.rgb[s..s + 3]);
            }
        }
        Frame {
            width: nw,
            height: nh,
            rgb: out,
        }
    }
}

/// The rotations DFL tries when nothing is found upright, in its order: 90°, 270°, 180°.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Upright.
    R0,
    /// The frame turned 90° clockwise.
    R90,
    /// The frame turned 90° counter-clockwise.
    R270,
    /// Upside down.
    R180,
}

impl Rotation {
    /// DFL's fallback order.
    pub const ORDER: [Rotation; 4] = [Rotation::R0, Rotation::R90, Rotation::R270, Rotation::R180];

    /// Maps a point of the rotated frame back to the original `w` x `h` frame (continuous
    /// pixel coordinates, pixel `i` spanning `[i, i + 1)`).
    pub fn point_back(self, p: [f32; 2], w: usize, h: usize) -> [f32; 2] {
        let (w, h) = (w as f32, h as f32);
        match self {
            Rotation::R0 => p,
            Rotation::R90 => [p[1], h - p[0]],
            Rotation::R270 => [w - p[1], p[0]],
            Rotation::R180 => [w - p[0], h - p[1]],
        }
    }

    /// Maps a rectangle `[l, t, r, b]` of the rotated frame back (normalised so l < r, t < b).
    pub fn rect_back(self, r: [f32; 4], w: usize, h: usize) -> [f32; 4] {
        let a = self.point_back([r[0], r[1]], w, h);
        let b = self.point_back([r[2], r[3]], w, h);
        [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[0].max(b[0]),
            a[1].max(b[1]),
        ]
    }
}

/// Reads `path` as a frame: checks the size from the header first, decodes, converts to RGB
/// and crops odd sides as DFL does.
pub fn load_frame(path: &Path) -> Result<Frame, FrameError> {
    let decode_err = |reason: String| FrameError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| FrameError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes.as_slice()))
            .with_guessed_format()
            .map_err(|e| decode_err(e.to_string()))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| decode_err(e.to_string()))?;
    if u64::from(width) * u64::from(height) > MAX_FRAME_PIXELS {
        return Err(FrameError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_FRAME_PIXELS * 8 + (64 << 20));
    r.limits(limits);
    let img = r.decode().map_err(|e| decode_err(e.to_string()))?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let (ew, eh) = (
        if w > 1 { w & !1 } else { w },
        if h > 1 { h & !1 } else { h },
    );
    let raw = rgb.into_raw();
    let data = if (ew, eh) == (w, h) {
        raw
    } else {
        let mut out = Vec::with_capacity(ew * eh * 3);
        for row in raw.chunks_exact(w * 3).take(eh) {
            out.extend_from_slice(&row[..ew * 3]);
        }
        out
    };
    Frame::new(ew, eh, data).ok_or_else(|| decode_err("decoded size mismatch".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_map_points_back() {
        let rgb: Vec<u8> = (0..5 * 3 * 3).map(|v| v as u8).collect();
        let f = Frame::new(5, 3, rgb).unwrap();
        for rot in Rotation::ORDER {
            let r = f.rotated(rot);
            // The centre of each rotated pixel maps back to the centre of the source pixel
            // holding the same bytes.
            for y in 0..r.height {
                for x in 0..r.width {
                    let p = rot.point_back([x as f32 + 0.5, y as f32 + 0.5], 5, 3);
                    let (sx, sy) = (p[0].floor() as usize, p[1].floor() as usize);
                    let (a, b) = ((y * r.width + x) * 3, (sy * 5 + sx) * 3);
                    assert_eq!(r.rgb[a..a + 3], f.rgb[b..b + 3], "{rot:?} ({x},{y})");
                }
            }
        }
    }

    #[test]
    fn gray_alpha_and_odd_sizes_load_as_even_rgb() {
        let dir = std::env::temp_dir().join(format!("dfl-detect-frame-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gray = image::GrayImage::from_fn(7, 5, |x, _| image::Luma([x as u8 * 10]));
        let p = dir.join("g.png");
        gray.save(&p).unwrap();
        let f = load_frame(&p).unwrap();
        assert_eq!((f.width, f.height), (6, 4));
        assert_eq!(&f.rgb[3..6], &[10, 10, 10]);
        let rgba = image::RgbaImage::from_pixel(4, 4, image::Rgba([200, 100, 50, 0]));
        let p = dir.join("a.png");
        rgba.save(&p).unwrap();
        let f = load_frame(&p).unwrap();
        // Alpha is dropped, not composited (DFL reads BGR and ignores A).
        assert_eq!(&f.rgb[0..3], &[200, 100, 50]);
        std::fs::write(dir.join("bad.jpg"), b"\xff\xd8\xff\xe0 not really").unwrap();
        let e = load_frame(&dir.join("bad.jpg")).unwrap_err();
        assert!(e.to_string().contains("bad.jpg"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
