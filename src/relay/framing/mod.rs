//! Framing codecs between byte streams and messages (tokio-util `Decoder`/`Encoder`).
//!
//! [`LocalDecoder`] cuts local bytes into outgoing messages; [`LocalEncoder`] writes incoming
//! messages (and session events) to the local side. Every framing has a maximum size and a
//! documented policy for bad input (docs/framing.md):
//!
//! | framing | one message is | keeps boundaries | keeps types |
//! |---|---|---|---|
//! | `lines` | a line (`\n`; a trailing `\r` is dropped) | yes¹ | with prefixes |
//! | `nul` | bytes up to a NUL | yes¹ | with prefixes |
//! | `webfs` | `t`/`b`, space, 20-digit length, payload | yes | yes |
//! | `length-prefixed` | 4-byte big-endian length (high bit: text), payload | yes | yes |
//! | `jsonl` | one JSON object per line | yes | yes |
//! | `raw` | whatever one read returns | no | binary only |
//!
//! ¹ exactly with `--newline-policy escape`.
//!
//! Text frames never carry invalid UTF-8: a text-mode frame that is not UTF-8 is sent as a
//! binary message (counted in [`LocalDecoder::binary_fallbacks`], the relay warns).

use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

mod decode;
mod encode;

pub use decode::LocalDecoder;
pub use encode::LocalEncoder;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How local bytes are cut into messages and messages written to local bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// One line per message (the default in text mode).
    Lines,
    /// NUL-terminated messages.
    Nul,
    /// 9front webfs: `t`/`b`, a space, the length in 20 decimal digits, the payload.
    Webfs,
    /// 4-byte big-endian length (high bit set: text), then the payload.
    LengthPrefixed,
    /// One JSON object per line: {"type":"text","data":"…"}, {"type":"binary","data":"<base64>"}.
    Jsonl,
    /// Each read becomes one binary message; incoming messages are written as they are.
    Raw,
}

/// What to do with a separator (newline, NUL) inside an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NewlinePolicy {
    /// Replace it with a space (websocat's behaviour): one message is one line.
    #[default]
    Space,
    /// Write `\` as `\\`, newline as `\n`, CR as `\r`, NUL as `\0`; undone for outgoing lines.
    Escape,
    /// Write it as it is (the reader sees more than one line).
    Keep,
}

/// How byte streams map to messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines ↔ text messages.
    Text,
    /// Byte chunks ↔ binary messages.
    Binary,
}

/// Everything the codecs need to know.
#[derive(Debug, Clone)]
pub struct FramingOptions {
    pub framing: Framing,
    /// Type of outgoing messages for `lines`, `nul` and `raw` (binary fallback for bad UTF-8).
    pub mode: Mode,
    pub max_message_size: usize,
    pub newline_policy: NewlinePolicy,
    pub text_prefix: Option<String>,
    pub binary_prefix: Option<String>,
    /// Binary messages in line framings are base64 (incoming always; outgoing with the prefix).
    pub base64: bool,
    /// Split an outgoing line over the limit into several messages instead of failing.
    pub split_long: bool,
    /// jsonl: also report ping, pong and open events.
    pub jsonl_events: bool,
    /// Turn `method arg…` lines into JSON-RPC 2.0 calls.
    pub jsonrpc: bool,
    /// Write `websocket ready` once the WebSocket is connected (as webfs does).
    pub ready_line: bool,
}

impl FramingOptions {
    /// Plain lines (text) or raw chunks (binary) with the given limit.
    pub fn simple(mode: Mode, max_message_size: usize) -> Self {
        FramingOptions {
            framing: if mode == Mode::Text {
                Framing::Lines
            } else {
                Framing::Raw
            },
            mode,
            max_message_size,
            newline_policy: NewlinePolicy::Space,
            text_prefix: None,
            binary_prefix: None,
            base64: false,
            split_long: false,
            jsonl_events: false,
            jsonrpc: false,
            ready_line: false,
        }
    }

    fn separator(&self) -> Option<u8> {
        match self.framing {
            Framing::Lines | Framing::Jsonl => Some(b'\n'),
            Framing::Nul => Some(0),
            _ => None,
        }
    }
}

