//! The faceset.pak index reader on arbitrary bytes: never panics, sample ranges stay inside
//! the file and names stay plain.
#![no_main]

use dfl_faceset::pak::read_pak;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(samples) = read_pak(data) {
        for s in samples {
            assert!(s.range.start <= s.range.end && s.range.end <= data.len());
            assert!(!s.filename.contains('/') && !s.filename.contains('\\'));
        }
    }
});
