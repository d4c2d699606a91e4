//! Video → numbered frames (DFL steps 2 and 3, `videoed extract-video`).
//!
//! ffmpeg decodes and converts to raw RGB24 on its stdout; this process cuts the stream into
//! frames and encodes and writes them on a pool of threads, in parallel with ffmpeg's decoding.
//! Frames are named like DFL's (`00001.png`, numbering from 1).

use crate::error::{Result, VideoError};
use crate::frames::{self, DEFAULT_JPEG_QUALITY, FrameFormat};
use crate::probe::{VideoInfo, probe};
use crate::tools::{self, Ffmpeg, StderrLog};
use crate::units::Rate;
use crate::yuv::{self, Coeffs, Matrix};
use dfl_core::Progress;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Options of [`extract`].
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Output frame rate; `None` keeps every decoded frame (the source rate, DFL's `0`).
    pub fps: Option<Rate>,
    /// File format of the frames.
    pub format: FrameFormat,
    /// JPEG quality 1..=100 (ignored for PNG).
    pub jpeg_quality: u8,
    /// Allow an output folder that already holds frames. Existing numbered frames are then
    /// replaced, and after a successful run the numbered frames this run did not write (a
    /// longer old sequence, or the other format) are removed so the folder holds exactly one
    /// sequence. Files that are not numbered frames are never touched.
    pub overwrite: bool,
    /// Always let ffmpeg convert to RGB (the reference path). By default 8-bit 4:2:0 video
    /// crosses the pipe as YUV and is converted by the workers, which is faster and agrees
    /// with ffmpeg within a few levels.
    pub rgb_by_ffmpeg: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            fps: None,
            format: FrameFormat::Png,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            overwrite: false,
            rgb_by_ffmpeg: false,
        }
    }
}

/// What [`extract`] did.
#[derive(Debug, Clone, Default)]
pub struct ExtractReport {
    /// Frames written (`00001` to this number).
    pub frames: u64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Old numbered frames removed after an `overwrite` run.
    pub removed: Vec<PathBuf>,
    /// Image files in the output folder that are not numbered frames (left alone, but later
    /// steps will see them as frames).
    pub foreign_images: Vec<PathBuf>,
    /// ffmpeg's complaints about a stream that was nevertheless decoded to its end.
    pub warnings: Vec<String>,
}

