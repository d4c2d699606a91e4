//! The one error type of dfl-image.

/// Why an image operation refused its input. Every variant names the operation (`op`) so the
/// caller can turn it into a one-line message next to the file it was working on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// Width, height or channel count is zero or too large.
    #[error("{op}: invalid image shape {width}x{height}x{channels}: {reason}")]
    Shape {
        /// Operation that refused the shape.
        op: &'static str,
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
        /// Requested channel count.
        channels: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A pixel buffer does not hold `width * height * channels` values.
    #[error("{op}: buffer holds {got} values but {width}x{height}x{channels} needs {expected}")]
    BufferLength {
        /// Operation that received the buffer.
        op: &'static str,
        /// Width of the image.
        width: usize,
        /// Height of the image.
        height: usize,
        /// Channels of the image.
        channels: usize,
        /// Values the shape needs.
        expected: usize,
        /// Values the buffer holds.
        got: usize,
    },
    /// Two inputs that must have the same size do not.
    #[error("{op}: size mismatch: {a_width}x{a_height} vs {b_width}x{b_height}")]
    SizeMismatch {
        /// Operation that compared the sizes.
        op: &'static str,
        /// Width of the first input.
        a_width: usize,
        /// Height of the first input.
        a_height: usize,
        /// Width of the second input.
        b_width: usize,
        /// Height of the second input.
        b_height: usize,
    },
    /// The input has a channel count the operation does not handle.
    #[error("{op}: needs {expected} channel(s), got {got}")]
    Channels {
        /// Operation that checked the channels.
        op: &'static str,
        /// What the operation accepts, in words ("3", "1 or 3").
        expected: &'static str,
        /// Channels of the input.
        got: usize,
    },
    /// A numeric parameter is out of its range.
    #[error("{op}: invalid parameter: {msg}")]
    Parameter {
        /// Operation that checked the parameter.
        op: &'static str,
        /// Which parameter and what is wrong.
        msg: String,
    },
    /// The input contains NaN or infinite values where the operation cannot define a result.
    #[error("{op}: input contains NaN or infinite values")]
    NonFinite {
        /// Operation that found them.
        op: &'static str,
    },
    /// A matrix that has to be inverted is singular.
    #[error("{op}: matrix is singular")]
    Singular {
        /// Operation that tried to invert it.
        op: &'static str,
    },
    /// A mask that must select at least one pixel selects none.
    #[error("{op}: mask selects no pixel")]
    EmptyMask {
        /// Operation that received the mask.
        op: &'static str,
    },
    /// A region does not fit inside the image it must be placed in.
    #[error("{op}: region {x},{y} {width}x{height} does not fit in {img_width}x{img_height}")]
    OutOfBounds {
        /// Operation that placed the region.
        op: &'static str,
        /// Left edge of the region (may be negative).
        x: i64,
        /// Top edge of the region (may be negative).
        y: i64,
        /// Width of the region.
        width: usize,
        /// Height of the region.
        height: usize,
        /// Width of the image.
        img_width: usize,
        /// Height of the image.
        img_height: usize,
    },
}

/// Result alias of dfl-image.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
