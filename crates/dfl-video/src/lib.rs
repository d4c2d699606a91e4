//! DFL's video steps over the system ffmpeg, through process pipes.
//!
//! - [`extract`]: video → numbered frames (`00001.png`…), DFL steps 2 and 3;
//! - [`cut`]: a part of a video, re-encoded (DFL's "cut video");
//! - [`denoise`]: temporal denoise of a frame sequence (DFL's hqdn3d step, with a factor
//!   that works);
//! - [`build`]: frames → mp4 / lossless mp4 / lossless mov / avi with the reference's audio
//!   and a provenance manifest (DFL step 8).
//!
//! ffmpeg and ffprobe are found by [`Ffmpeg::locate`]; frames cross the process boundary as
//! raw RGB24 over stdin/stdout, and arguments are passed as separate argv items, never through
//! a shell. Long jobs report through [`dfl_core::Progress`]; nothing here prints.

mod build;
mod cut;
mod denoise;
mod error;
mod extract;
mod frames;
mod output;
mod probe;
mod provenance;
mod testclip;
mod tools;
mod units;
mod yuv;

pub use build::{BuildOptions, BuildReport, DEFAULT_BUILD_BITRATE, VideoFormat, build, mask_path};
pub use cut::{CutOptions, CutReport, DEFAULT_CUT_BITRATE, cut};
pub use denoise::{
    DEFAULT_DENOISE_FACTOR, DenoiseOptions, DenoiseReport, MAX_DENOISE_FACTOR, denoise,
};
pub use error::{Result, VideoError};
pub use extract::{ExtractOptions, ExtractReport, extract};
pub use frames::{
    DEFAULT_JPEG_QUALITY, FrameFormat, RgbFrame, decode_frame, encode_frame, frame_name,
    write_replacing,
};
pub use probe::{AudioStream, MAX_SIDE, VideoInfo, probe};
pub use provenance::{FRAMES_PROVENANCE, Manifest, manifest_path, rfc3339_utc};
pub use testclip::{TestClip, make_test_clip};
pub use tools::{FFMPEG_ENV, FFPROBE_ENV, Ffmpeg};
pub use units::{Rate, Time};
