//! The soak load (issue 17), shared by `wsbench --soak` and the test suite's short run
//! (tests/all/soak.rs includes this file): WebSocket clients send checksummed messages through
//! a relay to a restartable TCP echo backend while faults are injected, and every echo is
//! checked. Only tokio, tokio-tungstenite, futures-util and bytes: both crates have them.
//!
//! Each message is a record: `#`, seq (8 hex), length (8 hex), FNV-1a of the payload (16 hex),
//! `:`, then the payload (text: letters; binary: random bytes). So the echoed byte stream, which
//! the relay cuts into messages as it likes (`-b`), can be put back together and checked.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// What a soak run does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub clients: usize,
    pub duration: Duration,
    /// Message sizes are log-uniform in 1..=max_size.
    pub max_size: usize,
    /// Messages each client keeps in flight.
    pub window: usize,
    /// Pause after an echo before the next message, uniform in this range (ms).
    pub think_ms: (u64, u64),
    /// Shares of the clients killed abruptly and stalled (never read again).
    pub kill_share: f64,
    pub stall_share: f64,
    /// Restart the backend once, at half time, down for this long.
    pub backend_down: Option<Duration>,
    /// Connections that send garbage, and slowloris handshakes.
    pub garbage: usize,
    pub slowloris: usize,
    pub seed: u64,
    /// Times the load is run against the same relay (`wsbench --soak-rounds`).
    pub rounds: usize,
}

impl Plan {
    /// The documented run: 2,000 clients for 2 minutes.
    pub fn full() -> Plan {
        Plan {
            clients: 2000,
            duration: Duration::from_secs(120),
            max_size: 256 * 1024,
            window: 2,
            think_ms: (200, 1000),
            kill_share: 0.10,
            stall_share: 0.05,
            backend_down: Some(Duration::from_secs(1)),
            garbage: 200,
            slowloris: 50,
            seed: 17,
            rounds: 1,
        }
    }

    /// The test suite's run: 200 clients for 30 s, the same faults.
    pub fn short() -> Plan {
        Plan {
            clients: 200,
            duration: Duration::from_secs(30),
            garbage: 40,
            slowloris: 10,
            ..Plan::full()
        }
    }
}

/// xorshift64*: deterministic and dependency-free.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const HEADER: usize = 34;

/// One message: its record and whether it goes as text.
fn record(rng: &mut Rng, seq: u32, max_size: usize) -> Message {
    let len = (((max_size as f64).ln() * rng.unit()).exp() as usize).clamp(1, max_size);
    let text = rng.below(2) == 0;
    let mut payload = vec![0u8; len];
    rng.fill(&mut payload);
    if text {
        for b in &mut payload {
            *b = b'a' + *b % 26;
        }
    }
    let mut r = format!("#{seq:08x}{len:08x}{:016x}:", fnv1a(&payload)).into_bytes();
    r.extend_from_slice(&payload);
    if text {
        Message::text(String::from_utf8(r).expect("ASCII"))
    } else {
        Message::binary(r)
    }
}

/// What the echoed stream held next.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Intact(u32),
    Corrupt,
}

/// Puts records back together from echoed chunks.
#[derive(Default)]
struct Assembler {
    buf: Vec<u8>,
}

impl Assembler {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<Got>) {
        self.buf.extend_from_slice(chunk);
        let mut at = 0;
        while self.buf.len() - at >= HEADER {
            let h = &self.buf[at..at + HEADER];
            let parsed = (h[0] == b'#' && h[HEADER - 1] == b':')
                .then(|| std::str::from_utf8(&h[1..HEADER - 1]).ok())
                .flatten()
                .and_then(|s| {
                    let seq = u32::from_str_radix(&s[0..8], 16).ok()?;
                    let len = usize::from_str_radix(&s[8..16], 16).ok()?;
                    let sum = u64::from_str_radix(&s[16..32], 16).ok()?;
                    Some((seq, len, sum))
                });
            let Some((seq, len, sum)) = parsed else {
                // Lost framing: nothing after this can be trusted.
                out.push(Got::Corrupt);
                self.buf.clear();
                return;
            };
            if self.buf.len() - at - HEADER < len {
                break;
            }
            let payload = &self.buf[at + HEADER..at + HEADER + len];
            out.push(if fnv1a(payload) == sum {
                Got::Intact(seq)
            } else {
                Got::Corrupt
            });
            at += HEADER + len;
        }
        self.buf.drain(..at);
    }
}

