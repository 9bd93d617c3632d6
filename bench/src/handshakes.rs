//! Two scenarios of many short or many concurrent clients (issue 18):
//!
//! - handshakes: new `wss-listen:` sessions per second (`-b wss-listen: mirror:`), each a TCP
//!   connection, a TLS handshake, a WebSocket handshake, one message echoed and a clean close,
//!   from many concurrent clients; with TLS session resumption (the client keeps its sessions)
//!   and without; relay CPU per handshake. Baseline: the bench's own rustls server (echo).
//! - fan-in: 1,000 clients on `-b ws-listen:` → the bench's TCP echo, each sending a 100 B
//!   message every 100 ms; round-trip p50/p99/p999 and relay CPU per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

use crate::relay::{RelaySpec, Role};
use crate::scenarios::{Ctx, Metrics, R, Row, cpu_delta, err, finish, percentile, start};
use crate::wss::WssCtx;

const HS_CLIENTS: usize = 32;

fn hs_rows(resume: bool) -> (Row, Row) {
    if resume {
        (
            Row::Named(
                "handshakes: wss-listen sessions/s, TLS resumption",
                "sessions/s",
                true,
            ),
            Row::Named("handshakes: relay CPU per session, resumption", "µs", false),
        )
    } else {
        (
            Row::Named(
                "handshakes: wss-listen sessions/s, full TLS handshakes",
                "sessions/s",
                true,
            ),
            Row::Named(
                "handshakes: relay CPU per session, full handshakes",
                "µs",
                false,
            ),
        )
    }
}

