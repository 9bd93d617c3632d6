//! The scenarios: each runs once against a relay (a fresh process per run) or as the no-relay
//! baseline (the same client talking to the same in-process server), and returns its metrics.
//! Every wait is bounded.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::deflate::{Dir, Measure, Side, Variant};
use crate::fanout;
use crate::relay::{RelayProc, RelaySpec, Role};
use crate::server::Servers;

/// One table row: what is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Row {
    Lines,
    LinesCpu,
    BulkUp,
    BulkUpCpu,
    BulkDown,
    BulkDownCpu,
    ServerBulk,
    ServerBulkCpu,
    ServerBulkDown,
    ServerBulkDownCpu,
    RawTcp,
    LatP50,
    LatP99,
    LatCpu,
    IdleRest,
    Idle(usize),
    StartupFirst,
    StartupExit,
    StallGrowth,
    StallSent,
    /// permessage-deflate: a JSON stream through two wsbridge processes (see `deflate`).
    Deflate(Variant, Dir, Measure),
    /// permessage-deflate: RSS per idle connection of one of the two processes.
    DeflateIdle(Variant, Side),
    /// One broadcast room, many clients, on one instance or two sharing it via Redis.
    Fanout(fanout::Setup, fanout::Load, fanout::Measure),
    /// Bulk over TLS, one role and direction (see `wss`).
    Wss(crate::wss::Flow, crate::wss::Measure),
    /// A row described in place: label, unit, and whether higher is better (the handshake and
    /// fan-in scenarios).
    Named(&'static str, &'static str, bool),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Informational; no ratio.
    Neither,
}

impl Row {
    pub fn label(self) -> String {
        match self {
            Row::Lines => "lines: tcp-listen → ws:// text, 100 B lines echoed".into(),
            Row::LinesCpu => "lines: relay CPU".into(),
            Row::BulkUp => "bulk: -b tcp-listen → ws:// sink, 64 KiB writes".into(),
            Row::BulkUpCpu => "bulk: relay CPU".into(),
            Row::BulkDown => "bulk reverse: ws:// source (64 KiB msgs) → tcp-listen client".into(),
            Row::BulkDownCpu => "bulk reverse: relay CPU".into(),
            Row::ServerBulk => "server bulk: ws-listen → tcp: sink, 64 KiB binary msgs".into(),
            Row::ServerBulkCpu => "server bulk: relay CPU".into(),
            Row::ServerBulkDown => {
                "server bulk reverse: tcp: source → ws-listen, WebSocket client reads".into()
            }
            Row::ServerBulkDownCpu => "server bulk reverse: relay CPU".into(),
            Row::RawTcp => "raw TCP → TCP sink, 64 KiB writes (no WebSocket)".into(),
            Row::LatP50 => "latency: 32 B line round trip, p50".into(),
            Row::LatP99 => "latency: 32 B line round trip, p99".into(),
            Row::LatCpu => "latency: relay CPU per round trip".into(),
            Row::IdleRest => "idle: relay RSS at rest (listening, no clients)".into(),
            Row::Idle(n) => format!("idle: RSS per bridged idle connection ({n} conns)"),
            Row::StartupFirst => "startup: spawn `--text - ws://…` → first echoed line".into(),
            Row::StartupExit => "startup: spawn → one line echoed → exit".into(),
            Row::StallGrowth => "stall: relay RSS growth while the TCP reader stalls".into(),
            Row::StallSent => "stall: bytes the server got out meanwhile".into(),
            Row::Deflate(v, d, m) => format!("deflate {}, {}: {}", d.label(), v.label(), m.label()),
            Row::DeflateIdle(v, s) => format!(
                "deflate idle, {}: RSS per connection of {}",
                v.label(),
                s.label()
            ),
            Row::Fanout(s, l, m) => fanout::label(s, l, m),
            Row::Wss(f, m) => crate::wss::label(f, m),
            Row::Named(label, ..) => label.into(),
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Row::Lines => "lines/s",
            Row::LinesCpu => "CPU s / 1M lines",
            Row::BulkUp | Row::BulkDown | Row::ServerBulk | Row::ServerBulkDown | Row::RawTcp => {
                "MB/s"
            }
            Row::BulkUpCpu | Row::BulkDownCpu | Row::ServerBulkCpu | Row::ServerBulkDownCpu => {
                "CPU s / GB"
            }
            Row::LatP50 | Row::LatP99 | Row::LatCpu => "µs",
            Row::IdleRest => "MiB",
            Row::Idle(_) => "KiB / conn",
            Row::StartupFirst | Row::StartupExit => "ms",
            Row::StallGrowth | Row::StallSent => "MiB",
            Row::Deflate(_, _, m) => m.unit(),
            Row::DeflateIdle(..) => "KiB / conn",
            Row::Fanout(_, _, m) => m.unit(),
            Row::Wss(_, m) => crate::wss::unit(m),
            Row::Named(_, unit, _) => unit,
        }
    }

