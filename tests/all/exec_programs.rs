//! `exec:` as websocketd users need it (issue 19): `--pty` so that a Python or C child's
//! unflushed lines reach the client as they are printed (and the client's end of input still
//! reaches the child), `exec-dir:` mapping request paths to programs with every escape refused
//! before a child runs, the `--exec-stderr` modes, and the children's clean environment. Peers:
//! Python `websockets` clients, a C program built with `cc`, headless Chromium on the console.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{self, Bridge, LIMIT, chromium, peers};

/// How late a printed line may reach the client when nothing buffers it.
const ON_TIME: f64 = 0.1;

async fn start(args: &[&str]) -> (Bridge, String) {
    let mut b = Bridge::spawn(args);
    let url = b.listening().await;
    (b, url)
}

/// Run the Python peer `script ARGS…` to its end, bounded.
async fn python_client(script: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(peers::python());
    cmd.arg(peers::script(script))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} in time"))
        .unwrap_or_else(|e| panic!("run {script}: {e}"))
}

/// `timed_client.py URL N` (Python websockets): each message with its arrival time.
async fn timed(url: &str, n: usize) -> Vec<(f64, String)> {
    let out = python_client("timed_client.py", &[url, &n.to_string()]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "timed_client.py: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| {
            let (t, m) = l.split_once(' ').expect("T MESSAGE");
            let m: String = serde_json::from_str(m).unwrap_or_else(|_| panic!("{l}"));
            (t.parse().expect("time"), m)
        })
        .collect()
}

/// `(arrival, printed)` of each `tick I T` message.
fn ticks(msgs: &[(f64, String)]) -> Vec<(f64, f64)> {
    msgs.iter()
        .filter_map(|(at, m)| {
            let t = m.strip_prefix("tick ")?.split(' ').nth(1)?;
            Some((*at, t.parse().expect("printed time")))
        })
        .collect()
}

fn assert_each_on_time(msgs: &[(f64, String)], n: usize) {
    let t = ticks(msgs);
    assert_eq!(t.len(), n, "{msgs:?}");
    for (at, printed) in t {
        let late = at - printed;
        assert!(
            (0.0..ON_TIME).contains(&late),
            "a line reached the client {late:.3} s after it was printed: {msgs:?}"
        );
    }
}

/// A listener running `ticker.py ARGS…` (on a pty with `pty`) for each client.
async fn python_ticker(pty: bool, ticker_args: &[&str]) -> (Bridge, String) {
    let exec = format!("exec:{}", peers::python().to_string_lossy());
    let script = peers::script("ticker.py").to_string_lossy().into_owned();
    let mut args = vec!["ws-listen:127.0.0.1:0", &exec, "--exec-args", &script];
    if pty {
        args.insert(0, "--pty");
    }
    args.extend(ticker_args);
    start(&args).await
}

/// `close_client.py URL MESSAGE…`: sends, closes at once, prints what still arrives.
async fn close_client(url: &str, messages: &[&str]) -> Vec<String> {
    let mut args = vec![url];
    args.extend(messages);
    let out = python_client("close_client.py", &args).await;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            // Tick lines carry a time: keep `tick I`.
            match l.strip_prefix("text \"tick ") {
                Some(rest) => format!("tick {}", rest.split(' ').next().unwrap_or("")),
                None => l.to_string(),
            }
        })
        .collect()
}

#[tokio::test]
async fn python_child_on_a_pty_gets_each_line_to_the_client_as_printed() {
    let (_b, url) = python_ticker(true, &["3", "1"]).await;
    assert_each_on_time(&timed(&url, 3).await, 3);
}

#[tokio::test]
async fn python_child_on_a_pipe_holds_its_lines_until_it_exits() {
    // The trap --pty avoids: print() to a pipe is block-buffered, so nothing arrives before the
    // child exits.
    let (_b, url) = python_ticker(false, &["3", "0.3", "noinput"]).await;
    let got = timed(&url, 4).await;
    let t = ticks(&got);
    let last_printed = t.last().expect("ticks").1;
    assert!(t.iter().all(|(at, _)| *at >= last_printed), "{got:?}");
    assert_eq!(got[3].1, "bye");
}

