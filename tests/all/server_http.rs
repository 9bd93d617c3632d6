//! `ws-listen:` as a plain HTTP server: `/healthz`, the console page (only with `--console`),
//! `--static` (its path confinement, hidden files, large files to slow and stalled clients), error
//! statuses for bad requests, the handshake timeout against slow clients and garbage, and a real
//! browser (headless Chromium): a `?send=` link sends nothing, a user's clicks send and echo.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{self, Bridge, LIMIT, chromium, random_bytes};
use serde_json::json;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Start `wsbridge ARGS` and return it with the TCP address it listens on.
async fn start(args: &[&str]) -> (Bridge, String) {
    let mut b = Bridge::spawn(args);
    let addr = harness::host_port(&b.listening().await);
    (b, addr)
}

#[derive(Debug)]
struct Response {
    status: u16,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parse a complete `Connection: close` response; its Content-Length must match the body.
fn parse_response(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
    let body = raw[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line:?}");
    let status: u16 = parts.next().unwrap().parse().expect("status code");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let r = Response {
        status,
        headers,
        body,
    };
    let len: usize = r
        .header("content-length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, r.body.len(), "Content-Length vs body: {r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    r
}

/// Send `request` as is and read the whole answer (the server closes after it), bounded.
async fn exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write request");
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut out))
        .await
        .expect("the server did not close in time")
        .expect("read response");
    out
}

async fn get(addr: &str, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n");
    parse_response(&exchange(addr, req.as_bytes()).await)
}

async fn assert_healthy(addr: &str) {
    let r = get(addr, "/healthz").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"ok\n");
}

#[tokio::test]
async fn healthz_console_and_error_statuses() {
    let (_b, addr) = start(&["ws-listen:127.0.0.1:0", "mirror:", "--console"]).await;

    // /healthz: the exact bytes.
    let raw = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&raw),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\r\nok\n"
    );
    // A query string does not matter; HEAD has the head only.
    let r = get(&addr, "/healthz?probe=1").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    let raw = exchange(&addr, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"),
        "{text:?}"
    );
    assert!(text.contains("Content-Length: 3\r\n"), "{text:?}");

    // The console page at /, with the WebSocket path filled in; no other site may frame it.
    let r = get(&addr, "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("frame-ancestors 'none'")
    );
    let page = r.body_str();
    assert!(page.contains("<title>wsbridge console</title>"), "{page}");
    assert!(page.contains("const WS_PATH = \"/\";"), "{page}");
    assert!(
        !page.contains("{{WS_PATH}}"),
        "placeholder left in the page"
    );

    // Unknown path → 404; other methods → 405.
    let r = get(&addr, "/nope").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body_str(), "not found\n");
    let raw = exchange(
        &addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let r = parse_response(&raw);
    assert_eq!(r.status, 405, "{r:?}");
    assert!(raw.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n"));

    // Garbage → 400 (the server has read all of it, so the answer is not lost to a reset).
    let raw = exchange(&addr, b"\x00\x01\x02 this is not HTTP\r\n\r\n").await;
    let r = parse_response(&raw);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(raw.starts_with(b"HTTP/1.1 400 Bad Request\r\n"), "{r:?}");
    // HTTP/1.0 is refused too.
    let r = parse_response(&exchange(&addr, b"GET / HTTP/1.0\r\n\r\n").await);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body_str(), "HTTP/1.1 required\n");

    assert_healthy(&addr).await;
}

#[tokio::test]
async fn request_head_over_16_kib_is_431() {
    let (_b, addr) = start(&["ws-listen:127.0.0.1:0", "mirror:"]).await;
    // A head of 16 KiB + 1 byte that has not ended yet → 431.
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ".to_vec();
    big.resize(16 * 1024 + 1, b'a');
    let raw = exchange(&addr, &big).await;
    let r = parse_response(&raw);
    assert_eq!(r.status, 431, "{r:?}");
    assert!(raw.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));

    // A complete head of exactly 16 KiB is fine.
    let mut ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ".to_vec();
    ok.resize(16 * 1024 - 4, b'a');
    ok.extend_from_slice(b"\r\n\r\n");
    let r = parse_response(&exchange(&addr, &ok).await);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));

    // A complete head of 16 KiB + 1 byte (what a real client sends) → 431 as well.
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ".to_vec();
    big.resize(16 * 1024 + 1 - 4, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(big.len(), 16 * 1024 + 1);
    let r = parse_response(&exchange(&addr, &big).await);
    assert_eq!(
        r.status,
        431,
        "a complete head of 16 KiB + 1 byte was answered with {} (body {} bytes): the size limit \
         must hold for complete heads too, not only while the head is incomplete",
        r.status,
        r.body.len()
    );

    assert_healthy(&addr).await;
}

