//! Cutting a part out of a video (DFL's "3) cut video", `videoed cut-video`): re-encoded with
//! x264 4:2:0 at a fixed bitrate, with one chosen audio track.

use crate::error::{Result, VideoError};
use crate::output::{self, Output};
use crate::probe::probe;
use crate::tools::{self, Ffmpeg};
use crate::units::Time;
use dfl_core::Progress;
use std::path::{Path, PathBuf};

/// DFL's default bitrate of a cut, in megabits per second.
pub const DEFAULT_CUT_BITRATE: f64 = 25.0;

/// Options of [`cut`].
#[derive(Debug, Clone)]
pub struct CutOptions {
    /// Start of the part to keep.
    pub from: Time,
    /// End of the part to keep; `None` for the end of the video.
    pub to: Option<Time>,
    /// Which audio track to keep, counted among the audio streams from 0 (DFL's default 0).
    /// A video without audio is cut without audio when this is 0.
    pub audio_track: usize,
    /// Video bitrate in megabits per second.
    pub bitrate_mbps: f64,
    /// Replace an existing output file.
    pub overwrite: bool,
}

impl Default for CutOptions {
    fn default() -> Self {
        CutOptions {
            from: Time { millis: 0 },
            to: None,
            audio_track: 0,
            bitrate_mbps: DEFAULT_CUT_BITRATE,
            overwrite: false,
        }
    }
}

/// What [`cut`] did.
#[derive(Debug, Clone)]
pub struct CutReport {
    /// The written file.
    pub output: PathBuf,
    /// Length of the kept part in seconds (as requested, clipped to the video).
    pub seconds: f64,
    /// Whether an audio track was kept.
    pub audio: bool,
}

/// Writes the part `opts.from..opts.to` of `video` to `output` (container chosen by the
/// output's extension, video re-encoded with libx264 yuv420p at the given bitrate).
pub fn cut(
    ff: &Ffmpeg,
    video: &Path,
    output: &Path,
    opts: &CutOptions,
    progress: &dyn Progress,
) -> Result<CutReport> {
    let bitrate = output::bitrate_arg(opts.bitrate_mbps)?;
    let info = probe(ff, video)?;
    if output.extension().is_none() {
        return Err(VideoError::InvalidOption(format!(
            "{}: the output needs a video file extension such as .mp4, .mov, .mkv or .avi",
            output.display()
        )));
    }
    if same_file(video, output) {
        return Err(VideoError::InvalidOption(format!(
            "{}: the output must not be the input video",
            output.display()
        )));
    }
    if let Some(to) = opts.to
        && to <= opts.from
    {
        return Err(VideoError::InvalidOption(format!(
            "--to {to} is not after --from {}",
            opts.from
        )));
    }
    if let Some(d) = info.duration
        && opts.from.seconds() >= d
    {
        return Err(VideoError::InvalidOption(format!(
            "--from {} is at or after the end of {} ({d:.3} s long)",
            opts.from,
            video.display()
        )));
    }
    let audio = match (info.audio.len(), opts.audio_track) {
        (0, 0) => false,
        (n, t) if t < n => true,
        (n, t) => {
            return Err(VideoError::InvalidOption(format!(
                "{}: audio track {t} requested but the video has {n} audio track(s) \
                 (numbered from 0)",
                video.display()
            )));
        }
    };
    let out = Output::plan(output, opts.overwrite)?;

    let end = match (opts.to, info.duration) {
        (Some(t), Some(d)) => t.seconds().min(d),
        (Some(t), None) => t.seconds(),
        (None, Some(d)) => d,
        (None, None) => opts.from.seconds(),
    };
    let seconds = (end - opts.from.seconds()).max(0.0);
    let total = info
        .fps
        .map(|r| (seconds * r.as_f64()).round() as u64)
        .filter(|n| *n > 0);

    let mut cmd = ff.ffmpeg();
    cmd.arg("-nostdin")
        .args(["-ss", &opts.from.to_string()])
        .arg("-i")
        .arg(tools::path_arg(video));
    // A duration (`-t`) rather than DFL's input `-to`, which older ffmpeg releases lack.
    if let Some(to) = opts.to {
        let length = Time {
            millis: to.millis.saturating_sub(opts.from.millis),
        };
        cmd.args(["-t", &length.to_string()]);
    }
    cmd.args(["-map", &format!("0:v:{}", info.video_index)]);
    if audio {
        cmd.args(["-map", &format!("0:a:{}", opts.audio_track)]);
    }
    cmd.args(["-vf", &output::yuv420_filter(info.width, info.height)])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-b:v", &bitrate])
        .args(output::BT709_TAGS)
        .args(["-sn", "-dn"]);
    output::run_ffmpeg_to(cmd, &out, "cut video", total, progress)?;
    out.commit()?;
    Ok(CutReport {
        output: output.into(),
        seconds,
        audio,
    })
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
