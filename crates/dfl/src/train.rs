//! `dfl train saehd|quick96` (DFL step 6): every SAEHD option as a flag or from a TOML file,
//! non-interactive, saves on Ctrl-C/SIGTERM. A thin layer over [`dfl_train::train`].

use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use dfl_nn::DeviceSpec;
use dfl_nn::archs::Archi;
use dfl_nn::options::{CtMode, FaceType, LrDropout};
use dfl_train::{
    ModelKind, OnNan, OptionOverrides, Phase, StopReason, TrainEvent, TrainObserver, TrainRequest,
};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `dfl train` subcommands.
#[derive(Subcommand, Debug)]
pub enum TrainCmd {
    /// Train a SAEHD model (every DFL option as a flag; see `--config`).
    Saehd(Box<SaehdArgs>),
    /// Train a Quick96 model (DFL's fixed 96 px full-face settings).
    Quick96(Quick96Args),
}

/// Options every trainer takes.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// The model folder (created with a new model if it holds none).
    #[arg(long)]
    pub model: PathBuf,
    /// src aligned faces (folder or folder with faceset.pak) [default: none; required unless
    /// pretraining].
    #[arg(long)]
    pub src: Option<PathBuf>,
    /// dst aligned faces (folder or folder with faceset.pak) [default: none; required unless
    /// pretraining].
    #[arg(long)]
    pub dst: Option<PathBuf>,
    /// Stop at this iteration, then save (0 = never) [default: stored value, else 0].
    #[arg(long)]
    pub target_iter: Option<u64>,
    /// Back up the model every N hours into rotating autobackups/01..24 (0 = off)
    /// [default: stored value, else 0].
    #[arg(long)]
    pub autobackup_hour: Option<u32>,
    /// Keep a preview image every 10*max(1, R/64) iterations in history/ (true/false)
    /// [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub write_preview_history: Option<bool>,
    /// Save every N minutes (DFL: 25); 0 saves after every iteration.
    #[arg(long, default_value_t = 25.0)]
    pub save_every: f64,
    /// Stop after N iterations in this run (besides --target-iter) [default: no limit].
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Also write the preview PNGs every N iterations (0 = at saves only; creating the file
    /// `preview.request` in the model folder asks for one at any time).
    #[arg(long, default_value_t = 0)]
    pub preview_every: u64,
    /// Where the nets run: cpu, or a GPU this build supports (vulkan: the best adapter;
    /// vulkan:N, cuda:N, ...).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Seed of a new model's weights and of the sample augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Data worker threads [default: half the cores, 1..8].
    #[arg(long)]
    pub workers: Option<usize>,
    /// On a NaN/inf loss: `reload` the last good save, or `lower-lr` (reload and halve the
    /// learning rate).
    #[arg(long, default_value = "reload", value_parser = parse_on_nan)]
    pub on_nan: OnNan,
}

