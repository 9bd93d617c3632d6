//! Arbitrary compressed payloads → wsbridge's permessage-deflate reader (`ws::message` and
//! `ws::deflate`): bombs, bad tails, final blocks, fragments.
//!
//! The first byte picks how many fragments the payload is cut into (bits 0–3: 1 to 16) and
//! whether the peer keeps its context (bit 4). The rest is split at each `0xFE` byte into messages,
//! each sent by a server (unmasked) as a compressed binary message (RSV1 on its first frame),
//! then a Close. Asserts: no panic; no message over the limit; the stream ends with its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbridge::internals::{DeflateOptions, Limits, Role, split};
use wsbridge_fuzz::Peer;

const MAX_MESSAGE: usize = 64 << 10;

/// One unmasked frame.
fn frame(out: &mut Vec<u8>, first: u8, payload: &[u8]) {
    out.push(first);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let pieces = usize::from(sel & 15) + 1;
    let mut wire = Vec::new();
    let mut messages = 0;
    for msg in rest.split(|&b| b == 0xFE) {
        messages += 1;
        let step = msg.len().div_ceil(pieces).max(1);
        let chunks: Vec<&[u8]> = if msg.is_empty() {
            vec![&[][..]]
        } else {
            msg.chunks(step).collect()
        };
        for (i, c) in chunks.iter().enumerate() {
            let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
            let op = if i == 0 { 0x40 | 2 } else { 0 };
            frame(&mut wire, fin | op, c);
        }
    }
    frame(&mut wire, 0x88, &[0x03, 0xE8]);
    let offer = if sel & 16 == 0 {
        "permessage-deflate"
    } else {
        "permessage-deflate; server_no_context_takeover"
    };
    let deflate = DeflateOptions::default().choose(&[offer]);
    let limits = Limits {
        max_message: MAX_MESSAGE,
        max_frame: 1 << 20,
        stall: None,
    };
    let (mut stream, _sink) = split(
        Peer {
            data: wire,
            pos: 0,
            chunk: usize::MAX,
        },
        Vec::new(),
        Role::Client,
        limits,
        deflate.as_ref(),
    );
    wsbridge_fuzz::read_to_end!(stream, messages + 2, MAX_MESSAGE);
});
