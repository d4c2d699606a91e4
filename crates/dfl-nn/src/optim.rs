//! DFL's optimizers with their exact update rules (§5.0 "Optimizers"): RMSprop and AdaBelief
//! (no bias correction), global-norm clipping, LR dropout and the cosine LR cycle. Written
//! over burn's gradients because burn's own optimizers differ (bias correction, per-tensor
//! clipping, no LR dropout).
//!
//! Two interchangeable paths: on host devices (`flex` CPU) the whole update of a tensor is one
//! fused, parallel loop over its values (weights, gradient and state touched once); on other
//! devices it is written with tensor operations. Tests keep the two in agreement.

use crate::error::{NnError, Result};
use crate::store::{NamedTensor, PathTracker, SaveTensor, to_host};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Distribution, Gradients, Tensor, TensorData};
use rand::rngs::{SmallRng, StdRng};
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// RMSprop's decay.
pub const RMSPROP_RHO: f32 = 0.9;
/// AdaBelief's first-moment decay.
pub const ADABELIEF_BETA1: f32 = 0.9;
/// AdaBelief's second-moment decay.
pub const ADABELIEF_BETA2: f32 = 0.999;
/// DFL's epsilon: `np.finfo(np.float32).resolution`.
pub const EPSILON: f32 = 1e-6;

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `a = rho a + (1-rho) g^2; w -= lr g / (sqrt(a) + eps)`.
    RmsProp,
    /// `m = b1 m + (1-b1) g; v = b2 v + (1-b2) (g-m)^2; w -= lr m / (sqrt(v) + eps)`.
    AdaBelief,
}

/// Optimizer settings as DFL passes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// Probability that a weight is updated in a step (1 = LR dropout off).
    pub lr_dropout: f32,
    /// Period of the cosine LR cycle in steps (0 = off).
    pub lr_cos: u64,
    /// Global gradient norm above which all gradients are scaled down (0 = off).
    pub clipnorm: f32,
}

impl OptimConfig {
    /// Plain settings: no dropout, no cycle, no clipping.
    pub fn new(kind: OptimizerKind, lr: f32) -> Self {
        OptimConfig {
            kind,
            lr,
            lr_dropout: 1.0,
            lr_cos: 0,
            clipnorm: 0.0,
        }
    }

    /// The learning rate of the step after `iters` completed steps: with a cycle,
    /// `lr * (cos(iters * 2 pi / lr_cos) + 1) / 2` (DFL writes pi as 3.1415926535).
    ///
    /// DFL reads its step counter in the same graph run that increments it, without an
    /// ordering; we define it as the count *before* this step, so step 0 has the full rate.
    pub fn lr_at(&self, iters: u64) -> f32 {
        if self.lr_cos == 0 {
            return self.lr;
        }
        // DFL's literal pi (10 digits), not f64::consts::PI: matches its schedule exactly.
        #[allow(clippy::approx_constant)]
        const DFL_PI: f64 = 3.1415926535;
        let phase = iters as f64 * (2.0 * DFL_PI / self.lr_cos as f64);
        (self.lr as f64 * (phase.cos() + 1.0) / 2.0) as f32
    }
}

/// Optimizer state of one parameter, flattened.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one slot per parameter; boxing buys nothing here
enum Slot {
    /// Host vectors (fused path): `m`/`acc` and, for AdaBelief, `v`.
    Host {
        shape: Vec<usize>,
        first: Vec<f32>,
        second: Vec<f32>,
    },
    /// Device tensors (tensor-op path).
    Device {
        shape: Vec<usize>,
        first: Tensor<1>,
        second: Option<Tensor<1>>,
    },
}

/// A DFL optimizer over one module (all of SAEHD's generator nets, or one discriminator).
///
/// State is keyed by parameter name, so it survives save/load and module rebuilds.
#[derive(Debug)]
pub struct DflOptimizer {
    config: OptimConfig,
    iters: u64,
    slots: BTreeMap<String, Slot>,
    host: bool,
    rng: StdRng,
}

/// Gradients of one step, taken out of burn's [`Gradients`] by parameter.
enum Grad {
    /// `f32` values, read in place.
    Host(TensorData),
    Device(Tensor<1>),
}

