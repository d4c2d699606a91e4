//! `dfl eval`: measure the landmark nets (NME against annotations, jitter on known motion).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use dfl_detect::eval::{eval_landmarks, measure_jitter, moving_sequence};
use dfl_detect::{Models, load_frame};
use dfl_nn::DeviceSpec;
use std::path::PathBuf;

/// `dfl eval` subcommands.
#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// NME (mean point error / outer-eye-corner distance) of the 68 landmarks against iBUG
    /// .pts annotations: per image and the mean.
    Landmarks(LandmarksArgs),
    /// Landmark jitter on a synthetic video: a photo moved by known smooth motion; the motion
    /// is undone on the landmarks and what still moves is reported, with and without --track.
    Jitter(JitterArgs),
}

/// Options of `dfl eval landmarks`.
#[derive(Args, Debug)]
pub struct LandmarksArgs {
    /// Folder of images.
    #[arg(long)]
    pub images: PathBuf,
    /// Folder of <image stem>.pts files (68 points, iBUG format, 1-based coordinates).
    #[arg(long)]
    pub pts: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also search overlapping tiles for small faces (as `dfl extract --small-faces`).
    #[arg(long)]
    pub small_faces: bool,
    /// Where the nets run.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

/// Options of `dfl eval jitter`.
#[derive(Args, Debug)]
pub struct JitterArgs {
    /// The photo to move (one face).
    #[arg(long)]
    pub image: PathBuf,
    /// Number of frames.
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Frame size WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_parser = parse_size)]
    pub size: (usize, usize),
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Where the nets run.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT")?;
    let w: usize = w.parse().map_err(|_| "bad width")?;
    let h: usize = h.parse().map_err(|_| "bad height")?;
    if w < 128 || h < 128 || w > 8192 || h > 8192 {
        return Err("sides must be 128..=8192".into());
    }
    Ok((w, h))
}

/// Runs a `dfl eval` subcommand and prints its figures.
pub fn run(cmd: EvalCmd) -> Result<()> {
    match cmd {
        EvalCmd::Landmarks(a) => {
            let models = Models::bundled(&a.device.device()?)?;
            let opts = dfl_detect::FindOptions {
                small_faces: a.small_faces,
                ..Default::default()
            };
            let r = eval_landmarks(&models, &a.images, &a.pts, &opts)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            for i in &r.images {
                match i.nme {
                    Some(v) => println!("{:<40} NME {:6.2} %", i.image, v * 100.0),
                    None => println!("{:<40} no matching face found", i.image),
                }
            }
            match r.mean_nme {
                Some(m) => println!(
                    "mean NME {:.2} % over {} image(s), {} missed",
                    m * 100.0,
                    r.images.len() - r.missed,
                    r.missed
                ),
                None => println!("no annotated face was found"),
            }
        }
        EvalCmd::Jitter(a) => {
            let models = Models::bundled(&a.device.device()?)?;
            let base = load_frame(&a.image)?;
            let (frames, motions) = moving_sequence(&base, a.frames, a.size.0, a.size.1)
                .context("building the moving sequence")?;
            let det = measure_jitter(&models, &frames, &motions, false)?;
            let trk = measure_jitter(&models, &frames, &motions, true)?;
            if a.json {
                let v = serde_json::json!({ "detector": det, "track": trk });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            for (name, j) in [("detector every frame", &det), ("--track", &trk)] {
                println!(
                    "{name:<22} jitter {:5.2} % of IOD frame to frame (spread {:5.2} %), face in {}/{} frames",
                    j.jitter * 100.0,
                    j.spread * 100.0,
                    j.frames_with_face,
                    frames.len()
                );
            }
        }
    }
    Ok(())
}