#[tokio::test]
async fn the_end_of_the_clients_input_reaches_a_child_on_a_pty() {
    let (_b, url) = python_ticker(true, &["1", "0"]).await;
    // Raw terminal: input comes back once (no echo), bytes unchanged (no \r\n).
    let got = close_client(&url, &["hello", "wide \u{e9}t\u{e9}"]).await;
    assert_eq!(
        got,
        [
            "tick 0",
            "text \"got hello\"",
            "text \"got wide \\u00e9t\\u00e9\"",
            "text \"bye\"",
            "closed 1000"
        ]
    );
}

#[tokio::test]
async fn a_pty_is_raw_in_binary_mode_and_has_the_size_asked_for() {
    // Every byte value through `cat` on the terminal and back, unchanged and not echoed.
    let (_b, url) = start(&["-b", "--pty", "ws-listen:127.0.0.1:0", "exec:cat"]).await;
    let mut ws = ws_connect(&url).await;
    let sent: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    futures_util::SinkExt::send(&mut ws, Message::binary(sent.clone()))
        .await
        .unwrap();
    let mut back = Vec::new();
    while back.len() < sent.len() {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) => back.extend_from_slice(&b),
            other => panic!("after {} bytes: {other:?}", back.len()),
        }
    }
    assert!(back == sent, "{} bytes came back changed", back.len());
    let args = [
        "--pty",
        "--pty-size",
        "100x30",
        "ws-listen:127.0.0.1:0",
        "sh-c:stty size",
    ];
    let (_b, url) = start(&args).await;
    assert_eq!(messages(&url).await, ["30 100"]);
}

/// Send `messages` (binary with `binary`) and a Close at once; every data byte that still
/// arrives, and the Close code.
async fn send_and_close(url: &str, messages: &[&[u8]], binary: bool) -> (Vec<u8>, Option<u16>) {
    use futures_util::SinkExt;
    let mut ws = ws_connect(url).await;
    for m in messages {
        let m = match binary {
            true => Message::binary(m.to_vec()),
            false => Message::text(String::from_utf8(m.to_vec()).unwrap()),
        };
        ws.send(m).await.unwrap();
    }
    ws.close(None).await.unwrap();
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => got.extend_from_slice(t.as_bytes()),
            Some(Ok(Message::Close(f))) => return (got, f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (got, None),
        }
    }
}

#[tokio::test]
async fn line_mode_pty_tells_a_waiting_child_the_end_and_passes_control_bytes() {
    // `wc -c` is already waiting in read() when the input ends; ^D, ^V and ^C bytes inside a
    // line are data.
    let (_b, url) = start(&["--pty", "ws-listen:127.0.0.1:0", "exec:wc -c"]).await;
    let (got, code) = send_and_close(&url, &[b"abc", b"x\x04y\x16\x03z"], false).await;
    assert_eq!(String::from_utf8_lossy(&got).trim(), "11");
    // The answer to the client's Close carries its code (none here).
    assert_eq!(code, None);
}

#[tokio::test]
async fn line_mode_pty_refuses_a_line_the_terminal_cannot_hold() {
    let (mut b, url) = start(&["--pty", "ws-listen:127.0.0.1:0", "exec:wc -c"]).await;
    // The long line follows a short one (both may go in one write).
    let long = vec![b'x'; 5000];
    let (got, _) = send_and_close(&url, &[b"short", &long], false).await;
    // The child got the short line at most, never a part of the long one.
    let got = String::from_utf8_lossy(&got);
    assert!(["", "6"].contains(&got.trim()), "{got:?}");
    b.stderr_contains("a line longer than 4095 bytes cannot pass --pty in line mode")
        .await;
}

#[tokio::test]
async fn raw_pty_ends_the_input_of_a_child_that_reads_after_the_end() {
    // -b: the terminal is raw; the end of input reaches the child's next read (here it starts
    // reading after the client's Close), with an unfinished line delivered first.
    let args = [
        "-b",
        "--pty",
        "ws-listen:127.0.0.1:0",
        "sh-c:sleep 0.3; wc -c",
    ];
    let (_b, url) = start(&args).await;
    let (got, code) = send_and_close(&url, &[b"ab\x00c"], true).await;
    assert_eq!(String::from_utf8_lossy(&got).trim(), "4");
    assert_eq!(code, None);
}

#[tokio::test]
async fn a_background_job_holding_stderr_does_not_hold_the_session() {
    // `sleep` keeps the stderr pipe open for 30 s after the program itself has exited.
    let child = "sh-c:sleep 30 >/dev/null & echo ok";
    let args = ["ws-listen:127.0.0.1:0", "--exec-stderr", "client", child];
    let (_b, url) = start(&args).await;
    let began = std::time::Instant::now();
    assert_eq!(messages(&url).await, ["ok"]);
    let took = began.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "the Close took {took:?}"
    );
}

