//! `ws-listen:` / `wss-listen:`: the WebSocket server. Per client, under `--handshake-timeout`:
//! TLS (with optional client certificates), then the HTTP request head, read here and checked —
//! what RFC 6455 requires (path, version, key, subprotocol) by `ws::upgrade`, the access rules
//! (origin, required headers, bearer token, capacity) here — and either the 101 upgrade (then
//! the connection is `ws::split`'s) or a plain HTTP answer: the browser console page, static
//! files, `/healthz`, or an error status.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use tokio_util::either::Either;

use super::ServerOptions;
use super::{MsgConn, Script, SessionInfo, Slot, Slots, tls};
use crate::addr::WsListen;
use crate::error::{Error, Result};
use crate::ws::{self, Refusal, RequestHead, Upgrade, check_handshake, choose_protocol, refuse};

/// Largest HTTP request head accepted (431 beyond).
const MAX_HEAD: usize = 16 * 1024;
const CONSOLE: &str = include_str!("console.html");

pub(crate) struct WsServer {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    path: Option<String>,
    opts: ServerOptions,
}

/// Decide on an upgrade request. Pure: no I/O, so it can be tested (and fuzzed) alone.
pub fn check_upgrade(
    req: &RequestHead,
    opts: &ServerOptions,
    path: Option<&str>,
    at_capacity: bool,
) -> std::result::Result<Upgrade, Refusal> {
    let key = check_handshake(req, path)?;
    check_access(req, opts)?;
    if at_capacity {
        return Err(refuse(503, "session limit reached"));
    }
    let protocol = choose_protocol(req, &opts.protocols)?;
    let deflate = ws::choose_deflate(req, &opts.deflate);
    Ok(Upgrade::accept(key, protocol, deflate))
}

/// `--origin-allow`, `--require-header` and `--auth-token-file`, after checking that every header
/// they read or `--pass-header` passes on comes once.
fn check_access(req: &RequestHead, opts: &ServerOptions) -> std::result::Result<(), Refusal> {
    single_headers(req, opts)?;
    if !opts.origin_allow.is_empty() {
        let origin = req.first("origin").unwrap_or("");
        if !opts
            .origin_allow
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
        {
            let shown = if origin.is_empty() { "none" } else { origin };
            return Err(refuse(403, format!("origin {shown} not allowed")));
        }
    }
    for h in &opts.require_headers {
        let ok = req
            .headers
            .iter()
            .any(|(n, v)| n == h.name.as_str() && constant_time_eq(v, h.value.as_bytes()));
        if !ok {
            return Err(refuse(
                401,
                format!("required header {} missing or wrong", h.name),
            ));
        }
    }
    if let Some(token) = &opts.auth_token {
        let given = req.first("authorization").and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut r = refuse(401, "bearer token missing or wrong");
            r.headers.push(("WWW-Authenticate", "Bearer".into()));
            return Err(r);
        }
    }
    Ok(())
}

/// A header that a check reads or that is passed on must come at most once: with two, a check
/// could pass on one value while a child or the upstream acts on the other.
fn single_headers(req: &RequestHead, opts: &ServerOptions) -> std::result::Result<(), Refusal> {
    let checked = [
        (!opts.origin_allow.is_empty()).then_some("origin"),
        opts.auth_token.is_some().then_some("authorization"),
    ];
    let names = (opts.require_headers.iter().map(|h| h.name.as_str()))
        .chain(opts.pass_headers.iter().map(HeaderName::as_str))
        .chain(checked.into_iter().flatten());
    for name in names {
        if req.headers.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(refuse(400, format!("header {name} sent more than once")));
        }
    }
    Ok(())
}

/// Compare secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

type Stream = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

