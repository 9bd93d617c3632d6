//! A raw RFC 6455 peer: does the server handshake by hand and then reads and writes frames byte
//! by byte, so tests can send what a library never would (bad UTF-8, reserved opcodes, bad codes).
//! Its frame writing and reading ([`frame_bytes`], [`read_frame`]) also serve raw peers of
//! either role that need the whole first byte (RSV1 in deflate.rs); [`upgrade`] is the client
//! side's handshake by hand, for clients that then misbehave.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::LIMIT;

/// A raw client: connect to `url` (`ws://HOST:PORT/…`), send the upgrade request by hand and
/// read the `101` answer (bounded); the connection, ready for frames.
pub async fn upgrade(url: &str) -> TcpStream {
    let host = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut tcp = TcpStream::connect(&host).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(LIMIT, tcp.read(&mut b)).await.unwrap();
        assert_eq!(n.unwrap(), 1, "response head cut: {head:?}");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Code and reason of a Close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub struct RawConn {
    pub tcp: TcpStream,
}

/// Listen on 127.0.0.1:0; each accepted connection is handshaken and handed over.
pub async fn listen() -> (u16, mpsc::UnboundedReceiver<RawConn>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(conn) = handshake(tcp).await {
                    let _ = tx.send(conn);
                }
            });
        }
    });
    (port, rx)
}

async fn handshake(mut tcp: TcpStream) -> Option<RawConn> {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        req.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&req);
    let key = text.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, v)| v.trim().to_string())
    })?;
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    tcp.write_all(resp.as_bytes()).await.ok()?;
    Some(RawConn { tcp })
}

impl RawConn {
    /// Write one unmasked (server) frame.
    pub async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let f = frame_bytes((if fin { 0x80 } else { 0 }) | opcode, payload, None);
        self.tcp.write_all(&f).await.unwrap();
    }

    pub async fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send(true, CLOSE, &p).await;
    }

    /// Read one (masked, client) frame; None at EOF. Bounded by LIMIT.
    pub async fn read(&mut self) -> Option<Frame> {
        tokio::time::timeout(LIMIT, self.read_inner())
            .await
            .expect("frame in time")
    }

    async fn read_inner(&mut self) -> Option<Frame> {
        let (b0, payload) = read_frame(&mut self.tcp, true).await?;
        Some(Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        })
    }

    /// Read frames until a Close arrives (skipping data), returning it.
    pub async fn read_until_close(&mut self) -> Option<Frame> {
        loop {
            let f = self.read().await?;
            if f.opcode == CLOSE {
                return Some(f);
            }
        }
    }
}

/// One frame on the wire: first byte `b0` (FIN, RSV1-3, opcode), the payload length, and with
/// `mask` (a client's frame) the masking key and the masked payload.
pub fn frame_bytes(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![b0];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n if n < 65536 => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(mask_bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            f.extend_from_slice(&mask);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// Read one frame: its first byte (FIN, RSV1-3, opcode, as sent) and its payload, unmasked;
/// None at EOF. `masked`: whether the frame must be masked, as a client's frames are and a
/// server's are not (RFC 6455 §5.1). Unbounded: callers bound it.
pub async fn read_frame(tcp: &mut TcpStream, masked: bool) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).await.ok()?;
    if masked {
        assert!(h[1] & 0x80 != 0, "client frames must be masked");
    } else {
        assert!(h[1] & 0x80 == 0, "server frames must not be masked");
    }
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).await.ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut mask = [0u8; 4];
    if masked {
        tcp.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((h[0], payload))
}