/// Counters of a run, shared by every client.
#[derive(Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub echoed: AtomicU64,
    pub echoed_bytes: AtomicU64,
    pub corrupt: AtomicU64,
    pub reordered: AtomicU64,
    /// Messages a surviving session sent that never came back.
    pub lost: AtomicU64,
    pub sessions: AtomicU64,
    /// Sessions that lasted to the end and closed cleanly.
    pub survived: AtomicU64,
    /// Sessions the relay ended (backend restart, …); their client connected again.
    pub cut: AtomicU64,
    /// Messages in flight in cut sessions (not counted as lost: the restart took them).
    pub cut_in_flight: AtomicU64,
    pub killed: AtomicU64,
    pub stalled: AtomicU64,
    pub connect_failures: AtomicU64,
    pub garbage_closed: AtomicU64,
    pub garbage_open: AtomicU64,
    pub slowloris_dropped: AtomicU64,
    pub slowloris_open: AtomicU64,
    /// How cut sessions ended: close code (0: no Close frame).
    pub cut_codes: Mutex<BTreeMap<u16, u64>>,
    /// Round trips of healthy clients, µs.
    pub latencies: Mutex<Vec<u32>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

/// A TCP echo server on 127.0.0.1 that can be restarted on the same port (its connections are
/// dropped: the relay sees them reset or closed).
pub struct Backend {
    pub port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    pub accepted: Arc<AtomicU64>,
}

impl Backend {
    pub async fn start() -> std::io::Result<Backend> {
        let backend = Backend {
            port: 0,
            tasks: Default::default(),
            accepted: Default::default(),
        };
        let listener = bind(0)?;
        let port = listener.local_addr()?.port();
        let backend = Backend { port, ..backend };
        backend.serve(listener);
        Ok(backend)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (tasks, accepted) = (self.tasks.clone(), self.accepted.clone());
        let inner = tasks.clone();
        let h = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                accepted.fetch_add(1, Relaxed);
                let conn = tokio::spawn(async move {
                    let (mut r, mut w) = tcp.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
                let mut t = inner.lock().unwrap();
                t.retain(|h| !h.is_finished());
                t.push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(h.abort_handle());
    }

    /// Drop the listener and every connection, stay down for `down`, listen again.
    pub async fn restart(&self, down: Duration) -> std::io::Result<()> {
        for h in self.tasks.lock().unwrap().drain(..) {
            h.abort();
        }
        tokio::time::sleep(down).await;
        let listener = bind(self.port)?;
        self.serve(listener);
        Ok(())
    }
}

fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(([127, 0, 0, 1], port).into())?;
    s.listen(4096)
}

/// What a client does besides sending and checking.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Healthy,
    /// Drop the connection (no Close) at this time.
    Killed(Instant),
    /// Stop reading at this time, hold the connection to the end.
    Stalled(Instant),
}

/// Run the load against the relay at `url` (`ws://127.0.0.1:PORT/`), whose backend is
/// `backend`; returns when every client has finished.
pub async fn run(plan: &Plan, url: &str, backend: &Backend) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + plan.duration;
    let mut rng = Rng::new(plan.seed);
    let mut tasks = Vec::new();
    let span = plan.duration.as_secs_f64();
    let at = |rng: &mut Rng, from: f64, to: f64| {
        start + Duration::from_secs_f64(span * (from + (to - from) * rng.unit()))
    };
    for i in 0..plan.clients {
        let fate = match rng.unit() {
            x if x < plan.kill_share => Fate::Killed(at(&mut rng, 0.1, 0.9)),
            x if x < plan.kill_share + plan.stall_share => Fate::Stalled(at(&mut rng, 0.1, 0.5)),
            _ => Fate::Healthy,
        };
        // Clients arrive over the first 5 % of the run.
        let arrive = at(&mut rng, 0.0, 0.05);
        let (plan, url, counts) = (plan.clone(), url.to_string(), counts.clone());
        let crng = Rng::new(plan.seed ^ (i as u64 + 1) << 20);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(arrive).await;
            client(&plan, &url, &counts, crng, fate, end).await;
        }));
    }
    tasks.push(tokio::spawn(attackers(
        plan.clone(),
        url.to_string(),
        counts.clone(),
        start,
    )));
    if let Some(down) = plan.backend_down {
        tokio::time::sleep_until(start + plan.duration / 2).await;
        let _ = backend.restart(down).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    counts
}