impl WsServer {
    pub(crate) async fn bind(addr: &WsListen, opts: &ServerOptions) -> Result<WsServer> {
        let target = format!("{}-listen:{}", if addr.tls { "wss" } else { "ws" }, addr.hp);
        let tls = if addr.tls {
            let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) else {
                return Err(Error::Usage(
                    "wss-listen: needs --tls-cert and --tls-key".into(),
                ));
            };
            let config = tls::server_config(cert, key, opts.tls_client_ca.as_deref())
                .map_err(Error::Usage)?;
            Some(TlsAcceptor::from(config))
        } else {
            None
        };
        let tcp = TcpListener::bind((addr.hp.host.as_str(), addr.hp.port))
            .await
            .map_err(|source| Error::Listen { target, source })?;
        Ok(WsServer {
            tcp,
            tls,
            path: addr.path.clone(),
            opts: opts.clone(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        match self.tcp.local_addr() {
            Ok(a) => format!(
                "{scheme} {scheme}://{a}{}",
                self.path.as_deref().unwrap_or("/")
            ),
            Err(_) => format!("{scheme} ?"),
        }
    }

    pub(crate) async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (s, peer) = self.tcp.accept().await?;
        crate::endpoint::tcp::tune(&s);
        Ok((s, peer))
    }

    /// Handshake with one client. `None` when the request was answered with plain HTTP (a page,
    /// a refusal) or the client failed or timed out; the reason is logged.
    pub(crate) async fn establish(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        slots: &Slots,
    ) -> Option<(MsgConn, SessionInfo, Slot)> {
        let who = format!("ws client {peer}");
        let limit = self.opts.handshake_timeout;
        let head = tokio::time::timeout(limit, self.read_head(tcp, &who)).await;
        let (mut stream, req, leftover) = match head {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(_) => {
                tracing::info!("{who}: no complete request within {:?}; dropped", limit);
                return None;
            }
        };
        if !req.is_upgrade() {
            self.answer_http(&mut stream, &req, &who).await;
            return None;
        }
        // Capacity is decided last, atomically: a slot is taken only by a client that passed every
        // other check, and it is held until the session ends.
        let checked = check_upgrade(&req, &self.opts, self.path.as_deref(), false).and_then(|u| {
            let script = self.script_for(&req)?;
            slots
                .try_take()
                .map(|slot| (u, script, slot))
                .ok_or_else(|| refuse(503, "session limit reached"))
        });
        let (upgrade, script, slot) = match checked {
            Ok(u) => u,
            Err(r) => {
                self.refuse_upgrade(&mut stream, &req, &who, &r).await;
                return None;
            }
        };
        let resp = upgrade.response();
        let written = tokio::time::timeout(limit, stream.write_all(resp.as_bytes())).await;
        if let Err(e) = written.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
            tracing::info!("{who}: lost during handshake: {e}");
            return None;
        }
        let limits = ws::Limits {
            max_message: self.opts.max_message_size,
            max_frame: self.opts.max_frame_size,
            stall: self.opts.message_timeout,
        };
        if let Some(d) = &upgrade.deflate {
            tracing::debug!("{who}: {}", d.describe());
        }
        let (ws_stream, ws_sink) = ws::split(
            stream,
            leftover,
            ws::Role::Server,
            limits,
            upgrade.deflate.as_ref(),
        );
        let label = format!("{who} {}", req.path());
        tracing::info!(
            "{label}: accepted{}",
            upgrade
                .protocol
                .as_deref()
                .map(|p| format!(" (subprotocol {p})"))
                .unwrap_or_default()
        );
        let info = SessionInfo {
            peer: Some(peer),
            request_uri: Some(req.uri.clone()),
            headers: self.passed_headers(&req),
            script,
        };
        Some((
            MsgConn {
                stream: ws_stream,
                sink: ws_sink,
                label,
                websocket: true,
                rtt: None,
                holds_close: true,
            },
            info,
            slot,
        ))
    }

