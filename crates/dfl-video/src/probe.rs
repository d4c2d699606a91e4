//! What ffprobe says about a video: frame size (after display rotation), frame rate, frame
//! count, duration and audio streams.

use crate::error::{Result, VideoError};
use crate::tools::{self, FFPROBE_ENV, Ffmpeg};
use crate::units::Rate;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Largest frame side accepted (guards the raw-frame buffers against absurd headers).
pub const MAX_SIDE: u32 = 16_384;

/// The facts about a video that the video steps need.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// The probed file.
    pub path: PathBuf,
    /// Width of decoded frames as ffmpeg outputs them (display rotation applied).
    pub width: u32,
    /// Height of decoded frames as ffmpeg outputs them (display rotation applied).
    pub height: u32,
    /// Index of the chosen stream among the file's video streams (for `-map 0:v:N`): the
    /// first one that is not cover art.
    pub video_index: usize,
    /// The stream's `r_frame_rate` (DFL's choice for building), falling back to
    /// `avg_frame_rate` when the former is missing.
    pub fps: Option<Rate>,
    /// Frames the container announces (`nb_frames`), when it does.
    pub frames: Option<u64>,
    /// Duration in seconds (stream, else container), when known.
    pub duration: Option<f64>,
    /// Audio streams in file order.
    pub audio: Vec<AudioStream>,
    /// The video stream's pixel format (e.g. `yuv420p`), when known.
    pub pix_fmt: Option<String>,
    /// The video stream's colour matrix (e.g. `bt709`), when tagged.
    pub color_space: Option<String>,
    /// The video stream's range (`tv` or `pc`), when tagged.
    pub color_range: Option<String>,
}

/// One audio stream of a video.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    /// Absolute stream index in the file.
    pub index: usize,
    /// Codec name, e.g. `aac`.
    pub codec: String,
}

impl VideoInfo {
    /// Frames expected when decoding at `fps` (or at the stream's own rate when `None`):
    /// the announced count when it applies, else duration × rate.
    pub fn expected_frames(&self, fps: Option<Rate>) -> Option<u64> {
        match (fps, self.frames) {
            (None, Some(n)) if n > 0 => Some(n),
            _ => {
                let rate = fps.or(self.fps)?;
                let d = self.duration?;
                Some((d * rate.as_f64()).round().max(0.0) as u64)
            }
        }
    }
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct FormatJson {
    duration: Option<String>,
}

#[derive(Deserialize)]
struct StreamJson {
    index: usize,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    nb_frames: Option<String>,
    duration: Option<String>,
    pix_fmt: Option<String>,
    color_space: Option<String>,
    color_range: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    tags: Tags,
    #[serde(default)]
    side_data_list: Vec<SideData>,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize, Default)]
struct Tags {
    rotate: Option<String>,
}

#[derive(Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

/// Runs ffprobe on `path`. A missing file, a file ffmpeg cannot read and a file without video
/// each give their own error.
pub fn probe(ff: &Ffmpeg, path: &Path) -> Result<VideoInfo> {
    if !path.exists() {
        return Err(VideoError::Missing { path: path.into() });
    }
    if path.is_dir() {
        return Err(VideoError::NotAVideo {
            path: path.into(),
            reason: "it is a folder".into(),
        });
    }
    let mut cmd = ff.ffprobe();
    cmd.args(["-print_format", "json", "-show_streams", "-show_format"])
        .arg(tools::path_arg(path));
    tracing::debug!("running {}", tools::render(&cmd));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tools::start_error(e, "ffprobe", FFPROBE_ENV))?;
    // ffprobe's summary line starts with the file name, which our message already shows.
    let prefix = format!("{}: ", tools::path_arg(path).to_string_lossy());
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect();
    if !out.status.success() {
        return Err(VideoError::NotAVideo {
            path: path.into(),
            reason: tools::first_error(&stderr, &format!("ffprobe {}", out.status)),
        });
    }
    let parsed: ProbeJson =
        serde_json::from_slice(&out.stdout).map_err(|e| VideoError::NotAVideo {
            path: path.into(),
            reason: format!("unexpected ffprobe output: {e}"),
        })?;
    info_from(path, parsed)
}

