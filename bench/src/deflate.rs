//! The deflate scenario (issue 14): permessage-deflate between two wsbridge processes, since the
//! bench's own WebSocket server does not negotiate it.
//!
//! ```text
//! bench TCP client ─▶ A: wsbridge --text tcp-listen:… ws://127.0.0.1:F/    (client role)
//!                         ─▶ F: the bench's counting TCP forwarder (wire bytes each way)
//!                         ─▶ B: wsbridge --text ws-listen:… tcp:127.0.0.1:T (server role)
//!                         ─▶ T: the bench's TCP end (sink/source, or echo for idle)
//! ```
//!
//! The stream: JSON lines of 100 B–4 KiB (market data and chat, repeated keys, varying values,
//! from a fixed seed), first A→B (the client writes, T reads), then B→A (T writes, the client
//! reads), on one connection. Idle: many connections, one JSON line echoed on each, then the RSS
//! growth of A and of B per connection.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::relay::{RelayProc, RelaySpec, Role};
use crate::scenarios::{
    Better, Ctx, Metrics, R, Row, cpu_delta, err, limit_for, read_lines, start, tcp, within,
};

/// The relay flags compared (given to both A and B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Variant {
    /// compression negotiated, the defaults (level 6, 15-bit window, context takeover)
    Default,
    /// --no-compress
    NoCompress,
    /// --deflate-level 1
    Level1,
    /// --deflate-level 9
    Level9,
    /// --deflate-no-context-takeover
    NoTakeover,
}

