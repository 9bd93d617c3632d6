//! Arbitrary bytes → `lines` decoder. The first input bytes choose max size, mode, newline
//! policy, prefixes, --base64, --split-long, --jsonrpc and chunk sizes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wsbridge::internals::Framing;

fuzz_target!(|data: &[u8]| {
    wsbridge_fuzz::delimited_target(data, Framing::Lines);
});
