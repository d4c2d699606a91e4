//! The SAEHD model (§5.2) and its training step: generator nets (DF or LIAE wiring), the
//! optional true-face and GAN discriminators, their optimizers, the loss composition, the
//! predictions for merging and previews, and save/load.
//!
//! Quick96 (§5.3) is the same machinery with fixed settings, see [`crate::quick96`].

use crate::archs::deepfake::{Decoder, Encoder, Inter};
use crate::archs::discriminators::{CodeDiscriminator, UNetPatchDiscriminator};
use crate::archs::{AeDims, ArchiType};
use crate::checkpoint::{CheckpointData, CheckpointDir, LoadedCheckpoint};
use crate::device::DeviceSpec;
use crate::error::{NnError, Result};
use crate::layers::Init;
use crate::losses::{
    bce_with_logits, dssim, gaussian_blur, mae, mse, style_loss, total_variation_mse,
};
use crate::optim::{DflOptimizer, OptimConfig, OptimizerKind};
use crate::options::SaehdOptions;
use crate::store::{collect_param_handles, load_params};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

mod nets_def {
    // The burn derive binds every field name; DFL's names `inter_AB`/`inter_B` are kept on
    // purpose because they become the checkpoint tensor names.
    #![allow(non_snake_case)]
    use super::{Decoder, Encoder, Inter};
    use burn::module::Module;

    /// The generator networks. Field names are DFL's model names (`inter_AB`…), which become the
    /// tensor name prefixes in checkpoints.
    #[derive(Module, Debug)]
    pub struct SaehdNets {
        /// Shared encoder.
        pub encoder: Encoder,
        /// DF: the single inter.
        pub inter: Option<Inter>,
        /// LIAE: inter shared by src and dst.
        pub inter_AB: Option<Inter>,
        /// LIAE: dst-only inter.
        pub inter_B: Option<Inter>,
        /// DF: src decoder.
        pub decoder_src: Option<Decoder>,
        /// DF: dst decoder.
        pub decoder_dst: Option<Decoder>,
        /// LIAE: the one decoder.
        pub decoder: Option<Decoder>,
    }
}
pub use nets_def::SaehdNets;

/// Decoder outputs: image and mask.
pub type Pred = (Tensor<4>, Tensor<4>);

impl SaehdNets {
    /// Builds DF or LIAE nets for `dims`, drawing initial weights from `init`.
    pub fn new(init: &mut Init, dims: &AeDims) -> Self {
        let encoder = Encoder::new(init, dims);
        let enc_out = dims.encoder_out();
        let (ae, d, m) = (dims.ae_dims, dims.d_dims, dims.d_mask_dims);
        match dims.archi.kind {
            ArchiType::Df => SaehdNets {
                encoder,
                inter: Some(Inter::new(init, dims, enc_out, ae, ae)),
                inter_AB: None,
                inter_B: None,
                decoder_src: Some(Decoder::new(init, &dims.archi, ae, d, m)),
                decoder_dst: Some(Decoder::new(init, &dims.archi, ae, d, m)),
                decoder: None,
            },
            ArchiType::Liae => SaehdNets {
                encoder,
                inter: None,
                inter_AB: Some(Inter::new(init, dims, enc_out, ae, ae * 2)),
                inter_B: Some(Inter::new(init, dims, enc_out, ae, ae * 2)),
                decoder_src: None,
                decoder_dst: None,
                decoder: Some(Decoder::new(init, &dims.archi, ae * 4, d, m)),
            },
        }
    }

    /// Parameter counts per part, in DFL's part names and order.
    pub fn part_params(&self) -> Vec<(&'static str, usize)> {
        let mut v = vec![("encoder", self.encoder.num_params())];
        let mut add = |name, p: &Option<_>| {
            if let Some(x) = p {
                v.push((name, Module::num_params(x)));
            }
        };
        add("inter", &self.inter);
        add("inter_AB", &self.inter_AB);
        add("inter_B", &self.inter_B);
        let mut addd = |name, p: &Option<Decoder>| {
            if let Some(x) = p {
                v.push((name, x.num_params()));
            }
        };
        addd("decoder_src", &self.decoder_src);
        addd("decoder_dst", &self.decoder_dst);
        addd("decoder", &self.decoder);
        v
    }

    fn wiring(&self) -> Result<Wiring<'_>> {
        match (
            &self.inter,
            &self.decoder_src,
            &self.decoder_dst,
            &self.inter_AB,
            &self.inter_B,
            &self.decoder,
        ) {
            (Some(inter), Some(src), Some(dst), None, None, None) => {
                Ok(Wiring::Df { inter, src, dst })
            }
            (None, None, None, Some(ab), Some(b), Some(dec)) => Ok(Wiring::Liae { ab, b, dec }),
            _ => Err(NnError::Batch("SAEHD nets are neither DF nor LIAE".into())),
        }
    }

    /// Merge-time prediction from dst faces `[B, 3, R, R]`: (swapped face, learned-prd mask,
    /// learned-dst mask), each mask only when `masks` asks for it.
    pub fn predict(&self, dst: Tensor<4>, masks: LearnedMasks) -> Result<Predicted> {
        let code = self.encoder.forward(dst);
        match self.wiring()? {
            // Only the branches whose outputs are used: the dst decoder's (DF) or the dst
            // code's (LIAE) image is never looked at, and is half of the work.
            Wiring::Df { inter, src, dst } => {
                let z = inter.forward(code);
                let face = src.forward_rgb(z.clone());
                let prd = masks.prd.then(|| src.forward_mask(z.clone()));
                Ok((face, prd, masks.dst.then(|| dst.forward_mask(z))))
            }
            Wiring::Liae { ab, b, dec } => {
                let zab = ab.forward(code.clone());
                let code_src_dst = Tensor::cat(vec![zab.clone(), zab.clone()], 1);
                let img = dec.forward_rgb(code_src_dst.clone());
                let code_dst = || Tensor::cat(vec![b.forward(code.clone()), zab.clone()], 1);
                Ok(match (masks.prd, masks.dst) {
                    (true, true) => {
                        let n = code_src_dst.dims()[0];
                        let both = Tensor::cat(vec![code_src_dst, code_dst()], 0);
                        let mask = dec.forward_mask(both);
                        (
                            img,
                            Some(mask.clone().narrow(0, 0, n)),
                            Some(mask.narrow(0, n, n)),
                        )
                    }
                    (true, false) => (img, Some(dec.forward_mask(code_src_dst)), None),
                    (false, true) => (img, None, Some(dec.forward_mask(code_dst()))),
                    (false, false) => (img, None, None),
                })
            }
        }
    }
}

