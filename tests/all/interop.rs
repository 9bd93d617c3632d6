//! Closing against other people's software, with default flags (issue: replies lost at EOF).
//! Servers: Python `websockets` and Node `ws` (with and without permessage-deflate), both of
//! which answer a Close at once and drop replies not sent yet. Clients of wsbridge's own server:
//! Python `websockets`, Node `ws`, websocat 1.x and wsbridge itself, sending and then closing at
//! once. Every peer is a real process on 127.0.0.1, port 0.

use std::process::Stdio;
use std::sync::Arc;

use crate::harness::peers::{self, Peer};
use crate::harness::{self, Bridge, Finished, LIMIT, command, run, run_cmd, servers};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::Mutex;

/// A third-party server process that printed `PORT n`; killed when dropped.
struct Server {
    _peer: Peer,
    url: String,
}

async fn start(mut cmd: Command) -> Server {
    // Their stderr is the test's: a peer's own error shows up next to the failure.
    cmd.stderr(Stdio::inherit());
    let peer = Peer::start(cmd, peers::port_line).await;
    Server {
        url: format!("ws://127.0.0.1:{}/", peer.port),
        _peer: peer,
    }
}

/// The echo servers users meet: Python websockets, Node ws, Node ws with permessage-deflate.
async fn echo_servers() -> Vec<(&'static str, Server)> {
    let mut deflate = peers::node_peer("node_echo_server.js");
    deflate.arg("--deflate");
    vec![
        ("python", start(peers::python_peer("ws_server.py")).await),
        ("node", start(peers::node_peer("node_echo_server.js")).await),
        ("node+deflate", start(deflate).await),
    ]
}

fn lines(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

fn ok(f: &Finished, want: &str, what: &str) {
    assert_eq!(f.stdout_str(), want, "{what}: stderr {}", f.stderr);
    assert_eq!(f.code, Some(0), "{what}: stderr {}", f.stderr);
}

// ---------------------------------------------------------------------------------------------
// wsbridge as the client: local EOF must not lose replies.

#[tokio::test]
async fn one_line_then_eof_gets_its_reply_every_time() {
    for (name, server) in echo_servers().await {
        for run_no in 0..20 {
            let f = run(&[&server.url], b"hi\n").await;
            ok(&f, "hi\n", &format!("{name} run {run_no}"));
        }
    }
}

#[tokio::test]
async fn a_thousand_lines_all_come_back_in_order() {
    let want = lines(1000);
    for (name, server) in echo_servers().await {
        for run_no in 0..5 {
            let f = run(&[&server.url], want.as_bytes()).await;
            ok(&f, &want, &format!("{name} run {run_no}"));
        }
    }
}

/// A listener's client that half-closes (shutdown of its write side) and reads to the end.
async fn half_closing_client<S>(mut s: S, input: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(input.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = String::new();
    tokio::time::timeout(LIMIT, s.read_to_string(&mut got))
        .await
        .expect("the listener's client got EOF in time")
        .unwrap();
    got
}

#[tokio::test]
async fn tcp_listen_client_that_half_closes_gets_every_reply() {
    let want = lines(1000);
    for (name, server) in echo_servers().await {
        let mut b = Bridge::spawn(&["tcp-listen:127.0.0.1:0", &server.url]);
        let addr = b.listening().await;
        for run_no in 0..3 {
            let tcp = TcpStream::connect(&addr).await.unwrap();
            let got = half_closing_client(tcp, &want).await;
            assert!(got == want, "{name} run {run_no}: {} bytes", got.len());
        }
    }
}

#[tokio::test]
async fn unix_listen_client_that_half_closes_gets_every_reply() {
    let want = lines(1000);
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, server)) in echo_servers().await.into_iter().enumerate() {
        let path = dir.path().join(format!("s{i}.sock"));
        let spec = format!("unix-listen:{}", path.display());
        let mut b = Bridge::spawn(&[&spec, &server.url]);
        b.listening().await;
        for run_no in 0..3 {
            let unix = tokio::net::UnixStream::connect(&path).await.unwrap();
            let got = half_closing_client(unix, &want).await;
            assert!(got == want, "{name} run {run_no}: {} bytes", got.len());
        }
    }
}

#[tokio::test]
async fn exec_child_that_closed_its_output_still_gets_every_reply() {
    // The child writes 200 lines, closes its stdout and then reads the replies (to stderr,
    // which it shares with wsbridge: --exec-stderr inherit).
    let script = "seq 1 200; exec >&-; head -n 200 | sed 's/^/reply /' >&2";
    for (name, server) in echo_servers().await {
        let args = [
            &server.url,
            "--exec-stderr",
            "inherit",
            &format!("sh-c:{script}"),
        ];
        let f = run_cmd(command(&args), b"").await;
        let replies: Vec<&str> = f
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("reply "))
            .collect();
        let want: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
        assert_eq!(replies, want, "{name}: {}", f.stderr);
        assert_eq!(f.code, Some(0), "{name}: {}", f.stderr);
    }
}

