//! `--metrics`: the Prometheus endpoint scraped during real sessions (a Python `websockets`
//! client through `ws-listen:` → `tcp:` echo, a refused handshake, broadcast members, keepalive
//! pings), each counter checked to move as it should, and the exposition validated by
//! Prometheus's own `promtool check metrics` (Debian package `prometheus`). Also `/healthz`,
//! 404s, and the refusal of a non-loopback address without `--metrics-public`.

use std::process::Stdio;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{self, Bridge, LIMIT, peers, servers};

/// `GET path` on the metrics listener: (status, body).
pub(crate) async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("metrics listener");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(LIMIT, s.read_to_string(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {out}"));
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The value of one series (`name{labels}` exactly as exposed).
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .parse()
        .expect("a number")
}

/// `--metrics 127.0.0.1:0 ARGS…`: the bridge, its metrics address and its listening address.
pub(crate) async fn with_metrics(args: &[&str]) -> (Bridge, String, String) {
    let mut all = vec!["-v", "--metrics", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut b = Bridge::spawn(&all);
    let line = b.stderr_contains("metrics on http://").await;
    let metrics = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("an address")
        .to_string();
    let listening = harness::host_port(&b.listening().await);
    (b, metrics, listening)
}

async fn ws(addr: &str, path: &str) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let url = format!("ws://{addr}{path}");
    tokio_tungstenite::client_async(url, tcp).await.unwrap().0
}

/// Prometheus's own checker on the exposition: it must say nothing is wrong.
async fn promtool_check(text: &str) {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install the Debian package prometheus")
        });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("promtool in time")
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[tokio::test]
async fn counters_move_with_real_sessions_and_promtool_accepts_the_exposition() {
    let echo = servers::tcp_echo().await;
    let args = [
        "-b",
        "--origin-allow",
        "http://good.example",
        "ws-listen:127.0.0.1:0",
        &echo,
    ];
    let (mut b, metrics, listening) = with_metrics(&args).await;
    let (_, before) = get(&metrics, "/metrics").await;
    promtool_check(&before).await;
    assert_eq!(value(&before, "wsbridge_sessions_accepted_total"), 0.0);
    // A third-party client: 3 text and 2 binary messages each way, then Close 1000.
    let mut cmd = peers::python_peer("metrics_client.py");
    cmd.arg(format!("ws://{listening}/"))
        .arg("http://good.example");
    let out = tokio::time::timeout(LIMIT, cmd.stdout(Stdio::piped()).output())
        .await
        .expect("the client in time")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    b.stderr_contains("session ended").await;
    // A refused handshake: an Origin that is not allowed.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{listening}/"),
    )
    .unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let tcp = TcpStream::connect(&listening).await.unwrap();
    assert!(tokio_tungstenite::client_async(req, tcp).await.is_err());
    let (status, text) = get(&metrics, "/metrics").await;
    assert_eq!(status, 200);
    promtool_check(&text).await;
    assert_eq!(value(&text, "wsbridge_sessions_accepted_total"), 1.0);
    assert_eq!(value(&text, "wsbridge_sessions_active"), 0.0);
    assert_eq!(
        value(&text, "wsbridge_sessions_ended_total{outcome=\"ok\"}"),
        1.0
    );
    let m = |d: &str, t: &str| {
        value(
            &text,
            &format!("wsbridge_messages_total{{direction=\"{d}\",type=\"{t}\"}}"),
        )
    };
    // -b: what the TCP echo returns goes back as binary.
    assert_eq!(m("received", "text"), 3.0);
    assert_eq!(m("received", "binary"), 2.0);
    assert_eq!(m("sent", "text") + m("sent", "binary"), 5.0);
    let bytes = "wsbridge_message_bytes_total{direction=\"received\",type=\"binary\"}";
    assert_eq!(value(&text, bytes), 13.0);
    let closes = "wsbridge_close_codes_total{direction=\"received\",code=\"1000\"}";
    assert_eq!(value(&text, closes), 1.0);
    let refused = "wsbridge_handshakes_refused_total{role=\"server\",status=\"403\"}";
    assert_eq!(value(&text, refused), 1.0);
    assert!(value(&text, "wsbridge_uptime_seconds") > 0.0);
    assert_eq!(value(&text, "wsbridge_build_info{version=\"0.1.0\"}"), 1.0);
}

#[tokio::test]
async fn broadcast_members_are_a_gauge() {
    let (mut b, metrics, listening) = with_metrics(&["ws-listen:127.0.0.1:0", "broadcast:"]).await;
    let one = ws(&listening, "/room").await;
    let two = ws(&listening, "/other").await;
    b.stderr_contains("member #2 joined").await;
    let (_, text) = get(&metrics, "/metrics").await;
    assert_eq!(value(&text, "wsbridge_broadcast_members"), 2.0);
    // Member numbers go by the order of joining, which the two sessions may swap.
    let joined = b.stderr_contains("broadcast room '/room': member #").await;
    let (_, rest) = joined.split_once("member #").unwrap();
    let (member, _) = rest.split_once(' ').unwrap();
    drop(one);
    b.stderr_contains(&format!("'/room': member #{member} left"))
        .await;
    let (_, text) = get(&metrics, "/metrics").await;
    assert_eq!(value(&text, "wsbridge_broadcast_members"), 1.0);
    promtool_check(&text).await;
    drop(two);
}

#[tokio::test]
async fn keepalive_round_trips_are_a_histogram() {
    let echo = servers::tcp_echo().await;
    let args = ["--ping-interval", "0.05", "ws-listen:127.0.0.1:0", &echo];
    let (_b, metrics, listening) = with_metrics(&args).await;
    let mut client = ws(&listening, "/").await;
    // Read on (the client answers wsbridge's pings) until a round trip has been counted.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let text = loop {
        let got = tokio::time::timeout(std::time::Duration::from_millis(100), client.next()).await;
        if let Ok(Some(m)) = got {
            m.expect("a frame");
        }
        let (_, text) = get(&metrics, "/metrics").await;
        if value(&text, "wsbridge_ping_rtt_seconds_count") >= 2.0 {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ping round trip counted:\n{text}"
        );
    };
    promtool_check(&text).await;
    let all = value(&text, "wsbridge_ping_rtt_seconds_bucket{le=\"+Inf\"}");
    assert_eq!(all, value(&text, "wsbridge_ping_rtt_seconds_count"));
    // Loopback: every round trip is under a second.
    assert_eq!(
        value(&text, "wsbridge_ping_rtt_seconds_bucket{le=\"1\"}"),
        all
    );
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn healthz_answers_and_other_paths_are_not_found() {
    let (_b, metrics, _) = with_metrics(&["ws-listen:127.0.0.1:0", "mirror:"]).await;
    assert_eq!(get(&metrics, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(get(&metrics, "/metrics?x=1").await.0, 200);
    assert_eq!(get(&metrics, "/").await.0, 404);
}

#[tokio::test]
async fn a_public_metrics_address_needs_metrics_public() {
    let f = harness::run(
        &["--metrics", "0.0.0.0:0", "ws-listen:127.0.0.1:0", "mirror:"],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    harness::assert_one_line_error(&f, "--metrics-public");
    let f = harness::run(
        &[
            "--metrics",
            "localhost:9100",
            "ws-listen:127.0.0.1:0",
            "mirror:",
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    harness::assert_one_line_error(&f, "expected IP:PORT");
}
