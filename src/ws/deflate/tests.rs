//! Unit tests of per-message compression: round trips over every parameter combination, a
//! peer-style decompressor that keeps its whole window (what our history trick must satisfy),
//! frames cut at every boundary, bombs, corrupt data and final blocks.

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

use super::*;
use crate::ws::message::Reassembly;

fn negotiated(bits: u8, takeover: bool, level: u8) -> Negotiated {
    Negotiated {
        tx_bits: bits,
        tx_takeover: takeover,
        rx_takeover: takeover,
        rx_bits: bits,
        level,
        answer: None,
    }
}

/// Chat-shaped JSON lines: repeated keys, varying values, 60–600 bytes.
fn json_messages(n: usize) -> Vec<Vec<u8>> {
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let words = ["hello", "price", "order", "filled", "world", "alice", "bob"];
            let text: Vec<&str> = (0..next() % 60)
                .map(|_| words[next() % words.len()])
                .collect();
            format!(
                r#"{{"type":"message","seq":{i},"user":"user{}","channel":"general","text":"{}"}}"#,
                next() % 50,
                text.join(" ")
            )
            .into_bytes()
        })
        .collect()
}

/// A peer's decompressor: one stream for the whole connection, window never reset.
fn peer_inflate(d: &mut Decompress, packed: &[u8]) -> Vec<u8> {
    let mut input = packed.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(1 << 20);
    let start = d.total_in() as usize;
    while (d.total_in() as usize - start) < input.len() {
        let used = d.total_in() as usize - start;
        if out.capacity() == out.len() {
            out.reserve(1 << 16);
        }
        d.decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            .unwrap();
    }
    out
}

#[test]
fn every_parameter_combination_round_trips_through_a_peer_that_keeps_its_window() {
    let messages = json_messages(120);
    for bits in 9..=15u8 {
        for takeover in [true, false] {
            for level in [1, 6, 9] {
                let n = negotiated(bits, takeover, level);
                let mut ours = Deflater::new(&n);
                let mut theirs = Decompress::new_with_window_bits(false, bits.max(9));
                let mut reader = Inflater::new(&n);
                let mut sent_packed = 0;
                for m in &messages {
                    let Some(packed) = ours.compress(m) else {
                        continue;
                    };
                    sent_packed += 1;
                    if !takeover {
                        theirs.reset(false);
                    }
                    assert_eq!(
                        &peer_inflate(&mut theirs, &packed),
                        m,
                        "{bits} {takeover} {level}"
                    );
                    let mut out = Vec::new();
                    reader.inflate(&packed, true, &mut out, 1 << 20).unwrap();
                    assert_eq!(&out, m);
                }
                assert!(
                    sent_packed > 100,
                    "{bits} {takeover} {level}: {sent_packed} compressed"
                );
            }
        }
    }
}

#[test]
fn context_takeover_makes_similar_messages_smaller() {
    let messages = json_messages(200);
    let total = |takeover| {
        let mut d = Deflater::new(&negotiated(15, takeover, 6));
        messages
            .iter()
            .map(|m| d.compress(m).map_or(m.len(), |p| p.len()))
            .sum::<usize>()
    };
    let raw: usize = messages.iter().map(Vec::len).sum();
    let (with, without) = (total(true), total(false));
    assert!(
        with * 10 < without * 7,
        "with {with}, without {without}, raw {raw}"
    );
    assert!(without < raw, "without {without}, raw {raw}");
}

#[test]
fn what_does_not_shrink_goes_uncompressed_and_is_not_remembered() {
    let mut d = Deflater::new(&negotiated(15, true, 6));
    assert!(d.compress(b"").is_none());
    assert!(d.compress(b"x").is_none());
    assert!(d.history.is_empty());
    let random: Vec<u8> = (0..4000).map(|_| rand::random::<u8>()).collect();
    assert!(d.compress(&random).is_none());
    assert!(d.history.is_empty());
    // A window zlib cannot compress with: always uncompressed.
    let mut small = Deflater::new(&negotiated(8, true, 6));
    assert!(small.compress(&[b'a'; 1000]).is_none());
}

#[test]
fn history_keeps_the_end_of_what_was_sent_within_the_window() {
    let mut h = Vec::new();
    remember(&mut h, &[1; 3000], 15);
    remember(&mut h, &[2; 3000], 15);
    assert_eq!(h.len(), HISTORY);
    assert_eq!(h[HISTORY - 3000..], [2; 3000]);
    remember(&mut h, &[3; 10], 9);
    assert_eq!(h.len(), 512 - 262);
    assert_eq!(h[h.len() - 10..], [3; 10]);
}

/// A message compressed by a plain zlib stream (as another implementation would), fed to the
/// reassembly cut into two frames at every possible point.
#[test]
fn compressed_messages_cut_into_frames_at_every_boundary() {
    let text = b"a compressed message, a compressed message, cut anywhere".repeat(3);
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut packed = Vec::with_capacity(1024);
    c.compress_vec(&text, &mut packed, FlushCompress::Sync)
        .unwrap();
    assert!(packed.ends_with(&TAIL));
    packed.truncate(packed.len() - 4);
    for cut in 0..=packed.len() {
        for kind in [Data::Text, Data::Binary] {
            let mut r = Reassembly::new(Some(Inflater::new(&negotiated(15, true, 6))));
            let first = r.frame(
                Some(kind),
                true,
                false,
                BytesMut::from(&packed[..cut]),
                1 << 20,
            );
            assert!(first.unwrap().is_none());
            let last = r.frame(None, false, true, BytesMut::from(&packed[cut..]), 1 << 20);
            let m = last.unwrap().unwrap();
            let got = match m {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, text, "cut at {cut}");
        }
    }
}