/// Options of `dfl train quick96`.
#[derive(Args, Debug)]
pub struct Quick96Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options of `dfl train saehd`: DFL's SAEHD options with their DFL names in kebab case.
/// Unset flags keep the stored value (existing model) or DFL's default (new model).
#[derive(Args, Debug)]
pub struct SaehdArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// TOML file of options with DFL's names (e.g. `random_warp = false`); flags win over it.
    /// The model folder's options.toml has this form [default: none].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Apply a phase of the expert recipe: warp, lrd, adjust or gan (printed when applied;
    /// --config and flags win over it) [default: none].
    #[arg(long)]
    pub phase: Option<Phase>,
    /// Pretrain on these faces (both sides) with `--pretrain true` [default: none].
    #[arg(long)]
    pub pretrain_faceset: Option<PathBuf>,
    /// Samples per side per iteration [default: stored value, else 8].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Face resolution, 64..640, multiple of 16 (32 with -d); new models only [default: 128].
    #[arg(long)]
    pub resolution: Option<usize>,
    /// Face type h, mf, f, wf or head; new models only [default: f].
    #[arg(long, value_parser = parse_serde::<FaceType>)]
    pub face_type: Option<FaceType>,
    /// Architecture df or liae, optionally with -u, -d, -t, -c; new models only
    /// [default: liae-ud].
    #[arg(long)]
    pub archi: Option<Archi>,
    /// Autoencoder dims, 32..1024; new models only [default: 256].
    #[arg(long)]
    pub ae_dims: Option<usize>,
    /// Encoder dims, 16..256; new models only [default: 64].
    #[arg(long)]
    pub e_dims: Option<usize>,
    /// Decoder dims, 16..256; new models only [default: 64].
    #[arg(long)]
    pub d_dims: Option<usize>,
    /// Decoder mask dims, 16..256; new models only [default: d_dims/3 rounded up to even].
    #[arg(long)]
    pub d_mask_dims: Option<usize>,
    /// Randomly flip src faces (true/false) [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub random_src_flip: Option<bool>,
    /// Randomly flip dst faces (true/false) [default: stored value, else true].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub random_dst_flip: Option<bool>,
    /// Loss only inside the face mask (wf/head; always on for h/mf/f) [default: true].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub masked_training: Option<bool>,
    /// Eyes and mouth priority [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub eyes_mouth_prio: Option<bool>,
    /// Sample yaw angles uniformly [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub uniform_yaw: Option<bool>,
    /// Blur the background near the mask edge [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub blur_out_mask: Option<bool>,
    /// Keep weights and optimizer on the GPU (kept for DFL compatibility)
    /// [default: stored value, else true].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub models_opt_on_gpu: Option<bool>,
    /// AdaBelief optimizer (false: RMSprop) [default: stored value, else true].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub adabelief: Option<bool>,
    /// Learning-rate dropout: n, y or cpu [default: stored value, else n].
    #[arg(long, value_parser = parse_serde::<LrDropout>)]
    pub lr_dropout: Option<LrDropout>,
    /// Random grid warp of the samples [default: stored value, else true].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub random_warp: Option<bool>,
    /// Random HSV shift power of src samples, 0..0.3 [default: stored value, else 0].
    #[arg(long)]
    pub random_hsv_power: Option<f32>,
    /// GAN power, 0..5 (0 = off) [default: stored value, else 0].
    #[arg(long)]
    pub gan_power: Option<f32>,
    /// GAN patch size, 3..640 [default: stored value, else resolution/8].
    #[arg(long)]
    pub gan_patch_size: Option<usize>,
    /// GAN discriminator dims, 4..512 [default: stored value, else 16].
    #[arg(long)]
    pub gan_dims: Option<usize>,
    /// True-face power, 0..1 (df archis) [default: stored value, else 0].
    #[arg(long)]
    pub true_face_power: Option<f32>,
    /// Face style power, 0..100 [default: stored value, else 0].
    #[arg(long)]
    pub face_style_power: Option<f32>,
    /// Background style power, 0..100 [default: stored value, else 0].
    #[arg(long)]
    pub bg_style_power: Option<f32>,
    /// Colour transfer of src samples: none, rct, lct, mkl, idt or sot
    /// [default: stored value, else none].
    #[arg(long, value_parser = parse_serde::<CtMode>)]
    pub ct_mode: Option<CtMode>,
    /// Gradient clipping [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub clipgrad: Option<bool>,
    /// Pretraining mode on --pretrain-faceset; switching it off restarts the iteration count
    /// like DFL [default: stored value, else false].
    #[arg(long, value_parser = parse_bool, value_name = "BOOL")]
    pub pretrain: Option<bool>,
}

/// `y/n`, `yes/no`, `true/false`, `on/off`, `1/0` (DFL's prompts take y/n).
fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "on" | "1" => Ok(true),
        "n" | "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("'{s}' is not a yes/no value (use true or false)")),
    }
}

fn parse_on_nan(s: &str) -> std::result::Result<OnNan, String> {
    match s {
        "reload" => Ok(OnNan::Reload),
        "lower-lr" => Ok(OnNan::LowerLr),
        _ => Err(format!("'{s}' is not reload or lower-lr")),
    }
}

/// Parses a value by its DFL name (the serde name used in options.toml).
fn parse_serde<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase()))
        .map_err(|e| e.to_string())
}

