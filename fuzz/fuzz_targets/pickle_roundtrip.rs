//! The pickle reader on arbitrary bytes: never panics, and whatever it accepts is written
//! and re-read to the same value (compared as pickles, so NaN compares equal).
#![no_main]

use dfl_faceset::pickle::{dumps, loads};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = loads(data) {
        let once = dumps(&v);
        let back = loads(&once).expect("our own pickle reads back");
        assert_eq!(dumps(&back), once);
    }
});
