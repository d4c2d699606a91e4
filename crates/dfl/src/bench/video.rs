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

/// One timed job of a round-robin measurement: an untimed setup (e.g. a fresh output folder,
/// so every run creates its files like a first extraction does), then the timed work.
struct Job<'a> {
    setup: Box<dyn FnMut() -> Result<()> + 'a>,
    work: Box<dyn FnMut() -> Result<()> + 'a>,
}

impl<'a> Job<'a> {
    fn new(
        setup: impl FnMut() -> Result<()> + 'a,
        work: impl FnMut() -> Result<()> + 'a,
    ) -> Job<'a> {
        Job {
            setup: Box::new(setup),
            work: Box::new(work),
        }
    }
}

/// Median wall time of each job over `runs` rounds. The jobs take turns within each round, so
/// on a shared, noisy machine ours and the reference see the same load.
fn round_robin(runs: usize, jobs: &mut [Job<'_>]) -> Result<Vec<Duration>> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); jobs.len()];
    for _ in 0..runs.max(1) {
        for (job, t) in jobs.iter_mut().zip(&mut times) {
            (job.setup)()?;
            let start = Instant::now();
            (job.work)()?;
            t.push(start.elapsed());
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect())
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

    // Warm-up: puts the clip in the page cache (the time is only logged).
    let warm = median_time(1, || ffmpeg(&os(&[&"-i", &c, &"-f", &"null", &"-"])))?;
    tracing::debug!("warm-up decode of {} took {warm:?}", clip.display());
    let png_dir = ctx.scratch.join("png");
    let png_opts = ExtractOptions::default();
    let jpg_opts = ExtractOptions {
        format: FrameFormat::Jpg,
        ..ExtractOptions::default()
    };
    let extract = |dir: &Path, opts: &ExtractOptions| -> Result<()> {
        let r = dfl_video::extract(&ff, &clip, dir, opts, &NoProgress)?;
        if r.frames as f64 != frames {
            bail!("extract wrote {} frames, expected {frames}", r.frames);
        }
        Ok(())
    };
    let dfl_way = |ext: &str, extra: &[&str]| -> Result<()> {
        let mut args = os(&[&"-i", &c, &"-pix_fmt", &"rgb24"]);
        args.extend(extra.iter().map(OsString::from));
        args.push(out.join(format!("%5d.{ext}")).into_os_string());
        ffmpeg(&args)
    };
    let none = || Ok(());
    let t = round_robin(
        runs,
        &mut [
            // Decoding alone (the goal's reference).
            Job::new(none, || ffmpeg(&os(&[&"-i", &c, &"-f", &"null", &"-"]))),
            // Decoding + conversion to RGB24 into a pipe (what the reference path receives).
            Job::new(none, || {
                ffmpeg(&os(&[
                    &"-i",
                    &c,
                    &"-f",
                    &"rawvideo",
                    &"-pix_fmt",
                    &"rgb24",
                    &"pipe:1",
                ]))
            }),
            Job::new(|| fresh_dir(&png_dir), || extract(&png_dir, &png_opts)),
            Job::new(|| fresh_dir(&out), || extract(&out, &jpg_opts)),
            Job::new(|| fresh_dir(&out), || dfl_way("png", &[])),
            Job::new(|| fresh_dir(&out), || dfl_way("jpg", &["-q:v", "2"])),
        ],
    )?;
    let [decode, decode_rgb, png, jpg, dfl_png, dfl_jpg] =
        [t[0], t[1], t[2], t[3], t[4], t[5]].map(fps_of);

    // Building: our build (frames decoded here, piped raw) against ffmpeg reading the PNG
    // files itself with DFL's encoder settings (libx264 yuv420p, 16 Mbit/s). The last PNG
    // extraction above left its frames in png_dir.
    let video = ctx.scratch.join("built.mp4");
    let build_opts = BuildOptions {
        reference: Some(clip.clone()),
        overwrite: true,
        ..BuildOptions::default()
    };
    let pattern = png_dir.join("%5d.png");
    let t = round_robin(
        runs,
        &mut [
            Job::new(none, || {
                dfl_video::build(&ff, &png_dir, &video, &build_opts, &NoProgress)?;
                Ok(())
            }),
            Job::new(none, || {
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
            }),
        ],
    )?;
    let (ours_build, dfl_build) = (t[0], t[1]);
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
    let decode_ref = ("ffmpeg decode -f null", decode);
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
            decode_rgb,
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
