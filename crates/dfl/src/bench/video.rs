//! Bench group `video`: `dfl video extract` frames/s on a generated 1280x720 30 fps clip
//! against ffmpeg decoding the same clip to null (goal ratio ≥ 0.8) and against ffmpeg writing
//! the frames itself as DFL does; and `dfl video build` wall time against ffmpeg encoding the
//! same PNG frames as DFL does.

use super::{Better, Ctx, Figure, median_time};
use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use dfl_core::NoProgress;
use dfl_video::{BuildOptions, ExtractOptions, Ffmpeg, FrameFormat, TestClip};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Median of `runs` timed calls of `f`, each preceded by an untimed `setup` (a fresh output
/// folder, so every run creates its files like a first extraction does).
fn median_with_setup(
    runs: usize,
    mut setup: impl FnMut() -> Result<()>,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        setup()?;
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Runs ffmpeg with `args` (stdout discarded), failing with its stderr when it fails.
fn ffmpeg<S: AsRef<OsStr>>(args: &[S]) -> Result<()> {
    let program = std::env::var_os(dfl_video::FFMPEG_ENV).unwrap_or_else(|| "ffmpeg".into());
    let out = Command::new(program)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .context("cannot run ffmpeg")?;
    if !out.status.success() {
        bail!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn os(parts: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

pub fn run(ctx: &Ctx, _ui: &Ui) -> Result<Vec<Figure>> {
    let ff = Ffmpeg::locate()?;
    let seconds = if ctx.quick { 2.0 } else { 10.0 };
    let spec = TestClip {
        seconds,
        tone_hz: None,
        ..TestClip::default()
    };
    let clip = ctx.scratch.join("clip-1280x720-30fps.mp4");
    dfl_video::make_test_clip(&ff, &clip, &spec)?;
    let frames = (seconds * spec.fps.as_f64()).round();
    let runs = if ctx.quick { 1 } else { 3 };
    let fps_of = |d: Duration| frames / d.as_secs_f64().max(1e-9);
    let size = format!(
        "{}x{} {} fps, {frames} frames",
        spec.width, spec.height, spec.fps
    );
    let out = ctx.scratch.join("frames");
    let c = clip.as_os_str();

    // References: decoding alone, and decoding + conversion to RGB24 into a pipe (what
    // extraction's reference path receives).
    let decode = median_time(runs, || ffmpeg(&os(&[&"-i", &c, &"-f", &"null", &"-"])))?;
    let decode_rgb = median_time(runs, || {
        ffmpeg(&os(&[
            &"-i",
            &c,
            &"-f",
            &"rawvideo",
            &"-pix_fmt",
            &"rgb24",
            &"pipe:1",
        ]))
    })?;

    let ours = |format: FrameFormat, dir: &Path| -> Result<f64> {
        let opts = ExtractOptions {
            format,
            ..ExtractOptions::default()
        };
        let t = median_with_setup(
            runs,
            || fresh_dir(dir),
            || {
                let r = dfl_video::extract(&ff, &clip, dir, &opts, &NoProgress)?;
                if r.frames as f64 != frames {
                    bail!("extract wrote {} frames, expected {frames}", r.frames);
                }
                Ok(())
            },
        )?;
        Ok(fps_of(t))
    };
    let dfl_way = |ext: &str, extra: &[&str]| -> Result<f64> {
        let pattern = out.join(format!("%5d.{ext}"));
        let t = median_with_setup(
            runs,
            || fresh_dir(&out),
            || {
                let mut args = os(&[&"-i", &c, &"-pix_fmt", &"rgb24"]);
                args.extend(extra.iter().map(OsString::from));
                args.push(pattern.clone().into_os_string());
                ffmpeg(&args)
            },
        )?;
        Ok(fps_of(t))
    };
    let png_dir = ctx.scratch.join("png");
    let png = ours(FrameFormat::Png, &png_dir)?;
    let jpg = ours(FrameFormat::Jpg, &out)?;
    let dfl_png = dfl_way("png", &[])?;
    let dfl_jpg = dfl_way("jpg", &["-q:v", "2"])?;

    // Building: our build (frames decoded here, piped raw) against ffmpeg reading the PNG
    // files itself with DFL's encoder settings (libx264 yuv420p, 16 Mbit/s).
    let video = ctx.scratch.join("built.mp4");
    let build_opts = BuildOptions {
        reference: Some(clip.clone()),
        overwrite: true,
        ..BuildOptions::default()
    };
    let build_runs = if ctx.quick { 1 } else { 3 };
    let ours_build = median_with_setup(
        build_runs,
        || Ok(()),
        || {
            dfl_video::build(&ff, &png_dir, &video, &build_opts, &NoProgress)?;
            Ok(())
        },
    )?;
    let pattern = png_dir.join("%5d.png");
    let dfl_build = median_with_setup(
        build_runs,
        || Ok(()),
        || {
            ffmpeg(&os(&[
                &"-framerate",
                &"30",
                &"-i",
                &pattern,
                &"-b:v",
                &"16M",
                &"-c:v",
                &"libx264",
                &"-pix_fmt",
                &"yuv420p",
                &"-y",
                &video,
            ]))
        },
    )?;
    for d in [&out, &png_dir] {
        let _ = std::fs::remove_dir_all(d);
    }

    let fig = |name: String, ours: f64, reference: (&str, f64), goal: Option<f64>| Figure {
        name,
        unit: "frames/s",
        ours,
        better: Better::Higher,
        reference: Some((reference.0.to_string(), reference.1)),
        goal,
    };
    let decode_ref = ("ffmpeg decode -f null", fps_of(decode));
    Ok(vec![
        fig(
            format!("video extract png ({size})"),
            png,
            decode_ref,
            Some(0.8),
        ),
        fig(
            format!(
                "video extract jpg q{} ({size})",
                dfl_video::DEFAULT_JPEG_QUALITY
            ),
            jpg,
            decode_ref,
            Some(0.8),
        ),
        fig(
            "video extract png vs DFL's way".into(),
            png,
            ("ffmpeg writes %5d.png", dfl_png),
            Some(1.0),
        ),
        fig(
            "video extract jpg vs DFL's way".into(),
            jpg,
            ("ffmpeg writes %5d.jpg -q:v 2", dfl_jpg),
            Some(1.0),
        ),
        fig(
            "(profile) ffmpeg decode + rgb24 into a pipe".into(),
            fps_of(decode_rgb),
            decode_ref,
            None,
        ),
        Figure {
            name: format!("video build mp4 from png ({frames} frames)"),
            unit: "s",
            ours: ours_build.as_secs_f64(),
            better: Better::Lower,
            reference: Some((
                "ffmpeg reads %5d.png, libx264".into(),
                dfl_build.as_secs_f64(),
            )),
            goal: Some(1.1),
        },
    ])
}
