//! DFL's training (step 6): the sample pipeline and the SAEHD/Quick96 trainer loop.
//!
//! - [`faceset`]: aligned faces streamed from a folder or `faceset.pak` (metadata in memory,
//!   images decoded on demand).
//! - [`sampler`]: DFL's index sampling (shuffled bags, uniform-yaw bins, colour-transfer
//!   partners) and the deterministic batch planner.
//! - [`warp`] and [`processor`]: DFL's `SampleProcessor` (random grid warp with its aliasing
//!   quirk, affine, flip; face-type conversion; colour transfer; HSV; masks).
//! - [`pipeline`]: worker threads building batches ahead of the engine.
//! - [`options`]: options from TOML/flags/phase presets with DFL's override rules.
//! - [`trainer`]: the loop — saves, previews, history, backups, NaN guard, resume.
//! - [`model_dir`]: the model folder's files and `dfl model` management.
//! - [`preview`]: preview grids and the loss plot.
//!
//! Decisions are written up in `docs/training.md`.

#![warn(missing_docs)]

pub mod error;
pub mod faceset;
pub mod model_dir;
pub mod options;
pub mod pipeline;
pub mod preview;
pub mod processor;
pub mod sampler;
pub mod trainer;
pub mod warp;

pub use error::{Result, TrainError};
pub use faceset::{Faceset, SampleMeta};
pub use options::{OptionOverrides, Phase};
pub use pipeline::{HostBatch, Pipeline, PipelineConfig};
pub use trainer::{
    ModelKind, NoObserver, OnNan, StopReason, TrainEvent, TrainObserver, TrainReport, TrainRequest,
    train,
};