    pub fn better(self) -> Better {
        match self {
            Row::Lines
            | Row::BulkUp
            | Row::BulkDown
            | Row::ServerBulk
            | Row::ServerBulkDown
            | Row::RawTcp => Better::Higher,
            Row::Deflate(_, _, m) => m.better(),
            Row::Fanout(_, _, m) => m.better(),
            Row::Wss(_, m) => crate::wss::better(m),
            Row::Named(_, _, true) => Better::Higher,
            Row::StallSent => Better::Neither,
            _ => Better::Lower,
        }
    }
}

pub type Metrics = Vec<(Row, f64)>;
pub(crate) type R<T> = Result<T, String>;

pub struct Sizes {
    /// Seconds each handshake run lasts.
    pub handshake_secs: f64,
    /// Fan-in clients and seconds.
    pub fanin_clients: usize,
    pub fanin_secs: f64,
    pub lines: u64,
    pub line_len: usize,
    pub bulk_bytes: u64,
    pub write_size: usize,
    pub latency_samples: usize,
    pub latency_line: usize,
    pub idle: Vec<usize>,
    pub startup_runs: usize,
    pub stall: Duration,
    pub deflate_lines: u64,
    pub deflate_conns: usize,
    pub deflate_idle_lines: usize,
    pub deflate_variants: Vec<Variant>,
    pub fanout: fanout::Sizes,
}

pub struct Ctx {
    pub servers: Servers,
    pub sizes: Sizes,
}

// ---------------------------------------------------------------------------------------------
// helpers

pub(crate) fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

pub(crate) async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = R<T>>) -> R<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what}: no result within {limit:?}"))?
}

pub(crate) async fn start(spec: &RelaySpec, role: Role) -> R<RelayProc> {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || RelayProc::spawn(&spec, &role))
        .await
        .map_err(err("spawn task"))?
}

/// Stop the relay; on failure, say whether it died and what it last printed.
pub(crate) async fn finish<T>(mut r: RelayProc, res: R<T>) -> R<T> {
    let res = res.map_err(|e| match r.check_alive() {
        Err(died) => format!("{e}; {died}"),
        Ok(()) => format!("{e}; relay stderr: {}", r.stderr_tail()),
    });
    let _ = tokio::task::spawn_blocking(move || drop(r)).await;
    res
}

const CONNECT_LIMIT: Duration = Duration::from_secs(10);

