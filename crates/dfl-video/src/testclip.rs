//! Synthetic clips from ffmpeg's lavfi sources (moving `testsrc2` pattern, sine tone), for the
//! demo, the benchmarks and the tests: real H.264/AAC files, made on the spot, nothing to
//! download.

use crate::Ffmpeg;
use crate::error::{Result, VideoError};
use crate::output::Output;
use crate::tools::{self, StderrLog};
use crate::units::Rate;
use std::path::Path;
use std::process::Stdio;

/// Shape of a synthetic clip.
#[derive(Debug, Clone, PartialEq)]
pub struct TestClip {
    /// Frame width (even).
    pub width: u32,
    /// Frame height (even).
    pub height: u32,
    /// Frame rate.
    pub fps: Rate,
    /// Length in seconds.
    pub seconds: f64,
    /// Sine tone frequency in Hz, or `None` for a clip without audio.
    pub tone_hz: Option<u32>,
    /// Put the index (`moov`) first, as streaming files do; a truncated copy of such a file
    /// still decodes up to the cut.
    pub faststart: bool,
}

impl Default for TestClip {
    fn default() -> Self {
        TestClip {
            width: 1280,
            height: 720,
            fps: Rate { num: 30, den: 1 },
            seconds: 5.0,
            tone_hz: Some(440),
            faststart: false,
        }
    }
}

/// Writes `clip` to `path` (H.264 yuv420p, AAC 48 kHz; container from the extension),
/// replacing an existing file.
pub fn make_test_clip(ff: &Ffmpeg, path: &Path, clip: &TestClip) -> Result<()> {
    if clip.width == 0
        || clip.height == 0
        || !clip.width.is_multiple_of(2)
        || !clip.height.is_multiple_of(2)
    {
        return Err(VideoError::InvalidOption(format!(
            "test clip size {}x{} must be even and non-zero",
            clip.width, clip.height
        )));
    }
    if !(clip.seconds.is_finite() && clip.seconds > 0.0) {
        return Err(VideoError::InvalidOption(format!(
            "test clip length {} s must be positive",
            clip.seconds
        )));
    }
    let out = Output::plan(path, true)?;
    let secs = format!("{}", clip.seconds);
    let mut cmd = ff.ffmpeg();
    cmd.arg("-nostdin").args([
        "-f",
        "lavfi",
        "-i",
        &format!(
            "testsrc2=size={}x{}:rate={}:duration={secs}",
            clip.width, clip.height, clip.fps
        ),
    ]);
    if let Some(hz) = clip.tone_hz {
        cmd.args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={hz}:sample_rate=48000:duration={secs}"),
        ]);
    }
    cmd.args([
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
    ]);
    if clip.tone_hz.is_some() {
        cmd.args(["-c:a", "aac", "-b:a", "128k"]);
    }
    if clip.faststart {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.arg("-y").arg(tools::path_arg(&out.temp));
    let mut child = tools::spawn(&mut cmd, Stdio::null(), Stdio::null())?;
    let log = StderrLog::start(child.stderr.take());
    let status = child.wait().map_err(|cause| VideoError::ToolIo {
        tool: "ffmpeg",
        cause,
    })?;
    let lines = log.finish();
    if !status.success() {
        out.discard();
        return Err(VideoError::Ffmpeg {
            path: path.into(),
            reason: tools::first_error(&lines, &status.to_string()),
        });
    }
    out.commit()
}
