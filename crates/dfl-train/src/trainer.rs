//! The trainer loop (`main.py train`, §6.4): load or create the model, apply option changes
//! the way DFL allows, stream batches from the pipeline, and per iteration run the
//! generator step, then the true-face and GAN discriminator steps (inside
//! [`dfl_nn::Saehd::train_step`], in DFL's order). Around it: saves every N minutes, after the
//! first iteration of a new model, at the target iteration and when asked to stop (Ctrl-C,
//! SIGTERM); previews at every save and on request; preview history; rotating autobackups; a
//! backup before GAN is first switched on; a NaN/inf guard that reloads the last good
//! checkpoint instead of losing the run.
//!
//! Nothing here waits for a key or prints: the front end gets [`TrainEvent`]s and
//! [`dfl_core::Progress`] updates.

use crate::error::{Result, TrainError};
use crate::faceset::Faceset;
use crate::model_dir::{
    self, HISTORY_DIR, LOCK_FILE, LOSS_JSON, LOSS_PNG, Marker, OPTIONS_FILE, PREVIEW_REQUEST,
    PREVIEW_SAMPLES, TrainerState, write_atomic,
};
use crate::options::{OptionChange, OptionOverrides, Phase, changes, to_toml};
use crate::pipeline::{Facesets, HostBatch, Pipeline, PipelineConfig, WaitStats};
use crate::preview::{self, PredRow, PreviewSamples};
use crate::processor::SideSpec;
use crate::warp::WarpRanges;
use dfl_core::Progress;
use dfl_image::{Image, TransferMode};
use dfl_nn::checkpoint::CheckpointDir;
use dfl_nn::options::{CtMode, FaceType as NnFaceType, SaehdOptions};
use dfl_nn::{DeviceSpec, NnError, Quick96, Saehd};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Which model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ModelKind {
    /// SAEHD with every option of §5.2.
    Saehd,
    /// Quick96: fixed settings (§5.3).
    Quick96,
}

impl ModelKind {
    /// The class name in checkpoints and preview names (`SAEHD`, `Quick96`).
    pub fn class_name(self) -> &'static str {
        match self {
            ModelKind::Saehd => "SAEHD",
            ModelKind::Quick96 => "Quick96",
        }
    }

    /// The `dfl train` subcommand.
    pub fn command(self) -> &'static str {
        match self {
            ModelKind::Saehd => "saehd",
            ModelKind::Quick96 => "quick96",
        }
    }
}

/// What to do when a step's loss is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnNan {
    /// Reload the last good checkpoint and go on.
    #[default]
    Reload,
    /// Reload and halve the generator's learning rate (kept in `train.json`).
    LowerLr,
}

/// A training run.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// SAEHD or Quick96.
    pub kind: ModelKind,
    /// The model folder (created if missing).
    pub model_dir: PathBuf,
    /// src aligned faces (not needed in pretrain mode).
    pub src: Option<PathBuf>,
    /// dst aligned faces (not needed in pretrain mode).
    pub dst: Option<PathBuf>,
    /// Pretraining faces (both sides in pretrain mode).
    pub pretrain_faceset: Option<PathBuf>,
    /// Options set by the user (TOML file, then flags).
    pub overrides: OptionOverrides,
    /// A phase preset, applied under `overrides`.
    pub phase: Option<Phase>,
    /// Where the networks run.
    pub device: DeviceSpec,
    /// Seed of a new model's weights and of the sampling.
    pub seed: u64,
    /// Save every this long (DFL: 25 minutes); zero saves after every iteration.
    pub save_interval: Duration,
    /// Also write previews every N iterations (0: at saves and on request only).
    pub preview_every: u64,
    /// Stop after this many iterations in this run (besides `target_iter`).
    pub iterations: Option<u64>,
    /// Data worker threads.
    pub workers: usize,
    /// Batches each worker may prepare ahead.
    pub prefetch: usize,
    /// NaN/inf policy.
    pub on_nan: OnNan,
    /// When the program started (for the time-to-first-iteration figure).
    pub launched: Instant,
}

impl TrainRequest {
    /// A request with the defaults: CPU, DFL's 25-minute saves, workers for half the cores.
    pub fn new(kind: ModelKind, model_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        TrainRequest {
            kind,
            model_dir: model_dir.into(),
            src: None,
            dst: None,
            pretrain_faceset: None,
            overrides: OptionOverrides::default(),
            phase: None,
            device: DeviceSpec::Cpu,
            seed: 0,
            save_interval: Duration::from_secs(25 * 60),
            preview_every: 0,
            iterations: None,
            workers: (cores / 2).clamp(1, 8),
            prefetch: 2,
            on_nan: OnNan::Reload,
            launched: Instant::now(),
        }
    }
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `target_iter` reached.
    TargetReached,
    /// The `iterations` of this run are done.
    IterationsDone,
    /// Stop was requested (Ctrl-C, SIGTERM).
    Interrupted,
}