/// The bench's client config, with or without resumption.
fn connector(w: &WssCtx, resume: bool) -> TlsConnector {
    if resume {
        return w.tls.connector.clone();
    }
    let mut config = (*w.tls.client_config()).clone();
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// One session: connect, TLS, upgrade, one message echoed, Close and its answer.
async fn one(port: u16, tls: &TlsConnector) -> R<()> {
    let s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(err("connect"))?;
    let _ = s.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(err("name"))?;
    let s = tls.connect(name, s).await.map_err(err("TLS"))?;
    let url = format!("wss://127.0.0.1:{port}/echo");
    let (mut ws, _) = tokio_tungstenite::client_async(url, s)
        .await
        .map_err(err("upgrade"))?;
    ws.send(Message::binary(&b"hello, relay"[..]))
        .await
        .map_err(err("send"))?;
    loop {
        match ws.next().await {
            Some(Ok(m)) if m.is_binary() => break,
            Some(Ok(_)) => {}
            other => return Err(format!("no echo: {other:?}")),
        }
    }
    ws.close(None).await.map_err(err("close"))?;
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

/// `HS_CLIENTS` clients making sessions for `secs`: sessions per second.
async fn hammer(port: u16, tls: TlsConnector, secs: f64) -> R<(u64, Duration)> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..HS_CLIENTS)
        .map(|_| {
            let (done, failed, stop, tls) =
                (done.clone(), failed.clone(), stop.clone(), tls.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    match tokio::time::timeout(Duration::from_secs(10), one(port, &tls)).await {
                        Ok(Ok(())) => done.fetch_add(1, Relaxed),
                        _ => failed.fetch_add(1, Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let took = t0.elapsed();
    match failed.load(Relaxed) {
        0 => Ok((done.load(Relaxed), took)),
        n => Err(format!("{n} sessions failed")),
    }
}

pub async fn handshakes_baseline(ctx: &Ctx, w: &WssCtx) -> R<Metrics> {
    let secs = ctx.sizes.handshake_secs;
    let mut m = Vec::new();
    for resume in [false, true] {
        let (n, took) = hammer(w.server.port, connector(w, resume), secs).await?;
        m.push((hs_rows(resume).0, n as f64 / took.as_secs_f64()));
    }
    Ok(m)
}

pub async fn handshakes_relay(ctx: &Ctx, w: &WssCtx, spec: &RelaySpec) -> R<Metrics> {
    let secs = ctx.sizes.handshake_secs;
    let role = || Role::WssToMirror {
        cert: w.tls.cert.display().to_string(),
        key: w.tls.key.display().to_string(),
        p12: w.tls.p12.display().to_string(),
    };
    let mut m = Vec::new();
    for resume in [false, true] {
        let r = start(spec, role()).await?;
        let res = async {
            let cpu0 = r.cpu_secs();
            let (n, took) = hammer(r.port, connector(w, resume), secs).await?;
            let cpu = cpu_delta(&r, cpu0);
            let (rate, per) = hs_rows(resume);
            Ok(vec![
                (rate, n as f64 / took.as_secs_f64()),
                (per, cpu * 1e6 / n.max(1) as f64),
            ])
        }
        .await;
        m.extend(finish(r, res).await?);
    }
    Ok(m)
}

const FANIN_MSG: usize = 100;
const FANIN_EVERY: Duration = Duration::from_millis(100);

/// 1,000 (`--fanin-clients`) clients through `-b ws-listen:` → the bench's TCP echo, each a
/// 100 B message every 100 ms for `--fanin-secs`: round trips and relay CPU.
pub async fn fanin_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let port = ctx.servers.tcp_echo_port;
    let r = start(spec, Role::WsToTcp { port }).await?;
    let res = async {
        let url = format!("ws://127.0.0.1:{}/", r.port);
        let (mut m, msgs, cpu0) = fanin(ctx, &url, || r.cpu_secs()).await?;
        let cpu = cpu_delta(&r, cpu0);
        m.push((
            Row::Named("fan-in: relay CPU per message", "µs", false),
            cpu * 1e6 / msgs.max(1) as f64,
        ));
        Ok(m)
    }
    .await;
    finish(r, res).await
}

/// The same clients straight to the bench's WebSocket echo server.
pub async fn fanin_baseline(ctx: &Ctx) -> R<Metrics> {
    let url = ctx.servers.url("/echo");
    Ok(fanin(ctx, &url, || None).await?.0)
}

/// Connect every client, then run them: the latency rows, the messages, and `cpu()` taken when
/// the clock started.
async fn fanin(
    ctx: &Ctx,
    url: &str,
    cpu: impl Fn() -> Option<f64>,
) -> R<(Metrics, usize, Option<f64>)> {
    let (clients, secs) = (ctx.sizes.fanin_clients, ctx.sizes.fanin_secs);
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(crate::scenarios::ws(url).await?);
    }
    let cpu0 = cpu();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, ws)| tokio::spawn(fanin_client(ws, i, end)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(err("client"))??);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let m = vec![
        (
            Row::Named(
                "fan-in: 1,000 clients × 10 msg/s, round trip p50",
                "µs",
                false,
            ),
            percentile(&all, 0.5),
        ),
        (
            Row::Named("fan-in: round trip p99", "µs", false),
            percentile(&all, 0.99),
        ),
        (
            Row::Named("fan-in: round trip p99.9", "µs", false),
            percentile(&all, 0.999),
        ),
    ];
    Ok((m, all.len(), cpu0))
}

/// One fan-in client: a message every 100 ms (phase-shifted by `i`), each awaited; the round
/// trips in µs.
async fn fanin_client(mut ws: crate::scenarios::Ws, i: usize, end: Instant) -> R<Vec<f64>> {
    let payload = bytes::Bytes::from(vec![b'f'; FANIN_MSG]);
    let phase = FANIN_EVERY.mul_f64((i % 100) as f64 / 100.0);
    let mut next = tokio::time::Instant::now() + phase;
    let mut rtts = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep_until(next).await;
        next += FANIN_EVERY;
        let t0 = Instant::now();
        ws.send(Message::Binary(payload.clone()))
            .await
            .map_err(err("send"))?;
        let mut got = 0;
        while got < FANIN_MSG {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(m))) if m.is_binary() => got += m.len(),
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("fan-in echo: {other:?}")),
            }
        }
        rtts.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let _ = ws.close(None).await;
    Ok(rtts)
}
