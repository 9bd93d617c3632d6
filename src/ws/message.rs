//! Data messages from their frames (RFC 6455 §5.4, RFC 7692 §6): fragments joined, text checked
//! as UTF-8 as it arrives, compressed messages (RSV1 on the first frame) inflated frame by frame
//! under the message size limit, so a decompression bomb stops at the limit.

use bytes::{Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

use super::deflate::{InflateError, Inflater};
use super::frame::{too_long, utf8_error};

/// A message partly received.
struct Partial {
    text: bool,
    body: Body,
    /// Bytes of `body` known to be valid UTF-8 (text).
    checked: usize,
}

enum Body {
    /// As received: the first fragment's buffer, the others appended.
    Plain(BytesMut),
    /// Inflated so far.
    Inflated(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Plain(b) => b,
            Body::Inflated(v) => v,
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Body::Plain(b) => b.capacity(),
            Body::Inflated(v) => v.capacity(),
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            Body::Plain(b) => b.freeze(),
            Body::Inflated(v) => Bytes::from(v),
        }
    }
}

/// The receiving side's message state: the message arriving, and the decompressor when
/// permessage-deflate was agreed on.
#[derive(Default)]
pub(crate) struct Reassembly {
    partial: Option<Partial>,
    inflater: Option<Inflater>,
}

/// The error a compressed message that cannot be read becomes (closed with 1007).
#[derive(Debug, thiserror::Error)]
#[error("invalid compressed data (permessage-deflate): {0}")]
pub(crate) struct BadCompressedData(pub(crate) String);

impl Reassembly {
    pub(crate) fn new(inflater: Option<Inflater>) -> Self {
        Reassembly {
            partial: None,
            inflater,
        }
    }

    /// A message has begun to arrive.
    pub(crate) fn is_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// Bytes held for the message arriving.
    pub(crate) fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.body.capacity())
    }

    /// A data frame (`kind`: `None` for a continuation), unmasked; `rsv1`: its RSV1 bit. The
    /// whole message when this frame ends it.
    pub(crate) fn frame(
        &mut self,
        kind: Option<Data>,
        rsv1: bool,
        fin: bool,
        payload: BytesMut,
        max: usize,
    ) -> Result<Option<Message>, WsError> {
        let reserved = || WsError::Protocol(ProtocolError::NonZeroReservedBits);
        let Some(d) = kind else {
            if rsv1 {
                // Only a message's first frame says it is compressed (RFC 7692 §6.1).
                return Err(reserved());
            }
            return self.continuation(payload, fin, max);
        };
        if self.partial.is_some() {
            return Err(WsError::Protocol(ProtocolError::ExpectedFragment(d)));
        }
        let text = d == Data::Text;
        if rsv1 {
            if self.inflater.is_none() {
                return Err(reserved());
            }
            let mut out = Vec::new();
            self.inflate(&payload, fin, &mut out, max)?;
            return self.first(text, Body::Inflated(out), fin);
        }
        if payload.len() > max {
            return Err(too_long(payload.len(), max));
        }
        if fin {
            return message(text, payload.freeze()).map(Some);
        }
        self.first(text, Body::Plain(payload), fin)
    }

    fn first(&mut self, text: bool, body: Body, fin: bool) -> Result<Option<Message>, WsError> {
        let mut p = Partial {
            text,
            body,
            checked: 0,
        };
        p.check(fin)?;
        if fin {
            return message(text, p.body.freeze()).map(Some);
        }
        self.partial = Some(p);
        Ok(None)
    }

    fn continuation(
        &mut self,
        payload: BytesMut,
        fin: bool,
        max: usize,
    ) -> Result<Option<Message>, WsError> {
        let Some(mut p) = self.partial.take() else {
            return Err(WsError::Protocol(ProtocolError::UnexpectedContinueFrame));
        };
        match &mut p.body {
            Body::Plain(buf) => {
                let size = buf.len() + payload.len();
                if size > max {
                    return Err(too_long(size, max));
                }
                buf.extend_from_slice(&payload);
            }
            Body::Inflated(out) => self.inflate(&payload, fin, out, max)?,
        }
        p.check(fin)?;
        if fin {
            return message(p.text, p.body.freeze()).map(Some);
        }
        self.partial = Some(p);
        Ok(None)
    }

    fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), WsError> {
        let inflater = self
            .inflater
            .as_mut()
            .expect("compressed frames need an inflater");
        inflater.inflate(input, fin, out, max).map_err(|e| match e {
            InflateError::TooBig { size } => too_long(size, max),
            InflateError::Corrupt(why) => WsError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                BadCompressedData(why),
            )),
        })
    }
}

impl Partial {
    /// Fail early on bad UTF-8; a character cut at the end may go on in the next frame.
    fn check(&mut self, fin: bool) -> Result<(), WsError> {
        if !self.text {
            return Ok(());
        }
        let bytes = self.body.bytes();
        match std::str::from_utf8(&bytes[self.checked..]) {
            Ok(_) => self.checked = bytes.len(),
            Err(e) if e.error_len().is_none() && !fin => self.checked += e.valid_up_to(),
            Err(_) => return Err(utf8_error()),
        }
        Ok(())
    }
}

fn message(text: bool, payload: Bytes) -> Result<Message, WsError> {
    if text {
        Utf8Bytes::try_from(payload)
            .map(Message::Text)
            .map_err(|_| utf8_error())
    } else {
        Ok(Message::Binary(payload))
    }
}