fn info_from(path: &Path, p: ProbeJson) -> Result<VideoInfo> {
    let videos: Vec<&StreamJson> = p
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("video"))
        .collect();
    let (video_index, v) = videos
        .iter()
        .enumerate()
        .find(|(_, s)| s.disposition.attached_pic == 0)
        .ok_or_else(|| VideoError::NoVideoStream { path: path.into() })?;
    let (w, h) = match (v.width, v.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE => (w, h),
        (w, h) => {
            return Err(VideoError::NotAVideo {
                path: path.into(),
                reason: format!(
                    "video stream has an unusable frame size {}x{}",
                    w.unwrap_or(0),
                    h.unwrap_or(0)
                ),
            });
        }
    };
    // ffmpeg rotates frames by the display matrix (autorotate); a quarter turn swaps sides.
    let rotation = v
        .side_data_list
        .iter()
        .find_map(|s| s.rotation)
        .or_else(|| v.tags.rotate.as_deref().and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0);
    let quarter = ((rotation / 90.0).round() as i64).rem_euclid(2) == 1;
    let (width, height) = if quarter { (h, w) } else { (w, h) };
    let fps = v
        .r_frame_rate
        .as_deref()
        .and_then(Rate::from_ffprobe)
        .or_else(|| v.avg_frame_rate.as_deref().and_then(Rate::from_ffprobe));
    let parse_f = |s: &Option<String>| {
        s.as_deref()
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d > 0.0)
    };
    let duration =
        parse_f(&v.duration).or_else(|| p.format.as_ref().and_then(|f| parse_f(&f.duration)));
    let frames = v.nb_frames.as_deref().and_then(|n| n.parse().ok());
    let audio = p
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("audio"))
        .map(|s| AudioStream {
            index: s.index,
            codec: s.codec_name.clone().unwrap_or_default(),
        })
        .collect();
    Ok(VideoInfo {
        path: path.into(),
        width,
        height,
        video_index,
        fps,
        frames,
        duration,
        audio,
        pix_fmt: v.pix_fmt.clone(),
        color_space: v.color_space.clone(),
        color_range: v.color_range.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<VideoInfo> {
        info_from(Path::new("x.mp4"), serde_json::from_str(json).unwrap())
    }

    #[test]
    fn skips_cover_art_and_applies_rotation() {
        let info = parse(
            r#"{"streams":[
              {"index":0,"codec_type":"video","width":600,"height":600,"disposition":{"attached_pic":1}},
              {"index":1,"codec_type":"video","width":1920,"height":1080,"r_frame_rate":"30000/1001",
               "nb_frames":"300","duration":"10.01","side_data_list":[{"rotation":-90}]},
              {"index":2,"codec_type":"audio","codec_name":"aac"}],
              "format":{"duration":"10.5"}}"#,
        )
        .unwrap();
        assert_eq!((info.width, info.height, info.video_index), (1080, 1920, 1));
        assert_eq!(info.fps.map(|r| (r.num, r.den)), Some((30000, 1001)));
        assert_eq!(info.frames, Some(300));
        assert_eq!(info.duration, Some(10.01));
        assert_eq!(info.audio.len(), 1);
        assert_eq!(info.audio[0].index, 2);
        assert_eq!(info.expected_frames(None), Some(300));
        assert_eq!(
            info.expected_frames(Some(Rate { num: 10, den: 1 })),
            Some(100)
        );
    }

    #[test]
    fn old_rotate_tag_and_missing_video() {
        let info = parse(
            r#"{"streams":[{"index":0,"codec_type":"video","width":640,"height":480,
               "r_frame_rate":"0/0","avg_frame_rate":"25/1","tags":{"rotate":"270"}}]}"#,
        )
        .unwrap();
        assert_eq!((info.width, info.height), (480, 640));
        assert_eq!(info.fps, Some(Rate { num: 25, den: 1 }));
        assert!(matches!(
            parse(r#"{"streams":[{"index":0,"codec_type":"audio"}]}"#),
            Err(VideoError::NoVideoStream { .. })
        ));
        assert!(matches!(
            parse(r#"{"streams":[{"index":0,"codec_type":"video","width":0,"height":5}]}"#),
            Err(VideoError::NotAVideo { .. })
        ));
    }
}
