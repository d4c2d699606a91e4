//! Quick96 (§5.3): DF-UD at 96 px with fixed dims (ae 128, e 64, d 64, mask 16), RMSprop at
//! lr 2e-4 with LR dropout 0.3, always masked with `blur(mask, 3)` (no saturation).
//!
//! The sample side of Quick96 belongs to the trainer: every iteration with `iter % 3 == 0`
//! (when a previous batch exists) DFL trains again on the previous batch with
//! `warped := target`. [`Quick96::reuses_previous_batch`] and [`AeBatch::unwarped`] give the
//! trainer both halves of that rule.

use crate::archs::AeDims;
use crate::checkpoint::{CheckpointDir, LoadedCheckpoint};
use crate::device::DeviceSpec;
use crate::error::Result;
use crate::options::{FaceType, LrDropout, SaehdOptions};
use crate::saehd::{
    AeBatch, LearnedMasks, ModelClass, Predicted, PreviewOutputs, Saehd, StepLosses,
};
use burn::tensor::Tensor;

/// Quick96's fixed batch size.
pub const QUICK96_BATCH: usize = 4;

/// A Quick96 model.
#[derive(Debug)]
pub struct Quick96 {
    inner: Saehd,
}

impl Quick96 {
    /// The fixed settings expressed as SAEHD options (what the checkpoint records).
    pub fn options() -> SaehdOptions {
        let d = AeDims::quick96();
        SaehdOptions {
            resolution: d.resolution,
            archi: d.archi,
            ae_dims: d.ae_dims,
            e_dims: d.e_dims,
            d_dims: d.d_dims,
            d_mask_dims: d.d_mask_dims,
            face_type: FaceType::Full,
            batch_size: QUICK96_BATCH,
            masked_training: true,
            random_src_flip: false,
            random_dst_flip: false,
            random_warp: true,
            adabelief: false,
            lr_dropout: LrDropout::Y,
            gan_patch_size: d.resolution / 8,
            ..SaehdOptions::default()
        }
    }

    /// A fresh Quick96 model (seeded) on `spec`.
    pub fn new(spec: DeviceSpec, seed: u64) -> Result<Self> {
        Ok(Quick96 {
            inner: Saehd::new_class(ModelClass::Quick96, Self::options(), spec, seed)?,
        })
    }

    /// Quick96's training rules (loss masks, RMSprop 2e-4 with LR dropout) on other dims.
    /// DFL's Quick96 is [`Self::new`]; tests use this for tiny nets.
    pub fn with_dims(dims: AeDims, spec: DeviceSpec, seed: u64) -> Result<Self> {
        let options = SaehdOptions {
            resolution: dims.resolution,
            archi: dims.archi,
            ae_dims: dims.ae_dims,
            e_dims: dims.e_dims,
            d_dims: dims.d_dims,
            d_mask_dims: dims.d_mask_dims,
            gan_patch_size: (dims.resolution / 8).max(3),
            ..Self::options()
        };
        Ok(Quick96 {
            inner: Saehd::new_class(ModelClass::Quick96, options, spec, seed)?,
        })
    }

    /// Mutable access to the shared machinery (weight import, optimizer override).
    pub fn as_saehd_mut(&mut self) -> &mut Saehd {
        &mut self.inner
    }

    /// Whether DFL would train iteration `iteration` (0-based count of completed steps)
    /// on the previous batch, un-warped, instead of a new one.
    pub fn reuses_previous_batch(iteration: u64) -> bool {
        iteration.is_multiple_of(3)
    }

    /// One training step on exactly `batch` (see the module docs for the reuse rule).
    pub fn train_step(&mut self, batch: &AeBatch) -> Result<StepLosses> {
        self.inner.train_step(batch)
    }

    /// Merge-time prediction: the swapped face and the learned masks asked for.
    pub fn predict(&self, dst_faces: Tensor<4>, masks: LearnedMasks) -> Result<Predicted> {
        self.inner.predict(dst_faces, masks)
    }

    /// Preview predictions from unwarped targets.
    pub fn preview(&self, target_src: Tensor<4>, target_dst: Tensor<4>) -> Result<PreviewOutputs> {
        self.inner.preview(target_src, target_dst)
    }

    /// Completed iterations.
    pub fn iteration(&self) -> u64 {
        self.inner.iteration()
    }

    /// `[src, dst]` loss per iteration.
    pub fn loss_history(&self) -> &[[f32; 2]] {
        self.inner.loss_history()
    }

    /// The shared SAEHD machinery (nets, options).
    pub fn as_saehd(&self) -> &Saehd {
        &self.inner
    }

    /// Writes a checkpoint generation.
    pub fn save(&self, dir: &CheckpointDir) -> Result<std::path::PathBuf> {
        self.inner.save(dir)
    }

    /// Loads the newest complete Quick96 checkpoint of `dir`.
    pub fn load(dir: &CheckpointDir, spec: DeviceSpec) -> Result<Self> {
        Self::from_loaded(dir.load_latest()?, spec)
    }

    /// Builds a Quick96 model from an already-read checkpoint generation (an older
    /// generation, when the newest one is unusable).
    pub fn from_loaded(ckpt: LoadedCheckpoint, spec: DeviceSpec) -> Result<Self> {
        Ok(Quick96 {
            inner: Saehd::from_checkpoint(ckpt, spec, None, ModelClass::Quick96)?,
        })
    }
}
