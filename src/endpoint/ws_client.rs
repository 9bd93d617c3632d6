//! The `ws://` / `wss://` client: DNS, TCP connect (direct or through a proxy, see `proxy`),
//! TLS, the HTTP upgrade with the user's headers, and with `-L` the redirects of the upgrade;
//! each step under `--connect-timeout` and each failure mapped to its own typed error.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, header};
use tokio_util::either::Either;

use super::WsClientOptions;
use super::{MsgConn, proxy, tls};
use crate::addr::WsUrl;
use crate::error::{Error, Refused, Result};
use crate::ws;
use crate::ws::ClientFailure;

/// Connects WebSocket clients; holds the TLS configuration, built on first `wss://` use.
pub(crate) struct WsConnector {
    opts: WsClientOptions,
    tls: OnceLock<std::result::Result<Arc<ClientConfig>, String>>,
}

impl WsConnector {
    pub(crate) fn new(opts: WsClientOptions) -> Self {
        WsConnector {
            opts,
            tls: OnceLock::new(),
        }
    }

    /// Connect to `url`; `passed` are client request headers to pass on (`--pass-header`).
    /// With `-L`, redirects of the upgrade are followed (each hop is a new connection).
    pub(crate) async fn connect(
        &self,
        url: &WsUrl,
        passed: &[(HeaderName, HeaderValue)],
    ) -> Result<MsgConn> {
        let limit = self.opts.connect_timeout;
        let mut current = url.clone();
        let mut redirects = 0;
        loop {
            let target = current.to_string();
            let (stream, how) = self.open(&current, &target).await?;
            let keep_secrets = same_site(url, &current);
            if !keep_secrets {
                tracing::debug!(
                    "{target}: not the original host: Authorization, Cookie, basic auth and other secret headers are not sent"
                );
            }
            let request = self.request(&current, url, passed, keep_secrets)?;
            let limits = ws::Limits {
                max_message: self.opts.max_message_size,
                max_frame: self.opts.max_frame_size,
                stall: self.opts.message_timeout,
            };
            let asked = std::time::Instant::now();
            let result = within(
                limit,
                &target,
                "WebSocket handshake",
                ws::client_handshake(stream, request, limits, &self.opts.deflate),
            )
            .await?;
            let (stream, sink, response, deflate) = match result {
                Ok(ok) => ok,
                Err(ClientFailure::Extension(why)) => {
                    return Err(Error::Handshake {
                        target,
                        detail: format!(
                            "the server's permessage-deflate answer is invalid: {why} (--no-compress does without compression)"
                        ),
                        by: Refused::Other,
                    });
                }
                Err(ClientFailure::Ws(WsError::Http(resp)))
                    if self.opts.follow_redirects && FOLLOWED.contains(&resp.status().as_u16()) =>
                {
                    let status = resp.status().as_u16();
                    let loc = resp
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| Error::Handshake {
                            target: target.clone(),
                            detail: format!("HTTP {status} redirect without a Location header"),
                            by: Refused::Server(status),
                        })?;
                    let next = self.follow(&current, loc, &target)?;
                    if redirects == MAX_REDIRECTS {
                        return Err(Error::Handshake {
                            target,
                            detail: format!(
                                "too many redirects (more than {MAX_REDIRECTS}); the last one was HTTP {status} to {next}"
                            ),
                            by: Refused::Server(status),
                        });
                    }
                    redirects += 1;
                    tracing::info!("{target}: HTTP {status} redirect to {next}");
                    current = next;
                    continue;
                }
                Err(ClientFailure::Ws(e)) => {
                    return Err(handshake_error(&target, &current, e, &how));
                }
            };
            let rtt = asked.elapsed();
            tracing::info!(
                "{target}: connected (HTTP {}; handshake round trip {:.2} ms; {})",
                response.status().as_u16(),
                rtt.as_secs_f64() * 1000.0,
                deflate.map_or("no compression".into(), |d| d.describe())
            );
            let mut conn = MsgConn {
                stream,
                sink,
                label: target,
                websocket: true,
                rtt: Some(rtt),
                holds_close: false,
            };
            self.say_hello(&mut conn).await?;
            return Ok(conn);
        }
    }

    /// `--on-connect`: the configured messages, first on every new connection (before any
    /// input), so a subscription or login message is made again after each `--reconnect`.
    /// Their contents are never logged: they may hold credentials.
    async fn say_hello(&self, conn: &mut MsgConn) -> Result<()> {
        use futures_util::SinkExt;
        if self.opts.on_connect.is_empty() {
            return Ok(());
        }
        for m in &self.opts.on_connect {
            if let Err(e) = conn.sink.feed(m.clone()).await {
                return Err(lost_saying_hello(&conn.label, e));
            }
        }
        conn.sink
            .flush()
            .await
            .map_err(|e| lost_saying_hello(&conn.label, e))?;
        tracing::info!(
            "{}: sent the {} --on-connect message(s)",
            conn.label,
            self.opts.on_connect.len()
        );
        Ok(())
    }

    /// A byte stream to `url`'s host: TCP (direct or through a proxy), then TLS for `wss://`.
    async fn open(&self, url: &WsUrl, target: &str) -> Result<(Stream, Route)> {
        let host = url.host();
        let port = url.port();
        let limit = self.opts.connect_timeout;
        let via = proxy::choose(
            self.opts.proxy.as_deref(),
            &|name| std::env::var(name).ok(),
            url.is_tls(),
            &host,
        )
        .map_err(Error::Usage)?;
        let (tcp, via) = match via {
            Some((p, source)) => {
                tracing::info!("{target}: connecting through proxy {p} (from {source})");
                (
                    p.connect(&host, port, target, limit).await?,
                    Some(p.to_string()),
                )
            }
            None => (direct(&host, port, target, limit).await?, None),
        };
        let mut route = Route {
            via,
            cert_asked: None,
            have_cert: self.opts.client_cert.is_some(),
        };
        if !url.is_tls() {
            return Ok((Either::Left(tcp), route));
        }
        let base = self
            .tls
            .get_or_init(|| tls::client_config(&self.opts))
            .clone()
            .map_err(|detail| Error::Tls {
                target: target.to_string(),
                detail,
            })?;
        let (config, asked) = tls::with_request_probe(&base);
        route.cert_asked = Some(asked);
        let name = ServerName::try_from(host.clone()).map_err(|_| Error::Tls {
            target: target.to_string(),
            detail: format!("'{host}' is not a valid TLS server name"),
        })?;
        let tls = within(
            limit,
            target,
            "TLS handshake",
            tls::handshake(TlsConnector::from(config).connect(name, tcp)),
        )
        .await?
        .map_err(|f| Error::Tls {
            target: target.to_string(),
            detail: if route.cert_was_asked() && f.cert.is_none() && !is_alert(&f.error) {
                tls::client_cert_hint(route.have_cert)
            } else {
                tls::explain_client(&f.error, f.cert.as_ref(), &host, route.have_cert)
            },
        })?;
        Ok((Either::Right(tls), route))
    }

    /// The next URL of a redirect: `Location` resolved against `current`, `http`/`https` mapped to
    /// `ws`/`wss`, and never from `wss://` to `ws://` unless `--insecure`.
    fn follow(&self, current: &WsUrl, location: &str, target: &str) -> Result<WsUrl> {
        let refuse = |detail: String| Error::Handshake {
            target: target.to_string(),
            detail,
            by: Refused::Other,
        };
        let next = resolve_location(current, location)
            .ok_or_else(|| refuse("redirect to an invalid or unsupported Location".into()))?;
        if current.is_tls() && !next.is_tls() {
            if !self.opts.insecure {
                return Err(refuse(format!(
                    "redirect from wss:// to {next} refused: it would drop TLS (--insecure allows it)"
                )));
            }
            tracing::warn!("{target}: following a redirect from wss:// to {next} (--insecure)");
        }
        Ok(next)
    }

    /// The upgrade request: URL without credentials, then Origin, subprotocol, auth, user headers.
    /// `keep_secrets` is false on a redirect hop to another host than `original`'s: then only
    /// credentials in the hop's own URL are used, and no secret header is sent.
    fn request(
        &self,
        url: &WsUrl,
        original: &WsUrl,
        passed: &[(HeaderName, HeaderValue)],
        keep_secrets: bool,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        let bad = |e: WsError| Error::Usage(format!("{url}: {e}"));
        let mut req = url
            .without_credentials()
            .as_str()
            .into_client_request()
            .map_err(bad)?;
        let headers = req.headers_mut();
        if let Some(origin) = &self.opts.origin {
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).map_err(|_| Error::Usage("bad --origin".into()))?,
            );
        }
        if let Some(p) = &self.opts.protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).map_err(|_| Error::Usage("bad --protocol".into()))?,
            );
        }
        let from_url = |u: &WsUrl| u.credentials().map(|(u, p)| format!("{u}:{p}"));
        let basic = if keep_secrets {
            self.opts
                .basic_auth
                .clone()
                .or_else(|| from_url(url))
                .or_else(|| from_url(original))
        } else {
            from_url(url)
        };
        let secret = |name: &HeaderName| crate::secret::is_secret_header(name.as_str());
        let user_headers: Vec<_> = self
            .opts
            .headers
            .iter()
            .filter(|h| keep_secrets || !secret(&h.name))
            .collect();
        if let Some(userpass) = basic {
            let mut v = HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(userpass)
            ))
            .map_err(|_| {
                Error::Usage("basic auth credentials contain invalid characters".into())
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        // User headers replace defaults of the same name; repeated user headers are all sent.
        for h in &user_headers {
            headers.remove(&h.name);
        }
        for h in &user_headers {
            headers.append(h.name.clone(), h.value.clone());
        }
        // Headers passed on from our own client, unless -H set the same name.
        for (name, value) in passed {
            if !keep_secrets && secret(name) {
                continue;
            }
            if !self.opts.headers.iter().any(|h| h.name == *name) {
                let mut value = value.clone();
                value.set_sensitive(crate::secret::is_secret_header(name.as_str()));
                headers.append(name.clone(), value);
            }
        }
        Ok(req)
    }
}