pub(crate) async fn tcp(port: u16) -> R<TcpStream> {
    let s = tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| format!("connect to 127.0.0.1:{port}: no answer within {CONNECT_LIMIT:?}"))?
        .map_err(err("connect to the relay"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

pub(crate) type Ws = WebSocketStream<TcpStream>;

pub(crate) async fn ws(url: &str) -> R<Ws> {
    let port: u16 = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("bad url {url}"))?;
    within(CONNECT_LIMIT, &format!("connect to {url}"), async {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(err("connect"))?;
        let _ = s.set_nodelay(true);
        let (w, _) = tokio_tungstenite::client_async_with_config(url, s, None)
            .await
            .map_err(err("WebSocket handshake"))?;
        Ok(w)
    })
    .await
}

/// Read until `n` newlines have arrived; returns the number of bytes read.
pub(crate) async fn read_lines<Rd: AsyncReadExt + Unpin>(
    rd: &mut Rd,
    n: u64,
    buf: &mut [u8],
) -> R<u64> {
    let (mut lines, mut bytes) = (0u64, 0u64);
    while lines < n {
        let k = rd.read(buf).await.map_err(err("read"))?;
        if k == 0 {
            return Err(format!("EOF after {lines} of {n} lines"));
        }
        bytes += k as u64;
        lines += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok(bytes)
}

pub(crate) async fn read_bytes<Rd: AsyncReadExt + Unpin>(rd: &mut Rd, n: u64) -> R<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < n {
        let k = rd.read(&mut buf).await.map_err(err("read"))?;
        if k == 0 {
            return Err(format!("EOF after {got} of {n} bytes"));
        }
        got += k as u64;
    }
    Ok(())
}

/// `len` bytes: printable text, ending in '\n'.
fn line(len: usize) -> Vec<u8> {
    let mut l: Vec<u8> = (0..len.saturating_sub(1))
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    l.push(b'\n');
    l
}

pub(crate) fn cpu_delta(r: &RelayProc, before: Option<f64>) -> f64 {
    match (before, r.cpu_secs()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    }
}

pub(crate) fn rate_mb(bytes: u64, dt: Duration) -> f64 {
    bytes as f64 / dt.as_secs_f64() / 1e6
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A time limit for moving `bytes` at no less than 5 MB/s, plus 30 s.
pub(crate) fn limit_for(bytes: u64) -> Duration {
    Duration::from_secs(30 + bytes / 5_000_000)
}

// ---------------------------------------------------------------------------------------------
// lines

pub async fn lines_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let url = ctx.servers.url("/echo");
    let r = start(spec, Role::TcpToWs { binary: false, url }).await?;
    let res = lines_through(ctx, &r).await;
    finish(r, res).await
}

async fn lines_through(ctx: &Ctx, r: &RelayProc) -> R<Metrics> {
    let n = ctx.sizes.lines;
    let len = ctx.sizes.line_len;
    let s = tcp(r.port).await?;
    let (mut rd, mut wr) = s.into_split();
    let mut buf = vec![0u8; 256 * 1024];
    // One line first, so that the connection is bridged before the clock starts.
    within(Duration::from_secs(10), "warm-up line", async {
        wr.write_all(b"warm-up\n").await.map_err(err("write"))?;
        read_lines(&mut rd, 1, &mut buf).await
    })
    .await?;
    let one = line(len);
    let per_chunk = (64 * 1024 / len).max(1);
    let chunk: Vec<u8> = one.repeat(per_chunk);
    let cpu0 = r.cpu_secs();
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        let mut left = n;
        while left > 0 {
            let k = left.min(per_chunk as u64) as usize;
            wr.write_all(&chunk[..k * len]).await?;
            left -= k as u64;
        }
        // Keep the write half open (no EOF) until the echoes are in.
        Ok::<_, std::io::Error>(wr)
    });
    let bytes = within(limit_for(n * len as u64 * 2), "echoed lines", async {
        read_lines(&mut rd, n, &mut buf).await
    })
    .await;
    let dt = t0.elapsed();
    let cpu = cpu_delta(r, cpu0);
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            // The writer may be blocked on a relay that stopped reading.
            writer.abort();
            return Err(e);
        }
    };
    let _wr = within(Duration::from_secs(10), "writer", async {
        writer.await.map_err(err("writer"))?.map_err(err("write"))
    })
    .await?;
    if bytes != n * len as u64 {
        return Err(format!(
            "echoed {bytes} bytes, expected {} ({n} lines of {len} B)",
            n * len as u64
        ));
    }
    Ok(vec![
        (Row::Lines, n as f64 / dt.as_secs_f64()),
        (Row::LinesCpu, cpu / (n as f64 / 1e6)),
    ])
}

pub async fn lines_baseline(ctx: &Ctx) -> R<Metrics> {
    let n = ctx.sizes.lines;
    let len = ctx.sizes.line_len;
    let w = ws(&ctx.servers.url("/echo")).await?;
    let (mut sink, mut stream) = w.split();
    within(Duration::from_secs(10), "warm-up message", async {
        sink.send(Message::text("warm-up"))
            .await
            .map_err(err("send"))?;
        stream.next().await.ok_or("closed")?.map_err(err("read"))?;
        Ok(())
    })
    .await?;
    let text = String::from_utf8(line(len)[..len - 1].to_vec()).unwrap();
    let payload = Utf8Bytes::from(text);
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..n {
            sink.feed(Message::Text(payload.clone())).await?;
        }
        sink.flush().await?;
        Ok::<_, tokio_tungstenite::tungstenite::Error>(sink)
    });
    let bytes = within(limit_for(n * len as u64 * 2), "echoed messages", async {
        let (mut got, mut bytes) = (0u64, 0u64);
        while got < n {
            let m = stream.next().await.ok_or("closed")?.map_err(err("read"))?;
            if m.is_text() {
                got += 1;
                bytes += m.len() as u64;
            }
        }
        Ok(bytes)
    })
    .await;
    let dt = t0.elapsed();
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            writer.abort();
            return Err(e);
        }
    };
    let _sink = within(Duration::from_secs(10), "writer", async {
        writer.await.map_err(err("writer"))?.map_err(err("send"))
    })
    .await?;
    if bytes != n * (len as u64 - 1) {
        return Err(format!(
            "echoed {bytes} bytes, expected {}",
            n * (len as u64 - 1)
        ));
    }
    Ok(vec![(Row::Lines, n as f64 / dt.as_secs_f64())])
}

