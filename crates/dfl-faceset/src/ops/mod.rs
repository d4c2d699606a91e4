//! DFL's faceset utilities ("4.2 util" steps and the faceset resizer) over folders of
//! aligned faces. Each job reports progress through [`dfl_core::Progress`] and returns a
//! report; nothing is printed. Every file write is crash-safe (temp file, fsync, rename).
//! DFL's destructive defaults (deleting originals after packing, deleting the pak after
//! unpacking, deleting meta.dat after restoring) are opt-in here.

mod debug;
mod metadata;
mod names;
mod pack;
mod resize;

pub use debug::{DebugReport, debug_images, draw_debug};
pub use metadata::{
    META_DAT, RestoreOptions, RestoreReport, SaveReport, metadata_restore, metadata_save,
};
pub use names::{RecoverReport, recover_names};
pub use pack::{PAK_NAME, PackOptions, PackReport, UnpackOptions, UnpackReport, pack, unpack};
pub use resize::{ResizeOptions, ResizeReport, resize_faceset};

use crate::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a file crash-safely by streaming into a temp file next to it, then fsync and
/// rename (the streaming counterpart of [`dfl_core::atomic_write`]).
pub(crate) fn atomic_write_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Refused(format!("{} has no file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = std::io::BufWriter::new(f);
        write(&mut w)?;
        w.flush().map_err(|e| Error::io(&tmp, e))?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file that a job skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped (one line).
    pub reason: String,
}

/// The one-line reason of an error, with the file wrappers removed.
pub(crate) fn reason(e: &Error) -> String {
    let mut msg = e.kind().to_string();
    let mut src = std::error::Error::source(e.kind());
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// File name of `path` as UTF-8 (DFL's names always are), or an error naming it.
pub(crate) fn file_name(path: &Path) -> Result<String, Error> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Refused(format!("{}: file name is not UTF-8", path.display())))
}

/// Decodes a JPEG (or any image the `image` crate reads) to RGB8, with size limits.
pub(crate) fn decode_rgb(bytes: &[u8]) -> Result<image::RgbImage, Error> {
    let mut r = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?;
    r.limits(crate::xseg::decode_limits());
    Ok(r.decode()
        .map_err(|e| Error::Image(format!("decode: {e}")))?
        .into_rgb8())
}

/// Encodes RGB8 as a baseline JPEG (with the JFIF APP0 DFL's reader requires).
pub(crate) fn encode_jpeg(img: &image::RgbImage, quality: u8) -> Result<Vec<u8>, Error> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Image(format!("JPEG encode: {e}")))?;
    Ok(out)
}

/// RGB8 ↔ dfl-image float images (channel order is irrelevant for warps and resizes).
pub(crate) fn to_float(img: &image::RgbImage) -> Result<dfl_image::Image, Error> {
    dfl_image::Image::from_rgb8(img).map_err(|e| Error::Image(e.to_string()))
}

/// Back to RGB8 with OpenCV's rounding (`saturate_cast<uchar>`).
pub(crate) fn to_rgb8(img: &dfl_image::Image) -> Result<image::RgbImage, Error> {
    img.to_rgb8(dfl_image::Quantize::Round)
        .map_err(|e| Error::Image(e.to_string()))
}