/// Which learned masks a merge-time prediction computes (each is a mask decoder's work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnedMasks {
    /// The predicted face's mask (the src decoder's, DF; the shared decoder's on the src
    /// code, LIAE).
    pub prd: bool,
    /// The dst face's mask.
    pub dst: bool,
}

impl LearnedMasks {
    /// Both masks.
    pub const ALL: LearnedMasks = LearnedMasks {
        prd: true,
        dst: true,
    };

    /// Neither mask.
    pub const NONE: LearnedMasks = LearnedMasks {
        prd: false,
        dst: false,
    };

    /// The masks either asks for.
    pub fn union(self, other: LearnedMasks) -> LearnedMasks {
        LearnedMasks {
            prd: self.prd || other.prd,
            dst: self.dst || other.dst,
        }
    }
}

/// A merge-time prediction: the swapped face `[B, 3, R, R]` and the learned-prd and
/// learned-dst masks `[B, 1, R, R]` that were asked for.
pub type Predicted = (Tensor<4>, Option<Tensor<4>>, Option<Tensor<4>>);

enum Wiring<'a> {
    Df {
        inter: &'a Inter,
        src: &'a Decoder,
        dst: &'a Decoder,
    },
    Liae {
        ab: &'a Inter,
        b: &'a Inter,
        dec: &'a Decoder,
    },
}

/// One training batch (§5.2 "Inputs per iteration"): NCHW, BGR in `[0, 1]`, all `R x R`.
#[derive(Debug, Clone)]
pub struct AeBatch {
    /// Warped src images `[B, 3, R, R]`.
    pub warped_src: Tensor<4>,
    /// Target src images `[B, 3, R, R]`.
    pub target_src: Tensor<4>,
    /// Full-face src masks `[B, 1, R, R]`.
    pub target_srcm: Tensor<4>,
    /// Eyes+mouth src masks `[B, 1, R, R]` (needed with `eyes_mouth_prio`).
    pub target_srcm_em: Option<Tensor<4>>,
    /// Warped dst images.
    pub warped_dst: Tensor<4>,
    /// Target dst images.
    pub target_dst: Tensor<4>,
    /// Full-face dst masks.
    pub target_dstm: Tensor<4>,
    /// Eyes+mouth dst masks.
    pub target_dstm_em: Option<Tensor<4>>,
}

impl AeBatch {
    /// The same batch with `warped := target` (Quick96's un-warped reconstruction steps).
    pub fn unwarped(&self) -> AeBatch {
        AeBatch {
            warped_src: self.target_src.clone(),
            warped_dst: self.target_dst.clone(),
            ..self.clone()
        }
    }

    fn check(&self, res: usize, need_em: bool) -> Result<usize> {
        let b = self.warped_src.dims()[0];
        let img = [b, 3, res, res];
        let msk = [b, 1, res, res];
        let named: [(&str, &Tensor<4>, [usize; 4]); 6] = [
            ("warped_src", &self.warped_src, img),
            ("target_src", &self.target_src, img),
            ("target_srcm", &self.target_srcm, msk),
            ("warped_dst", &self.warped_dst, img),
            ("target_dst", &self.target_dst, img),
            ("target_dstm", &self.target_dstm, msk),
        ];
        for (name, t, want) in named {
            if t.dims() != want {
                return Err(NnError::Batch(format!(
                    "{name} has shape {:?}, expected {want:?}",
                    t.dims()
                )));
            }
        }
        if need_em {
            for (name, t) in [
                ("target_srcm_em", &self.target_srcm_em),
                ("target_dstm_em", &self.target_dstm_em),
            ] {
                match t {
                    Some(t) if t.dims() == msk => {}
                    Some(t) => {
                        return Err(NnError::Batch(format!(
                            "{name} has shape {:?}, expected {msk:?}",
                            t.dims()
                        )));
                    }
                    None => {
                        return Err(NnError::Batch(format!(
                            "{name} is required with eyes_mouth_prio"
                        )));
                    }
                }
            }
        }
        if b == 0 {
            return Err(NnError::Batch("empty batch".into()));
        }
        Ok(b)
    }

    fn to_device(&self, device: &Device) -> AeBatch {
        let mv = |t: &Tensor<4>| t.clone().to_device(device);
        AeBatch {
            warped_src: mv(&self.warped_src),
            target_src: mv(&self.target_src),
            target_srcm: mv(&self.target_srcm),
            target_srcm_em: self.target_srcm_em.as_ref().map(mv),
            warped_dst: mv(&self.warped_dst),
            target_dst: mv(&self.target_dst),
            target_dstm: mv(&self.target_dstm),
            target_dstm_em: self.target_dstm_em.as_ref().map(mv),
        }
    }
}

/// Wall time of the phases of one training step, in milliseconds (host clock; on GPU
/// backends a phase may include queued work of the previous one).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StepTimings {
    /// Generator forward and loss.
    pub forward_ms: f64,
    /// Generator backward.
    pub backward_ms: f64,
    /// Generator optimizer update.
    pub update_ms: f64,
    /// Both discriminator steps (0 when disabled).
    pub discriminators_ms: f64,
}