#[tokio::test]
async fn the_console_is_served_only_with_console() {
    // Off by default; --no-console is still accepted and changes nothing.
    for extra in [None, Some("--no-console")] {
        let mut args = vec!["ws-listen:127.0.0.1:0", "mirror:"];
        args.extend(extra);
        let (_b, addr) = start(&args).await;
        for path in ["/", "/?send=hello", "/index.html"] {
            let r = get(&addr, path).await;
            assert_eq!(r.status, 404, "{extra:?} {path}: {r:?}");
            assert!(!r.body_str().contains("wsbridge console"));
        }
        let raw = exchange(&addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(raw.starts_with(b"HTTP/1.1 404 "), "{extra:?}");
        assert_healthy(&addr).await;
    }
    // Asking for both, or for the page without a WebSocket server, is a usage error.
    let both = harness::run(
        &[
            "ws-listen:127.0.0.1:0",
            "mirror:",
            "--console",
            "--no-console",
        ],
        b"",
    )
    .await;
    assert_eq!(both.code, Some(2), "{}", both.stderr);
    assert!(both.stderr.contains("--no-console"), "{}", both.stderr);
    let f = harness::run(&["tcp-listen:127.0.0.1:0", "mirror:", "--console"], b"").await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    harness::assert_one_line_error(&f, "--console needs ws-listen:");
}

#[tokio::test]
async fn console_page_names_the_listener_path() {
    let (_b, addr) = start(&["ws-listen:127.0.0.1:0/chat", "mirror:", "--console"]).await;
    let r = get(&addr, "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body_str().contains("const WS_PATH = \"/chat\";"));
}

/// tempdir/{www/…, secret.txt}: `www` is served, the secret next to it must never be.
struct StaticTree {
    _dir: tempfile::TempDir,
    www: PathBuf,
}

fn static_tree() -> StaticTree {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let w = |rel: &str, data: &str| {
        let p = www.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET\n").unwrap();
    w("hello.txt", "hello, static\n");
    w("app.js", "console.log(1);\n");
    w("style.CSS", "body{}\n");
    w("data.bin", "\x00\x01");
    w("sub/index.html", "<p>sub index</p>\n");
    w("sub/dir/inner.json", "{\"a\":1}\n");
    w("noindex/file.txt", "x\n");
    w("with space.txt", "spaced\n");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), www.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), www.join("up")).unwrap();
    std::os::unix::fs::symlink(www.join("hello.txt"), www.join("inside.txt")).unwrap();
    StaticTree { _dir: dir, www }
}

