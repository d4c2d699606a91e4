//! Temporal denoising of an image sequence (DFL's "3.optional) denoise data_dst images",
//! `videoed denoise-image-sequence`).
//!
//! The frames are decoded here, piped raw through ffmpeg's `hqdn3d=f:f:5:5` (DFL's filter: the
//! factor sets the spatial strengths, the temporal ones stay 5) and written back under their
//! own names and formats. DFL ignores its `--factor` option and always prompts; here the factor
//! is honoured. DFL also renames the files to `%6d` and back; this version never renames.
//! Frames are written back as 8-bit RGB (an alpha channel or 16-bit depth is not kept), JPEGs
//! at quality 95.

use crate::error::{Result, VideoError};
use crate::frames::{self, DEFAULT_JPEG_QUALITY, FrameFormat};
use crate::tools::{self, Ffmpeg, StderrLog};
use dfl_core::Progress;
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;

/// DFL's default denoise factor.
pub const DEFAULT_DENOISE_FACTOR: u32 = 7;
/// Largest factor DFL allows.
pub const MAX_DENOISE_FACTOR: u32 = 20;

/// Options of [`denoise`].
#[derive(Debug, Clone)]
pub struct DenoiseOptions {
    /// Strength 1..=20 (DFL's range, default 7): hqdn3d's spatial luma and chroma strengths.
    pub factor: u32,
    /// Where to write the denoised frames; `None` replaces the frames in place (each file
    /// atomically).
    pub output: Option<PathBuf>,
    /// Replace files that already exist in `output` (in-place runs always replace).
    pub overwrite: bool,
}

impl Default for DenoiseOptions {
    fn default() -> Self {
        DenoiseOptions {
            factor: DEFAULT_DENOISE_FACTOR,
            output: None,
            overwrite: false,
        }
    }
}

/// What [`denoise`] did.
#[derive(Debug, Clone)]
pub struct DenoiseReport {
    /// Frames written.
    pub frames: u64,
    /// The folder they were written to.
    pub output: PathBuf,
}