#[test]
fn an_empty_compressed_message_and_one_with_a_final_block() {
    let n = negotiated(15, true, 6);
    let mut r = Reassembly::new(Some(Inflater::new(&n)));
    // RFC 7692 §7.2.3.6: an empty message is a single 0x00 after the tail is removed.
    let m = r.frame(
        Some(Data::Text),
        true,
        true,
        BytesMut::from(&[0u8][..]),
        100,
    );
    assert_eq!(m.unwrap(), Some(Message::Text("".into())));
    // §7.2.3.4: a final block (BFINAL=1) instead of a sync flush; then another message.
    for word in ["first final block", "second final block"] {
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut packed = Vec::with_capacity(256);
        c.compress_vec(word.as_bytes(), &mut packed, FlushCompress::Finish)
            .unwrap();
        let m = r.frame(
            Some(Data::Text),
            true,
            true,
            BytesMut::from(&packed[..]),
            100,
        );
        assert_eq!(m.unwrap(), Some(Message::Text(word.into())));
    }
}

#[test]
fn a_bomb_stops_at_the_limit_without_producing_the_whole_output() {
    let zeros = vec![0u8; 10 << 20];
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let mut packed = Vec::with_capacity(64 << 10);
    c.compress_vec(&zeros, &mut packed, FlushCompress::Sync)
        .unwrap();
    packed.truncate(packed.len() - 4);
    assert!(packed.len() < 20 << 10, "{}", packed.len());
    let mut inf = Inflater::new(&negotiated(15, true, 6));
    let mut out = Vec::new();
    let max = 1 << 20;
    match inf.inflate(&packed, true, &mut out, max) {
        Err(InflateError::TooBig { size }) => assert!(size > max),
        other => panic!("{other:?}"),
    }
    assert!(out.capacity() <= max + 1, "{}", out.capacity());
    // Exactly at the limit is fine.
    let mut inf = Inflater::new(&negotiated(15, true, 6));
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let mut packed = Vec::with_capacity(64 << 10);
    c.compress_vec(&zeros[..max], &mut packed, FlushCompress::Sync)
        .unwrap();
    packed.truncate(packed.len() - 4);
    let mut out = Vec::new();
    inf.inflate(&packed, true, &mut out, max).unwrap();
    assert_eq!(out.len(), max);
}

/// Found by the deflate_frames fuzz target: a stream that ends with a final block one byte past
/// the limit was let through (the end of the stream skipped the size check).
#[test]
fn a_final_block_one_byte_over_the_limit_is_too_big() {
    let max = 1000;
    for (len, ok) in [(max, true), (max + 1, false)] {
        let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
        let mut packed = Vec::with_capacity(4096);
        c.compress_vec(&vec![7u8; len], &mut packed, FlushCompress::Finish)
            .unwrap();
        let mut inf = Inflater::new(&negotiated(15, true, 6));
        let mut out = Vec::new();
        match inf.inflate(&packed, true, &mut out, max) {
            Ok(()) if ok => assert_eq!(out.len(), max),
            Err(InflateError::TooBig { size }) if !ok => assert_eq!(size, max + 1),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
}

#[test]
fn corrupt_data_is_an_error_and_the_next_connection_state_is_clean() {
    let mut inf = Inflater::new(&negotiated(15, true, 6));
    let mut out = Vec::new();
    match inf.inflate(&[0xff, 0xff, 0xff, 0xff], true, &mut out, 1000) {
        Err(InflateError::Corrupt(_)) => {}
        other => panic!("{other:?}"),
    }
    // The pooled decompressor handed out next works.
    let mut d = Deflater::new(&negotiated(15, false, 6));
    let packed = d.compress(&[b'z'; 500]).unwrap();
    let mut inf = Inflater::new(&negotiated(15, false, 6));
    let mut out = Vec::new();
    inf.inflate(&packed, true, &mut out, 1000).unwrap();
    assert_eq!(out, [b'z'; 500]);
}

#[test]
fn rsv1_is_refused_without_an_inflater_and_on_continuations() {
    let mut r = Reassembly::new(None);
    assert!(
        r.frame(Some(Data::Text), true, true, BytesMut::from(&b"x"[..]), 10)
            .is_err()
    );
    let mut r = Reassembly::new(Some(Inflater::new(&negotiated(15, true, 6))));
    assert!(
        r.frame(
            Some(Data::Binary),
            false,
            false,
            BytesMut::from(&b"ab"[..]),
            10
        )
        .unwrap()
        .is_none()
    );
    assert!(
        r.frame(None, true, true, BytesMut::from(&b"c"[..]), 10)
            .is_err()
    );
}