/// How a connection was made, for describing its failures.
struct Route {
    /// The proxy used (as printed: without its password).
    via: Option<String>,
    /// For `wss://`: set when the server asked for a client certificate.
    cert_asked: Option<Arc<AtomicBool>>,
    have_cert: bool,
}

impl Route {
    fn cert_was_asked(&self) -> bool {
        self.cert_asked
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }
}

/// Is this I/O error a TLS alert from the server (which [`tls::explain_client`] describes)?
fn is_alert(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::AlertReceived(_))
    )
}

/// Redirect statuses that `-L` follows.
const FOLLOWED: [u16; 4] = [301, 302, 307, 308];

/// At most this many redirects are followed.
const MAX_REDIRECTS: usize = 5;

type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// DNS, then TCP to each address in turn, each step under `limit`.
async fn direct(host: &str, port: u16, target: &str, limit: Duration) -> Result<TcpStream> {
    let addrs: Vec<_> = within(
        limit,
        target,
        "DNS lookup",
        tokio::net::lookup_host((host, port)),
    )
    .await?
    .map_err(|e| Error::Dns {
        target: target.to_string(),
        detail: dns_detail(&e, host),
    })?
    .collect();
    if addrs.is_empty() {
        return Err(Error::Dns {
            target: target.to_string(),
            detail: format!("'{host}' has no addresses"),
        });
    }
    let mut last_err = None;
    for addr in &addrs {
        match within(limit, target, "TCP connect", TcpStream::connect(addr)).await? {
            Ok(s) => {
                crate::endpoint::tcp::tune(&s);
                tracing::debug!("{target}: TCP connected to {addr}");
                return Ok(s);
            }
            Err(e) => {
                tracing::debug!("{target}: connect to {addr} failed: {e}");
                last_err = Some(e);
            }
        }
    }
    Err(Error::Connect {
        target: target.to_string(),
        source: last_err.unwrap_or_else(|| std::io::Error::other("no address to connect to")),
    })
}