/// What the trainer reports as it goes.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// The model is ready and the first batch is on its way.
    Started {
        /// A new model was created (else one was loaded).
        created: bool,
        /// SAEHD or Quick96.
        kind: ModelKind,
        /// Iteration the run starts at.
        iteration: u64,
        /// Options in effect.
        options: &'a SaehdOptions,
        /// Usable src and dst faces.
        faces: (usize, usize),
        /// Device name.
        device: String,
        /// Data worker threads.
        workers: usize,
    },
    /// Something the user should know that does not stop training.
    Warning(String),
    /// Options differ from the stored ones (a marker was added to the loss history).
    OptionsChanged {
        /// Iteration of the marker.
        iteration: u64,
        /// Phase preset applied, if any.
        phase: Option<Phase>,
        /// What changed.
        changes: &'a [OptionChange],
    },
    /// A backup was written.
    Backup {
        /// The backup folder.
        path: &'a Path,
        /// Why (`autobackup`, `before GAN`).
        reason: &'static str,
    },
    /// One iteration is done.
    Iteration {
        /// Iteration count after the step.
        iteration: u64,
        /// Wall time of the iteration (waiting for data included).
        ms: f64,
        /// Time of it spent waiting for the batch.
        wait_ms: f64,
        /// Mean src loss.
        src: f32,
        /// Mean dst loss.
        dst: f32,
    },
    /// A checkpoint was written (with previews and loss files).
    Saved {
        /// Iteration saved.
        iteration: u64,
        /// Mean losses and iteration time since the previous save (DFL's finalised line).
        mean: Option<(f32, f32, f64)>,
        /// The generation folder.
        path: &'a Path,
    },
    /// A non-finite loss was caught and the last good checkpoint reloaded.
    NanRecovered {
        /// Iteration of the bad step.
        iteration: u64,
        /// Its losses.
        losses: (f32, f32),
        /// Iteration of the checkpoint reloaded.
        reloaded: u64,
        /// Learning-rate factor now in effect.
        lr_scale: f32,
    },
    /// Training stopped (after its final save).
    Stopped {
        /// Why.
        reason: StopReason,
        /// Final iteration.
        iteration: u64,
    },
}

