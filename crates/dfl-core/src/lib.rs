//! Shared plumbing for every dfl-rs stage.
//!
//! Small on purpose: the progress trait every long job reports through, the `--shard i/n`
//! split that lets many machines share one job, crash-safe file writes, and the sorted image
//! listing DFL uses for frame folders, and the run-time AVX2 dispatch of hot loops.

mod fsutil;
mod progress;
mod shard;
pub mod simd;

pub use fsutil::{IMAGE_EXTENSIONS, atomic_write, is_image_path, list_images};
pub use progress::{NoProgress, Progress};
pub use shard::{Shard, ShardError};
