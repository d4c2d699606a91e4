//! DFL's networks on burn: SAEHD (DF/LIAE and every `u`/`d`/`t`/`c` variant), Quick96, XSeg,
//! the true-face and GAN discriminators, DFL's losses and optimizers, and crash-safe
//! checkpoints.
//!
//! Tensors are NCHW `f32`; images are BGR in `[0, 1]` like DFL's. Networks are written once
//! over burn's run-time dispatched [`burn::tensor::Tensor`], so the same code trains on the
//! `flex` CPU backend and on the GPU backends a build enables ([`device::DeviceSpec`]).

#![warn(missing_docs)]

pub mod archs;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod host;
pub mod hostact;
pub mod hostconv;
pub mod info;
pub mod layers;
pub mod losses;
pub mod optim;
pub mod options;
pub mod quick96;
pub mod saehd;
pub mod store;
pub mod synthetic;
pub mod xseg_model;

pub use device::DeviceSpec;
pub use error::{NnError, Result};

pub use checkpoint::CheckpointDir;
pub use options::SaehdOptions;
pub use quick96::Quick96;
pub use saehd::{AeBatch, LearnedMasks, Predicted, Saehd, StepLosses, StepTimings};
