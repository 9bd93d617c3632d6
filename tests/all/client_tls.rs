//! TLS options of the WebSocket client against a third-party peer (Python websockets,
//! tests/peers/tls_echo_server.py) with a throwaway rcgen PKI: client certificates for a server
//! that requires them (mutual TLS), and `--tls-roots`.

use crate::harness::peers::tls_echo_server;
use crate::harness::pki::Pki;
use crate::harness::{self, Finished, assert_one_line_error};

/// Python websockets answers our Close at once and drops echoes it has not sent yet: wait for
/// quiet before closing (see tls_python.rs).
const LINGER: &str = "300ms";

async fn run(cmd: tokio::process::Command, input: &[u8]) -> Finished {
    harness::run_cmd(cmd, input).await
}

#[tokio::test]
async fn client_certificate_is_presented_to_a_server_that_requires_one() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, true).await;
    let url = format!("wss://localhost:{}/", server.port);
    let (ca, cert, key) = (
        pki.arg("ca.pem"),
        pki.arg("client.pem"),
        pki.arg("client.key"),
    );
    let f = run(
        harness::command(&[
            "--ca-file",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--linger",
            LINGER,
            &url,
        ]),
        b"mutual\n",
    )
    .await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    // The server greets with the common name it verified, then echoes.
    assert_eq!(f.stdout_str(), "client wsbridge-client\nmutual\n");
}

#[tokio::test]
async fn without_a_client_certificate_the_tls_error_says_so() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, true).await;
    let url = format!("wss://localhost:{}/", server.port);
    let ca = pki.arg("ca.pem");
    let f = run(harness::command(&["--ca-file", &ca, &url]), b"x\n").await;
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    // Python's ssl hangs up without an alert (TLS 1.3); wsbridge knows the server asked for a
    // certificate and says so either way.
    assert_one_line_error(&f, &format!("{url}: TLS failed: "));
    assert_one_line_error(&f, "requires a client certificate");
    assert_one_line_error(&f, "--client-cert PEM --client-key PEM");
}

#[tokio::test]
async fn a_client_certificate_from_an_unknown_ca_is_refused() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, true).await;
    let url = format!("wss://localhost:{}/", server.port);
    let (ca, cert, key) = (
        pki.arg("ca.pem"),
        pki.arg("stranger.pem"),
        pki.arg("stranger.key"),
    );
    let f = run(
        harness::command(&[
            "--ca-file",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            &url,
        ]),
        b"x\n",
    )
    .await;
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "did not accept our");
}

#[tokio::test]
async fn unusable_client_certificate_files() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, true).await;
    let url = format!("wss://localhost:{}/", server.port);
    let ca = pki.arg("ca.pem");
    // A key file holding a certificate instead of a key.
    let (cert, not_a_key) = (pki.arg("client.pem"), pki.arg("ca.pem"));
    let f = run(
        harness::command(&[
            "--ca-file",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &not_a_key,
            &url,
        ]),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_one_line_error(&f, &format!("TLS failed: --client-key {not_a_key}: "));

    let missing = pki.arg("missing.pem");
    let f = run(
        harness::command(&[
            "--ca-file",
            &ca,
            "--client-cert",
            &missing,
            "--client-key",
            &cert,
            &url,
        ]),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_one_line_error(&f, &format!("TLS failed: --client-cert {missing}: "));

    // clap: one without the other is a usage error.
    let f = run(harness::command(&["--client-cert", &cert, &url]), b"").await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert!(f.stderr.contains("--client-key"), "{}", f.stderr);
}

#[tokio::test]
async fn tls_roots_system_still_adds_ssl_cert_file_and_ca_file() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, false).await;
    let url = format!("wss://localhost:{}/", server.port);

    let mut cmd = harness::command(&["--tls-roots", "system", "--linger", LINGER, &url]);
    cmd.env("SSL_CERT_FILE", pki.path("ca.pem"));
    let f = run(cmd, b"system+env\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "system+env\n");

    let ca = pki.arg("ca.pem");
    for roots in ["system", "both", "webpki"] {
        let f = run(
            harness::command(&[
                "--tls-roots",
                roots,
                "--ca-file",
                &ca,
                "--linger",
                LINGER,
                &url,
            ]),
            b"with ca\n",
        )
        .await;
        assert_eq!(f.code, Some(0), "--tls-roots {roots}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "with ca\n");
    }

    // Neither the built-in nor the system roots know the test CA.
    for roots in ["system", "both"] {
        let mut cmd = harness::command(&["--tls-roots", roots, &url]);
        cmd.env_remove("SSL_CERT_DIR");
        let f = run(cmd, b"x\n").await;
        assert_eq!(f.code, Some(5), "--tls-roots {roots}: {}", f.stderr);
        let line = f.stderr.lines().last().unwrap_or_default();
        assert!(
            line.contains("certificate not trusted") || line.contains("no usable certificates"),
            "{line}"
        );
    }
}
