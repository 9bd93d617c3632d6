//! `ws-listen:` in front of per-connection children (`exec:`, `sh-c:`) and `broadcast:` rooms:
//! no descriptor or zombie leaks over many sessions, a child that ignores SIGTERM is killed after
//! the grace period, and a slow room member is kicked without stalling the room.

use std::time::{Duration, Instant};

use crate::harness::{self, Bridge, LIMIT};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Client = WebSocketStream<TcpStream>;

/// Start `wsbridge ARGS` (a ws-listen: first) and return it with its `ws://…/` URL.
async fn start(args: &[&str]) -> (Bridge, String) {
    let mut b = Bridge::spawn(args);
    let url = b.listening().await;
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    (b, url)
}

/// `127.0.0.1:PORT` of a `ws://127.0.0.1:PORT/` URL.
fn socket_addr(url: &str) -> std::net::SocketAddr {
    url.strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .and_then(|hp| hp.parse().ok())
        .unwrap_or_else(|| panic!("not a ws://IP:PORT/ URL: {url}"))
}

/// The WebSocket handshake over `tcp`, bounded. (This crate's tokio-tungstenite is built
/// without its `connect` feature, so the client handshake runs on a stream we connect.)
async fn handshake(url: &str, tcp: TcpStream) -> Client {
    let (ws, resp) = tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

async fn connect(url: &str) -> Client {
    let tcp = TcpStream::connect(socket_addr(url)).await.expect("connect");
    handshake(url, tcp).await
}

/// The next message, bounded; `None` at the end of the stream.
async fn next(ws: &mut Client) -> Option<Message> {
    tokio::time::timeout(LIMIT, ws.next())
        .await
        .expect("a message in time")
        .map(|r| r.expect("a message, not an error"))
}

/// Poll `cond` every 20 ms until it holds; fail with `what()` after `bound`.
async fn wait_for(bound: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + bound;
    while !cond() {
        assert!(Instant::now() < deadline, "after {bound:?}: {}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Proc {
    pid: u32,
    state: char,
    comm: String,
}

/// Processes whose parent is `parent` (from /proc/*/stat).
fn children(parent: u32) -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Gone already, or not ours to read: skip.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may contain spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == parent {
            out.push(Proc { pid, state, comm });
        }
    }
    out
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// Open, send a line, get it back from the child, close cleanly.
async fn echo_once(url: &str, i: usize) {
    let mut ws = connect(url).await;
    let line = format!("line {i}: hello cat");
    ws.send(Message::text(line.clone())).await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::text(line)),
        "session {i}"
    );
    ws.close(None).await.unwrap();
    // Our Close is answered; then the stream ends.
    loop {
        match next(&mut ws).await {
            None => break,
            Some(Message::Close(_)) => {}
            Some(other) => panic!("session {i}: unexpected {other:?} after Close"),
        }
    }
}

