//! SAEHD's options (§5.2 table) with DFL's defaults, ranges and "first run only" rules.

use crate::archs::{AeDims, Archi, ArchiType};
use crate::error::{NnError, Result};
use crate::optim::{OptimConfig, OptimizerKind};
use serde::{Deserialize, Serialize};

/// DFL's face types a model can be trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaceType {
    /// Half face.
    #[serde(rename = "h")]
    Half,
    /// Mid-half face.
    #[serde(rename = "mf")]
    MidFull,
    /// Full face.
    #[serde(rename = "f")]
    Full,
    /// Whole face.
    #[serde(rename = "wf")]
    WholeFace,
    /// Head.
    #[serde(rename = "head")]
    Head,
}

/// `lr_dropout` option: off, on, or on with masks generated on the CPU (same numbers here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrDropout {
    /// Off.
    N,
    /// On (p = 0.3 with a 500-step cosine LR cycle).
    Y,
    /// On, masks drawn on the CPU (DFL's VRAM saver; identical maths).
    Cpu,
}

/// `ct_mode`: colour transfer applied to src samples (the trainer's sample pipeline does it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtMode {
    /// No colour transfer.
    None,
    /// Reinhard colour transfer.
    Rct,
    /// Linear colour transfer.
    Lct,
    /// Monge-Kantorovich linear.
    Mkl,
    /// Iterative distribution transfer.
    Idt,
    /// Sliced optimal transfer.
    Sot,
}

/// Every SAEHD option. Arch-defining ones (first run only) are `resolution`, `face_type`,
/// `archi`, `ae_dims`, `e_dims`, `d_dims`, `d_mask_dims`; a checkpoint refuses to load when
/// they differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaehdOptions {
    /// Backup every N hours (0 = off). Trainer.
    pub autobackup_hour: u32,
    /// Write preview history images. Trainer.
    pub write_preview_history: bool,
    /// Stop at this iteration (0 = never). Trainer.
    pub target_iter: u64,
    /// Random horizontal flip of src samples. Trainer.
    pub random_src_flip: bool,
    /// Random horizontal flip of dst samples. Trainer.
    pub random_dst_flip: bool,
    /// Samples per side per iteration. Trainer.
    pub batch_size: usize,
    /// Face size (first run only).
    pub resolution: usize,
    /// Face type (first run only).
    pub face_type: FaceType,
    /// Architecture (first run only).
    pub archi: Archi,
    /// Bottleneck width (first run only).
    pub ae_dims: usize,
    /// Encoder width (first run only).
    pub e_dims: usize,
    /// Decoder width (first run only).
    pub d_dims: usize,
    /// Mask decoder width (first run only).
    pub d_mask_dims: usize,
    /// Loss only inside the (blurred) face mask; forced on for h/mf/f.
    pub masked_training: bool,
    /// 300 x L1 on the eyes/mouth region.
    pub eyes_mouth_prio: bool,
    /// Sample yaws uniformly. Trainer.
    pub uniform_yaw: bool,
    /// Fill the background near the mask edge with a blur of the background only.
    pub blur_out_mask: bool,
    /// Keep weights and optimizer on the GPU (DFL's VRAM saver when false; no effect here).
    pub models_opt_on_gpu: bool,
    /// AdaBelief (true) or RMSprop.
    pub adabelief: bool,
    /// LR dropout mode.
    pub lr_dropout: LrDropout,
    /// Random grid warp of the inputs (trainer); off also freezes LIAE's inter_AB.
    pub random_warp: bool,
    /// Random HSV shift of src samples, 0..=0.3. Trainer.
    pub random_hsv_power: f32,
    /// GAN loss weight, 0..=5 (0 = off).
    pub gan_power: f32,
    /// GAN patch size, 3..=640 (default R/8).
    pub gan_patch_size: usize,
    /// GAN discriminator width, 4..=512.
    pub gan_dims: usize,
    /// True-face code discriminator weight, 0..=1 (DF only).
    pub true_face_power: f32,
    /// Face style loss power, 0..=100.
    pub face_style_power: f32,
    /// Background style loss power, 0..=100.
    pub bg_style_power: f32,
    /// Colour transfer of src samples. Trainer.
    pub ct_mode: CtMode,
    /// Global-norm gradient clipping at 1.0.
    pub clipgrad: bool,
    /// Pretraining mode.
    pub pretrain: bool,
}