/// Receives [`TrainEvent`]s.
pub trait TrainObserver {
    /// Called for every event, on the training thread.
    fn event(&self, e: &TrainEvent<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl TrainObserver for NoObserver {
    fn event(&self, _e: &TrainEvent<'_>) {}
}

/// Figures of a finished run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Final iteration.
    pub iteration: u64,
    /// Iterations run now.
    pub iterations_run: u64,
    /// Why it stopped.
    pub stop: StopReason,
    /// Mean wall time per iteration, ms.
    pub mean_ms: f64,
    /// Total time waiting for batches after the first one, ms.
    pub data_wait_ms: f64,
    /// Longest wait for a batch after the first one, ms.
    pub data_wait_max_ms: f64,
    /// From `launched` to the first batch in hand (training can start), seconds.
    pub to_first_batch_s: f64,
    /// From `launched` to the end of the first iteration, seconds.
    pub to_first_step_s: f64,
    /// NaN/inf steps recovered from in this run.
    pub nan_recoveries: u32,
}

/// Trainer-side settings (SAEHD keeps them in its options; Quick96 has none of its own).
#[derive(Debug, Clone, Copy)]
struct Settings {
    target_iter: u64,
    autobackup_hour: u32,
    write_preview_history: bool,
    batch_size: usize,
}

/// The model being trained.
#[derive(Debug)]
enum Net {
    Saehd(Saehd),
    Quick96(Quick96),
}

impl Net {
    fn s(&self) -> &Saehd {
        match self {
            Net::Saehd(m) => m,
            Net::Quick96(q) => q.as_saehd(),
        }
    }

    fn s_mut(&mut self) -> &mut Saehd {
        match self {
            Net::Saehd(m) => m,
            Net::Quick96(q) => q.as_saehd_mut(),
        }
    }

    fn from_generation(
        kind: ModelKind,
        generation: &Path,
        device: DeviceSpec,
        options: &SaehdOptions,
    ) -> Result<Net> {
        let ckpt = CheckpointDir::load_generation(generation)?;
        Ok(match kind {
            ModelKind::Saehd => Net::Saehd(Saehd::from_loaded(ckpt, device, Some(options))?),
            ModelKind::Quick96 => Net::Quick96(Quick96::from_loaded(ckpt, device)?),
        })
    }

    fn set_lr_scale(&mut self, scale: f32) -> Result<()> {
        if scale != 1.0 {
            let m = self.s_mut();
            let mut cfg = m.optimizer_config();
            cfg.lr *= scale;
            m.override_optimizer(cfg)?;
        }
        Ok(())
    }
}

/// The model face type as dfl-geom names it.
pub fn geom_face_type(t: NnFaceType) -> dfl_geom::FaceType {
    match t {
        NnFaceType::Half => dfl_geom::FaceType::Half,
        NnFaceType::MidFull => dfl_geom::FaceType::MidFull,
        NnFaceType::Full => dfl_geom::FaceType::Full,
        NnFaceType::WholeFace => dfl_geom::FaceType::WholeFace,
        NnFaceType::Head => dfl_geom::FaceType::Head,
    }
}

fn transfer_mode(m: CtMode) -> Option<TransferMode> {
    match m {
        CtMode::None => None,
        CtMode::Rct => Some(TransferMode::Rct),
        CtMode::Lct => Some(TransferMode::Lct),
        CtMode::Mkl => Some(TransferMode::Mkl),
        CtMode::Idt => Some(TransferMode::Idt),
        CtMode::Sot => Some(TransferMode::Sot),
    }
}

/// The sample pipeline of a model with `options` (SAEHD's or Quick96's requests, §5.2/§5.3,
/// with pretrain's forced settings).
pub fn pipeline_config(
    kind: ModelKind,
    o: &SaehdOptions,
    batch_size: usize,
    workers: usize,
    prefetch: usize,
    seed: u64,
) -> PipelineConfig {
    let face_type = geom_face_type(o.face_type);
    match kind {
        ModelKind::Saehd => {
            let pre = o.pretrain;
            let side = |flip: bool| SideSpec {
                resolution: o.resolution,
                face_type,
                random_warp: o.effective_random_warp(),
                random_flip: flip || pre,
                ranges: WarpRanges::SAEHD,
                ct_mode: None,
                hsv_power: 0.0,
                eyes_mouth: o.eyes_mouth_prio,
            };
            PipelineConfig {
                src: SideSpec {
                    ct_mode: if pre { None } else { transfer_mode(o.ct_mode) },
                    hsv_power: if pre { 0.0 } else { o.random_hsv_power },
                    ..side(o.random_src_flip)
                },
                dst: side(o.random_dst_flip),
                src_uniform_yaw: o.uniform_yaw || pre,
                dst_uniform_yaw: o.uniform_yaw || pre,
                batch_size,
                workers,
                prefetch,
                seed,
            }
        }
        ModelKind::Quick96 => {
            let side = SideSpec {
                resolution: o.resolution,
                face_type,
                random_warp: true,
                random_flip: false,
                ranges: WarpRanges::DEFAULT,
                ct_mode: None,
                hsv_power: 0.0,
                eyes_mouth: false,
            };
            PipelineConfig {
                src: side.clone(),
                dst: side,
                src_uniform_yaw: false,
                dst_uniform_yaw: false,
                batch_size,
                workers,
                prefetch,
                seed,
            }
        }
    }
}

impl HostBatch {
    /// The same batch with `warped := target` (Quick96's un-warped reconstruction steps).
    pub fn unwarped(&self) -> HostBatch {
        let mut b = self.clone();
        b.src.warped.clone_from(&b.src.target);
        b.dst.warped.clone_from(&b.dst.target);
        b
    }
}

/// Holds the model folder's lock for the run (released when dropped or when the process
/// dies, so a killed trainer never leaves a stale lock).
#[derive(Debug)]
struct FolderLock {
    _file: fs::File,
}

fn lock_folder(dir: &Path) -> Result<FolderLock> {
    let p = dir.join(LOCK_FILE);
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| TrainError::io(&p, e))?;
    match f.try_lock() {
        Ok(()) => Ok(FolderLock { _file: f }),
        Err(fs::TryLockError::WouldBlock) => Err(TrainError::Refused(format!(
            "{}: another dfl process is training this model",
            dir.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(TrainError::io(&p, e)),
    }
}

/// Options of an existing Quick96 model with the trainer settings a user may give; any
/// model option is refused (Quick96 has fixed settings).
fn quick96_settings(o: &OptionOverrides) -> Result<Settings> {
    let allowed = ["target_iter", "autobackup_hour", "write_preview_history"];
    if let Some(bad) = o.names().into_iter().find(|n| !allowed.contains(n)) {
        return Err(TrainError::option(
            bad,
            "Quick96 has fixed settings (only target_iter, autobackup_hour and \
             write_preview_history can be given)",
        ));
    }
    Ok(Settings {
        target_iter: o.target_iter.unwrap_or(0),
        autobackup_hour: o.autobackup_hour.unwrap_or(0),
        write_preview_history: o.write_preview_history.unwrap_or(false),
        batch_size: dfl_nn::quick96::QUICK96_BATCH,
    })
}

/// Seconds of `d`, as f64 milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How many non-finite steps in a row are retried before giving up.
const MAX_NAN_IN_A_ROW: u32 = 3;

/// A training session: everything the loop carries.
struct Session<'a> {
    req: &'a TrainRequest,
    dir: PathBuf,
    obs: &'a dyn TrainObserver,
    net: Net,
    options: SaehdOptions,
    settings: Settings,
    tstate: TrainerState,
    samples: Option<PreviewSamples>,
    run_start: Instant,
    since_save: (f64, f64, f64, u64),
    dirty: bool,
}

impl Session<'_> {
    fn preview_name(&self) -> &'static str {
        self.req.kind.class_name()
    }

    fn checkpoint_dir(&self) -> CheckpointDir {
        // One previous generation is kept as a fallback for the NaN guard.
        CheckpointDir::new(&self.dir, 1)
    }

    /// Predictions for the preview samples, one row per sample.
    fn predict_rows(&self) -> Result<Vec<PredRow>> {
        let Some(s) = &self.samples else {
            return Ok(Vec::new());
        };
        let r = self.options.resolution;
        let n = s.src.len();
        let dev = self.net.s().device_spec().device()?;
        let stack = |imgs: &[Image]| -> Result<burn::tensor::Tensor<4>> {
            let mut v = Vec::with_capacity(n * 3 * r * r);
            for img in imgs {
                let (w, h, c) = img.shape();
                for ch in 0..c {
                    v.extend((0..w * h).map(|i| img.data()[i * c + ch]));
                }
            }
            Ok(dfl_nn::host::tensor4(v, [n, 3, r, r], &dev)?)
        };
        let out = self.net.s().preview(stack(&s.src)?, stack(&s.dst)?)?;
        let host = |t: burn::tensor::Tensor<4>| dfl_nn::host::values(t);
        let (ss, ssm) = (host(out.src_src.0), host(out.src_src.1));
        let (dd, ddm) = (host(out.dst_dst.0), host(out.dst_dst.1));
        let (sd, sdm) = (host(out.src_dst.0), host(out.src_dst.1));
        (0..n)
            .map(|i| {
                let img = |v: &[f32]| preview::chw_to_image(v, i, 3, r);
                let msk = |v: &[f32]| preview::chw_to_image(v, i, 1, r);
                Ok(PredRow {
                    ss: (img(&ss)?, msk(&ssm)?),
                    dd: (img(&dd)?, msk(&ddm)?),
                    sd: (img(&sd)?, msk(&sdm)?),
                })
            })
            .collect()
    }

    fn render(&self) -> Result<Option<(image::RgbImage, image::RgbImage)>> {
        let Some(s) = &self.samples else {
            return Ok(None);
        };
        let rows = self.predict_rows()?;
        let (plain, masked) =
            preview::compose(s, &rows, self.options.face_type == NnFaceType::Head)?;
        Ok(Some((
            preview::to_rgb8(&plain)?,
            preview::to_rgb8(&masked)?,
        )))
    }

    fn markers(&self) -> Vec<u64> {
        self.tstate.markers.iter().map(|m| m.iteration).collect()
    }

    fn write_previews(&self) -> Result<()> {
        if let Some((plain, masked)) = self.render()? {
            let name = self.preview_name();
            preview::save_png(&self.dir.join(format!("preview_{name}.png")), &plain)?;
            preview::save_png(
                &self.dir.join(format!("preview_{name}_masked.png")),
                &masked,
            )?;
        }
        Ok(())
    }

    fn write_history_preview(&self) -> Result<()> {
        let Some((plain, masked)) = self.render()? else {
            return Ok(());
        };
        let graph_for = |w: u32| {
            preview::loss_graph(
                self.net.s().loss_history(),
                &self.markers(),
                w as usize,
                100,
            )
        };
        let it = self.net.s().iteration();
        for (name, img) in [
            (self.preview_name().to_string(), plain),
            (format!("{} masked", self.preview_name()), masked),
        ] {
            let dir = self.dir.join(HISTORY_DIR).join(&name);
            fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
            let full = preview::stack(&graph_for(img.width()), &img);
            preview::save_jpeg(&dir.join(format!("{it:07}.jpg")), &full)?;
            preview::save_jpeg(&dir.join("_last.jpg"), &full)?;
        }
        Ok(())
    }

    fn write_loss_files(&self) -> Result<()> {
        #[derive(Serialize)]
        struct LossFile<'a> {
            iteration: u64,
            loss_history: &'a [[f32; 2]],
            markers: &'a [Marker],
        }
        let h = self.net.s().loss_history();
        let p = self.dir.join(LOSS_JSON);
        let json = serde_json::to_vec(&LossFile {
            iteration: self.net.s().iteration(),
            loss_history: h,
            markers: &self.tstate.markers,
        })
        .map_err(|e| TrainError::bad_file(&p, e.to_string()))?;
        write_atomic(&p, &json)?;
        preview::save_png(
            &self.dir.join(LOSS_PNG),
            &preview::loss_graph(h, &self.markers(), 800, 200),
        )
    }