/// Extracts the frames of `video` into `out_dir` as `00001.<ext>`, `00002.<ext>`, ...
///
/// Refuses an output folder that already holds image files unless `opts.overwrite`. On a
/// truncated or damaged video the frames before the damage stay written and the error says at
/// which frame and time decoding stopped.
pub fn extract(
    ff: &Ffmpeg,
    video: &Path,
    out_dir: &Path,
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> Result<ExtractReport> {
    if !(1..=100).contains(&opts.jpeg_quality) {
        return Err(VideoError::InvalidOption(format!(
            "JPEG quality {} is out of range 1..100",
            opts.jpeg_quality
        )));
    }
    let info = probe(ff, video)?;
    let existing = prepare_output(out_dir, opts.overwrite)?;

    let mut cmd = ff.ffmpeg();
    cmd.arg("-nostdin")
        .arg("-i")
        .arg(tools::path_arg(video))
        .args(["-map", &format!("0:v:{}", info.video_index)]);
    if let Some(r) = opts.fps {
        // The fps filter, not DFL's `-r N` output option: `-r 10` on a 5 s clip gives 52
        // frames (two duplicated at the end), the filter gives the expected 50.
        cmd.args(["-vf", &format!("fps={r}")]);
    }
    let wire = Wire::choose(&info, opts.rgb_by_ffmpeg);
    let wire_pix_fmt = match &wire {
        Wire::Rgb => "rgb24",
        Wire::Yuv420 { pix_fmt, .. } => pix_fmt,
    };
    cmd.args([
        "-an",
        "-sn",
        "-dn",
        "-f",
        "rawvideo",
        "-pix_fmt",
        wire_pix_fmt,
        "pipe:1",
    ]);
    let mut child = tools::spawn(&mut cmd, Stdio::null(), Stdio::piped())?;
    let log = StderrLog::start(child.stderr.take());
    let Some(mut stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(VideoError::ToolIo {
            tool: "ffmpeg",
            cause: std::io::Error::other("no stdout pipe"),
        });
    };

    let expected = info.expected_frames(opts.fps);
    progress.start("extract frames", expected);
    let outcome = pump(&info, &wire, &mut stdout, out_dir, opts, progress);
    progress.finish();
    drop(stdout);
    if outcome.failure.is_some() || outcome.read_error.is_some() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|cause| VideoError::ToolIo {
        tool: "ffmpeg",
        cause,
    })?;
    let lines = log.finish();
    if let Some(e) = outcome.failure {
        return Err(e);
    }
    let frames = outcome.frames;
    let fps = opts.fps.or(info.fps);
    // ffmpeg's demuxer says "partial file" once per missing packet: the file ends early.
    let cut_short = lines.iter().any(|l| l.contains("partial file"));
    let truncated = |reason: String| VideoError::Truncated {
        path: video.into(),
        frames,
        expected,
        seconds: fps.map_or(0.0, |r| frames as f64 / r.as_f64()),
        reason: if cut_short {
            "the file ends early (truncated or still being written)".to_string()
        } else {
            format!("ffmpeg said: {reason}")
        },
    };
    if let Some(e) = outcome.read_error {
        return Err(truncated(format!("reading ffmpeg's output failed: {e}")));
    }
    if frames == 0 {
        return Err(VideoError::Ffmpeg {
            path: video.into(),
            reason: tools::first_error(&lines, &format!("no frames decoded ({status})")),
        });
    }
    if !status.success() {
        return Err(truncated(tools::first_error(&lines, &status.to_string())));
    }
    if outcome.partial_frame {
        return Err(truncated(tools::first_error(
            &lines,
            "the last frame was incomplete",
        )));
    }
    if !lines.is_empty() && expected.is_some_and(|e| frames < e) {
        return Err(truncated(tools::first_error(&lines, "")));
    }

    let mut report = ExtractReport {
        frames,
        width: info.width,
        height: info.height,
        warnings: lines,
        ..ExtractReport::default()
    };
    for path in existing {
        let Some(name) = path.file_name() else {
            continue;
        };
        if !tools::is_numbered_frame(name) {
            report.foreign_images.push(path);
            continue;
        }
        let rewritten = name
            .to_str()
            .and_then(|n| n.split_once('.'))
            .and_then(|(stem, _)| stem.parse::<u64>().ok())
            .is_some_and(|n| {
                (1..=frames).contains(&n)
                    && Some(frames::frame_name(n, opts.format).as_str()) == name.to_str()
            });
        if !rewritten {
            fs::remove_file(&path).map_err(|cause| VideoError::Write {
                path: path.clone(),
                cause,
            })?;
            report.removed.push(path);
        }
    }
    Ok(report)
}

