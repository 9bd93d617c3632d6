//! The WebSocket client through real proxies on loopback: Python `pproxy` (PyPI) as an HTTP
//! CONNECT proxy and as a SOCKS5 proxy, both with user/password authentication; proxies from
//! the environment (HTTPS_PROXY, ALL_PROXY, lower case too) and NO_PROXY; refusals.

use crate::harness::peers::{pproxy, tls_echo_server};
use crate::harness::pki::Pki;
use crate::harness::{self, Bridge, Finished, assert_one_line_error, closed_port, servers};

const USER: &str = "alice";
const PASSWORD: &str = "Pr0xyPa55word";
const WRONG: &str = "Wr0ngPa55word";

async fn run(mut cmd: tokio::process::Command, input: &[u8]) -> Finished {
    cmd.kill_on_drop(true);
    harness::run_cmd(cmd, input).await
}

/// Neither the password nor its base64 form (in `Proxy-Authorization`) may appear anywhere.
#[track_caller]
fn assert_no_password(f: &Finished, password: &str) {
    use base64::Engine;
    let all = format!("{}\n{}", f.stderr, f.stdout_str());
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    for secret in [password, b64.as_str()] {
        let leaks: Vec<&str> = all.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked: {leaks:?}");
    }
}

#[tokio::test]
async fn through_http_connect_proxy_with_auth() {
    let server = servers::echo().await;
    let mut proxy = pproxy("http", Some(&format!("{USER}:{PASSWORD}"))).await;
    let via = format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port);
    // `localhost`, not an IP: the proxy gets the host name and resolves it itself.
    let url = format!("ws://localhost:{}/x", server.port);
    let f = run(
        harness::command(&["-vvv", "--proxy", &via, &url]),
        b"one\ntwo\n",
    )
    .await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "one\ntwo\n");
    let line = proxy.line_with("http 127.0.0.1:").await;
    assert!(
        line.contains(&format!("-> localhost:{}", server.port)),
        "the proxy should open the tunnel to localhost by name: {line}"
    );
    assert_eq!(server.connections(), 1);
    assert!(
        f.stderr
            .contains(&format!("through proxy http://{USER}:***@127.0.0.1:")),
        "stderr: {}",
        f.stderr
    );
    assert_no_password(&f, PASSWORD);
}

