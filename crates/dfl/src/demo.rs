//! `dfl demo`: the whole workflow on bundled samples, in a throw-away workspace.
//!
//! The pipeline is a list of [`Stage`]s run in order. For now only the video stage exists, so
//! the samples are synthetic clips made with ffmpeg's lavfi sources (a moving test pattern and
//! a sine tone) and the "result" is the destination frames rebuilt into a video with its audio.
//! Later issues replace the clips with bundled face photos and insert face extraction,
//! training and merging before the final build.

use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use clap::Args;
use dfl_video::{BuildOptions, ExtractOptions, Ffmpeg, Rate, TestClip};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Marker file that identifies a folder as a demo workspace (so it may be reused).
const MARKER: &str = ".dfl-demo";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Small and short samples (320x240, 2 s): a smoke run that takes seconds
    /// [default: 1280x720, 5 s at 30 fps].
    #[arg(long)]
    pub quick: bool,
    /// Folder to run the demo in. Created if missing; an existing folder must be empty or a
    /// previous demo workspace (nothing outside it is ever touched).
    #[arg(long, value_name = "DIR", default_value = "demo-workspace")]
    pub workspace: PathBuf,
}

/// Everything the stages share.
struct Demo {
    ff: Ffmpeg,
    dir: PathBuf,
    quick: bool,
    ui: Ui,
}

impl Demo {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn clip(&self, tone_hz: u32) -> TestClip {
        if self.quick {
            TestClip {
                width: 320,
                height: 240,
                fps: Rate { num: 25, den: 1 },
                seconds: 2.0,
                tone_hz: Some(tone_hz),
                faststart: true,
            }
        } else {
            TestClip {
                tone_hz: Some(tone_hz),
                faststart: true,
                ..TestClip::default()
            }
        }
    }
}

/// One step of the demo: a name and a function returning a one-line summary.
struct Stage {
    name: &'static str,
    run: fn(&Demo) -> Result<String>,
}

/// The demo pipeline, in order.
fn stages() -> Vec<Stage> {
    vec![
        Stage {
            name: "make sample videos (data_src.mp4, data_dst.mp4)",
            run: make_samples,
        },
        Stage {
            name: "workspace init",
            run: |d| {
                crate::workspace::init(&d.dir)?;
                Ok(format!("layout ready in {}", d.dir.display()))
            },
        },
        Stage {
            name: "video extract data_src.mp4 -> data_src/",
            run: |d| extract(d, "data_src.mp4", "data_src"),
        },
        Stage {
            name: "video extract data_dst.mp4 -> data_dst/",
            run: |d| extract(d, "data_dst.mp4", "data_dst"),
        },
        Stage {
            name: "video build data_dst/ -> result.mp4 (audio from data_dst.mp4)",
            run: build_result,
        },
    ]
}

fn make_samples(d: &Demo) -> Result<String> {
    for (name, hz) in [("data_src.mp4", 330), ("data_dst.mp4", 440)] {
        dfl_video::make_test_clip(&d.ff, &d.path(name), &d.clip(hz))?;
    }
    let c = d.clip(440);
    Ok(format!(
        "{}x{}, {} s at {} fps, with a sine tone",
        c.width, c.height, c.seconds, c.fps
    ))
}

fn extract(d: &Demo, video: &str, dir: &str) -> Result<String> {
    let opts = ExtractOptions {
        overwrite: true,
        ..ExtractOptions::default()
    };
    let r = dfl_video::extract(&d.ff, &d.path(video), &d.path(dir), &opts, &d.ui.progress())?;
    Ok(format!("{} frames in {}", r.frames, d.path(dir).display()))
}

fn build_result(d: &Demo) -> Result<String> {
    let opts = BuildOptions {
        reference: Some(d.path("data_dst.mp4")),
        overwrite: true,
        ..BuildOptions::default()
    };
    let r = dfl_video::build(
        &d.ff,
        &d.path("data_dst"),
        &d.path("result.mp4"),
        &opts,
        &d.ui.progress(),
    )?;
    Ok(format!(
        "{} ({} frames, {}), provenance in {}",
        r.output.display(),
        r.frames,
        if r.audio { "with audio" } else { "no audio" },
        r.manifest.display()
    ))
}

/// Checks that `dir` may be used: missing, empty, or marked as a previous demo workspace; and
/// that the folders the demo writes into are real folders inside it, not links out of it.
fn claim(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        let marked = dir.join(MARKER).is_file();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !marked && !empty {
            bail!(
                "{} is not empty and is not a previous demo workspace (no {MARKER} file); \
                 nothing was changed: choose another --workspace",
                dir.display()
            );
        }
        for sub in ["data_src", "data_dst", "data_dst/merged", "model"] {
            let p = dir.join(sub);
            if p.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                bail!(
                    "{} is a link; the demo only writes inside {}",
                    p.display(),
                    dir.display()
                );
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "dfl demo workspace: `dfl demo` may overwrite the files in this folder\n",
    )
    .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    Ok(())
}

pub fn run(args: DemoArgs, ui: &Ui) -> Result<()> {
    let ff = Ffmpeg::locate()?;
    claim(&args.workspace)?;
    let demo = Demo {
        ff,
        dir: args.workspace,
        quick: args.quick,
        ui: *ui,
    };
    let all = stages();
    let start = Instant::now();
    for (i, stage) in all.iter().enumerate() {
        println!("[{}/{}] {}", i + 1, all.len(), stage.name);
        let t = Instant::now();
        let summary =
            (stage.run)(&demo).with_context(|| format!("demo stage '{}' failed", stage.name))?;
        println!("      {summary} ({:.1} s)", t.elapsed().as_secs_f64());
    }
    println!(
        "\ndemo finished in {:.1} s. Everything is in {}:",
        start.elapsed().as_secs_f64(),
        demo.dir.display()
    );
    let listing = [
        ("data_src.mp4", "source-person video (synthetic for now)"),
        ("data_dst.mp4", "destination video (synthetic for now)"),
        ("data_src/", "source frames"),
        ("data_dst/", "destination frames"),
        (
            "result.mp4",
            "the result video, with the destination's audio",
        ),
        ("result.mp4.provenance.json", "how the result was made"),
    ]
    .map(|(rel, what)| (demo.path(rel).display().to_string(), what));
    let width = listing.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (path, what) in &listing {
        println!("  {path:<width$}  {what}");
    }
    println!(
        "Face extraction, training and merging are not built yet; they will run between the \
         frame extraction and the final build."
    );
    Ok(())
}