/// Losses of one training step (batch means, as DFL displays them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLosses {
    /// Mean src loss (without GAN / true-face terms).
    pub src: f32,
    /// Mean dst loss.
    pub dst: f32,
    /// True-face discriminator loss, when it trained this step.
    pub d_code: Option<f32>,
    /// GAN discriminator loss, when it trained this step.
    pub d_gan: Option<f32>,
    /// Where the time went.
    pub timings: StepTimings,
}

/// Predictions for preview images (computed from the unwarped targets, as DFL does).
#[derive(Debug, Clone)]
pub struct PreviewOutputs {
    /// src -> src reconstruction and its mask.
    pub src_src: Pred,
    /// dst -> dst reconstruction and its mask.
    pub dst_dst: Pred,
    /// dst -> src swap and its mask.
    pub src_dst: Pred,
}

/// How the loss masks are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaskStyle {
    /// SAEHD: `clip(blur(m), 0, 0.5) * 2`.
    Saturated,
    /// Quick96: `blur(m)` without saturation.
    Plain,
}

/// Which model family a [`Saehd`] instance is (changes checkpoint class and loss masks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelClass {
    /// SAEHD.
    #[serde(rename = "SAEHD")]
    Saehd,
    /// Quick96.
    #[serde(rename = "Quick96")]
    Quick96,
}

/// Format tag written into every checkpoint's `state.json`.
pub const CHECKPOINT_FORMAT: &str = "dfl-rs-model";
/// Version of the checkpoint layout.
pub const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    format: String,
    version: u32,
    class: ModelClass,
    options: SaehdOptions,
    iteration: u64,
    seed: u64,
    optimizer_iters: BTreeMap<String, u64>,
    loss_history: Vec<[f32; 2]>,
}

/// A SAEHD (or Quick96) model ready to train, predict, save and load.
#[derive(Debug)]
pub struct Saehd {
    class: ModelClass,
    options: SaehdOptions,
    spec: DeviceSpec,
    device: Device,
    seed: u64,
    /// Always `Some` between calls; taken only while the optimizer rewrites the weights.
    nets: Option<SaehdNets>,
    g_opt: DflOptimizer,
    code_d: Option<(CodeDiscriminator, DflOptimizer)>,
    gan_d: Option<(UNetPatchDiscriminator, DflOptimizer)>,
    iteration: u64,
    loss_history: Vec<[f32; 2]>,
}

fn filter_size(res: usize, div: f64) -> usize {
    (res as f64 / div) as usize
}

/// Loss mask from a raw mask: `blur(m, max(1, R/32))`, saturated as `clip(., 0, 0.5) * 2`
/// for SAEHD.
pub(crate) fn loss_mask(m: Tensor<4>, res: usize, style: MaskStyle) -> Tensor<4> {
    let blurred = gaussian_blur(m, (res / 32).max(1) as f32);
    match style {
        MaskStyle::Saturated => blurred.clamp(0.0, 0.5) * 2.0,
        MaskStyle::Plain => blurred,
    }
}

/// The DSSIM term of one side: `10 * DSSIM(R/11.6)` below 256 px, else
/// `5 * DSSIM(R/11.6) + 5 * DSSIM(R/23.2)`, averaged over channels, per sample.
pub(crate) fn dssim_term(t: Tensor<4>, p: Tensor<4>, res: usize) -> Tensor<1> {
    let b = t.dims()[0];
    let d = |fs: usize| dssim(t.clone(), p.clone(), fs).mean_dim(1).reshape([b]);
    if res < 256 {
        d(filter_size(res, 11.6)) * 10.0
    } else {
        d(filter_size(res, 11.6)) * 5.0 + d(filter_size(res, 23.2)) * 5.0
    }
}

/// One side's reconstruction loss per sample (§5.2 steps 3-4 without style terms):
/// DSSIM + `10 * MSE` on the (masked) images, `300 * L1` on the eyes/mouth region when given,
/// `10 * MSE` of the mask head against the raw mask.
pub(crate) fn side_loss(
    t: Tensor<4>,
    p: Tensor<4>,
    res: usize,
    eyes_mouth: Option<(Tensor<4>, Tensor<4>, Option<Tensor<4>>)>,
    mask: Tensor<4>,
    pred_mask: Tensor<4>,
) -> Tensor<1> {
    let mut l = dssim_term(t.clone(), p.clone(), res) + mse(t, p) * 10.0;
    if let Some((target, pred, Some(em))) = eyes_mouth {
        l = l + mae(target * em.clone(), pred * em) * 300.0;
    }
    l + mse(mask, pred_mask) * 10.0
}

/// `blur_out_mask`: fills the background next to the mask edge with a blur of the
/// background only, `bg = B(t*(1-m)) / B'(1-m)` (0 denominators replaced by 1).
pub(crate) fn blur_out_mask(target: Tensor<4>, m: Tensor<4>, sigma: f32) -> Tensor<4> {
    let anti = m.clone().neg() + 1.0;
    let x = gaussian_blur(target.clone() * anti.clone(), sigma);
    let y = gaussian_blur(m.clone(), sigma).neg() + 1.0;
    let zero = y.clone().equal_elem(0.0);
    let y = y.mask_fill(zero, 1.0);
    target * m + (x / y) * anti
}

/// The generator forward of one step, batched: the encoder sees src and dst warped images in
/// one call, and each decoder every code it decodes in one call.
struct Forward {
    code_src: Tensor<4>,
    code_dst: Tensor<4>,
    /// The code the swap is decoded from (DF: `code_dst`, LIAE: `code_src_dst`).
    swap_code: Tensor<4>,
    src_src: Pred,
    dst_dst: Pred,
    src_dst: Option<Pred>,
}

