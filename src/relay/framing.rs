//! Framing codecs between byte streams and messages (tokio-util `Decoder`/`Encoder`).
//!
//! Text mode (`lines`): a local line (without `\n`, and without a trailing `\r`) becomes one
//! message; a line that is not valid UTF-8 is sent as a *binary* message (never as a text frame),
//! and the relay warns. A final line without `\n` at EOF is still sent. An incoming message becomes
//! one line: its newlines are turned into spaces (as websocat does) so one message is one line.
//! Binary mode (`raw`): each read becomes one binary message; incoming messages are written as is.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::config::Mode;

/// Bad local input that ends the session.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("a local line is longer than --max-message-size ({limit} bytes)")]
    LineTooLong { limit: usize },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Splits local bytes into message payloads.
#[derive(Debug)]
pub struct LocalDecoder {
    mode: Mode,
    max: usize,
    /// How far the buffer has already been searched for `\n`.
    scanned: usize,
}

impl LocalDecoder {
    pub fn new(mode: Mode, max: usize) -> Self {
        LocalDecoder {
            mode,
            max,
            scanned: 0,
        }
    }
}

impl Decoder for LocalDecoder {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self.mode {
            Mode::Binary => {
                if buf.is_empty() {
                    Ok(None)
                } else {
                    let n = buf.len().min(self.max);
                    Ok(Some(buf.split_to(n).freeze()))
                }
            }
            Mode::Text => match buf[self.scanned..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    let mut line = buf.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    if line.len() > self.max {
                        return Err(FramingError::LineTooLong { limit: self.max });
                    }
                    Ok(Some(line.freeze()))
                }
                None => {
                    self.scanned = buf.len();
                    if buf.len() > self.max.saturating_add(1) {
                        return Err(FramingError::LineTooLong { limit: self.max });
                    }
                    Ok(None)
                }
            },
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        // A final line without a newline is still a line.
        self.scanned = 0;
        let mut line = buf.split();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.len() > self.max {
            return Err(FramingError::LineTooLong { limit: self.max });
        }
        Ok(Some(line.freeze()))
    }
}

/// Turns a local payload into a message: text when the mode is text and the bytes are UTF-8.
/// Returns the message and whether a text-mode line had to be sent as binary.
pub fn to_message(mode: Mode, payload: Bytes) -> (Message, bool) {
    match mode {
        Mode::Binary => (Message::Binary(payload), false),
        Mode::Text => {
            if std::str::from_utf8(&payload).is_ok() {
                // SAFETY: validated as UTF-8 just above.
                let text = unsafe {
                    tokio_tungstenite::tungstenite::Utf8Bytes::from_bytes_unchecked(payload)
                };
                (Message::Text(text), false)
            } else {
                (Message::Binary(payload), true)
            }
        }
    }
}

/// Writes incoming messages to the local side.
#[derive(Debug, Clone, Copy)]
pub struct LocalEncoder {
    mode: Mode,
}

impl LocalEncoder {
    pub fn new(mode: Mode) -> Self {
        LocalEncoder { mode }
    }
}

impl Encoder<Message> for LocalEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        let payload: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => return Ok(()),
        };
        match self.mode {
            Mode::Binary => dst.extend_from_slice(payload),
            Mode::Text => {
                dst.reserve(payload.len() + 1);
                let start = dst.len();
                dst.extend_from_slice(payload);
                for b in &mut dst[start..] {
                    if *b == b'\n' {
                        *b = b' ';
                    }
                }
                dst.put_u8(b'\n');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        mode: Mode,
        max: usize,
        input: &[u8],
        chunk: usize,
    ) -> Result<Vec<Bytes>, String> {
        let mut d = LocalDecoder::new(mode, max);
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

    #[test]
    fn lines_at_any_chunking() {
        let input = b"a\nbb\r\n\nlast";
        for chunk in 1..=input.len() {
            let got = decode_all(Mode::Text, 100, input, chunk).unwrap();
            assert_eq!(got, [&b"a"[..], b"bb", b"", b"last"], "chunk {chunk}");
        }
    }

    #[test]
    fn line_limit() {
        assert_eq!(
            decode_all(Mode::Text, 3, b"abc\nabcd\n", 100).unwrap_err(),
            "a local line is longer than --max-message-size (3 bytes)"
        );
        assert!(decode_all(Mode::Text, 3, b"abc\r\n", 1).is_ok());
        assert!(decode_all(Mode::Text, 3, b"abcdefgh", 2).is_err());
    }

    #[test]
    fn invalid_utf8_becomes_binary() {
        let (m, bad) = to_message(Mode::Text, Bytes::from_static(b"ok"));
        assert!(!bad);
        assert_eq!(m, Message::Text("ok".into()));
        let (m, bad) = to_message(Mode::Text, Bytes::from_static(b"\xff\xfe"));
        assert!(bad);
        assert!(m.is_binary());
    }

    #[test]
    fn encoder_one_message_one_line() {
        let mut e = LocalEncoder::new(Mode::Text);
        let mut b = BytesMut::new();
        e.encode(Message::Text("a\nb".into()), &mut b).unwrap();
        e.encode(Message::Text("".into()), &mut b).unwrap();
        e.encode(Message::Ping(Bytes::new()), &mut b).unwrap();
        assert_eq!(&b[..], b"a b\n\n");
        let mut e = LocalEncoder::new(Mode::Binary);
        let mut b = BytesMut::new();
        e.encode(Message::Binary(Bytes::from_static(b"\x00\n")), &mut b)
            .unwrap();
        assert_eq!(&b[..], b"\x00\n");
    }
}
