//! Finding and running the system `ffmpeg` and `ffprobe`.
//!
//! Arguments always go to the programs as separate argv items (never through a shell), so file
//! names with spaces, quotes or leading dashes reach ffmpeg unchanged. ffmpeg's stderr is
//! collected on a thread and reduced to its first error line for our one-line messages.

use crate::error::{Result, VideoError};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread::JoinHandle;

/// Environment variable that points at the ffmpeg program (default: `ffmpeg` on PATH).
pub const FFMPEG_ENV: &str = "DFL_FFMPEG";
/// Environment variable that points at the ffprobe program (default: `ffprobe` on PATH).
pub const FFPROBE_ENV: &str = "DFL_FFPROBE";

/// The located ffmpeg and ffprobe programs.
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
}

impl Ffmpeg {
    /// Finds ffmpeg and ffprobe (from [`FFMPEG_ENV`]/[`FFPROBE_ENV`], else on PATH) without
    /// starting them (each start costs tens of milliseconds). A missing program gives
    /// [`VideoError::ToolMissing`], whose message says how to install it.
    pub fn locate() -> Result<Ffmpeg> {
        Ok(Ffmpeg {
            ffmpeg: find_program("ffmpeg", FFMPEG_ENV)?,
            ffprobe: find_program("ffprobe", FFPROBE_ENV)?,
        })
    }

    /// ffmpeg's version line, e.g. `ffmpeg version 5.1.6-0+deb12u1` (runs `ffmpeg -version`).
    pub fn version(&self) -> Result<String> {
        let out = Command::new(&self.ffmpeg)
            .arg("-version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| start_error(e, "ffmpeg", FFMPEG_ENV))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers"
        let first = text.lines().next().unwrap_or("");
        let line = first
            .split(" Copyright")
            .next()
            .unwrap_or(first)
            .trim()
            .to_string();
        if !out.status.success() || line.is_empty() {
            return Err(VideoError::ToolIo {
                tool: "ffmpeg",
                cause: std::io::Error::other(format!(
                    "'{} -version' failed ({})",
                    self.ffmpeg.display(),
                    out.status
                )),
            });
        }
        Ok(line)
    }

    /// An ffmpeg command with the options every call shares (no banner, errors only); public
    /// so that other steps (the demo's sample clips) run the same located program.
    pub fn ffmpeg(&self) -> Command {
        let mut c = Command::new(&self.ffmpeg);
        c.args(["-hide_banner", "-loglevel", "error"]);
        c
    }

    /// An ffprobe command with errors-only logging.
    pub(crate) fn ffprobe(&self) -> Command {
        let mut c = Command::new(&self.ffprobe);
        c.args(["-hide_banner", "-loglevel", "error"]);
        c
    }
}

/// The program to run for `tool`: the environment override if set (which must exist), else
/// the first `tool` (`tool.exe` on Windows) in a PATH folder.
fn find_program(tool: &'static str, env: &'static str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.components().count() > 1 {
            return if p.is_file() {
                Ok(p)
            } else {
                Err(VideoError::ToolMissing { tool, env })
            };
        }
        return search_path(&p.to_string_lossy()).ok_or(VideoError::ToolMissing { tool, env });
    }
    search_path(tool).ok_or(VideoError::ToolMissing { tool, env })
}

fn search_path(name: &str) -> Option<PathBuf> {
    let file = if cfg!(windows) && !name.to_ascii_lowercase().ends_with(".exe") {
        format!("{name}.exe")
    } else {
        name.to_string()
    };
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(&file))
            .find(|p| p.is_file())
    })
}

/// Maps a failure to start a program: "not found" becomes the install hint.
pub(crate) fn start_error(e: std::io::Error, tool: &'static str, env: &'static str) -> VideoError {
    if e.kind() == std::io::ErrorKind::NotFound {
        VideoError::ToolMissing { tool, env }
    } else {
        VideoError::ToolIo { tool, cause: e }
    }
}

/// Starts `cmd` (ffmpeg) with the given stdio; stderr is always piped for [`StderrLog`].
pub(crate) fn spawn(cmd: &mut Command, stdin: Stdio, stdout: Stdio) -> Result<Child> {
    tracing::debug!("running {}", render(cmd));
    cmd.stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| start_error(e, "ffmpeg", FFMPEG_ENV))
}

/// The command line for logs (quoted loosely; never executed through a shell).
pub(crate) fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Maximum number of stderr lines kept (ffmpeg repeats "partial file" once per packet).
const MAX_LINES: usize = 200;

