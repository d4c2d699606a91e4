//! DFL's networks, one module per arch, each reading like its diagram in dfl-models.md.

pub mod deepfake;
pub mod discriminators;
pub mod xseg;

use crate::error::{NnError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// SAEHD's wiring: one shared inter and two decoders (DF), or two inters and one decoder
/// (LIAE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiType {
    /// `encoder -> inter -> decoder_src | decoder_dst`.
    Df,
    /// `encoder -> inter_AB (+ inter_B) -> decoder`.
    Liae,
}

/// The letters after the dash of an archi name (`liae-ud`): variant switches of DeepFakeArchi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiOpts {
    /// `u`: pixel_norm on the encoder output.
    pub u: bool,
    /// `d`: decoder ends at half resolution and a depth_to_space head doubles it.
    pub d: bool,
    /// `t`: deeper encoder (5 downscales + residual blocks) and decoder (4 upscales).
    pub t: bool,
    /// `c`: `x * cos(x)` instead of LeakyReLU everywhere.
    pub c: bool,
}

/// A full SAEHD archi name such as `df`, `liae-ud`, `df-udtc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archi {
    /// DF or LIAE.
    pub kind: ArchiType,
    /// Variant letters.
    pub opts: ArchiOpts,
}

impl Archi {
    /// The activation this archi uses.
    pub fn act(&self) -> crate::layers::Act {
        if self.opts.c {
            crate::layers::Act::XCosX
        } else {
            crate::layers::Act::LeakyRelu
        }
    }
}

impl FromStr for Archi {
    type Err = NnError;

    /// Parses DFL's archi string: `df` or `liae`, optionally `-` and any of `u d t c`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, letters) = match s.split_once('-') {
            Some((k, l)) => (k.to_string(), l.to_string()),
            None => (s.clone(), String::new()),
        };
        let kind = match kind.as_str() {
            "df" => ArchiType::Df,
            "liae" => ArchiType::Liae,
            other => {
                return Err(NnError::option(
                    "archi",
                    format!("'{other}' is not df or liae (e.g. df, liae-ud, df-udt)"),
                ));
            }
        };
        let mut opts = ArchiOpts::default();
        for ch in letters.chars() {
            let slot = match ch {
                'u' => &mut opts.u,
                'd' => &mut opts.d,
                't' => &mut opts.t,
                'c' => &mut opts.c,
                other => {
                    return Err(NnError::option(
                        "archi",
                        format!("unknown variant letter '{other}' (allowed: u, d, t, c)"),
                    ));
                }
            };
            if *slot {
                return Err(NnError::option(
                    "archi",
                    format!("variant letter '{ch}' given twice"),
                ));
            }
            *slot = true;
        }
        Ok(Archi { kind, opts })
    }
}

impl fmt::Display for Archi {
    /// Canonical spelling: letters in DFL's documented order `u d t c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ArchiType::Df => "df",
            ArchiType::Liae => "liae",
        };
        let mut letters = String::new();
        for (on, ch) in [
            (self.opts.u, 'u'),
            (self.opts.d, 'd'),
            (self.opts.t, 't'),
            (self.opts.c, 'c'),
        ] {
            if on {
                letters.push(ch);
            }
        }
        if letters.is_empty() {
            write!(f, "{kind}")
        } else {
            write!(f, "{kind}-{letters}")
        }
    }
}

impl Serialize for Archi {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Archi {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything that fixes the shapes of a SAEHD/Quick96 autoencoder (DFL's first-run-only
/// options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AeDims {
    /// Archi name (`liae-ud`…).
    pub archi: Archi,
    /// Face size in pixels.
    pub resolution: usize,
    /// Autoencoder bottleneck width.
    pub ae_dims: usize,
    /// Encoder base channels.
    pub e_dims: usize,
    /// Decoder base channels.
    pub d_dims: usize,
    /// Mask decoder base channels.
    pub d_mask_dims: usize,
}

impl AeDims {
    /// SAEHD's defaults: liae-ud, 128, ae 256, e 64, d 64, mask 22.
    pub fn saehd_default() -> Self {
        AeDims {
            archi: Archi {
                kind: ArchiType::Liae,
                opts: ArchiOpts {
                    u: true,
                    d: true,
                    ..ArchiOpts::default()
                },
            },
            resolution: 128,
            ae_dims: 256,
            e_dims: 64,
            d_dims: 64,
            d_mask_dims: 22,
        }
    }

    /// Quick96's fixed settings: df-ud, 96, ae 128, e 64, d 64, mask 16.
    pub fn quick96() -> Self {
        AeDims {
            archi: Archi {
                kind: ArchiType::Df,
                opts: ArchiOpts {
                    u: true,
                    d: true,
                    ..ArchiOpts::default()
                },
            },
            resolution: 96,
            ae_dims: 128,
            e_dims: 64,
            d_dims: 64,
            d_mask_dims: 16,
        }
    }

    /// The resolution DFL's prompt would turn `r` into for this archi:
    /// `clip(r // 16 * 16, 64, 640)`, then `// 32 * 32` with `d`.
    pub fn dfl_round_resolution(r: usize, archi: &Archi) -> usize {
        let mut r = (r / 16 * 16).clamp(64, 640);
        if archi.opts.d {
            r = (r / 32 * 32).clamp(64, 640);
        }
        r
    }

