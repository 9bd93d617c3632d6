//! The usual self-signed certificate (issue #11): made with the recipe everyone copies,
//! `openssl req -x509 -newkey rsa:2048 -nodes ... -addext subjectAltName=...`, which marks it
//! CA:TRUE. Trusted by exact match when configured (`--ca-file`, `SSL_CERT_FILE`, the system
//! store, `--tls-client-ca`); refused with a one-line reason otherwise (not trusted, wrong host
//! name, expired). Peers: Python websockets (tests/peers/tls_echo_server.py, ws_client.py) and
//! wsbridge itself. Needs the `openssl` command and the test Python (`scripts/test`).

use std::process::Stdio;

use crate::harness::peers::{self, Peer, python};
use crate::harness::pki::SelfSigned;
use crate::harness::{self, Bridge, Finished, LIMIT, assert_one_line_error};

/// Python websockets answers our Close at once and drops echoes it has not sent yet: wait for
/// quiet before closing (see tls_python.rs).
const LINGER: &str = "300ms";

/// tests/peers/tls_echo_server.py with `NAME.pem` / `NAME.key`.
async fn echo_server(certs: &SelfSigned, name: &str) -> Peer {
    let mut cmd = peers::python_peer("tls_echo_server.py");
    cmd.arg("--cert")
        .arg(certs.path(&format!("{name}.pem")))
        .arg("--key")
        .arg(certs.path(&format!("{name}.key")));
    Peer::start(cmd, peers::port_line).await
}

async fn run(cmd: tokio::process::Command, input: &[u8]) -> Finished {
    harness::run_cmd(cmd, input).await
}

/// A refusal: exit 5 (TLS), nothing relayed, one line with `needle`, no Rust debug text.
#[track_caller]
fn assert_tls_refusal(f: &Finished, needle: &str) {
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert_one_line_error(f, needle);
    for debug in ["Other(", "OtherError", "CaUsedAsEndEntity", "Context {"] {
        assert!(!f.stderr.contains(debug), "debug text in {:?}", f.stderr);
    }
}

