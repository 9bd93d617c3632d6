//! What one hostile or careless client can do to a `ws-listen:` server: flood a broadcast room,
//! stop reading, or start messages and never finish them. Each test runs the real binary and
//! talks to it over loopback with raw frames or a WebSocket library.

use std::time::Duration;

use crate::harness::{Bridge, LIMIT};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Client = WebSocketStream<TcpStream>;

fn addr(url: &str) -> String {
    url.trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string()
}

async fn connect(url: &str) -> Client {
    let tcp = TcpStream::connect(addr(url)).await.unwrap();
    let (ws, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    ws
}

/// A client that writes frames by hand (masked with a zero key, which RFC 6455 allows).
struct Raw {
    tcp: TcpStream,
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        Raw {
            tcp: crate::harness::raw::upgrade(url).await,
        }
    }

    /// One masked frame; `len` may promise more payload than `payload` holds.
    fn frame(fin: bool, opcode: u8, len: usize, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match len {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let f = Raw::frame(fin, opcode, payload.len(), payload);
        self.tcp.write_all(&f).await.unwrap();
    }

    /// Read frames until a Close; its code. Panics at EOF or after LIMIT.
    async fn close_code(&mut self) -> u16 {
        tokio::time::timeout(LIMIT, async {
            loop {
                let mut h = [0u8; 2];
                self.tcp.read_exact(&mut h).await.expect("a frame, not EOF");
                let len = match h[1] & 0x7F {
                    126 => u64::from(self.tcp.read_u16().await.unwrap()),
                    127 => self.tcp.read_u64().await.unwrap(),
                    n => u64::from(n),
                };
                let mut p = vec![0u8; len as usize];
                self.tcp.read_exact(&mut p).await.unwrap();
                if h[0] & 0x0F == 8 {
                    return u16::from_be_bytes([p[0], p[1]]);
                }
            }
        })
        .await
        .expect("a Close in time")
    }

    /// Send a ping and wait for its pong: everything sent before has been read by the server.
    async fn sync(&mut self) {
        self.send(true, 9, b"sync").await;
        tokio::time::timeout(LIMIT, async {
            loop {
                let mut h = [0u8; 2];
                self.tcp.read_exact(&mut h).await.expect("a pong, not EOF");
                let mut p = vec![0u8; usize::from(h[1] & 0x7F)];
                self.tcp.read_exact(&mut p).await.unwrap();
                if h[0] & 0x0F == 0xA {
                    return;
                }
            }
        })
        .await
        .expect("a pong in time");
    }
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// broadcast: rooms

#[tokio::test]
async fn a_burst_from_one_member_reaches_every_other_member() {
    const MEMBERS: usize = 10;
    const BURST: usize = 2000;
    let mut b = Bridge::spawn(&["-v", "ws-listen:127.0.0.1:0", "broadcast:"]);
    let url = b.listening().await;
    let mut members = Vec::new();
    for i in 1..=MEMBERS {
        members.push(connect(&url).await);
        b.stderr_contains(&format!("({i} members)")).await;
    }
    // 2000 one-byte messages in one write (about 14 KB), far more than a member's queue.
    let mut sender = Raw::connect(&url).await;
    b.stderr_contains(&format!("({} members)", MEMBERS + 1))
        .await;
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|i| Raw::frame(true, 1, 1, &[b'a' + (i % 26) as u8]))
        .collect();
    sender.tcp.write_all(&burst).await.unwrap();
    let readers = members.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            for i in 0..BURST {
                let m = tokio::time::timeout(LIMIT, ws.next())
                    .await
                    .expect("in time");
                let want = ((b'a' + (i % 26) as u8) as char).to_string();
                assert_eq!(m.unwrap().unwrap(), Message::text(want), "message {i}");
            }
        })
    });
    for r in readers.collect::<Vec<_>>() {
        r.await.unwrap();
    }
    assert!(
        !b.stderr_lines.iter().any(|l| l.contains("disconnecting")),
        "{:?}",
        b.stderr_lines
    );
}