#[tokio::test]
async fn static_files_are_served_with_their_types() {
    let tree = static_tree();
    let www = tree.www.to_str().unwrap();
    let args = [
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--static",
        www,
        "--console",
    ];
    let (_b, addr) = start(&args).await;

    let cases: &[(&str, &str, &[u8])] = &[
        (
            "/hello.txt",
            "text/plain; charset=utf-8",
            b"hello, static\n",
        ),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            b"console.log(1);\n",
        ),
        ("/style.CSS", "text/css; charset=utf-8", b"body{}\n"),
        ("/data.bin", "application/octet-stream", b"\x00\x01"),
        ("/sub/dir/inner.json", "application/json", b"{\"a\":1}\n"),
        ("/sub/", "text/html; charset=utf-8", b"<p>sub index</p>\n"),
        ("/sub", "text/html; charset=utf-8", b"<p>sub index</p>\n"),
        (
            "/sub/?x=1",
            "text/html; charset=utf-8",
            b"<p>sub index</p>\n",
        ),
        (
            "/with%20space.txt",
            "text/plain; charset=utf-8",
            b"spaced\n",
        ),
        (
            "/%68ello.txt",
            "text/plain; charset=utf-8",
            b"hello, static\n",
        ),
        // A symlink that stays inside the directory is fine.
        (
            "/inside.txt",
            "text/plain; charset=utf-8",
            b"hello, static\n",
        ),
    ];
    for (path, ctype, body) in cases {
        let r = get(&addr, path).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("content-type"), Some(*ctype), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.body, *body, "{path}");
    }
    // HEAD: the head only.
    let raw = exchange(&addr, b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("Content-Length: 14\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");

    // No index.html, no file → 404; the console page is still at / (no index.html at the top).
    assert_eq!(get(&addr, "/noindex/").await.status, 404);
    assert_eq!(get(&addr, "/missing.txt").await.status, 404);
    let r = get(&addr, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains("wsbridge console"));
    assert_healthy(&addr).await;
}

#[tokio::test]
async fn static_never_serves_outside_its_directory() {
    let tree = static_tree();
    assert!(tree.www.parent().unwrap().join("secret.txt").is_file());
    let www = tree.www.to_str().unwrap();
    let (_b, addr) = start(&["ws-listen:127.0.0.1:0", "mirror:", "--static", www]).await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/./../secret.txt",
        "//../secret.txt",
        "/..%5csecret.txt",
        "/hello.txt%00.html",
        "/%zz",
        // Symlinks inside the directory that point outside it.
        "/link.txt",
        "/up/secret.txt",
    ] {
        let r = get(&addr, path).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.body_str().contains("TOP SECRET"), "{path}: {r:?}");
    }
    // An absolute path-form target cannot escape either.
    let secret = tree.www.parent().unwrap().join("secret.txt");
    let r = get(&addr, secret.to_str().unwrap()).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_healthy(&addr).await;
}

#[tokio::test]
async fn static_never_serves_hidden_files() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path();
    let w = |rel: &str, data: &str| {
        let p = www.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w(".env", "HIDDEN env\n");
    w(".git/config", "HIDDEN git config\n");
    w(".git/index.html", "HIDDEN git index\n");
    w("a/.git/x", "HIDDEN nested\n");
    w("a/.hidden/index.html", "HIDDEN nested index\n");
    w("a/visible.txt", "visible\n");
    w(
        ".well-known/security.txt",
        "Contact: mailto:a@example.org\n",
    );
    w(".well-known/.secret", "HIDDEN under well-known\n");
    // A visible name that leads into a hidden directory.
    std::os::unix::fs::symlink(www.join(".git"), www.join("repo")).unwrap();
    let (_b, addr) = start(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--static",
        www.to_str().unwrap(),
    ])
    .await;
    for path in [
        "/.env",
        "/.env?x=1",
        "//.env",
        "/%2eenv",
        "/%2Eenv",
        "/.%65nv",
        "/.git/config",
        "/%2egit/config",
        "/%2Egit/config",
        "/%2egit%2fconfig",
        "/.git/",
        "/.git",
        "/%2egit/",
        "/a/.git/x",
        "/a/%2egit/x",
        "/a/.hidden/",
        "/a/.hidden",
        "/a/%2ehidden/index.html",
        "/repo/config",
        "/repo/",
        "/.well-known/.secret",
        "/.well-known/%2esecret",
    ] {
        for method in ["GET", "HEAD"] {
            let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let raw = exchange(&addr, req.as_bytes()).await;
            let text = String::from_utf8_lossy(&raw);
            assert!(
                text.starts_with("HTTP/1.1 404 "),
                "{method} {path}: {text:?}"
            );
            assert!(!text.contains("HIDDEN"), "{method} {path}: {text:?}");
        }
    }
    // What is not hidden is served: the nested directory, and .well-known itself.
    let r = get(&addr, "/a/visible.txt").await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "visible\n"));
    let r = get(&addr, "/.well-known/security.txt").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body_str().starts_with("Contact:"), "{r:?}");
}

