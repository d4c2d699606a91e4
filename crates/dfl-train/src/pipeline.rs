//! The data pipeline: worker threads that build whole training batches ahead of the engine.
//!
//! The planner ([`crate::sampler::Planner`]) fixes which faces and seeds make up batch `n`;
//! worker `k` builds batches `k, k + W, k + 2W, …` and queues up to `prefetch` of them; the
//! trainer takes batch `n` from worker `n mod W`. So the batch sequence is the same whatever
//! the timing, and the time the trainer blocks in [`Pipeline::next_batch`] is exactly the
//! time the engine waited for data (reported by [`Pipeline::wait_stats`]).
//!
//! Workers run inside their own rayon pool, so the image operations they call (which are
//! rayon-parallel) never queue behind the engine's work in the global pool.
//!
//! Multi-GPU (later) splits each batch along the sample axis: a batch is built whole here
//! and [`HostBatch`] keeps samples contiguous, so a split is a slice per device.

use crate::error::{Result, TrainError};
use crate::faceset::{Faceset, SampleReader};
use crate::processor::{ProcessedSample, SideSpec, process_sample};
use crate::sampler::{BatchPlan, IndexSampler, Planner, SampleDraw};
use burn::tensor::Device;
use dfl_image::Image;
use dfl_nn::AeBatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One side of a batch, NCHW `f32`, samples contiguous.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideBatch {
    /// Network inputs `[B, 3, R, R]`.
    pub warped: Vec<f32>,
    /// Targets `[B, 3, R, R]`.
    pub target: Vec<f32>,
    /// Full-face masks `[B, 1, R, R]`.
    pub mask: Vec<f32>,
    /// Eyes+mouth masks `[B, 1, R, R]`, when asked for.
    pub eyes_mouth: Option<Vec<f32>>,
    /// Which faces (indices into the side's faceset) and seeds, in order.
    pub draws: Vec<SampleDraw>,
}

/// A training batch in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Batch number in this run.
    pub number: u64,
    /// Samples per side.
    pub batch_size: usize,
    /// Side in pixels.
    pub resolution: usize,
    /// src side.
    pub src: SideBatch,
    /// dst side.
    pub dst: SideBatch,
}

/// Appends an HWC image as CHW.
fn push_chw(out: &mut Vec<f32>, img: &Image) {
    let (w, h, c) = img.shape();
    let data = img.data();
    for ch in 0..c {
        out.extend((0..w * h).map(|i| data[i * c + ch]));
    }
}

impl SideBatch {
    fn push(&mut self, s: &ProcessedSample, draw: SampleDraw) {
        push_chw(&mut self.warped, &s.warped);
        push_chw(&mut self.target, &s.target);
        push_chw(&mut self.mask, &s.mask);
        if let Some(em) = &s.eyes_mouth {
            push_chw(self.eyes_mouth.get_or_insert_with(Vec::new), em);
        }
        self.draws.push(draw);
    }
}

impl HostBatch {
    /// The batch as the model's input tensors on `device`.
    pub fn to_ae_batch(&self, device: &Device) -> Result<AeBatch> {
        let (b, r) = (self.batch_size, self.resolution);
        let t = |v: &Vec<f32>, c: usize| dfl_nn::host::tensor4(v.clone(), [b, c, r, r], device);
        let opt = |v: &Option<Vec<f32>>| v.as_ref().map(|v| t(v, 1)).transpose();
        Ok(AeBatch {
            warped_src: t(&self.src.warped, 3)?,
            target_src: t(&self.src.target, 3)?,
            target_srcm: t(&self.src.mask, 1)?,
            target_srcm_em: opt(&self.src.eyes_mouth)?,
            warped_dst: t(&self.dst.warped, 3)?,
            target_dst: t(&self.dst.target, 3)?,
            target_dstm: t(&self.dst.mask, 1)?,
            target_dstm_em: opt(&self.dst.eyes_mouth)?,
        })
    }
}

/// Everything the pipeline needs to know.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// How src samples are made.
    pub src: SideSpec,
    /// How dst samples are made.
    pub dst: SideSpec,
    /// Uniform-yaw sampling of src (`uniform_yaw`).
    pub src_uniform_yaw: bool,
    /// Uniform-yaw sampling of dst.
    pub dst_uniform_yaw: bool,
    /// Samples per side per batch.
    pub batch_size: usize,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches each worker may hold ready (at least 1).
    pub prefetch: usize,
    /// Seed of the batch sequence.
    pub seed: u64,
}

/// The two facesets a pipeline reads.
#[derive(Debug, Clone)]
pub struct Facesets {
    /// src faces (the pretraining faces in pretrain mode).
    pub src: Arc<Faceset>,
    /// dst faces (also the colour-transfer partners).
    pub dst: Arc<Faceset>,
}

/// A planner for `cfg` over `sets` (computes yaws when uniform yaw is on).
pub fn planner(sets: &Facesets, cfg: &PipelineConfig) -> Planner {
    let sampler = |set: &Faceset, uniform: bool| {
        if uniform {
            IndexSampler::uniform_yaw(&set.neg_yaws())
        } else {
            IndexSampler::shuffled(set.len())
        }
    };
    Planner::new(
        cfg.seed,
        sampler(&sets.src, cfg.src_uniform_yaw),
        sampler(&sets.dst, cfg.dst_uniform_yaw),
        cfg.src.ct_mode.map(|_| sets.dst.len()),
        cfg.batch_size,
    )
}

/// Per-worker readers of both facesets.
struct Readers<'a> {
    src: SampleReader<'a>,
    dst: SampleReader<'a>,
}