impl Default for SaehdOptions {
    fn default() -> Self {
        let d = AeDims::saehd_default();
        SaehdOptions {
            autobackup_hour: 0,
            write_preview_history: false,
            target_iter: 0,
            random_src_flip: false,
            random_dst_flip: true,
            batch_size: 8,
            resolution: d.resolution,
            face_type: FaceType::Full,
            archi: d.archi,
            ae_dims: d.ae_dims,
            e_dims: d.e_dims,
            d_dims: d.d_dims,
            d_mask_dims: d.d_mask_dims,
            masked_training: true,
            eyes_mouth_prio: false,
            uniform_yaw: false,
            blur_out_mask: false,
            models_opt_on_gpu: true,
            adabelief: true,
            lr_dropout: LrDropout::N,
            random_warp: true,
            random_hsv_power: 0.0,
            gan_power: 0.0,
            gan_patch_size: d.resolution / 8,
            gan_dims: 16,
            true_face_power: 0.0,
            face_style_power: 0.0,
            bg_style_power: 0.0,
            ct_mode: CtMode::None,
            clipgrad: false,
            pretrain: false,
        }
    }
}

/// SAEHD's learning rate for every optimizer.
pub const SAEHD_LR: f32 = 5e-5;

impl SaehdOptions {
    /// The shape-defining subset.
    pub fn dims(&self) -> AeDims {
        AeDims {
            archi: self.archi,
            resolution: self.resolution,
            ae_dims: self.ae_dims,
            e_dims: self.e_dims,
            d_dims: self.d_dims,
            d_mask_dims: self.d_mask_dims,
        }
    }

    /// Checks every range of §5.2 (nothing is rounded silently). Front ends call this on
    /// user input.
    pub fn validate(&self) -> Result<()> {
        self.dims().validate()?;
        self.check_buildable()
    }

