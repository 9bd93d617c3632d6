//! The server role's opening handshake (RFC 6455 §4.2), without I/O: the request head parsed,
//! the checks the protocol requires (method, version, key, `Connection: Upgrade`, the path), the
//! subprotocol chosen, and the `101` answer; a request that fails becomes a [`Refusal`] (an HTTP
//! status and a reason). Access rules (origins, tokens, required headers) are the endpoint's.

use super::deflate::{DeflateOptions, Negotiated};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const MAX_HEADERS: usize = 64;

/// A parsed HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// Parse a complete head (through the blank line). Errors are short reasons for a 400.
    pub fn parse(buf: &[u8]) -> std::result::Result<Option<(RequestHead, usize)>, &'static str> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(n)) => {
                if req.version != Some(1) {
                    return Err("HTTP/1.1 required");
                }
                let head = RequestHead {
                    method: req.method.unwrap_or("").to_string(),
                    uri: req.path.unwrap_or("").to_string(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                        .collect(),
                };
                Ok(Some((head, n)))
            }
            Err(httparse::Error::TooManyHeaders) => Err("too many headers"),
            Err(_) => Err("malformed HTTP request"),
        }
    }

    /// All values of a header (lower-case name), as text.
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    pub(crate) fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.values(name).next()
    }

    /// Comma-separated tokens across all values of a header, trimmed.
    pub(crate) fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    pub(crate) fn is_upgrade(&self) -> bool {
        self.tokens("upgrade")
            .any(|t| t.eq_ignore_ascii_case("websocket"))
    }
}

/// An HTTP answer that ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: String,
    pub headers: Vec<(&'static str, String)>,
}

pub(crate) fn refuse(status: u16, why: impl Into<String>) -> Refusal {
    Refusal {
        status,
        why: why.into(),
        headers: Vec::new(),
    }
}

/// What an acceptable upgrade agreed on.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub accept_key: String,
    pub protocol: Option<String>,
    /// permessage-deflate, when the client offered it and the server takes it.
    pub deflate: Option<Negotiated>,
}

impl Upgrade {
    /// Accept a request whose `Sec-WebSocket-Key` is `key`, agreeing on `protocol` and on
    /// `deflate`.
    pub(crate) fn accept(
        key: &str,
        protocol: Option<String>,
        deflate: Option<Negotiated>,
    ) -> Upgrade {
        Upgrade {
            accept_key: derive_accept_key(key.as_bytes()),
            protocol,
            deflate,
        }
    }

    /// The 101 answer that completes the handshake.
    pub(crate) fn response(&self) -> String {
        let mut resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            self.accept_key
        );
        if let Some(p) = &self.protocol {
            resp.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        if let Some(answer) = self.deflate.as_ref().and_then(|d| d.answer.as_deref()) {
            resp.push_str(&format!("Sec-WebSocket-Extensions: {answer}\r\n"));
        }
        resp.push_str("\r\n");
        resp
    }
}

/// The parts of the request RFC 6455 requires; the `Sec-WebSocket-Key`.
pub(crate) fn check_handshake<'a>(
    req: &'a RequestHead,
    path: Option<&str>,
) -> std::result::Result<&'a str, Refusal> {
    if let Some(p) = path
        && req.path() != p
    {
        return Err(refuse(404, format!("no WebSocket at {}", req.path())));
    }
    if req.method != "GET" {
        return Err(refuse(405, "WebSocket upgrades use GET"));
    }
    if req.first("sec-websocket-version") != Some("13") {
        let mut r = refuse(426, "only WebSocket version 13 is supported");
        r.headers.push(("Sec-WebSocket-Version", "13".into()));
        return Err(r);
    }
    let key = req.first("sec-websocket-key").map(str::trim).unwrap_or("");
    if base64_len(key) != Some(16) {
        return Err(refuse(400, "missing or malformed Sec-WebSocket-Key"));
    }
    if !req
        .tokens("connection")
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
    {
        return Err(refuse(400, "Connection header lacks 'Upgrade'"));
    }
    Ok(key)
}

/// permessage-deflate: the first of the client's offers the options allow (RFC 7692 §5.1).
pub(crate) fn choose_deflate(req: &RequestHead, opts: &DeflateOptions) -> Option<Negotiated> {
    let offers: Vec<&str> = req.values("sec-websocket-extensions").collect();
    if offers.is_empty() {
        return None;
    }
    opts.choose(&offers)
}

/// The first subprotocol in the client's offer that the server speaks; none if either side
/// lists none.
pub(crate) fn choose_protocol(
    req: &RequestHead,
    ours: &[String],
) -> std::result::Result<Option<String>, Refusal> {
    let offered: Vec<&str> = req.tokens("sec-websocket-protocol").collect();
    if offered.is_empty() || ours.is_empty() {
        return Ok(None);
    }
    match offered.iter().find(|o| ours.iter().any(|p| p == *o)) {
        Some(p) => Ok(Some(p.to_string())),
        None => Err(refuse(
            400,
            format!(
                "none of the offered subprotocols is supported (server speaks {})",
                ours.join(", ")
            ),
        )),
    }
}

/// Decoded length of a base64 string, if it is well-formed standard base64.
fn base64_len(s: &str) -> Option<usize> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .map(|v| v.len())
}
