//! The merger's settings: DFL's `MergerConfigMasked` with every field, range and default
//! (design notes §7.2), readable from TOML and JSON by DFL's names or DFL's numbers.
//!
//! Out-of-range values are **refused** by [`MergerConfig::validate`] (the error names every
//! bad field and its range): a typo in a config file must not silently merge a whole video
//! with other settings. [`MergerConfig::clamp`] clamps instead and reports each change, for
//! the interactive merger whose keys step values up and down (DFL clamps there).

use dfl_nn::LearnedMasks;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Defines a DFL option enum with its names and numbers, parsing from either (names are
/// case-insensitive) and serialising as the name.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in DFL's numbering order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// DFL's name of the value (what config files and the CLI use).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// DFL's number of the value.
            pub fn code(self) -> u8 {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The value with DFL's number `code`.
            pub fn from_code(code: i64) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }

            fn known() -> String {
                Self::ALL
                    .iter()
                    .map(|v| format!("{} ({})", v.name(), v.code()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                let t = s.trim();
                if let Ok(n) = t.parse::<i64>() {
                    return $name::from_code(n)
                        .ok_or_else(|| format!("unknown {} {n} (known: {})", $what, Self::known()));
                }
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(t))
                    .ok_or_else(|| format!("unknown {} '{t}' (known: {})", $what, Self::known()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} name or number", $what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::from_code(v).ok_or_else(|| {
                            E::custom(format!("unknown {} {v} (known: {})", $what, $name::known()))
                        })
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

named_enum!(
    /// How the predicted face goes into the frame (`mode`).
    Mode, "merge mode" {
        /// The frame unchanged (the merge mask is still written).
        Original = 0, "original";
        /// The predicted face alpha-blended with the frame mask.
        Overlay = 1, "overlay";
        /// Overlay after histogram matching the face to the dst face.
        HistMatch = 2, "hist-match";
        /// Poisson seamless clone, then blended with the frame mask.
        Seamless = 3, "seamless";
        /// Seamless, then histogram matched to the dst face.
        SeamlessHistMatch = 4, "seamless-hist-match";
        /// The predicted square pasted as is (no mask processing).
        RawRgb = 5, "raw-rgb";
        /// The predicted face itself (R x R), not put into the frame.
        RawPredict = 6, "raw-predict";
    }
);

impl Mode {
    /// `raw-rgb` and `raw-predict`: no erode, blur, colour transfer or post-processing.
    pub fn is_raw(self) -> bool {
        matches!(self, Mode::RawRgb | Mode::RawPredict)
    }

    /// `seamless` and `seamless-hist-match`.
    pub fn is_seamless(self) -> bool {
        matches!(self, Mode::Seamless | Mode::SeamlessHistMatch)
    }
}

named_enum!(
    /// Which mask decides where the face goes (`mask_mode`).
    MaskMode, "mask mode" {
        /// The whole predicted square.
        Full = 0, "full";
        /// The dst landmark hull.
        Dst = 1, "dst";
        /// The model's mask of the predicted face.
        LearnedPrd = 2, "learned-prd";
        /// The model's mask of the dst face.
        LearnedDst = 3, "learned-dst";
        /// Product of both learned masks (DFL's interactive default).
        LearnedPrdDst = 4, "learned-prd*learned-dst";
        /// Sum of both learned masks, clipped.
        LearnedPrdPlusDst = 5, "learned-prd+learned-dst";
        /// XSeg on the predicted face.
        XsegPrd = 6, "XSeg-prd";
        /// XSeg on the dst face.
        XsegDst = 7, "XSeg-dst";
        /// Product of both XSeg masks.
        XsegPrdDst = 8, "XSeg-prd*XSeg-dst";
        /// Product of both learned and both XSeg masks.
        LearnedXsegAll = 9, "learned-prd*learned-dst*XSeg-prd*XSeg-dst";
    }
);

impl MaskMode {
    /// Whether the mode needs XSeg run on the predicted face.
    pub fn needs_xseg_prd(self) -> bool {
        matches!(
            self,
            MaskMode::XsegPrd | MaskMode::XsegPrdDst | MaskMode::LearnedXsegAll
        )
    }

    /// Whether the mode needs XSeg run on the dst face.
    pub fn needs_xseg_dst(self) -> bool {
        matches!(
            self,
            MaskMode::XsegDst | MaskMode::XsegPrdDst | MaskMode::LearnedXsegAll
        )
    }

    /// Whether the mode uses the model's mask of the predicted face.
    pub fn needs_learned_prd(self) -> bool {
        matches!(
            self,
            MaskMode::LearnedPrd
                | MaskMode::LearnedPrdDst
                | MaskMode::LearnedPrdPlusDst
                | MaskMode::LearnedXsegAll
        )
    }

    /// Whether the mode uses the model's mask of the dst face.
    pub fn needs_learned_dst(self) -> bool {
        matches!(
            self,
            MaskMode::LearnedDst
                | MaskMode::LearnedPrdDst
                | MaskMode::LearnedPrdPlusDst
                | MaskMode::LearnedXsegAll
        )
    }

    /// The learned masks the mode reads (what the model must predict for it).
    pub fn learned_masks(self) -> LearnedMasks {
        LearnedMasks {
            prd: self.needs_learned_prd(),
            dst: self.needs_learned_dst(),
        }
    }

    /// Whether the mode needs an XSeg model at all.
    pub fn needs_xseg(self) -> bool {
        self.needs_xseg_prd() || self.needs_xseg_dst()
    }
}

named_enum!(
    /// Colour transfer of the predicted face towards the dst face (`color_transfer_mode`);
    /// `-m` modes work on images multiplied by the binary face area.
    ColorTransfer, "colour transfer mode" {
        /// No colour transfer.
        None = 0, "none";
        /// Reinhard in Lab with the face area as both masks.
        Rct = 1, "rct";
        /// Linear (PCA) transfer on the whole square.
        Lct = 2, "lct";
        /// Monge-Kantorovich linear on the whole square.
        Mkl = 3, "mkl";
        /// Monge-Kantorovich linear on the masked faces.
        MklM = 4, "mkl-m";
        /// Iterative distribution transfer on the whole square.
        Idt = 5, "idt";
        /// Iterative distribution transfer on the masked faces.
        IdtM = 6, "idt-m";
        /// Sliced optimal transport on the masked faces (10 steps, batch 30).
        SotM = 7, "sot-m";
        /// LCT lightness + SOT chroma on the masked faces.
        MixM = 8, "mix-m";
    }
);

named_enum!(
    /// Sharpen filter of the blur/sharpen post-processing (`sharpen_mode`).
    Sharpen, "sharpen mode" {
        /// No sharpening (a negative amount still blurs).
        None = 0, "none";
        /// Box high-pass.
        Box = 1, "box";
        /// Gaussian unsharp mask.
        Gaussian = 2, "gaussian";
    }
);

impl Sharpen {
    /// The dfl-image filter mode.
    pub fn image_mode(self) -> dfl_image::SharpenMode {
        match self {
            Sharpen::None => dfl_image::SharpenMode::None,
            Sharpen::Box => dfl_image::SharpenMode::Box,
            Sharpen::Gaussian => dfl_image::SharpenMode::Gaussian,
        }
    }
}

/// Every setting of DFL's merger for one frame. Field names are DFL's; the integer fields are
/// checked against [`RANGES`] by [`MergerConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergerConfig {
    /// Merge mode.
    pub mode: Mode,
    /// hist-match mode: match only inside the face area.
    pub masked_hist_match: bool,
    /// hist-match modes: histogram threshold, 0..=255 (255 = plain CDF match).
    pub hist_match_threshold: i32,
    /// Mask mode.
    pub mask_mode: MaskMode,
    /// Erode (> 0) or dilate (< 0) the mask, in pixels of the 4R mask space, -400..=400.
    pub erode_mask_modifier: i32,
    /// Blur the mask edge, in pixels of the 4R mask space, 0..=400.
    pub blur_mask_modifier: i32,
    /// Motion blur along the face's motion between neighbouring frames, 0..=100.
    pub motion_blur_power: i32,
    /// Shrink (> 0) or grow (< 0) the pasted face by this percent, -50..=50.
    pub output_face_scale: i32,
    /// DFL's FaceEnhancer super resolution, 0..=100. Must be 0: the enhancer's pretrained
    /// weights cannot ship with dfl-rs, and the option is not faked with a sharpen.
    pub super_resolution_power: i32,
    /// Colour transfer mode.
    pub color_transfer_mode: ColorTransfer,
    /// Sharpen filter.
    pub sharpen_mode: Sharpen,
    /// Sharpen (> 0, raw high-pass gain as DFL) or blur (< 0, median passes), -100..=100.
    pub blursharpen_amount: i32,
    /// Median denoise of the whole frame, 0..=500.
    pub image_denoise_power: i32,
    /// Bicubic down-and-up scale of the whole frame, 0..=100.
    pub bicubic_degrade_power: i32,
    /// Blend towards a 256-colour palette version of the whole frame, 0..=100.
    pub color_degrade_power: i32,
}

/// The integer fields with their allowed ranges (inclusive), in DFL's prompt order.
pub const RANGES: [(&str, i32, i32); 10] = [
    ("hist_match_threshold", 0, 255),
    ("erode_mask_modifier", -400, 400),
    ("blur_mask_modifier", 0, 400),
    ("motion_blur_power", 0, 100),
    ("output_face_scale", -50, 50),
    ("super_resolution_power", 0, 100),
    ("blursharpen_amount", -100, 100),
    ("image_denoise_power", 0, 500),
    ("bicubic_degrade_power", 0, 100),
    ("color_degrade_power", 0, 100),
];

impl Default for MergerConfig {
    /// DFL's constructor defaults, which its interactive merger starts from: overlay,
    /// `learned-prd*learned-dst`, rct, hist threshold 238, everything else 0 / off.
    fn default() -> Self {
        MergerConfig {
            mode: Mode::Overlay,
            masked_hist_match: true,
            hist_match_threshold: 238,
            mask_mode: MaskMode::LearnedPrdDst,
            erode_mask_modifier: 0,
            blur_mask_modifier: 0,
            motion_blur_power: 0,
            output_face_scale: 0,
            super_resolution_power: 0,
            color_transfer_mode: ColorTransfer::Rct,
            sharpen_mode: Sharpen::None,
            blursharpen_amount: 0,
            image_denoise_power: 0,
            bicubic_degrade_power: 0,
            color_degrade_power: 0,
        }
    }
}

/// One value of a config outside its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// Field name.
    pub field: &'static str,
    /// The value given.
    pub value: i32,
    /// Smallest allowed value.
    pub min: i32,
    /// Largest allowed value.
    pub max: i32,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is outside {}..={}",
            self.field, self.value, self.min, self.max
        )
    }
}