fn build_side(
    set: &Faceset,
    reader: &mut SampleReader<'_>,
    partners: &mut SampleReader<'_>,
    spec: &SideSpec,
    draws: &[SampleDraw],
) -> Result<SideBatch> {
    let mut side = SideBatch::default();
    for &d in draws {
        let meta = set
            .samples()
            .get(d.index)
            .ok_or_else(|| TrainError::Pipeline(format!("sample {} out of range", d.index)))?;
        let face = reader.load(d.index)?;
        let partner = match (spec.ct_mode, d.ct_partner) {
            (Some(_), Some(p)) => Some(partners.load(p)?.image),
            _ => None,
        };
        let s =
            process_sample(meta, &face, spec, d.seed, partner.as_ref()).map_err(|e| match e {
                TrainError::Pipeline(m) => TrainError::sample(set.sample_path(d.index), m),
                other => other,
            })?;
        side.push(&s, d);
    }
    Ok(side)
}

/// Builds the batch of `plan` (what a worker does; also usable without threads).
pub fn build_batch(sets: &Facesets, cfg: &PipelineConfig, plan: &BatchPlan) -> Result<HostBatch> {
    let mut r = Readers {
        src: sets.src.reader(),
        dst: sets.dst.reader(),
    };
    build_with(sets, cfg, plan, &mut r)
}

fn build_with(
    sets: &Facesets,
    cfg: &PipelineConfig,
    plan: &BatchPlan,
    r: &mut Readers<'_>,
) -> Result<HostBatch> {
    let src = build_side(&sets.src, &mut r.src, &mut r.dst, &cfg.src, &plan.src)?;
    let dst = {
        // dst samples never take a colour-transfer partner; a throw-away reader suffices.
        let mut none = sets.dst.reader();
        build_side(&sets.dst, &mut r.dst, &mut none, &cfg.dst, &plan.dst)?
    };
    Ok(HostBatch {
        number: plan.number,
        batch_size: cfg.batch_size,
        resolution: cfg.src.resolution,
        src,
        dst,
    })
}

/// How long the consumer waited for batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WaitStats {
    /// Batches taken.
    pub batches: u64,
    /// Total time blocked waiting for them.
    pub total: Duration,
    /// Longest single wait.
    pub max: Duration,
    /// Total time blocked, not counting the first batch (which waits for the cold start).
    pub after_first: Duration,
}

/// Worker threads building batches ahead of the trainer.
pub struct Pipeline {
    receivers: Vec<Receiver<Result<HostBatch>>>,
    next: u64,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    wait: WaitStats,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("workers", &self.receivers.len())
            .field("next", &self.next)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Pipeline {
    /// Starts `cfg.workers` workers (in their own rayon pool of that size).
    pub fn start(sets: Facesets, cfg: PipelineConfig) -> Result<Pipeline> {
        if sets.src.is_empty() || sets.dst.is_empty() {
            return Err(TrainError::Pipeline("a faceset is empty".into()));
        }
        if cfg.batch_size == 0 {
            return Err(TrainError::option("batch_size", "must be at least 1"));
        }
        let workers = cfg.workers.max(1);
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .thread_name(|i| format!("dfl-data-{i}"))
                .build()
                .map_err(|e| TrainError::Pipeline(format!("cannot start workers: {e}")))?,
        );
        let planner = Arc::new(Mutex::new(planner(&sets, &cfg)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for k in 0..workers {
            let (tx, rx) = sync_channel(cfg.prefetch.max(1));
            receivers.push(rx);
            let (sets, cfg, planner, stop, pool) = (
                sets.clone(),
                cfg.clone(),
                planner.clone(),
                stop.clone(),
                pool.clone(),
            );
            let h = std::thread::Builder::new()
                .name(format!("dfl-batch-{k}"))
                .spawn(move || worker(k, workers, &sets, &cfg, &planner, &stop, &pool, &tx))
                .map_err(|e| TrainError::Pipeline(format!("cannot start a worker: {e}")))?;
            handles.push(h);
        }
        Ok(Pipeline {
            receivers,
            next: 0,
            stop,
            handles,
            wait: WaitStats::default(),
        })
    }

    /// The next batch, in order; blocks until its worker has it.
    pub fn next_batch(&mut self) -> Result<HostBatch> {
        let k = (self.next % self.receivers.len() as u64) as usize;
        let t = Instant::now();
        let got = self.receivers[k]
            .recv()
            .map_err(|_| TrainError::Pipeline("a worker stopped".into()))?;
        let waited = t.elapsed();
        self.wait.total += waited;
        self.wait.max = self.wait.max.max(waited);
        if self.wait.batches > 0 {
            self.wait.after_first += waited;
        }
        self.wait.batches += 1;
        self.next += 1;
        got
    }

    /// Time spent waiting for data so far.
    pub fn wait_stats(&self) -> WaitStats {
        self.wait
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Dropping the receivers unblocks workers waiting to send.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn worker(
    k: usize,
    workers: usize,
    sets: &Facesets,
    cfg: &PipelineConfig,
    planner: &Mutex<Planner>,
    stop: &AtomicBool,
    pool: &rayon::ThreadPool,
    tx: &SyncSender<Result<HostBatch>>,
) {
    let mut readers = Readers {
        src: sets.src.reader(),
        dst: sets.dst.reader(),
    };
    let mut n = k as u64;
    while !stop.load(Ordering::SeqCst) {
        let plan = match planner.lock() {
            Ok(mut p) => p.plan(n),
            Err(_) => None,
        };
        let Some(plan) = plan else {
            let _ = tx.send(Err(TrainError::Pipeline(format!("no plan for batch {n}"))));
            return;
        };
        let batch = pool.install(|| build_with(sets, cfg, &plan, &mut readers));
        let failed = batch.is_err();
        if tx.send(batch).is_err() || failed {
            return;
        }
        n += workers as u64;
    }
}