    fn write_side_files(&self) -> Result<()> {
        write_atomic(
            &self.dir.join(OPTIONS_FILE),
            to_toml(self.net.s().options()).as_bytes(),
        )?;
        self.tstate.save(&self.dir)
    }

    /// Saves the checkpoint, then the files around it.
    fn save(&mut self) -> Result<()> {
        self.tstate.train_seconds += self.run_start.elapsed().as_secs_f64();
        self.run_start = Instant::now();
        let path = self.net.s().save(&self.checkpoint_dir())?;
        self.write_side_files()?;
        self.write_loss_files()?;
        self.write_previews()?;
        let (s, d, t, n) = self.since_save;
        let mean = (n > 0).then(|| {
            let k = n as f64;
            ((s / k) as f32, (d / k) as f32, t / k)
        });
        self.since_save = (0.0, 0.0, 0.0, 0);
        self.dirty = false;
        self.obs.event(&TrainEvent::Saved {
            iteration: self.net.s().iteration(),
            mean,
            path: &path,
        });
        Ok(())
    }

    /// Reloads the newest usable generation after a non-finite step (`attempt` 1 = the
    /// newest, 2 and more = the one before).
    fn recover(&mut self, attempt: u32) -> Result<u64> {
        let gens = self.checkpoint_dir().complete_generations()?;
        let pick = if attempt >= 2 && gens.len() > 1 { 1 } else { 0 };
        let g = gens.get(pick).ok_or_else(|| {
            TrainError::Refused(format!(
                "{}: the loss became NaN/inf before the first save; nothing to reload \
                 (check the facesets, or try --on-nan lower-lr)",
                self.dir.display()
            ))
        })?;
        self.net = Net::from_generation(self.req.kind, g, self.req.device, &self.options)?;
        if self.req.on_nan == OnNan::LowerLr {
            self.tstate.lr_scale *= 0.5;
        }
        self.net.set_lr_scale(self.tstate.lr_scale)?;
        self.tstate.nan_recoveries += 1;
        self.tstate.save(&self.dir)?;
        Ok(self.net.s().iteration())
    }
}

