//! The aligned-face metadata reader on arbitrary input: as a whole file, and as the APP15
//! payload of a minimal JPEG (which reaches the pickle reader and the key mapping directly).
//! Anything it accepts must survive a write/read round trip unchanged.
#![no_main]

use dfl_faceset::{embed_meta, meta_payload, pickle, read_meta_bytes};
use libfuzzer_sys::fuzz_target;

/// SOI, APP0 "JFIF", APP15 (payload), SOF0 8x8x1, SOS, one data byte, EOI.
fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 7, b'J', b'F', b'I', b'F', 0];
    b.extend_from_slice(&[0xFF, 0xEF]);
    b.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    b.extend_from_slice(payload);
    b.extend_from_slice(&[0xFF, 0xC0, 0, 8, 8, 0, 8, 0, 8, 1]);
    b.extend_from_slice(&[0xFF, 0xDA, 0, 2, 0x00, 0xFF, 0xD9]);
    b
}

fn check(file: &[u8]) {
    let Ok(meta) = read_meta_bytes(file) else {
        return;
    };
    // Accepted metadata writes back and reads back to the same pickle.
    let Ok(payload) = meta_payload(&meta) else {
        return;
    };
    let again = read_meta_bytes(&embed_meta(file, &meta).expect("embed into a JPEG we parsed"))
        .expect("re-read our own metadata");
    assert_eq!(
        pickle::dumps(&again.to_value()),
        payload,
        "metadata round trip"
    );
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() <= 65533 {
        check(&wrap(data));
    }
});