/// An in-process server that answers each message after `delay`, and (like Python websockets)
/// answers a Close at once, after which a late reply cannot be sent.
async fn slow_echo(delay: std::time::Duration) -> String {
    let server = harness::servers::serve(move |ws| async move {
        let (tx, mut rx) = ws.split();
        let tx = Arc::new(Mutex::new(tx));
        while let Some(Ok(m)) = rx.next().await {
            if m.is_text() {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.lock().await.send(m).await;
                });
            }
        }
    })
    .await;
    server.url()
}

#[tokio::test]
async fn the_close_waits_for_a_slow_reply_unless_linger_is_zero() {
    let url = slow_echo(std::time::Duration::from_millis(300)).await;
    let f = run(&[&url], b"slow\n").await;
    ok(&f, "slow\n", "default --linger auto");
    let f = run(&["--linger", "0", &url], b"slow\n").await;
    ok(
        &f,
        "",
        "--linger 0 closes at once (the server drops the late reply)",
    );
    let f = run(&["--linger", "50ms", &url], b"slow\n").await;
    ok(&f, "", "--linger 50ms is shorter than the reply's delay");
}

// ---------------------------------------------------------------------------------------------
// wsbridge as the server: a client's Close that arrives right behind its data.

#[tokio::test]
async fn server_delivers_the_backends_reply_to_a_client_that_closed_at_once() {
    let backend = servers::tcp_echo().await;
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", &backend]);
    let url = b.listening().await;
    let clients: [(&str, Vec<&str>); 3] = [
        ("wsbridge", vec!["-", &url]),
        ("wsbridge -b", vec!["-b", "-", &url]),
        // Sends its Close right behind the data, as websocat does.
        ("wsbridge --linger 0", vec!["--linger", "0", "-", &url]),
    ];
    for (name, args) in clients {
        for run_no in 0..10 {
            let f = run(&args, b"ping\n").await;
            assert!(
                f.stdout_str().starts_with("ping"),
                "{name} run {run_no}: {f:?}"
            );
            assert_eq!(f.code, Some(0), "{name} run {run_no}: {f:?}");
        }
    }
    for run_no in 0..10 {
        let mut cmd = Command::new(peers::websocat());
        cmd.arg(&url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let f = run_cmd(cmd, b"ping\n").await;
        assert!(
            f.stdout_str().starts_with("ping"),
            "websocat run {run_no}: {f:?}"
        );
    }
}

/// A TCP backend that reads everything until EOF, then answers `got N bytes` and closes.
async fn tcp_counter() -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = tcp.read_to_end(&mut got).await;
                let _ = tcp
                    .write_all(format!("got {} bytes\n", got.len()).as_bytes())
                    .await;
                let _ = tcp.shutdown().await;
                let _ = tx.send(got);
            });
        }
    });
    (format!("tcp:{addr}"), rx)
}

/// Run a client that sends `msgs` and closes at once; its output lines.
async fn close_at_once(client: &str, url: &str, msgs: &[&str]) -> Vec<String> {
    let mut cmd = peers::python_or_node(client, "close_client.py", "node_client.js");
    let out = tokio::time::timeout(LIMIT, cmd.arg(url).args(msgs).output())
        .await
        .expect("the client finished in time")
        .unwrap();
    assert!(out.status.success(), "{client}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn clients_that_close_at_once_reach_a_tcp_backend_and_get_its_answer() {
    let (backend, mut received) = tcp_counter().await;
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", &backend]);
    let url = b.listening().await;
    for client in ["python", "node"] {
        let out = close_at_once(client, &url, &["a", "b", "c"]).await;
        let got = tokio::time::timeout(LIMIT, received.recv()).await.unwrap();
        assert_eq!(got.unwrap(), b"a\nb\nc\n", "{client}");
        assert_eq!(out, [r#"text "got 6 bytes""#, "closed 1000"], "{client}");
    }
}

#[tokio::test]
async fn clients_that_close_at_once_reach_a_program_and_get_its_output() {
    // wc answers only once its input has ended: after the client's Close.
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "sh-c:wc -l | tr -d ' '"]);
    let url = b.listening().await;
    for client in ["python", "node"] {
        let out = close_at_once(client, &url, &["a", "b", "c", "d"]).await;
        assert_eq!(out, [r#"text "4""#, "closed 1000"], "{client}");
    }
}

#[tokio::test]
async fn clients_that_close_at_once_get_every_echo_from_mirror() {
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", "mirror:"]);
    let url = b.listening().await;
    let msgs: Vec<String> = (1..=50).map(|i| format!("m{i}")).collect();
    let msgs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    for client in ["python", "node"] {
        let out = close_at_once(client, &url, &msgs).await;
        let mut want: Vec<String> = msgs.iter().map(|m| format!("text \"{m}\"")).collect();
        want.push("closed 1000".into());
        assert_eq!(out, want, "{client}");
    }
}