impl SaehdArgs {
    /// The options given as flags.
    fn overrides(&self) -> OptionOverrides {
        let c = &self.common;
        OptionOverrides {
            autobackup_hour: c.autobackup_hour,
            write_preview_history: c.write_preview_history,
            target_iter: c.target_iter,
            random_src_flip: self.random_src_flip,
            random_dst_flip: self.random_dst_flip,
            batch_size: self.batch_size,
            resolution: self.resolution,
            face_type: self.face_type,
            archi: self.archi,
            ae_dims: self.ae_dims,
            e_dims: self.e_dims,
            d_dims: self.d_dims,
            d_mask_dims: self.d_mask_dims,
            masked_training: self.masked_training,
            eyes_mouth_prio: self.eyes_mouth_prio,
            uniform_yaw: self.uniform_yaw,
            blur_out_mask: self.blur_out_mask,
            models_opt_on_gpu: self.models_opt_on_gpu,
            adabelief: self.adabelief,
            lr_dropout: self.lr_dropout,
            random_warp: self.random_warp,
            random_hsv_power: self.random_hsv_power,
            gan_power: self.gan_power,
            gan_patch_size: self.gan_patch_size,
            gan_dims: self.gan_dims,
            true_face_power: self.true_face_power,
            face_style_power: self.face_style_power,
            bg_style_power: self.bg_style_power,
            ct_mode: self.ct_mode,
            clipgrad: self.clipgrad,
            pretrain: self.pretrain,
        }
    }
}

/// Runs `dfl train …`.
pub fn run(cmd: TrainCmd, ui: &Ui) -> Result<()> {
    let launched = Instant::now();
    let (kind, common, overrides, phase, pretrain) = match cmd {
        TrainCmd::Saehd(a) => {
            let a = *a;
            let flags = a.overrides();
            let overrides = match &a.config {
                Some(p) => OptionOverrides::from_toml_file(p)?.then(&flags),
                None => flags,
            };
            (
                ModelKind::Saehd,
                a.common,
                overrides,
                a.phase,
                a.pretrain_faceset,
            )
        }
        TrainCmd::Quick96(a) => {
            let c = &a.common;
            let overrides = OptionOverrides {
                target_iter: c.target_iter,
                autobackup_hour: c.autobackup_hour,
                write_preview_history: c.write_preview_history,
                ..OptionOverrides::default()
            };
            (ModelKind::Quick96, a.common, overrides, None, None)
        }
    };
    if !(common.save_every.is_finite() && common.save_every >= 0.0) {
        bail!("--save-every must be a number of minutes ≥ 0");
    }
    let mut req = TrainRequest::new(kind, &common.model);
    req.src = common.src;
    req.dst = common.dst;
    req.pretrain_faceset = pretrain;
    req.overrides = overrides;
    req.phase = phase;
    req.device = common.device;
    req.seed = common.seed;
    req.save_interval = Duration::from_secs_f64(common.save_every * 60.0);
    req.preview_every = common.preview_every;
    req.iterations = common.iterations;
    if let Some(w) = common.workers {
        req.workers = w.max(1);
    }
    req.on_nan = common.on_nan;
    req.launched = launched;

    // Ctrl-C / SIGTERM ask for a save and a clean stop; a second Ctrl-C exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }

    let obs = Console::new(ui.quiet);
    let bars = ui.progress();
    let report = dfl_train::train(&req, &obs, &bars, &stop)
        .with_context(|| format!("training {}", common.model.display()))?;
    if !ui.quiet {
        println!(
            "{} iterations in this run, {:.0} ms/iteration, data wait {:.0} ms in all \
             (longest {:.0} ms), training started {:.1} s and first iteration done {:.1} s \
             after launch",
            report.iterations_run,
            report.mean_ms,
            report.data_wait_ms,
            report.data_wait_max_ms,
            report.to_first_batch_s,
            report.to_first_step_s
        );
    }
    // Stopped by a signal after saving is not a failure.
    Ok(())
}

