//! Bench group `nn`: one SAEHD training step (forward + loss + backward + AdaBelief update) for
//! DF-UD and LIAE-UD at 96 and 128 px, batch 4 and 8, next to the PyTorch reference
//! (`tools/reference/nn_reference.py bench`) timed in the same run with the same thread
//! count; plus the phase breakdown (forward+loss, backward, update) of one configuration,
//! merge-time prediction throughput and checkpoint save/load times (no reference).
//!
//! Each figure is the fastest of 3 steps after a warm-up step, on both sides.
//! The reference needs a Python with torch: `DFL_TORCH_PYTHON` (default `python3`). Without
//! it the group still prints our figures. `DFL_NN_THREADS` sets the thread count (default 2).
//! `dfl bench nn --device cuda:0` runs both sides on the GPU (the reference with
//! `--device cuda`); the phase breakdown is then left out, as GPU phases run asynchronously.

use super::{Better, Ctx, Figure, median_time};
use crate::progress::Ui;
use anyhow::{Context, Result};
use dfl_nn::options::SaehdOptions;
use dfl_nn::{CheckpointDir, DeviceSpec, Saehd, StepTimings};
use serde::Deserialize;
use std::path::PathBuf;
use std::process::Command;

/// What the reference script prints.
#[derive(Debug, Deserialize)]
struct TorchTiming {
    ms: f64,
    forward_ms: f64,
    backward_ms: f64,
    update_ms: f64,
    torch: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/reference/nn_reference.py")
}

