//! Arbitrary bytes → `raw` decoder (each chunk: binary messages of at most the limit).
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
        framing: Framing::Raw,
        ..FramingOptions::simple(mode, max)
    };
    run_decoder(&opts, pattern, c.rest(), Limits::standard(max));
});