#[tokio::test]
async fn static_index_html_at_the_top_replaces_the_console() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>mine</h1>\n").unwrap();
    let (_b, addr) = start(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--console",
        "--static",
        dir.path().to_str().unwrap(),
    ])
    .await;
    let r = get(&addr, "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.body, b"<h1>mine</h1>\n");
}

/// A sparse 64 MiB `big.bin` whose last bytes are `BIG_END`, in a fresh directory.
const BIG: u64 = 64 << 20;
const BIG_END: &[u8] = b"-- end of big.bin";

fn big_file() -> tempfile::TempDir {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    f.seek(SeekFrom::Start(BIG - BIG_END.len() as u64)).unwrap();
    f.write_all(BIG_END).unwrap();
    dir
}

/// `--static` with `big_file()`, and an idle bound of 1 s (`--handshake-timeout`), at `-v`.
async fn serve_big() -> (tempfile::TempDir, Bridge, String) {
    let dir = big_file();
    let www = dir.path().to_str().unwrap();
    let (b, addr) = start(&[
        "-v",
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--static",
        www,
        "--handshake-timeout",
        "1s",
    ])
    .await;
    (dir, b, addr)
}

/// Ask for `/big.bin` on a socket with a small, fixed receive buffer (no autotuning), so that
/// the server waits whenever the client does.
async fn request_big(addr: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(256 * 1024).unwrap();
    let mut s = sock.connect(addr.parse().unwrap()).await.unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    s
}

/// Read to EOF, pausing `pause` after each MiB: (head, total bytes, the last 64 bytes).
async fn read_slowly(s: &mut TcpStream, pause: Duration) -> (String, u64, Vec<u8>) {
    let (mut head, mut tail, mut total) = (Vec::new(), Vec::new(), 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        if head.len() < 4096 {
            head.extend_from_slice(&buf[..n.min(4096)]);
        }
        tail.extend_from_slice(&buf[..n]);
        tail.drain(..tail.len().saturating_sub(64));
        if (total >> 20) != ((total + n as u64) >> 20) {
            tokio::time::sleep(pause).await;
        }
        total += n as u64;
    }
    (String::from_utf8_lossy(&head).into_owned(), total, tail)
}

#[tokio::test]
async fn a_large_static_file_reaches_a_slow_client_in_full() {
    // The idle bound is the handshake timeout, 1 s here; the client takes longer than that in
    // all, but never waits that long between reads.
    let (_dir, _b, addr) = serve_big().await;
    let started = Instant::now();
    let mut s = request_big(&addr).await;
    let (head, total, tail) =
        tokio::time::timeout(LIMIT, read_slowly(&mut s, Duration::from_millis(40)))
            .await
            .expect("the whole file within 20 s");
    let took = started.elapsed();
    eprintln!("{total} bytes in {took:?}");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert!(
        head.contains(&format!("Content-Length: {BIG}\r\n")),
        "{head:?}"
    );
    let head_len = head.find("\r\n\r\n").unwrap() as u64 + 4;
    assert_eq!(total - head_len, BIG, "cut after {took:?}");
    assert!(tail.ends_with(BIG_END));
    assert!(
        took > Duration::from_secs(2),
        "not slow enough to test: {took:?}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_a_large_file_is_dropped() {
    let (_dir, mut b, addr) = serve_big().await;
    let mut s = request_big(&addr).await;
    let mut first = [0u8; 16];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r");
    // The client reads nothing more; once the buffers are full, the server waits 1 s for it.
    let line = b.stderr_contains("answer not taken").await;
    assert!(line.contains("nothing read for 1s; dropped"), "{line}");
    // What was already in flight arrives, then the end: far less than the file.
    let (_, rest, _) = tokio::time::timeout(LIMIT, read_slowly(&mut s, Duration::ZERO))
        .await
        .expect("EOF in time");
    assert!(rest < BIG / 2, "got {rest} bytes after the drop");
    assert_healthy(&addr).await;
}

#[tokio::test]
async fn slowloris_is_dropped_after_the_handshake_timeout() {
    let (_b, addr) = start(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--handshake-timeout",
        "500ms",
    ])
    .await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Ag")
        .await
        .unwrap();
    // The slow client waits for its answer in the background.
    let slow_task = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let res = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
        let at = Instant::now();
        let n = res
            .expect("slow client still connected 5 s after a 500 ms handshake timeout")
            .expect("EOF, not an error");
        (at, buf[..n].to_vec())
    });
    // Meanwhile, other clients are served: before the slow one is dropped, not after it.
    for _ in 0..3 {
        assert_healthy(&addr).await;
    }
    let served = Instant::now();
    let (dropped, got) = slow_task.await.unwrap();
    // The slow client gets EOF, without an answer, once its 500 ms are up.
    assert_eq!(
        got,
        b"",
        "expected EOF, got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        served < dropped,
        "normal clients were served only after the slow one was dropped ({:?} vs {:?})",
        served - started,
        dropped - started
    );
    let waited = dropped - started;
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_millis(3000),
        "dropped after {waited:?}"
    );
    assert_healthy(&addr).await;
}