/// tests/peers/ticker.c built with the machine's `cc` into `dir`.
fn build_c_ticker(dir: &Path) -> PathBuf {
    let exe = dir.join("ticker");
    let status = std::process::Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(peers::script("ticker.c"))
        .status()
        .expect("run cc (install gcc)");
    assert!(status.success(), "cc failed");
    exe
}

#[tokio::test]
async fn c_stdio_child_on_a_pty_behaves_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let exe = format!("exec:{}", build_c_ticker(dir.path()).display());
    let args = [
        "--pty",
        "ws-listen:127.0.0.1:0",
        &exe,
        "--exec-args",
        "3",
        "1000",
    ];
    let (_b, url) = start(&args).await;
    assert_each_on_time(&timed(&url, 3).await, 3);
    // Without pauses (a Close is held only while replies keep coming, see --linger).
    let args = [
        "--pty",
        "ws-listen:127.0.0.1:0",
        &exe,
        "--exec-args",
        "1",
        "0",
    ];
    let (_b, url) = start(&args).await;
    let got = close_client(&url, &["from c"]).await;
    assert_eq!(
        got,
        [
            "tick 0",
            "text \"got from c\"",
            "text \"bye\"",
            "closed 1000"
        ]
    );
}

/// A tree for `exec-dir:`: root/bin/{chat*, sub/deep*, empty/, .hidden*, notes.txt (not
/// executable), up -> .., esc -> ../outside*, inner -> sub/deep} and root/outside*. Every
/// program appends its name to root/ran.log when it runs.
fn programs() -> tempfile::TempDir {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(bin.join("sub")).unwrap();
    std::fs::create_dir_all(bin.join("empty")).unwrap();
    let log = root.path().join("ran.log");
    let program = |path: PathBuf, name: &str, mode: u32| {
        let body = format!(
            "#!/bin/sh\necho {name} >> '{}'\necho \"{name} $SCRIPT_NAME|$PATH_INFO|$QUERY_STRING\"\n",
            log.display()
        );
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    program(bin.join("chat"), "chat", 0o755);
    program(bin.join("sub/deep"), "deep", 0o755);
    program(bin.join(".hidden"), "hidden", 0o755);
    program(bin.join("notes.txt"), "notes", 0o644);
    program(root.path().join("outside"), "outside", 0o755);
    symlink("..", bin.join("up")).unwrap();
    symlink("../outside", bin.join("esc")).unwrap();
    symlink("sub/deep", bin.join("inner")).unwrap();
    root
}

/// Send an upgrade request for `path` as written (no client normalises it) and return the
/// status code of the answer.
async fn upgrade_status(addr: &str, path: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 12];
    tokio::time::timeout(LIMIT, tcp.read_exact(&mut head))
        .await
        .expect("an answer in time")
        .expect("a status line");
    let line = String::from_utf8_lossy(&head).into_owned();
    line[9..12].parse().unwrap_or_else(|_| panic!("{line}"))
}

#[tokio::test]
async fn exec_dir_refuses_every_escape_with_404_before_running_anything() {
    let root = programs();
    let bin = root.path().join("bin");
    let dir = bin.to_string_lossy();
    let (_b, url) = start(&["ws-listen:127.0.0.1:0", "--exec-dir", &dir]).await;
    let addr = harness::host_port(&url);
    for path in [
        "/",
        "/empty",
        "/sub",
        "/sub/",
        "/missing",
        "/notes.txt",
        "/.hidden",
        "/../outside",
        "/%2e%2e/outside",
        "/sub/../chat",
        "/./chat",
        "//chat",
        "/up/outside",
        "/up/bin/chat",
        "/esc",
        "/chat%00",
        "/%2Fchat",
        "/sub%2f..%2fchat",
        "/ch%zzat",
    ] {
        assert_eq!(upgrade_status(&addr, path).await, 404, "{path}");
    }
    assert!(!root.path().join("ran.log").exists(), "a program ran");
    // The right programs, with CGI's split of the path; a symlink inside the directory is
    // followed (Python websockets as the client).
    let base = url.trim_end_matches('/');
    let cases = [
        ("/chat", "chat /chat||"),
        ("/sub/deep/x/y?q=1", "deep /sub/deep|/x/y|q=1"),
        ("/inner", "deep /inner||"),
    ];
    for (path, want) in cases {
        let got = timed(&format!("{base}{path}"), 1).await;
        assert_eq!(got[0].1, want, "{path}");
    }
    let ran = std::fs::read_to_string(root.path().join("ran.log")).unwrap();
    assert_eq!(ran, "chat\ndeep\ndeep\n");
}

