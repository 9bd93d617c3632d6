//! Framings against a third-party peer: Python `websockets` (tests/peers/framing_server.py) sends
//! a fixed script of messages on every connection and records, as exact bytes, every message
//! (and data frame, and the Close) it receives from wsbridge.
//!
//! Each framing is checked both ways in one session: (a) the script arrives on wsbridge's stdout
//! as exactly the bytes the documented format gives (computed here, independently of the
//! codecs); (b) bytes written to stdin in that framing arrive at the server as exactly the
//! intended messages. Then: bad local input (exit 11, one error line, Close 1011/1009), the
//! message limits (-1, --max-messages, --max-messages-rev), --close-code/--close-reason,
//! --max-frame-size fragmentation and --jsonrpc.
//!
//! Python websockets answers a Close at once and drops what it has not sent yet, so a session
//! reads all scripted messages from stdout before it writes (and closes) stdin.

use std::fmt;
use std::process::Stdio;

use crate::harness::peers::{self, Peer};
use crate::harness::{Bridge, Finished, LIMIT, assert_one_line_error, random_bytes, run};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Messages and the server's record

/// A WebSocket message (or a scripted ping) with its exact payload.
#[derive(Clone, PartialEq, Eq)]
enum Msg {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn text(s: &str) -> Msg {
    Msg::Text(s.as_bytes().to_vec())
}

fn bin(b: &[u8]) -> Msg {
    Msg::Binary(b.to_vec())
}

/// Short payloads in full; long ones as length, a hash and their start (a 70 KiB dump helps
/// nobody, and two long payloads that differ late must not print the same).
impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, data) = match self {
            Msg::Text(d) => ("Text", d),
            Msg::Binary(d) => ("Binary", d),
            Msg::Ping(d) => ("Ping", d),
        };
        if data.len() <= 64 {
            write!(f, "{kind}(\"{}\")", data.escape_ascii())
        } else {
            let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            write!(
                f,
                "{kind}({} bytes, fnv {hash:016x}, \"{}…\")",
                data.len(),
                data[..32].escape_ascii()
            )
        }
    }
}

/// One data frame as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    opcode: String,
    fin: bool,
    len: usize,
}

/// What the server saw on one connection.
#[derive(Debug)]
struct Record {
    received: Vec<Msg>,
    frames: Vec<Frame>,
    /// The client's Close frame: (code, reason).
    close: Option<(u16, String)>,
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the server"))
        .collect()
}

/// Standard base64 with padding (RFC 4648 §4), written out here so the expectations do not
/// share code with wsbridge.
fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        s.push(ALPHABET[(n >> 18) as usize & 63] as char);
        s.push(ALPHABET[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

fn script_json(script: &[Msg]) -> String {
    let items: Vec<serde_json::Value> = script
        .iter()
        .map(|m| match m {
            Msg::Text(d) => serde_json::json!({
                "type": "text",
                "data": std::str::from_utf8(d).expect("scripted text is UTF-8"),
            }),
            Msg::Binary(d) => serde_json::json!({"type": "binary", "data": hex(d)}),
            Msg::Ping(d) => serde_json::json!({"type": "ping", "data": hex(d)}),
        })
        .collect();
    serde_json::to_string(&items).expect("script JSON")
}

fn parse_record(line: &str) -> Record {
    let v: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("server record is not JSON ({e}): {line:.200}"));
    let received = v["received"]
        .as_array()
        .expect("received")
        .iter()
        .map(|m| {
            let data = unhex(m["hex"].as_str().expect("hex"));
            match m["type"].as_str() {
                Some("text") => Msg::Text(data),
                Some("binary") => Msg::Binary(data),
                other => panic!("unexpected message type {other:?}"),
            }
        })
        .collect();
    let frames = v["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| Frame {
            opcode: f["opcode"].as_str().expect("opcode").to_string(),
            fin: f["fin"].as_bool().expect("fin"),
            len: f["len"].as_u64().expect("len") as usize,
        })
        .collect();
    let close = match &v["close"] {
        serde_json::Value::Null => None,
        c => Some((
            c["code"].as_u64().expect("close code") as u16,
            c["reason"].as_str().expect("close reason").to_string(),
        )),
    };
    Record {
        received,
        frames,
        close,
    }
}

// ---------------------------------------------------------------------------------------------
// The Python server

/// A running `framing_server.py`; it goes away when this is dropped (`kill_on_drop`).
struct PyServer {
    peer: Peer,
    _dir: TempDir,
}

impl PyServer {
    /// Start the server with `script` (passed as a file: the 70 KiB message does not fit one
    /// command-line argument). `reply_first`: answer the first message with `re: ` + it.
    async fn start(script: &[Msg], reply_first: bool) -> PyServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let script_file = dir.path().join("script.json");
        std::fs::write(&script_file, script_json(script)).expect("write script");
        let mut cmd = peers::python_peer("framing_server.py");
        cmd.arg("--script")
            .arg(format!("@{}", script_file.display()));
        if reply_first {
            cmd.arg("--reply-first");
        }
        cmd.stderr(Stdio::inherit());
        PyServer {
            peer: Peer::start(cmd, peers::port_line).await,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.peer.port)
    }

    /// The record of the next connection to end, bounded.
    async fn record(&mut self) -> Record {
        let line = tokio::time::timeout(LIMIT, self.peer.lines.recv())
            .await
            .expect("no record from framing_server.py in time")
            .expect("framing_server.py exited");
        parse_record(&line)
    }
}