/// One client: sessions until the end of the run (a cut session is followed by a new one).
async fn client(plan: &Plan, url: &str, counts: &Counts, mut rng: Rng, fate: Fate, end: Instant) {
    let mut failures = 0u32;
    while Instant::now() < end {
        let Some(ws) = connect(url).await else {
            add(&counts.connect_failures, 1);
            failures = (failures + 1).min(6);
            let wait = 50 * (1u64 << failures) + rng.below(100);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            continue;
        };
        failures = 0;
        add(&counts.sessions, 1);
        match session(plan, ws, counts, &mut rng, fate, end).await {
            Ended::Survived | Ended::Faulted => return,
            Ended::Cut => tokio::time::sleep(Duration::from_millis(rng.below(200))).await,
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(url: &str) -> Option<Ws> {
    let host = url
        .trim_start_matches("ws://")
        .split('/')
        .next()?
        .to_string();
    let attempt = async {
        let tcp = TcpStream::connect(host).await.ok()?;
        let _ = tcp.set_nodelay(true);
        tokio_tungstenite::client_async(url, tcp)
            .await
            .ok()
            .map(|(ws, _)| ws)
    };
    tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .ok()
        .flatten()
}

enum Ended {
    Survived,
    Cut,
    /// Killed or stalled, as planned.
    Faulted,
}

/// One session: send records (a window of them), check each echo; at the end of the run,
/// wait for the last echoes and close.
async fn session(
    plan: &Plan,
    ws: Ws,
    counts: &Counts,
    rng: &mut Rng,
    fate: Fate,
    end: Instant,
) -> Ended {
    let (mut sink, mut stream) = ws.split();
    // Sending in its own task: a large message being written never stops the reading.
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        sink
    });
    let mut st = State {
        seq: 0,
        in_flight: VecDeque::new(),
        asm: Assembler::default(),
        next_send: Instant::now(),
        got: Vec::new(),
    };
    let fault_at = match fate {
        Fate::Killed(t) | Fate::Stalled(t) => t,
        Fate::Healthy => end + Duration::from_secs(3600),
    };
    let healthy = matches!(fate, Fate::Healthy);
    loop {
        let now = Instant::now();
        if now >= fault_at {
            return fault(fate, stream, writer, tx, counts, end).await;
        }
        if now >= end {
            return finish(st, stream, writer, tx, counts).await;
        }
        while st.in_flight.len() < plan.window && now >= st.next_send {
            let m = record(rng, st.seq, plan.max_size);
            st.in_flight.push_back((st.seq, Instant::now()));
            st.seq += 1;
            add(&counts.sent, 1);
            let _ = tx.send(m);
            if st.in_flight.len() < plan.window {
                st.next_send = now + think(plan, rng);
            }
        }
        let wake = st.next_send.max(now).min(end).min(fault_at);
        let wake = if st.in_flight.len() >= plan.window {
            end.min(fault_at)
        } else {
            wake
        };
        tokio::select! {
            m = stream.next() => {
                if !st.take(m, counts, healthy) {
                    add(&counts.cut, 1);
                    add(&counts.cut_in_flight, st.in_flight.len() as u64);
                    writer.abort();
                    return Ended::Cut;
                }
                if st.in_flight.len() < plan.window && st.next_send <= Instant::now() {
                    st.next_send = Instant::now() + think(plan, rng);
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

fn think(plan: &Plan, rng: &mut Rng) -> Duration {
    let (lo, hi) = plan.think_ms;
    Duration::from_millis(lo + rng.below(hi.saturating_sub(lo) + 1))
}

struct State {
    seq: u32,
    in_flight: VecDeque<(u32, Instant)>,
    asm: Assembler,
    next_send: Instant,
    got: Vec<Got>,
}

type Stream = futures_util::stream::SplitStream<Ws>;
type Writer = tokio::task::JoinHandle<futures_util::stream::SplitSink<Ws, Message>>;

impl State {
    /// One item from the stream: check what it completes. `false`: the session was ended by
    /// the other side (its Close code noted).
    fn take(
        &mut self,
        m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        counts: &Counts,
        healthy: bool,
    ) -> bool {
        let data = match m {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Text(t))) => bytes::Bytes::from(t),
            Some(Ok(Message::Close(f))) => {
                let code = f.map_or(1005, |f| u16::from(f.code));
                *counts.cut_codes.lock().unwrap().entry(code).or_default() += 1;
                return false;
            }
            Some(Ok(_)) => return true,
            Some(Err(_)) | None => {
                *counts.cut_codes.lock().unwrap().entry(0).or_default() += 1;
                return false;
            }
        };
        self.asm.push(&data, &mut self.got);
        for g in self.got.drain(..) {
            match (g, self.in_flight.front()) {
                (Got::Intact(seq), Some(&(want, sent))) if seq == want => {
                    self.in_flight.pop_front();
                    add(&counts.echoed, 1);
                    if healthy {
                        let us = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        counts.latencies.lock().unwrap().push(us);
                    }
                }
                (Got::Intact(_), _) => add(&counts.reordered, 1),
                (Got::Corrupt, _) => add(&counts.corrupt, 1),
            }
        }
        add(&counts.echoed_bytes, data.len() as u64);
        true
    }
}

/// The end of the run: wait (bounded) for the echoes still in flight, then close cleanly.
async fn finish(
    mut st: State,
    mut stream: Stream,
    writer: Writer,
    tx: mpsc::UnboundedSender<Message>,
    counts: &Counts,
) -> Ended {
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while !st.in_flight.is_empty() {
            if !st.take(stream.next().await, counts, false) {
                return false;
            }
        }
        true
    })
    .await;
    if drained != Ok(true) {
        add(&counts.lost, st.in_flight.len() as u64);
        writer.abort();
        return Ended::Cut;
    }
    drop(tx);
    let Ok(mut sink) = writer.await else {
        return Ended::Cut;
    };
    let _ = sink.send(Message::Close(None)).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                return true;
            }
        }
        false
    })
    .await;
    if closed == Ok(true) {
        add(&counts.survived, 1);
        Ended::Survived
    } else {
        add(&counts.lost, 0);
        Ended::Cut
    }
}

