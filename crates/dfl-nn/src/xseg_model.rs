//! The XSeg model (§5.5 "Training"): the U-Net, RMSprop (lr 1e-4, LR dropout 0.3), the
//! sigmoid cross-entropy loss (or the grayscale reconstruction loss in pretrain mode),
//! inference as DFL's `XSegNet.extract`, and save/load.

use crate::archs::xseg::{XSEG_RESOLUTION, XSeg};
use crate::checkpoint::{CheckpointData, CheckpointDir, OPTIMIZER_FILE, STATE_FILE, WEIGHTS_FILE};
use crate::device::DeviceSpec;
use crate::error::{NnError, Result};
use crate::layers::Init;
use crate::losses::{bce_with_logits_map, dssim, mse};
use crate::optim::{DflOptimizer, OptimConfig, OptimizerKind};
use crate::options::FaceType;
use crate::store::{collect_param_handles, load_params};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// XSeg's optimizer: RMSprop lr 1e-4 with LR dropout 0.3.
pub fn xseg_optim_config() -> OptimConfig {
    OptimConfig {
        lr_dropout: 0.3,
        ..OptimConfig::new(OptimizerKind::RmsProp, 1e-4)
    }
}

/// Options an XSeg model keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XSegOptions {
    /// Face type the masks are trained for (first run only; DFL's default `wf`).
    pub face_type: FaceType,
    /// Batch size (2..=16, default 4). Trainer.
    pub batch_size: usize,
    /// Pretrain mode: skips zeroed, grayscale reconstruction loss.
    pub pretrain: bool,
}