pub const ALL_VARIANTS: [Variant; 5] = [
    Variant::Default,
    Variant::NoCompress,
    Variant::Level1,
    Variant::Level9,
    Variant::NoTakeover,
];

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Variant::Default => "compressed (level 6)",
            Variant::NoCompress => "--no-compress",
            Variant::Level1 => "--deflate-level 1",
            Variant::Level9 => "--deflate-level 9",
            Variant::NoTakeover => "--deflate-no-context-takeover",
        }
    }

    fn flags(self) -> Vec<String> {
        let f: &[&str] = match self {
            Variant::Default => &[],
            Variant::NoCompress => &["--no-compress"],
            Variant::Level1 => &["--deflate-level", "1"],
            Variant::Level9 => &["--deflate-level", "9"],
            Variant::NoTakeover => &["--deflate-no-context-takeover"],
        };
        f.iter().map(|s| s.to_string()).collect()
    }

    /// The idle measurement is taken for these (the level does not change what is kept).
    pub fn has_idle(self) -> bool {
        matches!(
            self,
            Variant::Default | Variant::NoCompress | Variant::NoTakeover
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// TCP client → A → B → T: A compresses (client role, masked frames).
    AToB,
    /// T → B → A → TCP client: B compresses (server role).
    BToA,
}

impl Dir {
    pub fn label(self) -> &'static str {
        match self {
            Dir::AToB => "A→B (client role compresses)",
            Dir::BToA => "B→A (server role compresses)",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    Payload,
    Wire,
    Ratio,
    CpuA,
    CpuB,
    Rate,
}

impl Measure {
    pub fn label(self) -> &'static str {
        match self {
            Measure::Payload => "payload (JSON lines with their \\n)",
            Measure::Wire => "wire bytes between A and B",
            Measure::Ratio => "payload ÷ wire",
            Measure::CpuA => "CPU of A (client role)",
            Measure::CpuB => "CPU of B (server role)",
            Measure::Rate => "throughput",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Measure::Payload | Measure::Wire => "MB",
            Measure::Ratio => "×",
            Measure::CpuA | Measure::CpuB => "CPU ms / payload MB",
            Measure::Rate => "lines/s",
        }
    }

    pub fn better(self) -> Better {
        match self {
            Measure::Payload => Better::Neither,
            Measure::Ratio | Measure::Rate => Better::Higher,
            Measure::Wire | Measure::CpuA | Measure::CpuB => Better::Lower,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::A => "A (client role)",
            Side::B => "B (server role)",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the JSON stream

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const SYMBOLS: [&str; 12] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "XRP-USD", "DOT-USD", "BTC-EUR", "ETH-EUR",
    "LTC-USD", "AVAX-USD", "LINK-USD", "DOGE-USD",
];
const USERS: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];
const ROOMS: [&str; 6] = [
    "general",
    "random",
    "dev",
    "ops",
    "support",
    "announcements",
];
const WORDS: [&str; 48] = [
    "the", "deploy", "is", "done", "can", "you", "check", "logs", "for", "errors", "after",
    "restart", "latency", "looks", "fine", "now", "but", "memory", "went", "up", "again", "on",
    "node", "three", "please", "review", "my", "pull", "request", "when", "have", "time", "thanks",
    "meeting", "moved", "to", "tomorrow", "morning", "lunch", "anyone", "coffee", "build",
    "failed", "flaky", "test", "retry", "merged", "ok",
];

fn ts(rng: &mut Rng, seq: u64) -> String {
    let ms = 1_764_700_000_000u64 + seq * 7 + rng.below(7);
    format!(
        "2026-12-03T{:02}:{:02}:{:02}.{:03}Z",
        (ms / 3_600_000) % 24,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    )
}

fn price(rng: &mut Rng) -> String {
    format!("{}.{:02}", 100 + rng.below(60_000), rng.below(100))
}

fn size(rng: &mut Rng) -> String {
    format!("{}.{:05}", rng.below(20), rng.below(100_000))
}

/// One JSON object (no newline), 100 B to 4 KiB.
fn json_line(rng: &mut Rng, seq: u64) -> String {
    let kind = rng.below(100);
    let s = if kind < 45 {
        format!(
            r#"{{"type":"trade","symbol":"{}","seq":{},"trade_id":{},"price":"{}","size":"{}","side":"{}","time":"{}"}}"#,
            rng.pick(&SYMBOLS),
            1_000_000 + seq,
            rng.below(1 << 40),
            price(rng),
            size(rng),
            if rng.below(2) == 0 { "buy" } else { "sell" },
            ts(rng, seq)
        )
    } else if kind < 65 {
        format!(
            r#"{{"type":"ticker","symbol":"{}","seq":{},"best_bid":"{}","best_bid_size":"{}","best_ask":"{}","best_ask_size":"{}","last":"{}","volume_24h":"{}.{:08}","high_24h":"{}","low_24h":"{}","open_24h":"{}","time":"{}"}}"#,
            rng.pick(&SYMBOLS),
            1_000_000 + seq,
            price(rng),
            size(rng),
            price(rng),
            size(rng),
            price(rng),
            rng.below(1_000_000),
            rng.below(100_000_000),
            price(rng),
            price(rng),
            price(rng),
            ts(rng, seq)
        )
    } else if kind < 90 {
        let most = if rng.below(4) == 0 { 400 } else { 40 };
        let words = 3 + rng.below(most);
        let mut text = String::new();
        for i in 0..words {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(rng.pick(&WORDS));
        }
        let user = rng.below(USERS.len() as u64);
        format!(
            r#"{{"type":"message","room":"{}","id":"msg-{:016x}","user":{{"id":{},"name":"{}","avatar":"https://cdn.example.com/avatars/{}.png"}},"text":"{}","mentions":[],"reply_to":null,"time":"{}"}}"#,
            rng.pick(&ROOMS),
            rng.next(),
            1000 + user,
            USERS[user as usize],
            1000 + user,
            text,
            ts(rng, seq)
        )
    } else {
        let target = 800 + rng.below(3200) as usize;
        let mut s = format!(
            r#"{{"type":"l2update","symbol":"{}","seq":{},"time":"{}","changes":["#,
            rng.pick(&SYMBOLS),
            1_000_000 + seq,
            ts(rng, seq)
        );
        let mut first = true;
        while s.len() < target {
            if !first {
                s.push(',');
            }
            first = false;
            let side = if rng.below(2) == 0 { "buy" } else { "sell" };
            let (p, q) = (price(rng), size(rng));
            s.push_str(&format!(r#"["{side}","{p}","{q}"]"#));
        }
        s.push_str("]}");
        s
    };
    debug_assert!((100..=4096).contains(&s.len()), "{}", s.len());
    s
}

/// `n` JSON lines (each with its `\n`), generated once per process for a given `n`.
pub fn json_stream(n: u64) -> &'static [u8] {
    static STREAM: OnceLock<(u64, Vec<u8>)> = OnceLock::new();
    let (made_for, v) = STREAM.get_or_init(|| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut v = Vec::new();
        for seq in 0..n {
            v.extend_from_slice(json_line(&mut rng, seq).as_bytes());
            v.push(b'\n');
        }
        (n, v)
    });
    assert_eq!(*made_for, n, "one stream size per run");
    v
}

/// Chunks of at most 64 KiB that end at line ends, and the number of lines in each.
fn chunks(stream: &[u8]) -> Vec<(&[u8], u64)> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let mut end = rest.len().min(64 * 1024);
        if end < rest.len() {
            end = rest[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(end, |i| i + 1);
        }
        let (c, r) = rest.split_at(end);
        out.push((c, c.iter().filter(|&&b| b == b'\n').count() as u64));
        rest = r;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// the chain

/// The counting TCP forwarder between A and B.
struct Forwarder {
    port: u16,
    /// Bytes A → B and B → A, all connections.
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown().await;
}

async fn forwarder(to: u16) -> R<Forwarder> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err("forwarder bind"))?;
    let port = l.local_addr().map_err(err("forwarder address"))?.port();
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let (u, d) = (up.clone(), down.clone());
    let accept = tokio::spawn(async move {
        loop {
            let Ok((a, _)) = l.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let (u, d) = (u.clone(), d.clone());
            tokio::spawn(async move {
                let Ok(b) = TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let _ = a.set_nodelay(true);
                let _ = b.set_nodelay(true);
                let (ar, aw) = a.into_split();
                let (br, bw) = b.into_split();
                tokio::spawn(pump(ar, bw, u));
                pump(br, aw, d).await;
            });
        }
    });
    Ok(Forwarder {
        port,
        up,
        down,
        accept,
    })
}

/// A, F and B running; T is `t`, which the caller accepts from.
struct Chain {
    a: RelayProc,
    b: RelayProc,
    f: Forwarder,
}

async fn chain(spec: &RelaySpec, v: Variant, t_port: u16) -> R<Chain> {
    let mut args = vec!["--text".to_string()];
    args.extend(v.flags());
    let mut b_args = args.clone();
    b_args.extend([
        "ws-listen:127.0.0.1:0".into(),
        format!("tcp:127.0.0.1:{t_port}"),
    ]);
    let b = start(spec, Role::Raw(b_args)).await?;
    let f = forwarder(b.port).await?;
    let mut a_args = args;
    a_args.extend([
        "tcp-listen:127.0.0.1:0".into(),
        format!("ws://127.0.0.1:{}/", f.port),
    ]);
    let a = start(spec, Role::Raw(a_args)).await?;
    Ok(Chain { a, b, f })
}

/// Stop both relays; on failure, say whether either died and what it last printed.
async fn finish<T>(c: Chain, res: R<T>) -> R<T> {
    let Chain { mut a, mut b, f } = c;
    let res = res.map_err(|e| {
        let say = |r: &mut RelayProc| match r.check_alive() {
            Err(died) => died,
            Ok(()) => format!("stderr: {}", r.stderr_tail()),
        };
        format!("{e}; A: {}; B: {}", say(&mut a), say(&mut b))
    });
    drop(f);
    let _ = tokio::task::spawn_blocking(move || {
        drop(a);
        drop(b);
    })
    .await;
    res
}

async fn accept_one(l: &TcpListener) -> R<TcpStream> {
    let (s, _) = tokio::time::timeout(Duration::from_secs(10), l.accept())
        .await
        .map_err(|_| "B did not connect to the bench's TCP end within 10 s".to_string())?
        .map_err(err("accept"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Write the chunks (by one task) while `rd` reads `lines` lines back; returns the bytes read
/// and the time from the first write to the last line.
async fn transfer<W, Rd>(
    wr: W,
    rd: &mut Rd,
    stream: &'static [u8],
    lines: u64,
) -> R<(u64, Duration)>
where
    W: AsyncWriteExt + Unpin + Send + 'static,
    Rd: AsyncReadExt + Unpin,
{
    let mut buf = vec![0u8; 256 * 1024];
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        let mut wr = wr;
        for (c, _) in chunks(stream) {
            wr.write_all(c).await?;
        }
        Ok::<_, std::io::Error>(wr)
    });
    let got = within(
        limit_for(stream.len() as u64 * 2),
        "JSON lines",
        read_lines(rd, lines, &mut buf),
    )
    .await;
    let dt = t0.elapsed();
    match got {
        Ok(b) => {
            within(Duration::from_secs(10), "writer", async {
                writer.await.map_err(err("writer"))?.map_err(err("write"))
            })
            .await?;
            Ok((b, dt))
        }
        Err(e) => {
            writer.abort();
            Err(e)
        }
    }
}

/// The JSON stream one way and then the other through A → F → B, with the given flags.
pub async fn stream(ctx: &Ctx, spec: &RelaySpec, v: Variant) -> R<Metrics> {
    let n = ctx.sizes.deflate_lines;
    let data = json_stream(n);
    let t = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err("bind the TCP end"))?;
    let t_port = t.local_addr().map_err(err("local address"))?.port();
    let c = chain(spec, v, t_port).await?;
    let res = async {
        let client = tcp(c.a.port).await?;
        let (mut crd, mut cwr) = client.into_split();
        let mut small = vec![0u8; 8192];
        // Warm-up, one line each way: the connection is bridged end to end before the clock.
        cwr.write_all(b"{\"warm\":\"up\"}\n")
            .await
            .map_err(err("write"))?;
        let end = accept_one(&t).await?;
        let (mut trd, mut twr) = end.into_split();
        within(Duration::from_secs(10), "warm-up A→B", async {
            read_lines(&mut trd, 1, &mut small).await
        })
        .await?;
        twr.write_all(b"{\"warm\":\"down\"}\n")
            .await
            .map_err(err("write"))?;
        within(Duration::from_secs(10), "warm-up B→A", async {
            read_lines(&mut crd, 1, &mut small).await
        })
        .await?;

        let payload = data.len() as u64;
        let mb = payload as f64 / 1e6;
        let mut out = Vec::new();
        for dir in [Dir::AToB, Dir::BToA] {
            let counter = match dir {
                Dir::AToB => &c.f.up,
                Dir::BToA => &c.f.down,
            };
            let (ca, cb) = (c.a.cpu_secs(), c.b.cpu_secs());
            let w0 = counter.load(Ordering::SeqCst);
            let (got, dt) = match dir {
                Dir::AToB => {
                    let (got, dt, w) = moved(cwr, &mut trd, data, n).await?;
                    cwr = w;
                    (got, dt)
                }
                Dir::BToA => {
                    let (got, dt, w) = moved(twr, &mut crd, data, n).await?;
                    twr = w;
                    (got, dt)
                }
            };
            let wire = counter.load(Ordering::SeqCst) - w0;
            let (cpu_a, cpu_b) = (cpu_delta(&c.a, ca), cpu_delta(&c.b, cb));
            if got != payload {
                return Err(format!(
                    "{}: {got} bytes arrived, {payload} sent",
                    dir.label()
                ));
            }
            out.extend([
                (Row::Deflate(v, dir, Measure::Payload), mb),
                (Row::Deflate(v, dir, Measure::Wire), wire as f64 / 1e6),
                (
                    Row::Deflate(v, dir, Measure::Ratio),
                    payload as f64 / wire as f64,
                ),
                (Row::Deflate(v, dir, Measure::CpuA), cpu_a * 1e3 / mb),
                (Row::Deflate(v, dir, Measure::CpuB), cpu_b * 1e3 / mb),
                (
                    Row::Deflate(v, dir, Measure::Rate),
                    n as f64 / dt.as_secs_f64(),
                ),
            ]);
        }
        drop((cwr, twr));
        Ok(out)
    }
    .await;
    finish(c, res).await
}

/// `transfer`, giving the write half back.
async fn moved<W, Rd>(wr: W, rd: &mut Rd, data: &'static [u8], n: u64) -> R<(u64, Duration, W)>
where
    W: AsyncWriteExt + Unpin + Send + 'static,
    Rd: AsyncReadExt + Unpin,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let wrapped = ReturnOnDrop {
        inner: Some(wr),
        tx: Some(tx),
    };
    let (got, dt) = transfer(wrapped, rd, data, n).await?;
    let w = rx.await.map_err(|_| "writer lost".to_string())?;
    Ok((got, dt, w))
}

/// A writer that hands itself back through a channel when dropped (the transfer's writer task
/// owns it; the next direction needs the same connection still open).
struct ReturnOnDrop<W> {
    inner: Option<W>,
    tx: Option<tokio::sync::oneshot::Sender<W>>,
}

impl<W> Drop for ReturnOnDrop<W> {
    fn drop(&mut self) {
        if let (Some(w), Some(tx)) = (self.inner.take(), self.tx.take()) {
            let _ = tx.send(w);
        }
    }
}

impl<W: AsyncWriteExt + Unpin> tokio::io::AsyncWrite for ReturnOnDrop<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(self.inner.as_mut().expect("present")).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner.as_mut().expect("present")).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner.as_mut().expect("present")).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// idle connections