/// A planned fault: drop the connection at once (killed), or stop reading and hold it until the
/// end of the run (stalled).
async fn fault(
    fate: Fate,
    stream: Stream,
    writer: Writer,
    tx: mpsc::UnboundedSender<Message>,
    counts: &Counts,
    end: Instant,
) -> Ended {
    match fate {
        Fate::Killed(_) => {
            add(&counts.killed, 1);
            writer.abort();
            drop((stream, tx));
        }
        _ => {
            add(&counts.stalled, 1);
            tokio::time::sleep_until(end).await;
            writer.abort();
            drop((stream, tx));
        }
    }
    Ended::Faulted
}

/// Garbage and slowloris connections, spread over the run.
async fn attackers(plan: Plan, url: String, counts: Arc<Counts>, start: Instant) {
    let host = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let mut rng = Rng::new(plan.seed ^ 0xa77a);
    let mut tasks = Vec::new();
    for i in 0..plan.slowloris {
        let (host, counts) = (host.clone(), counts.clone());
        let at = start + plan.duration / 5 + Duration::from_millis(10 * i as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            slowloris(&host, &counts).await;
        }));
    }
    for _ in 0..plan.garbage {
        let at = start + plan.duration.mul_f64(0.1 + 0.8 * rng.unit());
        let (host, counts, mut grng) = (host.clone(), counts.clone(), Rng::new(rng.next_u64()));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            garbage(&host, &counts, &mut grng).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Random bytes instead of a handshake: the relay must close the connection.
async fn garbage(host: &str, counts: &Counts, rng: &mut Rng) {
    let Ok(mut tcp) = TcpStream::connect(host).await else {
        return;
    };
    let mut junk = vec![0u8; 16 + rng.below(4096) as usize];
    rng.fill(&mut junk);
    let _ = tcp.write_all(&junk).await;
    if closed_within(&mut tcp, Duration::from_secs(30)).await {
        add(&counts.garbage_closed, 1);
    } else {
        add(&counts.garbage_open, 1);
    }
}

/// A handshake one byte per second: the relay must drop it (wsbridge: `--handshake-timeout`).
async fn slowloris(host: &str, counts: &Counts) {
    let Ok(mut tcp) = TcpStream::connect(host).await else {
        return;
    };
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Slow: ".repeat(4);
    for &b in &head {
        if tcp.write_all(&[b]).await.is_err() {
            add(&counts.slowloris_dropped, 1);
            return;
        }
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            add(&counts.slowloris_dropped, 1);
            return;
        }
    }
    add(&counts.slowloris_open, 1);
}

