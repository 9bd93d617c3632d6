//! Frames on the wire (RFC 6455 §5.2): reading a header from the front of a buffer (the size
//! limits are checked there, before any payload is buffered), writing a header or a whole frame
//! (masked for the client role), and the payload of a Close frame both ways.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::mask::put_masked;

/// Size limits for received frames and messages.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_message: usize,
    pub max_frame: usize,
    /// A message (or frame) that has begun to arrive and makes no progress for this long is an
    /// error (`--message-timeout`).
    pub stall: Option<std::time::Duration>,
}

/// The RSV1 bit in a frame's first byte: set on the first frame of a compressed message
/// (RFC 7692 §6). An opcode passed to `put_head` may carry it.
pub(crate) const RSV1: u8 = 0x40;

/// A frame header as read.
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// The RSV1–3 bits as they are in the first byte (0x70).
    pub(crate) rsv: u8,
    pub(crate) opcode: u8,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) len: usize,
    pub(crate) header_len: usize,
}

impl Header {
    /// The header at the front of `b`, if complete; a frame over `max_frame` is an error.
    pub(crate) fn parse(b: &[u8], max_frame: usize) -> Result<Option<Header>, WsError> {
        if b.len() < 2 {
            return Ok(None);
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut header_len) = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                (
                    u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
                    10,
                )
            }
            n => (u64::from(n), 2),
        };
        if len > max_frame as u64 {
            return Err(too_long(
                usize::try_from(len).unwrap_or(usize::MAX),
                max_frame,
            ));
        }
        let mask = if masked {
            if b.len() < header_len + 4 {
                return Ok(None);
            }
            let m = [
                b[header_len],
                b[header_len + 1],
                b[header_len + 2],
                b[header_len + 3],
            ];
            header_len += 4;
            Some(m)
        } else {
            None
        };
        Ok(Some(Header {
            fin: b[0] & 0x80 != 0,
            rsv: b[0] & 0x70,
            opcode: b[0] & 0x0F,
            mask,
            len: len as usize,
            header_len,
        }))
    }
}

/// Append a frame header (without a masking key).
pub(crate) fn put_head(out: &mut BytesMut, fin: bool, opcode: u8, len: usize, masked: bool) {
    out.put_u8(if fin { 0x80 } else { 0 } | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.put_u8(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.put_u8(mask_bit | 126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(len as u64);
    }
}

/// Append a whole frame; `masked` (the client role): under a fresh key, masked while copying.
pub(crate) fn put_frame(out: &mut BytesMut, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
    let len = payload.len();
    out.reserve(14 + len);
    put_head(out, fin, opcode, len, masked);
    if masked {
        // RFC 6455 §5.3: a fresh, unpredictable key for every frame.
        let mask: [u8; 4] = rand::random();
        out.put_slice(&mask);
        put_masked(out, payload, mask);
    } else {
        out.put_slice(payload);
    }
}

/// The payload of a Close frame: the code, then the reason.
pub(crate) fn close_payload(f: &CloseFrame) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + f.reason.len());
    p.extend_from_slice(&u16::from(f.code).to_be_bytes());
    p.extend_from_slice(f.reason.as_bytes());
    p
}

/// A received Close frame's payload: none, or a code and a UTF-8 reason.
pub(crate) fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, WsError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(WsError::Protocol(ProtocolError::InvalidCloseSequence)),
        _ => {
            let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
            let reason = Utf8Bytes::try_from(payload.slice(2..)).map_err(|_| utf8_error())?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

pub(crate) fn too_long(size: usize, max_size: usize) -> WsError {
    WsError::Capacity(CapacityError::MessageTooLong { size, max_size })
}

pub(crate) fn utf8_error() -> WsError {
    WsError::Utf8("invalid UTF-8 in a text message".into())
}