    /// With `exec-dir:`, the program the request path names (404 when none, before anything is
    /// started).
    fn script_for(&self, req: &RequestHead) -> std::result::Result<Option<Script>, Refusal> {
        let Some(dir) = &self.opts.exec_dir else {
            return Ok(None);
        };
        super::exec::resolve(dir, req.path())
            .map(Some)
            .ok_or_else(|| refuse(404, "no program for this path"))
    }

    /// A plain HTTP answer. A client that stops reading it must not hold a task forever; one that
    /// reads slowly gets all of it, however long that takes.
    async fn answer_http(&self, stream: &mut Stream, req: &RequestHead, who: &str) {
        let limit = self.opts.handshake_timeout;
        let mut out = IdleBound::new(stream, limit);
        self.serve_http(&mut out, req, who).await;
        if out.stalled {
            tracing::info!("{who}: answer not taken: nothing read for {limit:?}; dropped");
        }
    }

    /// Log a refused upgrade (503 as a warning: the operator may want to raise --max-conns) and
    /// answer it.
    async fn refuse_upgrade(&self, stream: &mut Stream, req: &RequestHead, who: &str, r: &Refusal) {
        crate::metrics::M.refused(crate::metrics::Role::Server, r.status);
        if r.status == 503 {
            tracing::warn!("{who}: {}: refused with 503", r.why);
        } else {
            let (method, path) = (&req.method, req.path());
            tracing::info!(
                "{who} {method} {path}: refused with {}: {}",
                r.status,
                r.why
            );
        }
        let limit = self.opts.handshake_timeout;
        let _ = tokio::time::timeout(limit, write_refusal(stream, r)).await;
    }

    /// The request headers named by `--pass-header`, for the session.
    fn passed_headers(&self, req: &RequestHead) -> Vec<(HeaderName, HeaderValue)> {
        let named = |name: &HeaderName| {
            let values = req.headers.iter().filter(|(n, _)| n == name.as_str());
            let values = values.filter_map(|(_, v)| HeaderValue::from_bytes(v).ok());
            values.map(|v| (name.clone(), v)).collect::<Vec<_>>()
        };
        self.opts.pass_headers.iter().flat_map(named).collect()
    }

    /// TLS (if any), then read until the end of the request head.
    async fn read_head(&self, tcp: TcpStream, who: &str) -> Option<(Stream, RequestHead, Vec<u8>)> {
        let mut stream: Stream = match &self.tls {
            None => Either::Left(tcp),
            Some(acceptor) => match tls::handshake(acceptor.accept(tcp)).await {
                Ok(s) => Either::Right(s),
                Err(f) => {
                    tracing::info!(
                        "{who}: TLS handshake failed: {}",
                        tls::explain_server(&f.error, f.cert.as_ref())
                    );
                    return None;
                }
            },
        };
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 2048];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("{who}: read failed before the request was complete: {e}");
                    return None;
                }
            };
            buf.extend_from_slice(&chunk[..n]);
            let parsed = RequestHead::parse(&buf);
            let complete = matches!(parsed, Ok(Some(_)));
            match parsed {
                Ok(Some((_, used))) if used > MAX_HEAD => {}
                Ok(Some((head, used))) => return Some((stream, head, buf.split_off(used))),
                Ok(None) if buf.len() <= MAX_HEAD => continue,
                Ok(None) => {}
                Err(why) => {
                    tracing::info!("{who}: bad request: {why}");
                    write_refusal(&mut stream, &refuse(400, why)).await;
                    return None;
                }
            }
            let state = if complete {
                ""
            } else {
                " and still incomplete"
            };
            tracing::info!("{who}: request head over {MAX_HEAD} bytes{state}: refused with 431");
            write_refusal(&mut stream, &refuse(431, "request head too large")).await;
            return None;
        }
    }

    /// Plain HTTP: `/healthz`, static files, the console page, or 404.
    async fn serve_http<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        req: &RequestHead,
        who: &str,
    ) {
        let head_only = req.method == "HEAD";
        if req.method != "GET" && !head_only {
            write_refusal(stream, &refuse(405, "only GET")).await;
            return;
        }
        let path = req.path();
        if path == "/healthz" {
            write_response(
                stream,
                200,
                "text/plain; charset=utf-8",
                &[],
                b"ok\n",
                head_only,
            )
            .await;
            return;
        }
        if let Some(root) = &self.opts.static_dir {
            match static_file(root, path) {
                Some(file) => {
                    tracing::debug!("{who}: GET {path}: {}", file.display());
                    send_file(stream, &file, head_only).await;
                    return;
                }
                None => tracing::debug!("{who}: GET {path}: not in --static"),
            }
        }
        if path == "/" && self.opts.console {
            self.serve_console(stream, head_only).await;
            return;
        }
        write_refusal(stream, &refuse(404, "not found")).await;
    }

    /// The console page, with this listener's WebSocket path filled in.
    async fn serve_console<S: AsyncWrite + Unpin>(&self, stream: &mut S, head_only: bool) {
        let ws_path = self.path.as_deref().unwrap_or("/");
        let page = CONSOLE.replace("{{WS_PATH}}", &html_escape(ws_path));
        // Sending takes a click: no other site may frame the page and steer one.
        let no_frames = [
            ("X-Frame-Options", "DENY".to_string()),
            ("Content-Security-Policy", "frame-ancestors 'none'".into()),
        ];
        let html = "text/html; charset=utf-8";
        write_response(stream, 200, html, &no_frames, page.as_bytes(), head_only).await;
    }
}