async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// `q`-quantile of `v` (sorted here).
pub fn quantile(v: &mut [u32], q: f64) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    Some(v[i])
}

/// The pass criteria that depend only on the load (the process checks are the caller's):
/// the failed ones, as lines.
pub fn failures(plan: &Plan, c: &Counts) -> Vec<String> {
    let mut f = Vec::new();
    let n = |a: &AtomicU64| a.load(Relaxed);
    for (what, v) in [
        ("corrupt", n(&c.corrupt)),
        ("reordered", n(&c.reordered)),
        ("lost", n(&c.lost)),
    ] {
        if v > 0 {
            f.push(format!("{v} messages {what}"));
        }
    }
    let healthy = plan.clients as u64 - n(&c.killed) - n(&c.stalled);
    if n(&c.survived) < healthy {
        f.push(format!(
            "{} of {healthy} healthy clients did not end cleanly",
            healthy - n(&c.survived)
        ));
    }
    if n(&c.garbage_open) > 0 {
        f.push(format!(
            "{} garbage connections left open",
            n(&c.garbage_open)
        ));
    }
    if n(&c.slowloris_open) > 0 {
        f.push(format!(
            "{} slowloris connections never dropped",
            n(&c.slowloris_open)
        ));
    }
    if n(&c.echoed) == 0 {
        f.push("nothing was echoed".into());
    }
    f
}

/// The load's part of the report, as `name: value` lines.
pub fn summary(c: &Counts) -> Vec<(String, String)> {
    let n = |a: &AtomicU64| a.load(Relaxed).to_string();
    let mut lat = c.latencies.lock().unwrap().clone();
    let ms = |v: Option<u32>| v.map_or("–".into(), |us| format!("{:.1} ms", us as f64 / 1000.0));
    let codes: Vec<String> = c
        .cut_codes
        .lock()
        .unwrap()
        .iter()
        .map(|(code, k)| {
            format!(
                "{k}×{}",
                if *code == 0 {
                    "none".into()
                } else {
                    code.to_string()
                }
            )
        })
        .collect();
    vec![
        ("sessions".into(), n(&c.sessions)),
        ("messages sent".into(), n(&c.sent)),
        ("messages echoed intact, in order".into(), n(&c.echoed)),
        ("bytes echoed".into(), n(&c.echoed_bytes)),
        (
            "corrupt / reordered / lost".into(),
            format!("{} / {} / {}", n(&c.corrupt), n(&c.reordered), n(&c.lost)),
        ),
        ("sessions that survived to the end".into(), n(&c.survived)),
        (
            "clients killed / stalled".into(),
            format!("{} / {}", n(&c.killed), n(&c.stalled)),
        ),
        (
            "sessions cut by the relay (Close codes)".into(),
            format!("{} ({})", n(&c.cut), codes.join(", ")),
        ),
        (
            "messages in flight in cut sessions".into(),
            n(&c.cut_in_flight),
        ),
        ("connect failures (retried)".into(), n(&c.connect_failures)),
        (
            "garbage connections closed / left open".into(),
            format!("{} / {}", n(&c.garbage_closed), n(&c.garbage_open)),
        ),
        (
            "slowloris dropped / left open".into(),
            format!("{} / {}", n(&c.slowloris_dropped), n(&c.slowloris_open)),
        ),
        (
            "healthy round trip p50 / p99".into(),
            format!(
                "{} / {}",
                ms(quantile(&mut lat, 0.5)),
                ms(quantile(&mut lat, 0.99))
            ),
        ),
    ]
}
