//! Arbitrary messages → `LocalEncoder` → `LocalDecoder` (fed in chunks) → the same messages.
//!
//! Framings with exact round trips: webfs, length-prefixed, jsonl (text/binary, plus
//! ping/pong of at most 125 bytes with --jsonl-events), and lines/nul with `--newline-policy escape`, optional
//! --split-long, and either both prefixes (neither a prefix of the other; optional --base64, but
//! not with --split-long, as the CLI refuses that) or none (then every message has the mode's
//! type). Every message is at most max_message_size long, so --split-long must not cut any.
#![no_main]
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::Encoder;
use wsbridge::internals::Mode;
use wsbridge::internals::{Framing, FramingOptions, LocalEncoder, LocalEvent, NewlinePolicy};
use wsbridge_fuzz::{Cursor, JSONL_BUFFER_FACTOR, Limits, run_decoder};

/// Prefix pairs where neither is a prefix of the other.
const PAIRS: &[(&str, &str)] = &[
    ("T:", "B:"),
    ("t", "b"),
    (">", "<"),
    ("TXT ", "BIN "),
    ("\\t", "\\b"),
    ("text:", "b64:"),
];

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    s.truncate(n);
    s
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let max = c.max_size();
    let framing = match c.byte() % 5 {
        0 => Framing::Webfs,
        1 => Framing::LengthPrefixed,
        2 => Framing::Jsonl,
        3 => Framing::Lines,
        _ => Framing::Nul,
    };
    let mode = c.mode();
    let flags = c.byte();
    let pair = c.byte();
    let pattern = c.chunks();
    let delimited = matches!(framing, Framing::Lines | Framing::Nul);
    let split_long = delimited && flags & 2 != 0;
    let prefixed = delimited && pair & 0x80 != 0;
    let (text_prefix, binary_prefix) = if prefixed {
        let (t, b) = PAIRS[pair as usize % PAIRS.len()];
        (Some(t.to_string()), Some(b.to_string()))
    } else {
        (None, None)
    };
    let opts = FramingOptions {
        framing,
        newline_policy: NewlinePolicy::Escape,
        text_prefix,
        binary_prefix,
        // Outgoing base64 is only undone behind the binary prefix (documented). The CLI refuses
        // --base64 with --split-long (a base64 line cut into pieces does not decode).
        base64: prefixed && flags & 1 != 0 && !split_long,
        split_long,
        jsonl_events: framing == Framing::Jsonl && flags & 4 != 0,
        ..FramingOptions::simple(mode, max)
    };

    let mut msgs = Vec::new();
    while !c.is_empty() && msgs.len() < 64 {
        let kind = c.byte();
        let len = c.u16() as usize % (max + 1);
        let bytes = c.take(len);
        let mut kind = kind % 4;
        if delimited && !prefixed {
            // Unprefixed lines get the mode's type.
            kind = if mode == Mode::Text { 0 } else { 2 };
        }
        if kind == 3 && !opts.jsonl_events {
            kind = 2;
        }
        let m = match kind {
            0 | 1 => {
                Message::Text(truncate(String::from_utf8_lossy(bytes).into_owned(), max).into())
            }
            2 => Message::Binary(Bytes::copy_from_slice(bytes)),
            _ => {
                // A peer cannot send a ping or pong over 125 bytes (RFC 6455 §5.5; wsconn
                // refuses the frame), and the decoder refuses such events as bad input.
                let data = Bytes::copy_from_slice(&bytes[..bytes.len().min(125)]);
                if bytes.len() % 2 == 0 {
                    Message::Ping(data)
                } else {
                    Message::Pong(data)
                }
            }
        };
        msgs.push(m);
    }

    let mut enc = LocalEncoder::new(opts.clone());
    let mut wire = BytesMut::new();
    for m in &msgs {
        enc.encode(LocalEvent::Message(m.clone()), &mut wire)
            .expect("encoding into memory");
    }

    let lim = if framing == Framing::Jsonl {
        let buffer = JSONL_BUFFER_FACTOR * max + 1026;
        Limits {
            buffer: Some(buffer),
            alloc: Some(64 * buffer + 65536),
        }
    } else {
        Limits::standard(max)
    };
    let out = run_decoder(&opts, pattern, &wire, lim);
    if let Some(e) = out.error {
        panic!(
            "round trip failed: {e} after {} of {} messages ({opts:?}); wire: {:?}",
            out.messages.len(),
            msgs.len(),
            String::from_utf8_lossy(&wire)
        );
    }
    assert_eq!(
        out.messages, msgs,
        "round trip changed the messages ({opts:?})"
    );
});
