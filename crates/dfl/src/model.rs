//! `dfl model …`: describe and (later) manage models. `model info` describes an architecture
//! without a model folder; the training issue adds `list`, `rename`, `delete`, `backup` and
//! `info DIR` here.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use dfl_nn::archs::{AeDims, Archi};
use dfl_nn::info::{ArchInfo, quick96_info, saehd_info, xseg_info};

/// `dfl model` subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Describe an architecture: parameter count per part and in total.
    Info(InfoArgs),
}

/// Options of `dfl model info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Describe Quick96 (fixed settings) instead of a SAEHD architecture.
    #[arg(long, conflicts_with_all = ["xseg", "arch", "resolution", "ae_dims", "e_dims", "d_dims", "d_mask_dims"])]
    pub quick96: bool,
    /// Describe the XSeg segmentation net.
    #[arg(long, conflicts_with_all = ["arch", "resolution", "ae_dims", "e_dims", "d_dims", "d_mask_dims"])]
    pub xseg: bool,
    /// SAEHD archi: `df` or `liae`, optionally `-` and any of u, d, t, c.
    #[arg(long, default_value = "liae-ud")]
    pub arch: String,
    /// Face resolution (64..640, multiple of 16; of 32 with `d`).
    #[arg(long, default_value_t = 128)]
    pub resolution: usize,
    /// Autoencoder dims (32..1024).
    #[arg(long, default_value_t = 256)]
    pub ae_dims: usize,
    /// Encoder dims (16..256, even).
    #[arg(long, default_value_t = 64)]
    pub e_dims: usize,
    /// Decoder dims (16..256, even).
    #[arg(long, default_value_t = 64)]
    pub d_dims: usize,
    /// Decoder mask dims (16..256, even) [default: d_dims/3 rounded up to even, like DFL].
    #[arg(long)]
    pub d_mask_dims: Option<usize>,
    /// Print JSON (`total_params` and one entry per part) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// DFL's default mask dims: `d_dims // 3`, rounded up to even.
fn default_mask_dims(d_dims: usize) -> usize {
    let m = d_dims / 3;
    m + m % 2
}

pub fn run(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Info(a) => info(a),
    }
}

fn info(a: InfoArgs) -> Result<()> {
    let info = if a.quick96 {
        quick96_info()?
    } else if a.xseg {
        xseg_info()
    } else {
        let archi: Archi = a.arch.parse()?;
        let dims = AeDims {
            archi,
            resolution: a.resolution,
            ae_dims: a.ae_dims,
            e_dims: a.e_dims,
            d_dims: a.d_dims,
            d_mask_dims: a.d_mask_dims.unwrap_or_else(|| default_mask_dims(a.d_dims)),
        };
        saehd_info(&dims).context("cannot describe this architecture")?
    };
    if info.total_params == 0 {
        bail!("architecture has no parameters");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_table(&info);
    }
    Ok(())
}

fn print_table(info: &ArchInfo) {
    match &info.dims {
        Some(d) => println!(
            "{} {} resolution {} ae_dims {} e_dims {} d_dims {} d_mask_dims {}",
            info.model, d.archi, d.resolution, d.ae_dims, d.e_dims, d.d_dims, d.d_mask_dims
        ),
        None => println!("{}", info.model),
    }
    if let (Some(e), Some([c, h, w])) = (info.encoder_out, info.inter_out) {
        println!("encoder output {e} values, inter output {c}x{h}x{w}");
    }
    for p in &info.parts {
        println!(
            "  {:<12} {:>12} params  {:>8.2} M",
            p.name,
            p.params,
            p.params as f64 / 1e6
        );
    }
    println!(
        "  {:<12} {:>12} params  {:>8.2} M  ({:.1} MiB as float32)",
        "total",
        info.total_params,
        info.total_params as f64 / 1e6,
        info.weights_mib
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_dims_default_like_dfl() {
        assert_eq!(default_mask_dims(64), 22);
        assert_eq!(default_mask_dims(48), 16);
        assert_eq!(default_mask_dims(96), 32);
    }
}
