//! The WebSocket server (`ws-listen:` / `wss-listen:`) against a third-party client: Python
//! `websockets` driven by a script (tests/peers/ws_client.py), in front of every kind of backend
//! (TCP, mirror:, broadcast:, exec:/sh-c:, a ws:// upstream), over TLS and mutual TLS, and the
//! handshake refusals with their HTTP statuses.
//!
//! The client prints one line per event (`open …`, `text "…"`, `binary HEX`, `close CODE "…"`,
//! `refused STATUS`, …) and each test compares the whole output exactly.

use std::path::Path;
use std::process::Stdio;

use crate::harness::pki::Pki;
use crate::harness::servers::{self, Ws};
use crate::harness::{Bridge, LIMIT, peers};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

// ---------------------------------------------------------------------------------------------
// The script the Python client runs, and the lines it prints.

/// Steps for ws_client.py, built as its JSON list.
#[derive(Default, Clone)]
struct Script(Vec<String>);

impl Script {
    fn new() -> Script {
        Script::default()
    }

    fn step(mut self, step: String) -> Script {
        self.0.push(step);
        self
    }

    fn text(self, s: &str) -> Script {
        self.step(format!(r#"["text",{}]"#, json(s)))
    }

    fn binary(self, b: &[u8]) -> Script {
        self.step(format!(r#"["binary","{}"]"#, hex(b)))
    }

    /// Send `n` bytes of the fixed pattern (see `pattern`) as one message.
    fn pattern(self, binary: bool, n: usize) -> Script {
        let kind = if binary { "binary" } else { "text" };
        self.step(format!(r#"["pattern","{kind}",{n}]"#))
    }

    fn recv(self, n: usize) -> Script {
        self.step(format!(r#"["recv",{n}]"#))
    }

    fn recv_until(self, s: &str) -> Script {
        self.step(format!(r#"["recv_until",{}]"#, json(s)))
    }

    /// Receive binary messages until `n` bytes, compared with `pattern(true, n)`.
    fn recv_pattern(self, n: usize) -> Script {
        self.step(format!(r#"["recv_pattern",{n}]"#))
    }

    fn recv_close(self) -> Script {
        self.step(r#"["recv_close"]"#.into())
    }

    fn close(self, code: u16, reason: &str) -> Script {
        self.step(format!(r#"["close",{code},{}]"#, json(reason)))
    }

    fn local_port(self) -> Script {
        self.step(r#"["local"]"#.into())
    }

    fn say(self, word: &str) -> Script {
        self.step(format!(r#"["say",{}]"#, json(word)))
    }

    /// Wait for `PyRun::go`.
    fn wait(self) -> Script {
        self.step(r#"["wait"]"#.into())
    }

    fn to_json(&self) -> String {
        format!("[{}]", self.0.join(","))
    }
}

/// A JSON string literal, escaped the way Python's `json.dumps(ensure_ascii=True)` does.
fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// ws_client.py's `pattern` step: byte i is (i * 31 + 7) % 256, or for text chr(97 + i % 26).
fn pattern(binary: bool, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if binary {
                ((i * 31 + 7) % 256) as u8
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect()
}

// The lines ws_client.py prints.

fn open(protocol: Option<&str>) -> String {
    format!(
        "open {}",
        protocol.map(json).unwrap_or_else(|| "null".into())
    )
}

fn text(s: &str) -> String {
    format!("text {}", json(s))
}

fn binary(b: &[u8]) -> String {
    format!("binary {}", hex(b))
}

/// The server's Close arrived.
fn close(code: u16, reason: &str) -> String {
    format!("close {code} {}", json(reason))
}

/// The client's Close was answered with this one.
fn closed(code: u16, reason: &str) -> String {
    format!("closed {code} {}", json(reason))
}

fn refused(status: u16) -> String {
    format!("refused {status}")
}

fn say(word: &str) -> String {
    format!("say {word}")
}

// ---------------------------------------------------------------------------------------------
// Running the Python client.

/// A ws_client.py command line.
#[derive(Clone)]
struct Py {
    args: Vec<String>,
}

impl Py {
    fn new(url: &str) -> Py {
        Py {
            args: vec![url.to_string()],
        }
    }

    fn arg(mut self, flag: &str, value: impl AsRef<Path>) -> Py {
        self.args.push(flag.to_string());
        self.args
            .push(value.as_ref().to_str().expect("utf8").to_string());
        self
    }

    fn header(self, h: &str) -> Py {
        self.arg("--header", h)
    }

    fn origin(self, o: &str) -> Py {
        self.arg("--origin", o)
    }

    fn subprotocol(self, p: &str) -> Py {
        self.arg("--subprotocol", p)
    }

    fn ca(self, pem: &Path) -> Py {
        self.arg("--cafile", pem)
    }

    /// Make the TCP connection at once (printing `tcp connected`), but send the upgrade request
    /// only on `PyRun::go`.
    fn preconnect(mut self) -> Py {
        self.args.push("--preconnect".into());
        self
    }

    fn client_cert(self, cert: &Path, key: &Path) -> Py {
        self.arg("--certfile", cert).arg("--keyfile", key)
    }

    fn spawn(&self, script: &Script) -> PyRun {
        let path = peers::script("ws_client.py");
        let mut child = Command::new(peers::python())
            .arg(&path)
            .args(&self.args)
            .arg("--script")
            .arg(script.to_json())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {path:?}: {e}"));
        let mut stderr = child.stderr.take().expect("stderr piped");
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        PyRun {
            stdin: child.stdin.take(),
            lines: BufReader::new(child.stdout.take().expect("stdout piped")).lines(),
            child,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Run `script` to the end; the printed lines.
    async fn run(&self, script: &Script) -> Vec<String> {
        self.spawn(script).finish().await
    }
}

/// A running ws_client.py.
struct PyRun {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    seen: Vec<String>,
}

impl PyRun {
    /// Read output until the line `want` (bounded).
    async fn until(&mut self, want: &str) {
        let found = tokio::time::timeout(LIMIT, async {
            while let Some(line) = self.lines.next_line().await.expect("read client stdout") {
                self.seen.push(line.clone());
                if line == want {
                    return true;
                }
            }
            false
        })
        .await;
        match found {
            Ok(true) => {}
            Ok(false) => panic!("client ended without {want:?}; printed {:?}", self.seen),
            Err(_) => panic!(
                "no {want:?} from the client in time; printed {:?}",
                self.seen
            ),
        }
    }

    /// Let a `wait` step go on.
    async fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(b"go\n").await.expect("write client stdin");
        stdin.flush().await.expect("flush client stdin");
    }

    /// Wait for the client to finish; everything it printed. It must exit 0.
    async fn finish(mut self) -> Vec<String> {
        tokio::time::timeout(LIMIT, async {
            while let Some(line) = self.lines.next_line().await.expect("read client stdout") {
                self.seen.push(line);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("client did not finish in time; printed {:?}", self.seen));
        let status = tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("client did not exit in time")
            .expect("wait for client");
        let stderr = tokio::time::timeout(LIMIT, self.stderr)
            .await
            .expect("client stderr did not end")
            .expect("stderr task");
        assert_eq!(
            status.code(),
            Some(0),
            "client printed {:?}; stderr: {stderr}",
            self.seen
        );
        self.seen
    }
}

/// Stop a listening wsbridge with SIGTERM: it exits 0.
async fn stop(b: Bridge) {
    b.signal("TERM");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
}

// ---------------------------------------------------------------------------------------------
// In-test backends.

/// A TCP server that answers every line with the line in upper case; EOF ends the connection.
async fn uppercase_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = format!("{}\n", line.to_uppercase());
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

// ---------------------------------------------------------------------------------------------
// 1. ws-listen: -> tcp:

#[tokio::test]
async fn tcp_backend_answers_each_client_line_by_line() {
    let port = uppercase_server().await;
    let tcp = format!("tcp:127.0.0.1:{port}");
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", &tcp]);
    let url = b.listening().await;
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");

    // Two clients at once, each with its own TCP connection.
    let one = Py::new(&url).spawn(
        &Script::new()
            .text("hello")
            .text("wsbridge server")
            .recv(2)
            .close(1000, ""),
    );
    let two = Py::new(&url).spawn(&Script::new().text("second client").recv(1).close(1000, ""));
    let (one, two) = tokio::join!(one.finish(), two.finish());
    assert_eq!(
        one,
        [
            open(None),
            text("HELLO"),
            text("WSBRIDGE SERVER"),
            closed(1000, "")
        ]
    );
    assert_eq!(two, [open(None), text("SECOND CLIENT"), closed(1000, "")]);
    stop(b).await;
}

/// `--threads 3`: the sessions run on three threads of their own, named `wsbridge-0` to
/// `wsbridge-2`; six Python clients at once, spread over them, each get their own answers.
#[tokio::test]
async fn sessions_run_on_the_threads_asked_for() {
    let port = uppercase_server().await;
    let tcp = format!("tcp:127.0.0.1:{port}");
    let mut b = Bridge::spawn(&["--threads", "3", "ws-listen:127.0.0.1:0", &tcp]);
    let url = b.listening().await;
    let pid = b.child.id().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("wsbridge-"))
        .collect();
    names.sort();
    assert_eq!(names, ["wsbridge-0", "wsbridge-1", "wsbridge-2"]);
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let script = Script::new()
                .text(&format!("client {i}"))
                .recv(1)
                .close(1000, "");
            Py::new(&url).spawn(&script)
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let want = format!("CLIENT {i}");
        assert_eq!(
            c.finish().await,
            [open(None), text(&want), closed(1000, "")]
        );
    }
    stop(b).await;
}

/// A TCP server that sends `data` in writes of `chunk` bytes to each client, then closes.
async fn source_server(data: Vec<u8>, chunk: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = std::sync::Arc::new(data);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let data = data.clone();
            tokio::spawn(async move {
                for piece in data.chunks(chunk) {
                    if tcp.write_all(piece).await.is_err() {
                        return;
                    }
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

/// Bulk from a TCP backend to the client (the server's send path writes large payloads
/// without copying them): every byte arrives in order, then the Close for the backend's EOF.
#[tokio::test]
async fn tcp_backend_bulk_reaches_the_client_intact() {
    let n = 6 * 1024 * 1024 + 4321;
    // Mixed write sizes: small pieces (copied) and large ones (sent from their own buffer).
    let port = source_server(pattern(true, n), 50_000).await;
    let tcp = format!("tcp:127.0.0.1:{port}");
    let mut b = Bridge::spawn(&["-b", "ws-listen:127.0.0.1:0", &tcp]);
    let url = b.listening().await;
    let out = Py::new(&url)
        .run(&Script::new().recv_pattern(n).recv_close())
        .await;
    assert_eq!(
        out,
        [open(None), format!("pattern {n} ok"), close(1000, "")]
    );
    stop(b).await;
}

/// A TCP server that reads one line from each client, then resets the connection (SO_LINGER 0:
/// an RST, not a FIN), as a crashing or overloaded backend does.
async fn resetting_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut lines = BufReader::new(tcp);
                let mut line = String::new();
                let _ = lines.read_line(&mut line).await;
                let tcp = lines.into_inner();
                tcp.set_zero_linger().expect("SO_LINGER 0");
                drop(tcp);
            });
        }
    });
    port
}

/// A backend that resets mid-session: the client is told with Close 1011 "backend reset" (not
/// 1001 "going away"), and the log has a warning naming the backend.
#[tokio::test]
async fn backend_reset_mid_session_gives_the_client_1011_and_a_warning() {
    let port = resetting_server().await;
    let tcp = format!("tcp:127.0.0.1:{port}");
    let mut b = Bridge::spawn(&["-b", "ws-listen:127.0.0.1:0", &tcp]);
    let url = b.listening().await;
    let out = Py::new(&url)
        .run(&Script::new().text("hello\n").recv_close())
        .await;
    assert_eq!(out, [open(None), close(1011, "backend reset")]);
    let warning = b
        .stderr_contains(&format!(
            "backend tcp:127.0.0.1:{port}: peer closed abnormally"
        ))
        .await;
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("Close 1011"), "{warning}");
    stop(b).await;
}

// 2. ws-listen: -> mirror:

#[tokio::test]
async fn mirror_returns_every_message_with_its_type() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "mirror:"]);
    let url = b.listening().await;
    const BIG: usize = 200 * 1024;
    let lines = Py::new(&url)
        .run(
            &Script::new()
                .text("hello")
                .text("")
                .binary(b"")
                .binary(&[0x00, 0xff, 0x80, 0x0a])
                .text("h\u{e9}llo \u{2713} \"quoted\"\n")
                .pattern(true, BIG)
                .pattern(false, BIG)
                .text("last")
                .recv(8)
                .close(1000, "done"),
        )
        .await;
    let big_text = String::from_utf8(pattern(false, BIG)).unwrap();
    assert_eq!(
        lines,
        [
            open(None),
            text("hello"),
            text(""),
            binary(b""),
            binary(&[0x00, 0xff, 0x80, 0x0a]),
            text("h\u{e9}llo \u{2713} \"quoted\"\n"),
            binary(&pattern(true, BIG)),
            text(&big_text),
            text("last"),
            closed(1000, "done"),
        ]
    );
    stop(b).await;
}

// 3. ws-listen: -> broadcast:

#[tokio::test]
async fn broadcast_room_per_path_reaches_every_other_member_in_order() {
    const N: usize = 20;
    let mut b = Bridge::spawn(&["-v", "ws-listen:127.0.0.1:0", "broadcast:"]);
    let base = b.listening().await;
    let room = format!("{base}room");
    let other = format!("{base}other");

    // Another room first: X listens until Y's "end"; anything from the first room would reach
    // X before that (a broadcast is queued to every member at once).
    let x = Py::new(&other).spawn(&Script::new().recv_until("end").close(1000, ""));
    let mut y = Py::new(&other).spawn(&Script::new().wait().text("end").close(1000, ""));
    b.stderr_contains("joined (2 members)").await;

    let members = ["A", "B", "C"];
    let mut runs = Vec::new();
    for name in members {
        let mut script = Script::new().wait();
        for i in 1..=N {
            script = script.text(&format!("{name}-{i}"));
        }
        runs.push(Py::new(&room).spawn(&script.recv((members.len() - 1) * N).close(1000, "")));
    }
    // Everyone is in the room before anyone speaks.
    b.stderr_contains("joined (3 members)").await;
    for r in &mut runs {
        r.go().await;
    }
    let mut outputs = Vec::new();
    for r in runs {
        outputs.push(r.finish().await);
    }
    for (name, lines) in members.iter().zip(&outputs) {
        assert_eq!(lines.len(), 2 * N + 2, "{name}: {lines:?}");
        assert_eq!(lines[0], open(None), "{name}");
        assert_eq!(lines[2 * N + 1], closed(1000, ""), "{name}");
        for from in members {
            let got: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("text \"{from}-")))
                .collect();
            let want: Vec<String> = if from == *name {
                Vec::new()
            } else {
                (1..=N).map(|i| text(&format!("{from}-{i}"))).collect()
            };
            assert_eq!(got, want.iter().collect::<Vec<_>>(), "{name} from {from}");
        }
    }

    y.go().await;
    assert_eq!(y.finish().await, [open(None), closed(1000, "")]);
    assert_eq!(
        x.finish().await,
        [open(None), text("end"), closed(1000, "")]
    );
    stop(b).await;
}

// 4. ws-listen: -> exec: / sh-c:

#[tokio::test]
async fn exec_cat_echoes_lines() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "exec:cat"]);
    let url = b.listening().await;
    let lines = Py::new(&url)
        .run(
            &Script::new()
                .text("one")
                .text("two words")
                .recv(2)
                .text("three")
                .recv(1)
                .close(1000, ""),
        )
        .await;
    assert_eq!(
        lines,
        [
            open(None),
            text("one"),
            text("two words"),
            text("three"),
            closed(1000, "")
        ]
    );
    stop(b).await;
}

#[tokio::test]
async fn sh_c_child_gets_the_request_as_cgi_environment() {
    let mut b = Bridge::spawn(&[
        "--pass-header",
        "X-Test",
        "ws-listen:127.0.0.1:0",
        r#"sh-c:printf '%s\n' "$REMOTE_ADDR" "$REMOTE_PORT" "$REQUEST_URI" "$PATH_INFO" "$QUERY_STRING" "$HTTP_X_TEST" "${HTTP_X_OTHER-unset}"; cat"#,
    ]);
    let base = b.listening().await;
    let url = format!("{base}app/x?a=1&b=two");
    let lines = Py::new(&url)
        .header("X-Test: hello there")
        .header("X-Other: not passed")
        .run(
            &Script::new()
                .local_port()
                .recv(7)
                .text("after the environment")
                .recv(1)
                .close(1000, ""),
        )
        .await;
    assert!(
        lines.len() > 2 && lines[1].starts_with("local "),
        "{lines:?}"
    );
    let port = lines[1].strip_prefix("local ").unwrap();
    assert_eq!(
        lines,
        [
            open(None),
            format!("local {port}"),
            text("127.0.0.1"),
            text(port),
            text("/app/x?a=1&b=two"),
            text("/app/x"),
            text("a=1&b=two"),
            text("hello there"),
            text("unset"),
            text("after the environment"),
            closed(1000, ""),
        ]
    );
    stop(b).await;
}

#[tokio::test]
async fn child_exit_status_decides_the_close_code() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "sh-c:echo hi"]);
    let url = b.listening().await;
    let lines = Py::new(&url).run(&Script::new().recv_close()).await;
    assert_eq!(lines, [open(None), text("hi"), close(1000, "")]);
    stop(b).await;

    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "sh-c:echo bye; exit 3"]);
    let url = b.listening().await;
    let lines = Py::new(&url).run(&Script::new().recv_close()).await;
    assert_eq!(
        lines,
        [
            open(None),
            text("bye"),
            close(1011, "program exit status: 3")
        ]
    );
    stop(b).await;
}

// 5. wss-listen: and mutual TLS

#[tokio::test]
async fn wss_listen_serves_a_client_trusting_the_test_ca() {
    let pki = Pki::for_hosts(&["localhost", "127.0.0.1"]);
    let (cert, key) = (pki.arg("server.pem"), pki.arg("server.key"));
    let mut b = Bridge::spawn(&[
        "wss-listen:127.0.0.1:0",
        "mirror:",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let url = b.listening().await;
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let script = Script::new()
        .text("over TLS")
        .binary(&[1, 2, 3])
        .recv(2)
        .close(1000, "");
    let lines = Py::new(&url).ca(&pki.path("ca.pem")).run(&script).await;
    assert_eq!(
        lines,
        [
            open(None),
            text("over TLS"),
            binary(&[1, 2, 3]),
            closed(1000, "")
        ]
    );

    // A client that does not trust the CA gives up in the TLS handshake.
    let lines = Py::new(&url).run(&script).await;
    assert!(
        lines.len() == 1 && lines[0].starts_with("failed SSLCertVerificationError"),
        "{lines:?}"
    );
    stop(b).await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::for_hosts(&["localhost", "127.0.0.1"]);
    let (cert, key, ca) = (
        pki.arg("server.pem"),
        pki.arg("server.key"),
        pki.arg("ca.pem"),
    );
    let mut b = Bridge::spawn(&[
        "wss-listen:127.0.0.1:0",
        "mirror:",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
    ]);
    let url = b.listening().await;
    let script = Script::new().text("mutual").recv(1).close(1000, "");
    let trusted = Py::new(&url).ca(&pki.path("ca.pem"));
    let accepted = [open(None), text("mutual"), closed(1000, "")];

    let with_cert = trusted
        .clone()
        .client_cert(&pki.path("client.pem"), &pki.path("client.key"));
    assert_eq!(with_cert.run(&script).await, accepted);

    let lines = trusted.run(&script).await;
    assert!(
        lines.len() == 1 && lines[0].starts_with("failed "),
        "no client certificate: {lines:?}"
    );

    let stranger = trusted
        .clone()
        .client_cert(&pki.path("stranger.pem"), &pki.path("stranger.key"));
    let lines = stranger.run(&script).await;
    assert!(
        lines.len() == 1 && lines[0].starts_with("failed "),
        "certificate from another CA: {lines:?}"
    );

    // Refused handshakes do not take the listener down.
    assert_eq!(with_cert.run(&script).await, accepted);
    stop(b).await;
}

// 6. Handshake refusals

/// Open, exchange one message and close: the lines of an accepted client.
fn accepted_script() -> Script {
    Script::new().text("in").recv(1).close(1000, "")
}

fn accepted_lines(protocol: Option<&str>) -> Vec<String> {
    vec![open(protocol), text("in"), closed(1000, "")]
}

#[tokio::test]
async fn server_protocol_selects_an_offered_subprotocol_or_refuses_with_400() {
    let mut b = Bridge::spawn(&[
        "--server-protocol",
        "chat.v2,chat.v1",
        "ws-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let url = b.listening().await;
    let s = accepted_script();

    let v1 = Py::new(&url).subprotocol("chat.v1").run(&s).await;
    assert_eq!(v1, accepted_lines(Some("chat.v1")));

    let mixed = Py::new(&url)
        .subprotocol("other.v9")
        .subprotocol("chat.v2")
        .run(&s)
        .await;
    assert_eq!(mixed, accepted_lines(Some("chat.v2")));

    let other = Py::new(&url).subprotocol("other.v9").run(&s).await;
    assert_eq!(other, [refused(400)]);

    let none = Py::new(&url).run(&s).await;
    assert_eq!(none, accepted_lines(None));
    stop(b).await;
}

#[tokio::test]
async fn origin_allow_refuses_other_origins_with_403() {
    let mut b = Bridge::spawn(&[
        "--origin-allow",
        "http://good.test",
        "ws-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let url = b.listening().await;
    let s = accepted_script();
    let evil = Py::new(&url).origin("http://evil.test").run(&s).await;
    assert_eq!(evil, [refused(403)]);
    let missing = Py::new(&url).run(&s).await;
    assert_eq!(missing, [refused(403)]);
    let good = Py::new(&url).origin("http://good.test").run(&s).await;
    assert_eq!(good, accepted_lines(None));
    stop(b).await;
}

#[tokio::test]
async fn auth_token_file_refuses_wrong_or_missing_tokens_with_401() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cr3t-t0ken\n").unwrap();
    let file = file.to_str().unwrap();
    let mut b = Bridge::spawn(&[
        "--auth-token-file",
        file,
        "ws-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let url = b.listening().await;
    let s = accepted_script();
    for h in [
        None,
        Some("Authorization: Bearer wrong-token"),
        Some("Authorization: Bearer s3cr3t-t0ke"),
        Some("Authorization: Basic s3cr3t-t0ken"),
    ] {
        let py = match h {
            Some(h) => Py::new(&url).header(h),
            None => Py::new(&url),
        };
        assert_eq!(py.run(&s).await, [refused(401)], "{h:?}");
    }
    let right = Py::new(&url)
        .header("Authorization: Bearer s3cr3t-t0ken")
        .run(&s)
        .await;
    assert_eq!(right, accepted_lines(None));
    stop(b).await;
}

#[tokio::test]
async fn require_header_refuses_clients_without_it_with_401() {
    let mut b = Bridge::spawn(&[
        "--require-header",
        "X-Key: abc",
        "ws-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let url = b.listening().await;
    let s = accepted_script();
    assert_eq!(Py::new(&url).run(&s).await, [refused(401)]);
    let wrong = Py::new(&url).header("X-Key: abcd").run(&s).await;
    assert_eq!(wrong, [refused(401)]);
    let right = Py::new(&url).header("X-Key: abc").run(&s).await;
    assert_eq!(right, accepted_lines(None));
    stop(b).await;
}

#[tokio::test]
async fn max_conns_refuses_a_second_concurrent_client_with_503() {
    let mut b = Bridge::spawn(&["--max-conns", "1", "ws-listen:127.0.0.1:0", "mirror:"]);
    let url = b.listening().await;
    // The first client's echo proves its session is running before the second one comes.
    let mut first = Py::new(&url).spawn(
        &Script::new()
            .text("one")
            .recv(1)
            .say("ready")
            .wait()
            .close(1000, ""),
    );
    first.until(&say("ready")).await;
    let second = Py::new(&url).run(&accepted_script()).await;
    assert_eq!(second, [refused(503)]);
    first.go().await;
    assert_eq!(
        first.finish().await,
        [open(None), text("one"), say("ready"), closed(1000, "")]
    );
    // The first session is over (its connection is closed): there is room again.
    let third = Py::new(&url).run(&accepted_script()).await;
    assert_eq!(third, accepted_lines(None));
    stop(b).await;
}

#[tokio::test]
async fn max_conns_counts_sessions_when_the_upgrade_arrives() {
    let mut b = Bridge::spawn(&["--max-conns", "1", "ws-listen:127.0.0.1:0", "mirror:"]);
    let url = b.listening().await;
    // The late client's TCP connection is accepted while nothing runs; it sends its upgrade
    // request only once the first client's session is running, so it is one too many.
    let mut late = Py::new(&url).preconnect().spawn(&accepted_script());
    late.until("tcp connected").await;
    let mut first = Py::new(&url).spawn(
        &Script::new()
            .text("one")
            .recv(1)
            .say("ready")
            .wait()
            .close(1000, ""),
    );
    first.until(&say("ready")).await;
    late.go().await;
    assert_eq!(
        late.finish().await,
        ["tcp connected".to_string(), refused(503)]
    );
    first.go().await;
    assert_eq!(
        first.finish().await,
        [open(None), text("one"), say("ready"), closed(1000, "")]
    );
    stop(b).await;
}

#[tokio::test]
async fn listener_path_accepts_upgrades_only_there() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0/chat", "mirror:"]);
    let url = b.listening().await;
    assert!(url.ends_with("/chat"), "{url}");
    let root = url.strip_suffix("chat").unwrap();
    let s = accepted_script();
    let other = Py::new(&format!("{root}other")).run(&s).await;
    assert_eq!(other, [refused(404)]);
    let sub = Py::new(&format!("{url}/sub")).run(&s).await;
    assert_eq!(sub, [refused(404)]);
    assert_eq!(Py::new(&url).run(&s).await, accepted_lines(None));
    let query = Py::new(&format!("{url}?room=1")).run(&s).await;
    assert_eq!(query, accepted_lines(None));
    stop(b).await;
}

// 7. WebSocket <-> WebSocket

#[tokio::test]
async fn ws_upstream_keeps_types_close_codes_and_passed_headers() {
    // Echoes data; "please close" makes it close with 4001; reports the Close frames it gets.
    let (closes_tx, mut closes) = tokio::sync::mpsc::unbounded_channel();
    let mut upstream = servers::serve(move |mut ws: Ws| {
        let closes_tx = closes_tx.clone();
        async move {
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Text(t) if t.as_str() == "please close" => {
                        let frame = CloseFrame {
                            code: CloseCode::from(4001),
                            reason: "bye now".into(),
                        };
                        let _ = ws.close(Some(frame)).await;
                    }
                    Message::Close(f) => {
                        let _ =
                            closes_tx.send(f.map(|f| (u16::from(f.code), f.reason.to_string())));
                    }
                    m @ (Message::Text(_) | Message::Binary(_)) => {
                        let sent = ws.send(m).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    })
    .await;
    let mut b = Bridge::spawn(&[
        "--pass-header",
        "Authorization",
        "ws-listen:127.0.0.1:0",
        &upstream.url(),
    ]);
    let base = b.listening().await;
    let lines = Py::new(&format!("{base}client/path"))
        .header("Authorization: Bearer abc.def")
        .header("X-Other: stays here")
        .run(
            &Script::new()
                .text("hi")
                .binary(&[1, 2, 0xff])
                .text("")
                .binary(b"")
                .recv(4)
                .text("please close")
                .recv_close(),
        )
        .await;
    assert_eq!(
        lines,
        [
            open(None),
            text("hi"),
            binary(&[1, 2, 0xff]),
            text(""),
            binary(b""),
            close(4001, "bye now"),
        ]
    );
    let (uri, headers) = tokio::time::timeout(LIMIT, upstream.requests.recv())
        .await
        .expect("upstream request in time")
        .expect("upstream request");
    assert_eq!(uri, "/");
    assert_eq!(headers["authorization"], "Bearer abc.def");
    assert!(headers.get("x-other").is_none(), "{headers:?}");
    // The upstream got the client's answer to its Close.
    let got = tokio::time::timeout(LIMIT, closes.recv())
        .await
        .expect("Close in time");
    assert_eq!(got, Some(Some((4001, "bye now".to_string()))));

    // The other way round: the client's Close code reaches the upstream, and its answer comes
    // back. Without the header, nothing is passed on.
    let lines = Py::new(&base)
        .run(
            &Script::new()
                .text("x")
                .recv(1)
                .close(4002, "client says bye"),
        )
        .await;
    assert_eq!(
        lines,
        [open(None), text("x"), closed(4002, "client says bye")]
    );
    let got = tokio::time::timeout(LIMIT, closes.recv())
        .await
        .expect("Close in time");
    assert_eq!(got, Some(Some((4002, "client says bye".to_string()))));
    let (_, headers) = tokio::time::timeout(LIMIT, upstream.requests.recv())
        .await
        .expect("upstream request in time")
        .expect("upstream request");
    assert!(headers.get("authorization").is_none(), "{headers:?}");
    assert_eq!(upstream.connections(), 2);
    stop(b).await;
}
