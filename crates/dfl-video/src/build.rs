//! Frames → video (DFL step 8 "merged to mp4 / avi / mp4 lossless / mov lossless",
//! `videoed video-from-sequence`).
//!
//! Frames are decoded here in parallel and piped raw (RGB24) into ffmpeg, with the frame rate
//! and the audio taken from the reference video (the original `data_dst.mp4`). Unlike DFL, the
//! lossless formats are truly lossless (DFL encodes 4:2:0 x264 for them), and a missing output
//! folder is created instead of silently producing nothing.

use crate::denoise::{check_frames, list_frames};
use crate::error::{Result, VideoError};
use crate::frames;
use crate::output::{self, Output};
use crate::probe::{VideoInfo, probe};
use crate::provenance::{self, Manifest};
use crate::tools::{self, Ffmpeg, StderrLog};
use crate::units::Rate;
use dfl_core::Progress;
use rayon::prelude::*;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;

/// DFL's default video bitrate for built videos, in megabits per second.
pub const DEFAULT_BUILD_BITRATE: f64 = 16.0;

/// Container and codec of a built video (DFL's four step-8 variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VideoFormat {
    /// H.264 4:2:0 at the given bitrate in MP4, AAC audio (plays everywhere).
    Mp4,
    /// Lossless RGB H.264 (libx264rgb, qp 0) in MP4, AAC audio. Pixel-exact; plays in ffmpeg
    /// based players (VLC, mpv), not in browsers.
    Mp4Lossless,
    /// PNG-coded frames in QuickTime MOV, AAC audio. Pixel-exact; reads in editors.
    MovLossless,
    /// H.264 4:2:0 at the given bitrate in AVI (as DFL), PCM audio.
    Avi,
}

impl VideoFormat {
    /// The file extension of this format.
    pub fn extension(self) -> &'static str {
        match self {
            VideoFormat::Mp4 | VideoFormat::Mp4Lossless => "mp4",
            VideoFormat::MovLossless => "mov",
            VideoFormat::Avi => "avi",
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "mp4",
            VideoFormat::Mp4Lossless => "mp4-lossless",
            VideoFormat::MovLossless => "mov-lossless",
            VideoFormat::Avi => "avi",
        }
    }

    /// The format an output file name implies: `.mp4` → mp4, `.mov` → mov-lossless,
    /// `.avi` → avi.
    pub fn from_path(path: &Path) -> Option<VideoFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "mp4" => Some(VideoFormat::Mp4),
            "mov" => Some(VideoFormat::MovLossless),
            "avi" => Some(VideoFormat::Avi),
            _ => None,
        }
    }

    /// Whether decoding the video gives back the input frames exactly.
    pub fn is_lossless(self) -> bool {
        matches!(self, VideoFormat::Mp4Lossless | VideoFormat::MovLossless)
    }

    fn muxer(self) -> &'static str {
        match self {
            VideoFormat::Mp4 | VideoFormat::Mp4Lossless => "mp4",
            VideoFormat::MovLossless => "mov",
            VideoFormat::Avi => "avi",
        }
    }
}

/// Options of [`build`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The original video: its frame rate (`r_frame_rate`) and first audio stream are used.
    pub reference: Option<PathBuf>,
    /// Container and codec; `None` picks it from the output's extension.
    pub format: Option<VideoFormat>,
    /// Frame rate; `None` takes the reference's.
    pub fps: Option<Rate>,
    /// Video bitrate in megabits per second (ignored by the lossless formats).
    pub bitrate_mbps: f64,
    /// Also build `<stem>_mask.<ext>` from this folder of mask frames.
    pub mask_frames: Option<PathBuf>,
    /// Replace existing output files.
    pub overwrite: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            reference: None,
            format: None,
            fps: None,
            bitrate_mbps: DEFAULT_BUILD_BITRATE,
            mask_frames: None,
            overwrite: false,
        }
    }
}

/// What [`build`] did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The video written.
    pub output: PathBuf,
    /// The mask video written, if mask frames were given.
    pub mask_output: Option<PathBuf>,
    /// The provenance manifest written beside the video.
    pub manifest: PathBuf,
    /// Frames in the video.
    pub frames: u64,
    /// Its frame rate.
    pub fps: Rate,
    /// Its format.
    pub format: VideoFormat,
    /// Whether the reference's audio was copied in.
    pub audio: bool,
    /// Whether the frames folder carried a provenance record (synthetic faces), which was
    /// embedded in the manifest and announced in the container's comment.
    pub synthetic: bool,
}

/// The mask video's path for an output path: `result.mp4` → `result_mask.mp4`.
pub fn mask_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = output
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    output.with_file_name(format!("{stem}_mask{ext}"))
}

