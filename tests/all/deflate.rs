//! permessage-deflate (RFC 7692) end to end: the client role against Python `websockets` and Node
//! `ws` servers, the server role against their clients and headless Chromium (with a counting
//! TCP forwarder as evidence that the wire carried compressed frames), and RFC 7692 by section
//! with raw frames: §5 negotiation in both roles, §6 the RSV1 rules, §7.2 reading compressed
//! messages however they are framed, corrupt data (1007) and a decompression bomb (1009).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::harness::peers::{self, Peer};
use crate::harness::raw::{self, BINARY, CLOSE, CONTINUATION as CONT, PING, TEXT};
use crate::harness::{self, Bridge, Finished, LIMIT, chromium, random_bytes, servers};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// What a sync flush ends with; removed by the sender, put back by the receiver (§7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

// ---------------------------------------------------------------------------------------------
// Helpers: a counting forwarder, wsbridge as a relay, the messages.

/// A TCP forwarder on 127.0.0.1 (port 0) to `target`, counting the bytes that went through it
/// in each direction, over all its connections.
struct Forwarder {
    port: u16,
    /// Towards `target`.
    up: Arc<AtomicU64>,
    /// From `target`.
    down: Arc<AtomicU64>,
}

impl Forwarder {
    async fn start(target: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (u, d) = (up.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, u.clone()));
                tokio::spawn(pump(sr, cw, d.clone()));
            }
        });
        Forwarder { port, up, down }
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
        )
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = w.shutdown().await;
}

/// `HOST:PORT` → PORT.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A WebSocket client without compression (tungstenite offers none), for driving a relay.
async fn ws_connect(addr: &str) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .expect("WebSocket handshake with the relay");
    ws
}

/// Send each message through the relay at `addr` and check that its echo is the same message.
async fn echo_each(addr: &str, msgs: &[Message]) {
    let mut ws = ws_connect(addr).await;
    for (i, m) in msgs.iter().enumerate() {
        ws.send(m.clone()).await.unwrap();
        let got = tokio::time::timeout(LIMIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no echo of message {i} in time"))
            .unwrap_or_else(|| panic!("the relay closed before echoing message {i}"))
            .unwrap();
        assert!(
            got == *m,
            "message {i}: sent {} bytes ({}), got {} bytes ({})",
            m.len(),
            kind(m),
            got.len(),
            kind(&got)
        );
    }
    ws.close(None).await.unwrap();
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        _ => "control",
    }
}

/// `wsbridge -v ARGS ws-listen:127.0.0.1:0 ws://127.0.0.1:PORT/`: a relay whose client role
/// faces the server at `port`, through a counting forwarder. Returns the relay, its listening
/// address and the forwarder.
async fn relay_to(args: &[&str], port: u16) -> (Bridge, String, Forwarder) {
    let fwd = Forwarder::start(port).await;
    let url = format!("ws://127.0.0.1:{}/", fwd.port);
    let mut all = vec!["-v", "--max-message-size", "4MiB"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["ws-listen:127.0.0.1:0", &url]);
    let mut b = Bridge::spawn(&all);
    let addr = harness::host_port(&b.listening().await);
    (b, addr, fwd)
}

/// 1 MiB of repetitive JSON (one line, no newline).
fn json_mib() -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < MIB as usize - 100 {
        s.push_str(&format!(
            r#"{{"id": {}, "sensor": "thermometer", "unit": "celsius", "value": 21.5}}, "#,
            i % 10
        ));
        i += 1;
    }
    while s.len() < MIB as usize - 1 {
        s.push(' ');
    }
    s.push(']');
    s
}

/// Similar JSON messages (what context takeover is for).
fn similar_json(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"seq": {i}, "user": "carol", "channel": "town-square", "text": "message {i} about the weather, which is fine"}}"#
            )
        })
        .collect()
}

/// Text and binary, empty ones, 1 MiB compressible, 200 KiB random, 50 similar ones.
fn all_kinds() -> Vec<Message> {
    let mut v = vec![
        Message::text(""),
        Message::binary(Vec::new()),
        Message::text("hello"),
        Message::text("héllo wörld ✓"),
        Message::binary((0..=255u8).collect::<Vec<u8>>()),
        Message::text(json_mib()),
        Message::binary(json_mib().into_bytes()),
        Message::binary(random_bytes(200 * 1024, 7692)),
    ];
    v.extend(similar_json(50).into_iter().map(Message::text));
    v
}

/// The JSON object on a peer's `conn {...}` line.
async fn conn_line(peer: &mut Peer) -> Value {
    let line = peer.line_with("conn ").await;
    serde_json::from_str(line.strip_prefix("conn ").unwrap()).expect("JSON on the conn line")
}

// ---------------------------------------------------------------------------------------------
// The client role against third-party servers.

#[tokio::test]
async fn client_role_against_python_websockets_compresses_both_ways() {
    let mut server = Peer::start(
        {
            let mut c = peers::python_peer("deflate_peer.py");
            c.arg("server");
            c
        },
        peers::port_line,
    )
    .await;

    // Every kind of message, byte-exact both ways.
    let (mut b, addr, _fwd) = relay_to(&[], server.port).await;
    echo_each(&addr, &all_kinds()).await;
    let conn = conn_line(&mut server).await;
    assert_eq!(
        conn["request"], "permessage-deflate; client_max_window_bits",
        "{conn}"
    );
    let answer = conn["answer"].as_str().unwrap();
    assert!(answer.starts_with("permessage-deflate"), "{conn}");
    assert_eq!(conn["extensions"].as_array().unwrap().len(), 1, "{conn}");
    let line = b.stderr_contains(": connected (HTTP 101").await;
    assert!(
        line.contains("permessage-deflate (ours: ") && line.contains("theirs: context kept"),
        "{line}"
    );
    drop(b);

    // 1 MiB of JSON each way moves a few KiB.
    let (_b, addr, fwd) = relay_to(&[], server.port).await;
    echo_each(&addr, &[Message::text(json_mib())]).await;
    let (up, down) = fwd.counts();
    assert!(up < 100 * KIB && down < 100 * KIB, "up {up}, down {down}");
    conn_line(&mut server).await;

    // The same with --no-compress: at least the 1 MiB itself, each way.
    let (_b, addr, fwd) = relay_to(&["--no-compress"], server.port).await;
    echo_each(&addr, &[Message::text(json_mib())]).await;
    let (up, down) = fwd.counts();
    assert!(up >= MIB && down >= MIB, "up {up}, down {down}");
    let conn = conn_line(&mut server).await;
    assert_eq!(conn, json!({"request": "", "answer": "", "extensions": []}));
}

