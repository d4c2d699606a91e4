//! JPEG segment walker: finds the header segments (APPn, SOF...) up to the first scan, and
//! splices a new APP15 in while keeping every other byte of the file exactly as it was.

use crate::Error;

/// The largest payload a JPEG segment can carry (its 16-bit length counts its own 2 bytes).
pub const MAX_SEGMENT_PAYLOAD: usize = 65533;

/// DFL's metadata marker: APP15.
pub const APP15: u8 = 0xEF;

/// One marker segment of the header: `FF marker len_be16 payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The marker byte (`0xE0` for APP0...).
    pub marker: u8,
    /// Offset of the segment's `FF` byte.
    pub start: usize,
    /// Offset just past its payload.
    pub end: usize,
}

impl Segment {
    /// The payload bytes (after the length field).
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.start + 4..self.end]
    }
}

/// The header structure of a JPEG file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegHeader {
    /// Segments with a length field, in file order, up to and including the first SOS.
    pub segments: Vec<Segment>,
    /// Width from the SOF segment.
    pub width: u32,
    /// Height from the SOF segment.
    pub height: u32,
    /// Number of colour components from the SOF segment.
    pub components: u8,
}

impl JpegHeader {
    /// The payload of the last APP15 segment (DFL reads them all; the last one wins).
    pub fn app15<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.marker == APP15)
            .map(|s| s.payload(bytes))
    }
}

fn is_sof(m: u8) -> bool {
    (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC)
}

/// A short description of what the bytes look like when they are not a JPEG.
fn not_jpeg(bytes: &[u8]) -> Error {
    if bytes.is_empty() {
        Error::Empty
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Error::Png
    } else {
        Error::NotJpeg
    }
}

/// Walks the marker segments from SOI to the first SOS (start of scan) and checks that the
/// file ends with an EOI marker (as DFL's reader requires). Entropy-coded data is not read.
pub fn parse_header(bytes: &[u8]) -> Result<JpegHeader, Error> {
    if bytes.len() < 2 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(not_jpeg(bytes));
    }
    let mut pos = 2;
    let mut segments = Vec::new();
    let mut sof: Option<(u32, u32, u8)> = None;
    loop {
        if pos >= bytes.len() {
            return Err(Error::Truncated(
                "the header ends before the image data".into(),
            ));
        }
        if bytes[pos] != 0xFF {
            return Err(Error::CorruptJpeg(format!(
                "expected a marker at byte {pos}"
            )));
        }
        // Fill bytes: any number of extra 0xFF before the marker code.
        while pos + 1 < bytes.len() && bytes[pos + 1] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos + 1) else {
            return Err(Error::Truncated("the header ends inside a marker".into()));
        };
        match marker {
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            0xD8 | 0xD9 | 0x00 => {
                return Err(Error::CorruptJpeg(format!(
                    "unexpected marker FF{marker:02X} at byte {pos} before the image data"
                )));
            }
            _ => {}
        }
        let Some(len_bytes) = bytes.get(pos + 2..pos + 4) else {
            return Err(Error::Truncated(format!(
                "segment FF{marker:02X} at byte {pos} has no length"
            )));
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(Error::CorruptJpeg(format!(
                "segment FF{marker:02X} at byte {pos} has length {len}"
            )));
        }
        let end = pos + 2 + len;
        if end > bytes.len() {
            return Err(Error::Truncated(format!(
                "segment FF{marker:02X} at byte {pos} claims {len} bytes, {} remain",
                bytes.len() - pos - 2
            )));
        }
        let seg = Segment {
            marker,
            start: pos,
            end,
        };
        segments.push(seg);
        if is_sof(marker) && sof.is_none() {
            let p = seg.payload(bytes);
            if p.len() < 6 {
                return Err(Error::CorruptJpeg("SOF segment too short".into()));
            }
            let h = u32::from(u16::from_be_bytes([p[1], p[2]]));
            let w = u32::from(u16::from_be_bytes([p[3], p[4]]));
            sof = Some((w, h, p[5]));
        }
        pos = end;
        if marker == 0xDA {
            break;
        }
    }
    let Some((width, height, components)) = sof else {
        return Err(Error::CorruptJpeg(
            "no SOF (frame header) before the image data".into(),
        ));
    };
    // The entropy-coded data must be followed by EOI somewhere (trailing bytes are allowed).
    let tail = &bytes[pos..];
    if !tail.ends_with(&[0xFF, 0xD9]) && !tail.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        return Err(Error::Truncated(
            "no end-of-image marker (file cut short?)".into(),
        ));
    }
    Ok(JpegHeader {
        segments,
        width,
        height,
        components,
    })
}