/// Why a config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Values outside their ranges (all of them, not just the first).
    #[error("{}", .0.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "))]
    OutOfRange(Vec<OutOfRange>),
    /// A setting dfl-rs cannot honour.
    #[error("{0}")]
    Unsupported(String),
    /// The text is not a valid config.
    #[error("{0}")]
    Syntax(String),
}

impl MergerConfig {
    /// The defaults of DFL's non-interactive prompts (used when it asks every setting once):
    /// mask `dst`, no colour transfer, hist threshold 255; the rest as [`Default`].
    pub fn prompt_defaults() -> Self {
        MergerConfig {
            mask_mode: MaskMode::Dst,
            color_transfer_mode: ColorTransfer::None,
            hist_match_threshold: 255,
            ..MergerConfig::default()
        }
    }

    fn int_fields(&self) -> [(&'static str, i32); 10] {
        [
            ("hist_match_threshold", self.hist_match_threshold),
            ("erode_mask_modifier", self.erode_mask_modifier),
            ("blur_mask_modifier", self.blur_mask_modifier),
            ("motion_blur_power", self.motion_blur_power),
            ("output_face_scale", self.output_face_scale),
            ("super_resolution_power", self.super_resolution_power),
            ("blursharpen_amount", self.blursharpen_amount),
            ("image_denoise_power", self.image_denoise_power),
            ("bicubic_degrade_power", self.bicubic_degrade_power),
            ("color_degrade_power", self.color_degrade_power),
        ]
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut i32> {
        Some(match name {
            "hist_match_threshold" => &mut self.hist_match_threshold,
            "erode_mask_modifier" => &mut self.erode_mask_modifier,
            "blur_mask_modifier" => &mut self.blur_mask_modifier,
            "motion_blur_power" => &mut self.motion_blur_power,
            "output_face_scale" => &mut self.output_face_scale,
            "super_resolution_power" => &mut self.super_resolution_power,
            "blursharpen_amount" => &mut self.blursharpen_amount,
            "image_denoise_power" => &mut self.image_denoise_power,
            "bicubic_degrade_power" => &mut self.bicubic_degrade_power,
            "color_degrade_power" => &mut self.color_degrade_power,
            _ => return None,
        })
    }

    fn range_of(name: &str) -> (i32, i32) {
        RANGES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or((0, 0), |&(_, lo, hi)| (lo, hi))
    }

    /// Every integer field outside its range.
    pub fn out_of_range(&self) -> Vec<OutOfRange> {
        self.int_fields()
            .into_iter()
            .filter_map(|(field, value)| {
                let (min, max) = Self::range_of(field);
                (!(min..=max).contains(&value)).then_some(OutOfRange {
                    field,
                    value,
                    min,
                    max,
                })
            })
            .collect()
    }

    /// Checks every range, then that the config asks for nothing dfl-rs cannot do (super
    /// resolution). This is what `dfl merge` applies to config files: refuse, never guess.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = self.out_of_range();
        if !bad.is_empty() {
            return Err(ConfigError::OutOfRange(bad));
        }
        if self.super_resolution_power != 0 {
            return Err(ConfigError::Unsupported(format!(
                "super_resolution_power = {}: super resolution needs DFL's pretrained \
                 FaceEnhancer, which cannot ship with dfl-rs yet; set it to 0",
                self.super_resolution_power
            )));
        }
        Ok(())
    }

    /// Clamps every integer field into its range and returns what changed (the interactive
    /// merger's behaviour; `dfl merge` refuses instead, see [`Self::validate`]).
    pub fn clamp(&mut self) -> Vec<OutOfRange> {
        let bad = self.out_of_range();
        for o in &bad {
            if let Some(v) = self.field_mut(o.field) {
                *v = o.value.clamp(o.min, o.max);
            }
        }
        bad
    }

    /// Parses a TOML config (missing keys take [`Default`] values; unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.message().trim().to_string()))
    }

