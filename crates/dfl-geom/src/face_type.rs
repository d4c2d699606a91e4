//! DFL's face types: integer codes, metadata strings, padding and the "no align" flag.

use crate::GeomError;
use std::fmt;
use std::str::FromStr;

/// The crop a face was aligned with. The integer codes are DFL's (`facelib.FaceType`); DFL
/// compares them with `<` and `>=`, and stores them in `faceset.pak`, so they must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaceType {
    /// Eyebrows to chin, no padding (`half_face`, code 0).
    Half,
    /// Slightly larger than half (`midfull_face`, code 1).
    MidFull,
    /// The classic full face (`full_face`, code 2).
    Full,
    /// Full face, axis-aligned square instead of rotated (`full_face_no_align`, code 3).
    FullNoAlign,
    /// Whole face including the forehead (`whole_face`, code 4).
    WholeFace,
    /// The whole head (`head`, code 10).
    Head,
    /// Head, axis-aligned square (`head_no_align`, code 20).
    HeadNoAlign,
    /// Landmarks only, the frame is stored unwarped (`mark_only`, code 100).
    MarkOnly,
}

impl FaceType {
    /// Every face type, in code order.
    pub const ALL: [FaceType; 8] = [
        FaceType::Half,
        FaceType::MidFull,
        FaceType::Full,
        FaceType::FullNoAlign,
        FaceType::WholeFace,
        FaceType::Head,
        FaceType::HeadNoAlign,
        FaceType::MarkOnly,
    ];

    /// DFL's integer code (`int(FaceType.X)`).
    pub fn code(self) -> i64 {
        match self {
            FaceType::Half => 0,
            FaceType::MidFull => 1,
            FaceType::Full => 2,
            FaceType::FullNoAlign => 3,
            FaceType::WholeFace => 4,
            FaceType::Head => 10,
            FaceType::HeadNoAlign => 20,
            FaceType::MarkOnly => 100,
        }
    }

    /// The face type with DFL's integer `code`.
    pub fn from_code(code: i64) -> Result<FaceType, GeomError> {
        FaceType::ALL
            .into_iter()
            .find(|t| t.code() == code)
            .ok_or(GeomError::UnknownFaceTypeCode(code))
    }

    /// The string DFL stores in the `face_type` metadata key.
    pub fn as_str(self) -> &'static str {
        match self {
            FaceType::Half => "half_face",
            FaceType::MidFull => "midfull_face",
            FaceType::Full => "full_face",
            FaceType::FullNoAlign => "full_face_no_align",
            FaceType::WholeFace => "whole_face",
            FaceType::Head => "head",
            FaceType::HeadNoAlign => "head_no_align",
            FaceType::MarkOnly => "mark_only",
        }
    }

    /// The short option code of DFL's prompts (`h`, `mf`, `f`, `wf`, `head`), where one exists.
    pub fn short(self) -> Option<&'static str> {
        match self {
            FaceType::Half => Some("h"),
            FaceType::MidFull => Some("mf"),
            FaceType::Full => Some("f"),
            FaceType::WholeFace => Some("wf"),
            FaceType::Head => Some("head"),
            _ => None,
        }
    }

    /// Padding of the crop square around the unit template square (§1.1 of the design notes).
    /// `MarkOnly` is never warped; it reports the full-face padding so callers that draw its
    /// outline (DFL draws the FULL square for mark_only faces) get a sensible value.
    pub fn padding(self) -> f64 {
        match self {
            FaceType::Half => 0.0,
            FaceType::MidFull => 0.0675,
            FaceType::Full | FaceType::FullNoAlign | FaceType::MarkOnly => 0.2109375,
            FaceType::WholeFace => 0.40,
            FaceType::Head | FaceType::HeadNoAlign => 0.70,
        }
    }

    /// Whether the crop is an axis-aligned square (the `*_NO_ALIGN` types).
    pub fn remove_align(self) -> bool {
        matches!(self, FaceType::FullNoAlign | FaceType::HeadNoAlign)
    }
}

impl fmt::Display for FaceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaceType {
    type Err = GeomError;

    /// Parses DFL's metadata string or a short option code, case-insensitively (as DFL does).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        FaceType::ALL
            .into_iter()
            .find(|t| t.as_str() == lower || t.short() == Some(lower.as_str()))
            .ok_or_else(|| GeomError::UnknownFaceType(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_strings_round_trip() {
        for t in FaceType::ALL {
            assert_eq!(FaceType::from_code(t.code()).unwrap(), t);
            assert_eq!(t.as_str().parse::<FaceType>().unwrap(), t);
            assert_eq!(t.as_str().to_uppercase().parse::<FaceType>().unwrap(), t);
        }
        assert_eq!("wf".parse::<FaceType>().unwrap(), FaceType::WholeFace);
        assert_eq!("MF".parse::<FaceType>().unwrap(), FaceType::MidFull);
        assert_eq!(FaceType::Head.code(), 10);
        assert!(FaceType::Head >= FaceType::WholeFace);
        assert!("quarter_face".parse::<FaceType>().is_err());
        assert!(FaceType::from_code(5).is_err());
    }
}