// ---------------------------------------------------------------------------------------------
// The script the server sends, and sessions

const UNICODE: &str = "héllo wörld € 𝄞";
/// NUL, LF, a non-UTF-8 byte, CR, a backslash, NUL.
const SMALL_BIN: &[u8] = b"\x00\n\xff\r\\A\x00";

/// The binary message over 70 KiB (random bytes, so it has NULs and newlines).
fn big_in() -> Vec<u8> {
    let b = random_bytes(70 * 1024 + 77, 0xf4a3_1e55);
    assert!(b.contains(&0) && b.contains(&b'\n') && b.contains(&b'\r') && b.contains(&b'\\'));
    b
}

/// Sent by the server on every connection, in this order.
fn script() -> Vec<Msg> {
    vec![
        text(""),
        text("hello"),
        text("a\nb"),
        text("c\r\nd"),
        text("nul\0in"),
        text("back\\slash\\n"),
        Msg::Ping(b"ping".to_vec()),
        text(UNICODE),
        bin(b""),
        bin(SMALL_BIN),
        bin(&big_in()),
        text("last"),
    ]
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Fail with the first differing offset instead of two dumps of 70 KiB.
#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(40);
    panic!(
        "{what}: got {} bytes, expected {}; first difference at byte {at}:\n  got  \"{}\"\n  want \"{}\"",
        got.len(),
        want.len(),
        got[from..(at + 40).min(got.len())].escape_ascii(),
        want[from..(at + 40).min(want.len())].escape_ascii(),
    );
}

/// Read `n` bytes from wsbridge's stdout, or fewer if it ends or LIMIT passes.
async fn read_n(b: &mut Bridge, n: usize) -> Vec<u8> {
    let out = b.stdout.as_mut().expect("stdout");
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + LIMIT;
    while got.len() < n {
        let want = (n - got.len()).min(buf.len());
        match tokio::time::timeout_at(deadline, out.read(&mut buf[..want])).await {
            Err(_) | Ok(Ok(0)) => break,
            Ok(Ok(k)) => got.extend_from_slice(&buf[..k]),
            Ok(Err(e)) => panic!("read stdout: {e}"),
        }
    }
    got
}

fn with_url<'a>(args: &[&'a str], url: &'a str) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.push(url);
    all
}

/// A session with the full script: start the server and wsbridge (`args` + the URL), and check
/// (a) that stdout is exactly `expected` once the script has arrived.
async fn incoming(args: &[&str], expected: &[u8]) -> (PyServer, Bridge) {
    let server = PyServer::start(&script(), false).await;
    let url = server.url();
    let mut bridge = Bridge::spawn(&with_url(args, &url));
    let got = read_n(&mut bridge, expected.len()).await;
    if got != expected {
        let f = bridge.finish().await;
        let what = format!("incoming (exit {:?}, stderr: {:?})", f.code, f.stderr);
        assert_bytes(&got, expected, &what);
        unreachable!("the bytes differ");
    }
    (server, bridge)
}

/// (b): write `input` to stdin (concurrently, so a large input cannot block), close it, wait for
/// wsbridge to exit and for the server's record.
async fn outgoing(server: &mut PyServer, mut bridge: Bridge, input: &[u8]) -> (Finished, Record) {
    let mut stdin = bridge.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&data).await;
    });
    let f = bridge.finish().await;
    let _ = writer.await;
    let rec = server.record().await;
    (f, rec)
}

/// The session ended by local EOF: exit 0, nothing more on stdout than `trailer`, Close 1000.
#[track_caller]
fn assert_clean_end(f: &Finished, rec: &Record, trailer: &[u8]) {
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_bytes(&f.stdout, trailer, "stdout after the scripted messages");
    assert_eq!(rec.close, Some((1000, String::new())), "{rec:?}");
}

// ---------------------------------------------------------------------------------------------
// Expected stdout for the script, per framing

/// `sep` inside a payload replaced by a space (--newline-policy space).
fn spaced(data: &[u8], sep: u8) -> Vec<u8> {
    data.iter()
        .map(|&c| if c == sep { b' ' } else { c })
        .collect()
}

/// --newline-policy escape: `\` → `\\`, LF → `\n`, CR → `\r`, NUL → `\0`.
fn escaped(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for &c in data {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            c => out.push(c),
        }
    }
    out
}

fn lines_space_expected() -> Vec<u8> {
    let big = spaced(&big_in(), b'\n');
    cat(&[
        b"\n",
        b"hello\n",
        b"a b\n",
        b"c\r d\n",
        b"nul\0in\n",
        b"back\\slash\\n\n",
        UNICODE.as_bytes(),
        b"\n",
        b"\n",
        b"\x00 \xff\r\\A\x00\n",
        &big,
        b"\n",
        b"last\n",
    ])
}