    /// The checks a model needs to be built: shapes buildable (see
    /// [`AeDims::check_buildable`]) and every non-shape option in its range. Unlike
    /// [`Self::validate`] it accepts widths and resolutions outside DFL's prompt ranges
    /// (tiny test nets).
    pub fn check_buildable(&self) -> Result<()> {
        self.dims().check_buildable()?;
        let range = |name: &'static str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(NnError::option(name, format!("{v} is outside {lo}..={hi}")))
            }
        };
        range("random_hsv_power", self.random_hsv_power, 0.0, 0.3)?;
        range("gan_power", self.gan_power, 0.0, 5.0)?;
        range("true_face_power", self.true_face_power, 0.0, 1.0)?;
        range("face_style_power", self.face_style_power, 0.0, 100.0)?;
        range("bg_style_power", self.bg_style_power, 0.0, 100.0)?;
        if self.autobackup_hour > 24 {
            return Err(NnError::option("autobackup_hour", "must be 0..=24"));
        }
        if self.batch_size == 0 {
            return Err(NnError::option("batch_size", "must be at least 1"));
        }
        if !(3..=640).contains(&self.gan_patch_size) {
            return Err(NnError::option(
                "gan_patch_size",
                format!("{} is outside 3..=640", self.gan_patch_size),
            ));
        }
        if !(4..=512).contains(&self.gan_dims) {
            return Err(NnError::option(
                "gan_dims",
                format!("{} is outside 4..=512", self.gan_dims),
            ));
        }
        if self.true_face_power > 0.0 && self.archi.kind == ArchiType::Liae {
            return Err(NnError::option(
                "true_face_power",
                "is only available for DF archis (DFL forces 0 for LIAE)",
            ));
        }
        Ok(())
    }

    /// Masked training as DFL applies it: always on for half, mid-half and full faces.
    pub fn effective_masked_training(&self) -> bool {
        self.masked_training
            || matches!(
                self.face_type,
                FaceType::Half | FaceType::MidFull | FaceType::Full
            )
    }

    /// Random warp as the model sees it (pretrain forces it off).
    pub fn effective_random_warp(&self) -> bool {
        self.random_warp && !self.pretrain
    }

    /// GAN weight in effect (0 in pretrain).
    pub fn effective_gan_power(&self) -> f32 {
        if self.pretrain { 0.0 } else { self.gan_power }
    }

    /// Face / background style powers in effect (0 in pretrain).
    pub fn effective_style_powers(&self) -> (f32, f32) {
        if self.pretrain {
            (0.0, 0.0)
        } else {
            (self.face_style_power, self.bg_style_power)
        }
    }

    /// Optimizer settings shared by G and both discriminators: lr 5e-5, LR dropout 0.3 with a
    /// 500-step cosine cycle when `lr_dropout` is on (not in pretrain), clipnorm 1 with
    /// `clipgrad`.
    pub fn optim_config(&self) -> OptimConfig {
        let dropout = self.lr_dropout != LrDropout::N && !self.pretrain;
        OptimConfig {
            kind: if self.adabelief {
                OptimizerKind::AdaBelief
            } else {
                OptimizerKind::RmsProp
            },
            lr: SAEHD_LR,
            lr_dropout: if dropout { 0.3 } else { 1.0 },
            lr_cos: if dropout { 500 } else { 0 },
            clipnorm: if self.clipgrad { 1.0 } else { 0.0 },
        }
    }

    /// Names the first arch-defining option that differs between `self` (stored) and `other`
    /// (requested), with both values.
    pub fn arch_difference(&self, other: &SaehdOptions) -> Option<(&'static str, String, String)> {
        let pairs: [(&'static str, String, String); 7] = [
            (
                "resolution",
                self.resolution.to_string(),
                other.resolution.to_string(),
            ),
            (
                "face_type",
                format!("{:?}", self.face_type),
                format!("{:?}", other.face_type),
            ),
            ("archi", self.archi.to_string(), other.archi.to_string()),
            (
                "ae_dims",
                self.ae_dims.to_string(),
                other.ae_dims.to_string(),
            ),
            ("e_dims", self.e_dims.to_string(), other.e_dims.to_string()),
            ("d_dims", self.d_dims.to_string(), other.d_dims.to_string()),
            (
                "d_mask_dims",
                self.d_mask_dims.to_string(),
                other.d_mask_dims.to_string(),
            ),
        ];
        pairs.into_iter().find(|(_, a, b)| a != b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dfls_and_roundtrip_json() {
        let o = SaehdOptions::default();
        o.validate().unwrap();
        assert_eq!(o.archi.to_string(), "liae-ud");
        assert_eq!(
            (o.resolution, o.ae_dims, o.d_mask_dims, o.gan_patch_size),
            (128, 256, 22, 16)
        );
        let j = serde_json::to_string(&o).unwrap();
        assert!(
            j.contains("\"archi\":\"liae-ud\"") && j.contains("\"face_type\":\"f\""),
            "{j}"
        );
        let back: SaehdOptions = serde_json::from_str(&j).unwrap();
        assert_eq!(back, o);
        // Missing fields take defaults (older files keep loading).
        let partial: SaehdOptions =
            serde_json::from_str(r#"{"archi":"df-t","resolution":96}"#).unwrap();
        assert_eq!(partial.archi.to_string(), "df-t");
        assert_eq!(partial.ae_dims, 256);
    }

    #[test]
    fn optimizer_rules_and_arch_difference() {
        let mut o = SaehdOptions::default();
        assert_eq!(o.optim_config().lr_dropout, 1.0);
        o.lr_dropout = LrDropout::Y;
        o.clipgrad = true;
        let c = o.optim_config();
        assert_eq!((c.lr_dropout, c.lr_cos, c.clipnorm), (0.3, 500, 1.0));
        o.pretrain = true;
        assert_eq!(o.optim_config().lr_dropout, 1.0);
        let mut p = o.clone();
        p.d_dims = 48;
        assert_eq!(o.arch_difference(&p).unwrap().0, "d_dims");
        o.true_face_power = 0.1;
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("true_face_power")
        );
    }
}
