//! `-L/--follow-redirects`: in-test HTTP servers answer the upgrade with 301/302/307/308 (raw
//! HTTP written on a tokio TcpListener, over TLS for the `wss://` cases), then a real WebSocket
//! server (tests/all/harness/servers.rs) accepts. Hops are counted on the servers' side.

use std::sync::Arc;

use crate::harness::pki::Pki;
use crate::harness::{self, Finished, assert_one_line_error, servers};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::http::HeaderMap;

/// One request a redirector answered: its path and headers (names lower case).
#[derive(Debug)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A server that answers every request with a redirect chosen by `route(own port, path)`:
/// `(status, Location)`.
struct Redirector {
    port: u16,
    seen: mpsc::UnboundedReceiver<Seen>,
}

type Route = Arc<dyn Fn(u16, &str) -> (u16, String) + Send + Sync>;

impl Redirector {
    async fn start(
        route: impl Fn(u16, &str) -> (u16, String) + Send + Sync + 'static,
    ) -> Redirector {
        Self::start_with(route, None).await
    }

    /// With `tls`, the redirects are answered over TLS (for `wss://`).
    async fn start_with(
        route: impl Fn(u16, &str) -> (u16, String) + Send + Sync + 'static,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Redirector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = mpsc::unbounded_channel();
        let route: Route = Arc::new(route);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tx, route, tls) = (tx.clone(), route.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(cfg) => {
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                                answer(s, port, &route, &tx).await;
                            }
                        }
                        None => answer(tcp, port, &route, &tx).await,
                    }
                });
            }
        });
        Redirector { port, seen }
    }

    /// Every request seen so far (the bridge has exited, so all are in).
    fn drain(&mut self) -> Vec<Seen> {
        let mut v = Vec::new();
        while let Ok(s) = self.seen.try_recv() {
            v.push(s);
        }
        v
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    port: u16,
    route: &Route,
    tx: &mpsc::UnboundedSender<Seen>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&head).expect("an HTTP request");
    let path = req.path.unwrap_or("").to_string();
    let seen = Seen {
        path: path.clone(),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    let (status, location) = route(port, &path);
    // Record before answering: when the bridge sees the answer, the request is on record.
    let _ = tx.send(seen);
    let response = format!(
        "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Upgrade requests the WebSocket server accepted so far.
fn accepted(server: &mut servers::Server) -> Vec<(String, HeaderMap)> {
    let mut v = Vec::new();
    while let Ok(r) = server.requests.try_recv() {
        v.push(r);
    }
    v
}

async fn run(args: &[&str], input: &[u8]) -> Finished {
    harness::run_cmd(harness::command(args), input).await
}

#[tokio::test]
async fn follows_301_302_307_308_with_absolute_http_and_relative_locations() {
    let mut server = servers::echo().await;
    let final_url = format!("ws://127.0.0.1:{}/final?room=7", server.port);
    // r2: /two -> 307 "/three" (relative, same server) -> 308 to the WebSocket server.
    let mut r2 = Redirector::start(move |_, path| match path {
        "/two" => (307, "/three".into()),
        _ => (308, final_url.clone()),
    })
    .await;
    let r2_port = r2.port;
    // r1: 301 to an http:// URL (mapped to ws://), then 302 to a ws:// URL.
    let mut r1 = Redirector::start(move |me, path| match path {
        "/start" => (301, format!("http://127.0.0.1:{me}/")),
        _ => (302, format!("ws://127.0.0.1:{r2_port}/two")),
    })
    .await;

    let url = format!("ws://127.0.0.1:{}/start", r1.port);
    let f = run(&["-v", "-L", &url], b"after four hops\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "after four hops\n");
    let p1: Vec<_> = r1.drain().into_iter().map(|s| s.path).collect();
    let p2: Vec<_> = r2.drain().into_iter().map(|s| s.path).collect();
    assert_eq!(p1, ["/start", "/"]);
    assert_eq!(p2, ["/two", "/three"]);
    let got = accepted(&mut server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "/final?room=7");
    for status in [301, 302, 307, 308] {
        assert!(
            f.stderr.contains(&format!("HTTP {status} redirect to ")),
            "{status}: {}",
            f.stderr
        );
    }
}

/// `/1` → `/2` → … (relative Locations): `last` redirects in all, then the WebSocket server.
async fn chain(last: usize, ws_port: u16) -> Redirector {
    Redirector::start(move |_, path| {
        let n: usize = path.trim_start_matches('/').parse().unwrap_or(0);
        let status = [301, 302, 307, 308][n % 4];
        if n < last {
            (status, format!("/{}", n + 1))
        } else {
            (status, format!("ws://127.0.0.1:{ws_port}/done"))
        }
    })
    .await
}

#[tokio::test]
async fn at_most_five_redirects() {
    let mut server = servers::echo().await;

    // Five redirects: followed.
    let mut r = chain(5, server.port).await;
    let url = format!("ws://127.0.0.1:{}/1", r.port);
    let f = run(&["-L", &url], b"five\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "five\n");
    assert_eq!(r.drain().len(), 5);
    assert_eq!(accepted(&mut server).len(), 1);

    // Six: the sixth is not followed.
    let mut r = chain(6, server.port).await;
    let url = format!("ws://127.0.0.1:{}/1", r.port);
    let f = run(&["-L", &url], b"six\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert_one_line_error(
        &f,
        &format!(
            "ws://127.0.0.1:{}/6: handshake refused: too many redirects (more than 5); the last one was HTTP 307 to ws://127.0.0.1:{}/done",
            r.port, server.port
        ),
    );
    assert_eq!(r.drain().len(), 6);
    assert_eq!(accepted(&mut server).len(), 0);
}

#[tokio::test]
async fn without_l_a_redirect_is_an_error_naming_the_location() {
    let mut server = servers::echo().await;
    let target = format!("ws://127.0.0.1:{}/new?token=SECRETredirect", server.port);
    let mut r = Redirector::start(move |_, _| (308, target.clone())).await;
    let url = format!("ws://127.0.0.1:{}/old", r.port);
    let f = run(&[&url], b"x\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_one_line_error(
        &f,
        &format!(
            "handshake refused: HTTP 308 Permanent Redirect (redirect to ws://127.0.0.1:{}/new?token=***); -L follows redirects",
            server.port
        ),
    );
    assert_eq!(r.drain().len(), 1);
    assert_eq!(accepted(&mut server).len(), 0);

    // 303 is not one of the statuses -L follows.
    let mut r = Redirector::start(|_, _| (303, "/elsewhere".into())).await;
    let url = format!("ws://127.0.0.1:{}/", r.port);
    let f = run(&["-L", &url], b"x\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "HTTP 303 See Other (redirect to ws://127.0.0.1:");
    assert_eq!(r.drain().len(), 1);
}

#[tokio::test]
async fn no_downgrade_from_wss_to_ws_unless_insecure() {
    let pki = Pki::new();
    let mut server = servers::echo().await;
    let plain = format!("http://127.0.0.1:{}/plain", server.port);
    let mut r =
        Redirector::start_with(move |_, _| (301, plain.clone()), Some(pki.server_config())).await;
    let url = format!("wss://localhost:{}/secure", r.port);
    let ca = pki.arg("ca.pem");

    let f = run(&["-L", "--ca-file", &ca, &url], b"x\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert_one_line_error(
        &f,
        &format!(
            "{url}: handshake refused: redirect from wss:// to ws://127.0.0.1:{}/plain refused: it would drop TLS (--insecure allows it)",
            server.port
        ),
    );
    assert_eq!(r.drain().len(), 1, "the wss:// server was asked once");
    assert_eq!(accepted(&mut server).len(), 0, "nothing sent over plain ws");

    // --insecure allows it, with a warning.
    let f = run(&["-L", "-k", &url], b"downgraded\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "downgraded\n");
    assert!(
        f.stderr
            .contains("following a redirect from wss:// to ws://"),
        "{}",
        f.stderr
    );
    assert_eq!(accepted(&mut server).len(), 1);
}

#[tokio::test]
async fn https_location_means_wss() {
    let pki = Pki::new();
    let tls_server = harness::peers::tls_echo_server(&pki, false).await;
    let to = format!("https://localhost:{}/", tls_server.port);
    let mut r = Redirector::start(move |_, _| (302, to.clone())).await;
    let url = format!("ws://127.0.0.1:{}/", r.port);
    let ca = pki.arg("ca.pem");
    let f = run(
        &["-L", "--ca-file", &ca, "--linger", "300ms", &url],
        b"upgraded to tls\n",
    )
    .await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "upgraded to tls\n");
    assert_eq!(r.drain().len(), 1);
}

#[tokio::test]
async fn credentials_are_not_sent_to_another_host() {
    let mut server = servers::echo().await;
    // Same host and port (relative Location), then another host name for the same machine:
    // 127.0.0.1 -> localhost.
    let other_host = format!("ws://localhost:{}/landed", server.port);
    let mut r = Redirector::start(move |_, path| match path {
        "/a" => (307, "/b".into()),
        _ => (308, other_host.clone()),
    })
    .await;
    let url = format!("ws://127.0.0.1:{}/a", r.port);
    let f = run(
        &[
            "-L",
            "-H",
            "Authorization: Bearer SECRETbearer",
            "-H",
            "Cookie: sid=SECRETcookie",
            "-H",
            "X-Api-Key: SECRETapikey",
            "-H",
            "X-Room: 7",
            "--origin",
            "https://app.example",
            &url,
        ],
        b"hi\n",
    )
    .await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "hi\n");
    let seen = r.drain();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        // Both hops on the original host and port got everything.
        assert_eq!(
            s.header("authorization"),
            Some("Bearer SECRETbearer"),
            "{s:?}"
        );
        assert_eq!(s.header("cookie"), Some("sid=SECRETcookie"), "{s:?}");
        assert_eq!(s.header("x-api-key"), Some("SECRETapikey"), "{s:?}");
    }
    let got = accepted(&mut server);
    assert_eq!(got.len(), 1);
    let (path, headers) = &got[0];
    assert_eq!(path, "/landed");
    for secret in ["authorization", "cookie", "x-api-key"] {
        assert!(
            headers.get(secret).is_none(),
            "{secret} sent to another host: {headers:?}"
        );
    }
    assert_eq!(headers.get("x-room").unwrap(), "7");
    assert_eq!(headers.get("origin").unwrap(), "https://app.example");

    // Basic auth (--basic-auth and user:pass in the URL) is dropped the same way.
    for (extra, url) in [
        (
            vec!["--basic-auth", "u:SECRETbasic"],
            format!("ws://127.0.0.1:{}/a", r.port),
        ),
        (
            vec![],
            format!("ws://u:SECRETurlpass@127.0.0.1:{}/a", r.port),
        ),
    ] {
        let mut args = vec!["-L"];
        args.extend(extra);
        args.push(&url);
        let f = run(&args, b"hi\n").await;
        assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
        let seen = r.drain();
        assert_eq!(seen.len(), 2);
        assert!(
            seen.iter().all(|s| s
                .header("authorization")
                .is_some_and(|v| v.starts_with("Basic "))),
            "{seen:?}"
        );
        let got = accepted(&mut server);
        assert!(got[0].1.get("authorization").is_none(), "{got:?}");
    }
}