/// Resolve `request_path` inside `root`, or None: no `..`, no hidden component (as asked for
/// or after following symlinks), nothing outside `root` after following symlinks, regular files
/// only (a directory means its index.html).
pub(crate) fn static_file(root: &Path, request_path: &str) -> Option<PathBuf> {
    let decoded = decode_path(request_path)?;
    let rel = Path::new(decoded.trim_start_matches('/'));
    let plain = |p: &Path| {
        p.components()
            .all(|c| matches!(c, Component::Normal(n) if !is_hidden(n)))
    };
    if !plain(rel) {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let mut full = root.join(rel).canonicalize().ok()?;
    if full.is_dir() {
        full = full.join("index.html").canonicalize().ok()?;
    }
    (plain(full.strip_prefix(&root).ok()?) && full.is_file()).then_some(full)
}

/// A request path as a file path: percent-decoded strictly, and None when it holds NUL or `\`
/// (for `--static` and `exec-dir:`).
pub(crate) fn decode_path(request_path: &str) -> Option<String> {
    percent_decode(request_path).filter(|d| !d.contains(['\0', '\\']))
}

/// A hidden file or directory name (`.env`, `.git`), except `.well-known` (RFC 8615).
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.starts_with(b".") && b != b".well-known"
}

/// A request path percent-decoded, strictly: None when a `%` starts no escape of two hex digits
/// or the result is not UTF-8 (such a path names no file).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let escape = |i: usize| {
        b.get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    };
    if !memchr::memchr_iter(b'%', b).all(escape) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

async fn send_file<S: AsyncWrite + Unpin>(stream: &mut S, path: &Path, head_only: bool) {
    let Ok(file) = tokio::fs::File::open(path).await else {
        write_refusal(stream, &refuse(404, "not found")).await;
        return;
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n",
        content_type(path)
    );
    if stream.write_all(head.as_bytes()).await.is_err() || head_only {
        let _ = stream.shutdown().await;
        return;
    }
    let mut file = tokio::io::BufReader::with_capacity(64 * 1024, file);
    let _ = tokio::io::copy_buf(&mut file, stream).await;
    let _ = stream.shutdown().await;
}

/// A writer that fails with `TimedOut` once it has waited `idle` for the client to take a byte.
/// Only waiting counts, not the total: a slow reader gets all of a large answer, a stalled one is
/// dropped. Once stalled, every later call fails at once.
struct IdleBound<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    stalled: bool,
}