#[tokio::test]
async fn trickling_client_is_dropped_after_the_handshake_timeout() {
    // One byte every 50 ms: progress does not extend the deadline.
    let (_b, addr) = start(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--handshake-timeout",
        "500ms",
    ])
    .await;
    let started = Instant::now();
    let slow = TcpStream::connect(&addr).await.unwrap();
    let (mut r, mut w) = slow.into_split();
    let writer = tokio::spawn(async move {
        let head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".iter();
        let mut interval = tokio::time::interval(Duration::from_millis(50));
        for b in head.chain(std::iter::repeat(&b'z')).take(200) {
            interval.tick().await;
            if w.write_all(&[*b]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 64];
    let res = tokio::time::timeout(Duration::from_secs(5), r.read(&mut buf))
        .await
        .expect("trickling client still connected 5 s after a 500 ms handshake timeout");
    let waited = started.elapsed();
    // EOF, or a reset when a byte was in flight as the server closed: either way, gone.
    if let Ok(n) = res {
        assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        waited >= Duration::from_millis(450),
        "dropped after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(3000),
        "dropped after {waited:?}"
    );
    writer.abort();
    assert_healthy(&addr).await;
}

#[tokio::test]
async fn random_garbage_connections_are_all_closed_in_time() {
    let timeout = Duration::from_millis(1000);
    let (_b, addr) = start(&[
        "ws-listen:127.0.0.1:0",
        "mirror:",
        "--handshake-timeout",
        "1s",
    ])
    .await;
    let valid: &[u8] =
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let seed = 0x5eed_0000 + i;
        let r = random_bytes(4, seed ^ 0xabc);
        let len = 1 + u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize % 20_000;
        let noise = random_bytes(len, seed);
        let cut = 1 + (seed as usize * 7) % (valid.len() - 1);
        let printable = noise.iter().map(|b| b'a' + b % 26);
        let blob = match i % 5 {
            // Pure noise.
            0 => noise,
            // A real upgrade that goes wrong somewhere.
            1 | 4 => {
                let mut b = valid[..cut].to_vec();
                b.extend_from_slice(&noise);
                b
            }
            // A real upgrade that stops short: never completed.
            2 => valid[..cut].to_vec(),
            // A header line that goes on and on (over 16 KiB for the longer ones).
            _ => {
                let mut b = valid.to_vec();
                b.extend_from_slice(b"X-Junk: ");
                b.extend(printable);
                b
            }
        };
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = TcpStream::connect(&addr).await.unwrap();
            let (mut r, mut w) = s.split();
            // Write (the server may close before taking it all) while reading until closed.
            let write = async {
                let _ = w.write_all(&blob).await;
            };
            let read = async {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => return got,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let bound = timeout + Duration::from_secs(3);
            let (_, got) = tokio::time::timeout(bound, async { tokio::join!(write, read) })
                .await
                .unwrap_or_else(|_| {
                    panic!("blob {i} (seed {seed:#x}): not closed within {bound:?}")
                });
            if !got.is_empty() {
                let text = String::from_utf8_lossy(&got);
                assert!(
                    text.starts_with("HTTP/1.1 4"),
                    "blob {i} (seed {seed:#x}): unexpected answer {text:?}"
                );
            }
            let status = String::from_utf8_lossy(got.get(9..12).unwrap_or_default()).into_owned();
            (started.elapsed(), status)
        }));
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (took, status) = t.await.unwrap_or_else(|e| panic!("blob {i}: {e}"));
        assert!(
            took < timeout + Duration::from_secs(3),
            "blob {i}: {took:?}"
        );
        *outcomes.entry(status).or_default() += 1;
    }
    eprintln!("outcomes (status, or \"\" for dropped without an answer): {outcomes:?}");
    // The blobs exercise each way out: refused at once, too large, and timed out.
    for kind in ["400", "431", ""] {
        assert!(
            outcomes.contains_key(kind),
            "no {kind:?} outcome: {outcomes:?}"
        );
    }
    assert_eq!(outcomes.values().sum::<usize>(), 50);
    assert!(
        outcomes
            .keys()
            .all(|k| ["400", "431", ""].contains(&k.as_str())),
        "{outcomes:?}"
    );
    assert_healthy(&addr).await;
}