// ---------------------------------------------------------------------------------------------
// bulk

pub(crate) async fn write_n(
    w: &mut (impl AsyncWriteExt + Unpin),
    total: u64,
    size: usize,
) -> R<()> {
    let buf = vec![b'x'; size];
    let mut left = total;
    while left > 0 {
        let k = left.min(size as u64) as usize;
        w.write_all(&buf[..k]).await.map_err(err("write"))?;
        left -= k as u64;
    }
    Ok(())
}

async fn send_n(w: &mut Ws, total: u64, size: usize) -> R<()> {
    let payload = Bytes::from(vec![b'x'; size]);
    let mut left = total;
    while left > 0 {
        let k = left.min(size as u64) as usize;
        w.feed(Message::Binary(payload.slice(..k)))
            .await
            .map_err(err("send"))?;
        left -= k as u64;
    }
    w.flush().await.map_err(err("flush"))
}

pub async fn bulk_up_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    ctx.servers.clear_done().await;
    let url = ctx.servers.url(&format!("/sink/{n}"));
    let r = start(spec, Role::TcpToWs { binary: true, url }).await?;
    let res = async {
        let mut s = tcp(r.port).await?;
        let cpu0 = r.cpu_secs();
        let t0 = Instant::now();
        within(limit_for(n), "bulk transfer", async {
            write_n(&mut s, n, ctx.sizes.write_size).await?;
            ctx.servers.wait_done().await.ok_or("no report")?;
            Ok(())
        })
        .await?;
        let dt = t0.elapsed();
        let cpu = cpu_delta(&r, cpu0);
        Ok(vec![
            (Row::BulkUp, rate_mb(n, dt)),
            (Row::BulkUpCpu, cpu / (n as f64 / 1e9)),
        ])
    }
    .await;
    finish(r, res).await
}

pub async fn bulk_up_baseline(ctx: &Ctx, row: Row) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    ctx.servers.clear_done().await;
    let mut w = ws(&ctx.servers.url(&format!("/sink/{n}"))).await?;
    let t0 = Instant::now();
    within(limit_for(n), "bulk transfer", async {
        send_n(&mut w, n, ctx.sizes.write_size).await?;
        ctx.servers.wait_done().await.ok_or("no report")?;
        Ok(())
    })
    .await?;
    let dt = t0.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(2), w.close(None)).await;
    Ok(vec![(row, rate_mb(n, dt))])
}

pub async fn raw_tcp_baseline(ctx: &Ctx) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    ctx.servers.clear_done().await;
    ctx.servers
        .shared
        .tcp_target
        .store(n, std::sync::atomic::Ordering::SeqCst);
    let res = async {
        let mut s = tcp(ctx.servers.tcp_sink_port).await?;
        let t0 = Instant::now();
        within(limit_for(n), "raw TCP transfer", async {
            write_n(&mut s, n, ctx.sizes.write_size).await?;
            ctx.servers.wait_done().await.ok_or("no report")?;
            Ok(())
        })
        .await?;
        Ok(vec![(Row::RawTcp, rate_mb(n, t0.elapsed()))])
    }
    .await;
    ctx.servers
        .shared
        .tcp_target
        .store(0, std::sync::atomic::Ordering::SeqCst);
    res
}

pub async fn bulk_down_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    let url = ctx
        .servers
        .url(&format!("/source/{n}/{}", ctx.sizes.write_size));
    let r = start(spec, Role::TcpToWs { binary: true, url }).await?;
    let res = async {
        let cpu0 = r.cpu_secs();
        let t0 = Instant::now();
        let mut s = tcp(r.port).await?;
        within(limit_for(n), "reverse bulk transfer", read_bytes(&mut s, n)).await?;
        let dt = t0.elapsed();
        let cpu = cpu_delta(&r, cpu0);
        Ok(vec![
            (Row::BulkDown, rate_mb(n, dt)),
            (Row::BulkDownCpu, cpu / (n as f64 / 1e9)),
        ])
    }
    .await;
    finish(r, res).await
}

