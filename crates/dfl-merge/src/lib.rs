//! DFL's merger (step 7): puts the face a model learned back into every dst frame.
//!
//! - [`config`]: [`MergerConfig`], every setting of DFL's `MergerConfigMasked` with its range
//!   and default (7 modes, 10 mask modes, 9 colour transfers, erode, blur, motion blur, face
//!   scale, sharpen/blur, denoise, bicubic and colour degrade).
//! - [`engine`]: the per-face merge of DFL's `MergeMaskedFace`, step by step, and the
//!   combination of several faces per frame.
//! - [`model`]: loading a SAEHD/Quick96 model (and an XSeg model) and batched prediction.
//! - [`batch`]: [`merge_folder`], a whole frame folder in parallel, resumable, shardable, with
//!   a provenance manifest ([`provenance`]) and per-frame configs ([`session`]).
//!
//! Super resolution (DFL's FaceEnhancer) is not available: its pretrained weights cannot ship
//! with dfl-rs, and the config refuses a non-zero `super_resolution_power` rather than fake it.

#![warn(missing_docs)]

pub mod alignments;
pub mod batch;
pub mod config;
pub mod engine;
pub mod error;
pub mod frames;
pub mod model;
pub mod motion;
pub mod provenance;
pub mod session;

pub use batch::{DEFAULT_BATCH, ENGINE_VERSION, MergeOptions, MergeReport, merge_folder};
pub use config::{ColorTransfer, ConfigError, MaskMode, MergerConfig, Mode, Sharpen};
pub use engine::{
    FaceResult, FaceSpec, Merged, Motion, Prediction, PreparedFace, Region, combine, merge_face,
    prepare_face,
};
pub use error::{MergeError, Result};
pub use model::{MergeModel, ModelInfo, XSegMasker, find_xseg, resolve_model_dir};
pub use session::MergerSession;
