//! Property tests for every framing codec: any sequence of messages (random types and sizes,
//! bytes including `\n`, `\0` and invalid UTF-8) written by the encoder and read back by the
//! decoder in chunks cut at arbitrary boundaries gives back the same messages.

use crate::harness::random_bytes;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{Decoder, Encoder};
use wsbridge::internals::Mode;
use wsbridge::internals::{
    Framing, FramingOptions, LocalDecoder, LocalEncoder, LocalEvent, NewlinePolicy,
};

const MAX: usize = 1 << 20;

fn options(framing: Framing) -> FramingOptions {
    let mut o = FramingOptions::simple(Mode::Text, MAX);
    o.framing = framing;
    if matches!(framing, Framing::Lines | Framing::Nul) {
        // The settings under which line framings keep every message and its type.
        o.newline_policy = NewlinePolicy::Escape;
        o.text_prefix = Some("t:".into());
        o.binary_prefix = Some("b:".into());
        o.base64 = true;
    }
    o
}

/// A message: text from arbitrary strings (with newlines, NULs, backslashes), binary from
/// arbitrary bytes; mostly small, sometimes up to 1 MiB.
fn message() -> impl Strategy<Value = Message> {
    let size = prop_oneof![8 => 0usize..64, 3 => 0usize..4096, 1 => 0usize..MAX];
    let special = prop::sample::select(vec!['\n', '\0', '\\', '\r', 'é', '€', 'a', ' ', 'n', '0']);
    prop_oneof![
        (size.clone(), any::<u64>())
            .prop_map(|(n, seed)| Message::Binary(Bytes::from(random_bytes(n, seed)))),
        prop::collection::vec(prop_oneof![special, any::<char>()], 0..200)
            .prop_map(|cs| Message::Text(cs.into_iter().collect::<String>().into())),
        (size, any::<u64>()).prop_map(|(n, seed)| {
            // Large text: ASCII (with newlines, NULs, backslashes) of exactly n bytes.
            let ascii: Vec<u8> = random_bytes(n, seed)
                .into_iter()
                .map(|b| b & 0x7f)
                .collect();
            Message::Text(String::from_utf8(ascii).expect("ASCII").into())
        }),
    ]
}

fn encode(o: &FramingOptions, msgs: &[Message]) -> Vec<u8> {
    let mut e = LocalEncoder::new(o.clone());
    let mut buf = BytesMut::new();
    for m in msgs {
        e.encode(LocalEvent::Message(m.clone()), &mut buf).unwrap();
    }
    buf.to_vec()
}

/// Decode `input` cut at the given boundaries, then EOF.
fn decode(o: &FramingOptions, input: &[u8], cuts: &[usize]) -> Vec<Message> {
    let mut d = LocalDecoder::new(o.clone());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for p in points {
        buf.extend_from_slice(&input[at..p.max(at)]);
        at = p.max(at);
        while let Some(m) = d.decode(&mut buf).unwrap() {
            out.push(m);
        }
    }
    while let Some(m) = d.decode_eof(&mut buf).unwrap() {
        out.push(m);
    }
    out
}

fn round_trip(framing: Framing, msgs: Vec<Message>, cuts: Vec<usize>) -> Result<(), TestCaseError> {
    let o = options(framing);
    let bytes = encode(&o, &msgs);
    let back = decode(&o, &bytes, &cuts);
    prop_assert_eq!(back.len(), msgs.len(), "message count for {:?}", framing);
    for (i, (a, b)) in msgs.iter().zip(&back).enumerate() {
        prop_assert!(
            a == b,
            "{:?}: message {} differs ({} vs {} bytes)",
            framing,
            i,
            a.len(),
            b.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn webfs_round_trips(msgs in prop::collection::vec(message(), 0..8), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        round_trip(Framing::Webfs, msgs, cuts)?;
    }

    #[test]
    fn length_prefixed_round_trips(msgs in prop::collection::vec(message(), 0..8), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        round_trip(Framing::LengthPrefixed, msgs, cuts)?;
    }

    #[test]
    fn jsonl_round_trips(msgs in prop::collection::vec(message(), 0..8), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        round_trip(Framing::Jsonl, msgs, cuts)?;
    }

    #[test]
    fn lines_with_escape_prefixes_and_base64_round_trip(msgs in prop::collection::vec(message(), 0..8), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        round_trip(Framing::Lines, msgs, cuts)?;
    }

    #[test]
    fn nul_with_escape_prefixes_and_base64_round_trips(msgs in prop::collection::vec(message(), 0..8), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        round_trip(Framing::Nul, msgs, cuts)?;
    }

    /// Raw keeps no boundaries: the bytes of all binary messages, in order, come back.
    #[test]
    fn raw_keeps_the_bytes(chunks in prop::collection::vec((0usize..70_000, any::<u64>()), 0..6), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let o = FramingOptions::simple(Mode::Binary, MAX);
        let msgs: Vec<Message> = chunks.iter().map(|(n, s)| Message::Binary(Bytes::from(random_bytes(*n, *s)))).collect();
        let all: Vec<u8> = msgs.iter().flat_map(|m| m.clone().into_data().to_vec()).collect();
        let back = decode(&o, &encode(&o, &msgs), &cuts);
        let got: Vec<u8> = back.iter().flat_map(|m| { assert!(m.is_binary()); m.clone().into_data().to_vec() }).collect();
        prop_assert!(got == all);
    }

    /// Plain lines (default policy): text without newlines comes back exactly.
    #[test]
    fn plain_lines_round_trip_text_without_newlines(lines in prop::collection::vec("[^\n\r]{0,300}", 0..20), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let o = FramingOptions::simple(Mode::Text, MAX);
        let msgs: Vec<Message> = lines.iter().map(|l| Message::Text(l.clone().into())).collect();
        prop_assert_eq!(decode(&o, &encode(&o, &msgs), &cuts), msgs);
    }
}