/// ffmpeg's stderr, read on its own thread so the pipe never fills and blocks ffmpeg.
pub(crate) struct StderrLog(Option<JoinHandle<Vec<String>>>);

impl StderrLog {
    /// Starts draining `stderr`.
    pub(crate) fn start(stderr: Option<ChildStderr>) -> StderrLog {
        StderrLog(stderr.map(|s| {
            std::thread::spawn(move || {
                let mut lines = Vec::new();
                let mut reader = BufReader::new(s);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if lines.len() < MAX_LINES {
                                let line = String::from_utf8_lossy(&buf).trim().to_string();
                                if !line.is_empty() {
                                    lines.push(line);
                                }
                            }
                        }
                    }
                }
                lines
            })
        }))
    }

    /// Waits for the end of stderr (the process must have exited or be exiting).
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.0
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// ffmpeg's explanation in one line: its first two distinct stderr lines (the specific cause
/// usually comes first, the summary second), without `[demuxer @ 0x...]` prefixes, joined with
/// `; ` and cut to a readable length; `fallback` when stderr was empty.
pub(crate) fn first_error(lines: &[String], fallback: &str) -> String {
    let strip = |l: &str| -> String {
        let l = l.trim();
        match (l.starts_with('['), l.find("] ")) {
            (true, Some(i)) => l[i + 2..].trim().to_string(),
            _ => l.to_string(),
        }
    };
    let mut picked: Vec<String> = Vec::new();
    for l in lines.iter().map(|l| strip(l)) {
        if !l.is_empty() && !picked.contains(&l) {
            picked.push(l);
        }
        if picked.len() == 2 {
            break;
        }
    }
    if picked.is_empty() {
        return fallback.to_string();
    }
    let joined = picked.join("; ");
    if joined.chars().count() > 300 {
        let mut cut: String = joined.chars().take(300).collect();
        cut.push('…');
        cut
    } else {
        joined
    }
}

/// Reads into `buf` until it is full or the stream ends; returns the number of bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `path` as an ffmpeg input/output argument. A relative name that starts with `-` would be
/// read as an option, and one with a `proto:` prefix as a protocol, so both get `./`.
pub(crate) fn path_arg(path: &Path) -> std::ffi::OsString {
    let s = path.as_os_str();
    let text = s.to_string_lossy();
    let needs_prefix = path.is_relative() && (text.starts_with('-') || text.contains(':'));
    if needs_prefix {
        let mut o = std::ffi::OsString::from("./");
        o.push(s);
        o
    } else {
        s.to_os_string()
    }
}

/// Whether `name` is what DFL's extraction writes: digits, then `.png`/`.jpg`/`.jpeg`.
pub(crate) fn is_numbered_frame(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && stem.bytes().all(|b| b.is_ascii_digit())
        && ["png", "jpg", "jpeg"]
            .iter()
            .any(|e| e.eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_strips_prefix() {
        let lines = vec![
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d] stream 0, offset 0x24b71: partial file".into(),
            "Error while decoding".into(),
        ];
        assert_eq!(
            first_error(&lines, "x"),
            "stream 0, offset 0x24b71: partial file; Error while decoding"
        );
        let repeated = vec![
            "[h264 @ 0x1] bad".to_string(),
            "[h264 @ 0x2] bad".to_string(),
        ];
        assert_eq!(first_error(&repeated, "x"), "bad");
        assert_eq!(first_error(&[], "exit status 1"), "exit status 1");
    }

    #[test]
    fn dangerous_paths_get_prefixed() {
        assert_eq!(path_arg(Path::new("-y.mp4")), "./-y.mp4");
        assert_eq!(path_arg(Path::new("http:x.mp4")), "./http:x.mp4");
        assert_eq!(path_arg(Path::new("a b.mp4")), "a b.mp4");
        assert_eq!(path_arg(Path::new("/tmp/-a.mp4")), "/tmp/-a.mp4");
    }

    #[test]
    fn numbered_frames() {
        for ok in ["00001.png", "123.JPG", "00001.jpeg"] {
            assert!(is_numbered_frame(OsStr::new(ok)), "{ok}");
        }
        for no in ["a001.png", ".png", "00001.png.tmp", "00001.tif", "00001"] {
            assert!(!is_numbered_frame(OsStr::new(no)), "{no}");
        }
    }
}