/// Creates `out_dir` if needed and returns the image files already in it, refusing them
/// unless `overwrite`.
fn prepare_output(out_dir: &Path, overwrite: bool) -> Result<Vec<PathBuf>> {
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(VideoError::CreateDir {
            path: out_dir.into(),
            cause: std::io::Error::other("a file with that name exists"),
        });
    }
    fs::create_dir_all(out_dir).map_err(|cause| VideoError::CreateDir {
        path: out_dir.into(),
        cause,
    })?;
    let existing = dfl_core::list_images(out_dir).map_err(|cause| VideoError::Read {
        path: out_dir.into(),
        cause,
    })?;
    if let Some(first) = existing.first()
        && !overwrite
    {
        return Err(VideoError::OutputHasFrames {
            dir: out_dir.into(),
            count: existing.len(),
            example: first
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    Ok(existing)
}

/// How frames cross the pipe.
enum Wire {
    /// RGB24 converted by ffmpeg (the reference path; any source format).
    Rgb,
    /// The source's own 8-bit 4:2:0 planes, converted here.
    Yuv420 {
        /// `yuv420p` or `yuvj420p`, as the source has it (so ffmpeg converts nothing).
        pix_fmt: &'static str,
        /// Matrix and range of the source.
        coeffs: Coeffs,
    },
}

impl Wire {
    fn choose(info: &VideoInfo, rgb_by_ffmpeg: bool) -> Wire {
        let even = info.width.is_multiple_of(2) && info.height.is_multiple_of(2);
        let pix_fmt = match info.pix_fmt.as_deref() {
            Some("yuv420p") => "yuv420p",
            Some("yuvj420p") => "yuvj420p",
            _ => return Wire::Rgb,
        };
        if rgb_by_ffmpeg || !even {
            return Wire::Rgb;
        }
        let full = pix_fmt == "yuvj420p" || info.color_range.as_deref() == Some("pc");
        Wire::Yuv420 {
            pix_fmt,
            coeffs: Coeffs::new(Matrix::from_ffprobe(info.color_space.as_deref()), full),
        }
    }

    fn frame_bytes(&self, width: u32, height: u32) -> usize {
        match self {
            Wire::Rgb => width as usize * height as usize * 3,
            Wire::Yuv420 { .. } => yuv::frame_bytes(width, height),
        }
    }
}

/// How the frame pump ended.
struct PumpOutcome {
    frames: u64,
    partial_frame: bool,
    read_error: Option<std::io::Error>,
    failure: Option<VideoError>,
}

/// Reads raw frames from ffmpeg and has a pool of workers encode and write them. Memory stays
/// bounded: at most two frames per worker are in flight, and their buffers are reused.
fn pump(
    info: &VideoInfo,
    wire: &Wire,
    stdout: &mut impl std::io::Read,
    out_dir: &Path,
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> PumpOutcome {
    let frame_bytes = wire.frame_bytes(info.width, info.height);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16);
    let (tx, rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(workers * 2);
    let rx = Arc::new(Mutex::new(rx));
    let pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let failure: Mutex<Option<VideoError>> = Mutex::new(None);
    let mut outcome = PumpOutcome {
        frames: 0,
        partial_frame: false,
        read_error: None,
        failure: None,
    };

    std::thread::scope(|s| {
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            let (pool, failed, failure) = (&pool, &failed, &failure);
            s.spawn(move || {
                let mut encoded = Vec::new();
                let mut rgb = Vec::new();
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => break,
                    };
                    let Ok((number, buf)) = job else { break };
                    // After a failure, keep draining so the reader never blocks on a full
                    // channel; it stops at its next frame.
                    if !failed.load(Ordering::Relaxed) {
                        let path = out_dir.join(frames::frame_name(number, opts.format));
                        let pixels = match wire {
                            Wire::Rgb => &buf,
                            Wire::Yuv420 { coeffs, .. } => {
                                yuv::yuv420_to_rgb(&buf, info.width, info.height, coeffs, &mut rgb);
                                &rgb
                            }
                        };
                        let result = frames::encode_frame(
                            pixels,
                            info.width,
                            info.height,
                            opts.format,
                            opts.jpeg_quality,
                            &mut encoded,
                        )
                        .map_err(|reason| VideoError::Image {
                            path: path.clone(),
                            reason,
                        })
                        .and_then(|()| {
                            frames::write_replacing(&path, &encoded)
                                .map_err(|cause| VideoError::Write { path, cause })
                        });
                        match result {
                            Ok(()) => progress.inc(1),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                if let Ok(mut f) = failure.lock()
                                    && f.is_none()
                                {
                                    *f = Some(e);
                                }
                            }
                        }
                    }
                    if let Ok(mut p) = pool.lock() {
                        p.push(buf);
                    }
                }
            });
        }

        loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let mut buf = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .unwrap_or_else(|| vec![0u8; frame_bytes]);
            match tools::read_full(stdout, &mut buf) {
                Ok(0) => break,
                Ok(n) if n < frame_bytes => {
                    outcome.partial_frame = true;
                    break;
                }
                Ok(_) => {
                    outcome.frames += 1;
                    if tx.send((outcome.frames, buf)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    outcome.read_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
    });

    outcome.failure = failure.into_inner().ok().flatten();
    outcome
}