/// Denoises every PNG/JPEG frame of `dir` (sorted by name, as DFL orders frames).
///
/// All frames are checked (format and size, from their headers) before anything is written.
/// If ffmpeg fails midway, the frames already written are denoised and the others untouched;
/// no file is ever half-written.
pub fn denoise(
    ff: &Ffmpeg,
    dir: &Path,
    opts: &DenoiseOptions,
    progress: &dyn Progress,
) -> Result<DenoiseReport> {
    if !(1..=MAX_DENOISE_FACTOR).contains(&opts.factor) {
        return Err(VideoError::InvalidOption(format!(
            "denoise factor {} is out of range 1..{MAX_DENOISE_FACTOR}",
            opts.factor
        )));
    }
    let inputs = list_frames(dir)?;
    let (width, height) = check_frames(&inputs)?;
    let out_dir = opts.output.clone().unwrap_or_else(|| dir.to_path_buf());
    let in_place = same_dir(dir, &out_dir);
    if !in_place {
        if out_dir.exists() && !out_dir.is_dir() {
            return Err(VideoError::CreateDir {
                path: out_dir,
                cause: std::io::Error::other("a file with that name exists"),
            });
        }
        std::fs::create_dir_all(&out_dir).map_err(|cause| VideoError::CreateDir {
            path: out_dir.clone(),
            cause,
        })?;
        if !opts.overwrite
            && let Some(existing) = inputs
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| out_dir.join(n))
                .find(|p| p.exists())
        {
            return Err(VideoError::OutputExists { path: existing });
        }
    }

    let f = opts.factor;
    let mut cmd = ff.ffmpeg();
    cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{width}x{height}"), "-framerate", "25"])
        .args(["-i", "pipe:0"])
        .args(["-vf", &format!("hqdn3d={f}:{f}:5:5")])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
    let mut child = tools::spawn(&mut cmd, Stdio::piped(), Stdio::piped())?;
    let log = StderrLog::start(child.stderr.take());
    let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(VideoError::ToolIo {
            tool: "ffmpeg",
            cause: std::io::Error::other("no stdin/stdout pipe"),
        });
    };

    progress.start("denoise", Some(inputs.len() as u64));
    let frame_bytes = width as usize * height as usize * 3;
    let batch = rayon::current_num_threads().max(1) * 2;
    let mut written = 0u64;
    let mut failure: Option<VideoError> = None;
    let feed_result = std::thread::scope(|s| {
        let feeder = s.spawn(|| feed(stdin, &inputs, batch));
        let mut pending: Vec<(PathBuf, Vec<u8>)> = Vec::with_capacity(batch);
        let mut flush = |pending: &mut Vec<(PathBuf, Vec<u8>)>| -> Result<()> {
            pending.par_iter().try_for_each(|(src, rgb)| {
                let name = src.file_name().unwrap_or_default();
                let target = out_dir.join(name);
                let format = FrameFormat::from_path(src).unwrap_or(FrameFormat::Png);
                let mut bytes = Vec::new();
                frames::encode_frame(rgb, width, height, format, DEFAULT_JPEG_QUALITY, &mut bytes)
                    .map_err(|reason| VideoError::Image {
                        path: target.clone(),
                        reason,
                    })?;
                dfl_core::atomic_write(&target, &bytes).map_err(|cause| VideoError::Write {
                    path: target.clone(),
                    cause,
                })?;
                progress.inc(1);
                Ok(())
            })?;
            written += pending.len() as u64;
            pending.clear();
            Ok(())
        };
        for src in &inputs {
            let mut buf = vec![0u8; frame_bytes];
            match tools::read_full(&mut stdout, &mut buf) {
                Ok(n) if n == frame_bytes => pending.push((src.clone(), buf)),
                Ok(_) => break,
                Err(e) => {
                    failure = Some(VideoError::ToolIo {
                        tool: "ffmpeg",
                        cause: e,
                    });
                    break;
                }
            }
            if pending.len() >= batch
                && let Err(e) = flush(&mut pending)
            {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none()
            && let Err(e) = flush(&mut pending)
        {
            failure = Some(e);
        }
        drop(stdout);
        if failure.is_some() {
            let _ = child.kill();
        }
        feeder.join().unwrap_or(Ok(()))
    });
    progress.finish();
    let status = child.wait().map_err(|cause| VideoError::ToolIo {
        tool: "ffmpeg",
        cause,
    })?;
    let lines = log.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    feed_result?;
    if !status.success() || written < inputs.len() as u64 {
        return Err(VideoError::Ffmpeg {
            path: dir.into(),
            reason: format!(
                "denoising stopped after {written} of {} frames: {}",
                inputs.len(),
                tools::first_error(&lines, &status.to_string())
            ),
        });
    }
    Ok(DenoiseReport {
        frames: written,
        output: out_dir,
    })
}

/// Decodes the frames in parallel batches and writes them, in order, into ffmpeg's stdin.
/// A broken pipe (ffmpeg gone) ends the feed quietly: the reader reports ffmpeg's error.
fn feed(mut stdin: std::process::ChildStdin, inputs: &[PathBuf], batch: usize) -> Result<()> {
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>>>(batch);
    std::thread::scope(|s| {
        s.spawn(move || {
            for chunk in inputs.chunks(batch) {
                let decoded: Vec<Result<Vec<u8>>> = chunk
                    .par_iter()
                    .map(|p| frames::decode_frame(p).map(|f| f.data))
                    .collect();
                for d in decoded {
                    if tx.send(d).is_err() {
                        return;
                    }
                }
            }
        });
        for item in rx {
            let data = item?;
            if stdin.write_all(&data).is_err() {
                break;
            }
        }
        Ok(())
    })
}

/// The PNG/JPEG frames of `dir`, sorted by name; other images are refused by name.
pub(crate) fn list_frames(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Err(VideoError::Missing { path: dir.into() });
    }
    if !dir.is_dir() {
        return Err(VideoError::Read {
            path: dir.into(),
            cause: std::io::Error::other("not a folder"),
        });
    }
    let list = dfl_core::list_images(dir).map_err(|cause| VideoError::Read {
        path: dir.into(),
        cause,
    })?;
    if list.is_empty() {
        return Err(VideoError::NoFrames { dir: dir.into() });
    }
    if let Some(other) = list.iter().find(|p| FrameFormat::from_path(p).is_none()) {
        return Err(VideoError::Image {
            path: other.clone(),
            reason: "only PNG and JPEG frames are supported (convert TIFF frames to PNG)".into(),
        });
    }
    Ok(list)
}

/// Reads every frame's size from its header and checks they all match the first one.
pub(crate) fn check_frames(frames: &[PathBuf]) -> Result<(u32, u32)> {
    let sizes: Vec<Result<(u32, u32)>> = frames
        .par_iter()
        .map(|p| {
            image::image_dimensions(p).map_err(|e| VideoError::Image {
                path: p.clone(),
                reason: format!("cannot read image header: {e}"),
            })
        })
        .collect();
    let mut first: Option<(u32, u32)> = None;
    for (path, size) in frames.iter().zip(sizes) {
        let (w, h) = size?;
        match first {
            None => {
                if w == 0 || h == 0 || w > crate::probe::MAX_SIDE || h > crate::probe::MAX_SIDE {
                    return Err(VideoError::Image {
                        path: path.clone(),
                        reason: format!("unusable frame size {w}x{h}"),
                    });
                }
                first = Some((w, h));
            }
            Some((fw, fh)) if (fw, fh) != (w, h) => {
                return Err(VideoError::SizeMismatch {
                    path: path.clone(),
                    width: w,
                    height: h,
                    first_width: fw,
                    first_height: fh,
                });
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| VideoError::NoFrames {
        dir: frames
            .first()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
