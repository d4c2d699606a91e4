//! Face detection and 68-point landmarks from real pretrained weights, and DFL's extraction
//! step (frames to aligned faces).
//!
//! The nets are face-api's SSD-MobileNetV1 detector and FaceLandmark68Net (MIT, npm
//! `@vladmandic/face-api@1.7.15`), rebuilt on burn from the package's TypeScript topology and
//! run on whatever burn device the caller picks. See `docs/detection.md`.

#![warn(missing_docs)]

pub mod cpu;
pub mod eval;
pub mod extract;
pub mod find;
pub mod frame;
pub mod landmark68;
pub mod layers;
pub mod manual;
pub mod nets;
pub mod output;
pub mod prep;
pub mod ssd;
pub mod tfjs;

pub use extract::{ExtractError, ExtractOptions, ExtractReport, extract};
pub use find::{FaceFound, FindOptions, Models, find_faces, track_faces};
pub use frame::{Frame, FrameError, Rotation, load_frame};
pub use nets::{
    Detection, DetectorOptions, FaceDetector, Landmarker, Landmarks, crop_from_landmarks,
};
pub use prep::{Crop, RgbView};
