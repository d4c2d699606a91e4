//! Options as users give them: a partial set (a `--phase` preset, then a TOML file, then
//! command-line flags) laid over the defaults for a new model, or over the stored options of
//! an existing one, with DFL's rule that the shape-defining options are fixed at creation.
//!
//! Names are DFL's option names (`random_warp`, `lr_dropout`…) in the TOML file and in
//! `options.toml` of the model folder, and their kebab-case form on the command line.

use crate::error::{Result, TrainError};
use dfl_nn::archs::Archi;
use dfl_nn::options::{CtMode, FaceType, LrDropout, SaehdOptions};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Every SAEHD option, each optional: the ones a user set. Unknown keys in a TOML file are
/// an error naming the key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // Each field is the SAEHD option of the same name (see SaehdOptions).
pub struct OptionOverrides {
    pub autobackup_hour: Option<u32>,
    pub write_preview_history: Option<bool>,
    pub target_iter: Option<u64>,
    pub random_src_flip: Option<bool>,
    pub random_dst_flip: Option<bool>,
    pub batch_size: Option<usize>,
    pub resolution: Option<usize>,
    pub face_type: Option<FaceType>,
    pub archi: Option<Archi>,
    pub ae_dims: Option<usize>,
    pub e_dims: Option<usize>,
    pub d_dims: Option<usize>,
    pub d_mask_dims: Option<usize>,
    pub masked_training: Option<bool>,
    pub eyes_mouth_prio: Option<bool>,
    pub uniform_yaw: Option<bool>,
    pub blur_out_mask: Option<bool>,
    pub models_opt_on_gpu: Option<bool>,
    pub adabelief: Option<bool>,
    pub lr_dropout: Option<LrDropout>,
    pub random_warp: Option<bool>,
    pub random_hsv_power: Option<f32>,
    pub gan_power: Option<f32>,
    pub gan_patch_size: Option<usize>,
    pub gan_dims: Option<usize>,
    pub true_face_power: Option<f32>,
    pub face_style_power: Option<f32>,
    pub bg_style_power: Option<f32>,
    pub ct_mode: Option<CtMode>,
    pub clipgrad: Option<bool>,
    pub pretrain: Option<bool>,
}

/// The options fixed when a model is created (DFL asks them on the first run only).
pub const CREATION_ONLY: [&str; 7] = [
    "resolution",
    "face_type",
    "archi",
    "ae_dims",
    "e_dims",
    "d_dims",
    "d_mask_dims",
];

macro_rules! each_option {
    ($m:ident) => {
        $m!(
            autobackup_hour,
            write_preview_history,
            target_iter,
            random_src_flip,
            random_dst_flip,
            batch_size,
            resolution,
            face_type,
            archi,
            ae_dims,
            e_dims,
            d_dims,
            d_mask_dims,
            masked_training,
            eyes_mouth_prio,
            uniform_yaw,
            blur_out_mask,
            models_opt_on_gpu,
            adabelief,
            lr_dropout,
            random_warp,
            random_hsv_power,
            gan_power,
            gan_patch_size,
            gan_dims,
            true_face_power,
            face_style_power,
            bg_style_power,
            ct_mode,
            clipgrad,
            pretrain
        )
    };
}

/// One option whose value changed, for the loss-history markers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionChange {
    /// DFL's option name.
    pub option: String,
    /// Value before (as TOML would write it).
    pub from: String,
    /// Value after.
    pub to: String,
}

fn show<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// The options that differ between `old` and `new`, in DFL's table order.
pub fn changes(old: &SaehdOptions, new: &SaehdOptions) -> Vec<OptionChange> {
    let mut out = Vec::new();
    macro_rules! diff {
        ($($f:ident),*) => {
            $(
                if show(&old.$f) != show(&new.$f) {
                    out.push(OptionChange {
                        option: stringify!($f).to_string(),
                        from: show(&old.$f),
                        to: show(&new.$f),
                    });
                }
            )*
        };
    }
    each_option!(diff);
    out
}