/// Bad local input that ends the session.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("a local message is longer than --max-message-size ({limit} bytes)")]
    TooLong { limit: usize },
    #[error("bad local input: {0}")]
    BadInput(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What the local side is told.
#[derive(Debug, Clone)]
pub enum LocalEvent {
    /// The WebSocket is up (written once, before anything else).
    Open,
    Message(Message),
    /// The session is over; `None` frame: the connection ended without a Close.
    Closed(Option<CloseFrame>, Option<String>),
}

/// `\` → `\\`, LF → `\n`, CR → `\r`, NUL → `\0`.
fn escape(payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(payload.len());
    for &b in payload {
        match b {
            b'\\' => dst.extend_from_slice(b"\\\\"),
            b'\n' => dst.extend_from_slice(b"\\n"),
            b'\r' => dst.extend_from_slice(b"\\r"),
            0 => dst.extend_from_slice(b"\\0"),
            b => dst.put_u8(b),
        }
    }
}

/// The inverse of [`escape`]; a backslash before any other byte is kept as it is.
fn unescape(s: &[u8]) -> Bytes {
    if !s.contains(&b'\\') {
        return Bytes::copy_from_slice(s);
    }
    let mut out = BytesMut::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            let replaced = match s[i + 1] {
                b'\\' => Some(b'\\'),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b'0' => Some(0),
                _ => None,
            };
            if let Some(r) = replaced {
                out.put_u8(r);
                i += 2;
                continue;
            }
        }
        out.put_u8(s[i]);
        i += 1;
    }
    out.freeze()
}