fn lines_escape_expected() -> Vec<u8> {
    let big = escaped(&big_in());
    cat(&[
        b"\n",
        b"hello\n",
        b"a\\nb\n",
        b"c\\r\\nd\n",
        b"nul\\0in\n",
        b"back\\\\slash\\\\n\n",
        UNICODE.as_bytes(),
        b"\n",
        b"\n",
        b"\\0\\n\xff\\r\\\\A\\0\n",
        &big,
        b"\n",
        b"last\n",
    ])
}

fn lines_keep_expected() -> Vec<u8> {
    let big = big_in();
    cat(&[
        b"\n",
        b"hello\n",
        b"a\nb\n",
        b"c\r\nd\n",
        b"nul\0in\n",
        b"back\\slash\\n\n",
        UNICODE.as_bytes(),
        b"\n",
        b"\n",
        b"\x00\n\xff\r\\A\x00\n",
        &big,
        b"\n",
        b"last\n",
    ])
}

fn nul_expected() -> Vec<u8> {
    let big = spaced(&big_in(), 0);
    cat(&[
        b"\0",
        b"hello\0",
        b"a\nb\0",
        b"c\r\nd\0",
        b"nul in\0",
        b"back\\slash\\n\0",
        UNICODE.as_bytes(),
        b"\0",
        b"\0",
        b" \n\xff\r\\A \0",
        &big,
        b"\0",
        b"last\0",
    ])
}

fn webfs_expected() -> Vec<u8> {
    let big = big_in();
    let big_header = format!("b {:020}", big.len());
    assert_eq!(big_header, "b 00000000000000071757");
    cat(&[
        b"t 00000000000000000000",
        b"t 00000000000000000005hello",
        b"t 00000000000000000003a\nb",
        b"t 00000000000000000004c\r\nd",
        b"t 00000000000000000006nul\0in",
        b"t 00000000000000000012back\\slash\\n",
        b"t 00000000000000000022",
        UNICODE.as_bytes(),
        b"b 00000000000000000000",
        b"b 00000000000000000007\x00\n\xff\r\\A\x00",
        big_header.as_bytes(),
        &big,
        b"t 00000000000000000004last",
    ])
}

fn length_prefixed_expected() -> Vec<u8> {
    let big = big_in();
    let big_header = (big.len() as u32).to_be_bytes();
    assert_eq!(big_header, [0, 1, 0x18, 0x4d]);
    cat(&[
        b"\x80\x00\x00\x00",
        b"\x80\x00\x00\x05hello",
        b"\x80\x00\x00\x03a\nb",
        b"\x80\x00\x00\x04c\r\nd",
        b"\x80\x00\x00\x06nul\0in",
        b"\x80\x00\x00\x0cback\\slash\\n",
        b"\x80\x00\x00\x16",
        UNICODE.as_bytes(),
        b"\x00\x00\x00\x00",
        b"\x00\x00\x00\x07\x00\n\xff\r\\A\x00",
        &big_header,
        &big,
        b"\x80\x00\x00\x04last",
    ])
}