/// Is `b` the same site as `a` for credentials: the same host and port, or the same host moved
/// from `ws://` to `wss://` on the default ports.
fn same_site(a: &WsUrl, b: &WsUrl) -> bool {
    a.host().eq_ignore_ascii_case(&b.host())
        && (a.port() == b.port()
            || (!a.is_tls() && b.is_tls() && a.port() == 80 && b.port() == 443))
}

/// `Location` resolved against `current` (relative references allowed), with `http`→`ws` and
/// `https`→`wss`. None for an unparsable Location or another scheme.
fn resolve_location(current: &WsUrl, location: &str) -> Option<WsUrl> {
    let mut next = current.without_credentials().join(location.trim()).ok()?;
    let scheme = match next.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    next.set_scheme(scheme).ok()?;
    // A fragment is never sent (and a WebSocket URL cannot have one).
    next.set_fragment(None);
    WsUrl::parse(next.as_str()).ok()
}

/// A Location for an error message: resolved, with secret query values and password hidden
/// (as every URL wsbridge prints), in its own scheme.
fn show_location(current: &WsUrl, location: &str) -> String {
    let Some(resolved) = resolve_location(current, location) else {
        return "an invalid or non-WebSocket Location".into();
    };
    let shown = resolved.to_string();
    let scheme = url::Url::parse(location)
        .map(|u| u.scheme().to_string())
        .unwrap_or_else(|_| resolved.url().scheme().to_string());
    match shown.split_once(':') {
        Some((_, rest)) => format!("{scheme}:{rest}"),
        None => shown,
    }
}