#[tokio::test]
async fn through_socks5_proxy_with_auth() {
    let server = servers::echo().await;
    let mut proxy = pproxy("socks5", Some(&format!("{USER}:{PASSWORD}"))).await;
    let via = format!("socks5://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port);
    let url = format!("ws://localhost:{}/", server.port);
    let f = run(harness::command(&["-vvv", "--proxy", &via, &url]), b"hi\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "hi\n");
    let line = proxy.line_with("socks5 127.0.0.1:").await;
    // socks5h-style: the name went to the proxy, not an address we resolved.
    assert!(
        line.contains(&format!("-> localhost:{}", server.port)),
        "{line}"
    );
    assert_no_password(&f, PASSWORD);
}

#[tokio::test]
async fn http_proxy_refusing_wrong_password() {
    let server = servers::echo().await;
    let proxy = pproxy("http", Some(&format!("{USER}:{PASSWORD}"))).await;
    let url = format!("ws://127.0.0.1:{}/", server.port);
    for verbosity in [&[][..], &["-vvv"][..]] {
        let via = format!("http://{USER}:{WRONG}@127.0.0.1:{}", proxy.port);
        let mut args = verbosity.to_vec();
        args.extend(["--proxy", &via, &url]);
        let f = run(harness::command(&args), b"hi\n").await;
        assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
        assert_eq!(f.stdout, b"");
        let want = format!(
            "{url}: handshake refused: proxy http://{USER}:***@127.0.0.1:{} refused: HTTP 407 Proxy Authentication Required (the proxy user or password was not accepted)",
            proxy.port
        );
        if verbosity.is_empty() {
            assert_one_line_error(&f, &want);
        } else {
            assert!(f.stderr.contains(&want), "stderr: {}", f.stderr);
        }
        assert_no_password(&f, WRONG);
    }
    // Without credentials the error says what is missing.
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let f = run(harness::command(&["--proxy", &via, &url]), b"hi\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "the proxy needs a user and password");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn socks5_proxy_refusing_wrong_password() {
    let server = servers::echo().await;
    let proxy = pproxy("socks5", Some(&format!("{USER}:{PASSWORD}"))).await;
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let via = format!("socks5://{USER}:{WRONG}@127.0.0.1:{}", proxy.port);
    let f = run(harness::command(&["-vvv", "--proxy", &via, &url]), b"hi\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    let last = f.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "wsbridge: {url}: handshake refused: proxy socks5://{USER}:***@127.0.0.1:{} refused: ",
            proxy.port
        )) && last.contains("not accepted"),
        "stderr: {}",
        f.stderr
    );
    assert_no_password(&f, WRONG);

    // No credentials for a proxy that requires them.
    let via = format!("socks5://127.0.0.1:{}", proxy.port);
    let f = run(harness::command(&["--proxy", &via, &url]), b"hi\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "does it require a user and password?");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn proxy_that_is_not_there_is_a_connect_error() {
    let port = closed_port();
    let via = format!("socks5://{USER}:{PASSWORD}@127.0.0.1:{port}");
    let f = run(
        harness::command(&["--proxy", &via, "ws://example.invalid/"]),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(4), "stderr: {}", f.stderr);
    assert_one_line_error(
        &f,
        &format!(
            "ws://example.invalid/: connection failed: proxy socks5://{USER}:***@127.0.0.1:{port}: "
        ),
    );
    assert_no_password(&f, PASSWORD);
}

#[tokio::test]
async fn silent_proxy_times_out() {
    let silent = servers::silent().await;
    for scheme in ["http", "socks5"] {
        let via = format!("{scheme}://{USER}:{PASSWORD}@127.0.0.1:{silent}");
        let f = run(
            harness::command(&[
                "--connect-timeout",
                "300ms",
                "--proxy",
                &via,
                "ws://h.example/",
            ]),
            b"",
        )
        .await;
        assert_eq!(f.code, Some(7), "stderr: {}", f.stderr);
        assert_one_line_error(
            &f,
            "wsbridge: ws://h.example/: proxy negotiation timed out after 300ms",
        );
        assert_no_password(&f, PASSWORD);
    }
}

#[tokio::test]
async fn https_proxy_from_environment_for_wss() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, false).await;
    let mut proxy = pproxy("http", Some(&format!("{USER}:{PASSWORD}"))).await;
    let url = format!("wss://localhost:{}/", server.port);
    let ca = pki.arg("ca.pem");
    // HTTP_PROXY is for ws:// only: pointing it at a closed port must not matter here.
    let mut cmd = harness::command(&["-v", "--ca-file", &ca, "--linger", "300ms", &url]);
    cmd.env(
        "HTTPS_PROXY",
        format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port),
    )
    .env("HTTP_PROXY", format!("http://127.0.0.1:{}", closed_port()));
    let f = run(cmd, b"over tls\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "over tls\n");
    assert!(f.stderr.contains("(from HTTPS_PROXY)"), "{}", f.stderr);
    let line = proxy.line_with("http 127.0.0.1:").await;
    assert!(
        line.contains(&format!("-> localhost:{}", server.port)),
        "{line}"
    );
    assert_no_password(&f, PASSWORD);

    // `--proxy none` ignores the environment (the proxy variable points nowhere).
    let mut cmd = harness::command(&[
        "--proxy",
        "none",
        "--ca-file",
        &ca,
        "--linger",
        "300ms",
        &url,
    ]);
    cmd.env("https_proxy", format!("http://127.0.0.1:{}", closed_port()));
    let f = run(cmd, b"direct\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "direct\n");
}

#[tokio::test]
async fn all_proxy_from_environment_and_no_proxy_bypass() {
    let server = servers::echo().await;
    let mut proxy = pproxy("socks5", Some(&format!("{USER}:{PASSWORD}"))).await;
    let url = format!("ws://localhost:{}/", server.port);

    // all_proxy (lower case) is used for ws:// when no http_proxy is set.
    let mut cmd = harness::command(&["-v", &url]);
    cmd.env(
        "all_proxy",
        format!("socks5://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port),
    );
    let f = run(cmd, b"via socks\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "via socks\n");
    assert!(f.stderr.contains("(from all_proxy)"), "{}", f.stderr);
    let line = proxy.line_with("socks5 127.0.0.1:").await;
    assert!(
        line.contains(&format!("-> localhost:{}", server.port)),
        "{line}"
    );

    // NO_PROXY exempts the host: the connection is direct, although ALL_PROXY points at a port
    // where nothing listens (using it would fail with exit code 4).
    let dead = format!("socks5://127.0.0.1:{}", closed_port());
    for no_proxy in ["localhost", "example.com,.localhost", "*", "127.0.0.1"] {
        let host = if no_proxy == "127.0.0.1" {
            "127.0.0.1"
        } else {
            "localhost"
        };
        let url = format!("ws://{host}:{}/", server.port);
        let mut cmd = harness::command(&["-v", &url]);
        cmd.env("ALL_PROXY", &dead).env("NO_PROXY", no_proxy);
        let f = run(cmd, b"direct\n").await;
        assert_eq!(f.code, Some(0), "NO_PROXY={no_proxy}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "direct\n");
        assert!(!f.stderr.contains("through proxy"), "{}", f.stderr);
    }
    // A NO_PROXY that does not match leaves the (dead) proxy in use.
    let mut cmd = harness::command(&[&url]);
    cmd.env("ALL_PROXY", &dead)
        .env("no_proxy", "example.com,127.0.0.2");
    let f = run(cmd, b"x\n").await;
    assert_eq!(f.code, Some(4), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "connection failed: proxy socks5://127.0.0.1:");
}

#[tokio::test]
async fn bad_proxy_settings_are_usage_errors() {
    let f = run(
        harness::command(&["--proxy", "https://u:pw5@p:1", "ws://h/"]),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "https:// proxies (TLS to the proxy) are not supported");
    assert!(!f.stderr.contains("pw5"), "{}", f.stderr);

    let mut cmd = harness::command(&["ws://127.0.0.1:9/"]);
    cmd.env("HTTP_PROXY", "gopher://u:pw6@p:1");
    let f = run(cmd, b"").await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "HTTP_PROXY: proxy 'gopher://u:***@p:1'");
    assert!(!f.stderr.contains("pw6"), "{}", f.stderr);
}

/// A listener whose upstream goes through the proxy: each client gets its own tunnel.
#[tokio::test]
async fn listener_upstreams_use_the_proxy() {
    let server = servers::echo().await;
    let mut proxy = pproxy("http", None).await;
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let url = format!("ws://localhost:{}/", server.port);
    let mut b = Bridge::spawn_cmd(harness::command(&[
        "--proxy",
        &via,
        "tcp-listen:127.0.0.1:0",
        &url,
    ]));
    let addr = b.listening().await;
    for i in 0..2 {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (r, mut w) = tcp.into_split();
        w.write_all(format!("client {i}\n").as_bytes())
            .await
            .unwrap();
        let mut lines = tokio::io::BufReader::new(r).lines();
        let line = tokio::time::timeout(harness::LIMIT, lines.next_line())
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(line.as_deref(), Some(format!("client {i}").as_str()));
        proxy.line_with("-> localhost:").await;
    }
    assert_eq!(server.connections(), 2);
}