/// One JSON object per line, keys in the order type, data; binary as base64. With events: an
/// open event first and the scripted ping where it came.
fn jsonl_expected(events: bool) -> Vec<u8> {
    let big = format!(r#"{{"type":"binary","data":"{}"}}"#, b64(&big_in()));
    let mut lines: Vec<&str> = Vec::new();
    if events {
        lines.push(r#"{"type":"open"}"#);
    }
    lines.extend([
        r#"{"type":"text","data":""}"#,
        r#"{"type":"text","data":"hello"}"#,
        r#"{"type":"text","data":"a\nb"}"#,
        r#"{"type":"text","data":"c\r\nd"}"#,
        r#"{"type":"text","data":"nul\u0000in"}"#,
        r#"{"type":"text","data":"back\\slash\\n"}"#,
    ]);
    if events {
        lines.push(r#"{"type":"ping","data":"cGluZw=="}"#);
    }
    lines.extend([
        r#"{"type":"text","data":"héllo wörld € 𝄞"}"#,
        r#"{"type":"binary","data":""}"#,
        r#"{"type":"binary","data":"AAr/DVxBAA=="}"#,
        &big,
        r#"{"type":"text","data":"last"}"#,
    ]);
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

const JSONL_CLOSE: &[u8] = b"{\"type\":\"close\",\"code\":1000,\"reason\":\"\"}\n";

fn raw_expected() -> Vec<u8> {
    let big = big_in();
    cat(&[
        b"",
        b"hello",
        b"a\nb",
        b"c\r\nd",
        b"nul\0in",
        b"back\\slash\\n",
        UNICODE.as_bytes(),
        b"",
        SMALL_BIN,
        &big,
        b"last",
    ])
}

fn prefixed_expected() -> Vec<u8> {
    let big = format!("B:{}\n", b64(&big_in()));
    cat(&[
        b"T:\n",
        b"T:hello\n",
        b"T:a b\n",
        b"T:c\r d\n",
        b"T:nul\0in\n",
        b"T:back\\slash\\n\n",
        b"T:",
        UNICODE.as_bytes(),
        b"\n",
        b"B:\n",
        b"B:AAr/DVxBAA==\n",
        big.as_bytes(),
        b"T:last\n",
    ])
}

/// A long outgoing payload (ASCII, so it is a valid text line).
fn big_out_line() -> Vec<u8> {
    random_bytes(70 * 1024 + 5, 0x0b16_0a7e)
        .into_iter()
        .map(|b| b'a' + b % 26)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Each framing both ways

#[tokio::test]
async fn lines_space_policy() {
    let (mut server, bridge) = incoming(&[], &lines_space_expected()).await;
    let big = big_out_line();
    let input = cat(&[
        b"hello\r\n",
        b"\n",
        b"sp ace\ttab\n",
        b"mid\rcr\n",
        "é€".as_bytes(),
        b"\n",
        b"\xff\xfeab\n",
        b"back\\n\n",
        &big,
        b"\n",
        b"tail",
    ]);
    let (f, rec) = outgoing(&mut server, bridge, &input).await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(
        rec.received,
        [
            text("hello"),
            text(""),
            text("sp ace\ttab"),
            text("mid\rcr"),
            text("é€"),
            bin(b"\xff\xfeab"),
            text("back\\n"),
            Msg::Text(big),
            text("tail"),
        ]
    );
    // Without --max-frame-size in the way, every message is one frame.
    assert!(
        rec.frames.iter().all(|f| f.fin && f.opcode != "CONT"),
        "{:?}",
        rec.frames
    );
    assert_eq!(rec.frames.len(), rec.received.len());
    // The invalid-UTF-8 line is reported, once, as a warning.
    assert!(f.stderr.contains("not valid UTF-8"), "stderr: {}", f.stderr);
}

#[tokio::test]
async fn lines_escape_policy() {
    let args = ["--newline-policy", "escape"];
    let (mut server, bridge) = incoming(&args, &lines_escape_expected()).await;
    let input = cat(&[
        b"a\\nb\\\\c\\rd\\0e\n",
        b"x\\qy\n",
        b"trail\\\n",
        b"cr\\r\n",
        b"\xff\\n\r\n",
        b"end",
    ]);
    let (f, rec) = outgoing(&mut server, bridge, &input).await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(
        rec.received,
        [
            text("a\nb\\c\rd\0e"),
            text("x\\qy"),
            text("trail\\"),
            text("cr\r"),
            bin(b"\xff\n"),
            text("end"),
        ]
    );
}

#[tokio::test]
async fn lines_keep_policy() {
    let args = ["--newline-policy", "keep"];
    let (mut server, bridge) = incoming(&args, &lines_keep_expected()).await;
    let (f, rec) = outgoing(&mut server, bridge, b"k1\nk2\r\n\\n\nk3").await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(
        rec.received,
        [text("k1"), text("k2"), text("\\n"), text("k3")]
    );
    assert_eq!(f.stderr, "");
}

#[tokio::test]
async fn nul_terminated() {
    let (mut server, bridge) = incoming(&["-0"], &nul_expected()).await;
    let input = b"a\0b\nc\0\0cr\r\0\xff\0tail";
    let (f, rec) = outgoing(&mut server, bridge, input).await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(
        rec.received,
        [
            text("a"),
            text("b\nc"),
            text(""),
            text("cr\r"),
            bin(b"\xff"),
            text("tail"),
        ]
    );
}

#[tokio::test]
async fn nul_via_framing_flag_with_escape() {
    let args = ["--framing", "nul", "--newline-policy", "escape"];
    let big = escaped(&big_in());
    let expected = cat(&[
        b"\0",
        b"hello\0",
        b"a\\nb\0",
        b"c\\r\\nd\0",
        b"nul\\0in\0",
        b"back\\\\slash\\\\n\0",
        UNICODE.as_bytes(),
        b"\0",
        b"\0",
        b"\\0\\n\xff\\r\\\\A\\0\0",
        &big,
        b"\0",
        b"last\0",
    ]);
    let (mut server, bridge) = incoming(&args, &expected).await;
    let (f, rec) = outgoing(&mut server, bridge, b"x\\0y\nz\0\\\\\0").await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(rec.received, [text("x\0y\nz"), text("\\")]);
}

/// Outgoing messages shared by the typed framings (webfs, length-prefixed).
fn typed_out() -> Vec<Msg> {
    vec![
        text("hello"),
        bin(b"\x00\n\xff"),
        text(""),
        bin(b""),
        Msg::Binary(big_in()),
        text("é\n€"),
        // A text frame that is not UTF-8 goes out as binary.
        bin(b"\xff\xfe"),
    ]
}

#[tokio::test]
async fn webfs() {
    let args = ["--framing", "webfs"];
    let (mut server, bridge) = incoming(&args, &webfs_expected()).await;
    let big = big_in();
    let input = cat(&[
        b"t 00000000000000000005hello",
        b"b 00000000000000000003\x00\n\xff",
        b"t 00000000000000000000",
        b"b 00000000000000000000",
        b"b 00000000000000071757",
        &big,
        b"t 00000000000000000006",
        "é\n€".as_bytes(),
        b"t 00000000000000000002\xff\xfe",
    ]);
    let (f, rec) = outgoing(&mut server, bridge, &input).await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(rec.received, typed_out());
}

#[tokio::test]
async fn webfs_ready_line() {
    let args = ["--framing", "webfs", "--ready-line"];
    let expected = cat(&[b"websocket ready\n", &webfs_expected()]);
    let (mut server, bridge) = incoming(&args, &expected).await;
    let (f, rec) = outgoing(&mut server, bridge, b"").await;
    assert_clean_end(&f, &rec, b"");
    assert!(rec.received.is_empty(), "{rec:?}");
}

#[tokio::test]
async fn length_prefixed() {
    let args = ["--framing", "length-prefixed"];
    let (mut server, bridge) = incoming(&args, &length_prefixed_expected()).await;
    let big = big_in();
    let input = cat(&[
        b"\x80\x00\x00\x05hello",
        b"\x00\x00\x00\x03\x00\n\xff",
        b"\x80\x00\x00\x00",
        b"\x00\x00\x00\x00",
        b"\x00\x01\x18\x4d",
        &big,
        b"\x80\x00\x00\x06",
        "é\n€".as_bytes(),
        b"\x80\x00\x00\x02\xff\xfe",
    ]);
    let (f, rec) = outgoing(&mut server, bridge, &input).await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(rec.received, typed_out());
}

#[tokio::test]
async fn jsonl() {
    let args = ["--framing", "jsonl"];
    let (mut server, bridge) = incoming(&args, &jsonl_expected(false)).await;
    let input = [
        r#"{"type":"text","data":"a\nb"}"#,
        r#"{"type":"binary","data":"AAr/"}"#,
        "",
        "   ",
        r#"{"data":"x","type":"text"}"#,
        r#"{"type":"text","data":"\u00e9\u20ac"}"#,
        r#"{"type":"text","data":""}"#,
        r#"{"type":"binary","data":""}"#,
        r#"{"type":"ping","data":"cA=="}"#,
        r#"{"type":"text","data":"end"}"#,
    ]
    .join("\n");
    let (f, rec) = outgoing(&mut server, bridge, input.as_bytes()).await;
    // Without --jsonl-events the pong to our ping is not reported; the close event is.
    assert_clean_end(&f, &rec, JSONL_CLOSE);
    assert_eq!(
        rec.received,
        [
            text("a\nb"),
            bin(b"\x00\n\xff"),
            text("x"),
            text("é€"),
            text(""),
            bin(b""),
            text("end"),
        ]
    );
    assert_eq!(f.stderr, "");
}

#[tokio::test]
async fn jsonl_events() {
    let args = ["--framing", "jsonl", "--jsonl-events"];
    let (mut server, bridge) = incoming(&args, &jsonl_expected(true)).await;
    let input = b"{\"type\":\"text\",\"data\":\"ev\"}\n{\"type\":\"ping\",\"data\":\"cA==\"}\n";
    let (f, rec) = outgoing(&mut server, bridge, input).await;
    // The peer's pong arrives before its Close.
    let trailer = cat(&[b"{\"type\":\"pong\",\"data\":\"cA==\"}\n", JSONL_CLOSE]);
    assert_clean_end(&f, &rec, &trailer);
    assert_eq!(rec.received, [text("ev")]);
}

/// A close event on stdin closes with its code and reason.
#[tokio::test]
async fn jsonl_close_event() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let input = b"{\"type\":\"text\",\"data\":\"one\"}\n\
        {\"type\":\"close\",\"code\":4002,\"reason\":\"jsonl bye\"}\n\
        {\"type\":\"text\",\"data\":\"after close\"}\n";
    let f = run(&["--framing", "jsonl", &url], input).await;
    let rec = server.record().await;
    assert_eq!(rec.received, [text("one")]);
    assert_eq!(rec.close, Some((4002, "jsonl bye".to_string())));
    // The peer answered our own Close with its code: that is the end we asked for, not an
    // abnormal close by the peer.
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_bytes(
        &f.stdout,
        b"{\"type\":\"close\",\"code\":4002,\"reason\":\"jsonl bye\"}\n",
        "stdout",
    );
}

#[tokio::test]
async fn raw_binary() {
    let (mut server, bridge) = incoming(&["-b"], &raw_expected()).await;
    let input = random_bytes(100 * 1024 + 3, 0x7a3e_0001);
    let (f, rec) = outgoing(&mut server, bridge, &input).await;
    assert_clean_end(&f, &rec, b"");
    // Raw keeps no boundaries: however the input was cut, it all arrives as binary, in order.
    let mut joined = Vec::new();
    for m in &rec.received {
        match m {
            Msg::Binary(d) => joined.extend_from_slice(d),
            other => panic!("raw sent a non-binary message: {other:?}"),
        }
    }
    assert_bytes(&joined, &input, "raw bytes at the server");
    assert_eq!(f.stderr, "");
}

#[tokio::test]
async fn lines_with_prefixes_and_base64() {
    let args = ["--text-prefix", "T:", "--binary-prefix", "B:", "--base64"];
    let (mut server, bridge) = incoming(&args, &prefixed_expected()).await;
    let big = big_in();
    let input = cat(&[
        b"T:hello\n",
        b"B:AAr/\n",
        b"plain\n",
        b"T:B:x\n",
        b"B:\n",
        b"B:  AAr/  \r\n",
        b"B:",
        b64(&big).as_bytes(),
        b"\n",
        b"T:",
    ]);
    let (f, rec) = outgoing(&mut server, bridge, &input).await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(
        rec.received,
        [
            text("hello"),
            bin(b"\x00\n\xff"),
            text("plain"),
            text("B:x"),
            bin(b""),
            bin(b"\x00\n\xff"),
            Msg::Binary(big),
            text(""),
        ]
    );
    assert_eq!(f.stderr, "");
}

#[tokio::test]
async fn lines_with_binary_prefix_only() {
    // Without --base64 a binary message is written as it is, newlines replaced (policy space).
    let args = ["--binary-prefix", "B:"];
    let big = spaced(&big_in(), b'\n');
    let expected = cat(&[
        b"\n",
        b"hello\n",
        b"a b\n",
        b"c\r d\n",
        b"nul\0in\n",
        b"back\\slash\\n\n",
        UNICODE.as_bytes(),
        b"\n",
        b"B:\n",
        b"B:\x00 \xff\r\\A\x00\n",
        b"B:",
        &big,
        b"\n",
        b"last\n",
    ]);
    let (mut server, bridge) = incoming(&args, &expected).await;
    let (f, rec) = outgoing(&mut server, bridge, b"B:bin\nB:\ntext\n").await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(rec.received, [bin(b"bin"), bin(b""), text("text")]);
}

// ---------------------------------------------------------------------------------------------
// Bad local input: exit 11, one error line, and the peer is told (1011 or 1009)

#[tokio::test]
async fn bad_input_is_refused() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    struct Case {
        args: &'static [&'static str],
        input: &'static [u8],
        needle: &'static str,
        close: (u16, &'static str),
        received: Vec<Msg>,
    }
    let bad = (1011, "bad local input");
    let long = (1009, "local message too long");
    let cases = [
        Case {
            args: &["--framing", "webfs"],
            input: b"t 0000000",
            needle: "input ended inside a message (9 bytes left over)",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "webfs"],
            input: b"t 00000000000000000002okx 00000000000000000001a",
            needle: "header must start with 't' or 'b'",
            close: bad,
            received: vec![text("ok")],
        },
        Case {
            args: &["--framing", "webfs"],
            input: b"t 0000000000000000000xab",
            needle: "20 digits",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "webfs"],
            input: b"t 00000000000000000009abc",
            needle: "input ended inside a message",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "length-prefixed"],
            input: b"\x80\x00\x00\x05hel",
            needle: "input ended inside a message (7 bytes left over)",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "length-prefixed"],
            input: b"\x00\x00",
            needle: "input ended inside a message (2 bytes left over)",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "length-prefixed", "--max-message-size", "16"],
            input: b"\x00\x00\x00\x02ok\x00\x00\x01\x00",
            needle: "longer than --max-message-size (16 bytes)",
            close: long,
            received: vec![bin(b"ok")],
        },
        Case {
            args: &["--framing", "jsonl"],
            input: b"{\"type\":\"text\",\"data\":\"ok\"}\nnot json\n",
            needle: "jsonl: not JSON",
            close: bad,
            received: vec![text("ok")],
        },
        Case {
            args: &["--framing", "jsonl"],
            input: b"{\"type\":\"text\",\"data\":\"ok\"}\n{\"type\":\"te",
            needle: "jsonl: not JSON",
            close: bad,
            received: vec![text("ok")],
        },
        Case {
            args: &["--framing", "jsonl"],
            input: b"{\"type\":\"nope\"}\n",
            needle: "unknown type \"nope\"",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "jsonl"],
            input: b"{\"type\":\"binary\",\"data\":\"!!\"}\n",
            needle: "\"data\" is not base64",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--framing", "jsonl"],
            input: b"{\"type\":\"close\",\"code\":1006}\n",
            needle: "close code 1006 may not be sent",
            close: bad,
            received: vec![],
        },
        Case {
            args: &["--binary-prefix", "B:", "--base64"],
            input: b"fine\nB:!!!\n",
            needle: "binary-prefixed line is not base64",
            close: bad,
            received: vec![text("fine")],
        },
        Case {
            args: &["--max-message-size", "10"],
            input: b"short\n0123456789abcdef\n",
            needle: "longer than --max-message-size (10 bytes)",
            close: long,
            received: vec![text("short")],
        },
        Case {
            args: &["--jsonrpc"],
            input: b"call {bad\n",
            needle: "JSON-RPC params",
            close: bad,
            received: vec![],
        },
    ];
    for case in cases {
        let what = format!(
            "{:?} {:?}",
            case.args,
            case.input.escape_ascii().to_string()
        );
        let f = run(&with_url(case.args, &url), case.input).await;
        let rec = server.record().await;
        assert_eq!(f.code, Some(11), "{what}: stderr: {}", f.stderr);
        assert_one_line_error(&f, case.needle);
        assert_eq!(rec.received, case.received, "{what}");
        assert_eq!(
            rec.close,
            Some((case.close.0, case.close.1.to_string())),
            "{what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Message limits, close code, fragmentation, JSON-RPC

/// -1: send one line, receive one message, exit 0 — although stdin stays open.
#[tokio::test]
async fn one_message_each_way() {
    let mut server = PyServer::start(&[], true).await;
    let url = server.url();
    let mut b = Bridge::spawn(&["-1", &url]);
    b.write_stdin(b"first\nsecond\n").await;
    let _stdin_open = b.stdin.take();
    let f = b.finish().await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_bytes(&f.stdout, b"re: first\n", "stdout");
    assert_eq!(rec.received, [text("first")]);
    assert_eq!(rec.close, Some((1000, String::new())));
}

#[tokio::test]
async fn max_messages_rev_two() {
    // Pings are not messages: they do not count.
    let script = [
        Msg::Ping(b"p".to_vec()),
        text("one"),
        Msg::Ping(b"q".to_vec()),
        text("two"),
        text("three"),
    ];
    let mut server = PyServer::start(&script, false).await;
    let url = server.url();
    let mut b = Bridge::spawn(&["--max-messages-rev", "2", &url]);
    // stdin stays open: reaching the limit alone ends the session.
    let _stdin_open = b.stdin.take();
    let f = b.finish().await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_bytes(&f.stdout, b"one\ntwo\n", "stdout");
    assert!(rec.received.is_empty(), "{rec:?}");
    assert_eq!(rec.close, Some((1000, String::new())));
}

#[tokio::test]
async fn max_messages_two() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let mut b = Bridge::spawn(&["--max-messages", "2", &url]);
    b.write_stdin(b"1\n2\n3\n").await;
    let _stdin_open = b.stdin.take();
    let f = b.finish().await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(rec.received, [text("1"), text("2")]);
    assert_eq!(rec.close, Some((1000, String::new())));
}

#[tokio::test]
async fn close_code_and_reason() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let f = run(
        &["--close-code", "4001", "--close-reason", "bye", &url],
        b"x\n",
    )
    .await;
    let rec = server.record().await;
    assert_eq!(rec.received, [text("x")]);
    assert_eq!(rec.close, Some((4001, "bye".to_string())));
    // The peer echoing the code we chose is the end we asked for: exit 0, not 8.
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
}

