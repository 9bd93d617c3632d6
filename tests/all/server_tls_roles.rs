//! `wss-listen:`'s log of a failed TLS handshake names the side that did what: an alert the
//! client sent is the client's, and a client that does not speak TLS is told apart from a server
//! that does not (a plain `ws://` client gets advice for a client, not "a plain port?").

use crate::harness::pki::Pki;
use crate::harness::{self, Bridge};

async fn tls_server(pki: &Pki) -> (Bridge, String) {
    let (cert, key) = (pki.arg("server.pem"), pki.arg("server.key"));
    let mut b = Bridge::spawn(&[
        "-v",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "wss-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let url = b.listening().await;
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    (b, port.to_string())
}

#[tokio::test]
async fn an_alert_from_the_client_is_logged_as_the_clients() {
    let pki = Pki::new();
    let (mut server, port) = tls_server(&pki).await;
    // wsbridge as the client, without --ca-file: it refuses the certificate and sends an alert.
    let f = harness::run(&[&format!("wss://localhost:{port}/")], b"").await;
    assert_eq!(f.code, Some(5), "{}", f.stderr);
    harness::assert_one_line_error(&f, "certificate not trusted");
    let line = server.stderr_contains("TLS handshake failed").await;
    assert!(line.contains(": client sent TLS alert '"), "{line}");
    assert!(line.contains("it does not trust our certificate"), "{line}");
    assert!(!line.contains("server sent"), "{line}");
}

#[tokio::test]
async fn a_plain_client_gets_client_advice_in_the_servers_log() {
    let pki = Pki::new();
    let (mut server, port) = tls_server(&pki).await;
    let f = harness::run(&[&format!("ws://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    let line = server.stderr_contains("TLS handshake failed").await;
    assert!(
        line.contains("the client sent something that is not TLS"),
        "{line}"
    );
    assert!(
        line.contains("is it using ws:// or http:// instead of wss:// or https://?"),
        "{line}"
    );
    assert!(!line.contains("plain (unencrypted) port"), "{line}");
}