/// Run `fut` under the connect timeout, mapping expiry to a typed error naming the step.
async fn within<T>(
    limit: Duration,
    target: &str,
    what: &'static str,
    fut: impl Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::Timeout {
            target: target.to_string(),
            what,
            after: limit,
        })
}

fn dns_detail(e: &std::io::Error, host: &str) -> String {
    let msg = e.to_string();
    let msg = msg
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&msg);
    format!("'{host}': {msg}")
}

fn lost_saying_hello(label: &str, e: WsError) -> Error {
    Error::PeerClosed {
        target: label.to_string(),
        detail: format!("connection lost while sending the --on-connect messages: {e}"),
    }
}

/// Describe a failed upgrade: the HTTP status (and a short body excerpt) or the protocol problem.
/// A TLS alert read during the upgrade (TLS 1.3 reports a refused client certificate only then)
/// is a TLS error.
fn handshake_error(target: &str, url: &WsUrl, e: WsError, route: &Route) -> Error {
    let have_cert = route.have_cert;
    // Through a proxy, a connection that ends early often means the proxy could not reach the
    // server (some SOCKS5 proxies report success before they try).
    let proxy_hint = route
        .via
        .as_ref()
        .map(|p| format!(" (through proxy {p}: it may not have reached the server)"))
        .unwrap_or_default();
    // A server that asked for a client certificate and then hung up did not like what it got.
    let lost = matches!(
        &e,
        WsError::Io(_)
            | WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::HandshakeIncomplete)
    );
    if lost && route.cert_was_asked() && !matches!(&e, WsError::Io(io) if is_alert(io)) {
        return Error::Tls {
            target: target.to_string(),
            detail: tls::client_cert_hint(have_cert),
        };
    }
    match e {
        WsError::Http(resp) => {
            let status = resp.status();
            let mut detail = format!(
                "HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            detail = detail.trim_end().to_string();
            if let Some(body) = resp.body().as_deref() {
                let text = String::from_utf8_lossy(body);
                let line: String = text
                    .split(['\r', '\n'])
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect();
                if !line.trim().is_empty() {
                    detail.push_str(": ");
                    detail.push_str(&crate::text::escape_controls(line.trim()));
                }
            }
            if status.is_redirection()
                && let Some(loc) = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
            {
                detail.push_str(&format!(" (redirect to {})", show_location(url, loc)));
                if FOLLOWED.contains(&status.as_u16()) {
                    detail.push_str("; -L follows redirects");
                }
            }
            crate::metrics::M.refused(crate::metrics::Role::Client, status.as_u16());
            Error::Handshake {
                target: target.to_string(),
                detail,
                by: Refused::Server(status.as_u16()),
            }
        }
        WsError::Io(io)
            if io
                .get_ref()
                .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Error::Tls {
                target: target.to_string(),
                detail: tls::explain_client(&io, None, &url.host(), have_cert),
            }
        }
        WsError::Io(io) => Error::Handshake {
            target: target.to_string(),
            detail: format!("connection lost during handshake: {io}{proxy_hint}"),
            by: Refused::Other,
        },
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::HandshakeIncomplete) => Error::Handshake {
            target: target.to_string(),
            detail: format!("server closed the connection during the handshake{proxy_hint}"),
            by: Refused::Other,
        },
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => Error::Handshake {
            target: target.to_string(),
            detail: format!("subprotocol not agreed: {e}"),
            by: Refused::Other,
        },
        other => Error::Handshake {
            target: target.to_string(),
            detail: other.to_string(),
            by: Refused::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> WsUrl {
        WsUrl::parse(s).unwrap()
    }

    #[test]
    fn locations_resolve_and_map_schemes() {
        let cur = u("wss://user:pw@h.example:8443/a/b?x=1");
        let r = |loc: &str| resolve_location(&cur, loc).map(|w| w.url().to_string());
        assert_eq!(r("/c").as_deref(), Some("wss://h.example:8443/c"));
        assert_eq!(r("c?y=2").as_deref(), Some("wss://h.example:8443/a/c?y=2"));
        assert_eq!(r("https://o.example/").as_deref(), Some("wss://o.example/"));
        assert_eq!(
            r("http://o.example:80/p").as_deref(),
            Some("ws://o.example/p")
        );
        assert_eq!(
            r("ws://o.example/p#frag").as_deref(),
            Some("ws://o.example/p")
        );
        assert_eq!(r("//o.example/p").as_deref(), Some("wss://o.example/p"));
        assert_eq!(r("ftp://o.example/"), None);
        assert_eq!(r("mailto:x@y"), None);
    }

    #[test]
    fn shown_locations_hide_secrets() {
        let cur = u("ws://h/");
        assert_eq!(
            show_location(&cur, "https://u:pw@o.example/x?token=abc&room=1"),
            "https://u:***@o.example/x?token=***&room=1"
        );
        assert_eq!(show_location(&cur, "/new"), "ws://h/new");
        assert_eq!(
            show_location(&cur, "gopher://x/"),
            "an invalid or non-WebSocket Location"
        );
    }

    #[test]
    fn same_site_for_credentials() {
        let a = u("ws://Host.example/");
        assert!(same_site(&a, &u("ws://host.example:80/other")));
        assert!(same_site(&a, &u("wss://host.example/")));
        assert!(!same_site(&a, &u("ws://host.example:8080/")));
        assert!(!same_site(&a, &u("ws://other.example/")));
        assert!(!same_site(&u("wss://h/"), &u("ws://h/")));
        assert!(!same_site(&u("ws://127.0.0.1/"), &u("ws://localhost/")));
    }
}