#[tokio::test]
async fn max_frame_size_fragments_outgoing_messages() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let line: Vec<u8> = (0..5000).map(|i| b'a' + (i % 26) as u8).collect();
    let input = cat(&[&line, b"\nshort\n"]);
    let f = run(&["--max-frame-size", "1KiB", &url], &input).await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(rec.received, [Msg::Text(line), text("short")]);
    let frame = |opcode: &str, fin, len| Frame {
        opcode: opcode.to_string(),
        fin,
        len,
    };
    assert_eq!(
        rec.frames,
        [
            frame("TEXT", false, 1024),
            frame("CONT", false, 1024),
            frame("CONT", false, 1024),
            frame("CONT", false, 1024),
            frame("CONT", true, 904),
            frame("TEXT", true, 5),
        ]
    );

    // Binary too (length-prefixed, so the message is one, whatever the reads).
    let data = random_bytes(3000, 0xf4a9);
    let input = cat(&[&3000u32.to_be_bytes(), &data]);
    let f = run(
        &[
            "--framing",
            "length-prefixed",
            "--max-frame-size",
            "1KiB",
            &url,
        ],
        &input,
    )
    .await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(rec.received, [Msg::Binary(data)]);
    assert_eq!(
        rec.frames,
        [
            frame("BINARY", false, 1024),
            frame("CONT", false, 1024),
            frame("CONT", true, 952),
        ]
    );
}