/// Returns `bytes` with every APP15 segment removed and one APP15 carrying `payload`
/// inserted right after the last remaining APPn segment (after SOI when there is none), as
/// DFL's writer places it. Every other byte is kept exactly.
pub fn replace_app15(bytes: &[u8], header: &JpegHeader, payload: &[u8]) -> Result<Vec<u8>, Error> {
    if payload.len() > MAX_SEGMENT_PAYLOAD {
        return Err(Error::MetadataTooLarge(payload.len()));
    }
    let insert_at = header
        .segments
        .iter()
        .filter(|s| (0xE0..=0xEF).contains(&s.marker) && s.marker != APP15)
        .map(|s| s.end)
        .next_back()
        .unwrap_or(2);
    let mut out = Vec::with_capacity(bytes.len() + payload.len() + 4);
    let mut cursor = 0;
    let mut inserted = false;
    let insert = |out: &mut Vec<u8>| {
        out.extend_from_slice(&[0xFF, APP15]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(payload);
    };
    for s in header.segments.iter().filter(|s| s.marker == APP15) {
        if !inserted && insert_at <= s.start {
            out.extend_from_slice(&bytes[cursor..insert_at]);
            insert(&mut out);
            cursor = insert_at;
            inserted = true;
        }
        out.extend_from_slice(&bytes[cursor..s.start]);
        cursor = s.end;
    }
    if !inserted {
        out.extend_from_slice(&bytes[cursor..insert_at]);
        insert(&mut out);
        cursor = insert_at;
    }
    out.extend_from_slice(&bytes[cursor..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, APP0, APP15, DQT-like segment, SOF0, SOS, 3 data bytes, EOI (DFL's layout).
    fn tiny() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        b.extend_from_slice(&[0xFF, 0xE0, 0, 7, b'J', b'F', b'I', b'F', 0]);
        b.extend_from_slice(&[0xFF, 0xEF, 0, 4, 1, 2]);
        b.extend_from_slice(&[0xFF, 0xDB, 0, 3, 9]);
        b.extend_from_slice(&[0xFF, 0xC0, 0, 8, 8, 0, 20, 0, 30, 1]);
        b.extend_from_slice(&[0xFF, 0xDA, 0, 2, 5, 0xFF, 0x00, 0xFF, 0xD9]);
        b
    }

    #[test]
    fn walks_and_reads_dimensions() {
        let b = tiny();
        let h = parse_header(&b).unwrap();
        assert_eq!((h.width, h.height, h.components), (30, 20, 1));
        assert_eq!(h.app15(&b), Some(&[1u8, 2][..]));
        assert_eq!(h.segments.len(), 5);
    }

    #[test]
    fn replaces_app15_after_last_appn_keeping_other_bytes() {
        let b = tiny();
        let h = parse_header(&b).unwrap();
        let out = replace_app15(&b, &h, &[7, 7, 7]).unwrap();
        let h2 = parse_header(&out).unwrap();
        assert_eq!(h2.app15(&out), Some(&[7u8, 7, 7][..]));
        // Removing the APP15 from both leaves identical bytes.
        let strip = |x: &[u8], h: &JpegHeader| {
            let s = h.segments.iter().find(|s| s.marker == APP15).unwrap();
            [&x[..s.start], &x[s.end..]].concat()
        };
        assert_eq!(strip(&b, &h), strip(&out, &h2));
        // The new APP15 sits right after APP0.
        assert_eq!(h2.segments[1].marker, APP15);
        // Same payload again: byte-identical to the original.
        assert_eq!(replace_app15(&b, &h, &[1, 2]).unwrap(), b);
        assert!(matches!(
            replace_app15(&b, &h, &vec![0; MAX_SEGMENT_PAYLOAD + 1]),
            Err(Error::MetadataTooLarge(_))
        ));
        assert!(replace_app15(&b, &h, &vec![0; MAX_SEGMENT_PAYLOAD]).is_ok());
    }

    #[test]
    fn app15_moves_after_the_last_appn_and_duplicates_go() {
        // SOI, APP15(a), APP0, APP1, APP15(b), SOF0, SOS, EOI.
        let mut b = vec![0xFF, 0xD8];
        b.extend_from_slice(&[0xFF, 0xEF, 0, 3, 0xAA]);
        b.extend_from_slice(&[0xFF, 0xE0, 0, 3, 1]);
        b.extend_from_slice(&[0xFF, 0xE1, 0, 3, 2]);
        b.extend_from_slice(&[0xFF, 0xEF, 0, 3, 0xBB]);
        b.extend_from_slice(&[0xFF, 0xC0, 0, 8, 8, 0, 2, 0, 3, 1]);
        b.extend_from_slice(&[0xFF, 0xDA, 0, 2, 0xFF, 0xD9]);
        let h = parse_header(&b).unwrap();
        assert_eq!(h.app15(&b), Some(&[0xBB][..]), "the last APP15 wins");
        let out = replace_app15(&b, &h, &[0xCC]).unwrap();
        let markers: Vec<u8> = parse_header(&out)
            .unwrap()
            .segments
            .iter()
            .map(|s| s.marker)
            .collect();
        assert_eq!(markers, vec![0xE0, 0xE1, APP15, 0xC0, 0xDA]);
    }

    #[test]
    fn bad_files_are_named() {
        assert!(matches!(parse_header(b""), Err(Error::Empty)));
        assert!(matches!(
            parse_header(b"\x89PNG\r\n\x1a\n...."),
            Err(Error::Png)
        ));
        assert!(matches!(parse_header(b"GIF89a"), Err(Error::NotJpeg)));
        let b = tiny();
        for cut in 2..b.len() - 1 {
            assert!(parse_header(&b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
