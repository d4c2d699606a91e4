//! The provenance manifest written beside every built video (`<video>.provenance.json`).
//!
//! It records which tool made the video from which inputs, and, when the frames folder carries
//! the merger's `provenance.json` (synthetic faces), embeds that record so the video's origin
//! stays traceable after the frame folders are gone.

use crate::build::VideoFormat;
use crate::error::{Result, VideoError};
use crate::units::Rate;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the provenance record the merger leaves in a frames folder.
pub const FRAMES_PROVENANCE: &str = "provenance.json";

/// The manifest path of a video: `result.mp4` → `result.mp4.provenance.json`.
pub fn manifest_path(video: &Path) -> PathBuf {
    let mut name = video.file_name().unwrap_or_default().to_os_string();
    name.push(".provenance.json");
    video.with_file_name(name)
}

/// Reads `dir/provenance.json` when present. A present but unreadable or malformed record is
/// an error: silently dropping the provenance of synthetic faces is not an option.
pub fn read_frames_provenance(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join(FRAMES_PROVENANCE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|cause| VideoError::Read {
        path: path.clone(),
        cause,
    })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| VideoError::Provenance {
            path,
            reason: format!("is not valid JSON ({e}); fix or remove it before building"),
        })
}

/// Inputs of a build, as [`Manifest::for_build`] records them.
pub struct BuildFacts<'a> {
    /// ffmpeg's version line.
    pub ffmpeg: &'a str,
    /// The built video.
    pub output: &'a Path,
    /// The built mask video, if any.
    pub mask_output: Option<&'a Path>,
    /// The frames folder.
    pub frames_dir: &'a Path,
    /// The mask frames folder, if any.
    pub mask_frames: Option<&'a Path>,
    /// The reference video, if any.
    pub reference: Option<&'a Path>,
    /// The format built.
    pub format: VideoFormat,
    /// Its frame rate.
    pub fps: Rate,
    /// Its bitrate in Mbit/s (lossy formats only).
    pub bitrate_mbps: Option<f64>,
    /// Frame count.
    pub frames: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Stream index of the reference's audio that was copied, if any.
    pub audio_stream: Option<usize>,
    /// The container comment set, if any.
    pub comment: Option<&'a str>,
    /// The frames folder's own provenance record, embedded verbatim.
    pub frames_provenance: Option<serde_json::Value>,
}

/// The manifest of one built video.
#[derive(Debug, Serialize)]
pub struct Manifest {
    /// Always `dfl-rs`.
    pub tool: &'static str,
    /// dfl-rs version.
    pub version: &'static str,
    /// The step that wrote it (`video build`).
    pub step: &'static str,
    /// UTC time of writing, RFC 3339.
    pub created_utc: String,
    /// ffmpeg's version line.
    pub ffmpeg: String,
    /// Output files.
    pub output: Outputs,
    /// Input files and folders.
    pub inputs: Inputs,
    /// Encoding settings.
    pub video: VideoFacts,
    /// Whether the frames carry synthetic faces (a merger provenance record was present).
    pub synthetic_faces: bool,
    /// The container `comment` metadata written, if any.
    pub comment: Option<String>,
    /// The frames folder's `provenance.json`, verbatim.
    pub frames_provenance: Option<serde_json::Value>,
}

/// Output files of a build.
#[derive(Debug, Serialize)]
pub struct Outputs {
    /// The video.
    pub video: String,
    /// The mask video, if built.
    pub mask_video: Option<String>,
}

/// Inputs of a build.
#[derive(Debug, Serialize)]
pub struct Inputs {
    /// Frames folder.
    pub frames_dir: String,
    /// Mask frames folder.
    pub mask_frames_dir: Option<String>,
    /// Reference video (frame rate and audio source).
    pub reference: Option<String>,
    /// Stream index of the copied audio in the reference.
    pub audio_stream: Option<usize>,
}

/// Encoding facts of a build.
#[derive(Debug, Serialize)]
pub struct VideoFacts {
    /// `mp4`, `mp4-lossless`, `mov-lossless` or `avi`.
    pub format: VideoFormat,
    /// Frame rate as ffmpeg was given it (`30000/1001`).
    pub fps: String,
    /// Bitrate in Mbit/s (lossy formats).
    pub bitrate_mbps: Option<f64>,
    /// Frames encoded.
    pub frames: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
}

impl Manifest {
    /// The manifest of a build that just finished.
    pub fn for_build(f: BuildFacts<'_>) -> Manifest {
        let show = |p: &Path| p.display().to_string();
        Manifest {
            tool: "dfl-rs",
            version: env!("CARGO_PKG_VERSION"),
            step: "video build",
            created_utc: rfc3339_utc(SystemTime::now()),
            ffmpeg: f.ffmpeg.to_string(),
            output: Outputs {
                video: show(f.output),
                mask_video: f.mask_output.map(show),
            },
            inputs: Inputs {
                frames_dir: show(f.frames_dir),
                mask_frames_dir: f.mask_frames.map(show),
                reference: f.reference.map(show),
                audio_stream: f.audio_stream,
            },
            video: VideoFacts {
                format: f.format,
                fps: f.fps.to_string(),
                bitrate_mbps: f.bitrate_mbps,
                frames: f.frames,
                width: f.width,
                height: f.height,
            },
            synthetic_faces: f.frames_provenance.is_some(),
            comment: f.comment.map(str::to_string),
            frames_provenance: f.frames_provenance,
        }
    }

    /// Writes the manifest as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| VideoError::Write {
            path: path.into(),
            cause: std::io::Error::other(e),
        })?;
        bytes.push(b'\n');
        dfl_core::atomic_write(path, &bytes).map_err(|cause| VideoError::Write {
            path: path.into(),
            cause,
        })
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date-time dependency.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_dates() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn manifest_name() {
        assert_eq!(
            manifest_path(Path::new("ws/result.mp4")),
            Path::new("ws/result.mp4.provenance.json")
        );
    }
}