#[tokio::test]
async fn client_role_against_node_ws_with_its_deflate_options() {
    // (server options, wsbridge options, the answer expected, what the log says of theirs)
    let cases: [(&[&str], &[&str], &str, &str); 3] = [
        (&[], &[], "permessage-deflate", "theirs: context kept"),
        (
            &[
                "--server-no-context-takeover",
                "--server-max-window-bits",
                "10",
            ],
            &[],
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
            "theirs: context reset",
        ),
        (
            &[],
            &[
                "--deflate-window-bits",
                "10",
                "--deflate-no-context-takeover",
            ],
            "permessage-deflate; server_max_window_bits=10; server_no_context_takeover; client_no_context_takeover",
            "(ours: 10 bits, context reset; theirs: context reset)",
        ),
    ];
    for (server_args, args, want, log) in cases {
        let mut cmd = peers::node_peer("deflate_node.js");
        cmd.arg("server").args(server_args);
        let mut server = Peer::start(cmd, peers::port_line).await;
        let (mut b, addr, fwd) = relay_to(args, server.port).await;
        echo_each(&addr, &all_kinds()).await;
        let conn = conn_line(&mut server).await;
        assert_eq!(conn["answer"], want, "{server_args:?} {args:?}: {conn}");
        let line = b.stderr_contains(": connected (HTTP 101").await;
        assert!(line.contains(log), "{server_args:?} {args:?}: {line}");
        // 2 MiB of compressible JSON and 200 KiB of random bytes went each way.
        let (up, down) = fwd.counts();
        assert!(
            up < 400 * KIB && down < 400 * KIB,
            "{server_args:?} {args:?}: up {up}, down {down}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The server role against third-party clients.

/// The client offers tried: (option flags of both scripts, the answer expected).
const OFFERS: [(&[&str], &str); 6] = [
    // Both clients offer `client_max_window_bits`: limited to 12 bits by default.
    (&[], "permessage-deflate; client_max_window_bits=12"),
    (
        &["--client-no-context-takeover"],
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=12",
    ),
    (
        &["--server-no-context-takeover"],
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
    ),
    (
        &["--server-max-window-bits", "10"],
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
    ),
    (
        &["--client-max-window-bits", "9"],
        "permessage-deflate; client_max_window_bits=9",
    ),
    (
        &[
            "--server-no-context-takeover",
            "--client-no-context-takeover",
            "--server-max-window-bits",
            "10",
            "--client-max-window-bits",
            "9",
        ],
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_no_context_takeover; client_max_window_bits=9",
    ),
];

/// Run a client script (`python` or `node`) against `url`; its output lines.
async fn run_client(client: &str, url: &str, args: &[&str]) -> Vec<String> {
    let mut cmd = peers::python_or_node(client, "deflate_peer.py", "deflate_node.js");
    cmd.arg("client").arg(url).args(args);
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{client} {args:?} did not finish in time"))
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        out.status.success(),
        "{client} {args:?}: {lines:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

/// Every offer, from both clients, against `wsbridge -vv ws-listen:… BACKEND`.
async fn every_offer_from_both_clients(backend: &str, extra: &[&str]) {
    let mut b = Bridge::spawn(&["-vv", "ws-listen:127.0.0.1:0", backend]);
    let url = b.listening().await;
    let n = if extra.is_empty() { "ok 68" } else { "ok 65" };
    for (offer, want) in OFFERS {
        let args: Vec<&str> = offer.iter().chain(extra).copied().collect();
        for client in ["python", "node"] {
            let lines = run_client(client, &url, &args).await;
            let answer = serde_json::to_string(want).unwrap();
            assert_eq!(
                lines[0],
                format!("answer {answer}"),
                "{client} {args:?}: {lines:?}"
            );
            assert!(
                lines.contains(&n.to_string()),
                "{client} {args:?}: {lines:?}"
            );
            assert_eq!(
                lines.last().unwrap(),
                "closed 1000",
                "{client} {args:?}: {lines:?}"
            );
        }
    }
    b.stderr_contains("permessage-deflate (ours: 10 bits, context reset; theirs: context reset)")
        .await;
}

#[tokio::test]
async fn server_role_mirror_takes_every_offer_of_python_and_node_clients() {
    every_offer_from_both_clients("mirror:", &[]).await;
}

#[tokio::test]
async fn server_role_tcp_echo_takes_every_offer_of_python_and_node_clients() {
    // A line service: text messages without newlines, one line each way.
    let backend = servers::tcp_echo().await;
    every_offer_from_both_clients(&backend, &["--text-only"]).await;
}

#[tokio::test]
async fn server_role_compresses_on_the_wire_for_a_python_client() {
    for (args, compressed) in [(&[][..], true), (&["--no-compress"][..], false)] {
        let (_b, addr) = mirror(args).await;
        let fwd = Forwarder::start(port_of(&addr)).await;
        let url = format!("ws://127.0.0.1:{}/", fwd.port);
        let lines = run_client("python", &url, &[]).await;
        assert!(lines.contains(&"ok 68".to_string()), "{lines:?}");
        // 512 KiB compressible, 200 KiB random and small ones: about 720 KiB each way.
        let (up, down) = fwd.counts();
        if compressed {
            assert_eq!(
                lines[0], r#"answer "permessage-deflate; client_max_window_bits=12""#,
                "{lines:?}"
            );
            assert!(up < 300 * KIB && down < 300 * KIB, "up {up}, down {down}");
        } else {
            assert_eq!(lines[0], r#"answer """#, "{lines:?}");
            assert!(up > 700 * KIB && down > 700 * KIB, "up {up}, down {down}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium through the console page.

/// The page's own WebSocket: sends each message after the previous one's echo, compares.
const BROWSER_SCRIPT: &str = r#"
new Promise((done) => {
  const row = '{"id": 1, "name": "chromium", "ok": true, "values": [1, 2, 3]}, ';
  const big = "[" + row.repeat(Math.ceil(512 * 1024 / row.length));
  const bin = new Uint8Array(70000).map((_, i) => (i * 31 + 7) % 251);
  const msgs = ["", "hello chromium", "ünïcödé ✓", big, bin, new Uint8Array(0)];
  for (let i = 0; i < 50; i++) msgs.push(JSON.stringify({seq: i, text: `message ${i} from the page`}));
  const same = (a, b) => typeof a === "string" ? a === b
    : b instanceof ArrayBuffer && b.byteLength === a.length && new Uint8Array(b).every((x, i) => x === a[i]);
  const result = {sent: msgs.reduce((n, m) => n + m.length, 0)};
  const ws = new WebSocket(URL);
  ws.binaryType = "arraybuffer";
  let i = 0;
  ws.onopen = () => { result.extensions = ws.extensions; ws.send(msgs[0]); };
  ws.onmessage = (e) => {
    if (!same(msgs[i], e.data)) { result.mismatch = i; ws.close(); return; }
    i += 1;
    result.echoed = i;
    if (i === msgs.length) ws.close(1000); else ws.send(msgs[i]);
  };
  ws.onclose = (e) => { result.closed = e.code; done(result); };
})
"#;

#[tokio::test]
async fn chromium_negotiates_deflate_with_the_server_and_echoes_byte_exact() {
    let mut b = Bridge::spawn(&["-vv", "ws-listen:127.0.0.1:0", "--console", "mirror:"]);
    let addr = harness::host_port(&b.listening().await);
    let fwd = Forwarder::start(port_of(&addr)).await;
    let page = format!("127.0.0.1:{}", fwd.port);
    let mut browser = chromium::Browser::launch().await;
    browser.open(&format!("http://{page}/")).await;
    let (page_up, page_down) = fwd.counts();
    let script = BROWSER_SCRIPT.replace("URL", &format!("\"ws://{page}/\""));
    let result = tokio::time::timeout(LIMIT, browser.eval(&script))
        .await
        .expect("the page's exchange finished in time");
    assert_eq!(
        result["extensions"], "permessage-deflate; client_max_window_bits=12",
        "{result}"
    );
    assert_eq!(result["echoed"], 56, "{result}");
    assert_eq!(result["closed"], 1000, "{result}");
    assert!(result.get("mismatch").is_none(), "{result}");
    b.stderr_contains("permessage-deflate (ours: 15 bits, context kept; theirs: context kept)")
        .await;
    // Over 580 KB went each way as messages; the wire carried a fraction of it.
    let sent = result["sent"].as_u64().unwrap();
    assert!(sent > 580_000, "{result}");
    let (up, down) = fwd.counts();
    let (up, down) = (up - page_up, down - page_down);
    assert!(up < 100 * KIB && down < 100 * KIB, "up {up}, down {down}");
}

// ---------------------------------------------------------------------------------------------
// Raw frames: RFC 7692 by section.

/// A frame as read: its first byte (FIN, RSV1-3, opcode) and its payload, unmasked.
#[derive(Debug)]
struct RawFrame {
    b0: u8,
    payload: Vec<u8>,
}

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;

impl RawFrame {
    fn rsv1(&self) -> bool {
        self.b0 & RSV1 != 0
    }

    fn opcode(&self) -> u8 {
        self.b0 & 0x0f
    }

    fn close_code(&self) -> Option<u16> {
        (self.opcode() == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// One end of a raw WebSocket connection: masks what it sends when it is the client.
struct Raw {
    tcp: TcpStream,
    client: bool,
}

impl Raw {
    /// Write one frame with this first byte. Errors are ignored (the peer may have closed
    /// already, as after a bomb).
    async fn send(&mut self, b0: u8, payload: &[u8]) -> std::io::Result<()> {
        let mask = self.client.then_some([0x37, 0xfa, 0x21, 0x3d]);
        self.tcp
            .write_all(&raw::frame_bytes(b0, payload, mask))
            .await
    }

    async fn put(&mut self, b0: u8, payload: &[u8]) {
        self.send(b0, payload).await.expect("write a frame");
    }

    /// The next frame; None at EOF. Bounded.
    async fn read(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(LIMIT, self.read_inner())
            .await
            .expect("a frame in time")
    }

    async fn read_inner(&mut self) -> Option<RawFrame> {
        let (b0, payload) = raw::read_frame(&mut self.tcp, !self.client).await?;
        Some(RawFrame { b0, payload })
    }

    /// Frames until a Close (returned); None when the connection ends first.
    async fn read_until_close(&mut self) -> Option<RawFrame> {
        loop {
            let f = self.read().await?;
            if f.opcode() == CLOSE {
                return Some(f);
            }
        }
    }

    async fn close(&mut self) {
        self.put(FIN | CLOSE, &1000u16.to_be_bytes()).await;
    }
}

/// Read an HTTP head (to the blank line) byte by byte, bounded.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(LIMIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            let n = tcp.read(&mut byte).await.expect("read a head");
            assert_eq!(n, 1, "EOF in a head: {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
    })
    .await
    .expect("a head in time");
    String::from_utf8(head).expect("an ASCII head")
}

/// The values of header `name` in `head`, joined with ", "; None when there is none.
fn header(head: &str, name: &str) -> Option<String> {
    let values: Vec<&str> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Upgrade a raw client at `addr` with these `Sec-WebSocket-Extensions` lines: the status, the
/// server's extension answer and the connection.
async fn upgrade(addr: &str, offers: &[&str]) -> (u16, Option<String>, Raw) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for o in offers {
        req.push_str(&format!("Sec-WebSocket-Extensions: {o}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let answer = header(&head, "sec-websocket-extensions");
    (status, answer, Raw { tcp, client: true })
}

/// `wsbridge ARGS ws-listen:127.0.0.1:0 mirror:` and its address.
async fn mirror(args: &[&str]) -> (Bridge, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["ws-listen:127.0.0.1:0", "mirror:"]);
    let mut b = Bridge::spawn(&all);
    let addr = harness::host_port(&b.listening().await);
    (b, addr)
}

/// A raw server answering every upgrade with 101 and, if given, this extension answer; hands
/// over each connection with the request's head.
async fn raw_server(answer: Option<&'static str>) -> (u16, mpsc::UnboundedReceiver<(String, Raw)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let head = read_head(&mut tcp).await;
            let key = header(&head, "sec-websocket-key").expect("a key");
            let mut resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n",
                derive_accept_key(key.as_bytes())
            );
            if let Some(a) = answer {
                resp.push_str(&format!("Sec-WebSocket-Extensions: {a}\r\n"));
            }
            resp.push_str("\r\n");
            if tcp.write_all(resp.as_bytes()).await.is_ok() {
                let _ = tx.send((head, Raw { tcp, client: false }));
            }
        }
    });
    (port, rx)
}

/// `wsbridge ARGS ws://raw-server/` (stdin held open) against a raw server answering `answer`.
async fn client_of_raw(args: &[&str], answer: Option<&'static str>) -> (Bridge, String, Raw) {
    let (port, mut conns) = raw_server(answer).await;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut all = args.to_vec();
    all.push(&url);
    let b = Bridge::spawn(&all);
    let (head, raw) = tokio::time::timeout(LIMIT, conns.recv())
        .await
        .expect("wsbridge connected in time")
        .unwrap();
    (b, head, raw)
}

/// Finish with stdin kept open until the end (only the peer ends the session).
async fn finish(mut b: Bridge) -> Finished {
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    f
}

/// Compress a message the RFC 7692 way: sync flush, tail removed. `c` keeps its context.
fn pack(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    let start = c.total_in();
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let used = (c.total_in() - start) as usize;
        c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
            .unwrap();
        if (c.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&TAIL), "a sync flush ends with the tail");
    out.truncate(out.len() - TAIL.len());
    out
}

/// A message compressed on its own (a fresh 15-bit compressor).
fn pack_once(data: &[u8]) -> Vec<u8> {
    pack(&mut Compress::new(Compression::default(), false), data)
}

/// A message compressed as a whole deflate stream: its last block has BFINAL set (§7.2.3.4).
fn pack_final(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let used = c.total_in() as usize;
        let st = c
            .compress_vec(&data[used..], &mut out, FlushCompress::Finish)
            .unwrap();
        if st == Status::StreamEnd {
            return out;
        }
    }
}

/// Inflate one message's payload (tail put back) with `d`, which keeps its context.
fn unpack(d: &mut Decompress, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(input.len() * 4 + 1024);
    let start = d.total_in();
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let used = (d.total_in() - start) as usize;
        let st = d
            .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            .map_err(|e| e.to_string())?;
        let used = (d.total_in() - start) as usize;
        if st == Status::StreamEnd || (used == input.len() && out.len() < out.capacity()) {
            return Ok(out);
        }
    }
}

/// Inflate with a `bits` window, one output byte at a time, so every back reference must be
/// within the window (a reference further back is an error).
fn unpack_in_window(bits: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut d = Decompress::new_with_window_bits(false, bits);
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let st = d
            .decompress(&input[in0 as usize..], &mut byte, FlushDecompress::Sync)
            .map_err(|e| e.to_string())?;
        let n = (d.total_out() - out0) as usize;
        out.extend_from_slice(&byte[..n]);
        if st == Status::StreamEnd || (n == 0 && d.total_in() == in0) {
            return Ok(out);
        }
    }
}

/// The message a raw peer got back for one it sent: inflated when RSV1 says compressed.
fn message_of(f: &RawFrame, d: &mut Decompress) -> Vec<u8> {
    assert!(f.b0 & FIN != 0, "wsbridge sends whole messages: {f:?}");
    if f.rsv1() {
        unpack(d, &f.payload).expect("wsbridge's compressed message inflates")
    } else {
        f.payload.clone()
    }
}

// §5: negotiation.

#[tokio::test]
async fn s5_server_declines_bad_offers_and_takes_the_next_valid_one() {
    let (_b, addr) = mirror(&[]).await;
    let cases: [(&[&str], Option<&str>); 8] = [
        // An unknown parameter, then a valid offer.
        (
            &["permessage-deflate; mystery=1, permessage-deflate; client_max_window_bits"],
            Some("permessage-deflate; client_max_window_bits=12"),
        ),
        // A duplicate parameter, then a valid offer on a second header line.
        (
            &[
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover",
            ],
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        // Bad window bits of every kind, then a valid offer.
        (
            &["permessage-deflate; server_max_window_bits=16, \
                 permessage-deflate; client_max_window_bits=7, \
                 permessage-deflate; server_max_window_bits=010, \
                 permessage-deflate; server_max_window_bits, \
                 permessage-deflate; server_max_window_bits=10"],
            Some("permessage-deflate; server_max_window_bits=10"),
        ),
        // A value where none belongs, another extension, then a valid offer.
        (
            &[
                "permessage-deflate; client_no_context_takeover=1, x-webkit-deflate-frame, \
                 permessage-deflate; client_no_context_takeover",
            ],
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        // Quoted values are values (RFC 6455 §9.1).
        (
            &["permessage-deflate; client_max_window_bits=\"10\""],
            Some("permessage-deflate; client_max_window_bits=10"),
        ),
        // Nothing valid: no answer, but the upgrade succeeds.
        (
            &[
                "permessage-deflate; mystery",
                "permessage-deflate; server_max_window_bits=7",
                "permessage-deflate; client_max_window_bits; client_max_window_bits",
            ],
            None,
        ),
        (&["x-webkit-deflate-frame"], None),
        (&[], None),
    ];
    let hello = b"hello hello hello hello hello hello".repeat(4);
    for (offers, want) in cases {
        let (status, answer, mut raw) = upgrade(&addr, offers).await;
        assert_eq!(status, 101, "{offers:?}");
        assert_eq!(answer.as_deref(), want, "{offers:?}");
        if want.is_some() {
            // Agreed: a compressed message is read, and its echo comes back compressed.
            raw.put(FIN | RSV1 | TEXT, &pack_once(&hello)).await;
            let f = raw.read().await.expect("the echo");
            assert!(f.rsv1(), "{offers:?}: a compressible echo is compressed");
            let mut d = Decompress::new(false);
            assert_eq!(message_of(&f, &mut d), hello, "{offers:?}");
            raw.close().await;
            assert_eq!(
                raw.read_until_close().await.unwrap().close_code(),
                Some(1000)
            );
        } else {
            // Not agreed: plain echoes, and RSV1 is a protocol error.
            raw.put(FIN | TEXT, &hello).await;
            let f = raw.read().await.expect("the echo");
            assert_eq!((f.rsv1(), f.payload.as_slice()), (false, &hello[..]));
            raw.put(FIN | RSV1 | TEXT, &pack_once(&hello)).await;
            let close = raw.read_until_close().await.expect("a Close");
            assert_eq!(close.close_code(), Some(1002), "{offers:?}");
        }
    }
}

#[tokio::test]
async fn s5_client_offers_what_its_flags_say() {
    let cases: [(&[&str], Option<&str>); 4] = [
        (&[], Some("permessage-deflate; client_max_window_bits")),
        (
            &["--deflate-window-bits", "10"],
            Some("permessage-deflate; client_max_window_bits; server_max_window_bits=10"),
        ),
        (
            &["--deflate-no-context-takeover"],
            Some(
                "permessage-deflate; client_max_window_bits; server_no_context_takeover; \
                 client_no_context_takeover",
            ),
        ),
        (&["--no-compress"], None),
    ];
    for (args, want) in cases {
        let (b, head, mut raw) = client_of_raw(args, None).await;
        assert_eq!(
            header(&head, "sec-websocket-extensions").as_deref(),
            want,
            "{args:?}"
        );
        raw.close().await;
        assert_eq!(finish(b).await.code, Some(0), "{args:?}");
    }
}

#[tokio::test]
async fn s5_client_fails_on_an_answer_its_offer_does_not_allow() {
    let cases: [(&[&str], &'static str); 10] = [
        (&[], "x-unknown"),
        (&[], "permessage-deflate, x-unknown"),
        (&[], "permessage-deflate, permessage-deflate"),
        (&[], "permessage-deflate; mystery"),
        (&[], "permessage-deflate; server_no_context_takeover=1"),
        (&[], "permessage-deflate; client_max_window_bits"),
        (&[], "permessage-deflate; server_max_window_bits=16"),
        (
            &["--deflate-window-bits", "10"],
            "permessage-deflate; server_max_window_bits=12",
        ),
        (&["--deflate-window-bits", "10"], "permessage-deflate"),
        (&["--deflate-no-context-takeover"], "permessage-deflate"),
    ];
    for (args, answer) in cases {
        let (port, _conns) = raw_server(Some(answer)).await;
        let url = format!("ws://127.0.0.1:{port}/");
        let mut all = args.to_vec();
        all.push(&url);
        let f = harness::run(&all, b"hi\n").await;
        assert_eq!(f.code, Some(6), "{args:?} {answer:?}: {}", f.stderr);
        harness::assert_one_line_error(&f, "the server's permessage-deflate answer is invalid: ");
        assert!(f.stdout.is_empty(), "{answer:?}");
    }
    // What the offer allows is taken: the server's window limited as asked, ours limited.
    let (b, _, mut raw) = client_of_raw(
        &["-v", "--deflate-window-bits", "10"],
        Some("permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"),
    )
    .await;
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"agreed")).await;
    raw.close().await;
    let f = finish(b).await;
    assert_eq!(f.stdout_str(), "agreed\n");
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(
        f.stderr
            .contains("permessage-deflate (ours: 9 bits, context kept; theirs: context kept)"),
        "{}",
        f.stderr
    );
}

// §6: RSV1.

/// Frames to send: (first byte, payload).
type Frames = Vec<(u8, Vec<u8>)>;

#[tokio::test]
async fn s6_rsv1_only_on_a_first_data_frame_of_an_agreed_connection() {
    let (_b, addr) = mirror(&[]).await;
    let part = pack_once(b"first part of a message");
    let cases: [(&str, Frames); 5] = [
        (
            "RSV1 on a continuation of a compressed message",
            vec![
                (RSV1 | TEXT, part[..4].to_vec()),
                (FIN | RSV1 | CONT, part[4..].to_vec()),
            ],
        ),
        (
            "RSV1 on a continuation of a plain message",
            vec![
                (TEXT, b"plain ".to_vec()),
                (FIN | RSV1 | CONT, b"more".to_vec()),
            ],
        ),
        (
            "RSV1 on a ping",
            vec![(FIN | RSV1 | PING, b"ping".to_vec())],
        ),
        (
            "RSV1 on a close",
            vec![(FIN | RSV1 | CLOSE, 1000u16.to_be_bytes().to_vec())],
        ),
        (
            "RSV2 on a data frame",
            vec![(FIN | 0x20 | TEXT, b"x".to_vec())],
        ),
    ];
    for (what, frames) in cases {
        let (status, answer, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
        assert_eq!(
            (status, answer.as_deref()),
            (101, Some("permessage-deflate"))
        );
        for (b0, payload) in frames {
            raw.put(b0, &payload).await;
        }
        let close = raw.read_until_close().await.expect("a Close");
        assert_eq!(close.close_code(), Some(1002), "{what}");
    }
}

#[tokio::test]
async fn s6_rsv1_without_negotiation_is_a_protocol_error_in_both_roles() {
    // Server role, --no-compress: the offer is not answered, RSV1 closes with 1002.
    let (_b, addr) = mirror(&["--no-compress"]).await;
    let (status, answer, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
    assert_eq!((status, answer), (101, None));
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"compressed")).await;
    assert_eq!(
        raw.read_until_close().await.unwrap().close_code(),
        Some(1002)
    );
    // Client role, --no-compress: no offer, and the server's RSV1 closes with 1002.
    let (b, head, mut raw) = client_of_raw(&["--no-compress"], None).await;
    assert_eq!(header(&head, "sec-websocket-extensions"), None);
    raw.put(FIN | TEXT, b"plain").await;
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"compressed")).await;
    assert_eq!(
        raw.read_until_close().await.unwrap().close_code(),
        Some(1002)
    );
    drop(raw);
    let f = finish(b).await;
    assert_eq!(f.stdout_str(), "plain\n");
    assert_eq!(f.code, Some(9), "{}", f.stderr);
    // Client role with an offer the server did not answer: the same.
    let (b, _, mut raw) = client_of_raw(&[], None).await;
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"compressed")).await;
    assert_eq!(
        raw.read_until_close().await.unwrap().close_code(),
        Some(1002)
    );
    drop(raw);
    assert_eq!(finish(b).await.code, Some(9));
}

// §7.2: compressed messages as they may arrive.

#[tokio::test]
async fn s7_2_compressed_messages_are_read_however_they_are_framed() {
    let (b, _, mut raw) = client_of_raw(&[], Some("permessage-deflate")).await;
    let mut want = String::new();
    // §7.2.3.1: "Hello" in one frame, and in two fragments.
    raw.put(
        FIN | RSV1 | TEXT,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    )
    .await;
    raw.put(RSV1 | TEXT, &[0xf2, 0x48, 0xcd]).await;
    raw.put(FIN | CONT, &[0xc9, 0xc9, 0x07, 0x00]).await;
    want.push_str("Hello\nHello\n");
    // §7.2.3.2: the same again, referring back to the previous message (context takeover).
    raw.put(FIN | RSV1 | TEXT, &[0xf2, 0x00, 0x11, 0x00, 0x01, 0x00])
        .await;
    want.push_str("Hello\n");
    // §7.2.3.3: a stored (uncompressed) block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    raw.put(FIN | RSV1 | TEXT, &stored).await;
    want.push_str("Hello\n");
    // §7.2.3.4 as the RFC writes it: a BFINAL block, then one more byte (0x00) so that the
    // tail makes an empty stored block after it.
    raw.put(
        FIN | RSV1 | TEXT,
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
    )
    .await;
    want.push_str("Hello\n");
    // §7.2.3.6: an empty message, as the RFC writes it (0x00) and as a sync flush leaves it.
    raw.put(FIN | RSV1 | TEXT, &[0x00]).await;
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"")).await;
    want.push_str("\n\n");
    // One message split at every byte boundary of its compressed payload (a fragment may be
    // empty), then in one-byte fragments.
    let msg = "split at every byte boundary: ✓ ünïcödé";
    let packed = pack_once(msg.as_bytes());
    for k in 0..=packed.len() {
        raw.put(RSV1 | TEXT, &packed[..k]).await;
        raw.put(FIN | CONT, &packed[k..]).await;
        want.push_str(msg);
        want.push('\n');
    }
    raw.put(RSV1 | TEXT, &packed[..1]).await;
    for byte in &packed[1..] {
        raw.put(CONT, std::slice::from_ref(byte)).await;
    }
    raw.put(FIN | CONT, &[]).await;
    want.push_str(msg);
    want.push('\n');
    // §7.2.3.4: a deflate stream that ends with BFINAL=1 (zlib's Z_FINISH), twice, and then a
    // message compressed with a sync flush again.
    for m in ["final block", "final block again"] {
        raw.put(FIN | RSV1 | TEXT, &pack_final(m.as_bytes())).await;
        want.push_str(m);
        want.push('\n');
    }
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"after the final block"))
        .await;
    want.push_str("after the final block\n");
    // Binary messages are inflated the same way (-b would pass them on; in text mode a binary
    // message is a line too).
    raw.put(FIN | RSV1 | BINARY, &pack_once(b"binary")).await;
    want.push_str("binary\n");
    raw.close().await;
    assert_eq!(
        raw.read_until_close().await.unwrap().close_code(),
        Some(1000)
    );
    let f = finish(b).await;
    assert_eq!(f.stdout_str(), want);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn s7_2_context_takeover_across_fifty_messages() {
    let (b, _, mut raw) = client_of_raw(&[], Some("permessage-deflate")).await;
    let msgs = similar_json(50);
    let mut c = Compress::new(Compression::default(), false);
    let sizes: Vec<usize> = {
        let mut sizes = Vec::new();
        for m in &msgs {
            let packed = pack(&mut c, m.as_bytes());
            sizes.push(packed.len());
            raw.put(FIN | RSV1 | TEXT, &packed).await;
        }
        sizes
    };
    // The later messages really refer back: each is a fraction of the first.
    assert!(
        sizes[1..].iter().all(|&s| s * 2 < sizes[0]),
        "sizes {sizes:?}"
    );
    raw.close().await;
    raw.read_until_close().await;
    let f = finish(b).await;
    let want: String = msgs.iter().map(|m| format!("{m}\n")).collect();
    assert_eq!(f.stdout_str(), want);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn s7_2_corrupt_compressed_data_closes_with_1007() {
    let corrupt: [(&str, Vec<u8>); 3] = [
        ("a reserved block type", vec![0xff, 0xff, 0xff]),
        (
            "stored block lengths that disagree",
            vec![0x00, 0x05, 0x00, 0x00, 0x00, b'x'],
        ),
        (
            "a distance before the start",
            // A fixed-Huffman block: literal 'a', then a match of length 3 at distance 2
            // (one byte of history only).
            fixed_block_with_far_match(),
        ),
    ];
    for (what, payload) in corrupt {
        let (b, _, mut raw) =
            client_of_raw(&[], Some("permessage-deflate; server_no_context_takeover")).await;
        raw.put(FIN | RSV1 | TEXT, &pack_once(b"before")).await;
        raw.put(FIN | RSV1 | TEXT, &payload).await;
        let close = raw.read_until_close().await.expect("a Close");
        assert_eq!(close.close_code(), Some(1007), "{what}");
        drop(raw);
        let f = finish(b).await;
        assert_eq!(f.stdout_str(), "before\n", "{what}");
        assert_eq!(f.code, Some(9), "{what}: {}", f.stderr);
        harness::assert_one_line_error(&f, "permessage-deflate");
    }
}

/// A deflate stream (BFINAL=0, fixed Huffman codes): literal 'a', then length 3 at distance 2,
/// which reaches back before the start of the (empty) history.
fn fixed_block_with_far_match() -> Vec<u8> {
    let mut bits: Vec<u8> = Vec::new();
    let mut put = |value: u32, n: u32, msb_first: bool| {
        for i in 0..n {
            let bit = if msb_first {
                (value >> (n - 1 - i)) & 1
            } else {
                (value >> i) & 1
            };
            bits.push(bit as u8);
        }
    };
    put(0, 1, false); // BFINAL
    put(1, 2, false); // BTYPE 01: fixed codes
    put(0x30 + u32::from(b'a'), 8, true); // literal 'a' (0-143: 8 bits from 0x30)
    put(1, 7, true); // length code 257 = length 3 (256-279: 7 bits from 0)
    put(1, 5, true); // distance code 1 = distance 2
    put(0, 7, true); // end of block (256)
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        out[i / 8] |= b << (i % 8);
    }
    out
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

#[tokio::test]
async fn s7_2_decompression_bomb_closes_with_1009_and_memory_stays_bounded() {
    let (mut b, addr) = mirror(&["-v", "--max-message-size", "1MiB"]).await;
    let pid = b.child.id().unwrap();
    // 100 MiB of zeros: about 100 KiB compressed.
    let bomb = pack_once(&vec![0u8; 100 * MIB as usize]);
    assert!(bomb.len() < 200 * KIB as usize, "{}", bomb.len());
    // The relay works normally first.
    let (_, answer, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
    assert!(answer.is_some());
    raw.put(FIN | RSV1 | BINARY, &pack_once(&[7u8; 4000])).await;
    let mut d = Decompress::new(false);
    assert_eq!(message_of(&raw.read().await.unwrap(), &mut d), [7u8; 4000]);
    raw.close().await;
    raw.read_until_close().await;
    let before = peak_rss(pid);
    // In one frame, in 4 KiB fragments.
    for fragmented in [false, true] {
        let (_, _, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
        if fragmented {
            let mut chunks = bomb.chunks(4096).peekable();
            let mut first = true;
            while let Some(c) = chunks.next() {
                let fin = if chunks.peek().is_none() { FIN } else { 0 };
                let op = if first { RSV1 | BINARY } else { CONT };
                first = false;
                if raw.send(fin | op, c).await.is_err() {
                    break; // closed already: the rest is not read
                }
            }
        } else {
            let _ = raw.send(FIN | RSV1 | BINARY, &bomb).await;
        }
        let close = raw.read_until_close().await.expect("a Close");
        assert_eq!(close.close_code(), Some(1009), "fragmented: {fragmented}");
    }
    b.stderr_contains("1009").await;
    let after = peak_rss(pid);
    assert!(
        after < before + 16 * MIB,
        "peak RSS grew from {before} to {after} bytes"
    );
    // Still serving.
    let (_, _, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
    raw.put(FIN | RSV1 | TEXT, &pack_once(b"still here")).await;
    let mut d = Decompress::new(false);
    assert_eq!(
        message_of(&raw.read().await.unwrap(), &mut d),
        b"still here"
    );
}

// §7.1: the parameters change what wsbridge sends.

#[tokio::test]
async fn s7_1_server_honours_no_context_takeover_and_the_window_asked_for() {
    let (_b, addr) = mirror(&[]).await;
    let json = similar_json(3);
    // server_no_context_takeover: every reply inflates on its own.
    let (_, answer, mut raw) =
        upgrade(&addr, &["permessage-deflate; server_no_context_takeover"]).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    for m in &json {
        raw.put(FIN | TEXT, m.as_bytes()).await;
        let f = raw.read().await.unwrap();
        assert!(f.rsv1(), "compressed");
        let got = unpack(&mut Decompress::new(false), &f.payload).expect("inflates alone");
        assert_eq!(got, m.as_bytes());
    }
    // With context takeover the later replies refer back (and would not inflate alone).
    let (_, _, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
    let mut d = Decompress::new(false);
    let mut sizes = Vec::new();
    for m in &json {
        raw.put(FIN | TEXT, m.as_bytes()).await;
        let f = raw.read().await.unwrap();
        sizes.push(f.payload.len());
        assert_eq!(message_of(&f, &mut d), m.as_bytes());
    }
    assert!(sizes[2] * 2 < sizes[0], "sizes {sizes:?}");

    // server_max_window_bits=9: no reference reaches back more than 512 bytes. A message whose
    // random 2000-byte block repeats 5 KB later: a 15-bit window finds the repeat, 9 bits may not.
    let block = random_bytes(2000, 9);
    let mut msg = block.clone();
    msg.extend(b"abc".repeat(1000));
    msg.extend(&block);
    let wide = pack_once(&msg);
    assert!(
        unpack_in_window(9, &wide).is_err(),
        "the check itself: a 15-bit stream must fail in a 9-bit window"
    );
    let (_, answer, mut raw) =
        upgrade(&addr, &["permessage-deflate; server_max_window_bits=9"]).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_max_window_bits=9")
    );
    for _ in 0..3 {
        raw.put(FIN | BINARY, &msg).await;
        let f = raw.read().await.unwrap();
        assert!(f.rsv1(), "still compressed (the abc run)");
        assert_eq!(
            unpack_in_window(9, &f.payload).expect("fits a 9-bit window"),
            msg
        );
    }
    // server_max_window_bits=8: zlib cannot compress with it; replies go uncompressed.
    let (_, answer, mut raw) =
        upgrade(&addr, &["permessage-deflate; server_max_window_bits=8"]).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_max_window_bits=8")
    );
    raw.put(FIN | RSV1 | BINARY, &pack_once(&msg)).await;
    let f = raw.read().await.unwrap();
    assert_eq!((f.rsv1(), f.payload == msg), (false, true));
    // Incompressible data goes uncompressed whatever was agreed.
    let (_, _, mut raw) = upgrade(&addr, &["permessage-deflate"]).await;
    let noise = random_bytes(5000, 11);
    raw.put(FIN | BINARY, &noise).await;
    let f = raw.read().await.unwrap();
    assert_eq!((f.rsv1(), f.payload == noise), (false, true));
}

/// A message ending its deflate stream (BFINAL=1) must not shorten the sliding window: the
/// next message may still refer back to the messages before it (§7.2.2: "the LZ77 sliding
/// window used to process the last compressed message"). The sender here does what wsbridge's
/// own compressor does: a fresh stream each message, with the window so far as its dictionary.
#[tokio::test]
async fn s7_2_the_window_survives_a_message_that_ended_its_stream() {
    let (b, _, mut raw) = client_of_raw(&[], Some("permessage-deflate")).await;
    let hex: String = random_bytes(300, 5)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let first = format!("first: {hex}");
    let second = "second, short, with BFINAL";
    let third = first.replace("first", "third");
    let mut window: Vec<u8> = Vec::new();
    for (m, last) in [
        (first.as_str(), false),
        (second, true),
        (third.as_str(), false),
    ] {
        let mut c = Compress::new(Compression::default(), false);
        if !window.is_empty() {
            c.set_dictionary(&window).unwrap();
        }
        let packed = if last {
            let mut out = Vec::with_capacity(m.len() + 1024);
            let st = c.compress_vec(m.as_bytes(), &mut out, FlushCompress::Finish);
            assert_eq!(st.unwrap(), Status::StreamEnd);
            out
        } else {
            pack(&mut c, m.as_bytes())
        };
        raw.put(FIN | RSV1 | TEXT, &packed).await;
        window.extend_from_slice(m.as_bytes());
    }
    raw.close().await;
    raw.read_until_close().await;
    let f = finish(b).await;
    assert_eq!(
        f.stdout_str(),
        format!("{first}\n{second}\n{third}\n"),
        "{}",
        f.stderr
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

/// `broadcast:` over compressed connections: each member's connection compresses on its own.
/// A member that agreed on permessage-deflate sends compressed messages; another that agreed
/// gets them compressed (and referring back across messages), one that did not gets them plain.
#[tokio::test]
async fn broadcast_rooms_work_over_compressed_and_plain_members() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "broadcast:"]);
    let addr = harness::host_port(&b.listening().await);
    let (_, sender_answer, mut sender) = upgrade(&addr, &["permessage-deflate"]).await;
    let (_, answer, mut packed_member) = upgrade(&addr, &["permessage-deflate"]).await;
    let (_, none, mut plain_member) = upgrade(&addr, &[]).await;
    assert_eq!(sender_answer.as_deref(), Some("permessage-deflate"));
    assert_eq!(answer.as_deref(), Some("permessage-deflate"));
    assert_eq!(none, None);
    // Every member is in the room before anything is sent: a ping round trip each.
    for raw in [&mut sender, &mut packed_member, &mut plain_member] {
        raw.put(FIN | PING, b"in?").await;
        assert_eq!(raw.read().await.expect("a pong").payload, b"in?");
    }
    let msgs = similar_json(20);
    let mut c = Compress::new(Compression::default(), false);
    for m in &msgs {
        sender
            .put(FIN | RSV1 | TEXT, &pack(&mut c, m.as_bytes()))
            .await;
    }
    let mut d = Decompress::new(false);
    let mut compressed = 0;
    for m in &msgs {
        let f = packed_member
            .read()
            .await
            .expect("a message for the compressing member");
        compressed += usize::from(f.rsv1());
        assert_eq!(message_of(&f, &mut d), m.as_bytes());
        let f = plain_member
            .read()
            .await
            .expect("a message for the plain member");
        assert!(!f.rsv1(), "the plain member agreed on nothing: {f:?}");
        assert_eq!(f.payload, m.as_bytes());
    }
    assert!(compressed >= 19, "{compressed} of 20 sent compressed");
}