#[tokio::test]
async fn the_openssl_certificate_is_trusted_with_ca_file_by_name_and_by_ip() {
    let certs = SelfSigned::new();
    certs.openssl("cert", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    let server = echo_server(&certs, "cert").await;
    let ca = certs.arg("cert.pem");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", server.port);
        let args = ["--ca-file", &ca, "--linger", LINGER, &url];
        let f = run(harness::command(&args), b"hello\n").await;
        assert_eq!(f.code, Some(0), "{host}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "hello\n");
    }
}

#[tokio::test]
async fn the_openssl_certificate_is_trusted_from_ssl_cert_file_and_the_system_store() {
    let certs = SelfSigned::new();
    certs.openssl("cert", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    let server = echo_server(&certs, "cert").await;
    let url = format!("wss://localhost:{}/", server.port);
    // With --tls-roots system, SSL_CERT_FILE is what rustls-native-certs reads as the store.
    for roots in ["webpki", "system"] {
        let mut cmd = harness::command(&["--tls-roots", roots, "--linger", LINGER, &url]);
        cmd.env("SSL_CERT_FILE", certs.path("cert.pem"));
        cmd.env_remove("SSL_CERT_DIR");
        let f = run(cmd, b"from the environment\n").await;
        assert_eq!(f.code, Some(0), "--tls-roots {roots}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "from the environment\n");
    }
}

#[tokio::test]
async fn without_it_the_error_names_the_certificate_and_the_fix() {
    let certs = SelfSigned::new();
    certs.openssl("cert", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    certs.openssl("other", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    let server = echo_server(&certs, "cert").await;
    let url = format!("wss://localhost:{}/", server.port);

    let f = run(harness::command(&[&url]), b"x\n").await;
    assert_tls_refusal(&f, &format!("{url}: TLS failed: certificate not trusted: "));
    assert_one_line_error(&f, "a CA certificate ('CN=localhost', self-signed)");
    assert_one_line_error(&f, "pass it with --ca-file PEM");

    // Another certificate with the same names is not the one the server has.
    let f = run(
        harness::command(&["--ca-file", &certs.arg("other.pem"), &url]),
        b"x\n",
    )
    .await;
    assert_tls_refusal(&f, "certificate not trusted: ");
    assert_one_line_error(&f, "--ca-file");
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_cover_is_refused() {
    let certs = SelfSigned::new();
    certs.openssl("elsewhere", "other.example", Some("DNS:other.example"));
    let server = echo_server(&certs, "elsewhere").await;
    let ca = certs.arg("elsewhere.pem");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", server.port);
        let f = run(harness::command(&["--ca-file", &ca, &url]), b"x\n").await;
        assert_tls_refusal(
            &f,
            &format!("certificate is not valid for host '{host}': it covers only other.example"),
        );
    }
}

#[tokio::test]
async fn an_expired_certificate_is_refused_with_its_date() {
    let certs = SelfSigned::new();
    certs.expired("old");
    let server = echo_server(&certs, "old").await;
    let url = format!("wss://localhost:{}/", server.port);
    let f = run(
        harness::command(&["--ca-file", &certs.arg("old.pem"), &url]),
        b"x\n",
    )
    .await;
    assert_tls_refusal(&f, "certificate expired on 2021-01-01 00:00:00 UTC");
}

#[tokio::test]
async fn wss_listen_accepts_an_openssl_client_certificate_given_as_tls_client_ca() {
    let certs = SelfSigned::new();
    certs
        .openssl("server", "localhost", Some("DNS:localhost,IP:127.0.0.1"))
        .openssl("client", "wsbridge-client", None)
        .openssl("stranger", "stranger", None);
    let (cert, key) = (certs.arg("server.pem"), certs.arg("server.key"));
    let client_ca = certs.arg("client.pem");
    let mut b = Bridge::spawn(&[
        "-v",
        "wss-listen:127.0.0.1:0",
        "mirror:",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &client_ca,
    ]);
    let url = b.listening().await;

    // wsbridge as the client, trusting the server's openssl certificate the same way.
    let client = |name: &str| {
        let (c, k) = (
            certs.arg(&format!("{name}.pem")),
            certs.arg(&format!("{name}.key")),
        );
        let args = [
            "--ca-file",
            &cert,
            "--client-cert",
            &c,
            "--client-key",
            &k,
            &url,
        ];
        harness::command(&args)
    };
    let f = run(client("client"), b"mutual\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "mutual\n");

    // A third-party client (Python's ssl) with the same files.
    let lines = python_client(&certs, &url).await;
    assert_eq!(lines, ["open null", "text \"py\"", "closed 1000 \"\""]);

    // A certificate that is not in --tls-client-ca is refused, and the server says why.
    let f = run(client("stranger"), b"x\n").await;
    assert_tls_refusal(&f, "did not accept our client certificate");
    let line = b.stderr_contains("TLS handshake failed").await;
    assert!(
        line.contains("client certificate not trusted: the client presented a CA certificate ('CN=stranger', self-signed)")
            && line.contains("--tls-client-ca"),
        "{line}"
    );
}

/// tests/peers/ws_client.py with `client.pem`, trusting `server.pem`: one message and back.
async fn python_client(certs: &SelfSigned, url: &str) -> Vec<String> {
    let out = tokio::process::Command::new(python())
        .arg(peers::script("ws_client.py"))
        .arg(url)
        .arg("--cafile")
        .arg(certs.path("server.pem"))
        .arg("--certfile")
        .arg(certs.path("client.pem"))
        .arg("--keyfile")
        .arg(certs.path("client.key"))
        .args([
            "--script",
            r#"[["text", "py"], ["recv", 1], ["close", 1000, ""]]"#,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(LIMIT, out)
        .await
        .expect("ws_client.py did not finish in time")
        .expect("run ws_client.py");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