impl OptionOverrides {
    /// Reads a TOML file of options (DFL names, e.g. `random_warp = false`).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        toml::from_str(&text).map_err(|e| {
            TrainError::bad_file(path, e.to_string().lines().collect::<Vec<_>>().join(" "))
        })
    }

    /// `self` with every option that `other` sets replaced by `other`'s value (later
    /// sources win: a phase preset, then the TOML file, then flags).
    pub fn then(mut self, other: &OptionOverrides) -> Self {
        macro_rules! merge {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        each_option!(merge);
        self
    }

    /// Writes every set option into `o`.
    pub fn apply_to(&self, o: &mut SaehdOptions) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { o.$f = v.clone(); } )* };
        }
        each_option!(set);
    }

    /// Names of the options this set gives.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! names {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        each_option!(names);
        v
    }

    /// The options of a new model: DFL's defaults, then these. Where DFL derives a default
    /// from another option, so does this: `d_mask_dims` from `d_dims` (`d/3` made even),
    /// `gan_patch_size` from the resolution (`R/8`). Checks DFL's ranges.
    pub fn new_model_options(&self) -> Result<SaehdOptions> {
        let mut o = SaehdOptions::default();
        self.apply_to(&mut o);
        if self.d_mask_dims.is_none() {
            let m = o.d_dims / 3;
            o.d_mask_dims = m + m % 2;
        }
        if self.gan_patch_size.is_none() {
            o.gan_patch_size = (o.resolution / 8).clamp(3, 640);
        }
        // DFL's ranges; a resolution DFL would round is refused with the rounded value.
        o.validate()?;
        Ok(o)
    }

    /// The options of an existing model: `stored`, then these. A creation-only option set to
    /// a different value is refused, naming it.
    pub fn existing_model_options(&self, stored: &SaehdOptions) -> Result<SaehdOptions> {
        let mut o = stored.clone();
        self.apply_to(&mut o);
        if let Some((option, was, want)) = stored.arch_difference(&o) {
            return Err(TrainError::option(
                option,
                format!(
                    "is {was} for this model and can only be chosen when a model is created \
                     (asked for {want}); train a new model in another folder to change it"
                ),
            ));
        }
        o.check_buildable()?;
        Ok(o)
    }
}

/// The expert recipe of the DFL manual as presets (`--phase`, see docs/training.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Phase 1 "form the image": masked training and random warp on, LR dropout, eyes/mouth
    /// priority, uniform yaw, GAN, true face and style losses off.
    Warp,
    /// Phase 1, second half: the same with LR dropout on, once the src→dst column has the
    /// right shapes.
    Lrd,
    /// Phase 2 "adjust": random warp, flips and LR dropout off, eyes/mouth priority and
    /// uniform yaw on.
    Adjust,
    /// Phase 3 "converge": LR dropout on and a small GAN power (0.1, DFL's typical value);
    /// the trainer backs the model up before GAN is first switched on.
    Gan,
}

impl Phase {
    /// Every phase, in recipe order.
    pub const ALL: [Phase; 4] = [Phase::Warp, Phase::Lrd, Phase::Adjust, Phase::Gan];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Warp => "warp",
            Phase::Lrd => "lrd",
            Phase::Adjust => "adjust",
            Phase::Gan => "gan",
        }
    }

    /// The options this phase sets (the rest stay as they are). Options given in a TOML
    /// file or as flags override the preset.
    pub fn overrides(self) -> OptionOverrides {
        let common = OptionOverrides {
            masked_training: Some(true),
            pretrain: Some(false),
            ..OptionOverrides::default()
        };
        // Phase 1: "everything else off".
        let form = OptionOverrides {
            random_warp: Some(true),
            eyes_mouth_prio: Some(false),
            uniform_yaw: Some(false),
            gan_power: Some(0.0),
            true_face_power: Some(0.0),
            face_style_power: Some(0.0),
            bg_style_power: Some(0.0),
            ..common.clone()
        };
        // Phases 2 and 3: no warp, no flips (style powers are the user's to choose).
        let fixed = OptionOverrides {
            random_warp: Some(false),
            random_src_flip: Some(false),
            random_dst_flip: Some(false),
            ..common
        };
        match self {
            Phase::Warp => OptionOverrides {
                lr_dropout: Some(LrDropout::N),
                ..form
            },
            Phase::Lrd => OptionOverrides {
                lr_dropout: Some(LrDropout::Y),
                ..form
            },
            Phase::Adjust => OptionOverrides {
                lr_dropout: Some(LrDropout::N),
                eyes_mouth_prio: Some(true),
                uniform_yaw: Some(true),
                gan_power: Some(0.0),
                ..fixed
            },
            Phase::Gan => OptionOverrides {
                lr_dropout: Some(LrDropout::Y),
                gan_power: Some(GAN_PHASE_POWER),
                ..fixed
            },
        }
    }
}

