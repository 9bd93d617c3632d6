//! Third-party peer over TLS: the `wss://` client with bearer-token auth against Python `websockets`
//! (tests/peers/ws_server.py), trusting a throwaway test CA made with rcgen.

use std::path::PathBuf;

use crate::harness::peers::{self, Peer};
use crate::harness::pki::Pki;
use crate::harness::{self, Bridge, assert_one_line_error, random_bytes, run};

const TOKEN: &str = "tok-5b1e9c0d7a";
const WRONG_TOKEN: &str = "wrong-tok-83f2a6";

/// Python websockets answers our Close at once and drops echoes it has not sent yet, so every
/// session that expects all its echoes passes `--linger`: wsbridge then waits until nothing has
/// arrived for this long after local EOF before it sends Close.
const LINGER: &str = "500ms";

/// A running `ws_server.py` with its certificates; both go away when this is dropped (the child
/// is spawned with `kill_on_drop`).
struct PyServer {
    pki: Pki,
    port: u16,
    _peer: Peer,
}

impl PyServer {
    /// Make a test CA and a leaf for `localhost` only, then start the Python server with the leaf.
    async fn start() -> PyServer {
        let pki = Pki::new();
        let mut cmd = peers::python_peer("ws_server.py");
        cmd.arg("--cert")
            .arg(pki.path("server.pem"))
            .arg("--key")
            .arg(pki.path("server.key"))
            .args(["--token", TOKEN]);
        let peer = Peer::start(cmd, peers::port_line).await;
        PyServer {
            pki,
            port: peer.port,
            _peer: peer,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.pki.path(name)
    }

    fn ca(&self) -> String {
        self.pki.arg("ca.pem")
    }

    fn url(&self) -> String {
        format!("wss://localhost:{}/", self.port)
    }
}

fn seq(n: usize) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Fail naming only the lines that contain `token` (-vvv output is long).
#[track_caller]
fn assert_no_token(stderr: &str, token: &str) {
    let leaks: Vec<&str> = stderr.lines().filter(|l| l.contains(token)).collect();
    assert!(leaks.is_empty(), "token appears in stderr: {leaks:?}");
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[tokio::test]
async fn lines_round_trip_with_ca_file() {
    let server = PyServer::start().await;
    let input = seq(200);
    let (ca, auth, url) = (server.ca(), bearer(TOKEN), server.url());
    let f = run(
        &["--ca-file", &ca, "-H", &auth, "--linger", LINGER, &url],
        &input,
    )
    .await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), String::from_utf8(input).unwrap());
}

#[tokio::test]
async fn lines_round_trip_with_ssl_cert_file() {
    let server = PyServer::start().await;
    let input = seq(200);
    let (auth, url) = (bearer(TOKEN), server.url());
    let mut cmd = harness::command(&["-H", &auth, "--linger", LINGER, &url]);
    cmd.env("SSL_CERT_FILE", server.file("ca.pem"));
    let mut b = Bridge::spawn_cmd(cmd);
    b.write_stdin(&input).await;
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), String::from_utf8(input).unwrap());
}

#[tokio::test]
async fn wrong_token_is_refused_and_never_printed() {
    let server = PyServer::start().await;
    let (ca, auth, url) = (server.ca(), bearer(WRONG_TOKEN), server.url());

    let f = run(&["--ca-file", &ca, "-H", &auth, &url], b"hello\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert_one_line_error(&f, "HTTP 401");
    assert_no_token(&f.stderr, WRONG_TOKEN);

    let f = run(&["-vvv", "--ca-file", &ca, "-H", &auth, &url], b"hello\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert!(f.stderr.contains("HTTP 401"), "stderr: {}", f.stderr);
    assert_no_token(&f.stderr, WRONG_TOKEN);
}

#[tokio::test]
async fn unknown_ca_is_not_trusted() {
    let server = PyServer::start().await;
    let (auth, url) = (bearer(TOKEN), server.url());
    let f = run(&["-H", &auth, &url], b"hello\n").await;
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert_one_line_error(&f, "certificate not trusted");
    // The issuer is named, with the fix.
    assert_one_line_error(&f, "issued by 'CN=wsbridge test CA'");
    assert_one_line_error(&f, "--ca-file PEM");
}

#[tokio::test]
async fn wrong_host_name_fails_unless_insecure() {
    let server = PyServer::start().await;
    let (ca, auth) = (server.ca(), bearer(TOKEN));
    let url = format!("wss://127.0.0.1:{}/", server.port);

    let f = run(&["--ca-file", &ca, "-H", &auth, &url], b"hello\n").await;
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert_one_line_error(
        &f,
        "not valid for host '127.0.0.1': it covers only localhost;",
    );

    let f = run(&["-k", "-H", &auth, "--linger", LINGER, &url], b"hello\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "hello\n");
}

#[tokio::test]
async fn binary_mebibyte_round_trips() {
    let server = PyServer::start().await;
    let data = random_bytes(1 << 20, 0x5eed_7153);
    let (ca, auth, url) = (server.ca(), bearer(TOKEN), server.url());
    let f = run(
        &[
            "-b",
            "--ca-file",
            &ca,
            "-H",
            &auth,
            "--linger",
            LINGER,
            &url,
        ],
        &data,
    )
    .await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout.len(), data.len(), "stderr: {}", f.stderr);
    assert!(f.stdout == data, "echoed bytes differ from the input");
}