/// The TCP end for idle connections: echoes every connection, counts the open ones.
fn echo_end(l: TcpListener, active: Arc<AtomicUsize>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let active = active.clone();
            active.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 || s.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                }
                drop(buf);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    })
}

async fn wait_active(active: &AtomicUsize, want: usize, limit: Duration) -> R<()> {
    let deadline = Instant::now() + limit;
    loop {
        let now = active.load(Ordering::SeqCst);
        if now == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the TCP end holds {now} connections, expected {want}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One JSON line through the chain and back.
async fn echo_json(s: &mut TcpStream, line: &[u8]) -> R<()> {
    let mut buf = vec![0u8; 8192];
    s.write_all(line).await.map_err(err("write"))?;
    let got = read_lines(s, 1, &mut buf).await?;
    if got != line.len() as u64 {
        return Err(format!("echoed {got} bytes, not {}", line.len()));
    }
    Ok(())
}

/// `conns` connections through A → F → B → echo, `deflate_idle_lines` JSON lines each way on
/// each (one by default; more fill the decompressors' windows), then RSS growth per connection
/// of A and of B.
pub async fn idle(ctx: &Ctx, spec: &RelaySpec, v: Variant) -> R<Metrics> {
    let n = ctx.sizes.deflate_conns;
    let per_conn = ctx.sizes.deflate_idle_lines;
    let lines: Vec<&[u8]> = json_stream(ctx.sizes.deflate_lines)
        .split_inclusive(|&b| b == b'\n')
        .collect();
    let t = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err("bind the TCP end"))?;
    let t_port = t.local_addr().map_err(err("local address"))?.port();
    let active = Arc::new(AtomicUsize::new(0));
    let end = echo_end(t, active.clone());
    let c = chain(spec, v, t_port).await?;
    let res = async {
        // Warm-up: one session, so runtime threads, pools and lazy state exist before "before".
        {
            let mut s = tcp(c.a.port).await?;
            within(
                Duration::from_secs(10),
                "warm-up line",
                echo_json(&mut s, lines[0]),
            )
            .await?;
        }
        wait_active(&active, 0, Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss = |r: &RelayProc| r.rss_kib().ok_or("cannot read a relay's RSS".to_string());
        let (a0, b0) = (rss(&c.a)?, rss(&c.b)?);
        let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
        while conns.len() < n {
            let k = (n - conns.len()).min(100);
            let batch = futures_util::future::try_join_all((0..k).map(|_| tcp(c.a.port))).await?;
            conns.extend(batch);
            wait_active(&active, conns.len(), Duration::from_secs(30)).await?;
        }
        let lines = &lines;
        for (i, chunk) in conns.chunks_mut(100).enumerate() {
            within(
                Duration::from_secs(30 + per_conn as u64 / 10),
                "JSON lines on each connection",
                futures_util::future::try_join_all(chunk.iter_mut().enumerate().map(
                    |(j, s)| async move {
                        let first = 1 + (i * 100 + j) * per_conn;
                        for k in 0..per_conn {
                            echo_json(s, lines[(first + k) % lines.len()]).await?;
                        }
                        Ok::<_, String>(())
                    },
                )),
            )
            .await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (a1, b1) = (rss(&c.a)?, rss(&c.b)?);
        drop(conns);
        let per = |after: u64, before: u64| (after as f64 - before as f64) / n as f64;
        Ok(vec![
            (Row::DeflateIdle(v, Side::A), per(a1, a0)),
            (Row::DeflateIdle(v, Side::B), per(b1, b0)),
        ])
    }
    .await;
    let res = finish(c, res).await;
    end.abort();
    res
}