/// Builds `output` from the frames of `frames_dir` (sorted by name), and writes the
/// provenance manifest `<output>.provenance.json` beside it.
///
/// Every frame is checked before ffmpeg starts; outputs are written to temporary files that
/// replace the targets only when everything succeeded.
pub fn build(
    ff: &Ffmpeg,
    frames_dir: &Path,
    output: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport> {
    let format = resolve_format(output, opts.format)?;
    let bitrate = output::bitrate_arg(opts.bitrate_mbps)?;
    let frames = list_frames(frames_dir)?;
    let (width, height) = check_frames(&frames)?;
    let masks = match &opts.mask_frames {
        Some(dir) => {
            let list = list_frames(dir)?;
            let size = check_frames(&list)?;
            Some((dir.clone(), list, size))
        }
        None => None,
    };
    let reference: Option<VideoInfo> = match &opts.reference {
        Some(r) => Some(probe(ff, r)?),
        None => None,
    };
    let fps = opts
        .fps
        .or_else(|| reference.as_ref().and_then(|r| r.fps))
        .ok_or_else(|| {
            VideoError::InvalidOption(match &opts.reference {
                Some(r) => format!("{}: cannot tell its frame rate; give --fps", r.display()),
                None => "no reference video to take the frame rate from; give --reference or --fps"
                    .into(),
            })
        })?;
    let audio = reference
        .as_ref()
        .and_then(|r| r.audio.first().map(|a| (r.path.clone(), a.index)));
    let frames_provenance = provenance::read_frames_provenance(frames_dir)?;
    let manifest_path = provenance::manifest_path(output);
    let comment = frames_provenance.as_ref().map(|_| {
        format!(
            "Contains synthetic faces made with dfl-rs {} (face swap); provenance: {}",
            env!("CARGO_PKG_VERSION"),
            manifest_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    });

    let main_out = Output::plan(output, opts.overwrite)?;
    let mask_out = match &masks {
        Some(_) => Some(Output::plan(&mask_path(output), opts.overwrite)?),
        None => None,
    };
    if !opts.overwrite && manifest_path.exists() {
        return Err(VideoError::OutputExists {
            path: manifest_path,
        });
    }

    let job = |list: &[PathBuf], size: (u32, u32), out: &Output, label: &str| {
        encode(
            ff,
            &Encode {
                frames: list,
                width: size.0,
                height: size.1,
                fps,
                format,
                bitrate: &bitrate,
                audio: audio.as_ref(),
                comment: comment.as_deref(),
            },
            out,
            label,
            progress,
        )
    };
    job(&frames, (width, height), &main_out, "build video")?;
    if let (Some((_, list, size)), Some(out)) = (&masks, &mask_out)
        && let Err(e) = job(list, *size, out, "build mask video")
    {
        main_out.discard();
        return Err(e);
    }
    main_out.commit()?;
    if let Some(out) = &mask_out {
        out.commit()?;
    }

    let manifest = Manifest::for_build(provenance::BuildFacts {
        ffmpeg: &ff.version().unwrap_or_else(|e| format!("unknown ({e})")),
        output,
        mask_output: mask_out.as_ref().map(|o| o.target.as_path()),
        frames_dir,
        mask_frames: masks.as_ref().map(|m| m.0.as_path()),
        reference: opts.reference.as_deref(),
        format,
        fps,
        bitrate_mbps: (!format.is_lossless()).then_some(opts.bitrate_mbps),
        frames: frames.len() as u64,
        width,
        height,
        audio_stream: audio.as_ref().map(|a| a.1),
        comment: comment.as_deref(),
        frames_provenance,
    });
    let synthetic = manifest.synthetic_faces;
    manifest.write(&manifest_path)?;
    Ok(BuildReport {
        output: output.into(),
        mask_output: mask_out.map(|o| o.target),
        manifest: manifest_path,
        frames: frames.len() as u64,
        fps,
        format,
        audio: audio.is_some(),
        synthetic,
    })
}

/// The format to build: the one asked for (which must fit the output's extension), else the
/// one the extension implies.
fn resolve_format(output: &Path, asked: Option<VideoFormat>) -> Result<VideoFormat> {
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match (asked, ext) {
        (Some(f), Some(e)) if e == f.extension() => Ok(f),
        (Some(f), _) => Err(VideoError::InvalidOption(format!(
            "{}: format {} writes .{} files; name the output accordingly",
            output.display(),
            f.name(),
            f.extension()
        ))),
        (None, _) => VideoFormat::from_path(output).ok_or_else(|| {
            VideoError::InvalidOption(format!(
                "{}: cannot tell the format from the extension; use .mp4, .mov or .avi, or \
                 give --format",
                output.display()
            ))
        }),
    }
}

/// One ffmpeg encoding job.
struct Encode<'a> {
    frames: &'a [PathBuf],
    width: u32,
    height: u32,
    fps: Rate,
    format: VideoFormat,
    bitrate: &'a str,
    audio: Option<&'a (PathBuf, usize)>,
    comment: Option<&'a str>,
}

fn encode(
    ff: &Ffmpeg,
    job: &Encode<'_>,
    out: &Output,
    label: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let mut cmd = ff.ffmpeg();
    cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{}x{}", job.width, job.height)])
        .args(["-framerate", &job.fps.to_string()])
        .args(["-i", "pipe:0"]);
    if let Some((reference, _)) = job.audio {
        cmd.arg("-i").arg(tools::path_arg(reference));
    }
    cmd.args(["-map", "0:v:0"]);
    if let Some((_, index)) = job.audio {
        cmd.args(["-map", &format!("1:{index}")]);
    }
    match job.format {
        VideoFormat::Mp4 | VideoFormat::Avi => {
            cmd.args(["-vf", &output::yuv420_filter(job.width, job.height)])
                .args([
                    "-c:v",
                    "libx264",
                    "-pix_fmt",
                    "yuv420p",
                    "-b:v",
                    job.bitrate,
                ])
                .args(output::BT709_TAGS);
        }
        VideoFormat::Mp4Lossless => {
            cmd.args(["-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24"]);
        }
        VideoFormat::MovLossless => {
            cmd.args(["-c:v", "png", "-pix_fmt", "rgb24"]);
        }
    }
    if job.audio.is_some() {
        match job.format {
            VideoFormat::Avi => cmd.args(["-c:a", "pcm_s16le", "-ar", "48000"]),
            _ => cmd.args(["-c:a", "aac", "-b:a", "192k", "-ar", "48000"]),
        };
    }
    if matches!(job.format, VideoFormat::Mp4 | VideoFormat::Mp4Lossless) {
        cmd.args(["-movflags", "+faststart"]);
    }
    if let Some(c) = job.comment {
        cmd.args(["-metadata", &format!("comment={c}")]);
    }
    cmd.args(["-f", job.format.muxer(), "-y"])
        .arg(tools::path_arg(&out.temp));

    let mut child = tools::spawn(&mut cmd, Stdio::piped(), Stdio::null())?;
    let log = StderrLog::start(child.stderr.take());
    let Some(stdin) = child.stdin.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(VideoError::ToolIo {
            tool: "ffmpeg",
            cause: std::io::Error::other("no stdin pipe"),
        });
    };
    progress.start(label, Some(job.frames.len() as u64));
    let fed = feed_frames(stdin, job, progress);
    progress.finish();
    if fed.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|cause| VideoError::ToolIo {
        tool: "ffmpeg",
        cause,
    });
    let lines = log.finish();
    let result = match (fed, status) {
        (Err(FeedError::Frame(e)), _) => Err(e),
        (_, Err(e)) => Err(e),
        (_, Ok(s)) if !s.success() => Err(VideoError::Ffmpeg {
            path: out.target.clone(),
            reason: tools::first_error(&lines, &s.to_string()),
        }),
        (Err(FeedError::Pipe(e)), Ok(_)) => Err(VideoError::Ffmpeg {
            path: out.target.clone(),
            reason: format!("ffmpeg stopped reading frames: {e}"),
        }),
        (Ok(()), Ok(_)) => Ok(()),
    };
    if result.is_err() {
        out.discard();
    }
    result
}

