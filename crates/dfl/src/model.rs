//! `dfl model …`: manage model folders (`list`, `info DIR`, `rename`, `delete`, `backup`) and
//! describe architectures without a model folder (`info --arch …`).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use dfl_nn::archs::{AeDims, Archi};
use dfl_nn::info::{ArchInfo, quick96_info, saehd_info, xseg_info};
use std::path::PathBuf;

/// `dfl model` subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Describe a model folder (model, iteration, options, loss history), or with no folder
    /// an architecture: parameter count per part and in total.
    Info(InfoArgs),
    /// List the models in a folder (and its sub-folders), newest save first.
    List {
        /// The folder holding model folders.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename a model folder (within its parent folder).
    Rename {
        /// The model folder.
        dir: PathBuf,
        /// The new folder name.
        new_name: String,
    },
    /// Delete a model folder (refused unless it holds a model).
    Delete {
        /// The model folder.
        dir: PathBuf,
        /// Required: confirms the deletion (nothing asks interactively).
        #[arg(long)]
        yes: bool,
    },
    /// Back the model up now into autobackups/01 (rotating 01..24 like DFL's autobackup).
    Backup {
        /// The model folder.
        dir: PathBuf,
    },
}

/// Options of `dfl model info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A model folder to describe (else the architecture given by the other options).
    #[arg(conflicts_with_all = ["quick96", "xseg", "arch", "resolution", "ae_dims", "e_dims", "d_dims", "d_mask_dims"])]
    pub dir: Option<PathBuf>,
    /// With a model folder: at most this many loss-history entries (window means beyond).
    #[arg(long, default_value_t = 10_000)]
    pub max_points: usize,
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
        ModelCmd::Info(a) => match &a.dir {
            Some(dir) => folder_info(dir, a.max_points, a.json),
            None => info(a),
        },
        ModelCmd::List { dir, json } => {
            let models = dfl_train::model_dir::list_models(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else if models.is_empty() {
                println!("no models in {}", dir.display());
            } else {
                for m in models {
                    println!(
                        "{:<24} {:<8} iteration {:>9}  {}",
                        m.name,
                        m.model,
                        m.iteration,
                        m.path.display()
                    );
                }
            }
            Ok(())
        }
        ModelCmd::Rename { dir, new_name } => {
            let to = dfl_train::model_dir::rename_model(&dir, &new_name)?;
            println!("renamed to {}", to.display());
            Ok(())
        }
        ModelCmd::Delete { dir, yes } => {
            if !yes {
                bail!(
                    "{}: deleting a model needs --yes (nothing was deleted)",
                    dir.display()
                );
            }
            dfl_train::model_dir::delete_model(&dir)?;
            println!("deleted {}", dir.display());
            Ok(())
        }
        ModelCmd::Backup { dir } => {
            let to = dfl_train::model_dir::backup_now(&dir)?;
            println!("backed up to {}", to.display());
            Ok(())
        }
    }
}

/// `dfl model info DIR`: the model folder's state, as JSON or a short summary.
fn folder_info(dir: &std::path::Path, max_points: usize, json: bool) -> Result<()> {
    let info = dfl_train::model_dir::model_info(dir, max_points)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!(
        "{} model in {}: iteration {}, {:.1} h trained, checkpoint {:.1} MiB",
        info.model,
        info.path.display(),
        info.iteration,
        info.train_seconds / 3600.0,
        info.checkpoint_bytes as f64 / (1024.0 * 1024.0)
    );
    if let Some(o) = info.options.as_object() {
        for (k, v) in o {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("  {k:<22} {v}");
        }
    }
    if let Some(last) = info.loss_history.last() {
        println!("  last loss: src {:.4} dst {:.4}", last[0], last[1]);
    }
    if !info.backups.is_empty() {
        println!("  backups: {}", info.backups.join(" "));
    }
    Ok(())
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
