//! `dfl extract`: DFL steps 4 and 5 "faceset extract" (frames → aligned faces + aligned_debug),
//! plus the `--manual-fix` pieces.

use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use clap::Args;
use dfl_core::Shard;
use dfl_detect::extract::debug_dir;
use dfl_detect::manual::{add_manual_face, frames_without_faces};
use dfl_detect::{ExtractOptions, Models, extract};
use dfl_geom::FaceType;
use dfl_nn::DeviceSpec;
use std::path::PathBuf;

/// Options of `dfl extract`.
#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// Folder of frames (jpg, jpeg, png, tif, tiff; other files are skipped and listed).
    #[arg(long)]
    pub input: PathBuf,
    /// Folder for the aligned faces (created if missing), e.g. data_src/aligned. Debug
    /// pictures go to <output>_debug.
    #[arg(long)]
    pub output: PathBuf,
    /// Face type of the crops: h (half), mf (mid-full), f (full), wf (whole face), head, or
    /// mark-only (no crop: the frame with landmarks).
    #[arg(long, default_value = "wf", value_parser = parse_face_type)]
    pub face_type: FaceType,
    /// Side of the aligned faces in pixels [default: 512, 768 for head].
    #[arg(long, value_parser = clap::value_parser!(u32).range(64..=4096))]
    pub size: Option<u32>,
    /// JPEG quality of the aligned faces.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Keep only the N largest faces per frame (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_faces: usize,
    /// Also write <output>_debug/<frame>.jpg with landmarks, detector box and crop outline.
    #[arg(long)]
    pub debug: bool,
    /// Video-aware mode: seed each frame with the previous frame's landmarks and run the
    /// detector only when tracking is lost or every --detect-every frames (faster, steadier).
    #[arg(long)]
    pub track: bool,
    /// With --track: run the detector at least every N frames (0 = only when lost).
    #[arg(long, default_value_t = 30)]
    pub detect_every: usize,
    /// Also search overlapping tiles of the frame for small faces (down to ~4 % of the frame
    /// width instead of ~8 %); one more detector run per tile (6 for 1920x1080).
    #[arg(long)]
    pub small_faces: bool,
    /// Process only share i of n of the frames (interleaved), e.g. 0/4. Shards can write to
    /// the same output folder.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Where the nets run: cpu, or a GPU this build supports (vulkan: the best adapter;
    /// vulkan:N, cuda:N, ...).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Delete the aligned faces already in --output (and <output>_debug) and start over.
    /// Without it, an interrupted or finished extraction resumes and nothing is deleted.
    #[arg(long)]
    pub overwrite: bool,
    /// Manual fix: list the frames where no face was found (from the extraction state in
    /// --output). With --frame and --rect: add the face inside that rectangle.
    #[arg(long)]
    pub manual_fix: bool,
    /// With --manual-fix: the frame (file name in --input) to fix [default: none: list the
    /// frames that need a fix].
    #[arg(long, requires = "manual_fix")]
    pub frame: Option<String>,
    /// With --manual-fix --frame: the face's rectangle in frame pixels, "left,top,right,bottom"
    /// [default: none].
    #[arg(long, requires = "frame", value_parser = parse_rect)]
    pub rect: Option<[f32; 4]>,
}

fn parse_face_type(s: &str) -> Result<FaceType, String> {
    s.replace('-', "_")
        .parse::<FaceType>()
        .map_err(|e| e.to_string())
}

fn parse_rect(s: &str) -> Result<[f32; 4], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<f32>()
                .map_err(|_| format!("'{t}' is not a number"))
        })
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [l, t, r, b] if r > l && b > t && v.iter().all(|x| x.is_finite()) => Ok([*l, *t, *r, *b]),
        _ => Err("expected left,top,right,bottom with right > left and bottom > top".into()),
    }
}

/// Runs `dfl extract` (or its `--manual-fix` pieces) and prints the summary.
pub fn run(args: ExtractArgs, ui: &Ui) -> Result<()> {
    let mut opts = ExtractOptions::new(args.face_type);
    if let Some(s) = args.size {
        opts.image_size = s as usize;
    }
    opts.jpeg_quality = args.jpeg_quality;
    opts.max_faces = args.max_faces;
    opts.debug = args.debug;
    opts.track = args.track;
    opts.detect_every = args.detect_every;
    opts.shard = args.shard;
    opts.overwrite = args.overwrite;
    opts.small_faces = args.small_faces;

    if args.manual_fix && args.frame.is_none() {
        let frames = frames_without_faces(&args.output)?;
        if frames.is_empty() {
            println!(
                "no frame without a face recorded in {}",
                args.output.display()
            );
        }
        for f in frames {
            println!("{f}");
        }
        return Ok(());
    }
    let device = args.device.device().context("opening the --device")?;
    let models = Models::bundled(&device).context("loading the bundled face-api weights")?;
    if let Some(frame) = &args.frame {
        let Some(rect) = args.rect else {
            bail!("--manual-fix --frame needs --rect left,top,right,bottom");
        };
        let name = add_manual_face(&models, &args.input, frame, rect, &args.output, &opts)?;
        println!("wrote {}", args.output.join(name).display());
        return Ok(());
    }

    let bars = ui.progress();
    let t = std::time::Instant::now();
    let report = extract(&models, &args.input, &args.output, &opts, &bars)
        .with_context(|| format!("extracting {}", args.input.display()))?;
    let secs = t.elapsed().as_secs_f64();
    println!("Images found:        {}", report.images_found);
    if report.frames_resumed > 0 {
        println!("Already done:        {} (resumed)", report.frames_resumed);
    }
    println!(
        "Frames processed:    {} ({:.1} frames/s)",
        report.frames_processed,
        report.frames_processed as f64 / secs.max(1e-9)
    );
    println!("Faces detected:      {}", report.faces_written);
    if args.debug {
        println!("Debug pictures in:   {}", debug_dir(&args.output).display());
    }
    if !report.no_face.is_empty() {
        println!(
            "No face in {} frame(s) (fix with `dfl extract --manual-fix --input {} --output {}`):",
            report.no_face.len(),
            args.input.display(),
            args.output.display()
        );
        for f in &report.no_face {
            println!("  {f}");
        }
    }
    if !report.not_images.is_empty() {
        println!(
            "Skipped {} file(s) that are not images:",
            report.not_images.len()
        );
        for f in &report.not_images {
            println!("  {f}");
        }
    }
    if !report.unreadable.is_empty() {
        println!("Could not use {} image(s):", report.unreadable.len());
        for f in &report.unreadable {
            println!("  {f}");
        }
    }
    Ok(())
}