/// A TCP server that echoes what it gets and records it: (connections, bytes received).
async fn recorder() -> (String, watch::Receiver<(usize, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = watch::channel((0, Vec::new()));
    let tx = Arc::new(tx);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tx.send_modify(|r| r.0 += 1);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    tx.send_modify(|r| r.1.extend_from_slice(&buf[..n]));
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn chromium_following_a_send_link_sends_nothing() {
    // Any web page can send a visitor to /?send=TEXT: the page must not connect or send.
    let (backend, seen) = recorder().await;
    let tcp = format!("tcp:{backend}");
    let (_b, addr) = start(&["-v", "ws-listen:127.0.0.1:0", "--console", &tcp]).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/?send=rm%20-rf%20~");
    let dom = chromium::dump_dom(&url, profile.path()).await;
    // The page ran and read ?send= …
    assert!(
        dom.contains("?send= filled in the message: press Connect, then Send"),
        "{dom}"
    );
    // … and neither connected nor sent.
    assert!(
        dom.contains(r#"<span id="status">disconnected</span>"#),
        "{dom}"
    );
    assert!(!dom.contains(r#"class="out""#), "the page sent: {dom}");
    assert_eq!(*seen.borrow(), (0, Vec::new()), "the backend was reached");
}

#[tokio::test]
async fn chromium_console_sends_after_clicks_and_shows_the_echo() {
    let (backend, seen) = recorder().await;
    let tcp = format!("tcp:{backend}");
    let (mut b, addr) = start(&["-v", "ws-listen:127.0.0.1:0", "--console", &tcp]).await;
    let mut browser = chromium::Browser::launch().await;
    browser
        .open(&format!("http://{addr}/?send=hello%20chromium"))
        .await;
    // ?send= filled in the message; Send waits for a connection.
    let field = browser.eval(r#"document.getElementById("message").value"#);
    assert_eq!(field.await, "hello chromium");
    let disabled = browser.eval(r#"document.getElementById("send").disabled"#);
    assert_eq!(disabled.await, true);

    browser.click("connect").await;
    browser
        .wait_until(r#"document.getElementById("status").textContent === "connected""#)
        .await;
    b.stderr_contains(": accepted").await;
    browser.click("send").await;
    // The message goes through the backend and comes back, shown as an incoming text message.
    browser
        .wait_until(
            r##"[...document.querySelectorAll("#log li.in")]
                .some((li) => li.lastChild.textContent === "hello chromium")"##,
        )
        .await;
    assert_eq!(*seen.borrow(), (1, b"hello chromium\n".to_vec()));
    let sent = browser.eval(
        r##"[...document.querySelectorAll("#log li.out")].map((li) => li.lastChild.textContent)"##,
    );
    assert_eq!(sent.await, json!(["hello chromium"]));
    // The server saw a real WebSocket session from the page, which ends when the page goes.
    drop(browser);
    b.stderr_contains(": session ended").await;
}