#[tokio::test]
async fn exec_cat_200_sessions_leak_no_fds_and_no_zombies() {
    let (b, url) = start(&["ws-listen:127.0.0.1:0", "exec:cat"]).await;
    let pid = b.child.id().expect("wsbridge running");

    // Warm up (lazy runtime resources, the signal pipe, …), then take the baseline with no
    // session running.
    echo_once(&url, 0).await;
    wait_for(
        Duration::from_secs(10),
        || children(pid).is_empty(),
        || format!("warm-up child not reaped: {:?}", children(pid)),
    )
    .await;
    let baseline = open_fds(pid);

    let started = Instant::now();
    for i in 1..=200 {
        echo_once(&url, i).await;
    }
    let took = started.elapsed();

    // Sessions end and children are reaped asynchronously: poll, bounded.
    let slack = 2;
    wait_for(
        Duration::from_secs(10),
        || children(pid).is_empty() && open_fds(pid) <= baseline + slack,
        || {
            let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.flatten()
                        .map(|e| {
                            let target = std::fs::read_link(e.path()).unwrap_or_default();
                            format!("{:?} -> {}", e.file_name(), target.display())
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "after 200 sessions ({took:?}): {} fds open (baseline {baseline} + {slack}): \
                 {fds:?}; children (Z = zombie): {:?}",
                fds.len(),
                children(pid)
            )
        },
    )
    .await;
    eprintln!(
        "200 sessions in {took:?}; fds: baseline {baseline}, now {}",
        open_fds(pid)
    );
    let zombies: Vec<Proc> = children(pid)
        .into_iter()
        .filter(|p| p.state == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");

    // Still serving.
    echo_once(&url, 201).await;
}

/// Connect to a `sh-c:` child that prints `ready` once its SIGTERM trap is set; return the
/// connection and the child's pid.
async fn connect_to_stubborn_child(url: &str, wsbridge: u32) -> (Client, Proc) {
    let before = children(wsbridge);
    let mut ws = connect(url).await;
    assert_eq!(next(&mut ws).await, Some(Message::text("ready")));
    let mut new: Vec<Proc> = children(wsbridge)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "expected one new child: {new:?}");
    (ws, new.remove(0))
}

/// Wait until `child` has disappeared (exited and been reaped), bounded; return how long it took.
async fn gone_within(child: &Proc, bound: Duration, since: Instant) -> Duration {
    let path = format!("/proc/{}", child.pid);
    wait_for(
        bound,
        || !std::path::Path::new(&path).exists(),
        || {
            let stat = std::fs::read_to_string(format!("{path}/stat")).unwrap_or_default();
            format!("child {child:?} still there: {stat}")
        },
    )
    .await;
    since.elapsed()
}

const STUBBORN: &str = "sh-c:trap '' TERM; echo ready; while :; do sleep 1; done";

#[tokio::test]
async fn child_ignoring_sigterm_is_killed_after_the_grace_period_when_the_client_drops() {
    let (mut b, url) = start(&["-v", "ws-listen:127.0.0.1:0", STUBBORN]).await;
    let pid = b.child.id().unwrap();
    let (ws, child) = connect_to_stubborn_child(&url, pid).await;
    assert_eq!(child.comm, "sh");

    // The client vanishes without a Close.
    drop(ws);
    let since = Instant::now();
    let took = gone_within(
        &child,
        Duration::from_secs(2) + Duration::from_secs(3),
        since,
    )
    .await;
    eprintln!("child gone {took:?} after the client dropped");
    // SIGTERM was ignored, so it took the grace period and a SIGKILL.
    assert!(took >= Duration::from_millis(1500), "gone after {took:?}");
    b.stderr_contains("sending SIGKILL").await;
    assert!(children(pid).is_empty(), "left behind: {:?}", children(pid));
}

#[tokio::test]
async fn child_ignoring_sigterm_is_killed_after_the_grace_period_when_the_client_closes() {
    let (mut b, url) = start(&["-v", "ws-listen:127.0.0.1:0", STUBBORN]).await;
    let pid = b.child.id().unwrap();
    let (mut ws, child) = connect_to_stubborn_child(&url, pid).await;

    // A clean Close from the client: the session is over at once (nothing the child writes can
    // be delivered any more), so the child gets SIGTERM now and SIGKILL 2 s later.
    ws.close(None).await.unwrap();
    let since = Instant::now();
    let reply = tokio::time::timeout(LIMIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => {}
                other => panic!("no Close reply: {other:?}"),
            }
        }
    })
    .await
    .expect("Close reply in time");
    assert!(
        reply.as_ref().is_none_or(|f| f.code == CloseCode::Normal),
        "{reply:?}"
    );
    let took = gone_within(
        &child,
        Duration::from_secs(2) + Duration::from_secs(3),
        since,
    )
    .await;
    eprintln!("child gone {took:?} after the client closed");
    assert!(took >= Duration::from_millis(1500), "gone after {took:?}");
    b.stderr_contains("sending SIGKILL").await;
    assert!(children(pid).is_empty(), "{:?}", children(pid));
}

/// SIGTERM to wsbridge while a child that ignores SIGTERM runs: the child is killed after the
/// grace period before wsbridge exits (its reaper runs on a session thread, which must outlive
/// the listener), and wsbridge exits 0.
#[tokio::test]
async fn on_shutdown_a_child_ignoring_sigterm_is_killed_before_wsbridge_exits() {
    let (b, url) = start(&["-v", "ws-listen:127.0.0.1:0", STUBBORN]).await;
    let pid = b.child.id().unwrap();
    let (_ws, child) = connect_to_stubborn_child(&url, pid).await;
    b.signal("TERM");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(f.stderr.contains("sending SIGKILL"), "{}", f.stderr);
    // Reaped by wsbridge before it exited: nothing left to wait for.
    let path = format!("/proc/{}", child.pid);
    assert!(
        !std::path::Path::new(&path).exists(),
        "child {child:?} outlived wsbridge"
    );
}

