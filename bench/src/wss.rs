//! The wss scenario (issue 18): bulk over TLS, in both roles and both directions, against a
//! no-relay baseline built from the same libraries (the bench's rustls WebSocket client straight
//! to its rustls WebSocket server):
//!
//! ```text
//! client up:    bench TCP ─▶ relay tcp-listen: ─TLS─▶ wss://bench/sink
//! client down:  bench TCP ◀─ relay tcp-listen: ◀─TLS─ wss://bench/source
//! server up:    bench wss client ─TLS─▶ relay wss-listen: ─▶ bench TCP sink
//! server down:  bench wss client ◀─TLS─ relay wss-listen: ◀─ bench TCP source
//! baseline:     bench wss client ◀─TLS─▶ bench wss server (sink / source)
//! ```
//!
//! The certificate is made the way users make one, with `openssl req -x509` (P-256, for
//! 127.0.0.1), and trusted by passing it: `--ca-file` for wsbridge, `-k` for websocat (which
//! then skips verification). websocat 1.x serves TLS from a PKCS#12 file; websocat 4 has no TLS
//! server, so its server rows stay empty.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::relay::{RelaySpec, Role};
use crate::scenarios::{
    Better, Ctx, Metrics, R, Row, cpu_delta, err, finish, limit_for, rate_mb, read_bytes, start,
    tcp, within, write_n,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flow {
    ClientUp,
    ClientDown,
    ServerUp,
    ServerDown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    Rate,
    Cpu,
}

pub fn label(f: Flow, m: Measure) -> String {
    let what = match f {
        Flow::ClientUp => "wss bulk: -b tcp-listen → wss:// sink",
        Flow::ClientDown => "wss bulk reverse: wss:// source → tcp-listen client",
        Flow::ServerUp => "wss server bulk: wss-listen (PEM) → tcp: sink",
        Flow::ServerDown => "wss server bulk reverse: tcp: source → wss-listen client",
    };
    match m {
        Measure::Rate => what.into(),
        Measure::Cpu => format!("{}: relay CPU", what.split(':').next().unwrap_or(what)),
    }
}

pub fn unit(m: Measure) -> &'static str {
    match m {
        Measure::Rate => "MB/s",
        Measure::Cpu => "CPU s / GB",
    }
}

pub fn better(m: Measure) -> Better {
    match m {
        Measure::Rate => Better::Higher,
        Measure::Cpu => Better::Lower,
    }
}