/// Read binary messages from `w` until `n` payload bytes arrived.
async fn read_ws_bytes<S>(w: &mut S, n: u64) -> R<()>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut got = 0u64;
    while got < n {
        let m = w.next().await.ok_or("closed early")?.map_err(err("read"))?;
        if m.is_binary() {
            got += m.len() as u64;
        }
    }
    Ok(())
}

pub async fn bulk_down_baseline(ctx: &Ctx, row: Row) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    let url = ctx
        .servers
        .url(&format!("/source/{n}/{}", ctx.sizes.write_size));
    let t0 = Instant::now();
    let mut w = ws(&url).await?;
    within(
        limit_for(n),
        "reverse bulk transfer",
        read_ws_bytes(&mut w, n),
    )
    .await?;
    let dt = t0.elapsed();
    Ok(vec![(row, rate_mb(n, dt))])
}

/// `-b ws-listen → tcp:` the bench's TCP source; the bench's WebSocket client reads it all.
pub async fn server_bulk_down_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    let shared = &ctx.servers.shared;
    shared
        .tcp_source_bytes
        .store(n, std::sync::atomic::Ordering::SeqCst);
    let r = start(
        spec,
        Role::WsToTcp {
            port: ctx.servers.tcp_source_port,
        },
    )
    .await?;
    let res = async {
        let cpu0 = r.cpu_secs();
        let t0 = Instant::now();
        let mut w = ws(&format!("ws://127.0.0.1:{}/", r.port)).await?;
        within(
            limit_for(n),
            "server reverse bulk transfer",
            read_ws_bytes(&mut w, n),
        )
        .await?;
        let dt = t0.elapsed();
        let cpu = cpu_delta(&r, cpu0);
        let _ = tokio::time::timeout(Duration::from_secs(2), w.close(None)).await;
        Ok(vec![
            (Row::ServerBulkDown, rate_mb(n, dt)),
            (Row::ServerBulkDownCpu, cpu / (n as f64 / 1e9)),
        ])
    }
    .await;
    finish(r, res).await
}

pub async fn server_bulk_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let n = ctx.sizes.bulk_bytes;
    ctx.servers.clear_done().await;
    let shared = &ctx.servers.shared;
    shared
        .tcp_target
        .store(n, std::sync::atomic::Ordering::SeqCst);
    let res = async {
        let r = start(
            spec,
            Role::WsToTcp {
                port: ctx.servers.tcp_sink_port,
            },
        )
        .await?;
        let res = async {
            let mut w = ws(&format!("ws://127.0.0.1:{}/", r.port)).await?;
            let cpu0 = r.cpu_secs();
            let t0 = Instant::now();
            within(limit_for(n), "server bulk transfer", async {
                send_n(&mut w, n, ctx.sizes.write_size).await?;
                ctx.servers.wait_done().await.ok_or("no report")?;
                Ok(())
            })
            .await?;
            let dt = t0.elapsed();
            let cpu = cpu_delta(&r, cpu0);
            Ok(vec![
                (Row::ServerBulk, rate_mb(n, dt)),
                (Row::ServerBulkCpu, cpu / (n as f64 / 1e9)),
            ])
        }
        .await;
        finish(r, res).await
    }
    .await;
    shared
        .tcp_target
        .store(0, std::sync::atomic::Ordering::SeqCst);
    res
}

// ---------------------------------------------------------------------------------------------
// latency

const WARM_UP_ROUND_TRIPS: usize = 200;

fn latency_metrics(mut ns: Vec<f64>) -> Metrics {
    ns.sort_by(|a, b| a.partial_cmp(b).unwrap());
    vec![
        (Row::LatP50, percentile(&ns, 0.50) / 1e3),
        (Row::LatP99, percentile(&ns, 0.99) / 1e3),
    ]
}