struct GradCollector<'a> {
    grads: &'a mut Gradients,
    host: bool,
    path: PathTracker,
    out: HashMap<ParamId, (String, Grad)>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad_remove(self.grads) {
            let n = g.shape().num_elements();
            let g = if self.host {
                Grad::Host(g.inner().into_data().convert::<f32>())
            } else {
                Grad::Device(g.reshape([n]))
            };
            self.out.insert(param.id, (self.path.path(""), g));
        }
    }
}

struct Updater<'a> {
    opt: &'a mut DflOptimizer,
    grads: HashMap<ParamId, (String, Grad)>,
    lr: f32,
    scale: f32,
}

impl ModuleMapper for Updater<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((name, grad)) = self.grads.remove(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let device = tensor.device();
        let shape = tensor.dims();
        let mask_p = self.opt.config.lr_dropout;
        let seed: u64 = self.opt.rng.random();
        let kind = self.opt.config.kind;
        let slot = self
            .opt
            .slots
            .entry(name)
            .or_insert_with(|| zero_slot(kind, &shape, self.opt.host, &device));
        let updated: Tensor<D> = match (slot, grad) {
            (Slot::Host { first, second, .. }, Grad::Host(g)) => {
                let mut w = to_host(tensor).data;
                let g: std::borrow::Cow<[f32]> = match g.as_slice::<f32>() {
                    Ok(s) => std::borrow::Cow::Borrowed(s),
                    Err(_) => std::borrow::Cow::Owned(g.iter::<f32>().collect()),
                };
                debug_assert_eq!(g.len(), w.len());
                host_update(
                    kind, &mut w, &g, first, second, self.lr, self.scale, mask_p, seed,
                );
                Tensor::from_data(TensorData::new(w, shape), &device)
            }
            (Slot::Device { first, second, .. }, Grad::Device(g)) => {
                let n = g.dims()[0];
                let w = tensor.inner().reshape([n]);
                let (w, f, s) = device_update(
                    kind,
                    w,
                    g,
                    first.clone(),
                    second.clone(),
                    self.lr,
                    self.scale,
                    mask_p,
                );
                *first = f;
                *second = s;
                w.reshape(shape)
            }
            // Slots are created for the path in use; a mismatch can only come from a state
            // loaded for the other path, which `load_state` converts. Keep the weight.
            (_, _) => tensor.inner(),
        };
        let mut value = updated.detach();
        if device.is_autodiff() {
            value = value.autodiff().require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

fn zero_slot(
    kind: OptimizerKind,
    shape: &[usize],
    host: bool,
    device: &burn::tensor::Device,
) -> Slot {
    let n: usize = shape.iter().product();
    let two = kind == OptimizerKind::AdaBelief;
    if host {
        Slot::Host {
            shape: shape.to_vec(),
            first: crate::host::zeroed(n),
            second: if two {
                crate::host::zeroed(n)
            } else {
                Vec::new()
            },
        }
    } else {
        let inner = device.clone().without_autodiff();
        Slot::Device {
            shape: shape.to_vec(),
            first: Tensor::zeros([n], &inner),
            second: two.then(|| Tensor::zeros([n], &inner)),
        }
    }
}

/// Chunk size of the fused host loop (one RNG stream per chunk for LR dropout).
const CHUNK: usize = 1 << 15;

/// LR dropout draws its keep flags this many at a time, so the update loop that applies
/// them is branch-free and vectorises (a draw and a branch per weight took 9 % of a
/// Quick96 step).
const DRAWS: usize = 64;

/// `rng.random::<f32>() < p` as an integer test: that float is `(next_u32 >> 8) / 2^24`,
/// below `p` exactly when `next_u32 >> 8 < ceil(p * 2^24)` (the same draws, no float).
fn keep_below(p: f32) -> u32 {
    (f64::from(p) * f64::from(1u32 << 24)).ceil() as u32
}

/// Fills `keep` with this block's LR-dropout factors: 1 where the weight takes its update,
/// else 0 (a factor, as on the device path: a select here compiles to a branch around the
/// update's square root and division, and the loop stays scalar).
fn draw_keeps(rng: &mut SmallRng, below: u32, keep: &mut [f32]) {
    for k in keep {
        *k = f32::from(u8::from(rng.random::<u32>() >> 8 < below));
    }
}

/// One fused pass over a tensor: state update and weight update. Without LR dropout the
/// inner loops are branch-free so they vectorise; with it, each chunk draws its Bernoulli
/// mask from its own seeded stream (deterministic for a seed, whatever the thread count).
#[allow(clippy::too_many_arguments)]
fn host_update(
    kind: OptimizerKind,
    w: &mut [f32],
    g: &[f32],
    first: &mut [f32],
    second: &mut [f32],
    lr: f32,
    scale: f32,
    mask_p: f32,
    seed: u64,
) {
    let dropout = mask_p < 1.0;
    let below = keep_below(mask_p);
    let chunk_rng =
        |ci: usize| SmallRng::seed_from_u64(seed ^ (ci as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    match kind {
        OptimizerKind::AdaBelief => {
            let (b1, b2) = (ADABELIEF_BETA1, ADABELIEF_BETA2);
            let step = move |g: f32, m: &mut f32, v: &mut f32| -> f32 {
                let gi = g * scale;
                let mi = b1 * *m + (1.0 - b1) * gi;
                let d = gi - mi;
                let vi = b2 * *v + (1.0 - b2) * d * d;
                *m = mi;
                *v = vi;
                -lr * mi / (vi.sqrt() + EPSILON)
            };
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(first.par_chunks_mut(CHUNK))
                .zip(second.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(ci, (((w, g), m), v))| {
                    if dropout {
                        let mut rng = chunk_rng(ci);
                        let mut keep = [0.0; DRAWS];
                        let blocks = w
                            .chunks_mut(DRAWS)
                            .zip(g.chunks(DRAWS))
                            .zip(m.chunks_mut(DRAWS))
                            .zip(v.chunks_mut(DRAWS));
                        for (((w, g), m), v) in blocks {
                            draw_keeps(&mut rng, below, &mut keep[..w.len()]);
                            let it = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
                            for ((((w, g), m), v), k) in it.zip(&keep) {
                                *w += step(*g, m, v) * k;
                            }
                        }
                    } else {
                        let it = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
                        for (((w, g), m), v) in it {
                            let d = step(*g, m, v);
                            *w += d;
                        }
                    }
                });
        }
        OptimizerKind::RmsProp => {
            let rho = RMSPROP_RHO;
            let step = move |g: f32, a: &mut f32| -> f32 {
                let gi = g * scale;
                let ai = rho * *a + (1.0 - rho) * gi * gi;
                *a = ai;
                -lr * gi / (ai.sqrt() + EPSILON)
            };
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(first.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(ci, ((w, g), a))| {
                    if dropout {
                        let mut rng = chunk_rng(ci);
                        let mut keep = [0.0; DRAWS];
                        let blocks = w
                            .chunks_mut(DRAWS)
                            .zip(g.chunks(DRAWS))
                            .zip(a.chunks_mut(DRAWS));
                        for ((w, g), a) in blocks {
                            draw_keeps(&mut rng, below, &mut keep[..w.len()]);
                            for (((w, g), a), k) in w.iter_mut().zip(g).zip(a.iter_mut()).zip(&keep)
                            {
                                *w += step(*g, a) * k;
                            }
                        }
                    } else {
                        let it = w.iter_mut().zip(g).zip(a.iter_mut());
                        for ((w, g), a) in it {
                            *w += step(*g, a);
                        }
                    }
                });
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn device_update(
    kind: OptimizerKind,
    w: Tensor<1>,
    g: Tensor<1>,
    first: Tensor<1>,
    second: Option<Tensor<1>>,
    lr: f32,
    scale: f32,
    mask_p: f32,
) -> (Tensor<1>, Tensor<1>, Option<Tensor<1>>) {
    let g = if scale != 1.0 { g * scale } else { g };
    let (step, first, second) = match kind {
        OptimizerKind::AdaBelief => {
            let (b1, b2) = (ADABELIEF_BETA1, ADABELIEF_BETA2);
            let m = first * b1 + g.clone() * (1.0 - b1);
            let v_prev = second.unwrap_or_else(|| m.zeros_like());
            let v = v_prev * b2 + (g - m.clone()).square() * (1.0 - b2);
            let step = m.clone() / (v.clone().sqrt() + EPSILON) * (-lr);
            (step, m, Some(v))
        }
        OptimizerKind::RmsProp => {
            let rho = RMSPROP_RHO;
            let a = first * rho + g.clone().square() * (1.0 - rho);
            let step = g / (a.clone().sqrt() + EPSILON) * (-lr);
            (step, a, None)
        }
    };
    let step = if mask_p < 1.0 {
        let mask = step.random_like(Distribution::Bernoulli(mask_p as f64));
        step * mask
    } else {
        step
    };
    (w + step, first, second)
}

impl DflOptimizer {
    /// A fresh optimizer whose state (zeros) covers every parameter of `module`, like DFL
    /// which creates state for all saveable weights (including frozen ones). `host` selects
    /// the fused host path (use [`crate::DeviceSpec::is_host`]); `seed` seeds LR dropout.
    pub fn new<M: Module>(config: OptimConfig, module: &M, host: bool, seed: u64) -> Self {
        let mut opt = DflOptimizer {
            config,
            iters: 0,
            slots: BTreeMap::new(),
            host,
            rng: StdRng::seed_from_u64(seed),
        };
        let device = module
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(burn::tensor::Device::flex);
        for (name, shape) in crate::store::param_shapes(module, "") {
            let slot = zero_slot(config.kind, &shape, host, &device);
            opt.slots.insert(name, slot);
        }
        opt
    }

    /// Settings in use.
    pub fn config(&self) -> &OptimConfig {
        &self.config
    }

    /// Applies new settings for `module` (lr, dropout, cycle and clipping may change between
    /// runs). A different update rule starts its state from zeros for every parameter, as
    /// DFL re-initialises state keys it cannot load; the step counter is kept.
    pub fn reconfigure<M: Module>(&mut self, config: OptimConfig, module: &M) {
        if config.kind != self.config.kind {
            let device = module
                .devices()
                .into_iter()
                .next()
                .unwrap_or_else(burn::tensor::Device::flex);
            self.slots = crate::store::param_shapes(module, "")
                .into_iter()
                .map(|(name, shape)| {
                    let slot = zero_slot(config.kind, &shape, self.host, &device);
                    (name, slot)
                })
                .collect();
        }
        self.config = config;
    }

    /// Completed steps (DFL's `iters` variable).
    pub fn iters(&self) -> u64 {
        self.iters
    }

    /// One update of `module` from the gradients of a backward pass. Parameters without a
    /// gradient (frozen, or not on the loss path) keep their values and state.
    pub fn step<M: Module>(&mut self, module: M, mut grads: Gradients) -> M {
        let mut collector = GradCollector {
            grads: &mut grads,
            host: self.host,
            path: PathTracker::default(),
            out: HashMap::new(),
        };
        module.visit(&mut collector);
        let grads = collector.out;
        let scale = if self.config.clipnorm > 0.0 {
            let norm = global_norm(grads.values().map(|(_, g)| g));
            if norm >= self.config.clipnorm as f64 {
                (self.config.clipnorm as f64 / norm) as f32
            } else {
                1.0
            }
        } else {
            1.0
        };
        let lr = self.config.lr_at(self.iters);
        let mut updater = Updater {
            opt: self,
            grads,
            lr,
            scale,
        };
        let module = module.map(&mut updater);
        self.iters += 1;
        module
    }

    /// State as named host tensors: `ms.<param>`/`vs.<param>` (AdaBelief) or `acc.<param>`
    /// (RMSprop), DFL's names. The step counter is [`Self::iters`] (stored in the
    /// checkpoint's JSON).
    pub fn state_tensors(&self) -> BTreeMap<String, NamedTensor> {
        self.state_for_save()
            .into_iter()
            .map(|(k, t)| (k, t.into_named()))
            .collect()
    }

    /// The same state as [`Self::state_tensors`], borrowed (host slots) or as device
    /// handles, for a checkpoint to write without a second copy.
    pub fn state_for_save(&self) -> BTreeMap<String, SaveTensor<'_>> {
        let mut out = BTreeMap::new();
        let (first_name, second_name) = match self.config.kind {
            OptimizerKind::AdaBelief => ("ms", "vs"),
            OptimizerKind::RmsProp => ("acc", ""),
        };
        for (name, slot) in &self.slots {
            let (first, second) = match slot {
                Slot::Host {
                    shape,
                    first,
                    second,
                } => (
                    SaveTensor::Host {
                        shape: shape.clone(),
                        data: first,
                    },
                    Some(SaveTensor::Host {
                        shape: shape.clone(),
                        data: second,
                    }),
                ),
                Slot::Device {
                    shape,
                    first,
                    second,
                } => (
                    SaveTensor::Device {
                        shape: shape.clone(),
                        tensor: Box::new(first.clone()),
                    },
                    second.as_ref().map(|s| SaveTensor::Device {
                        shape: shape.clone(),
                        tensor: Box::new(s.clone()),
                    }),
                ),
            };
            out.insert(format!("{first_name}.{name}"), first);
            // RMSprop has no second slot (its host slot keeps an empty vector).
            if let (false, Some(second)) = (second_name.is_empty(), second) {
                out.insert(format!("{second_name}.{name}"), second);
            }
        }
        out
    }

    /// Restores state written by [`Self::state_tensors`] and the step counter. Every
    /// parameter this optimizer covers must be present with its shape; `file` names the
    /// source in errors.
    pub fn load_state(
        &mut self,
        mut tensors: HashMap<String, NamedTensor>,
        iters: u64,
        file: &std::path::Path,
    ) -> Result<()> {
        let (first_name, second_name) = match self.config.kind {
            OptimizerKind::AdaBelief => ("ms", "vs"),
            OptimizerKind::RmsProp => ("acc", ""),
        };
        let mut new_slots = BTreeMap::new();
        for (name, slot) in &self.slots {
            let shape = match slot {
                Slot::Host { shape, .. } | Slot::Device { shape, .. } => shape.clone(),
            };
            let n: usize = shape.iter().product();
            let mut take = |prefix: &str| -> Result<Vec<f32>> {
                let key = format!("{prefix}.{name}");
                match tensors.remove(&key) {
                    Some(t) if t.shape == shape && t.data.len() == n => Ok(t.data),
                    Some(t) => Err(NnError::bad_file(
                        file,
                        format!(
                            "optimizer tensor '{key}' has shape {:?}, expected {shape:?}",
                            t.shape
                        ),
                    )),
                    None => Err(NnError::bad_file(
                        file,
                        format!(
                            "optimizer tensor '{key}' is missing (was the model saved with the other optimizer?)"
                        ),
                    )),
                }
            };
            let first = take(first_name)?;
            let second = if second_name.is_empty() {
                Vec::new()
            } else {
                take(second_name)?
            };
            let slot = match slot {
                Slot::Host { .. } => Slot::Host {
                    shape,
                    first,
                    second,
                },
                Slot::Device { first: f, .. } => {
                    let device = f.device();
                    Slot::Device {
                        first: Tensor::from_data(TensorData::new(first, [n]), &device),
                        second: (!second.is_empty())
                            .then(|| Tensor::from_data(TensorData::new(second, [n]), &device)),
                        shape,
                    }
                }
            };
            new_slots.insert(name.clone(), slot);
        }
        self.slots = new_slots;
        self.iters = iters;
        self.rng = StdRng::seed_from_u64(self.rng.random::<u64>() ^ iters);
        Ok(())
    }
}

fn global_norm<'a>(grads: impl Iterator<Item = &'a Grad>) -> f64 {
    let mut total = 0.0f64;
    let mut device_sum: Option<Tensor<1>> = None;
    for g in grads {
        match g {
            Grad::Host(d) => {
                total += d
                    .as_slice::<f32>()
                    .unwrap_or(&[])
                    .par_chunks(CHUNK)
                    .map(|c| c.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>())
                    .sum::<f64>();
            }
            Grad::Device(t) => {
                let s = t.clone().square().sum();
                device_sum = Some(match device_sum {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    if let Some(s) = device_sum {
        total += s.into_scalar::<f32>() as f64;
    }
    total.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Dense, Init};
    use burn::tensor::Device;

    fn dense(seed: u64) -> Dense {
        let dev = Device::flex().autodiff();
        let mut rng = StdRng::seed_from_u64(seed);
        Dense::new(
            &mut Init {
                rng: &mut rng,
                device: &dev,
            },
            64,
            48,
        )
    }

    fn grads_of(d: &Dense) -> Gradients {
        let dev = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(
            TensorData::new((0..128).map(|i| (i as f32 * 0.37).sin()).collect(), [2, 64]),
            &dev,
        );
        d.forward(x).square().sum().backward()
    }

    fn values(d: &Dense) -> Vec<f32> {
        to_host(d.weight.val()).data
    }

    /// The fused host loop and the tensor-op path give the same weights over several steps,
    /// for both rules and with clipping and a cosine cycle.
    #[test]
    fn host_and_device_paths_agree() {
        for kind in [OptimizerKind::AdaBelief, OptimizerKind::RmsProp] {
            let cfg = OptimConfig {
                clipnorm: 0.5,
                lr_cos: 7,
                ..OptimConfig::new(kind, 1e-2)
            };
            let (mut a, mut b) = (dense(1), dense(1));
            let mut oa = DflOptimizer::new(cfg, &a, true, 0);
            let mut ob = DflOptimizer::new(cfg, &b, false, 0);
            for _ in 0..4 {
                let ga = grads_of(&a);
                a = oa.step(a, ga);
                let gb = grads_of(&b);
                b = ob.step(b, gb);
            }
            let (va, vb) = (values(&a), values(&b));
            let d = va
                .iter()
                .zip(&vb)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-6, "{kind:?}: {d}");
            assert_ne!(va, values(&dense(1)), "weights must move");
            assert_eq!(oa.iters(), 4);
        }
    }

    /// LR dropout updates about `p` of the weights each step, on both paths.
    #[test]
    fn lr_dropout_updates_a_fraction() {
        for host in [true, false] {
            let cfg = OptimConfig {
                lr_dropout: 0.3,
                ..OptimConfig::new(OptimizerKind::RmsProp, 1e-3)
            };
            let a = dense(2);
            let before = values(&a);
            let mut o = DflOptimizer::new(cfg, &a, host, 5);
            let g = grads_of(&a);
            let a = o.step(a, g);
            let after = values(&a);
            let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
            let frac = moved as f64 / before.len() as f64;
            assert!((0.25..0.35).contains(&frac), "host {host}: {frac}");
        }
    }

    /// The branch-free LR-dropout flags are exactly the float draws they replace, at keep
    /// probabilities whose `p * 2^24` is and is not a whole number.
    #[test]
    fn integer_keep_test_equals_the_float_draw() {
        for p in [0.3f32, 0.5, 0.7, 0.75, 1e-7, 0.999_999_9] {
            let (mut a, mut b) = (SmallRng::seed_from_u64(9), SmallRng::seed_from_u64(9));
            let mut keep = vec![0.0; 20_000];
            draw_keeps(&mut a, keep_below(p), &mut keep);
            let floats: Vec<f32> = (0..keep.len())
                .map(|_| f32::from(u8::from(b.random::<f32>() < p)))
                .collect();
            assert_eq!(keep, floats, "p = {p}");
            // The boundary itself: the last kept draw and the first dropped one.
            let (v, scale) = (keep_below(p), 1.0 / (1u32 << 24) as f32);
            assert!(
                (v - 1) as f32 * scale < p && v as f32 * scale >= p,
                "p = {p}"
            );
        }
    }

    #[test]
    fn cosine_cycle_follows_dfl_formula() {
        let c = OptimConfig {
            lr_cos: 500,
            ..OptimConfig::new(OptimizerKind::AdaBelief, 5e-5)
        };
        assert_eq!(c.lr_at(0), 5e-5);
        assert!((c.lr_at(250) - 0.0).abs() < 1e-12);
        assert!((c.lr_at(125) - 2.5e-5).abs() < 1e-9);
        assert_eq!(c.lr_at(500), c.lr_at(0));
        assert_eq!(
            OptimConfig::new(OptimizerKind::RmsProp, 1e-4).lr_at(123),
            1e-4
        );
    }

    #[test]
    fn state_roundtrips_and_rejects_wrong_rule() {
        let a = dense(3);
        let mut o = DflOptimizer::new(
            OptimConfig::new(OptimizerKind::AdaBelief, 1e-3),
            &a,
            true,
            0,
        );
        let g = grads_of(&a);
        let a = o.step(a, g);
        let saved = o.state_tensors();
        assert_eq!(saved.len(), 4); // ms/vs for weight and bias
        let mut fresh = DflOptimizer::new(*o.config(), &a, true, 0);
        fresh
            .load_state(
                saved.clone().into_iter().collect(),
                o.iters(),
                std::path::Path::new("x"),
            )
            .unwrap();
        assert_eq!(fresh.state_tensors(), saved);
        assert_eq!(fresh.iters(), 1);
        let mut rms =
            DflOptimizer::new(OptimConfig::new(OptimizerKind::RmsProp, 1e-3), &a, true, 0);
        let e = rms
            .load_state(
                saved.into_iter().collect(),
                1,
                std::path::Path::new("opt.safetensors"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("acc.") && e.contains("opt.safetensors"), "{e}");
    }
}
