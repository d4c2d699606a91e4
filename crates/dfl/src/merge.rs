//! `dfl merge`: DFL step 7 "merge SAEHD / Quick96" without the interactive window: the face
//! the model learned goes back into every dst frame, with one merger config for all frames
//! (or per-frame configs from the output folder's `merger_session.json`).

use crate::progress::Ui;
use anyhow::{Context, Result};
use clap::Args;
use dfl_core::Shard;
use dfl_merge::session::SESSION_FILE;
use dfl_merge::{MergeModel, MergeOptions, MergerConfig, XSegMasker, find_xseg};
use dfl_nn::DeviceSpec;
use std::path::PathBuf;

/// Options of `dfl merge`.
#[derive(Args, Debug)]
#[command(after_help = "\
Merger config (TOML, every key optional; unknown keys and out-of-range values are refused;
modes may also be given as DFL's numbers):
  mode = \"overlay\"                 original | overlay | hist-match | seamless |
                                   seamless-hist-match | raw-rgb | raw-predict
  mask_mode = \"learned-prd*learned-dst\"   dst | learned-prd | learned-dst |
                                   learned-prd*learned-dst | learned-prd+learned-dst |
                                   XSeg-prd | XSeg-dst | XSeg-prd*XSeg-dst |
                                   learned-prd*learned-dst*XSeg-prd*XSeg-dst | full
  color_transfer_mode = \"rct\"      none | rct | lct | mkl | mkl-m | idt | idt-m | sot-m | mix-m
  masked_hist_match = true         hist_match_threshold = 238        (0..=255)
  erode_mask_modifier = 0 (-400..=400)   blur_mask_modifier = 0 (0..=400)
  motion_blur_power = 0 (0..=100)        output_face_scale = 0 (-50..=50)
  sharpen_mode = \"none\" (none | box | gaussian)   blursharpen_amount = 0 (-100..=100)
  image_denoise_power = 0 (0..=500)      bicubic_degrade_power = 0 (0..=100)
  color_degrade_power = 0 (0..=100)
  super_resolution_power = 0       must stay 0: DFL's super resolution needs its pretrained
                                   FaceEnhancer weights, which cannot ship with dfl-rs; it is
                                   not faked with a sharpen.
The XSeg mask modes need a trained XSeg model in <model>/xseg/ and are refused without one.
Every output folder gets provenance.json (model, iteration, inputs, config, time) stating that
the frames contain synthetic faces; `dfl video build` carries it into the video.")]
pub struct MergeArgs {
    /// The model folder `dfl train` wrote (or the folder above it when it holds one model).
    #[arg(long)]
    pub model: PathBuf,
    /// The dst frames folder, e.g. data_dst.
    #[arg(long)]
    pub input: PathBuf,
    /// The dst aligned faces (jpg files or faceset.pak), e.g. data_dst/aligned.
    #[arg(long)]
    pub aligned: PathBuf,
    /// Folder for the merged PNG frames (created if missing), e.g. data_dst/merged.
    #[arg(long)]
    pub output: PathBuf,
    /// Also write the merge mask of every frame (PNG) into this folder, e.g.
    /// data_dst/merged_mask [default: no masks].
    #[arg(long)]
    pub mask_output: Option<PathBuf>,
    /// Merger config (TOML, see below) for every frame without its own entry in
    /// <output>/merger_session.json [default: the session's default if it has one, else
    /// DFL's merger defaults: overlay, learned-prd*learned-dst, rct].
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Process only share i of n of the frames (interleaved), e.g. 0/4. Shards can write to
    /// the same output folder.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Where the networks run: cpu, or a GPU this build supports (vulkan: the best adapter;
    /// vulkan:N, cuda:N, ...).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Faces per network call.
    #[arg(long, default_value_t = dfl_merge::DEFAULT_BATCH as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
}

/// Reads and checks a config file: syntax errors and out-of-range values are refused with
/// the file name (a merge config is written once and reused, so a typo must not be guessed).
fn read_config(path: &PathBuf) -> Result<MergerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    let cfg = MergerConfig::from_toml(&text)
        .with_context(|| format!("config {} is not valid", path.display()))?;
    cfg.validate()
        .with_context(|| format!("config {} is refused", path.display()))?;
    Ok(cfg)
}

/// Runs `dfl merge` and prints the summary.
pub fn run(args: MergeArgs, ui: &Ui) -> Result<()> {
    let config = args
        .config
        .as_ref()
        .map(|p| read_config(p).map(|c| (c, p.display().to_string())))
        .transpose()?;
    let model = MergeModel::open(&args.model, args.device)
        .with_context(|| "cannot load the model for merging".to_string())?;
    let xseg = match find_xseg(&model.info().path) {
        Some(dir) => Some(XSegMasker::open(&dir, args.device)?),
        None => None,
    };
    let opts = MergeOptions {
        input: args.input.clone(),
        aligned: args.aligned.clone(),
        output: args.output.clone(),
        mask_output: args.mask_output.clone(),
        config,
        shard: args.shard,
        batch: args.batch as usize,
    };
    let info = model.info();
    println!(
        "Model:               {} {} {}px, iteration {} ({})",
        info.class,
        info.archi,
        info.resolution,
        info.iteration,
        info.path.display()
    );
    let bars = ui.progress();
    let t = std::time::Instant::now();
    let report = dfl_merge::merge_folder(&model, xseg.as_ref(), &opts, &bars)
        .with_context(|| format!("merging {}", args.input.display()))?;
    let secs = t.elapsed().as_secs_f64();
    let c = &report.counts;
    println!(
        "Frames:              {} ({} in this shard)",
        c.frames, c.in_shard
    );
    if c.resumed > 0 {
        println!("Already merged:      {} (same config and model)", c.resumed);
    }
    println!(
        "Merged:              {} frames, {} faces ({:.1} frames/s)",
        c.merged,
        c.faces,
        (c.merged + c.copied) as f64 / secs.max(1e-9)
    );
    println!("Copied (no face):    {}", c.copied);
    if report.multi_face_frames > 0 {
        println!("Frames with 2+ faces: {}", report.multi_face_frames);
    }
    if report.frames_with_own_config > 0 {
        println!(
            "Own config:          {} frames (from {})",
            report.frames_with_own_config,
            args.output.join(SESSION_FILE).display()
        );
    }
    if !report.ignored_aligned.is_empty() {
        println!(
            "Ignored {} aligned file(s) without a source frame name:",
            report.ignored_aligned.len()
        );
        for f in &report.ignored_aligned {
            println!("  {f}");
        }
    }
    println!("Merged frames in:    {}", args.output.display());
    if let Some(m) = &args.mask_output {
        println!("Masks in:            {}", m.display());
    }
    println!("Provenance:          {}", report.manifest.display());
    Ok(())
}
