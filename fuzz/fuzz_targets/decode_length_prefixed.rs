//! Arbitrary bytes → `length-prefixed` decoder (4-byte big-endian length, high bit: text).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wsbridge::internals::{Framing, FramingOptions};
use wsbridge_fuzz::{Cursor, Limits, run_decoder};

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let max = c.max_size();
    let mode = c.mode();
    let pattern = c.chunks();
    let opts = FramingOptions {
        framing: Framing::LengthPrefixed,
        ..FramingOptions::simple(mode, max)
    };
    run_decoder(&opts, pattern, c.rest(), Limits::standard(max));
});
