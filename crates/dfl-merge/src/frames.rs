//! Reading dst frames and writing merged frames and masks.
//!
//! Merged outputs are PNG files written to a temporary name in the same folder and renamed
//! over the target, so a crash or a full disk leaves either the previous file or the complete
//! new one, never a torn file. Each PNG carries text chunks: a note that the picture contains
//! a synthetic face (the provenance travels with every frame), and the frame's resume key
//! (the hash of everything that decided its pixels), which lets a rerun skip frames already
//! merged the same way. No fsync per frame: after a power loss a frame is at worst unreadable
//! or absent, and then it is merged again.

use crate::error::{MergeError, Result};
use dfl_image::{Image, Quantize};
use image::DynamicImage;
use std::io::{BufReader, Write};
use std::path::Path;

/// PNG text keyword holding a merged frame's resume key.
pub const KEY_CHUNK: &str = "dfl-merge-key";
/// PNG text keyword of the provenance note.
pub const NOTE_CHUNK: &str = "Comment";

/// Decodes a frame file (any format the `image` crate reads here: PNG, JPEG).
pub fn read_frame(path: &Path) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| MergeError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| MergeError::io(path, e))?;
    reader
        .decode()
        .map_err(|e| MergeError::bad(path, format!("cannot decode the frame: {e}")))
}

/// A decoded frame as DFL's float BGR image (3 channels; alpha dropped, grey expanded).
pub fn frame_to_bgr(img: &DynamicImage) -> Result<Image> {
    Ok(Image::bgr_from_rgb8(&img.to_rgb8())?)
}

/// The resume key stored in a merged PNG, if the file exists and carries one.
pub fn stored_key(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let reader = png::Decoder::new(BufReader::new(f)).read_info().ok()?;
    reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == KEY_CHUNK)
        .map(|t| t.text.clone())
}

/// Pixel layout of a PNG to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 1 channel.
    Gray,
    /// Grey + alpha.
    GrayAlpha,
    /// RGB.
    Rgb,
    /// RGBA.
    Rgba,
}

impl Layout {
    fn png(self) -> png::ColorType {
        match self {
            Layout::Gray => png::ColorType::Grayscale,
            Layout::GrayAlpha => png::ColorType::GrayscaleAlpha,
            Layout::Rgb => png::ColorType::Rgb,
            Layout::Rgba => png::ColorType::Rgba,
        }
    }

    fn channels(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::GrayAlpha => 2,
            Layout::Rgb => 3,
            Layout::Rgba => 4,
        }
    }
}

/// Encodes 8-bit pixels as PNG (fast deflate) with `texts` as tEXt chunks.
pub fn encode_png(
    width: usize,
    height: usize,
    layout: Layout,
    pixels: &[u8],
    texts: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let bad = |e: png::EncodingError| MergeError::Invalid(format!("PNG encoding: {e}"));
    if pixels.len() != width * height * layout.channels() {
        return Err(MergeError::Invalid(format!(
            "{} bytes for a {width}x{height} {layout:?} PNG",
            pixels.len()
        )));
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| MergeError::Invalid("frame too wide".into()))?,
        u32::try_from(height).map_err(|_| MergeError::Invalid("frame too tall".into()))?,
    );
    let mut buf = Vec::with_capacity(pixels.len() / 2 + 1024);
    {
        let mut enc = png::Encoder::new(&mut buf, w, h);
        enc.set_color(layout.png());
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        for (k, t) in texts {
            enc.add_text_chunk((*k).to_string(), (*t).to_string())
                .map_err(bad)?;
        }
        let mut writer = enc.write_header().map_err(bad)?;
        writer.write_image_data(pixels).map_err(bad)?;
        writer.finish().map_err(bad)?;
    }
    Ok(buf)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename; the
/// temporary file is removed if anything fails.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(MergeError::io(path, e));
    }
    Ok(())
}

/// A BGR float image as RGB bytes (rounded).
pub fn bgr_to_rgb_bytes(img: &Image) -> Vec<u8> {
    let mut out = img.to_u8(Quantize::Round);
    if img.channels() >= 3 {
        for px in out.chunks_exact_mut(img.channels()) {
            px.swap(0, 2);
        }
    }
    out
}

/// A decoded frame's bytes in the layout it was read with (8 bits per sample; deeper or
/// float frames are reduced to 8 bits).
pub fn as_read(img: &DynamicImage) -> (Layout, Vec<u8>) {
    match img {
        DynamicImage::ImageLuma8(g) => (Layout::Gray, g.as_raw().clone()),
        DynamicImage::ImageLumaA8(g) => (Layout::GrayAlpha, g.as_raw().clone()),
        DynamicImage::ImageRgb8(c) => (Layout::Rgb, c.as_raw().clone()),
        DynamicImage::ImageRgba8(c) => (Layout::Rgba, c.as_raw().clone()),
        DynamicImage::ImageLuma16(_) => (Layout::Gray, img.to_luma8().into_raw()),
        DynamicImage::ImageLumaA16(_) => (Layout::GrayAlpha, img.to_luma_alpha8().into_raw()),
        other if other.color().has_alpha() => (Layout::Rgba, other.to_rgba8().into_raw()),
        other => (Layout::Rgb, other.to_rgb8().into_raw()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_roundtrip_keeps_pixels_and_key() {
        let dir = std::env::temp_dir().join(format!("dfl-merge-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let px: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let bytes = encode_png(5, 3, Layout::Rgb, &px, &[(KEY_CHUNK, "abc123")]).unwrap();
        let p = dir.join("f.png");
        write_replacing(&p, &bytes).unwrap();
        assert_eq!(stored_key(&p).as_deref(), Some("abc123"));
        let back = read_frame(&p).unwrap().to_rgb8();
        assert_eq!(back.as_raw(), &px);
        assert!(stored_key(&dir.join("missing.png")).is_none());
        assert!(encode_png(5, 3, Layout::Rgba, &px, &[]).is_err());
        // Only the target is left: no temporary files.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