/// Trains until the target iteration, the run's iteration count, or `stop` is set; saves
/// before returning (also when the data pipeline fails).
pub fn train(
    req: &TrainRequest,
    obs: &dyn TrainObserver,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<TrainReport> {
    let dir = req.model_dir.clone();
    // A GPU that cannot be opened is refused before a new model folder is created.
    req.device.device()?;
    fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    let _lock = lock_folder(&dir)?;
    let stored = model_dir::stored_state(&dir)?;
    let mut tstate = TrainerState::load(&dir)?;
    let overrides = match req.phase {
        Some(p) => p.overrides().then(&req.overrides),
        None => req.overrides.clone(),
    };

    // Options: DFL's defaults for a new model, else the stored ones with the allowed changes.
    let (options, settings, stored_options) = match (&stored, req.kind) {
        (Some(st), kind) => {
            if st.class != kind.class_name() {
                return Err(TrainError::Refused(format!(
                    "{} holds a {} model; train it with `dfl train {}`",
                    dir.display(),
                    st.class,
                    if st.class == "Quick96" {
                        "quick96"
                    } else {
                        "saehd"
                    }
                )));
            }
            let state_path = st.generation.join(dfl_nn::checkpoint::STATE_FILE);
            let stored_opts: SaehdOptions = serde_json::from_value(st.options.clone())
                .map_err(|e| TrainError::bad_file(&state_path, format!("options: {e}")))?;
            match kind {
                ModelKind::Saehd => {
                    let o = overrides.existing_model_options(&stored_opts)?;
                    let s = settings_of(&o);
                    (o, s, Some(stored_opts))
                }
                ModelKind::Quick96 => {
                    let s = quick96_settings(&overrides)?;
                    (stored_opts.clone(), s, Some(stored_opts))
                }
            }
        }
        (None, ModelKind::Saehd) => {
            let o = overrides.new_model_options()?;
            let s = settings_of(&o);
            (o, s, None)
        }
        (None, ModelKind::Quick96) => (Quick96::options(), quick96_settings(&overrides)?, None),
    };
    if req.kind == ModelKind::Quick96 && req.phase.is_some() {
        return Err(TrainError::option(
            "phase",
            "presets are for SAEHD (Quick96 has fixed settings)",
        ));
    }

    let iteration0 = stored.as_ref().map_or(0, |s| s.iteration);
    let model_seed = stored.as_ref().map_or(req.seed, |s| s.seed);
    let pipe_seed = model_seed ^ iteration0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD17A;
    let cfg = pipeline_config(
        req.kind,
        &options,
        settings.batch_size,
        req.workers,
        req.prefetch,
        pipe_seed,
    );
    // Facesets (pretrain mode trains both sides on the pretraining faces).
    let open = |p: &Option<PathBuf>, what: &str| -> Result<Arc<Faceset>> {
        let p = p
            .as_ref()
            .ok_or_else(|| TrainError::Refused(format!("{what} is required")))?;
        Ok(Arc::new(Faceset::open(p)?))
    };
    let open_sets = || -> Result<Facesets> {
        Ok(if options.pretrain && req.kind == ModelKind::Saehd {
            let f = open(
                &req.pretrain_faceset,
                "--pretrain-faceset (the model is in pretrain mode)",
            )?;
            Facesets {
                src: f.clone(),
                dst: f,
            }
        } else {
            Facesets {
                src: open(&req.src, "--src")?,
                dst: open(&req.dst, "--dst")?,
            }
        })
    };
    // The facesets are read and the workers started on a second thread while the model is
    // built or loaded here: neither needs the other, and each takes a few tenths of a second
    // (two 20,000-face folders: about half a second). The first batch is then built while
    // the model finishes.
    let created = stored.is_none();
    let (opened, net) = std::thread::scope(|scope| {
        let opener = scope.spawn(|| -> Result<(Facesets, Pipeline)> {
            let sets = open_sets()?;
            let pipeline = Pipeline::start(sets.clone(), cfg)?;
            Ok((sets, pipeline))
        });
        let net = || -> Result<Net> {
            Ok(match &stored {
                None => match req.kind {
                    ModelKind::Saehd => {
                        Net::Saehd(Saehd::new(options.clone(), req.device, model_seed)?)
                    }
                    ModelKind::Quick96 => Net::Quick96(Quick96::new(req.device, model_seed)?),
                },
                Some(st) => Net::from_generation(req.kind, &st.generation, req.device, &options)?,
            })
        };
        let net = net();
        let opened = opener
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (opened, net)
    });
    // A faceset problem is reported before a model one, as when they ran one after the other.
    let (sets, mut pipeline) = opened?;
    let mut net = net?;

    for (side, set) in [("src", &sets.src), ("dst", &sets.dst)] {
        if !set.skipped().is_empty() {
            let first = &set.skipped()[0];
            obs.event(&TrainEvent::Warning(format!(
                "{side}: {} files skipped (first: {}: {})",
                set.skipped().len(),
                first.path.display(),
                first.reason
            )));
        }
        let model_ft = geom_face_type(options.face_type);
        let smaller = set
            .samples()
            .iter()
            .filter(|s| s.face_type.code() < model_ft.code())
            .count();
        if smaller > 0 {
            obs.event(&TrainEvent::Warning(format!(
                "{side}: {smaller} faces are aligned tighter than the model's face type {}; \
                 their missing borders are smeared (extract them as {} or wider)",
                model_ft.as_str(),
                model_ft.as_str()
            )));
        }
    }

    net.set_lr_scale(tstate.lr_scale)?;
    let options = net.s().options().clone();

    // Option changes: marker, and a backup before GAN is first switched on.
    if let Some(old) = &stored_options {
        let ch = changes(old, &options);
        if old.pretrain && !options.pretrain {
            // DFL restarts the counter (and the history) when pretraining ends.
            tstate.markers.clear();
        }
        if old.gan_power > 0.0 {
            tstate.gan_was_enabled = true;
        }
        if options.gan_power > 0.0 && !tstate.gan_was_enabled && iteration0 > 0 {
            let path = model_dir::backup_now(&dir)?;
            obs.event(&TrainEvent::Backup {
                path: &path,
                reason: "before GAN is first enabled",
            });
        }
        if !ch.is_empty() || req.phase.is_some() {
            let m = Marker {
                iteration: net.s().iteration(),
                phase: req.phase.map(|p| p.name().to_string()),
                changes: ch,
            };
            obs.event(&TrainEvent::OptionsChanged {
                iteration: m.iteration,
                phase: req.phase,
                changes: &m.changes,
            });
            tstate.markers.push(m);
        }
    } else if let Some(p) = req.phase {
        let m = Marker {
            iteration: 0,
            phase: Some(p.name().to_string()),
            changes: Vec::new(),
        };
        obs.event(&TrainEvent::OptionsChanged {
            iteration: 0,
            phase: Some(p),
            changes: &m.changes,
        });
        tstate.markers.push(m);
    }
    if options.gan_power > 0.0 {
        tstate.gan_was_enabled = true;
    }

    let samples = preview::load_samples(&dir.join(PREVIEW_SAMPLES), options.resolution)?;
    let mut s = Session {
        req,
        dir: dir.clone(),
        obs,
        net,
        options: options.clone(),
        settings,
        tstate,
        samples,
        run_start: Instant::now(),
        since_save: (0.0, 0.0, 0.0, 0),
        dirty: !created && stored_options.as_ref() != Some(&options),
    };
    if !created {
        s.write_side_files()?;
    }
    obs.event(&TrainEvent::Started {
        created,
        kind: req.kind,
        iteration: s.net.s().iteration(),
        options: &options,
        faces: (sets.src.len(), sets.dst.len()),
        device: req.device.to_string(),
        workers: req.workers.max(1),
    });

    let result = run_loop(&mut s, &mut pipeline, progress, stop, created);
    progress.finish();
    match result {
        Ok(mut report) => {
            // Not again when the last iteration was just saved (a second generation of the
            // same iteration would push the older fallback out).
            if s.dirty {
                s.save()?;
            }
            let w: WaitStats = pipeline.wait_stats();
            report.data_wait_ms = ms(w.after_first);
            report.data_wait_max_ms = if w.batches > 1 { ms(w.max) } else { 0.0 };
            obs.event(&TrainEvent::Stopped {
                reason: report.stop,
                iteration: report.iteration,
            });
            Ok(report)
        }
        Err(e) => {
            // Keep what was trained (unless the weights themselves are the problem).
            if s.dirty && !matches!(e, TrainError::Nn(NnError::NonFiniteLoss { .. })) {
                let _ = s.save();
            }
            Err(e)
        }
    }
}

fn settings_of(o: &SaehdOptions) -> Settings {
    Settings {
        target_iter: o.target_iter,
        autobackup_hour: o.autobackup_hour,
        write_preview_history: o.write_preview_history,
        batch_size: o.batch_size,
    }
}

fn preview_samples_from(b: &HostBatch) -> Result<PreviewSamples> {
    let r = b.resolution;
    let n = preview::preview_rows(b.batch_size, r);
    let take = |v: &[f32], c: usize| -> Result<Vec<Image>> {
        (0..n).map(|i| preview::chw_to_image(v, i, c, r)).collect()
    };
    Ok(PreviewSamples {
        src: take(&b.src.target, 3)?,
        src_mask: take(&b.src.mask, 1)?,
        dst: take(&b.dst.target, 3)?,
        dst_mask: take(&b.dst.mask, 1)?,
    })
}

fn run_loop(
    s: &mut Session<'_>,
    pipeline: &mut Pipeline,
    progress: &dyn Progress,
    stop: &AtomicBool,
    created: bool,
) -> Result<TrainReport> {
    let req = s.req;
    let target = s.settings.target_iter;
    let start_iter = s.net.s().iteration();
    progress.start(
        &format!("train {}", req.kind.command()),
        (target > start_iter).then(|| target - start_iter),
    );
    let device = s.net.s().device_spec().device()?;
    let history_every = match req.kind {
        ModelKind::Saehd => 10 * (s.options.resolution / 64).max(1) as u64,
        ModelKind::Quick96 => 10,
    };
    let backup_every = Duration::from_secs(u64::from(s.settings.autobackup_hour) * 3600);
    let mut next_backup = backup_every;
    let run_start = Instant::now();
    let mut last_save = Instant::now();
    let mut prev: Option<HostBatch> = None;
    let mut report = TrainReport {
        iteration: start_iter,
        iterations_run: 0,
        stop: StopReason::IterationsDone,
        mean_ms: 0.0,
        data_wait_ms: 0.0,
        data_wait_max_ms: 0.0,
        to_first_batch_s: 0.0,
        to_first_step_s: 0.0,
        nan_recoveries: 0,
    };
    let mut total_ms = 0.0;
    let mut nan_in_a_row = 0u32;
    loop {
        let it = s.net.s().iteration();
        report.iteration = it;
        if stop.load(Ordering::SeqCst) {
            report.stop = StopReason::Interrupted;
            break;
        }
        if target > 0 && it >= target {
            report.stop = StopReason::TargetReached;
            break;
        }
        if req.iterations.is_some_and(|n| report.iterations_run >= n) {
            report.stop = StopReason::IterationsDone;
            break;
        }
        let t = Instant::now();
        let reuse = req.kind == ModelKind::Quick96 && Quick96::reuses_previous_batch(it);
        let batch = match (&prev, reuse) {
            (Some(p), true) => p.unwarped(),
            _ => {
                let b = pipeline.next_batch()?;
                if report.to_first_batch_s == 0.0 {
                    report.to_first_batch_s = req.launched.elapsed().as_secs_f64();
                }
                b
            }
        };
        let wait = t.elapsed();
        if s.samples.is_none() {
            let ps = preview_samples_from(&batch)?;
            preview::save_samples(&s.dir.join(PREVIEW_SAMPLES), &ps)?;
            s.samples = Some(ps);
        }
        let ae = batch.to_ae_batch(&device)?;
        let step = s.net.s_mut().train_step(&ae);
        prev = Some(batch);
        let losses = match step {
            Ok(l) => {
                nan_in_a_row = 0;
                l
            }
            Err(NnError::NonFiniteLoss { src, dst }) => {
                nan_in_a_row += 1;
                if nan_in_a_row > MAX_NAN_IN_A_ROW {
                    return Err(TrainError::Nn(NnError::NonFiniteLoss { src, dst }));
                }
                let reloaded = s.recover(nan_in_a_row)?;
                report.nan_recoveries += 1;
                s.dirty = false;
                s.since_save = (0.0, 0.0, 0.0, 0);
                s.obs.event(&TrainEvent::NanRecovered {
                    iteration: it,
                    losses: (src, dst),
                    reloaded,
                    lr_scale: s.tstate.lr_scale,
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let it = s.net.s().iteration();
        let step_ms = ms(t.elapsed());
        total_ms += step_ms;
        report.iterations_run += 1;
        report.iteration = it;
        if report.iterations_run == 1 {
            report.to_first_step_s = req.launched.elapsed().as_secs_f64();
        }
        s.dirty = true;
        s.since_save.0 += f64::from(losses.src);
        s.since_save.1 += f64::from(losses.dst);
        s.since_save.2 += step_ms;
        s.since_save.3 += 1;
        s.obs.event(&TrainEvent::Iteration {
            iteration: it,
            ms: step_ms,
            wait_ms: ms(wait),
            src: losses.src,
            dst: losses.dst,
        });
        progress.inc(1);
        progress.message(&format!(
            "#{it} {step_ms:.0}ms src {:.4} dst {:.4}",
            losses.src, losses.dst
        ));

        if s.settings.write_preview_history && it.is_multiple_of(history_every) {
            s.write_history_preview()?;
        }
        let requested = s.dir.join(PREVIEW_REQUEST);
        if requested.exists() || (req.preview_every > 0 && it.is_multiple_of(req.preview_every)) {
            s.write_previews()?;
            let _ = fs::remove_file(&requested);
        }
        if (created && report.iterations_run == 1) || last_save.elapsed() >= req.save_interval {
            s.save()?;
            last_save = Instant::now();
        }
        if !backup_every.is_zero() && run_start.elapsed() >= next_backup {
            if s.dirty {
                s.save()?;
                last_save = Instant::now();
            }
            let path = model_dir::backup_now(&s.dir)?;
            s.obs.event(&TrainEvent::Backup {
                path: &path,
                reason: "autobackup",
            });
            next_backup += backup_every;
        }
    }
    if report.iterations_run > 0 {
        report.mean_ms = total_ms / report.iterations_run as f64;
    }
    Ok(report)
}
