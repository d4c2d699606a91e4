//! Small value types of the video options: frame rates as exact fractions (`30000/1001`) and
//! times (`90`, `1:30`, `00:01:30.500`), with parsers that explain what they refuse.

use crate::error::VideoError;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A strictly positive frame rate kept as an exact fraction, so NTSC rates such as
/// `30000/1001` reach ffmpeg unrounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    /// Numerator, `> 0`.
    pub num: u32,
    /// Denominator, `> 0`.
    pub den: u32,
}

impl Rate {
    /// The rate in frames per second.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// A rate from an ffprobe field such as `30000/1001`; `None` for `0/0`, `0/1` or junk.
    pub fn from_ffprobe(s: &str) -> Option<Rate> {
        s.parse().ok()
    }
}

impl FromStr for Rate {
    type Err = VideoError;

    /// Accepts `25`, `29.97` or `30000/1001`; refuses zero, negative and non-finite values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            VideoError::InvalidOption(format!(
                "frame rate '{s}' is not valid: give a number of frames per second greater than \
                 0, such as 25, 29.97 or 30000/1001"
            ))
        };
        let t = s.trim();
        let (num, den) = if let Some((n, d)) = t.split_once('/') {
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            let d: u64 = d.trim().parse().map_err(|_| bad())?;
            (n, d)
        } else {
            // A decimal number: scale by a power of ten so the value stays exact.
            let (int, frac) = t.split_once('.').unwrap_or((t, ""));
            if int.is_empty() && frac.is_empty()
                || !int.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
                || frac.len() > 6
            {
                return Err(bad());
            }
            let den = 10u64.pow(frac.len() as u32);
            let int_v: u64 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad())?
            };
            let frac_v: u64 = if frac.is_empty() {
                0
            } else {
                frac.parse().map_err(|_| bad())?
            };
            (
                int_v
                    .checked_mul(den)
                    .and_then(|v| v.checked_add(frac_v))
                    .ok_or_else(bad)?,
                den,
            )
        };
        if num == 0 || den == 0 {
            return Err(bad());
        }
        let g = gcd(num, den);
        let (num, den) = (num / g, den / g);
        let num = u32::try_from(num).map_err(|_| bad())?;
        let den = u32::try_from(den).map_err(|_| bad())?;
        if f64::from(num) / f64::from(den) > 1000.0 {
            return Err(VideoError::InvalidOption(format!(
                "frame rate '{s}' is above 1000 frames per second"
            )));
        }
        Ok(Rate { num, den })
    }
}

impl fmt::Display for Rate {
    /// `25` for whole rates, `30000/1001` otherwise (a form ffmpeg accepts).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A point in a video, in milliseconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Time {
    /// Milliseconds from the start of the video.
    pub millis: u64,
}

impl Time {
    /// The time in seconds.
    pub fn seconds(self) -> f64 {
        self.millis as f64 / 1000.0
    }

    /// A time from seconds (rounded to the millisecond; negative values clamp to 0).
    pub fn from_seconds(s: f64) -> Time {
        Time {
            millis: (s.max(0.0) * 1000.0).round() as u64,
        }
    }
}

impl FromStr for Time {
    type Err = VideoError;

    /// Accepts `SS[.mmm]`, `MM:SS[.mmm]` or `HH:MM:SS[.mmm]` (DFL shows `00:00:00.000`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            VideoError::InvalidOption(format!(
                "time '{s}' is not valid: use seconds (90 or 90.5), MM:SS or HH:MM:SS.mmm"
            ))
        };
        let t = s.trim();
        let parts: Vec<&str> = t.split(':').collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(bad());
        }
        let (whole, frac) = match parts.last() {
            Some(last) => last.split_once('.').unwrap_or((last, "")),
            None => return Err(bad()),
        };
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !(frac.is_empty() || digits(frac)) {
            return Err(bad());
        }
        let mut seconds: u64 = whole.parse().map_err(|_| bad())?;
        let mut scale = 60;
        for p in parts.iter().rev().skip(1) {
            if !digits(p) {
                return Err(bad());
            }
            let v: u64 = p.parse().map_err(|_| bad())?;
            seconds = v
                .checked_mul(scale)
                .and_then(|x| x.checked_add(seconds))
                .ok_or_else(bad)?;
            scale *= 60;
        }
        // Milliseconds from the fraction, rounded (".5" is 500 ms, ".1234" is 123 ms).
        let mut frac_ms = 0u64;
        for (i, b) in frac.bytes().take(3).enumerate() {
            frac_ms += u64::from(b - b'0') * 10u64.pow(2 - i as u32);
        }
        if frac.as_bytes().get(3).is_some_and(|b| *b >= b'5') {
            frac_ms += 1;
        }
        let millis = seconds
            .checked_mul(1000)
            .and_then(|x| x.checked_add(frac_ms))
            .ok_or_else(bad)?;
        Ok(Time { millis })
    }
}

impl fmt::Display for Time {
    /// `HH:MM:SS.mmm`, DFL's notation and one ffmpeg accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis % 1000;
        let s = self.millis / 1000;
        write!(
            f,
            "{:02}:{:02}:{:02}.{ms:03}",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_exactly() {
        assert_eq!("25".parse::<Rate>().unwrap(), Rate { num: 25, den: 1 });
        assert_eq!(
            "30000/1001".parse::<Rate>().unwrap(),
            Rate {
                num: 30000,
                den: 1001
            }
        );
        assert_eq!(
            "29.97".parse::<Rate>().unwrap(),
            Rate {
                num: 2997,
                den: 100
            }
        );
        assert_eq!("0.5".parse::<Rate>().unwrap(), Rate { num: 1, den: 2 });
        assert_eq!("50/2".parse::<Rate>().unwrap().to_string(), "25");
        for bad in [
            "0", "-5", "-1/2", "0/1", "1/0", "abc", "", ".", "inf", "NaN", "1e3", "5000",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn times_parse_and_print() {
        let t = |s: &str| s.parse::<Time>().unwrap().millis;
        assert_eq!(t("90"), 90_000);
        assert_eq!(t("1.5"), 1_500);
        assert_eq!(t("1:30"), 90_000);
        assert_eq!(t("01:02:03.004"), 3_723_004);
        assert_eq!(t("0.0005"), 1);
        assert_eq!(Time { millis: 3_723_004 }.to_string(), "01:02:03.004");
        for bad in ["", "-1", "1:2:3:4", "a", ".5", "1:x", "1e2"] {
            assert!(bad.parse::<Time>().is_err(), "{bad} accepted");
        }
    }
}
