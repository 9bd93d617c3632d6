//! Third-party peer over TLS: the `wss://` client with bearer-token auth against Python `websockets`
//! (tests/peers/ws_server.py), trusting a throwaway test CA made with rcgen.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Bridge, LIMIT, assert_one_line_error, random_bytes, run};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TOKEN: &str = "tok-5b1e9c0d7a";
const WRONG_TOKEN: &str = "wrong-tok-83f2a6";

/// Python websockets answers our Close at once and drops echoes it has not sent yet, so every
/// session that expects all its echoes passes `--linger`: wsbridge then waits until nothing has
/// arrived for this long after local EOF before it sends Close.
const LINGER: &str = "500ms";

/// A running `ws_server.py` with its certificates; both go away when this is dropped (the child
/// is spawned with `kill_on_drop`).
struct PyServer {
    dir: TempDir,
    port: u16,
    _child: Child,
}

impl PyServer {
    /// Make a test CA and a leaf for `localhost` only, then start the Python server with the leaf.
    async fn start() -> PyServer {
        let python = std::env::var_os("WSBRIDGE_TEST_PYTHON").unwrap_or_else(|| {
            panic!(
                "WSBRIDGE_TEST_PYTHON is not set: run the tests with `scripts/test`, which creates \
                 .venv with the pinned Python websockets and points this variable at it"
            )
        });
        let dir = tempfile::tempdir().expect("tempdir");
        write_certs(dir.path());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ws_server.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--key")
            .arg(dir.path().join("key.pem"))
            .args(["--token", TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python:?} {script:?}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let port = tokio::time::timeout(LIMIT, async {
            while let Some(line) = lines.next_line().await.expect("read server stdout") {
                if let Some(p) = line.strip_prefix("PORT ") {
                    return p.trim().parse::<u16>().expect("port number");
                }
            }
            panic!("ws_server.py exited without printing 'PORT n'");
        })
        .await
        .expect("ws_server.py did not print 'PORT n' in time");
        PyServer {
            dir,
            port,
            _child: child,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> String {
        self.file("ca.pem").to_str().expect("utf8 path").to_string()
    }

    fn url(&self) -> String {
        format!("wss://localhost:{}/", self.port)
    }
}

/// Write ca.pem (a self-signed CA), cert.pem (a leaf for `localhost` signed by it) and key.pem.
fn write_certs(dir: &Path) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsbridge test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let ca = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf cert");

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("cert.pem"), leaf.pem()).expect("write cert.pem");
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).expect("write key.pem");
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
    let mut cmd = common::command(&["-H", &auth, "--linger", LINGER, &url]);
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