/// The certificate files, and the bench's own TLS configurations.
pub struct Tls {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub p12: PathBuf,
    acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    client: Arc<rustls::ClientConfig>,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str], dir: &Path) -> R<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(err("openssl (apt-get install openssl)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tls {
    pub fn make() -> R<Tls> {
        let dir = std::env::temp_dir().join(format!("wsbench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(err("temp dir"))?;
        let dir = TempDir(dir);
        let subj = [
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ];
        let mut req = vec!["req", "-x509", "-newkey", "ec", "-pkeyopt"];
        req.extend(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]);
        req.extend(["-keyout", "key.pem", "-out", "cert.pem"]);
        req.extend(subj);
        openssl(&req, &dir.0)?;
        let p12 = ["pkcs12", "-export", "-inkey", "key.pem", "-in", "cert.pem"];
        let mut p12 = p12.to_vec();
        p12.extend(["-out", "cert.p12", "-passout", "pass:"]);
        openssl(&p12, &dir.0)?;
        let (cert, key, p12) = (
            dir.0.join("cert.pem"),
            dir.0.join("key.pem"),
            dir.0.join("cert.p12"),
        );
        let (acceptor, client) = configs(&cert, &key)?;
        Ok(Tls {
            _dir: dir,
            cert,
            key,
            p12,
            acceptor,
            connector: TlsConnector::from(client.clone()),
            client,
        })
    }

    /// The bench's client configuration (resumption on, as rustls has it by default).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }
}

fn configs(cert: &Path, key: &Path) -> R<(TlsAcceptor, Arc<rustls::ClientConfig>)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(err("cert.pem"))?
        .collect::<Result<_, _>>()
        .map_err(err("cert.pem"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(err("key.pem"))?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .map_err(err("server config"))?;
    let pinned = Pinned(certs[0].clone().into_owned());
    let client = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pinned))
        .with_no_client_auth();
    Ok((TlsAcceptor::from(Arc::new(server)), Arc::new(client)))
}

/// The bench's client trusts exactly the bench's certificate (an `openssl req -x509` one is a CA
/// certificate, which webpki will not take as a server's own; wsbridge's `--ca-file` has the same
/// exact-match rule). Signatures are still checked.
#[derive(Debug)]
struct Pinned(rustls::pki_types::CertificateDer<'static>);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the bench's certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The bench's wss server: `/sink/N` (reports when N bytes arrived) and `/source/N/SIZE`.
pub struct WssServer {
    pub port: u16,
    done: tokio::sync::Mutex<mpsc::UnboundedReceiver<Instant>>,
}

impl WssServer {
    pub async fn start(tls: &Tls) -> R<WssServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(err("bind"))?;
        let port = listener.local_addr().map_err(err("addr"))?.port();
        let (tx, rx) = mpsc::unbounded_channel();
        let acceptor = tls.acceptor.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let _ = s.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(s).await {
                        serve(tls, tx).await;
                    }
                });
            }
        });
        Ok(WssServer {
            port,
            done: tokio::sync::Mutex::new(rx),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("wss://127.0.0.1:{}{path}", self.port)
    }

    async fn clear(&self) {
        let mut rx = self.done.lock().await;
        while rx.try_recv().is_ok() {}
    }

    async fn wait(&self) -> Option<Instant> {
        self.done.lock().await.recv().await
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: S, done: mpsc::UnboundedSender<Instant>) {
    let mut path = String::new();
    let cb = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(256 << 20));
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(s, cb, Some(config)).await
    else {
        return;
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["sink", n] => {
            let target: u64 = n.parse().unwrap_or(u64::MAX);
            let mut got = 0u64;
            let mut reported = false;
            while let Some(Ok(m)) = ws.next().await {
                got += m.len() as u64;
                if !reported && got >= target {
                    reported = true;
                    let _ = done.send(Instant::now());
                }
            }
        }
        ["source", n, size] => {
            let (n, size) = (
                n.parse().unwrap_or(0u64),
                size.parse().unwrap_or(65536usize),
            );
            if send_n(&mut ws, n, size).await.is_ok() {
                let _ = ws.close(None).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
        }
        // Anything else: echo (the handshake scenario's baseline).
        _ => {
            while let Some(Ok(m)) = ws.next().await {
                if (m.is_binary() || m.is_text()) && ws.send(m).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `total` bytes as binary messages of `size` bytes, fed and flushed once.
async fn send_n<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    total: u64,
    size: usize,
) -> R<()> {
    let payload = Bytes::from(vec![b'x'; size.max(1)]);
    let mut left = total;
    while left > 0 {
        let k = left.min(payload.len() as u64) as usize;
        ws.feed(Message::Binary(payload.slice(..k)))
            .await
            .map_err(err("send"))?;
        left -= k as u64;
    }
    ws.flush().await.map_err(err("flush"))
}

/// Binary messages until `n` payload bytes arrived.
async fn recv_n<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, n: u64) -> R<()> {
    let mut got = 0u64;
    while got < n {
        let m = ws
            .next()
            .await
            .ok_or("closed early")?
            .map_err(err("read"))?;
        if m.is_binary() {
            got += m.len() as u64;
        }
    }
    Ok(())
}

type TlsWs = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// The bench's wss client (rustls, trusting the bench's certificate).
async fn wss(tls: &Tls, port: u16, path: &str) -> R<TlsWs> {
    let s = tcp(port).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(err("name"))?;
    let s = tls.connector.connect(name, s).await.map_err(err("TLS"))?;
    let url = format!("wss://127.0.0.1:{port}{path}");
    let (ws, _) = tokio_tungstenite::client_async(url, s)
        .await
        .map_err(err("handshake"))?;
    Ok(ws)
}

/// What the scenario shares: the certificate and the wss server.
pub struct WssCtx {
    pub tls: Tls,
    pub server: WssServer,
}

impl WssCtx {
    pub async fn start() -> R<WssCtx> {
        let tls = Tls::make()?;
        let server = WssServer::start(&tls).await?;
        Ok(WssCtx { tls, server })
    }
}

fn rows(f: Flow, n: u64, dt: Duration, cpu: Option<f64>) -> Metrics {
    let mut m = vec![(Row::Wss(f, Measure::Rate), rate_mb(n, dt))];
    if let Some(cpu) = cpu {
        m.push((Row::Wss(f, Measure::Cpu), cpu / (n as f64 / 1e9)));
    }
    m
}

/// The no-relay baseline: the bench's wss client to its wss server, up and down.
pub async fn baseline(ctx: &Ctx, w: &WssCtx) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    let size = ctx.sizes.write_size;
    w.server.clear().await;
    let mut up = wss(&w.tls, w.server.port, &format!("/sink/{n}")).await?;
    let t0 = Instant::now();
    within(limit_for(n), "wss bulk", async {
        send_n(&mut up, n, size).await?;
        w.server.wait().await.ok_or("no report")?;
        Ok(())
    })
    .await?;
    let up_took = t0.elapsed();
    let t0 = Instant::now();
    let mut down = wss(&w.tls, w.server.port, &format!("/source/{n}/{size}")).await?;
    within(limit_for(n), "wss bulk reverse", recv_n(&mut down, n)).await?;
    let down_took = t0.elapsed();
    // One measurement per direction: the limit for both roles.
    let mut m = rows(Flow::ClientUp, n, up_took, None);
    m.extend(rows(Flow::ServerUp, n, up_took, None));
    m.extend(rows(Flow::ClientDown, n, down_took, None));
    m.extend(rows(Flow::ServerDown, n, down_took, None));
    Ok(m)
}

/// Start the relay for `role`, then time `run` (given the relay's port) and the relay's CPU
/// meanwhile: the rows for `flow`. The relay is stopped afterwards.
async fn measured<'a, F, Fut>(
    ctx: &Ctx,
    spec: &RelaySpec,
    role: Role,
    flow: Flow,
    run: F,
) -> R<Metrics>
where
    F: FnOnce(u16) -> Fut,
    Fut: std::future::Future<Output = R<()>> + 'a,
{
    let n = ctx.sizes.bulk_bytes;
    let r = start(spec, role).await?;
    let res = async {
        let cpu0 = r.cpu_secs();
        let t0 = Instant::now();
        within(
            limit_for(n),
            label(flow, Measure::Rate).as_str(),
            run(r.port),
        )
        .await?;
        Ok(rows(flow, n, t0.elapsed(), Some(cpu_delta(&r, cpu0))))
    }
    .await;
    finish(r, res).await
}

fn client_role(w: &WssCtx, path: &str) -> Role {
    Role::TcpToWss {
        url: w.server.url(path),
        ca: w.tls.cert.display().to_string(),
    }
}

pub async fn client_up(ctx: &Ctx, w: &WssCtx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    w.server.clear().await;
    let role = client_role(w, &format!("/sink/{n}"));
    measured(ctx, spec, role, Flow::ClientUp, |port| async move {
        let mut s = tcp(port).await?;
        write_n(&mut s, n, ctx.sizes.write_size).await?;
        w.server.wait().await.ok_or("no report")?;
        Ok(())
    })
    .await
}

pub async fn client_down(ctx: &Ctx, w: &WssCtx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    let role = client_role(w, &format!("/source/{n}/{}", ctx.sizes.write_size));
    measured(ctx, spec, role, Flow::ClientDown, |port| async move {
        read_bytes(&mut tcp(port).await?, n).await
    })
    .await
}

fn server_role(w: &WssCtx, port: u16) -> Role {
    Role::WssToTcp {
        port,
        cert: w.tls.cert.display().to_string(),
        key: w.tls.key.display().to_string(),
        p12: w.tls.p12.display().to_string(),
    }
}

pub async fn server_up(ctx: &Ctx, w: &WssCtx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    ctx.servers.clear_done().await;
    let target = &ctx.servers.shared.tcp_target;
    target.store(n, std::sync::atomic::Ordering::SeqCst);
    let role = server_role(w, ctx.servers.tcp_sink_port);
    let m = measured(ctx, spec, role, Flow::ServerUp, |port| async move {
        let mut ws = wss(&w.tls, port, "/").await?;
        send_n(&mut ws, n, ctx.sizes.write_size).await?;
        ctx.servers.wait_done().await.ok_or("no report")?;
        Ok(())
    })
    .await;
    target.store(0, std::sync::atomic::Ordering::SeqCst);
    m
}

pub async fn server_down(ctx: &Ctx, w: &WssCtx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    let source = &ctx.servers.shared.tcp_source_bytes;
    source.store(n, std::sync::atomic::Ordering::SeqCst);
    let role = server_role(w, ctx.servers.tcp_source_port);
    measured(ctx, spec, role, Flow::ServerDown, |port| async move {
        let mut ws = wss(&w.tls, port, "/").await?;
        recv_n(&mut ws, n).await
    })
    .await
}
