//! Arbitrary bytes → `jsonl` decoder (one JSON object per line).
//!
//! Buffer bound: the jsonl decoder keeps up to `6 * max + 1026` bytes of an unfinished line
//! (`LocalDecoder::max_buffered`: JSON escapes a control character in 6 bytes, plus 1 KiB for
//! the envelope, plus 2). That is always more than the `4 * max + 64` used elsewhere; it is the
//! decoder's deliberate allowance (reported in docs/fuzzing.md), so the bound here is that.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wsbridge::internals::{Framing, FramingOptions};
use wsbridge_fuzz::{Cursor, JSONL_BUFFER_FACTOR, Limits, run_decoder};

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let max = c.max_size();
    let jsonl_events = c.bool();
    let pattern = c.chunks();
    let opts = FramingOptions {
        framing: Framing::Jsonl,
        jsonl_events,
        ..FramingOptions::simple(wsbridge::internals::Mode::Text, max)
    };
    let buffer = JSONL_BUFFER_FACTOR * max + 1026;
    let lim = Limits {
        buffer: Some(buffer),
        // serde_json::Value of a line: several times the line, but bounded by it.
        alloc: Some(64 * buffer + 65536),
    };
    run_decoder(&opts, pattern, c.rest(), lim);
});
