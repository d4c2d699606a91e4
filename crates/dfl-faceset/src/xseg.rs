//! The applied XSeg mask stored in `xseg_mask`: a one-channel PNG, or a JPEG of falling
//! quality when the PNG is larger than DFL's 50,000-byte cap.

use crate::Error;
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;

/// DFL's cap on the encoded mask, so the whole metadata fits one JPEG segment.
pub const MAX_MASK_BYTES: usize = 50_000;

/// How a stored mask is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskEncoding {
    /// Lossless PNG (DFL's first choice).
    Png,
    /// JPEG (used when the PNG exceeds [`MAX_MASK_BYTES`]).
    Jpeg,
}

impl MaskEncoding {
    /// `"png"` or `"jpeg"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskEncoding::Png => "png",
            MaskEncoding::Jpeg => "jpeg",
        }
    }
}

/// A decoded mask: `width * height` bytes, 0..=255 (DFL divides by 255 to get [0, 1]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayMask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major samples.
    pub data: Vec<u8>,
}

/// The encoded bytes of an XSeg mask, as stored in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsegMask {
    encoded: Vec<u8>,
}

impl XsegMask {
    /// Wraps encoded bytes read from a file (not validated until decoded).
    pub fn from_encoded(encoded: Vec<u8>) -> XsegMask {
        XsegMask { encoded }
    }

    /// The stored bytes.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// PNG or JPEG, from the signature.
    pub fn encoding(&self) -> Result<MaskEncoding, Error> {
        if self.encoded.starts_with(b"\x89PNG\r\n\x1a\n") {
            Ok(MaskEncoding::Png)
        } else if self.encoded.starts_with(&[0xFF, 0xD8]) {
            Ok(MaskEncoding::Jpeg)
        } else {
            Err(Error::Metadata {
                key: "xseg_mask".into(),
                problem: "neither PNG nor JPEG data".into(),
            })
        }
    }

    fn format(&self) -> Result<image::ImageFormat, Error> {
        Ok(match self.encoding()? {
            MaskEncoding::Png => image::ImageFormat::Png,
            MaskEncoding::Jpeg => image::ImageFormat::Jpeg,
        })
    }

    /// Width and height from the encoded header, without decoding the pixels.
    pub fn dimensions(&self) -> Result<(u32, u32), Error> {
        let fmt = self.format()?;
        image::ImageReader::with_format(std::io::Cursor::new(&self.encoded), fmt)
            .into_dimensions()
            .map_err(|e| mask_err(&e))
    }

    /// Decodes to one channel (colour masks are converted to luma, as `imdecode` of a
    /// one-channel mask gives the same values).
    pub fn decode(&self) -> Result<GrayMask, Error> {
        let fmt = self.format()?;
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&self.encoded), fmt);
        reader.limits(decode_limits());
        let img = reader.decode().map_err(|e| mask_err(&e))?.into_luma8();
        Ok(GrayMask {
            width: img.width(),
            height: img.height(),
            data: img.into_raw(),
        })
    }

    /// Encodes a one-channel mask as DFL's `set_xseg_mask` does: PNG if it is at most
    /// 50,000 bytes, else JPEG at quality 100, 99, ... until it fits.
    pub fn encode(mask: &GrayMask) -> Result<XsegMask, Error> {
        if mask.data.len() != mask.width as usize * mask.height as usize {
            return Err(Error::Image("mask data does not match its size".into()));
        }
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                &mask.data,
                mask.width,
                mask.height,
                image::ExtendedColorType::L8,
            )
            .map_err(|e| Error::Image(format!("PNG encode: {e}")))?;
        if png.len() <= MAX_MASK_BYTES {
            return Ok(XsegMask { encoded: png });
        }
        for quality in (0..=100u8).rev() {
            let mut jpg = Vec::new();
            JpegEncoder::new_with_quality(&mut jpg, quality)
                .write_image(
                    &mask.data,
                    mask.width,
                    mask.height,
                    image::ExtendedColorType::L8,
                )
                .map_err(|e| Error::Image(format!("JPEG encode: {e}")))?;
            if jpg.len() <= MAX_MASK_BYTES {
                return Ok(XsegMask { encoded: jpg });
            }
        }
        Err(Error::Image(format!(
            "a {}x{} mask does not fit in {MAX_MASK_BYTES} bytes even as a quality-0 JPEG",
            mask.width, mask.height
        )))
    }
}

/// Limits for decoding images from metadata: no mask or face is larger than this.
pub(crate) fn decode_limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(16384);
    l.max_image_height = Some(16384);
    l.max_alloc = Some(1 << 30);
    l
}

fn mask_err(e: &image::ImageError) -> Error {
    Error::Metadata {
        key: "xseg_mask".into(),
        problem: format!("cannot decode: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_masks_are_png_and_round_trip() {
        let mut data = vec![0u8; 64 * 48];
        for y in 10..30 {
            data[y * 64 + 5..y * 64 + 40].fill(255);
        }
        let m = GrayMask {
            width: 64,
            height: 48,
            data,
        };
        let x = XsegMask::encode(&m).unwrap();
        assert_eq!(x.encoding().unwrap(), MaskEncoding::Png);
        assert_eq!(x.dimensions().unwrap(), (64, 48));
        assert_eq!(x.decode().unwrap(), m);
    }

    #[test]
    fn noisy_masks_fall_back_to_jpeg_under_the_cap() {
        // Pseudo-random noise does not compress: the PNG is ~64 KB.
        let mut s = 12345u32;
        let data = (0..256 * 256)
            .map(|_| {
                s = s.wrapping_mul(1103515245).wrapping_add(12345);
                (s >> 16) as u8
            })
            .collect();
        let m = GrayMask {
            width: 256,
            height: 256,
            data,
        };
        let x = XsegMask::encode(&m).unwrap();
        assert_eq!(x.encoding().unwrap(), MaskEncoding::Jpeg);
        assert!(x.encoded().len() <= MAX_MASK_BYTES);
        assert_eq!(x.decode().unwrap().width, 256);
    }
}
