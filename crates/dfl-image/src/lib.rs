//! Raster operations DFL needs exactly: warps, resizes, blurs, morphology, colour spaces,
//! colour transfer, seamless clone.
//!
//! Everything works on [`Image`] (interleaved `f32`, normally in [0, 1], 1 to 4 channels) and
//! is a pure function that returns a new image or a typed [`ImageError`]. Results match
//! OpenCV (the library DFL calls) within tolerances stated next to each function and checked
//! by golden tests against fixtures written by `tools/reference/image_reference.py`.
//! Fast paths (rayon, special-cased channel counts) keep a plain version in [`reference`].

// Numeric kernels index several small arrays with one channel/tap counter; zipped iterators
// would hide the formulas they transcribe.
#![allow(clippy::needless_range_loop)]

mod border;
mod error;
mod image;
mod interp;
pub mod reference;
mod resize;
mod warp;

pub use border::Border;
pub use error::{ImageError, Result};
pub use image::{Image, MAX_CHANNELS, MAX_SIDE, Quantize};
pub use interp::{Interp, cubic_weights, lanczos4_weights};
pub use resize::resize;
pub use warp::{Affine, invert_affine, remap, warp_affine, warp_affine_inverse};