/// `HH:MM:SS` of now (UTC), for DFL's console line.
fn clock() -> String {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Prints the trainer's events like DFL's console (`[time][#iter][ms][src][dst]`).
struct Console {
    quiet: bool,
    /// Without a terminal (no bar), an iteration line at most this often.
    log_every: Option<Duration>,
    last_line: Mutex<Instant>,
}

impl Console {
    fn new(quiet: bool) -> Self {
        Console {
            quiet,
            log_every: (!std::io::stderr().is_terminal()).then(|| Duration::from_secs(10)),
            last_line: Mutex::new(Instant::now()),
        }
    }
}

impl TrainObserver for Console {
    fn event(&self, e: &TrainEvent<'_>) {
        match e {
            TrainEvent::Warning(w) => tracing::warn!("{w}"),
            TrainEvent::NanRecovered {
                iteration,
                losses,
                reloaded,
                lr_scale,
            } => tracing::warn!(
                "iteration {iteration}: loss is not finite (src {}, dst {}); reloaded the save \
                 of iteration {reloaded} (learning rate x{lr_scale})",
                losses.0,
                losses.1
            ),
            _ if self.quiet => {}
            TrainEvent::Started {
                created,
                kind,
                iteration,
                options,
                faces,
                device,
                workers,
            } => {
                let what = if *created { "new" } else { "loaded" };
                println!(
                    "{what} {} model at iteration {iteration} on {device}: {} res {} {} \
                     ae {} e {} d {} mask {}, batch {}; {} src / {} dst faces, {workers} data \
                     workers",
                    kind.class_name(),
                    options.archi,
                    options.resolution,
                    parse_name(&options.face_type),
                    options.ae_dims,
                    options.e_dims,
                    options.d_dims,
                    options.d_mask_dims,
                    options.batch_size,
                    faces.0,
                    faces.1
                );
            }
            TrainEvent::OptionsChanged {
                iteration,
                phase,
                changes,
            } => {
                if let Some(p) = phase {
                    let set = p.overrides();
                    let mut o = dfl_nn::options::SaehdOptions::default();
                    set.apply_to(&mut o);
                    let v = serde_json::to_value(&o).unwrap_or_default();
                    let shown: Vec<String> = set
                        .names()
                        .iter()
                        .map(|n| format!("{n}={}", v.get(*n).map_or(String::new(), show_value)))
                        .collect();
                    println!("phase {}: {}", p.name(), shown.join(" "));
                }
                for c in changes.iter() {
                    println!("iteration {iteration}: {} {} -> {}", c.option, c.from, c.to);
                }
            }
            TrainEvent::Backup { path, reason } => {
                println!("backup ({reason}): {}", path.display());
            }
            TrainEvent::Iteration {
                iteration,
                ms,
                src,
                dst,
                ..
            } => {
                let Some(every) = self.log_every else {
                    return;
                };
                if let Ok(mut last) = self.last_line.lock()
                    && last.elapsed() >= every
                {
                    *last = Instant::now();
                    println!(
                        "[{}][#{iteration:06}][{ms:04.0}ms][{src:.4}][{dst:.4}]",
                        clock()
                    );
                }
            }
            TrainEvent::Saved {
                iteration,
                mean,
                path,
            } => match mean {
                Some((s, d, ms)) => println!(
                    "[{}][#{iteration:06}][{ms:04.0}ms][{s:.4}][{d:.4}] saved {}",
                    clock(),
                    path.display()
                ),
                None => println!("[{}][#{iteration:06}] saved {}", clock(), path.display()),
            },
            TrainEvent::Stopped { reason, iteration } => {
                let why = match reason {
                    StopReason::TargetReached => "target iteration reached",
                    StopReason::IterationsDone => "iterations of this run done",
                    StopReason::Interrupted => "stopped on request",
                };
                println!("{why} at iteration {iteration}; model saved");
            }
        }
    }
}

/// A serde value as a plain word (strings without quotes).
fn show_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// DFL's short name of a serialisable value (`f`, `wf`…).
fn parse_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .map(|v| show_value(&v))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_by_dfl_names() {
        assert_eq!(parse_bool("Y"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_serde::<FaceType>("WF"), Ok(FaceType::WholeFace));
        assert_eq!(parse_serde::<CtMode>("rct"), Ok(CtMode::Rct));
        assert!(parse_serde::<LrDropout>("z").is_err());
        assert_eq!(parse_name(&FaceType::Head), "head");
    }
}