#[tokio::test]
async fn jsonrpc_calls() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let input =
        b"add 1 2\n\nPage.navigate {\"url\":\"http://x/\"}\nhello world [1] {\"a\":true}\nping\n";
    let f = run(&["--jsonrpc", &url], input).await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(
        rec.received,
        [
            text(r#"{"jsonrpc":"2.0","id":1,"method":"add","params":[1,2]}"#),
            text(
                r#"{"jsonrpc":"2.0","id":2,"method":"Page.navigate","params":{"url":"http://x/"}}"#
            ),
            text(r#"{"jsonrpc":"2.0","id":3,"method":"hello","params":["world",[1],{"a":true}]}"#),
            text(r#"{"jsonrpc":"2.0","id":4,"method":"ping","params":[]}"#),
        ]
    );
    assert_eq!(rec.close, Some((1000, String::new())));
}

#[tokio::test]
async fn lines_with_base64_only() {
    // --base64 without a binary prefix: incoming binary messages are base64 lines; outgoing
    // lines are not decoded (nothing marks them as binary).
    let big = format!("{}\n", b64(&big_in()));
    let expected = cat(&[
        b"\n",
        b"hello\n",
        b"a b\n",
        b"c\r d\n",
        b"nul\0in\n",
        b"back\\slash\\n\n",
        UNICODE.as_bytes(),
        b"\n",
        b"\n",
        b"AAr/DVxBAA==\n",
        big.as_bytes(),
        b"last\n",
    ]);
    let (mut server, bridge) = incoming(&["--base64"], &expected).await;
    let (f, rec) = outgoing(&mut server, bridge, b"AAr/\n").await;
    assert_clean_end(&f, &rec, b"");
    assert_eq!(rec.received, [text("AAr/")]);
}

#[tokio::test]
async fn split_long_lines() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let ascii: Vec<u8> = (0..2500).map(|i| b'a' + (i % 26) as u8).collect();
    let euros = "€".repeat(400);
    let input = cat(&[&ascii, b"\n", euros.as_bytes(), b"\nok\n"]);
    let args = ["--max-message-size", "1KiB", "--split-long", &url];
    let f = run(&args, &input).await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(
        rec.received,
        [
            Msg::Text(ascii[..1024].to_vec()),
            Msg::Text(ascii[1024..2048].to_vec()),
            Msg::Text(ascii[2048..].to_vec()),
            // Text is cut on character boundaries: 341 euro signs are 1023 bytes.
            text(&"€".repeat(341)),
            text(&"€".repeat(59)),
            text("ok"),
        ]
    );
}

#[tokio::test]
async fn raw_reads_are_cut_at_the_message_limit() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let input = random_bytes(5000, 0x51ce);
    let f = run(&["-b", "--max-message-size", "1KiB", &url], &input).await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    let mut joined = Vec::new();
    for m in &rec.received {
        match m {
            Msg::Binary(d) if d.len() <= 1024 => joined.extend_from_slice(d),
            other => panic!("expected binary messages of at most 1 KiB, got {other:?}"),
        }
    }
    assert_bytes(&joined, &input, "raw bytes at the server");
}

