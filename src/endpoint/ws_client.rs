//! The `ws://` / `wss://` client: DNS, TCP connect, TLS, the HTTP upgrade with the user's headers,
//! each step under `--connect-timeout` and each failure mapped to its own typed error.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::either::Either;

use super::{MsgConn, tls};
use crate::addr::WsUrl;
use crate::config::WsClientOptions;
use crate::error::{Error, Result};

/// Connects WebSocket clients; holds the TLS configuration, built on first `wss://` use.
pub struct WsConnector {
    opts: WsClientOptions,
    tls: OnceLock<std::result::Result<Arc<ClientConfig>, String>>,
}

impl WsConnector {
    pub fn new(opts: WsClientOptions) -> Self {
        WsConnector {
            opts,
            tls: OnceLock::new(),
        }
    }

    /// The tungstenite configuration for client connections.
    pub fn ws_config(&self) -> WebSocketConfig {
        let max = self.opts.max_message_size;
        WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(32 * 1024)
            .max_write_buffer_size(max.saturating_mul(2).max(1 << 20))
            .max_message_size(Some(max))
            .max_frame_size(Some(self.opts.max_frame_size))
    }

    /// Connect to `url`; `passed` are client request headers to pass on (`--pass-header`).
    pub async fn connect(
        &self,
        url: &WsUrl,
        passed: &[(HeaderName, HeaderValue)],
    ) -> Result<MsgConn> {
        let target = url.to_string();
        let host = url.host();
        let port = url.port();
        let limit = self.opts.connect_timeout;

        let addrs: Vec<_> = within(
            limit,
            &target,
            "DNS lookup",
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await?
        .map_err(|e| Error::Dns {
            target: target.clone(),
            detail: dns_detail(&e, &host),
        })?
        .collect();
        if addrs.is_empty() {
            return Err(Error::Dns {
                target,
                detail: format!("'{host}' has no addresses"),
            });
        }
        let mut last_err = None;
        let mut tcp = None;
        for addr in &addrs {
            match within(limit, &target, "TCP connect", TcpStream::connect(addr)).await? {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => {
                    tracing::debug!("{target}: connect to {addr} failed: {e}");
                    last_err = Some(e);
                }
            }
        }
        let tcp = match tcp {
            Some(t) => t,
            None => {
                return Err(Error::Connect {
                    target,
                    source: last_err
                        .unwrap_or_else(|| std::io::Error::other("no address to connect to")),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        tracing::debug!(
            "{target}: TCP connected to {}",
            tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default()
        );

        let stream = if url.is_tls() {
            let config = self
                .tls
                .get_or_init(|| tls::client_config(&self.opts.ca_files, self.opts.insecure))
                .clone()
                .map_err(|detail| Error::Tls {
                    target: target.clone(),
                    detail,
                })?;
            let name = ServerName::try_from(host.clone()).map_err(|_| Error::Tls {
                target: target.clone(),
                detail: format!("'{host}' is not a valid TLS server name"),
            })?;
            let tls = within(
                limit,
                &target,
                "TLS handshake",
                TlsConnector::from(config).connect(name, tcp),
            )
            .await?
            .map_err(|e| Error::Tls {
                target: target.clone(),
                detail: tls::explain(&e, &host),
            })?;
            Either::Right(tls)
        } else {
            Either::Left(tcp)
        };

        let request = self.request(url, passed)?;
        let cfg = self.ws_config();
        let (ws, response) = within(
            limit,
            &target,
            "WebSocket handshake",
            tokio_tungstenite::client_async_with_config(request, stream, Some(cfg)),
        )
        .await?
        .map_err(|e| handshake_error(&target, e))?;
        tracing::info!("{target}: connected (HTTP {})", response.status().as_u16());
        let (sink, stream) = ws.split();
        Ok(MsgConn {
            stream: Box::pin(stream),
            sink: Box::pin(sink),
            label: target,
            websocket: true,
        })
    }

    /// The upgrade request: URL without credentials, then Origin, subprotocol, auth, user headers.
    fn request(
        &self,
        url: &WsUrl,
        passed: &[(HeaderName, HeaderValue)],
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
        let basic = self
            .opts
            .basic_auth
            .clone()
            .or_else(|| url.credentials().map(|(u, p)| format!("{u}:{p}")));
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
        for h in &self.opts.headers {
            headers.remove(&h.name);
        }
        for h in &self.opts.headers {
            headers.append(h.name.clone(), h.value.clone());
        }
        // Headers passed on from our own client, unless -H set the same name.
        for (name, value) in passed {
            if !self.opts.headers.iter().any(|h| h.name == *name) {
                let mut value = value.clone();
                value.set_sensitive(crate::config::is_secret_header(name.as_str()));
                headers.append(name.clone(), value);
            }
        }
        Ok(req)
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

/// Describe a failed upgrade: the HTTP status (and a short body excerpt) or the protocol problem.
fn handshake_error(target: &str, e: WsError) -> Error {
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
                    detail.push_str(line.trim());
                }
            }
            if status.is_redirection()
                && let Some(loc) = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
            {
                detail.push_str(&format!(" (redirect to {loc})"));
            }
            Error::Handshake {
                target: target.to_string(),
                detail,
            }
        }
        WsError::Io(io) => Error::Handshake {
            target: target.to_string(),
            detail: format!("connection lost during handshake: {io}"),
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => Error::Handshake {
            target: target.to_string(),
            detail: "server closed the connection during the handshake".into(),
        },
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => Error::Handshake {
            target: target.to_string(),
            detail: format!("subprotocol not agreed: {e}"),
        },
        other => Error::Handshake {
            target: target.to_string(),
            detail: other.to_string(),
        },
    }
}