pub async fn latency_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let url = ctx.servers.url("/echo");
    let r = start(spec, Role::TcpToWs { binary: false, url }).await?;
    let res = async {
        let mut s = tcp(r.port).await?;
        let cpu_before = r.cpu_secs();
        let one = line(ctx.sizes.latency_line);
        let samples = ctx.sizes.latency_samples;
        let mut buf = vec![0u8; 4096];
        let limit = Duration::from_secs(30 + samples as u64 / 1000);
        within(limit, "latency round trips", async {
            let mut ns = Vec::with_capacity(samples);
            for i in 0..WARM_UP_ROUND_TRIPS + samples {
                let t0 = Instant::now();
                s.write_all(&one).await.map_err(err("write"))?;
                let got = read_lines(&mut s, 1, &mut buf).await?;
                let dt = t0.elapsed();
                if got != one.len() as u64 {
                    return Err(format!(
                        "round trip returned {got} bytes, not {}",
                        one.len()
                    ));
                }
                if i >= WARM_UP_ROUND_TRIPS {
                    ns.push(dt.as_nanos() as f64);
                }
            }
            let trips = (WARM_UP_ROUND_TRIPS + samples) as f64;
            let cpu_us = cpu_delta(&r, cpu_before) * 1e6 / trips;
            let mut m = latency_metrics(ns);
            m.push((Row::LatCpu, cpu_us));
            Ok(m)
        })
        .await
    }
    .await;
    finish(r, res).await
}