/// `method a b` → `{"jsonrpc":"2.0","id":N,"method":"method","params":[a,b]}`. Arguments that
/// are valid JSON are used as such, others as strings; a rest starting with `[` or `{` is the
/// params value itself.
fn jsonrpc_call(line: &[u8], id: u64) -> Result<Vec<u8>, FramingError> {
    let line = std::str::from_utf8(line)
        .map_err(|_| FramingError::BadInput("JSON-RPC line is not UTF-8".into()))?;
    let line = line.trim();
    let (method, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let params = if rest.starts_with('[') || rest.starts_with('{') {
        serde_json::from_str(rest)
            .map_err(|e| FramingError::BadInput(format!("JSON-RPC params: {e}")))?
    } else {
        serde_json::Value::Array(
            rest.split_whitespace()
                .map(|a| {
                    serde_json::from_str(a)
                        .unwrap_or_else(|_| serde_json::Value::String(a.to_string()))
                })
                .collect(),
        )
    };
    let call = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    Ok(serde_json::to_vec(&call).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_util::codec::{Decoder, Encoder};

    fn opts(framing: Framing) -> FramingOptions {
        FramingOptions {
            framing,
            ..FramingOptions::simple(Mode::Text, 1 << 20)
        }
    }

    /// Decode `input` fed in chunks of `chunk` bytes, then EOF.
    fn decode_all(o: &FramingOptions, input: &[u8], chunk: usize) -> Result<Vec<Message>, String> {
        let mut d = LocalDecoder::new(o.clone());
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(part);
            while let Some(x) = d.decode(&mut buf).map_err(|e| e.to_string())? {
                out.push(x);
            }
        }
        while let Some(x) = d.decode_eof(&mut buf).map_err(|e| e.to_string())? {
            out.push(x);
        }
        Ok(out)
    }

    fn encode_all(o: &FramingOptions, msgs: &[Message]) -> Vec<u8> {
        let mut e = LocalEncoder::new(o.clone());
        let mut b = BytesMut::new();
        for m in msgs {
            e.encode(LocalEvent::Message(m.clone()), &mut b).unwrap();
        }
        b.to_vec()
    }

    fn text(s: &str) -> Message {
        Message::Text(s.into())
    }

    fn bin(b: &[u8]) -> Message {
        Message::Binary(Bytes::copy_from_slice(b))
    }

    #[test]
    fn lines_at_any_chunking() {
        let input = b"a\nbb\r\n\nlast";
        for chunk in 1..=input.len() {
            let got = decode_all(&opts(Framing::Lines), input, chunk).unwrap();
            assert_eq!(
                got,
                [text("a"), text("bb"), text(""), text("last")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn line_limit_and_split_long() {
        let mut o = opts(Framing::Lines);
        o.max_message_size = 3;
        assert_eq!(
            decode_all(&o, b"abc\nabcd\n", 100).unwrap_err(),
            "a local message is longer than --max-message-size (3 bytes)"
        );
        assert!(decode_all(&o, b"abc\r\n", 1).is_ok());
        assert!(decode_all(&o, b"abcdefgh", 2).is_err());
        o.split_long = true;
        assert_eq!(
            decode_all(&o, b"abcdefgh\nxy\n", 3).unwrap(),
            [text("abc"), text("def"), text("gh"), text("xy")]
        );
        // Text is split on character boundaries: '€' is 3 bytes.
        o.max_message_size = 4;
        assert_eq!(
            decode_all(&o, "a€€".as_bytes(), 100).unwrap(),
            [text("a€"), text("€")]
        );
    }

    #[test]
    fn split_long_keeps_the_buffer_bounded_and_the_type() {
        let mut o = opts(Framing::Lines);
        o.max_message_size = 10;
        o.split_long = true;
        o.binary_prefix = Some("B:".into());
        let mut d = LocalDecoder::new(o);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // A binary-prefixed line of 1000 bytes, fed in chunks: pieces come out as it arrives.
        let mut line = b"B:".to_vec();
        line.extend(std::iter::repeat_n(b'x', 1000));
        line.push(b'\n');
        for chunk in line.chunks(7) {
            buf.extend_from_slice(chunk);
            while let Some(m) = d.decode(&mut buf).unwrap() {
                out.push(m);
            }
            assert!(buf.len() <= 10 + 7, "buffer grew to {}", buf.len());
        }
        assert!(
            out.iter().all(|m| m.is_binary() && m.len() <= 10),
            "{out:?}"
        );
        assert_eq!(out.iter().map(Message::len).sum::<usize>(), 1000);
        // The next line starts afresh.
        buf.extend_from_slice(b"short\n");
        assert_eq!(d.decode(&mut buf).unwrap(), Some(text("short")));
    }

    /// `--split-long` contract, at every read size: a message within the limit comes out as
    /// exactly that message; a longer one as consecutive non-empty pieces of at most the limit,
    /// of its type, that join up to it (and never take in the next message).
    fn assert_split_round_trip(o: &FramingOptions, msgs: &[Message]) {
        let wire = encode_all(o, msgs);
        let max = o.max_message_size;
        for chunk in 1..=wire.len() {
            let got = decode_all(o, &wire, chunk).unwrap();
            let mut out = got.iter();
            for m in msgs {
                if m.len() <= max {
                    assert_eq!(out.next(), Some(m), "chunk {chunk}: {got:?}");
                    continue;
                }
                let mut joined = Vec::new();
                while joined.len() < m.len() {
                    let piece = out.next().expect("a piece");
                    assert!(
                        !piece.is_empty() && piece.len() <= max,
                        "chunk {chunk}: {got:?}"
                    );
                    assert_eq!(piece.is_text(), m.is_text(), "chunk {chunk}: {got:?}");
                    joined.extend_from_slice(&piece.clone().into_data());
                }
                assert_eq!(joined, m.clone().into_data(), "chunk {chunk}: {got:?}");
            }
            assert_eq!(out.next(), None, "chunk {chunk}: {got:?}");
        }
    }

    /// Found by the `roundtrip` fuzz target (fuzz/regressions/roundtrip/): the early cut of an
    /// unfinished line counted its escaped bytes and its prefix against the limit, so a message
    /// within the limit was sent as two when a read ended inside its line.
    #[test]
    fn split_long_counts_the_message_not_its_encoding() {
        // crash-2ddf5bf…: nul, binary, escape, max 9; 7 and 8 bytes that escape to 11 and 12.
        let mut o = FramingOptions {
            framing: Framing::Nul,
            newline_policy: NewlinePolicy::Escape,
            split_long: true,
            ..FramingOptions::simple(Mode::Binary, 9)
        };
        let msgs = [
            bin(b""),
            bin(b"\x03\xbc\xbc\xbc\xbc\xbc\x01C"),
            bin(b"lo\n\\\r\0\x02"),
            bin(b""),
            bin(b"\t\x04\0\x01\n\xff\n\0"),
            bin(b""),
        ];
        assert_split_round_trip(&o, &msgs);
        // crash-d5966f3…: nul, text, prefixes `>`/`<`: a 9-byte text is 10 bytes with its prefix.
        o.mode = Mode::Text;
        o.text_prefix = Some(">".into());
        o.binary_prefix = Some("<".into());
        assert_split_round_trip(&o, &[text("h\u{fffd}W\x03v'b"), bin(b"\xff"), text("")]);
        // A piece never ends inside an escape or a prefix, even at a limit of 1 byte.
        o.max_message_size = 1;
        assert_split_round_trip(&o, &[text("\n"), bin(b"\0"), text("\\\0\r"), bin(b"xyz")]);
        // Longer messages are split by their unescaped length, and text between characters.
        o.max_message_size = 4;
        o.framing = Framing::Lines;
        assert_split_round_trip(
            &o,
            &[
                text("\n\n\n\n\n\n\n\n\n"),
                text("a€€€"),
                bin(b"\\\\\\\\\\"),
                text("ok"),
            ],
        );
        // Lines: the CR of a CRLF at the limit is not a piece of its own.
        let mut crlf = opts(Framing::Lines);
        crlf.max_message_size = 3;
        crlf.split_long = true;
        for chunk in 1..=5 {
            assert_eq!(
                decode_all(&crlf, b"abc\r\nabcd\r\n", chunk).unwrap(),
                [text("abc"), text("abc"), text("d")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn invalid_utf8_becomes_binary() {
        let mut d = LocalDecoder::new(opts(Framing::Lines));
        let mut b = BytesMut::from(&b"ok\n\xff\xfe\n"[..]);
        assert_eq!(d.decode(&mut b).unwrap(), Some(text("ok")));
        assert_eq!(d.decode(&mut b).unwrap(), Some(bin(b"\xff\xfe")));
        assert_eq!(d.binary_fallbacks, 1);
    }

    #[test]
    fn encoder_one_message_one_line() {
        let o = opts(Framing::Lines);
        assert_eq!(
            encode_all(&o, &[text("a\nb"), text(""), Message::Ping(Bytes::new())]),
            b"a b\n\n"
        );
        let raw = FramingOptions::simple(Mode::Binary, 100);
        assert_eq!(encode_all(&raw, &[bin(b"\x00\n")]), b"\x00\n");
    }

    #[test]
    fn newline_policies() {
        let mut o = opts(Framing::Lines);
        let m = [text("a\nb\\c\rd")];
        assert_eq!(encode_all(&o, &m), b"a b\\c\rd\n");
        o.newline_policy = NewlinePolicy::Keep;
        assert_eq!(encode_all(&o, &m), b"a\nb\\c\rd\n");
        o.newline_policy = NewlinePolicy::Escape;
        assert_eq!(encode_all(&o, &m), b"a\\nb\\\\c\\rd\n");
        assert_eq!(decode_all(&o, &encode_all(&o, &m), 2).unwrap(), m);
        // An unknown escape is kept as it is.
        assert_eq!(decode_all(&o, b"x\\qy\n", 1).unwrap(), [text("x\\qy")]);
    }

    #[test]
    fn prefixes_and_base64() {
        let mut o = opts(Framing::Lines);
        o.text_prefix = Some("T:".into());
        o.binary_prefix = Some("B:".into());
        o.base64 = true;
        let msgs = [text("hello"), bin(b"\x00\x01\n\xff"), text("B:not binary")];
        let bytes = encode_all(&o, &msgs);
        assert_eq!(bytes, b"T:hello\nB:AAEK/w==\nT:B:not binary\n");
        assert_eq!(decode_all(&o, &bytes, 3).unwrap(), msgs);
        // Unprefixed lines follow the mode; a bad base64 line is an error.
        assert_eq!(decode_all(&o, b"plain\n", 1).unwrap(), [text("plain")]);
        assert!(
            decode_all(&o, b"B:!!!\n", 1)
                .unwrap_err()
                .contains("not base64")
        );
    }

    #[test]
    fn nul_framing() {
        let o = opts(Framing::Nul);
        assert_eq!(
            decode_all(&o, b"a\0b\nc\0\0", 2).unwrap(),
            [text("a"), text("b\nc"), text("")]
        );
        assert_eq!(encode_all(&o, &[text("x\0y"), text("z\n")]), b"x y\0z\n\0");
    }

    #[test]
    fn webfs_framing() {
        let o = opts(Framing::Webfs);
        let bytes = encode_all(&o, &[text("hello"), bin(b"\x00\xff")]);
        assert_eq!(
            bytes,
            b"t 00000000000000000005hellob 00000000000000000002\x00\xff"
        );
        for chunk in 1..bytes.len() {
            assert_eq!(
                decode_all(&o, &bytes, chunk).unwrap(),
                [text("hello"), bin(b"\x00\xff")]
            );
        }
        assert!(
            decode_all(&o, b"x 00000000000000000001a", 100)
                .unwrap_err()
                .contains("'t' or 'b'")
        );
        assert!(
            decode_all(&o, b"t 0000000000000000000xa", 100)
                .unwrap_err()
                .contains("20 digits")
        );
        assert!(
            decode_all(&o, b"t 00000000000000000009abc", 100)
                .unwrap_err()
                .contains("input ended inside")
        );
        let mut small = o.clone();
        small.max_message_size = 4;
        assert!(
            decode_all(&small, b"t 99999999999999999999", 100)
                .unwrap_err()
                .contains("longer than")
        );
    }

    #[test]
    fn length_prefixed_framing() {
        let o = opts(Framing::LengthPrefixed);
        let bytes = encode_all(&o, &[text("hi"), bin(b"\x01")]);
        assert_eq!(bytes, b"\x80\x00\x00\x02hi\x00\x00\x00\x01\x01");
        assert_eq!(
            decode_all(&o, &bytes, 1).unwrap(),
            [text("hi"), bin(b"\x01")]
        );
        let mut small = o.clone();
        small.max_message_size = 4;
        assert!(
            decode_all(&small, b"\x7f\xff\xff\xff", 100)
                .unwrap_err()
                .contains("longer than")
        );
    }

    #[test]
    fn jsonl_framing() {
        let mut o = opts(Framing::Jsonl);
        let msgs = [text("a\"b\n"), bin(b"\x00\xff")];
        let bytes = encode_all(&o, &msgs);
        assert_eq!(bytes, b"{\"type\":\"text\",\"data\":\"a\\\"b\\n\"}\n{\"type\":\"binary\",\"data\":\"AP8=\"}\n");
        assert_eq!(decode_all(&o, &bytes, 5).unwrap(), msgs);
        assert_eq!(
            decode_all(&o, b"\n{\"type\":\"close\",\"code\":4000,\"reason\":\"r\"}\n{\"type\":\"ping\",\"data\":\"eA==\"}", 3).unwrap(),
            [
                Message::Close(Some(CloseFrame { code: CloseCode::from(4000), reason: "r".into() })),
                Message::Ping(Bytes::from_static(b"x"))
            ]
        );
        for bad in [
            &b"nope\n"[..],
            b"{}\n",
            b"{\"type\":\"x\"}\n",
            b"{\"type\":\"binary\",\"data\":\"!\"}\n",
            b"{\"type\":\"close\",\"code\":1005}\n",
            b"{\"type\":\"ping\",\"data\":\"eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\"}\n",
        ] {
            assert!(
                decode_all(&o, bad, 100)
                    .unwrap_err()
                    .starts_with("bad local input: jsonl"),
                "{bad:?}"
            );
        }
        let mut e = LocalEncoder::new(o.clone());
        let mut b = BytesMut::new();
        e.encode(
            LocalEvent::Message(Message::Ping(Bytes::from_static(b"p"))),
            &mut b,
        )
        .unwrap();
        e.encode(LocalEvent::Closed(None, Some("dropped".into())), &mut b)
            .unwrap();
        assert_eq!(
            &b[..],
            b"{\"type\":\"close\",\"code\":1006,\"reason\":\"dropped\"}\n"
        );
        o.jsonl_events = true;
        let mut e = LocalEncoder::new(o);
        let mut b = BytesMut::new();
        e.encode(LocalEvent::Open, &mut b).unwrap();
        e.encode(
            LocalEvent::Message(Message::Ping(Bytes::from_static(b"p"))),
            &mut b,
        )
        .unwrap();
        assert_eq!(
            &b[..],
            b"{\"type\":\"open\"}\n{\"type\":\"ping\",\"data\":\"cA==\"}\n"
        );
    }

    #[test]
    fn jsonrpc_lines() {
        let mut o = opts(Framing::Lines);
        o.jsonrpc = true;
        let got = decode_all(
            &o,
            b"Page.navigate {\"url\":\"http://x\"}\n\nadd 1 2 three\nping\n",
            4,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                text(
                    r#"{"jsonrpc":"2.0","id":1,"method":"Page.navigate","params":{"url":"http://x"}}"#
                ),
                text(r#"{"jsonrpc":"2.0","id":2,"method":"add","params":[1,2,"three"]}"#),
                text(r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":[]}"#),
            ]
        );
    }

    #[test]
    fn ready_line() {
        let mut o = opts(Framing::Webfs);
        o.ready_line = true;
        let mut e = LocalEncoder::new(o);
        let mut b = BytesMut::new();
        e.encode(LocalEvent::Open, &mut b).unwrap();
        assert_eq!(&b[..], b"websocket ready\n");
    }
}