/// Sample block `i` (of size `b`) of a batch-concatenated tensor.
fn block(x: &Tensor<4>, i: usize, b: usize) -> Tensor<4> {
    x.clone().narrow(0, i * b, b)
}

impl Forward {
    fn run(nets: &SaehdNets, ws: Tensor<4>, wd: Tensor<4>, need_src_dst: bool) -> Result<Self> {
        let b = ws.dims()[0];
        let codes = nets.encoder.forward(Tensor::cat(vec![ws, wd], 0));
        match nets.wiring()? {
            Wiring::Df { inter, src, dst } => {
                let z = inter.forward(codes);
                let code_src = block(&z, 0, b);
                let code_dst = block(&z, 1, b);
                let (src_src, src_dst) = if need_src_dst {
                    // decoder_src decodes [code_src; code_dst] in one call.
                    let (img, mask) = src.forward(z);
                    (
                        (block(&img, 0, b), block(&mask, 0, b)),
                        Some((block(&img, 1, b), block(&mask, 1, b))),
                    )
                } else {
                    (src.forward(code_src.clone()), None)
                };
                let dst_dst = dst.forward(code_dst.clone());
                Ok(Forward {
                    swap_code: code_dst.clone(),
                    code_src,
                    code_dst,
                    src_src,
                    dst_dst,
                    src_dst,
                })
            }
            Wiring::Liae {
                ab,
                b: inter_b,
                dec,
            } => {
                let zab = ab.forward(codes.clone());
                let zb = inter_b.forward(codes.narrow(0, b, b));
                let ab_s = block(&zab, 0, b);
                let ab_d = block(&zab, 1, b);
                let code_src = Tensor::cat(vec![ab_s.clone(), ab_s], 1);
                let code_dst = Tensor::cat(vec![zb, ab_d.clone()], 1);
                let code_src_dst = Tensor::cat(vec![ab_d.clone(), ab_d], 1);
                let mut all = vec![code_src.clone(), code_dst.clone()];
                if need_src_dst {
                    all.push(code_src_dst.clone());
                }
                // The one decoder decodes [code_src; code_dst; (code_src_dst)] in one call.
                let (img, mask) = dec.forward(Tensor::cat(all, 0));
                Ok(Forward {
                    code_src,
                    code_dst,
                    swap_code: code_src_dst,
                    src_src: (block(&img, 0, b), block(&mask, 0, b)),
                    dst_dst: (block(&img, 1, b), block(&mask, 1, b)),
                    src_dst: need_src_dst.then(|| (block(&img, 2, b), block(&mask, 2, b))),
                })
            }
        }
    }
}

impl Saehd {
    /// A new SAEHD model with fresh weights (seeded) on `spec`. Any buildable shape is
    /// accepted; front ends check DFL's ranges first with [`SaehdOptions::validate`].
    pub fn new(options: SaehdOptions, spec: DeviceSpec, seed: u64) -> Result<Self> {
        Self::new_class(ModelClass::Saehd, options, spec, seed)
    }

    pub(crate) fn new_class(
        class: ModelClass,
        options: SaehdOptions,
        spec: DeviceSpec,
        seed: u64,
    ) -> Result<Self> {
        options.check_buildable()?;
        let device = spec.device()?.autodiff();
        let mut rng = StdRng::seed_from_u64(seed);
        let dims = options.dims();
        let nets = SaehdNets::new(
            &mut Init {
                rng: &mut rng,
                device: &device,
            },
            &dims,
        );
        let g_opt = DflOptimizer::new(
            Self::g_config(class, &options),
            &nets,
            spec.is_host(),
            seed ^ 0x6,
        );
        let mut m = Saehd {
            class,
            options,
            spec,
            device,
            seed,
            nets: Some(nets),
            g_opt,
            code_d: None,
            gan_d: None,
            iteration: 0,
            loss_history: Vec::new(),
        };
        m.sync_discriminators(false)?;
        m.apply_trainable()?;
        Ok(m)
    }

    fn g_config(class: ModelClass, options: &SaehdOptions) -> OptimConfig {
        match class {
            ModelClass::Saehd => options.optim_config(),
            ModelClass::Quick96 => OptimConfig {
                kind: OptimizerKind::RmsProp,
                lr: 2e-4,
                lr_dropout: 0.3,
                lr_cos: 0,
                clipnorm: 0.0,
            },
        }
    }

    fn nets_ref(&self) -> Result<&SaehdNets> {
        self.nets
            .as_ref()
            .ok_or_else(|| NnError::Batch("model weights were lost by a failed step".into()))
    }