    /// Checks DFL's rules (resolution 64..=640 and a multiple of 16, or 32 with `d`; ae_dims
    /// 32..=1024; e/d dims 16..=256 and even; d_mask_dims 16..=256 and even) without
    /// rounding anything silently.
    pub fn validate(&self) -> Result<()> {
        let step = if self.archi.opts.d { 32 } else { 16 };
        if !(64..=640).contains(&self.resolution) || !self.resolution.is_multiple_of(step) {
            return Err(NnError::option(
                "resolution",
                format!(
                    "{} is not valid for {}: needs a multiple of {step} in 64..=640 (DFL would use {})",
                    self.resolution,
                    self.archi,
                    Self::dfl_round_resolution(self.resolution, &self.archi)
                ),
            ));
        }
        let check = |name: &'static str, v: usize, lo: usize, hi: usize, even: bool| {
            if !(lo..=hi).contains(&v) || (even && !v.is_multiple_of(2)) {
                Err(NnError::option(
                    name,
                    format!(
                        "{v} is outside {lo}..={hi}{}",
                        if even { " or odd (must be even)" } else { "" }
                    ),
                ))
            } else {
                Ok(())
            }
        };
        check("ae_dims", self.ae_dims, 32, 1024, false)?;
        check("e_dims", self.e_dims, 16, 256, true)?;
        check("d_dims", self.d_dims, 16, 256, true)?;
        check("d_mask_dims", self.d_mask_dims, 16, 256, true)?;
        Ok(())
    }

    /// Checks only that the shapes can be built (resolution a positive multiple of 16, or
    /// 32 with `d`; every width at least 1), without DFL's prompt ranges. Tests and
    /// experiments use this for tiny nets; user input goes through [`Self::validate`].
    pub fn check_buildable(&self) -> Result<()> {
        let step = if self.archi.opts.d { 32 } else { 16 };
        if self.resolution == 0 || !self.resolution.is_multiple_of(step) {
            return Err(NnError::option(
                "resolution",
                format!(
                    "{} is not a positive multiple of {step} for {}",
                    self.resolution, self.archi
                ),
            ));
        }
        for (name, v) in [
            ("ae_dims", self.ae_dims),
            ("e_dims", self.e_dims),
            ("d_dims", self.d_dims),
            ("d_mask_dims", self.d_mask_dims),
        ] {
            if v == 0 {
                return Err(NnError::option(name, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `lowest_dense_res`: `R/32` with `d`, else `R/16`.
    pub fn lowest_dense_res(&self) -> usize {
        if self.archi.opts.d {
            self.resolution / 32
        } else {
            self.resolution / 16
        }
    }

    /// Spatial size of the encoder output: `R` halved (rounding up, as the symmetric 5x5
    /// stride-2 convs do) 5 times with `t`, else 4 times. `R = 112` with `t` gives 4, not 3.
    pub fn encoder_res(&self) -> usize {
        let n = if self.archi.opts.t { 5 } else { 4 };
        (0..n).fold(self.resolution, |r, _| r.div_ceil(2))
    }

    /// Length of the flattened encoder output `8e * encoder_res^2`.
    pub fn encoder_out(&self) -> usize {
        self.e_dims * 8 * self.encoder_res() * self.encoder_res()
    }

    /// Channels of one inter's output: `ae` for DF, `2*ae` for LIAE.
    pub fn inter_out_ch(&self) -> usize {
        match self.archi.kind {
            ArchiType::Df => self.ae_dims,
            ArchiType::Liae => self.ae_dims * 2,
        }
    }

    /// Spatial size of one inter's output: `ldr` with `t`, else `2*ldr`.
    pub fn inter_out_res(&self) -> usize {
        if self.archi.opts.t {
            self.lowest_dense_res()
        } else {
            self.lowest_dense_res() * 2
        }
    }

    /// Channels the decoder(s) take: `ae` (DF) or `4*ae` (LIAE, two inters concatenated).
    pub fn decoder_in_ch(&self) -> usize {
        match self.archi.kind {
            ArchiType::Df => self.ae_dims,
            ArchiType::Liae => self.ae_dims * 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archi_parse_print_roundtrip() {
        for s in ["df", "liae", "liae-ud", "df-udtc", "df-t", "liae-dt"] {
            let a: Archi = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!("DF-DU".parse::<Archi>().unwrap().to_string(), "df-ud");
        for bad in ["", "sae", "df-x", "df-uu"] {
            let e = bad.parse::<Archi>().unwrap_err().to_string();
            assert!(e.starts_with("option archi"), "{e}");
        }
    }

    #[test]
    fn resolution_rules() {
        let ud: Archi = "liae-ud".parse().unwrap();
        let plain: Archi = "df".parse().unwrap();
        assert_eq!(AeDims::dfl_round_resolution(100, &plain), 96);
        assert_eq!(AeDims::dfl_round_resolution(100, &ud), 96);
        assert_eq!(AeDims::dfl_round_resolution(112, &ud), 96);
        assert_eq!(AeDims::dfl_round_resolution(1000, &plain), 640);
        assert_eq!(AeDims::dfl_round_resolution(10, &plain), 64);
        let mut d = AeDims::saehd_default();
        d.resolution = 112;
        let e = d.validate().unwrap_err().to_string();
        assert!(e.contains("resolution") && e.contains("96"), "{e}");
        d.archi = plain;
        d.validate().unwrap();
        d.e_dims = 63;
        assert!(d.validate().unwrap_err().to_string().contains("e_dims"));
    }
}
