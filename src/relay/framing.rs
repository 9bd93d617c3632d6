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

use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::codec::{Decoder, Encoder};

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

/// Cuts local bytes into outgoing messages.
#[derive(Debug)]
pub struct LocalDecoder {
    opts: FramingOptions,
    /// How far the buffer has already been searched for a separator.
    scanned: usize,
    /// The rest of a long line being cut into pieces (`--split-long`) and its type.
    pending: Option<(Bytes, bool)>,
    /// Next JSON-RPC id.
    rpc_id: u64,
    /// The type of a long line whose first pieces were already sent (`--split-long`).
    continuing: Option<bool>,
    /// `--split-long`: how much of the unfinished line at the front of the buffer has been
    /// counted (bytes after its prefix, and the message bytes they make), so that a line
    /// arriving in many reads is not counted again from its start every time.
    counted: (usize, usize),
    /// Text-mode frames sent as binary because they were not UTF-8.
    pub binary_fallbacks: u64,
}

impl LocalDecoder {
    pub fn new(opts: FramingOptions) -> Self {
        LocalDecoder {
            opts,
            scanned: 0,
            pending: None,
            rpc_id: 1,
            continuing: None,
            counted: (0, 0),
            binary_fallbacks: 0,
        }
    }

    /// Text if it is UTF-8, else binary (counted).
    fn text_or_binary(&mut self, payload: Bytes) -> Message {
        if std::str::from_utf8(&payload).is_ok() {
            // SAFETY: validated as UTF-8 just above.
            Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(payload) })
        } else {
            self.binary_fallbacks += 1;
            Message::Binary(payload)
        }
    }

    fn typed(&mut self, payload: Bytes, text: bool) -> Message {
        if text {
            self.text_or_binary(payload)
        } else {
            Message::Binary(payload)
        }
    }

    /// How a delimited frame is read: the length of its prefix, whether it is text, whether
    /// its payload is base64. Pieces after the first of a long line have no prefix and keep
    /// the line's type.
    fn line_header(&self, frame: &[u8]) -> (usize, bool, bool) {
        let o = &self.opts;
        if let Some(text) = self.continuing {
            return (0, text, false);
        }
        if let Some(p) = o.binary_prefix.as_deref()
            && frame.starts_with(p.as_bytes())
        {
            return (p.len(), false, o.base64);
        }
        if let Some(p) = o.text_prefix.as_deref()
            && frame.starts_with(p.as_bytes())
        {
            return (p.len(), true, false);
        }
        (0, o.mode == Mode::Text, false)
    }

    /// `--split-long`, no separator in `buf` yet: how many bytes of it to send now as the next
    /// piece of a long line, if any.
    ///
    /// The limit is on the message, not on its encoding: a piece is cut only once the line
    /// (after its prefix, escapes undone) is known to be longer than the limit, and it is then
    /// the first `max` message bytes (text: not inside a character). A piece never ends inside
    /// the prefix or an escape, and a last `\r` (lines) or `\` (escapes) is not counted until
    /// the byte after it arrives. So a message within the limit always waits for its separator
    /// and comes out whole, and the rest of a cut line is never empty. `None`: wait; the buffer
    /// then holds at most the prefix and `2 * max + 1` bytes.
    fn early_piece(&mut self, buf: &[u8]) -> Option<usize> {
        let o = &self.opts;
        let max = o.max_message_size.max(1);
        if self.continuing.is_none() {
            // Which prefix the line has is not known yet.
            let undecided = [&o.binary_prefix, &o.text_prefix]
                .into_iter()
                .flatten()
                .any(|p| buf.len() < p.len() && p.as_bytes().starts_with(buf));
            if undecided {
                return None;
            }
        }
        let (skip, text, base64) = self.line_header(buf);
        let body = &buf[skip..];
        // The decoder undoes escapes, but not inside base64 (the CLI refuses --base64 with
        // --split-long; such lines are counted as they are).
        let escaped = o.newline_policy == NewlinePolicy::Escape && !base64;
        let lines = o.framing == Framing::Lines;
        // The raw end of the message byte starting at `i`, if that byte is certain.
        let step = |i: usize| -> Option<usize> {
            let b = *body.get(i)?;
            if i + 1 == body.len() && ((lines && b == b'\r') || (escaped && b == b'\\')) {
                return None;
            }
            let pair = escaped && b == b'\\' && matches!(body[i + 1], b'\\' | b'n' | b'r' | b'0');
            Some(if pair { i + 2 } else { i + 1 })
        };
        let (mut raw, mut count) = self.counted;
        while count <= max {
            let Some(next) = step(raw) else { break };
            raw = next;
            count += 1;
        }
        self.counted = (raw, count);
        if count <= max {
            return None;
        }
        // Longer than the limit: where message bytes max-3..=max start (a UTF-8 character
        // has at most 4 bytes).
        let lo = max.saturating_sub(3);
        let mut at = 0;
        for _ in 0..lo {
            at = step(at).expect("counted");
        }
        let mut starts = [at; 4];
        for s in starts.iter_mut().take(max - lo + 1).skip(1) {
            at = step(at).expect("counted");
            *s = at;
        }
        let continuation = |k: usize| body[starts[k - lo]] & 0xC0 == 0x80;
        let mut n = max;
        if text {
            while n > lo && continuation(n) {
                n -= 1;
            }
            if n == 0 || continuation(n) {
                // Not UTF-8 here: cut at the limit (the piece goes as binary).
                n = max;
            }
        }
        self.counted = (0, 0);
        Some(skip + starts[n - lo])
    }

    fn too_long(&self) -> FramingError {
        FramingError::TooLong {
            limit: self.opts.max_message_size,
        }
    }

    /// One delimited frame (without its separator) → message, per the line options. `last` is
    /// false for a piece of a long line cut off early (`--split-long`): the line's type comes
    /// from its first piece (the prefix), and later pieces keep it.
    fn delimited(
        &mut self,
        mut frame: BytesMut,
        last: bool,
    ) -> Result<Option<Message>, FramingError> {
        let o = &self.opts;
        if last && o.framing == Framing::Lines && frame.last() == Some(&b'\r') {
            frame.truncate(frame.len() - 1);
        }
        if o.framing == Framing::Jsonl {
            return self.json_line(&frame);
        }
        let mut frame = frame.freeze();
        let (skip, text, from_base64) = self.line_header(&frame);
        frame.advance(skip);
        self.continuing = if last { None } else { Some(text) };
        let mut payload = if o.newline_policy == NewlinePolicy::Escape {
            unescape(&frame)
        } else {
            frame
        };
        if from_base64 {
            let trimmed = std::str::from_utf8(&payload).map(str::trim).unwrap_or("");
            payload = B64.decode(trimmed).map(Bytes::from).map_err(|e| {
                FramingError::BadInput(format!("binary-prefixed line is not base64: {e}"))
            })?;
        }
        if text && self.opts.jsonrpc {
            if payload.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            let call = jsonrpc_call(&payload, self.rpc_id)?;
            self.rpc_id += 1;
            payload = Bytes::from(call);
        }
        if payload.len() > self.opts.max_message_size {
            if !self.opts.split_long {
                return Err(self.too_long());
            }
            return Ok(self.split(payload, text));
        }
        Ok(Some(self.typed(payload, text)))
    }

    /// `--split-long`: the first piece of at most the limit (text: on a character boundary);
    /// the rest waits in `pending` and is cut piece by piece as messages are asked for.
    fn split(&mut self, payload: Bytes, text: bool) -> Option<Message> {
        let text = text && std::str::from_utf8(&payload).is_ok();
        self.pending = Some((payload, text));
        self.next_piece()
    }

    fn next_piece(&mut self) -> Option<Message> {
        let (mut payload, text) = self.pending.take()?;
        let max = self.opts.max_message_size;
        let mut n = payload.len().min(max);
        if text {
            while n > 0 && n < payload.len() && (payload[n] & 0xC0) == 0x80 {
                n -= 1;
            }
            if n == 0 {
                n = payload.len().min(max);
            }
        }
        let piece = payload.split_to(n);
        if !payload.is_empty() {
            self.pending = Some((payload, text));
        }
        Some(self.typed(piece, text))
    }

    /// A jsonl line → message. Blank lines are skipped.
    fn json_line(&mut self, line: &[u8]) -> Result<Option<Message>, FramingError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let bad = |why: String| FramingError::BadInput(format!("jsonl: {why}"));
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("missing \"type\"".into()))?;
        let data = v.get("data").and_then(|d| d.as_str());
        let b64 = |d: Option<&str>| -> Result<Bytes, FramingError> {
            B64.decode(d.unwrap_or(""))
                .map(Bytes::from)
                .map_err(|e| bad(format!("\"data\" is not base64: {e}")))
        };
        let msg = match kind {
            "text" => Message::Text(
                data.ok_or_else(|| bad("text needs a string \"data\"".into()))?
                    .into(),
            ),
            "binary" => Message::Binary(b64(data)?),
            "ping" => Message::Ping(b64(data)?),
            "pong" => Message::Pong(b64(data)?),
            "close" => {
                let code = v.get("code").and_then(|c| c.as_u64()).unwrap_or(1000);
                let code = u16::try_from(code)
                    .map(CloseCode::from)
                    .map_err(|_| bad(format!("bad close code {code}")))?;
                if !code.is_allowed() {
                    return Err(bad(format!(
                        "close code {} may not be sent",
                        u16::from(code)
                    )));
                }
                let reason = v.get("reason").and_then(|r| r.as_str()).unwrap_or("");
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.to_string().into(),
                }))
            }
            other => return Err(bad(format!("unknown type {other:?}"))),
        };
        // RFC 6455 §5.5: control frames carry at most 125 bytes (a close reason 123).
        let control = match &msg {
            Message::Ping(p) | Message::Pong(p) => Some(p.len()),
            Message::Close(Some(f)) => Some(f.reason.len() + 2),
            _ => None,
        };
        if control.is_some_and(|n| n > 125) {
            return Err(bad(format!(
                "{kind} payload over 125 bytes (RFC 6455 control frame limit)"
            )));
        }
        if msg.len() > self.opts.max_message_size {
            return Err(self.too_long());
        }
        Ok(Some(msg))
    }

    /// Largest buffered frame allowed before it is refused (encodings inflate the payload).
    fn max_buffered(&self) -> usize {
        let max = self.opts.max_message_size;
        // The limit is on the message, not on its encoded form: allow the largest expansion an
        // encoding can cause (JSON escapes a control character in 6 bytes, `\n` doubles a byte,
        // base64 takes 4 bytes for 3).
        let inflated = match self.opts.framing {
            Framing::Jsonl => max.saturating_mul(6).saturating_add(1024),
            _ => {
                let escaped = if self.opts.newline_policy == NewlinePolicy::Escape {
                    max.saturating_mul(2)
                } else {
                    max
                };
                let base64 = if self.opts.base64 {
                    max.saturating_mul(4) / 3 + 4
                } else {
                    max
                };
                escaped.max(base64)
            }
        };
        let prefix = self
            .opts
            .text_prefix
            .as_ref()
            .map_or(0, String::len)
            .max(self.opts.binary_prefix.as_ref().map_or(0, String::len));
        inflated.saturating_add(prefix).saturating_add(2)
    }
}

