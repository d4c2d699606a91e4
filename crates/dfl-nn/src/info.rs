//! Architecture summaries (`dfl model info`): parameter counts per part, computed from the
//! real modules (built lazily, so no weights are allocated).

use crate::archs::AeDims;
use crate::archs::xseg::XSeg;
use crate::error::Result;
use crate::layers::Init;
use crate::saehd::SaehdNets;
use burn::module::Module;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

/// One part of a model (DFL's model file names: `encoder`, `inter_AB`…).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartInfo {
    /// Part name.
    pub name: String,
    /// Number of `f32` parameters.
    pub params: usize,
}

/// What `dfl model info` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArchInfo {
    /// `SAEHD`, `Quick96` or `XSeg`.
    pub model: String,
    /// Shape-defining options (absent for XSeg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dims: Option<AeDims>,
    /// Encoder output (flattened length), absent for XSeg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_out: Option<usize>,
    /// One inter's output `[C, H, W]`, absent for XSeg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inter_out: Option<[usize; 3]>,
    /// Parts in DFL's order.
    pub parts: Vec<PartInfo>,
    /// Sum over parts.
    pub total_params: usize,
    /// Weights in MiB as float32.
    pub weights_mib: f64,
}

fn summarise(model: &str, dims: Option<AeDims>, parts: Vec<(&str, usize)>) -> ArchInfo {
    let total: usize = parts.iter().map(|p| p.1).sum();
    ArchInfo {
        model: model.to_string(),
        encoder_out: dims.map(|d| d.encoder_out()),
        inter_out: dims.map(|d| [d.inter_out_ch(), d.inter_out_res(), d.inter_out_res()]),
        dims,
        parts: parts
            .into_iter()
            .map(|(n, p)| PartInfo {
                name: n.to_string(),
                params: p,
            })
            .collect(),
        total_params: total,
        weights_mib: total as f64 * 4.0 / (1024.0 * 1024.0),
    }
}

/// SAEHD generator parts for `dims` (validated first).
pub fn saehd_info(dims: &AeDims) -> Result<ArchInfo> {
    dims.validate()?;
    let device = Device::flex();
    let mut rng = StdRng::seed_from_u64(0);
    let nets = SaehdNets::new(
        &mut Init {
            rng: &mut rng,
            device: &device,
        },
        dims,
    );
    Ok(summarise("SAEHD", Some(*dims), nets.part_params()))
}

/// Quick96's parts.
pub fn quick96_info() -> Result<ArchInfo> {
    let mut info = saehd_info(&AeDims::quick96())?;
    info.model = "Quick96".to_string();
    Ok(info)
}

/// The XSeg net (DFL's `XSeg(3, 32, 1)`).
pub fn xseg_info() -> ArchInfo {
    let device = Device::flex();
    let mut rng = StdRng::seed_from_u64(0);
    let net = XSeg::new(
        &mut Init {
            rng: &mut rng,
            device: &device,
        },
        3,
        32,
        1,
    );
    summarise("XSeg", None, vec![("XSeg", net.num_params())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archs::Archi;

    fn m(n: usize, decimals: i32) -> f64 {
        let s = 10f64.powi(decimals);
        (n as f64 / 1e6 * s).round() / s
    }

    fn dims(archi: &str, res: usize) -> AeDims {
        AeDims {
            archi: archi.parse::<Archi>().unwrap(),
            resolution: res,
            ..AeDims::saehd_default()
        }
    }

    #[test]
    fn parameter_counts_match_dfl_models_md() {
        let i = saehd_info(&AeDims::saehd_default()).unwrap();
        let p = |name: &str| i.parts.iter().find(|p| p.name == name).unwrap().params;
        assert_eq!(m(p("encoder"), 2), 4.31);
        assert_eq!(m(p("inter_AB"), 2), 19.93);
        assert_eq!(m(p("inter_B"), 2), 19.93);
        assert_eq!(m(p("decoder"), 2), 38.20);
        assert_eq!(m(i.total_params, 1), 82.4);
        assert_eq!(
            m(saehd_info(&dims("df", 128)).unwrap().total_params, 1),
            57.5
        );
        assert_eq!(
            m(saehd_info(&dims("liae-ud", 256)).unwrap().total_params, 1),
            145.3
        );
        let q = quick96_info().unwrap();
        let qp = |name: &str| q.parts.iter().find(|p| p.name == name).unwrap().params;
        assert_eq!(m(qp("encoder"), 2), 4.31);
        assert_eq!(m(qp("inter"), 2), 3.10);
        assert_eq!(m(qp("decoder_src"), 2), 15.44);
        assert_eq!(m(qp("decoder_dst"), 2), 15.44);
        assert_eq!(m(q.total_params, 1), 38.3);
        assert_eq!(m(xseg_info().total_params, 2), 17.57);
    }

    #[test]
    fn t_encoder_at_112_rounds_up_like_dfl() {
        let d = dims("df-t", 112);
        assert_eq!(d.encoder_res(), 4);
        assert_eq!(d.inter_out_res(), 7);
    }

    #[test]
    fn every_variant_builds_with_consistent_shapes() {
        for archi in [
            "df",
            "df-u",
            "df-d",
            "df-t",
            "df-c",
            "df-ud",
            "df-ut",
            "df-dt",
            "df-udt",
            "df-udtc",
            "liae",
            "liae-ud",
            "liae-t",
            "liae-dt",
            "liae-udtc",
        ] {
            let d = dims(archi, 128);
            let i = saehd_info(&d).unwrap();
            let r = if archi.contains('t') { 4 } else { 8 };
            assert_eq!(d.encoder_out(), 64 * 8 * r * r, "{archi}");
            assert!(i.total_params > 0);
            let names: Vec<_> = i.parts.iter().map(|p| p.name.as_str()).collect();
            if archi.starts_with("df") {
                assert_eq!(names, ["encoder", "inter", "decoder_src", "decoder_dst"]);
            } else {
                assert_eq!(names, ["encoder", "inter_AB", "inter_B", "decoder"]);
            }
        }
    }
}