impl<S: AsyncWrite + Unpin> IdleBound<S> {
    fn new(inner: S, idle: Duration) -> Self {
        IdleBound {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            stalled: false,
        }
    }

    /// One poll of the inner writer; the clock runs from the first `Pending` to the next `Ready`.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if self.stalled {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        if !self.waiting {
            let at = tokio::time::Instant::now() + self.idle;
            self.deadline.as_mut().reset(at);
        }
        let ready = poll(Pin::new(&mut self.inner), cx);
        self.waiting = ready.is_pending();
        if self.waiting && self.deadline.as_mut().poll(cx).is_ready() {
            self.stalled = true;
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        ready
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleBound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().bound(cx, |w, cx| w.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().bound(cx, |w, cx| w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().bound(cx, |w, cx| w.poll_shutdown(cx))
    }
}

async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    ctype: &str,
    extra: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        reason(status),
        body.len()
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    if !head_only {
        all.extend_from_slice(body);
    }
    let _ = stream.write_all(&all).await;
    let _ = stream.shutdown().await;
}

async fn write_refusal<S: AsyncWrite + Unpin>(stream: &mut S, r: &Refusal) {
    let body = format!("{}\n", r.why);
    write_response(
        stream,
        r.status,
        "text/plain; charset=utf-8",
        &r.headers,
        body.as_bytes(),
        false,
    )
    .await;
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Header;
    use proptest::prelude::*;

    const VALID: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Origin: http://example.com\r\nAuthorization: Bearer s3cret\r\nX-Api-Key: k\r\n\r\n";

    /// `cases` cases; no regression files are written into the source tree.
    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Option sets that make `check_upgrade` walk every branch.
    fn option_sets() -> Vec<(ServerOptions, Option<&'static str>)> {
        let strict = ServerOptions {
            protocols: vec!["superchat".into(), "chat".into()],
            origin_allow: vec!["http://example.com".into()],
            require_headers: vec![Header {
                name: HeaderName::from_static("x-api-key"),
                value: HeaderValue::from_static("k"),
            }],
            auth_token: Some("s3cret".into()),
            ..ServerOptions::default()
        };
        vec![
            (ServerOptions::default(), None),
            (strict.clone(), None),
            (strict, Some("/chat")),
        ]
    }

    /// Parse, and when it parses, decide on it with every option set (and at capacity).
    fn exercise(buf: &[u8]) {
        match RequestHead::parse(buf) {
            Ok(Some((head, used))) => {
                assert!(used <= buf.len());
                assert!(head.path().len() <= head.uri.len());
                let _ = head.is_upgrade();
                for (opts, path) in option_sets() {
                    for cap in [false, true] {
                        match check_upgrade(&head, &opts, path, cap) {
                            Ok(u) => {
                                assert!(!cap, "accepted at capacity");
                                assert_eq!(u.accept_key.len(), 28);
                            }
                            Err(r) => {
                                assert!((400..600).contains(&r.status), "{r:?}");
                                assert!(!reason(r.status).is_empty(), "{r:?}");
                            }
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(why) => assert!(!why.is_empty()),
        }
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Truncate(usize),
        Splice(usize, Vec<u8>),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let interesting = prop::sample::select(vec![
            b'\r', b'\n', b':', b' ', b'\t', b',', b'?', b'%', b'/', 0u8, 0x7f, 0x80, 0xff, b'=',
        ]);
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<usize>(), interesting.clone()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<usize>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Remove),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(i, v)| Mutation::Splice(i, v)),
        ]
    }

    fn apply(mut buf: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
        for m in muts {
            let n = buf.len();
            match m {
                Mutation::Flip(i, b) if n > 0 => buf[i % n] = *b,
                Mutation::Insert(i, b) => buf.insert(i % (n + 1), *b),
                Mutation::Remove(i) if n > 0 => {
                    buf.remove(i % n);
                }
                Mutation::Truncate(i) => buf.truncate(i % (n + 1)),
                Mutation::Splice(i, v) => {
                    let at = i % (n + 1);
                    buf.splice(at..at, v.iter().copied());
                }
                _ => {}
            }
        }
        buf
    }

    #[test]
    fn the_valid_request_is_accepted_by_every_option_set() {
        let (head, used) = RequestHead::parse(VALID).unwrap().unwrap();
        assert_eq!(used, VALID.len());
        assert_eq!(head.path(), "/chat");
        for (opts, path) in option_sets() {
            let u = check_upgrade(&head, &opts, path, false).unwrap();
            // RFC 6455 section 1.3's example key and accept value.
            assert_eq!(u.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
            let expected = (!opts.protocols.is_empty()).then(|| "chat".to_string());
            assert_eq!(u.protocol, expected);
            assert_eq!(
                check_upgrade(&head, &opts, path, true).unwrap_err().status,
                503
            );
        }
        assert_eq!(RequestHead::parse(&VALID[..20]), Ok(None));
    }

    #[test]
    fn a_checked_or_passed_header_sent_twice_is_refused() {
        let opts = ServerOptions {
            origin_allow: vec!["http://example.com".into()],
            require_headers: vec![Header {
                name: HeaderName::from_static("x-user"),
                value: HeaderValue::from_static("alice"),
            }],
            pass_headers: vec![HeaderName::from_static("x-role")],
            auth_token: Some("s3cret".into()),
            ..ServerOptions::default()
        };
        let with = |extra: &str| {
            let text = String::from_utf8_lossy(VALID).replace("X-Api-Key: k\r\n", extra);
            let (head, _) = RequestHead::parse(text.as_bytes()).unwrap().unwrap();
            check_upgrade(&head, &opts, None, false)
        };
        assert!(with("X-User: alice\r\n").is_ok());
        assert!(with("X-User: alice\r\nX-Other: 1\r\nX-Other: 2\r\n").is_ok());
        for (extra, name) in [
            ("X-User: alice\r\nX-User: admin\r\n", "x-user"),
            ("X-User: admin\r\nx-user: alice\r\n", "x-user"),
            ("X-User: alice\r\nX-User: alice\r\n", "x-user"),
            ("X-User: alice\r\nX-Role: a\r\nX-ROLE: b\r\n", "x-role"),
            ("X-User: alice\r\nOrigin: http://evil.example\r\n", "origin"),
            (
                "X-User: alice\r\nAuthorization: Bearer x\r\n",
                "authorization",
            ),
        ] {
            let r = with(extra).unwrap_err();
            assert_eq!(r.status, 400, "{extra:?}: {r:?}");
            assert_eq!(r.why, format!("header {name} sent more than once"));
        }
    }

    proptest! {
        #![proptest_config(config(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
            exercise(&buf);
        }

        #[test]
        fn mutated_upgrade_requests_never_panic(
            muts in prop::collection::vec(mutation(), 1..8),
        ) {
            exercise(&apply(VALID.to_vec(), &muts));
        }

        #[test]
        fn a_parsed_head_is_a_prefix_and_extra_bytes_are_left_over(
            muts in prop::collection::vec(mutation(), 0..4),
            tail in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let buf = apply(VALID.to_vec(), &muts);
            if let Ok(Some((head, used))) = RequestHead::parse(&buf) {
                let mut longer = buf[..used].to_vec();
                longer.extend_from_slice(&tail);
                // The same head parses from a longer buffer, ending at the same place.
                prop_assert_eq!(RequestHead::parse(&longer), Ok(Some((head, used))));
            }
        }
    }

    proptest! {
        // Generating text from regexes is slow in debug builds: fewer, richer cases.
        #![proptest_config(config(300))]

        #[test]
        fn arbitrary_text_heads_never_panic(
            method in "[A-Z]{0,8}",
            uri in "[ -~]{0,40}",
            headers in prop::collection::vec(("[!-9;-~]{1,12}", "[ -~\t]{0,24}"), 0..70),
            known in prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                        "Sec-WebSocket-Protocol", "Origin", "Authorization", "X-Api-Key",
                    ]),
                    "[ -~]{0,30}",
                ),
                0..8,
            ),
        ) {
            let mut buf = format!("{method} {uri} HTTP/1.1\r\n").into_bytes();
            for (n, v) in known.iter().map(|(n, v)| (n.to_string(), v)).chain(
                headers.iter().map(|(n, v)| (n.clone(), v)),
            ) {
                buf.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            buf.extend_from_slice(b"\r\n");
            exercise(&buf);
        }
    }

    /// A tree for `static_file`: tmp/{www/{a.txt, d/index.html, out -> tmp, sec -> tmp/secret},
    /// secret}.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir_all(www.join("d")).unwrap();
        std::fs::write(www.join("a.txt"), "a").unwrap();
        std::fs::write(www.join("d/index.html"), "i").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path(), www.join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), www.join("sec")).unwrap();
        (dir, www)
    }

    #[test]
    fn static_file_stays_inside_its_root() {
        let (_dir, www) = tree();
        let root = www.canonicalize().unwrap();
        let part = prop::sample::select(vec![
            "/",
            "//",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            "%2f",
            "%5c",
            "\\",
            "a.txt",
            "d",
            "out",
            "sec",
            "secret",
            "www",
            "index.html",
            "%00",
            "%",
            "%zz",
            "%e2%82",
        ]);
        let mut runner = proptest::test_runner::TestRunner::new(config(2000));
        runner
            .run(&prop::collection::vec(part, 0..10), |parts| {
                let path = format!("/{}", parts.concat());
                if let Some(file) = static_file(&www, &path) {
                    prop_assert!(file.starts_with(&root), "{} -> {}", path, file.display());
                    prop_assert!(file.is_file());
                    prop_assert_ne!(std::fs::read(&file).unwrap(), b"s".to_vec());
                }
                Ok(())
            })
            .unwrap();
        // Files that are inside are found, so the property above is not vacuous.
        assert_eq!(static_file(&www, "/a.txt"), Some(root.join("a.txt")));
        assert_eq!(static_file(&www, "/d"), Some(root.join("d/index.html")));
        assert_eq!(static_file(&www, "/d/"), Some(root.join("d/index.html")));
        assert_eq!(
            static_file(&www, "/out/www/a.txt"),
            Some(root.join("a.txt"))
        );
        assert_eq!(static_file(&www, "/sec"), None);
        assert_eq!(static_file(&www, "/out/secret"), None);
    }

    #[test]
    fn request_paths_are_percent_decoded_strictly() {
        assert_eq!(percent_decode("/a%20b/%C3%A9+").as_deref(), Some("/a b/é+"));
        assert_eq!(percent_decode("/%2e%2E").as_deref(), Some("/.."));
        for bad in ["/%", "/%2", "/%zz", "/%%41", "/%+1", "/%e2%82"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn static_file_skips_hidden_names_except_well_known() {
        let (_dir, www) = tree();
        let root = www.canonicalize().unwrap();
        for d in [".git", "d/.git", ".well-known", ".well-known/.x"] {
            std::fs::create_dir_all(www.join(d)).unwrap();
            std::fs::write(www.join(d).join("index.html"), "h").unwrap();
        }
        std::fs::write(www.join(".env"), "h").unwrap();
        std::os::unix::fs::symlink(www.join(".git"), www.join("git")).unwrap();
        for path in [
            "/.env",
            "/%2eenv",
            "/.git/",
            "/.git/index.html",
            "/%2Egit/index.html",
            "/d/.git/index.html",
            "/git/index.html",
            "/git/",
            "/.well-known/.x/",
        ] {
            assert_eq!(static_file(&www, path), None, "{path}");
        }
        assert_eq!(
            static_file(&www, "/.well-known/"),
            Some(root.join(".well-known/index.html"))
        );
    }
}