    /// The config as TOML, every key written.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Whether the post-processing block of §7.3 step g runs for this config.
    pub(crate) fn needs_post(&self) -> bool {
        (self.mode.is_seamless() && self.color_transfer_mode != ColorTransfer::None)
            || self.mode == Mode::SeamlessHistMatch
            || self.motion_blur_power != 0
            || self.blursharpen_amount != 0
            || self.image_denoise_power != 0
            || self.bicubic_degrade_power != 0
    }

    /// Whether a setting changes the whole frame, not only the face region (DFL applies
    /// denoise, bicubic degrade and colour degrade to the frame).
    pub(crate) fn touches_whole_frame(&self) -> bool {
        !self.mode.is_raw()
            && self.mode != Mode::Original
            && (self.image_denoise_power != 0
                || self.bicubic_degrade_power != 0
                || self.color_degrade_power != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse_both_ways() {
        for m in MaskMode::ALL {
            assert_eq!(m.name().parse::<MaskMode>().unwrap(), *m);
            assert_eq!(m.code().to_string().parse::<MaskMode>().unwrap(), *m);
        }
        assert_eq!("xseg-DST".parse::<MaskMode>().unwrap(), MaskMode::XsegDst);
        let e = "bogus".parse::<Mode>().unwrap_err();
        assert!(e.contains("overlay (1)"), "{e}");
        assert!("7".parse::<Mode>().is_err());
        assert_eq!(ColorTransfer::ALL.len(), 9);
        assert_eq!(MaskMode::ALL.len(), 10);
        assert_eq!(Mode::ALL.len(), 7);
    }

    #[test]
    fn toml_roundtrip_and_partial_files() {
        let c = MergerConfig {
            mode: Mode::SeamlessHistMatch,
            mask_mode: MaskMode::LearnedXsegAll,
            erode_mask_modifier: -20,
            color_transfer_mode: ColorTransfer::MixM,
            sharpen_mode: Sharpen::Gaussian,
            blursharpen_amount: 15,
            ..MergerConfig::default()
        };
        assert_eq!(MergerConfig::from_toml(&c.to_toml()).unwrap(), c);
        let p = MergerConfig::from_toml("mode = 3\nmask_mode = \"dst\"\nblur_mask_modifier = 50\n")
            .unwrap();
        assert_eq!(p.mode, Mode::Seamless);
        assert_eq!(p.mask_mode, MaskMode::Dst);
        assert_eq!(p.blur_mask_modifier, 50);
        assert_eq!(p.color_transfer_mode, ColorTransfer::Rct);
        let e = MergerConfig::from_toml("erode = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("erode"), "{e}");
        let e = MergerConfig::from_toml("mask_mode = 12\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown mask mode 12"), "{e}");
    }

    #[test]
    fn out_of_range_is_refused_or_clamped() {
        let mut c = MergerConfig {
            erode_mask_modifier: 500,
            blur_mask_modifier: -1,
            color_degrade_power: 100,
            ..MergerConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("erode_mask_modifier = 500 is outside -400..=400")
                && e.contains("blur_mask_modifier = -1 is outside 0..=400"),
            "{e}"
        );
        let changed = c.clamp();
        assert_eq!(changed.len(), 2);
        assert_eq!(c.erode_mask_modifier, 400);
        assert_eq!(c.blur_mask_modifier, 0);
        assert!(c.validate().is_ok());
        let sr = MergerConfig {
            super_resolution_power: 10,
            ..MergerConfig::default()
        };
        assert!(matches!(sr.validate(), Err(ConfigError::Unsupported(_))));
    }

    #[test]
    fn defaults_match_dfl() {
        let d = MergerConfig::default();
        assert_eq!(
            (
                d.mode,
                d.mask_mode,
                d.color_transfer_mode,
                d.hist_match_threshold
            ),
            (
                Mode::Overlay,
                MaskMode::LearnedPrdDst,
                ColorTransfer::Rct,
                238
            )
        );
        let p = MergerConfig::prompt_defaults();
        assert_eq!(
            (p.mask_mode, p.color_transfer_mode, p.hist_match_threshold),
            (MaskMode::Dst, ColorTransfer::None, 255)
        );
    }
}