pub async fn latency_baseline(ctx: &Ctx) -> R<Metrics> {
    let mut w = ws(&ctx.servers.url("/echo")).await?;
    let text =
        String::from_utf8(line(ctx.sizes.latency_line)[..ctx.sizes.latency_line - 1].to_vec())
            .unwrap();
    let payload = Utf8Bytes::from(text);
    let samples = ctx.sizes.latency_samples;
    let limit = Duration::from_secs(30 + samples as u64 / 1000);
    within(limit, "latency round trips", async {
        let mut ns = Vec::with_capacity(samples);
        for i in 0..WARM_UP_ROUND_TRIPS + samples {
            let t0 = Instant::now();
            w.send(Message::Text(payload.clone()))
                .await
                .map_err(err("send"))?;
            w.next().await.ok_or("closed")?.map_err(err("read"))?;
            let dt = t0.elapsed();
            if i >= WARM_UP_ROUND_TRIPS {
                ns.push(dt.as_nanos() as f64);
            }
        }
        Ok(latency_metrics(ns))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// idle connections

/// Wait until the echo server holds `want` WebSocket connections (bounded).
async fn wait_ws_active(ctx: &Ctx, want: usize, limit: Duration) -> R<()> {
    let deadline = Instant::now() + limit;
    loop {
        let now = ctx
            .servers
            .shared
            .ws_active
            .load(std::sync::atomic::Ordering::SeqCst);
        if now == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the echo server holds {now} WebSocket connections, expected {want}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn echo_one_line(s: &mut TcpStream) -> R<()> {
    let mut buf = [0u8; 64];
    s.write_all(b"hi\n").await.map_err(err("write"))?;
    read_lines(s, 1, &mut buf).await.map(|_| ())
}

pub async fn idle_relay(ctx: &Ctx, spec: &RelaySpec, first: bool) -> R<Metrics> {
    let url = ctx.servers.url("/echo");
    let r = start(spec, Role::TcpToWs { binary: false, url }).await?;
    let res = async {
        let mut out = Vec::new();
        let base = ctx
            .servers
            .shared
            .ws_active
            .load(std::sync::atomic::Ordering::SeqCst);
        // Warm up: one session, so that runtime threads and lazy state exist before "at rest".
        {
            let mut s = tcp(r.port).await?;
            within(
                Duration::from_secs(10),
                "warm-up line",
                echo_one_line(&mut s),
            )
            .await?;
        }
        wait_ws_active(ctx, base, Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rest = r.rss_kib().ok_or("cannot read the relay's RSS")?;
        if first {
            out.push((Row::IdleRest, rest as f64 / 1024.0));
        }
        for &n in &ctx.sizes.idle {
            let before = r.rss_kib().ok_or("cannot read the relay's RSS")?;
            let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
            // In batches, so that the listen backlog never overflows.
            while conns.len() < n {
                let k = (n - conns.len()).min(100);
                let batch = futures_util::future::try_join_all((0..k).map(|_| tcp(r.port))).await?;
                conns.extend(batch);
                wait_ws_active(ctx, base + conns.len(), Duration::from_secs(30)).await?;
            }
            // One line each way on every connection: bridged and used, then idle.
            for chunk in conns.chunks_mut(200) {
                within(
                    Duration::from_secs(30),
                    "echo on idle connections",
                    futures_util::future::try_join_all(chunk.iter_mut().map(echo_one_line)),
                )
                .await?;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = r.rss_kib().ok_or("cannot read the relay's RSS")?;
            out.push((Row::Idle(n), (after as f64 - before as f64) / n as f64));
            drop(conns);
            wait_ws_active(ctx, base, Duration::from_secs(60)).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(out)
    }
    .await;
    finish(r, res).await
}

// ---------------------------------------------------------------------------------------------
// startup

async fn startup_once(spec: &RelaySpec, url: &str) -> R<(f64, f64)> {
    use tokio::io::AsyncBufReadExt;
    let args = spec.args(
        &Role::Stdio {
            url: url.to_string(),
        },
        None,
    );
    let mut cmd = tokio::process::Command::from(spec.command(&args));
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(err("spawn"))?;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let res = within(Duration::from_secs(10), "startup", async {
        stdin
            .write_all(b"hello\n")
            .await
            .map_err(err("write to stdin"))?;
        let mut got = String::new();
        stdout
            .read_line(&mut got)
            .await
            .map_err(err("read stdout"))?;
        let first = t0.elapsed();
        if got != "hello\n" {
            return Err(format!("echoed {got:?}, not \"hello\\n\""));
        }
        drop(stdin);
        let status = child.wait().await.map_err(err("wait"))?;
        let exit = t0.elapsed();
        if !status.success() {
            let mut e = String::new();
            let _ = stderr.read_to_string(&mut e).await;
            return Err(format!("exit status {status}: {}", e.trim()));
        }
        Ok((first.as_secs_f64() * 1e3, exit.as_secs_f64() * 1e3))
    })
    .await;
    if res.is_err() {
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    }
    res
}

pub async fn startup_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let url = ctx.servers.url("/echo");
    startup_once(spec, &url).await?; // warm-up (page cache), not counted
    let (mut first, mut exit) = (Vec::new(), Vec::new());
    for _ in 0..ctx.sizes.startup_runs {
        let (f, e) = startup_once(spec, &url).await?;
        first.push(f);
        exit.push(e);
    }
    Ok(vec![
        (Row::StartupFirst, median(&first)),
        (Row::StartupExit, median(&exit)),
    ])
}

/// In-process: connect, one message echoed, close handshake.
pub async fn startup_baseline(ctx: &Ctx) -> R<Metrics> {
    let url = ctx.servers.url("/echo");
    let (mut first, mut exit) = (Vec::new(), Vec::new());
    for _ in 0..ctx.sizes.startup_runs + 1 {
        let t0 = Instant::now();
        within(Duration::from_secs(10), "startup", async {
            let mut w = ws(&url).await?;
            w.send(Message::text("hello")).await.map_err(err("send"))?;
            w.next().await.ok_or("closed")?.map_err(err("read"))?;
            first.push(t0.elapsed().as_secs_f64() * 1e3);
            w.close(None).await.map_err(err("close"))?;
            while let Some(Ok(_)) = w.next().await {}
            exit.push(t0.elapsed().as_secs_f64() * 1e3);
            Ok(())
        })
        .await?;
    }
    // The first run warms up, as for the relays.
    Ok(vec![
        (Row::StartupFirst, median(&first[1..])),
        (Row::StartupExit, median(&exit[1..])),
    ])
}

// ---------------------------------------------------------------------------------------------
// stalled reader

pub async fn stall_relay(ctx: &Ctx, spec: &RelaySpec) -> R<Metrics> {
    let url = ctx
        .servers
        .url(&format!("/source/{}/{}", 1u64 << 40, ctx.sizes.write_size));
    let r = start(spec, Role::TcpToWs { binary: true, url }).await?;
    let res = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = r.rss_kib().ok_or("cannot read the relay's RSS")?;
        let sent = &ctx.servers.shared.source_sent;
        let sent0 = sent.load(std::sync::atomic::Ordering::SeqCst);
        let s = tcp(r.port).await?;
        tokio::time::sleep(ctx.sizes.stall).await;
        let after = r.rss_kib().ok_or("cannot read the relay's RSS")?;
        let moved = sent.load(std::sync::atomic::Ordering::SeqCst) - sent0;
        drop(s);
        Ok(vec![
            (Row::StallGrowth, (after as f64 - before as f64) / 1024.0),
            (Row::StallSent, moved as f64 / (1 << 20) as f64),
        ])
    }
    .await;
    finish(r, res).await
}