#[tokio::test]
async fn broadcast_kicks_a_member_that_stopped_reading_and_the_room_goes_on() {
    const QUEUE: usize = 8;
    const FLOOD: usize = 10_000;
    // 1 KiB messages: 10 MB in all, more than the kernel buffers between wsbridge and a client
    // that never reads can absorb.
    const SIZE: usize = 1024;
    let (mut b, url) = start(&[
        "-v",
        "ws-listen:127.0.0.1:0",
        "broadcast:",
        "--broadcast-queue",
        "8",
        "--close-timeout",
        "30",
    ])
    .await;

    // The slow member: a small receive buffer, and it never reads (until the end).
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(socket_addr(&url)).await.unwrap();
    let mut slow = handshake(&url, tcp).await;
    b.stderr_contains("(1 members)").await;

    // The fast member reads everything and reports how many messages it has seen.
    let fast = connect(&url).await;
    b.stderr_contains("(2 members)").await;
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel((0usize, String::new()));
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        let mut n = 0;
        while let Some(m) = fast.next().await {
            match m {
                Ok(Message::Text(t)) => {
                    n += 1;
                    let _ = seen_tx.send((n, t.as_str()[..t.len().min(32)].to_string()));
                }
                Ok(Message::Close(f)) => return Err(format!("fast reader closed: {f:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("fast reader failed: {e}")),
            }
        }
        Err::<(), String>("fast reader's stream ended".to_string())
    });

    let mut flood = connect(&url).await;
    b.stderr_contains("(3 members)").await;

    // Flood in small batches, each one delivered to the fast member before the next: the fast
    // member's queue never holds more than BATCH < QUEUE messages, while the slow member's
    // socket fills up and its queue stays full. The room waits for it (up to 5 s), then drops it.
    const BATCH: usize = 4;
    let pad = "x".repeat(SIZE - 16);
    let started = Instant::now();
    let mut sent = 0;
    while sent < FLOOD {
        for _ in 0..BATCH {
            let m = format!("{sent:>8} {pad}");
            flood.feed(Message::text(m)).await.unwrap();
            sent += 1;
        }
        flood.flush().await.unwrap();
        let target = sent;
        let caught_up = tokio::time::timeout(LIMIT, seen_rx.wait_for(|(n, _)| *n >= target))
            .await
            .map(|r| r.is_ok());
        match caught_up {
            Ok(true) => {}
            Ok(false) => panic!("fast reader ended: {:?}", reader.await),
            Err(_) => panic!(
                "the fast member got only {} of {target} messages (room stalled?)",
                seen_rx.borrow().0
            ),
        }
    }
    let took = started.elapsed();
    eprintln!("flooded {FLOOD} messages of {SIZE} bytes in {took:?}");

    // wsbridge said it dropped the slow member, and why.
    let line = b
        .stderr_contains("stopped reading (queue full for 5 s)")
        .await;
    assert!(line.contains("disconnecting it with 1013"), "{line}");
    assert_eq!(QUEUE, 8);

    // The room still works for the others, after the kick.
    flood.send(Message::text("after the kick")).await.unwrap();
    tokio::time::timeout(LIMIT, seen_rx.wait_for(|(n, _)| *n > FLOOD))
        .await
        .unwrap_or_else(|_| panic!("no message after the kick ({took:?} flooding)"))
        .unwrap();
    assert_eq!(seen_rx.borrow().1, "after the kick");
    assert!(!reader.is_finished(), "{:?}", reader.await);

    // The slow member, reading at last, finds what was in flight to it, then Close 1013.
    let mut got = 0usize;
    let close = tokio::time::timeout(LIMIT, async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Text(_))) => got += 1,
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => {}
                other => panic!("slow member: no Close 1013 but {other:?} after {got} messages"),
            }
        }
    })
    .await
    .expect("slow member's stream did not end in time");
    let close = close.expect("a Close with a code");
    assert_eq!(close.code, CloseCode::Again, "{close:?}");
    assert!(close.reason.contains("too slow"), "{close:?}");
    eprintln!("the slow member got {got} messages, then {close:?}");
    assert!(got < FLOOD, "the slow member got all {got} messages");
    reader.abort();
}