impl Decoder for LocalDecoder {
    type Item = Message;
    type Error = FramingError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FramingError> {
        if let Some(m) = self.next_piece() {
            return Ok(Some(m));
        }
        match self.opts.framing {
            Framing::Raw => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = buf.len().min(self.opts.max_message_size);
                Ok(Some(Message::Binary(buf.split_to(n).freeze())))
            }
            Framing::Lines | Framing::Nul | Framing::Jsonl => loop {
                let sep = self.opts.separator().expect("delimited framing");
                let Some(i) = memchr::memchr(sep, &buf[self.scanned..]) else {
                    self.scanned = buf.len();
                    if self.opts.split_long
                        && let Some(n) = self.early_piece(buf)
                    {
                        // --split-long: a line over the limit is sent as it arrives, so the
                        // buffer stays bounded.
                        let piece = buf.split_to(n);
                        self.scanned = buf.len();
                        match self.delimited(piece, false)? {
                            Some(m) => return Ok(Some(m)),
                            None => continue,
                        }
                    }
                    if buf.len() > self.max_buffered() && !self.opts.split_long {
                        return Err(self.too_long());
                    }
                    return Ok(None);
                };
                let end = self.scanned + i;
                self.scanned = 0;
                self.counted = (0, 0);
                let mut frame = buf.split_to(end + 1);
                frame.truncate(end);
                if frame.len() > self.max_buffered() && !self.opts.split_long {
                    return Err(self.too_long());
                }
                // Skipped frames (blank jsonl / JSON-RPC lines) do not end the search.
                if let Some(m) = self.delimited(frame, true)? {
                    return Ok(Some(m));
                }
            },
            Framing::Webfs => {
                if buf.len() < 22 {
                    return Ok(None);
                }
                let text = match buf[0] {
                    b't' => true,
                    b'b' => false,
                    _ => {
                        return Err(FramingError::BadInput(
                            "webfs: header must start with 't' or 'b'".into(),
                        ));
                    }
                };
                let digits = &buf[2..22];
                if buf[1] != b' ' || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(FramingError::BadInput(
                        "webfs: header must be 't'/'b', a space and 20 digits".into(),
                    ));
                }
                let len: u64 = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(u64::MAX);
                if len > self.opts.max_message_size as u64 {
                    return Err(self.too_long());
                }
                let len = len as usize;
                if buf.len() < 22 + len {
                    // Grow towards the payload, but never reserve a claimed size up front.
                    buf.reserve((22 + len - buf.len()).min(64 * 1024));
                    return Ok(None);
                }
                buf.advance(22);
                let payload = buf.split_to(len).freeze();
                Ok(Some(self.typed(payload, text)))
            }
            Framing::LengthPrefixed => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                let header = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                let text = header & 0x8000_0000 != 0;
                let len = (header & 0x7FFF_FFFF) as usize;
                if len > self.opts.max_message_size {
                    return Err(self.too_long());
                }
                if buf.len() < 4 + len {
                    buf.reserve((4 + len - buf.len()).min(64 * 1024));
                    return Ok(None);
                }
                buf.advance(4);
                let payload = buf.split_to(len).freeze();
                Ok(Some(self.typed(payload, text)))
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FramingError> {
        if let Some(m) = self.decode(buf)? {
            return Ok(Some(m));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        match self.opts.framing {
            // A final frame without its separator is still a frame.
            Framing::Lines | Framing::Nul | Framing::Jsonl => {
                self.scanned = 0;
                self.counted = (0, 0);
                let frame = buf.split();
                if frame.len() > self.max_buffered() && !self.opts.split_long {
                    return Err(self.too_long());
                }
                match self.delimited(frame, true)? {
                    Some(m) => Ok(Some(m)),
                    None => Ok(self.next_piece()),
                }
            }
            Framing::Webfs | Framing::LengthPrefixed => {
                let n = buf.len();
                buf.clear();
                Err(FramingError::BadInput(format!(
                    "input ended inside a message ({n} bytes left over)"
                )))
            }
            Framing::Raw => Ok(None),
        }
    }
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