#[tokio::test]
async fn exec_dir_and_static_files_share_a_listener() {
    let root = programs();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "<p>page</p>").unwrap();
    let bin = root.path().join("bin");
    let (dir, files) = (bin.to_string_lossy(), www.path().to_string_lossy());
    let args = [
        "ws-listen:127.0.0.1:0",
        "--exec-dir",
        &dir,
        "--static",
        &files,
    ];
    let (_b, url) = start(&args).await;
    let addr = harness::host_port(&url);
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let req = format!("GET /index.html HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let page = String::from_utf8_lossy(&harness::read_all(&mut tcp).await).into_owned();
    assert!(
        page.starts_with("HTTP/1.1 200") && page.ends_with("<p>page</p>"),
        "{page}"
    );
    let got = timed(&format!("{}/chat", url.trim_end_matches('/')), 1).await;
    assert_eq!(got[0].1, "chat /chat||");
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A tokio-tungstenite client connected to `url`.
async fn ws_connect(url: &str) -> Ws {
    let tcp = TcpStream::connect(harness::host_port(url)).await.unwrap();
    let handshake = tokio_tungstenite::client_async(url, tcp);
    let (ws, _) = tokio::time::timeout(LIMIT, handshake)
        .await
        .expect("handshake in time")
        .expect("handshake");
    ws
}

/// One tokio-tungstenite client session: every text message until the server's Close.
async fn messages(url: &str) -> Vec<String> {
    let mut ws = ws_connect(url).await;
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(LIMIT, ws.next())
        .await
        .expect("in time")
    {
        match m.expect("a message") {
            Message::Text(t) => got.push(t.to_string()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    got
}

const STDERR_CHILD: &str = "sh-c:echo out; echo oops >&2";

#[tokio::test]
async fn child_stderr_goes_to_the_log_by_default_with_the_session() {
    let (mut b, url) = start(&["ws-listen:127.0.0.1:0", STDERR_CHILD]).await;
    assert_eq!(messages(&url).await, ["out"]);
    let line = b.stderr_contains("stderr: oops").await;
    assert!(line.contains("INFO") && line.contains("session="), "{line}");
}

#[tokio::test]
async fn child_stderr_inherit_is_wsbridges_own() {
    let args = [
        "ws-listen:127.0.0.1:0",
        "--exec-stderr",
        "inherit",
        STDERR_CHILD,
    ];
    let (mut b, url) = start(&args).await;
    assert_eq!(messages(&url).await, ["out"]);
    assert_eq!(b.stderr_contains("oops").await.trim(), "oops");
}

#[tokio::test]
async fn child_stderr_client_sends_prefixed_text_messages() {
    let child = "sh-c:echo out; echo oops >&2; printf 'bad \\377 \\033[2J\\n' >&2";
    let args = [
        "ws-listen:127.0.0.1:0",
        "--exec-stderr",
        "client",
        "--stderr-prefix",
        "E> ",
        child,
    ];
    let (_b, url) = start(&args).await;
    let mut got = messages(&url).await;
    // Two pipes: stdout's line and stderr's may come in either order.
    got.sort();
    assert_eq!(got, ["E> bad \u{fffd} \\u{1b}[2J", "E> oops", "out"]);
}

#[tokio::test]
async fn children_get_a_clean_environment_and_what_pass_env_names() {
    let show = "sh-c:echo \"${SECRET_TOKEN-unset} ${KEEP-unset} ${SET-unset} ${TERM-unset} \
                ${WSBRIDGE_BASIC_AUTH-unset} ${http_proxy-unset} ${HTTP_PROXY-unset} \
                ${LC_TIME-unset} path=${PATH:+set}\"";
    let run = |extra: &'static [&'static str]| {
        let mut args = vec!["ws-listen:127.0.0.1:0", "--pass-env", "KEEP", "--pass-env"];
        args.extend(["SET=v", "--pass-env", "WSBRIDGE_BASIC_AUTH"]);
        args.extend(["--pass-env", "http_proxy", "--pass-env", "HTTP_PROXY"]);
        args.extend(extra);
        args.push(show);
        let mut cmd = harness::command(&args);
        cmd.env("SECRET_TOKEN", "S3CRET-token")
            .env("KEEP", "kept")
            .env("LC_TIME", "C")
            .env("WSBRIDGE_BASIC_AUTH", "alice:S3CRET-basic")
            .env("http_proxy", "http://127.0.0.1:3129")
            .env("HTTP_PROXY", "http://u:S3CRET-http@127.0.0.1:9");
        Bridge::spawn_cmd(cmd)
    };
    let mut b = run(&[]);
    let url = b.listening().await;
    assert_eq!(
        messages(&url).await,
        ["unset kept v unset unset http://127.0.0.1:3129 unset C path=set"]
    );
    let mut b = run(&["--pty"]);
    let url = b.listening().await;
    let got = messages(&url).await;
    assert_eq!(
        got,
        ["unset kept v dumb unset http://127.0.0.1:3129 unset C path=set"]
    );
}

#[tokio::test]
async fn exec_option_mistakes_are_one_line_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--pty", "tcp-listen:127.0.0.1:0", "tcp:127.0.0.1:9"],
            "--pty needs exec:",
        ),
        (
            &["--pty-size", "80x25", "ws-listen:127.0.0.1:0", "exec:cat"],
            "--pty-size needs --pty",
        ),
        (
            &[
                "--exec-stderr",
                "client",
                "tcp-listen:127.0.0.1:0",
                "exec:cat",
            ],
            "needs a WebSocket",
        ),
        (
            &["--pass-env", "1BAD", "ws-listen:127.0.0.1:0", "exec:cat"],
            "--pass-env 1BAD",
        ),
        (
            &["--exec-dir", "/tmp", "ws-listen:127.0.0.1:0/x"],
            "drop '/x'",
        ),
        (
            &["--exec-dir", "/tmp", "tcp-listen:127.0.0.1:0"],
            "needs ws-listen:",
        ),
        (
            &["--exec-dir", "/tmp", "ws-listen:127.0.0.1:0", "exec:cat"],
            "place of ADDR2",
        ),
        (&["exec-dir:/tmp", "ws://127.0.0.1:9/"], "must be ADDR2"),
    ];
    for (args, want) in cases {
        let f = harness::run(args, b"").await;
        assert_eq!(f.code, Some(2), "{args:?}: {}", f.stderr);
        harness::assert_one_line_error(&f, want);
    }
    // clap's own message for a value it cannot parse.
    let f = harness::run(
        &[
            "--pty",
            "--pty-size",
            "wide",
            "ws-listen:127.0.0.1:0",
            "exec:cat",
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2));
    assert!(
        f.stderr.contains("is not a terminal size COLSxROWS"),
        "{}",
        f.stderr
    );
}