#[tokio::test]
async fn a_member_that_stops_reading_holds_at_most_its_queue() {
    const SIZE: usize = 256 << 10;
    const COUNT: usize = 400; // 100 MiB through the room
    let mut b = Bridge::spawn(&["-v", "ws-listen:127.0.0.1:0", "broadcast:"]);
    let url = b.listening().await;
    let pid = b.child.id().unwrap();
    // Never reads, with a small receive buffer.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr(&url).parse().unwrap()).await.unwrap();
    let (mut idle, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    b.stderr_contains("(1 members)").await;
    let mut sender = connect(&url).await;
    b.stderr_contains("(2 members)").await;
    let payload = bytes::Bytes::from(vec![7u8; SIZE]);
    tokio::time::timeout(LIMIT, async {
        for _ in 0..COUNT {
            sender.send(Message::Binary(payload.clone())).await.unwrap();
        }
    })
    .await
    .expect("the room went on after dropping the member that stopped reading");
    b.stderr_contains("stopped reading").await;
    let peak = peak_rss_kib(pid);
    // The old queue (256 messages, no byte limit) would have held 64 MiB for this member.
    eprintln!("peak RSS {peak} KiB");
    assert!(peak < 48 << 10, "peak RSS {peak} KiB");
    // What the idle member finds when it reads at last ends with Close 1013.
    let close = tokio::time::timeout(LIMIT, async {
        loop {
            match idle.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => {}
                other => panic!("no Close 1013 but {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(u16::from(close.unwrap().code), 1013);
}

// ---------------------------------------------------------------------------------------------
// Messages that never finish

#[tokio::test]
async fn a_client_may_send_at_most_1_mib_by_default() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "mirror:"]);
    let url = b.listening().await;
    // A 63 MiB message announced in pieces: refused once the pieces pass 1 MiB.
    let mut raw = Raw::connect(&url).await;
    raw.send(false, 2, &vec![1u8; 700 << 10]).await;
    raw.send(false, 0, &vec![1u8; 700 << 10]).await;
    assert_eq!(raw.close_code().await, 1009);
    // One frame that says it is 63 MiB long: refused from its header.
    let mut raw = Raw::connect(&url).await;
    let head = Raw::frame(true, 2, 63 << 20, &[0u8; 16]);
    raw.tcp.write_all(&head).await.unwrap();
    assert_eq!(raw.close_code().await, 1009);
    // With --max-message-size the operator decides.
    let mut b2 = Bridge::spawn(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--max-message-size",
        "4MiB",
    ]);
    let url2 = b2.listening().await;
    let mut ws = connect(&url2).await;
    let big = Message::Binary(vec![3u8; 3 << 20].into());
    ws.send(big.clone()).await.unwrap();
    let echo = tokio::time::timeout(LIMIT, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), big);
}

#[tokio::test]
async fn a_message_that_stops_arriving_is_closed_with_1008() {
    let mut b = Bridge::spawn(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--message-timeout",
        "500ms",
    ]);
    let url = b.listening().await;
    // Half a frame, then nothing.
    let mut raw = Raw::connect(&url).await;
    let half = Raw::frame(true, 1, 1000, &[b'x'; 500]);
    raw.tcp.write_all(&half).await.unwrap();
    assert_eq!(raw.close_code().await, 1008);
    // The first fragment of a message, then nothing.
    let mut raw = Raw::connect(&url).await;
    raw.send(false, 1, b"first part").await;
    assert_eq!(raw.close_code().await, 1008);
    // An idle connection with nothing half-way is not affected.
    let mut raw = Raw::connect(&url).await;
    raw.sync().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    raw.send(true, 1, b"still here").await;
    raw.sync().await;
}

#[tokio::test]
async fn unfinished_messages_together_stay_within_max_buffered() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "mirror:", "--max-buffered", "1MiB"]);
    let url = b.listening().await;
    // The first client holds 700 KiB of an unfinished message (read: the pong says so).
    let mut first = Raw::connect(&url).await;
    first.send(false, 2, &vec![1u8; 700 << 10]).await;
    first.sync().await;
    // A second one that would pass the process-wide budget is refused with 1013.
    let mut second = Raw::connect(&url).await;
    second.send(false, 2, &vec![2u8; 700 << 10]).await;
    assert_eq!(second.close_code().await, 1013);
    // The first one can still finish its message, and gets it back whole.
    first.send(true, 0, b"end").await;
    let mut h = [0u8; 2];
    tokio::time::timeout(LIMIT, first.tcp.read_exact(&mut h))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h[0], 0x82, "a final binary frame");
    assert_eq!(h[1] & 0x7F, 127);
    let len = first.tcp.read_u64().await.unwrap();
    assert_eq!(len, (700 << 10) + 3);
}