/// GAN power of the `gan` phase: DFL's "typical value" from its prompt help.
pub const GAN_PHASE_POWER: f32 = 0.1;

impl std::str::FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown phase '{s}' (known: warp, lrd, adjust, gan)"))
    }
}

/// The options as a TOML document with DFL's names (what `options.toml` holds).
pub fn to_toml(o: &SaehdOptions) -> String {
    toml::to_string(o).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_merge_and_refuse_unknown_keys() {
        let a: OptionOverrides =
            toml::from_str("random_warp = false\nbatch_size = 6\narchi = \"df-ud\"").unwrap();
        let b = OptionOverrides {
            batch_size: Some(2),
            ..OptionOverrides::default()
        };
        let m = a.then(&b);
        assert_eq!(m.batch_size, Some(2));
        assert_eq!(m.random_warp, Some(false));
        assert_eq!(m.names(), ["batch_size", "archi", "random_warp"]);
        let e = toml::from_str::<OptionOverrides>("random_wrap = true").unwrap_err();
        assert!(e.to_string().contains("random_wrap"), "{e}");
    }

    #[test]
    fn new_models_derive_defaults_and_check_resolution() {
        let o = OptionOverrides {
            resolution: Some(64),
            d_dims: Some(48),
            archi: Some("df".parse().unwrap()),
            ..OptionOverrides::default()
        }
        .new_model_options()
        .unwrap();
        assert_eq!((o.d_mask_dims, o.gan_patch_size), (16, 8));
        let e = OptionOverrides {
            resolution: Some(100),
            ..OptionOverrides::default()
        }
        .new_model_options()
        .unwrap_err()
        .to_string();
        assert!(e.contains("resolution") && e.contains("96"), "{e}");
    }

    #[test]
    fn creation_only_options_are_refused_by_name() {
        let stored = SaehdOptions::default();
        let same = OptionOverrides {
            resolution: Some(128),
            random_warp: Some(false),
            ..OptionOverrides::default()
        };
        let o = same.existing_model_options(&stored).unwrap();
        assert!(!o.random_warp);
        for (name, ov) in [
            (
                "e_dims",
                OptionOverrides {
                    e_dims: Some(32),
                    ..OptionOverrides::default()
                },
            ),
            (
                "face_type",
                OptionOverrides {
                    face_type: Some(FaceType::WholeFace),
                    ..OptionOverrides::default()
                },
            ),
        ] {
            let e = ov.existing_model_options(&stored).unwrap_err().to_string();
            assert!(e.starts_with(&format!("option {name}")), "{e}");
        }
        let c = changes(&stored, &o);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].option.as_str(), c[0].from.as_str(), c[0].to.as_str()),
            ("random_warp", "true", "false")
        );
    }

    #[test]
    fn phases_parse_and_set_the_recipe() {
        assert_eq!("GAN".parse::<Phase>().unwrap(), Phase::Gan);
        assert!("warm".parse::<Phase>().is_err());
        let mut o = SaehdOptions::default();
        Phase::Adjust.overrides().apply_to(&mut o);
        assert!(!o.random_warp && o.eyes_mouth_prio && o.uniform_yaw);
        Phase::Gan.overrides().apply_to(&mut o);
        assert!(o.gan_power > 0.0 && o.lr_dropout == LrDropout::Y);
        // Every preset keeps the creation-only options untouched.
        for p in Phase::ALL {
            let n = p.overrides().names();
            assert!(CREATION_ONLY.iter().all(|c| !n.contains(c)), "{p:?}");
        }
        let t = to_toml(&SaehdOptions::default());
        let back: OptionOverrides = toml::from_str(&t).unwrap();
        assert_eq!(back.archi.unwrap().to_string(), "liae-ud");
    }
}
