//! Arbitrary bytes from the network → wsbridge's RFC 6455 reader (`ws`).
//!
//! The first byte picks the role (bit 0: server, which expects masked frames), whether
//! permessage-deflate was agreed on (bit 1; bit 2: without context takeover, so RSV1 frames,
//! bombs and bad tails reach the inflater) and how the transport cuts its reads (the other
//! bits: 1 to 32 bytes per read); the rest is what the peer sent. Messages are read until the stream ends or fails. Asserts: no panic; no message
//! is longer than the limit; once the stream has failed or ended it yields nothing more; the
//! stream never asks to wait (the transport always has data or EOF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbridge::internals::{DeflateOptions, Limits, Role, split};
use wsbridge_fuzz::Peer;

const MAX_MESSAGE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let role = if sel & 1 == 1 {
        Role::Server
    } else {
        Role::Client
    };
    let peer = Peer {
        data: rest.to_vec(),
        pos: 0,
        chunk: usize::from(sel >> 3) + 1,
    };
    let limits = Limits {
        max_message: MAX_MESSAGE,
        max_frame: MAX_MESSAGE / 2,
        stall: None,
    };
    let offer = match sel & 6 {
        2 => Some("permessage-deflate"),
        6 => Some("permessage-deflate; client_no_context_takeover; server_no_context_takeover"),
        _ => None,
    };
    let deflate = offer.and_then(|o| DeflateOptions::default().choose(&[o]));
    let (mut stream, _sink) = split(peer, Vec::new(), role, limits, deflate.as_ref());
    // Every message takes at least two bytes of input.
    wsbridge_fuzz::read_to_end!(stream, rest.len() + 1, MAX_MESSAGE);
});