    /// Creates, keeps or drops the discriminators to fit the options. `reinit_gan` forces a
    /// fresh GAN discriminator (patch size or width changed).
    fn sync_discriminators(&mut self, reinit_gan: bool) -> Result<()> {
        let o = &self.options;
        let cfg = o.optim_config();
        let dims = o.dims();
        let want_code = self.class == ModelClass::Saehd
            && dims.archi.kind == ArchiType::Df
            && o.true_face_power > 0.0;
        let want_gan = self.class == ModelClass::Saehd && o.gan_power > 0.0;
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0xD15C ^ self.iteration);
        if want_code && self.code_d.is_none() {
            let d = CodeDiscriminator::new(
                &mut Init {
                    rng: &mut rng,
                    device: &self.device,
                },
                dims.ae_dims,
                dims.inter_out_res(),
            );
            let opt = DflOptimizer::new(cfg, &d, self.spec.is_host(), self.seed ^ 0xC);
            self.code_d = Some((d, opt));
        } else if !want_code {
            self.code_d = None;
        }
        if want_gan && (self.gan_d.is_none() || reinit_gan) {
            let d = UNetPatchDiscriminator::new(
                &mut Init {
                    rng: &mut rng,
                    device: &self.device,
                },
                o.gan_patch_size,
                3,
                o.gan_dims,
            );
            if !o.resolution.is_multiple_of(d.total_stride()) {
                return Err(NnError::option(
                    "gan_patch_size",
                    format!(
                        "{} needs a resolution divisible by {}, got {}",
                        o.gan_patch_size,
                        d.total_stride(),
                        o.resolution
                    ),
                ));
            }
            let opt = DflOptimizer::new(cfg, &d, self.spec.is_host(), self.seed ^ 0x9A);
            self.gan_d = Some((d, opt));
        } else if !want_gan {
            self.gan_d = None;
        }
        if let Some((d, opt)) = self.code_d.as_mut() {
            opt.reconfigure(cfg, d);
        }
        if let Some((d, opt)) = self.gan_d.as_mut() {
            opt.reconfigure(cfg, d);
        }
        Ok(())
    }

    /// LIAE without random warp trains with `inter_AB` frozen (DFL leaves it out of the
    /// trainable weights; its optimizer state stays).
    fn apply_trainable(&mut self) -> Result<()> {
        let freeze_ab =
            self.options.archi.kind == ArchiType::Liae && !self.options.effective_random_warp();
        let mut nets = self
            .nets
            .take()
            .ok_or_else(|| NnError::Batch("model weights were lost by a failed step".into()))?;
        nets.inter_AB = nets.inter_AB.map(|ab| ab.set_require_grad(!freeze_ab));
        self.nets = Some(nets);
        Ok(())
    }

    /// Options in use.
    pub fn options(&self) -> &SaehdOptions {
        &self.options
    }

    /// Model family.
    pub fn class(&self) -> ModelClass {
        self.class
    }

    /// Completed training iterations.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// `[src, dst]` mean loss of every iteration so far.
    pub fn loss_history(&self) -> &[[f32; 2]] {
        &self.loss_history
    }

    /// The device the model trains on.
    pub fn device_spec(&self) -> DeviceSpec {
        self.spec
    }

    /// The generator nets (on the autodiff device).
    pub fn nets(&self) -> Result<&SaehdNets> {
        self.nets_ref()
    }

    /// Whether the true-face / GAN discriminators exist (they follow the options).
    pub fn has_discriminators(&self) -> (bool, bool) {
        (self.code_d.is_some(), self.gan_d.is_some())
    }

    /// Changes options between runs (DFL's "override model settings"). Arch-defining
    /// options cannot change; switching pretrain off resets the iteration counter and
    /// re-initialises the inter(s); a changed GAN patch size or width re-initialises the GAN
    /// discriminator; switching between AdaBelief and RMSprop starts that optimizer's state
    /// from zeros (DFL re-initialises missing state keys the same way).
    pub fn set_options(&mut self, new: SaehdOptions) -> Result<()> {
        new.check_buildable()?;
        if let Some((option, stored, requested)) = self.options.arch_difference(&new) {
            return Err(NnError::option(
                option,
                format!("is {stored} for this model and cannot change (requested {requested})"),
            ));
        }
        if self.class == ModelClass::Quick96 && new != self.options {
            return Err(NnError::option("options", "Quick96 has fixed settings"));
        }
        let leaving_pretrain = self.options.pretrain && !new.pretrain;
        let reinit_gan = self.options.gan_patch_size != new.gan_patch_size
            || self.options.gan_dims != new.gan_dims;
        self.options = new;
        if leaving_pretrain {
            // DFL's `set_iter(0)` also cuts the loss history to the new counter.
            self.iteration = 0;
            self.loss_history.clear();
            self.reinit_inters()?;
        }
        let cfg = Self::g_config(self.class, &self.options);
        if let Some(nets) = self.nets.as_ref() {
            self.g_opt.reconfigure(cfg, nets);
        }
        self.sync_discriminators(reinit_gan)?;
        self.apply_trainable()
    }

    /// Replaces the generator weights by the tensors named like [`Self::save`] names them
    /// (`encoder.down1.downs.0.conv1.weight`…; consumed from `weights`). Every tensor must be
    /// present with the architecture's shape; `source` names the origin in errors. For
    /// weights converted from elsewhere (DFL's files, the PyTorch reference).
    pub fn import_weights(
        &mut self,
        weights: &mut std::collections::HashMap<String, crate::store::NamedTensor>,
        source: &Path,
    ) -> Result<()> {
        let nets = self
            .nets
            .take()
            .ok_or_else(|| NnError::Batch("model weights were lost by a failed step".into()))?;
        match load_params(nets.clone(), "", weights, source) {
            Ok(n) => {
                self.nets = Some(n);
                self.apply_trainable()
            }
            Err(e) => {
                self.nets = Some(nets);
                Err(e)
            }
        }
    }

    /// The generator optimizer's settings in effect (learning rate, LR dropout, clipnorm).
    pub fn optimizer_config(&self) -> OptimConfig {
        *self.g_opt.config()
    }

    /// Overrides the generator optimizer settings that the options imply (SAEHD: lr 5e-5…).
    /// For experiments and parity tests; the next [`Self::set_options`] restores DFL's.
    pub fn override_optimizer(&mut self, config: OptimConfig) -> Result<()> {
        let nets = self
            .nets
            .as_ref()
            .ok_or_else(|| NnError::Batch("model weights were lost by a failed step".into()))?;
        self.g_opt.reconfigure(config, nets);
        Ok(())
    }

    fn reinit_inters(&mut self) -> Result<()> {
        let dims = self.options.dims();
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x1A7E5);
        let fresh = SaehdNets::new(
            &mut Init {
                rng: &mut rng,
                device: &self.device,
            },
            &dims,
        );
        let mut nets = self
            .nets
            .take()
            .ok_or_else(|| NnError::Batch("model weights were lost by a failed step".into()))?;
        nets.inter = fresh.inter;
        nets.inter_AB = fresh.inter_AB;
        nets.inter_B = fresh.inter_B;
        self.nets = Some(nets);
        Ok(())
    }

    /// Merge-time prediction for dst faces `[B, 3, R, R]` (any device): the swapped face and
    /// the learned masks asked for ([`Predicted`]), on the model's device without autodiff.
    pub fn predict(&self, dst_faces: Tensor<4>, masks: LearnedMasks) -> Result<Predicted> {
        let r = self.options.resolution;
        let d = dst_faces.dims();
        if d[1] != 3 || d[2] != r || d[3] != r || d[0] == 0 {
            return Err(NnError::Batch(format!(
                "dst faces have shape {d:?}, expected [B, 3, {r}, {r}]"
            )));
        }
        let nets = self.nets_ref()?.valid();
        let inner = self.device.clone().without_autodiff();
        nets.predict(dst_faces.to_device(&inner), masks)
    }

    /// Preview predictions from the unwarped target images (`[B, 3, R, R]` each).
    pub fn preview(&self, target_src: Tensor<4>, target_dst: Tensor<4>) -> Result<PreviewOutputs> {
        let r = self.options.resolution;
        for (name, t) in [("target_src", &target_src), ("target_dst", &target_dst)] {
            let d = t.dims();
            if d[1] != 3 || d[2] != r || d[3] != r || d[0] == 0 {
                return Err(NnError::Batch(format!(
                    "{name} has shape {d:?}, expected [B, 3, {r}, {r}]"
                )));
            }
        }
        let nets = self.nets_ref()?.valid();
        let inner = self.device.clone().without_autodiff();
        let f = Forward::run(
            &nets,
            target_src.to_device(&inner),
            target_dst.to_device(&inner),
            true,
        )?;
        let src_dst = f
            .src_dst
            .ok_or_else(|| NnError::Batch("no src->dst prediction".into()))?;
        Ok(PreviewOutputs {
            src_src: f.src_src,
            dst_dst: f.dst_dst,
            src_dst,
        })
    }

    /// One training iteration on `batch` (§5.2 step 8): the generator update, then the
    /// true-face discriminator (if enabled and not pretraining) and the GAN discriminator (if
    /// enabled). Returns the batch-mean src/dst losses, which are also appended to the loss
    /// history. A non-finite loss is an error and leaves the weights unchanged.
    ///
    /// Gradients are those of the *sum* over the batch of the per-sample losses, as in DFL
    /// (`tf.gradients` of a per-sample loss vector). The discriminator steps reuse this
    /// step's (detached) predictions; DFL recomputes them with the just-updated generator,
    /// which costs a second generator forward for a one-step-newer sample.
    pub fn train_step(&mut self, batch: &AeBatch) -> Result<StepLosses> {
        let o = self.options.clone();
        let res = o.resolution;
        let saehd = self.class == ModelClass::Saehd;
        let b = batch.check(res, o.eyes_mouth_prio && saehd)?;
        let batch = batch.to_device(&self.device);
        let masked = !saehd || o.effective_masked_training();
        let mask_style = if saehd {
            MaskStyle::Saturated
        } else {
            MaskStyle::Plain
        };
        let (face_style, bg_style) = if saehd {
            o.effective_style_powers()
        } else {
            (0.0, 0.0)
        };
        let gan_power = if saehd { o.effective_gan_power() } else { 0.0 };
        let clock = std::time::Instant::now();
        let elapsed_ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;

        let (mut target_src, mut target_dst) = (batch.target_src.clone(), batch.target_dst.clone());
        if o.blur_out_mask && saehd {
            let sigma = res as f32 / 128.0;
            target_src = blur_out_mask(target_src, batch.target_srcm.clone(), sigma);
            target_dst = blur_out_mask(target_dst, batch.target_dstm.clone(), sigma);
        }

        let nets = self.nets_ref()?;
        let f = Forward::run(
            nets,
            batch.warped_src.clone(),
            batch.warped_dst.clone(),
            bg_style > 0.0,
        )?;
        let ms = loss_mask(batch.target_srcm.clone(), res, mask_style);
        let md = loss_mask(batch.target_dstm.clone(), res, mask_style);
        let (ts, ps) = if masked {
            (
                target_src.clone() * ms.clone(),
                f.src_src.0.clone() * ms.clone(),
            )
        } else {
            (target_src.clone(), f.src_src.0.clone())
        };
        let (td, pd) = if masked {
            (
                target_dst.clone() * md.clone(),
                f.dst_dst.0.clone() * md.clone(),
            )
        } else {
            (target_dst.clone(), f.dst_dst.0.clone())
        };
        let em_prio = o.eyes_mouth_prio && saehd;
        let mut src_loss = side_loss(
            ts.clone(),
            ps.clone(),
            res,
            em_prio.then(|| {
                (
                    target_src.clone(),
                    f.src_src.0.clone(),
                    batch.target_srcm_em.clone(),
                )
            }),
            batch.target_srcm.clone(),
            f.src_src.1.clone(),
        );
        let dst_loss = side_loss(
            td,
            pd,
            res,
            em_prio.then(|| {
                (
                    target_dst.clone(),
                    f.dst_dst.0.clone(),
                    batch.target_dstm_em.clone(),
                )
            }),
            batch.target_dstm.clone(),
            f.dst_dst.1.clone(),
        );

        if face_style > 0.0 {
            // style(decoder(stopgrad(swap code)).rgb * stopgrad(src->dst mask),
            //       stopgrad(pred_dst_dst * its mask)): the gradient reaches the decoder only.
            let dec = match nets.wiring()? {
                Wiring::Df { src, .. } => src,
                Wiring::Liae { dec, .. } => dec,
            };
            let (psd_rgb, psd_mask) = dec.forward(f.swap_code.clone().detach());
            let style_target = psd_rgb * psd_mask.detach();
            let style_ref = (f.dst_dst.0.clone() * f.dst_dst.1.clone()).detach();
            src_loss = src_loss
                + style_loss(
                    style_target,
                    style_ref,
                    (res / 8) as f32,
                    10000.0 * face_style / 100.0,
                );
        }
        if bg_style > 0.0 {
            // DFL quirk kept on purpose: the style mask is the blurred, saturated *src* target
            // mask (DFL computes one from the predicted masks, then overwrites it).
            let (psd, _) = f
                .src_dst
                .clone()
                .ok_or_else(|| NnError::Batch("no src->dst prediction".into()))?;
            let anti = ms.clone().clamp(0.0, 1.0).detach().neg() + 1.0;
            let a = psd * anti.clone();
            let t = target_dst.clone() * anti;
            let w = 10.0 * bg_style / 100.0;
            src_loss = src_loss
                + dssim(a.clone(), t.clone(), filter_size(res, 11.6))
                    .mean_dim(1)
                    .reshape([b])
                    * w
                + mse(a, t) * w;
        }

        let mut g_loss = src_loss.clone() + dst_loss.clone();

        // True face: the code discriminator judges the src code (its weights are not
        // trained by this loss).
        let code_pair = if let Some((d, _)) = &self.code_d {
            let frozen = d.valid();
            g_loss = g_loss
                + bce_with_logits(frozen.forward(f.code_src.clone()), 1.0) * o.true_face_power;
            Some((f.code_src.clone().detach(), f.code_dst.clone().detach()))
        } else {
            None
        };

        // GAN: the patch discriminator judges the (masked) src reconstruction.
        let gan_pair = match (&self.gan_d, gan_power > 0.0) {
            (Some((d, _)), true) => {
                let frozen = d.valid();
                let (c, u) = frozen.forward(ps.clone());
                g_loss = g_loss + (bce_with_logits(c, 1.0) + bce_with_logits(u, 1.0)) * gan_power;
                if masked {
                    let anti = ms.clone().neg() + 1.0;
                    g_loss = g_loss
                        + total_variation_mse(f.src_src.0.clone()) * 1e-6
                        + mse(
                            f.src_src.0.clone() * anti.clone(),
                            target_src.clone() * anti,
                        ) * 0.02;
                }
                Some((ts.detach(), ps.detach()))
            }
            _ => None,
        };

        let src_mean: f32 = src_loss.detach().mean().into_scalar();
        let dst_mean: f32 = dst_loss.detach().mean().into_scalar();
        if !src_mean.is_finite() || !dst_mean.is_finite() {
            return Err(NnError::NonFiniteLoss {
                src: src_mean,
                dst: dst_mean,
            });
        }
        let mut timings = StepTimings {
            forward_ms: elapsed_ms(clock),
            ..StepTimings::default()
        };
        let clock = std::time::Instant::now();
        let grads = g_loss.sum().backward();
        drop(f);
        crate::hostconv::release_buffers();
        timings.backward_ms = elapsed_ms(clock);
        let clock = std::time::Instant::now();
        if let Some(nets) = self.nets.take() {
            self.nets = Some(self.g_opt.step(nets, grads));
        }
        timings.update_ms = elapsed_ms(clock);
        let clock = std::time::Instant::now();

        let mut losses = StepLosses {
            src: src_mean,
            dst: dst_mean,
            d_code: None,
            d_gan: None,
            timings,
        };
        if let (Some((code_src, code_dst)), false) = (code_pair, o.pretrain)
            && let Some((d, mut opt)) = self.code_d.take()
        {
            let l = (bce_with_logits(d.forward(code_dst), 1.0)
                + bce_with_logits(d.forward(code_src), 0.0))
                * 0.5;
            losses.d_code = Some(l.clone().detach().mean().into_scalar());
            let grads = l.sum().backward();
            let d = opt.step(d, grads);
            self.code_d = Some((d, opt));
        }
        if let Some((real, fake)) = gan_pair
            && let Some((d, mut opt)) = self.gan_d.take()
        {
            let (rc, ru) = d.forward(real);
            let (fc, fu) = d.forward(fake);
            let l = (bce_with_logits(rc, 1.0) + bce_with_logits(fc, 0.0)) * 0.5
                + (bce_with_logits(ru, 1.0) + bce_with_logits(fu, 0.0)) * 0.5;
            losses.d_gan = Some(l.clone().detach().mean().into_scalar());
            let grads = l.sum().backward();
            let d = opt.step(d, grads);
            self.gan_d = Some((d, opt));
        }
        losses.timings.discriminators_ms = elapsed_ms(clock);
        self.iteration += 1;
        self.loss_history.push([src_mean, dst_mean]);
        Ok(losses)
    }

    /// Writes a checkpoint generation into `dir` (see [`CheckpointDir`]).
    pub fn save(&self, dir: &CheckpointDir) -> Result<std::path::PathBuf> {
        let mut weights = BTreeMap::new();
        collect_param_handles(self.nets_ref()?, "", &mut weights);
        let mut optimizer = BTreeMap::new();
        let mut optimizer_iters = BTreeMap::new();
        let mut opts: Vec<(&str, &DflOptimizer)> = vec![(G_OPT, &self.g_opt)];
        if let Some((d, opt)) = &self.code_d {
            collect_param_handles(d, CODE_D, &mut weights);
            opts.push((CODE_D_OPT, opt));
        }
        if let Some((d, opt)) = &self.gan_d {
            collect_param_handles(d, GAN_D, &mut weights);
            opts.push((GAN_D_OPT, opt));
        }
        for (prefix, opt) in opts {
            for (k, v) in opt.state_for_save() {
                optimizer.insert(format!("{prefix}.{k}"), v);
            }
            optimizer_iters.insert(prefix.to_string(), opt.iters());
        }
        let state = SavedState {
            format: CHECKPOINT_FORMAT.to_string(),
            version: CHECKPOINT_VERSION,
            class: self.class,
            options: self.options.clone(),
            iteration: self.iteration,
            seed: self.seed,
            optimizer_iters,
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

    /// Loads the newest complete checkpoint of `dir` onto `spec`. With `requested` options,
    /// refuses a checkpoint whose arch-defining options differ (naming the option) and then
    /// applies the other options like [`Self::set_options`].
    pub fn load(
        dir: &CheckpointDir,
        spec: DeviceSpec,
        requested: Option<&SaehdOptions>,
    ) -> Result<Self> {
        let ckpt = dir.load_latest()?;
        Self::from_checkpoint(ckpt, spec, requested, ModelClass::Saehd)
    }

    /// Builds a SAEHD model from an already-read checkpoint generation (see
    /// [`CheckpointDir::load_generation`]); [`Self::load`] is this on the newest one.
    pub fn from_loaded(
        ckpt: LoadedCheckpoint,
        spec: DeviceSpec,
        requested: Option<&SaehdOptions>,
    ) -> Result<Self> {
        Self::from_checkpoint(ckpt, spec, requested, ModelClass::Saehd)
    }

    pub(crate) fn from_checkpoint(
        ckpt: LoadedCheckpoint,
        spec: DeviceSpec,
        requested: Option<&SaehdOptions>,
        class: ModelClass,
    ) -> Result<Self> {
        let state_path = ckpt.dir.join(crate::checkpoint::STATE_FILE);
        let state: SavedState = serde_json::from_value(ckpt.state)
            .map_err(|e| NnError::bad_file(&state_path, format!("unexpected content: {e}")))?;
        if state.format != CHECKPOINT_FORMAT || state.version != CHECKPOINT_VERSION {
            return Err(NnError::bad_file(
                &state_path,
                format!(
                    "format {} v{} is not {CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION}",
                    state.format, state.version
                ),
            ));
        }
        if state.class != class {
            return Err(NnError::bad_file(
                &state_path,
                format!("holds a {:?} model, not {class:?}", state.class),
            ));
        }
        if let Some(req) = requested
            && let Some((option, stored, requested)) = state.options.arch_difference(req)
        {
            return Err(NnError::OptionMismatch {
                path: ckpt.dir.clone(),
                option,
                stored,
                requested,
            });
        }
        let mut m = Self::new_class(class, state.options.clone(), spec, state.seed)?;
        m.iteration = state.iteration;
        m.loss_history = state.loss_history;
        let wpath = ckpt.dir.join(crate::checkpoint::WEIGHTS_FILE);
        let opath = ckpt.dir.join(crate::checkpoint::OPTIMIZER_FILE);
        let mut weights = ckpt.weights;
        let nets = m
            .nets
            .take()
            .ok_or_else(|| NnError::Batch("no nets".into()))?;
        m.nets = Some(load_params(nets, "", &mut weights, &wpath)?);
        let mut opt_tensors = ckpt.optimizer;
        let iters_of = |k: &str| state.optimizer_iters.get(k).copied().unwrap_or(0);
        m.g_opt.load_state(
            take_prefixed(&mut opt_tensors, G_OPT),
            iters_of(G_OPT),
            &opath,
        )?;
        if let Some((d, opt)) = m.code_d.take() {
            let d = load_params(d, CODE_D, &mut weights, &wpath)?;
            let mut opt = opt;
            opt.load_state(
                take_prefixed(&mut opt_tensors, CODE_D_OPT),
                iters_of(CODE_D_OPT),
                &opath,
            )?;
            m.code_d = Some((d, opt));
        }
        if let Some((d, opt)) = m.gan_d.take() {
            let d = load_params(d, GAN_D, &mut weights, &wpath)?;
            let mut opt = opt;
            opt.load_state(
                take_prefixed(&mut opt_tensors, GAN_D_OPT),
                iters_of(GAN_D_OPT),
                &opath,
            )?;
            m.gan_d = Some((d, opt));
        }
        m.apply_trainable()?;
        if let Some(req) = requested {
            m.set_options(req.clone())?;
        }
        Ok(m)
    }
}

/// Tensor-name prefix of the generator optimizer (DFL's `src_dst_opt`).
pub const G_OPT: &str = "src_dst_opt";
/// Prefix of the true-face discriminator weights.
pub const CODE_D: &str = "code_discriminator";
/// Prefix of the true-face discriminator optimizer.
pub const CODE_D_OPT: &str = "D_code_opt";
/// Prefix of the GAN discriminator weights.
pub const GAN_D: &str = "GAN";
/// Prefix of the GAN discriminator optimizer.
pub const GAN_D_OPT: &str = "GAN_opt";

fn take_prefixed(
    map: &mut std::collections::HashMap<String, crate::store::NamedTensor>,
    prefix: &str,
) -> std::collections::HashMap<String, crate::store::NamedTensor> {
    let p = format!("{prefix}.");
    let keys: Vec<String> = map.keys().filter(|k| k.starts_with(&p)).cloned().collect();
    keys.into_iter()
        .filter_map(|k| {
            let v = map.remove(&k)?;
            Some((k[p.len()..].to_string(), v))
        })
        .collect()
}

/// Loads the newest checkpoint of `path` (a [`CheckpointDir`] root) and checks it is
/// `class` — a helper for front ends that only have a folder.
pub fn checkpoint_class(path: &Path) -> Result<ModelClass> {
    let dir = CheckpointDir::new(path, 0);
    let gens = dir.complete_generations()?;
    let first = gens.first().ok_or_else(|| NnError::NoCheckpoint {
        path: path.to_path_buf(),
    })?;
    let state_path = first.join(crate::checkpoint::STATE_FILE);
    let bytes = std::fs::read(&state_path).map_err(|e| NnError::io(&state_path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| NnError::bad_file(&state_path, e.to_string()))?;
    serde_json::from_value(v.get("class").cloned().unwrap_or_default())
        .map_err(|e| NnError::bad_file(&state_path, format!("class: {e}")))
}