#[tokio::test]
async fn chromium_console_shows_a_pty_programs_output_as_it_is_produced() {
    // sed writes to a pipe in 4 KiB blocks and to a terminal a line at a time: with --pty each
    // answer shows while the program runs (and the input is not echoed back).
    let loop_ = "sh-c:while read l; do echo \"got $l\"; done | sed 's/^/> /'";
    let args = ["-v", "--pty", "--console", "ws-listen:127.0.0.1:0", loop_];
    let (mut b, url) = start(&args).await;
    let addr = harness::host_port(&url);
    let mut browser = chromium::Browser::launch().await;
    browser.open(&format!("http://{addr}/?send=hello")).await;
    browser.click("connect").await;
    browser
        .wait_until(r#"document.getElementById("status").textContent === "connected""#)
        .await;
    b.stderr_contains(": accepted").await;
    for word in ["hello", "again"] {
        browser
            .eval(&format!(
                r#"document.getElementById("message").value = "{word}""#
            ))
            .await;
        browser.click("send").await;
        browser
            .wait_until(&format!(
                r##"[...document.querySelectorAll("#log li.in")]
                    .some((li) => li.lastChild.textContent === "> got {word}")"##
            ))
            .await;
    }
    let incoming = browser
        .eval(r##"[...document.querySelectorAll("#log li.in")].map((li) => li.lastChild.textContent)"##)
        .await;
    assert_eq!(incoming, serde_json::json!(["> got hello", "> got again"]));
}