enum FeedError {
    /// A frame could not be decoded or has the wrong size.
    Frame(VideoError),
    /// ffmpeg closed its input (it failed; its stderr says why).
    Pipe(std::io::Error),
}

/// Decodes frames in parallel batches on a helper thread and writes them in order into
/// ffmpeg's stdin, so decoding overlaps with ffmpeg's encoding.
fn feed_frames(
    mut stdin: std::process::ChildStdin,
    job: &Encode<'_>,
    progress: &dyn Progress,
) -> std::result::Result<(), FeedError> {
    let batch = rayon::current_num_threads().max(1) * 2;
    let (tx, rx) = mpsc::sync_channel::<Result<frames::RgbFrame>>(batch);
    std::thread::scope(|s| {
        s.spawn(move || {
            for chunk in job.frames.chunks(batch) {
                let decoded: Vec<Result<frames::RgbFrame>> =
                    chunk.par_iter().map(|p| frames::decode_frame(p)).collect();
                for d in decoded {
                    if tx.send(d).is_err() {
                        return;
                    }
                }
            }
        });
        for (path, item) in job.frames.iter().zip(rx) {
            let frame = item.map_err(FeedError::Frame)?;
            if (frame.width, frame.height) != (job.width, job.height) {
                return Err(FeedError::Frame(VideoError::SizeMismatch {
                    path: path.clone(),
                    width: frame.width,
                    height: frame.height,
                    first_width: job.width,
                    first_height: job.height,
                }));
            }
            stdin.write_all(&frame.data).map_err(FeedError::Pipe)?;
            progress.inc(1);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_names() {
        assert_eq!(
            mask_path(Path::new("a/result.mp4")),
            Path::new("a/result_mask.mp4")
        );
        assert_eq!(
            resolve_format(Path::new("r.MOV"), None).unwrap(),
            VideoFormat::MovLossless
        );
        assert_eq!(
            resolve_format(Path::new("r.mp4"), Some(VideoFormat::Mp4Lossless)).unwrap(),
            VideoFormat::Mp4Lossless
        );
        assert!(resolve_format(Path::new("r.mp4"), Some(VideoFormat::Avi)).is_err());
        assert!(resolve_format(Path::new("r.mkv"), None).is_err());
        assert!(resolve_format(Path::new("r"), None).is_err());
    }
}