/// The WebSocket handshake with extra request headers (a name may repeat), bounded: the
/// connection, or the refusal's status and body.
async fn handshake_with(url: &str, headers: &[(&str, &str)]) -> Result<Client, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut req = url.into_client_request().unwrap();
    for (n, v) in headers {
        let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
        req.headers_mut()
            .append(name, HeaderValue::from_str(v).unwrap());
    }
    let tcp = TcpStream::connect(socket_addr(url)).await.expect("connect");
    let res = tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("handshake in time");
    match res {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            Err((
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into(),
            ))
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

#[tokio::test]
async fn a_required_or_passed_header_sent_twice_is_refused() {
    let (_b, url) = start(&[
        "ws-listen:127.0.0.1:0",
        "--require-header",
        "X-User: alice",
        "--pass-header",
        "X-User",
        "--pass-header",
        "X-Role",
        "sh-c:echo \"user=$HTTP_X_USER role=${HTTP_X_ROLE-none}\"",
    ])
    .await;
    // One X-User: the child sees it.
    let mut ws = handshake_with(&url, &[("X-User", "alice")]).await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::text("user=alice role=none"))
    );
    // Twice, in any case and order, or a passed-only header twice: 400 with a one-line reason.
    let twice: &[&[(&str, &str)]] = &[
        &[("X-User", "alice"), ("X-User", "admin")],
        &[("X-User", "admin"), ("x-user", "alice")],
        &[("x-user", "alice"), ("X-USER", "alice")],
        &[("X-User", "alice"), ("X-Role", "user"), ("x-role", "admin")],
    ];
    for headers in twice {
        let (status, body) = handshake_with(&url, headers)
            .await
            .err()
            .unwrap_or_else(|| panic!("{headers:?}: accepted"));
        assert_eq!(status, 400, "{headers:?}: {body:?}");
        let name = headers.last().unwrap().0.to_ascii_lowercase();
        assert_eq!(body, format!("header {name} sent more than once\n"));
    }
}

#[tokio::test]
async fn pass_header_proxy_and_an_empty_required_value_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--pass-header", "Proxy"],
            "--pass-header Proxy: children would get the client's value as HTTP_PROXY",
        ),
        (&["--pass-header", "proxy"], "as HTTP_PROXY"),
        (
            &["--require-header", "X-Api-Key: "],
            "--require-header X-Api-Key: the value is empty",
        ),
        (&["--require-header", "X-Api-Key:"], "the value is empty"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["ws-listen:127.0.0.1:0", "exec:cat"];
        args.extend_from_slice(flags);
        let f = harness::run(&args, b"").await;
        assert_eq!(f.code, Some(2), "{flags:?}: {}", f.stderr);
        harness::assert_one_line_error(&f, want);
    }
}

#[tokio::test]
async fn exec_children_get_no_secrets_from_the_environment() {
    let show = "sh-c:echo \"auth=${WSBRIDGE_BASIC_AUTH-unset} HTTP_PROXY=${HTTP_PROXY-unset} \
                http_proxy=${http_proxy-unset} HTTPS_PROXY=${HTTPS_PROXY-unset} \
                ALL_PROXY=${ALL_PROXY-unset} all_proxy=${all_proxy-unset}\"";
    let mut cmd = harness::command(&["ws-listen:127.0.0.1:0", show]);
    cmd.env("WSBRIDGE_BASIC_AUTH", "alice:S3CRET-basic")
        .env("HTTP_PROXY", "http://u:S3CRET-http@127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:3129")
        .env("HTTPS_PROXY", "u:S3CRET-https@127.0.0.1:9")
        .env("ALL_PROXY", "socks5://bob@127.0.0.1:9")
        .env("all_proxy", "socks5://127.0.0.1:1081");
    let mut b = Bridge::spawn_cmd(cmd);
    let url = b.listening().await;
    let mut ws = connect(&url).await;
    // Children get a clean environment: none of these (--pass-env in exec_programs.rs).
    assert_eq!(
        next(&mut ws).await,
        Some(Message::text(
            "auth=unset HTTP_PROXY=unset http_proxy=unset HTTPS_PROXY=unset \
             ALL_PROXY=unset all_proxy=unset"
        ))
    );
}
