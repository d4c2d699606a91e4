//! `dfl video extract|cut|denoise|build`: DFL's video steps 2, 3, 3.optional and 8.

use crate::progress::Ui;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use dfl_video::{
    BuildOptions, CutOptions, DEFAULT_BUILD_BITRATE, DEFAULT_CUT_BITRATE, DEFAULT_DENOISE_FACTOR,
    DEFAULT_JPEG_QUALITY, DenoiseOptions, ExtractOptions, Ffmpeg, FrameFormat, Rate, Time,
    VideoFormat,
};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum VideoCmd {
    /// Steps 2 and 3: extract a video's frames as numbered images (00001.png, 00002.png, ...).
    Extract(ExtractArgs),
    /// Step 3 "cut video": keep a part of a video, re-encoded with x264 (yuv420p).
    Cut(CutArgs),
    /// Step 3.optional: temporal denoise of a folder of frames (ffmpeg's hqdn3d).
    Denoise(DenoiseArgs),
    /// Step 8: build a video from frames, with the frame rate and audio of the original video.
    /// Also writes FILE.provenance.json (tool, inputs, settings).
    Build(BuildArgs),
}

/// Frame file format of `extract`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FrameFormatArg {
    /// Lossless PNG.
    Png,
    /// JPEG (smaller, lossy; see --jpeg-quality).
    Jpg,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// Video to read (any file ffmpeg can decode).
    pub video: PathBuf,
    /// Folder to write the frames to; created if missing.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Frames per second to extract, greater than 0 (e.g. 5, 29.97 or 30000/1001)
    /// [default: the video's own rate, every frame].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_rate)]
    pub fps: Option<Rate>,
    /// Frame file format.
    #[arg(long, value_enum, default_value = "png")]
    pub format: FrameFormatArg,
    /// JPEG quality 1..100 (only with --format jpg).
    #[arg(long, value_name = "Q", default_value_t = DEFAULT_JPEG_QUALITY,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Allow an output folder that already holds frames: its numbered frames (00001.png, ...)
    /// are replaced, and the old ones this run does not rewrite are removed at the end. Other
    /// files are never touched. [default: refuse such a folder]
    #[arg(long)]
    pub overwrite: bool,
    /// Let ffmpeg convert the frames to RGB, as DFL did (slower). By default 8-bit 4:2:0
    /// video is converted by dfl's workers with the same formula, within a few levels of
    /// ffmpeg's SIMD rounding.
    #[arg(long)]
    pub ffmpeg_rgb: bool,
}

#[derive(Args, Debug)]
pub struct CutArgs {
    /// Video to cut.
    pub video: PathBuf,
    /// Start time: seconds (90.5), MM:SS or HH:MM:SS.mmm.
    #[arg(long, value_name = "T", default_value = "0", value_parser = parse_time)]
    pub from: Time,
    /// End time, same forms as --from [default: the end of the video].
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub to: Option<Time>,
    /// Output video file; the container follows its extension (.mp4, .mkv, .mov, .avi).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Audio track to keep, counted among the audio tracks from 0 (a video without audio is
    /// cut without audio).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub audio_track: usize,
    /// Video bitrate in megabits per second.
    #[arg(long, value_name = "B", default_value_t = DEFAULT_CUT_BITRATE)]
    pub bitrate: f64,
    /// Replace FILE if it exists [default: refuse].
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug)]
pub struct DenoiseArgs {
    /// Folder of frames (.png/.jpg, sorted by name).
    pub dir: PathBuf,
    /// Strength 1..20: hqdn3d's spatial strength (temporal strength fixed at 5, as in DFL).
    /// Higher removes more noise and more detail.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DENOISE_FACTOR,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub factor: u32,
    /// Write the denoised frames here, under the same names [default: replace the frames in
    /// DIR, each file atomically, keeping names and formats].
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// With --output: replace frames that already exist there [default: refuse].
    #[arg(long)]
    pub overwrite: bool,
}

