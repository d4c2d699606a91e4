//! Writing a video file safely: ffmpeg writes to a hidden temporary sibling, which replaces the
//! target only when ffmpeg succeeded, so a failed run never leaves half a video or destroys the
//! previous one.

use crate::error::{Result, VideoError};
use crate::tools::{self, StderrLog};
use dfl_core::Progress;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A planned output file and its temporary sibling.
pub(crate) struct Output {
    /// Where the result goes.
    pub(crate) target: PathBuf,
    /// Where ffmpeg writes it first.
    pub(crate) temp: PathBuf,
}

impl Output {
    /// Checks that `target` may be written (absent, or `overwrite`), creates its parent
    /// folder, and picks the temporary name (same extension, so ffmpeg sees the container).
    pub(crate) fn plan(target: &Path, overwrite: bool) -> Result<Output> {
        if target.is_dir() {
            return Err(VideoError::Write {
                path: target.into(),
                cause: std::io::Error::other("it is a folder"),
            });
        }
        if target.exists() && !overwrite {
            return Err(VideoError::OutputExists {
                path: target.into(),
            });
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|cause| VideoError::CreateDir {
            path: parent.clone(),
            cause,
        })?;
        let stem = target
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = target
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let temp = parent.join(format!(".{stem}.dfl-tmp-{}{ext}", std::process::id()));
        Ok(Output {
            target: target.into(),
            temp,
        })
    }

    /// Moves the finished temporary file over the target.
    pub(crate) fn commit(&self) -> Result<()> {
        fs::rename(&self.temp, &self.target).map_err(|cause| {
            let _ = fs::remove_file(&self.temp);
            VideoError::Write {
                path: self.target.clone(),
                cause,
            }
        })
    }

    /// Removes the temporary file after a failure (the target is untouched).
    pub(crate) fn discard(&self) {
        let _ = fs::remove_file(&self.temp);
    }
}

/// Runs an ffmpeg command that reads files and writes `out.temp`, reporting progress from
/// ffmpeg's `-progress` stream as frames out of `total`. The caller's command must not yet name
/// its output; this function appends the progress options and the temporary path.
pub(crate) fn run_ffmpeg_to(
    mut cmd: Command,
    out: &Output,
    label: &str,
    total: Option<u64>,
    progress: &dyn Progress,
) -> Result<()> {
    cmd.args(["-progress", "pipe:1", "-nostats", "-y"])
        .arg(tools::path_arg(&out.temp));
    let mut child = tools::spawn(&mut cmd, Stdio::null(), Stdio::piped())?;
    let log = StderrLog::start(child.stderr.take());
    progress.start(label, total);
    if let Some(stdout) = child.stdout.take() {
        let mut done = 0u64;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("frame=")
                && let Ok(n) = v.trim().parse::<u64>()
                && n > done
            {
                progress.inc(n - done);
                done = n;
            }
        }
    }
    progress.finish();
    let status = child.wait().map_err(|cause| VideoError::ToolIo {
        tool: "ffmpeg",
        cause,
    });
    let lines = log.finish();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            out.discard();
            Err(VideoError::Ffmpeg {
                path: out.target.clone(),
                reason: tools::first_error(&lines, &s.to_string()),
            })
        }
        Err(e) => {
            out.discard();
            Err(e)
        }
    }
}

/// ffmpeg's `-b:v` value for a bitrate in megabits per second, after range checks.
pub(crate) fn bitrate_arg(mbps: f64) -> Result<String> {
    if !mbps.is_finite() || mbps <= 0.0 || mbps > 1000.0 {
        return Err(VideoError::InvalidOption(format!(
            "bitrate {mbps} is not valid: give megabits per second, greater than 0 and at most 1000"
        )));
    }
    Ok(format!("{}", (mbps * 1_000_000.0).round() as u64))
}

/// The filter that pads odd frame sizes to even ones (4:2:0 video needs even sides; the extra
/// row or column is black) and converts with BT.709, which players assume for HD video.
pub(crate) fn yuv420_filter(width: u32, height: u32) -> String {
    let mut f = String::from("scale=out_color_matrix=bt709:out_range=tv");
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        f.push_str(",pad=ceil(iw/2)*2:ceil(ih/2)*2");
    }
    f
}

/// The options that tag 4:2:0 output as BT.709 limited range (matching [`yuv420_filter`]).
pub(crate) const BT709_TAGS: [&str; 8] = [
    "-colorspace",
    "bt709",
    "-color_primaries",
    "bt709",
    "-color_trc",
    "bt709",
    "-color_range",
    "tv",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_refuses_existing_and_picks_hidden_temp() {
        let d = std::env::temp_dir().join(format!("dfl-video-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let target = d.join("sub/result.mp4");
        let o = Output::plan(&target, false).unwrap();
        assert!(d.join("sub").is_dir());
        let temp_name = o.temp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(temp_name.starts_with(".result.dfl-tmp-") && temp_name.ends_with(".mp4"));
        fs::write(&target, b"old").unwrap();
        assert!(matches!(
            Output::plan(&target, false),
            Err(VideoError::OutputExists { .. })
        ));
        assert!(Output::plan(&target, true).is_ok());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bitrates() {
        assert_eq!(bitrate_arg(25.0).unwrap(), "25000000");
        assert_eq!(bitrate_arg(2.5).unwrap(), "2500000");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 5000.0] {
            assert!(bitrate_arg(bad).is_err());
        }
        assert_eq!(
            yuv420_filter(4, 4),
            "scale=out_color_matrix=bt709:out_range=tv"
        );
        assert!(yuv420_filter(5, 4).ends_with("pad=ceil(iw/2)*2:ceil(ih/2)*2"));
    }
}
