//! Face geometry of DeepFaceLab: face types, 68-point landmarks, mean-face template, Umeyama,
//! crop matrices, hull masks, pose.
//!
//! Pure functions over plain types: points are `[f64; 2]` (x, y) in pixels, affine maps are
//! nalgebra 2x3 matrices mapping source → destination (OpenCV's convention). Every function
//! follows DFL's `LandmarksProcessor` / `FaceType` / `umeyama` (see
//! `docs/aligned-file-format.md` and the design notes §1); golden tests compare against
//! `tools/reference/geom_reference.py`.

mod align;
mod face_type;
pub mod landmarks;
pub mod mask;
pub mod pose;
mod umeyama;

pub use align::{
    affine_from_3_points, apply, estimate_averaged_yaw, invert_affine, polygon_area,
    rect_from_landmarks, transform_mat, transform_points, unit_face_mat,
};
pub use face_type::FaceType;
pub use landmarks::{LANDMARK_COUNT, check_landmarks, mirror_landmarks};
pub use mask::{Mask, expand_eyebrows, hull_mask};
pub use pose::estimate_pitch_yaw_roll;
pub use umeyama::umeyama;

/// A 2-D point (x, y) in pixels (or template units).
pub type Pt = [f64; 2];

/// An affine map `[[a, b, tx], [c, d, ty]]` taking source points to destination points.
pub type Affine = nalgebra::Matrix2x3<f64>;

/// Why a geometric computation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeomError {
    /// Landmark sets must have exactly 68 points.
    #[error("expected 68 landmarks, got {0}")]
    LandmarkCount(usize),
    /// Two point lists that must pair up have different lengths (or too few points).
    #[error("point count mismatch: expected {expected}, got {got}")]
    PointCount {
        /// Expected count.
        expected: usize,
        /// Count given.
        got: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("landmarks contain a non-finite coordinate")]
    NonFinite,
    /// The points do not determine a transform (all equal, collinear, zero area...).
    #[error("degenerate landmarks: the transform is undefined")]
    Degenerate,
    /// A parameter is out of range.
    #[error("bad parameter: {0}")]
    BadParameter(&'static str),
    /// A face-type string DFL does not know.
    #[error(
        "unknown face type '{0}' (known: half_face, midfull_face, full_face, full_face_no_align, whole_face, head, head_no_align, mark_only; short: h, mf, f, wf, head)"
    )]
    UnknownFaceType(String),
    /// A face-type integer code DFL does not know.
    #[error("unknown face type code {0}")]
    UnknownFaceTypeCode(i64),
}