impl Default for XSegOptions {
    fn default() -> Self {
        XSegOptions {
            face_type: FaceType::WholeFace,
            batch_size: 4,
            pretrain: false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct XSegState {
    format: String,
    version: u32,
    class: String,
    options: XSegOptions,
    iteration: u64,
    seed: u64,
    optimizer_iters: u64,
    loss_history: Vec<f32>,
}

const XSEG_CLASS: &str = "XSeg";

/// An XSeg model ready to train, apply, save and load.
#[derive(Debug)]
pub struct XSegModel {
    options: XSegOptions,
    device: Device,
    seed: u64,
    net: Option<XSeg>,
    opt: DflOptimizer,
    iteration: u64,
    loss_history: Vec<f32>,
}

impl XSegModel {
    /// A fresh XSeg model (seeded) on `spec`.
    pub fn new(options: XSegOptions, spec: DeviceSpec, seed: u64) -> Result<Self> {
        let device = spec.device()?.autodiff();
        let mut rng = StdRng::seed_from_u64(seed);
        let net = XSeg::new(
            &mut Init {
                rng: &mut rng,
                device: &device,
            },
            3,
            32,
            1,
        );
        let opt = DflOptimizer::new(xseg_optim_config(), &net, spec.is_host(), seed ^ 0x5E6);
        Ok(XSegModel {
            options,
            device,
            seed,
            net: Some(net),
            opt,
            iteration: 0,
            loss_history: Vec::new(),
        })
    }

    fn net(&self) -> Result<&XSeg> {
        self.net
            .as_ref()
            .ok_or_else(|| NnError::Batch("XSeg weights were lost by a failed step".into()))
    }

    /// Options in use.
    pub fn options(&self) -> &XSegOptions {
        &self.options
    }

    /// Completed iterations.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// Mean loss of every iteration.
    pub fn loss_history(&self) -> &[f32] {
        &self.loss_history
    }

    /// Changes the options that may change (batch size, pretrain). Switching pretrain off
    /// resets the iteration counter (weights kept), as DFL does.
    pub fn set_options(&mut self, new: XSegOptions) -> Result<()> {
        if new.face_type != self.options.face_type {
            return Err(NnError::option(
                "face_type",
                "cannot change on an existing XSeg model",
            ));
        }
        if self.options.pretrain && !new.pretrain {
            self.iteration = 0;
        }
        self.options = new;
        Ok(())
    }

    fn check(name: &str, t: &Tensor<4>, ch: usize) -> Result<usize> {
        let d = t.dims();
        if d[1] != ch || d[2] != XSEG_RESOLUTION || d[3] != XSEG_RESOLUTION || d[0] == 0 {
            return Err(NnError::Batch(format!(
                "{name} has shape {d:?}, expected [B, {ch}, 256, 256]"
            )));
        }
        Ok(d[0])
    }

    /// One training step. `images` `[B, 3, 256, 256]` BGR in `[0, 1]`; `targets` are the
    /// binary masks `[B, 1, 256, 256]` (or, in pretrain mode, the grayscale images). Returns
    /// the batch-mean loss. Gradients are of the per-sample loss sum, as in DFL.
    pub fn train_step(&mut self, images: Tensor<4>, targets: Tensor<4>) -> Result<f32> {
        let b = Self::check("images", &images, 3)?;
        if Self::check("targets", &targets, 1)? != b {
            return Err(NnError::Batch(
                "images and targets differ in batch size".into(),
            ));
        }
        let images = images.to_device(&self.device);
        let targets = targets.to_device(&self.device);
        let pretrain = self.options.pretrain;
        let (logits, mask) = self.net()?.forward(images, pretrain);
        let loss = if pretrain {
            dssim(mask.clone(), targets.clone(), 22)
                .mean_dim(1)
                .reshape([b])
                * 5.0
                + dssim(mask.clone(), targets.clone(), 11)
                    .mean_dim(1)
                    .reshape([b])
                    * 5.0
                + mse(mask, targets) * 10.0
        } else {
            bce_with_logits_map(logits, targets)
        };
        let mean: f32 = loss.clone().detach().mean().into_scalar();
        if !mean.is_finite() {
            return Err(NnError::Batch(format!(
                "XSeg loss is not finite ({mean}); weights left unchanged"
            )));
        }
        let grads = loss.sum().backward();
        if let Some(net) = self.net.take() {
            self.net = Some(self.opt.step(net, grads));
        }
        self.iteration += 1;
        self.loss_history.push(mean);
        Ok(mean)
    }

    /// DFL's `XSegNet.extract`: masks `[B, 1, 256, 256]` for `images` `[B, 3, 256, 256]`,
    /// clipped to `[0, 1]` with values below 0.1 set to 0, on the model's device without
    /// autodiff.
    pub fn extract(&self, images: Tensor<4>) -> Result<Tensor<4>> {
        Self::check("images", &images, 3)?;
        let inner = self.device.clone().without_autodiff();
        let net = self.net()?.valid();
        let (_, mask) = net.forward(images.to_device(&inner), false);
        let mask = mask.clamp(0.0, 1.0);
        let low = mask.clone().lower_elem(0.1);
        Ok(mask.mask_fill(low, 0.0))
    }

    /// Writes a checkpoint generation.
    pub fn save(&self, dir: &CheckpointDir) -> Result<std::path::PathBuf> {
        let mut weights = BTreeMap::new();
        collect_param_handles(self.net()?, "", &mut weights);
        let optimizer = self
            .opt
            .state_for_save()
            .into_iter()
            .map(|(k, v)| (format!("opt.{k}"), v))
            .collect();
        let state = XSegState {
            format: crate::saehd::CHECKPOINT_FORMAT.to_string(),
            version: crate::saehd::CHECKPOINT_VERSION,
            class: XSEG_CLASS.to_string(),
            options: self.options.clone(),
            iteration: self.iteration,
            seed: self.seed,
            optimizer_iters: self.opt.iters(),
            loss_history: self.loss_history.clone(),
        };
        let state = serde_json::to_value(&state)
            .map_err(|e| NnError::bad_file(dir.root(), e.to_string()))?;
        dir.save(&CheckpointData {
            weights,
            optimizer,
            state,
        })
    }

    /// Loads the newest complete XSeg checkpoint of `dir` onto `spec`.
    pub fn load(dir: &CheckpointDir, spec: DeviceSpec) -> Result<Self> {
        let ckpt = dir.load_latest()?;
        let sp = ckpt.dir.join(STATE_FILE);
        let state: XSegState = serde_json::from_value(ckpt.state)
            .map_err(|e| NnError::bad_file(&sp, format!("unexpected content: {e}")))?;
        if state.class != XSEG_CLASS {
            return Err(NnError::bad_file(
                &sp,
                format!("holds a {} model, not XSeg", state.class),
            ));
        }
        let mut m = Self::new(state.options, spec, state.seed)?;
        let mut w = ckpt.weights;
        let net = m
            .net
            .take()
            .ok_or_else(|| NnError::Batch("no net".into()))?;
        m.net = Some(load_params(net, "", &mut w, &ckpt.dir.join(WEIGHTS_FILE))?);
        let opt_state = ckpt
            .optimizer
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("opt.").map(|n| (n.to_string(), v)))
            .collect();
        m.opt.load_state(
            opt_state,
            state.optimizer_iters,
            &ckpt.dir.join(OPTIMIZER_FILE),
        )?;
        m.iteration = state.iteration;
        m.loss_history = state.loss_history;
        Ok(m)
    }

    /// Parameter count (17.57 M for DFL's XSeg).
    pub fn num_params(&self) -> usize {
        self.net.as_ref().map(|n| n.num_params()).unwrap_or(0)
    }
}
