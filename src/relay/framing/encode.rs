//! Messages → local bytes: `LocalEncoder`, the framing's encoding of each incoming message (and,
//! for jsonl, of open/close/ping/pong events).

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::Encoder;

use super::*;

/// Writes incoming messages and events to the local side.
#[derive(Debug, Clone)]
pub struct LocalEncoder {
    opts: FramingOptions,
}

impl LocalEncoder {
    pub fn new(opts: FramingOptions) -> Self {
        LocalEncoder { opts }
    }

    fn json(dst: &mut BytesMut, v: serde_json::Value) {
        let mut w = dst.writer();
        let _ = serde_json::to_writer(&mut w, &v);
        w.into_inner().put_u8(b'\n');
    }

    fn message(&self, msg: &Message, dst: &mut BytesMut) {
        let o = &self.opts;
        let (payload, text): (&[u8], bool) = match msg {
            Message::Text(t) => (t.as_bytes(), true),
            Message::Binary(b) => (b, false),
            Message::Ping(p) | Message::Pong(p) => {
                if o.framing == Framing::Jsonl && o.jsonl_events {
                    let kind = if matches!(msg, Message::Ping(_)) {
                        "ping"
                    } else {
                        "pong"
                    };
                    Self::json(
                        dst,
                        serde_json::json!({"type": kind, "data": B64.encode(p)}),
                    );
                }
                return;
            }
            _ => return,
        };
        match o.framing {
            Framing::Raw => dst.extend_from_slice(payload),
            Framing::Webfs => {
                dst.reserve(22 + payload.len());
                dst.put_u8(if text { b't' } else { b'b' });
                dst.extend_from_slice(format!(" {:020}", payload.len()).as_bytes());
                dst.extend_from_slice(payload);
            }
            Framing::LengthPrefixed => {
                let len = payload.len().min(0x7FFF_FFFF) as u32;
                dst.reserve(4 + payload.len());
                dst.put_u32(if text { len | 0x8000_0000 } else { len });
                dst.extend_from_slice(payload);
            }
            Framing::Jsonl => {
                let v = if text {
                    serde_json::json!({"type": "text", "data": String::from_utf8_lossy(payload)})
                } else {
                    serde_json::json!({"type": "binary", "data": B64.encode(payload)})
                };
                Self::json(dst, v);
            }
            Framing::Lines | Framing::Nul => {
                let sep = o.separator().expect("delimited framing");
                let prefix = if text {
                    o.text_prefix.as_deref()
                } else {
                    o.binary_prefix.as_deref()
                };
                dst.extend_from_slice(prefix.unwrap_or("").as_bytes());
                if !text && o.base64 {
                    dst.extend_from_slice(B64.encode(payload).as_bytes());
                } else {
                    match o.newline_policy {
                        NewlinePolicy::Keep => dst.extend_from_slice(payload),
                        NewlinePolicy::Space => {
                            let mut at = dst.len();
                            dst.extend_from_slice(payload);
                            while let Some(i) = memchr::memchr(sep, &dst[at..]) {
                                dst[at + i] = b' ';
                                at += i + 1;
                            }
                        }
                        NewlinePolicy::Escape => escape(payload, dst),
                    }
                }
                dst.put_u8(sep);
            }
        }
    }
}

impl LocalEncoder {
    /// With raw framing a message's payload is written as it is: here it is, uncopied.
    pub fn raw_payload(&self, event: &LocalEvent) -> Option<Bytes> {
        if self.opts.framing != Framing::Raw {
            return None;
        }
        match event {
            LocalEvent::Message(Message::Binary(b)) => Some(b.clone()),
            LocalEvent::Message(Message::Text(t)) => Some(Bytes::from(t.clone())),
            _ => None,
        }
    }
}

impl Encoder<LocalEvent> for LocalEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, event: LocalEvent, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        match event {
            LocalEvent::Open => {
                if self.opts.ready_line {
                    dst.extend_from_slice(b"websocket ready\n");
                }
                if self.opts.framing == Framing::Jsonl && self.opts.jsonl_events {
                    Self::json(dst, serde_json::json!({"type": "open"}));
                }
            }
            LocalEvent::Message(m) => self.message(&m, dst),
            LocalEvent::Closed(frame, why) => {
                if self.opts.framing == Framing::Jsonl {
                    let (code, reason) = match &frame {
                        Some(f) => (u16::from(f.code), f.reason.to_string()),
                        None => (
                            if why.is_some() { 1006 } else { 1005 },
                            why.unwrap_or_default(),
                        ),
                    };
                    Self::json(
                        dst,
                        serde_json::json!({"type": "close", "code": code, "reason": reason}),
                    );
                }
            }
        }
        Ok(())
    }
}