/// Container/codec of `build`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum VideoFormatArg {
    /// H.264 4:2:0 in MP4 at --bitrate, AAC audio: plays everywhere.
    Mp4,
    /// Lossless RGB H.264 (qp 0) in MP4: pixel-exact; plays in VLC/mpv, not in browsers.
    Mp4Lossless,
    /// PNG frames in QuickTime MOV: pixel-exact; reads in video editors.
    MovLossless,
    /// H.264 4:2:0 in AVI at --bitrate (as DFL), PCM audio.
    Avi,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Folder of frames (.png/.jpg, sorted by name), e.g. data_dst/merged. If it holds a
    /// provenance.json (the merger writes one), the record is embedded in the manifest and
    /// the video's comment says it contains synthetic faces.
    pub frames_dir: PathBuf,
    /// The original video (e.g. data_dst.mp4): the frame rate and the first audio track come
    /// from it [default: none; then give --fps, and the video has no audio].
    #[arg(long, value_name = "VIDEO")]
    pub reference: Option<PathBuf>,
    /// Output video file; its extension must fit --format.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Container and codec [default: from FILE's extension: .mp4 → mp4, .mov → mov-lossless,
    /// .avi → avi].
    #[arg(long, value_enum)]
    pub format: Option<VideoFormatArg>,
    /// Frames per second, greater than 0 (e.g. 25 or 30000/1001) [default: the reference's
    /// r_frame_rate].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_rate)]
    pub fps: Option<Rate>,
    /// Video bitrate in megabits per second (mp4 and avi; the lossless formats ignore it).
    #[arg(long, value_name = "B", default_value_t = DEFAULT_BUILD_BITRATE)]
    pub bitrate: f64,
    /// Also build a mask video from this folder (e.g. data_dst/merged_mask), written as
    /// <FILE stem>_mask.<ext> beside FILE [default: no mask video].
    #[arg(long, value_name = "DIR")]
    pub mask_frames: Option<PathBuf>,
    /// Replace FILE (and the mask video and the manifest) if they exist [default: refuse].
    #[arg(long)]
    pub overwrite: bool,
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    s.parse::<Rate>().map_err(|e| e.to_string())
}

fn parse_time(s: &str) -> Result<Time, String> {
    s.parse::<Time>().map_err(|e| e.to_string())
}

pub fn run(cmd: VideoCmd, ui: &Ui) -> Result<()> {
    let ff = Ffmpeg::locate()?;
    match cmd {
        VideoCmd::Extract(a) => {
            let opts = ExtractOptions {
                fps: a.fps,
                format: match a.format {
                    FrameFormatArg::Png => FrameFormat::Png,
                    FrameFormatArg::Jpg => FrameFormat::Jpg,
                },
                jpeg_quality: a.jpeg_quality,
                overwrite: a.overwrite,
                rgb_by_ffmpeg: a.ffmpeg_rgb,
            };
            let r = dfl_video::extract(&ff, &a.video, &a.output, &opts, &ui.progress())?;
            for w in r.warnings.iter().take(3) {
                tracing::warn!("ffmpeg: {w}");
            }
            if !r.removed.is_empty() {
                tracing::info!("removed {} old frames", r.removed.len());
            }
            if let Some(f) = r.foreign_images.first() {
                tracing::warn!(
                    "{} other image files are in {} (e.g. {}); later steps will treat them as frames",
                    r.foreign_images.len(),
                    a.output.display(),
                    f.display()
                );
            }
            println!(
                "extracted {} frames ({}x{}) to {}",
                r.frames,
                r.width,
                r.height,
                a.output.display()
            );
        }
        VideoCmd::Cut(a) => {
            let opts = CutOptions {
                from: a.from,
                to: a.to,
                audio_track: a.audio_track,
                bitrate_mbps: a.bitrate,
                overwrite: a.overwrite,
            };
            let r = dfl_video::cut(&ff, &a.video, &a.output, &opts, &ui.progress())?;
            println!(
                "wrote {} ({:.3} s, {})",
                r.output.display(),
                r.seconds,
                if r.audio { "with audio" } else { "no audio" }
            );
        }
        VideoCmd::Denoise(a) => {
            let opts = DenoiseOptions {
                factor: a.factor,
                output: a.output,
                overwrite: a.overwrite,
            };
            let r = dfl_video::denoise(&ff, &a.dir, &opts, &ui.progress())?;
            println!(
                "denoised {} frames (factor {}) into {}",
                r.frames,
                a.factor,
                r.output.display()
            );
        }
        VideoCmd::Build(a) => {
            let opts = BuildOptions {
                reference: a.reference,
                format: a.format.map(|f| match f {
                    VideoFormatArg::Mp4 => VideoFormat::Mp4,
                    VideoFormatArg::Mp4Lossless => VideoFormat::Mp4Lossless,
                    VideoFormatArg::MovLossless => VideoFormat::MovLossless,
                    VideoFormatArg::Avi => VideoFormat::Avi,
                }),
                fps: a.fps,
                bitrate_mbps: a.bitrate,
                mask_frames: a.mask_frames,
                overwrite: a.overwrite,
            };
            let r = dfl_video::build(&ff, &a.frames_dir, &a.output, &opts, &ui.progress())?;
            println!(
                "built {} ({} frames at {} fps, {}, {})",
                r.output.display(),
                r.frames,
                r.fps,
                r.format.name(),
                if r.audio { "with audio" } else { "no audio" }
            );
            if let Some(m) = &r.mask_output {
                println!("built {}", m.display());
            }
            println!(
                "provenance: {}{}",
                r.manifest.display(),
                if r.synthetic {
                    " (synthetic faces: recorded in the video's comment)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