fn python() -> String {
    std::env::var("DFL_TORCH_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// PyTorch's name for the device the reference runs on when ours runs on `spec`.
fn torch_device(spec: DeviceSpec) -> &'static str {
    match spec {
        DeviceSpec::Cpu => "cpu",
        DeviceSpec::Metal => "mps",
        // PyTorch's ROCm builds call AMD GPUs "cuda" too, and PyTorch has no Vulkan backend:
        // Vulkan/wgpu runs are compared with the same GPU through PyTorch's CUDA (or ROCm)
        // build; where the Python has neither, the script fails and the figure has no
        // reference.
        DeviceSpec::Cuda(_) | DeviceSpec::Rocm(_) | DeviceSpec::Vulkan(_) | DeviceSpec::Wgpu(_) => {
            "cuda"
        }
    }
}

fn torch_step(
    spec: DeviceSpec,
    archi: &str,
    res: usize,
    batch: usize,
    threads: usize,
    steps: usize,
) -> Option<TorchTiming> {
    let out = Command::new(python())
        .arg(script())
        .args(["bench", "--archi", archi])
        .args(["--resolution", &res.to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--steps", &steps.to_string()])
        .args(["--device", torch_device(spec)])
        .output()
        .ok()?;
    if !out.status.success() {
        tracing::warn!(
            "PyTorch reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last()?).ok()
}

/// The fastest of the runs: on a shared machine the figure least disturbed by other load
/// (the reference script reports its minimum too).
fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::NAN, f64::min)
}

/// Fastest step time and fastest phase times of our SAEHD step on `spec`.
fn our_step(
    spec: DeviceSpec,
    archi: &str,
    res: usize,
    batch: usize,
    steps: usize,
) -> Result<(f64, StepTimings)> {
    let options = SaehdOptions {
        archi: archi.parse()?,
        resolution: res,
        gan_patch_size: res / 8,
        batch_size: batch,
        ..SaehdOptions::default()
    };
    let mut model = Saehd::new(options, spec, 0)?;
    let data = dfl_nn::synthetic::batch(batch, res, 1, &burn::tensor::Device::flex());
    model.train_step(&data)?;
    let mut totals = Vec::new();
    let mut phases = Vec::new();
    for _ in 0..steps.max(1) {
        let t = std::time::Instant::now();
        let l = model.train_step(&data)?;
        totals.push(t.elapsed().as_secs_f64() * 1000.0);
        phases.push(l.timings);
    }
    let pick = |f: fn(&StepTimings) -> f64| best(phases.iter().map(f).collect());
    Ok((
        best(totals),
        StepTimings {
            forward_ms: pick(|t| t.forward_ms),
            backward_ms: pick(|t| t.backward_ms),
            update_ms: pick(|t| t.update_ms),
            discriminators_ms: pick(|t| t.discriminators_ms),
        },
    ))
}

pub fn run(ctx: &Ctx, ui: &Ui) -> Result<Vec<Figure>> {
    let threads: usize = std::env::var("DFL_NN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot build the thread pool")?;
    let steps = if ctx.quick { 1 } else { 3 };
    let configs: Vec<(&str, usize, usize)> = if ctx.quick {
        vec![("df-ud", 96, 4)]
    } else {
        let mut v = Vec::new();
        for archi in ["df-ud", "liae-ud"] {
            for res in [96, 128] {
                for batch in [4, 8] {
                    v.push((archi, res, batch));
                }
            }
        }
        v
    };
    // On a GPU the thread count only drives the host side.
    let (where_, torch_where) = if ctx.device.is_host() {
        (format!("{threads} thr"), format!("{threads} thr"))
    } else {
        (ctx.device.to_string(), torch_device(ctx.device).to_string())
    };
    let progress = ui.progress();
    dfl_core::Progress::start(&progress, "nn train steps", Some(configs.len() as u64));
    let mut figures = Vec::new();
    for (i, &(archi, res, batch)) in configs.iter().enumerate() {
        let (ms, phases) = pool.install(|| our_step(ctx.device, archi, res, batch, steps))?;
        let torch = torch_step(ctx.device, archi, res, batch, threads, steps);
        let reference = torch
            .as_ref()
            .map(|t| (format!("PyTorch {} ({torch_where})", t.torch), t.ms));
        figures.push(Figure {
            name: format!("SAEHD {archi} {res}px batch {batch} train step ({where_})"),
            unit: "ms",
            ours: ms,
            better: Better::Lower,
            goal: reference.as_ref().map(|_| 1.0),
            reference,
        });
        // Phase breakdown for the first configuration (host only: on a GPU the phases are
        // queued asynchronously, so their wall times say nothing).
        if i == 0 && ctx.device.is_host() {
            let phase_list: [(&str, f64, Option<f64>); 3] = [
                (
                    "forward+loss",
                    phases.forward_ms,
                    torch.as_ref().map(|t| t.forward_ms),
                ),
                (
                    "backward",
                    phases.backward_ms,
                    torch.as_ref().map(|t| t.backward_ms),
                ),
                (
                    "optimizer update",
                    phases.update_ms,
                    torch.as_ref().map(|t| t.update_ms),
                ),
            ];
            for (name, ours, theirs) in phase_list {
                figures.push(Figure {
                    name: format!("  {archi} {res}px b{batch}: {name}"),
                    unit: "ms",
                    ours,
                    better: Better::Lower,
                    reference: theirs.map(|v| ("PyTorch".to_string(), v)),
                    goal: None,
                });
            }
        }
        dfl_core::Progress::inc(&progress, 1);
    }
    dfl_core::Progress::finish(&progress);
    let (archi, res) = configs
        .last()
        .map(|c| (c.0, c.1))
        .unwrap_or(("liae-ud", 128));
    figures.extend(pool.install(|| predict_and_checkpoint(ctx, archi, res))?);
    Ok(figures)
}

/// Merge-time prediction throughput (batch 8) and checkpoint save/load of a fresh model.
fn predict_and_checkpoint(ctx: &Ctx, archi: &str, res: usize) -> Result<Vec<Figure>> {
    let options = SaehdOptions {
        archi: archi.parse()?,
        resolution: res,
        gan_patch_size: res / 8,
        ..SaehdOptions::default()
    };
    let model = Saehd::new(options.clone(), ctx.device, 0)?;
    let faces = dfl_nn::synthetic::batch(8, res, 2, &burn::tensor::Device::flex()).target_dst;
    let runs = if ctx.quick { 1 } else { 3 };
    let t = median_time(runs, || {
        let (face, _, _) = model.predict(faces.clone(), dfl_nn::LearnedMasks::ALL)?;
        let _: f32 = face.slice([0..1, 0..1, 0..1, 0..1]).into_scalar();
        Ok(())
    })?;
    let dir = CheckpointDir::new(ctx.scratch.join("nn-checkpoint"), 0);
    let save = median_time(runs, || {
        model.save(&dir)?;
        Ok(())
    })?;
    let load = median_time(runs, || {
        Saehd::load(&dir, ctx.device, Some(&options))?;
        Ok(())
    })?;
    let size: u64 = dir
        .complete_generations()?
        .first()
        .and_then(|g| std::fs::read_dir(g).ok())
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let mb = size as f64 / 1e6;
    let plain = |name: String, unit: &'static str, ours: f64, better: Better| Figure {
        name,
        unit,
        ours,
        better,
        reference: None,
        goal: None,
    };
    Ok(vec![
        plain(
            format!(
                "SAEHD {archi} {res}px predict (merge), batch 8, {}",
                ctx.device
            ),
            "faces/s",
            8.0 / t.as_secs_f64(),
            Better::Higher,
        ),
        plain(
            format!("SAEHD {archi} {res}px checkpoint save ({mb:.0} MB, fsync)"),
            "ms",
            save.as_secs_f64() * 1000.0,
            Better::Lower,
        ),
        plain(
            format!("SAEHD {archi} {res}px checkpoint load"),
            "ms",
            load.as_secs_f64() * 1000.0,
            Better::Lower,
        ),
    ])
}
