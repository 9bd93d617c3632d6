//! Local bytes → messages: `LocalDecoder`, one decoder for every framing (lines, nul, webfs,
//! length-prefixed, jsonl, raw), with the message limit, `--split-long` and the line options.

use crate::io::sizing;
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::codec::Decoder;

use super::*;

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
                Ok(Some(Message::Binary(sizing::take(buf, n).freeze())))
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
                let mut frame = sizing::take(buf, end + 1);
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
                let payload = sizing::take(buf, len).freeze();
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
                let payload = sizing::take(buf, len).freeze();
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