/// The limit is on the message, not on its escaped form: a line of 30 escaped newlines (60
/// bytes) is a 30-byte message, within --max-message-size 30 — whatever other line options are
/// given.
#[tokio::test]
async fn escaped_line_at_the_limit_is_accepted() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let line = cat(&[&b"\\n".repeat(30), b"\n"]);
    for extra in [
        &[][..],
        &["--binary-prefix", "B:", "--base64"][..],
        &["--text-prefix", "T:"][..],
    ] {
        let mut args = vec!["--newline-policy", "escape", "--max-message-size", "30"];
        args.extend_from_slice(extra);
        args.push(&url);
        let f = run(&args, &line).await;
        let rec = server.record().await;
        assert_eq!(f.code, Some(0), "{args:?}: stderr: {}", f.stderr);
        assert_eq!(rec.received, [text(&"\n".repeat(30))], "{args:?}");
    }
}

/// jsonl: a message at --max-message-size is accepted however much its JSON form is escaped.
/// wsbridge itself writes NUL as `\u0000` (6 bytes), so its own jsonl output of such a message
/// must be valid jsonl input under the same limit.
#[tokio::test]
async fn jsonl_message_at_the_limit_is_accepted() {
    let mut server = PyServer::start(&[], false).await;
    let url = server.url();
    let line = format!(
        "{{\"type\":\"text\",\"data\":\"{}\"}}\n",
        "\\u0000".repeat(1000)
    );
    let args = ["--framing", "jsonl", "--max-message-size", "1000", &url];
    let f = run(&args, line.as_bytes()).await;
    let rec = server.record().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(rec.received, [Msg::Text(vec![0; 1000])]);
}

/// An incoming message over --max-message-size, or a frame over --max-frame-size: Close 1009 to
/// the peer, exit 9; what came before is delivered.
#[tokio::test]
async fn incoming_over_the_limits() {
    let mut server = PyServer::start(&[text("ok"), Msg::Binary(big_in())], false).await;
    let url = server.url();
    for limit in ["--max-message-size", "--max-frame-size"] {
        let mut b = Bridge::spawn(&[limit, "64KiB", &url]);
        // stdin stays open: the session ends because of the message alone.
        let _stdin_open = b.stdin.take();
        let f = b.finish().await;
        let rec = server.record().await;
        assert_eq!(f.code, Some(9), "{limit}: stderr: {}", f.stderr);
        assert_bytes(&f.stdout, b"ok\n", limit);
        assert_eq!(rec.close.map(|c| c.0), Some(1009), "{limit}");
        assert_one_line_error(&f, "");
    }
}
