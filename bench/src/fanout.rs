//! The fanout scenario: one `broadcast:` room with many WebSocket clients, a few of which send
//! timestamped messages; every other client receives each of them (a delivery). Two set-ups:
//!
//! ```text
//! one:   200 clients ─▶ wsbridge ws-listen: broadcast:                    (the in-process hub)
//! redis: 100 clients ─▶ wsbridge --broadcast-via redis://… ─┐
//!        100 clients ─▶ wsbridge --broadcast-via redis://… ─┴─ redis-server (the bench's own)
//! ```
//!
//! Two loads: a fixed total rate spread over the senders (open loop; latency at a load both
//! set-ups carry), and `max`: every sender keeps a window of messages in flight and sends the
//! next one when an earlier one has reached every receiver (closed loop; the throughput, with
//! every queue far below its limit, so no member is disconnected for being slow).
//!
//! Messages are binary: `[sender: u16][phase: u8][seq: u32][sent: u64 ns since the bench's
//! epoch]`, padded to the message size. Latency is from the sender's `send` to the receiver's
//! read, both in this process. Before the clock, every sender repeats a probe until every other
//! client got one: every member has joined and every instance is subscribed (a message sent
//! before that would not reach everyone: Pub/Sub is at-most-once).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::relay::{RelayProc, RelaySpec, Role};
use crate::scenarios::{Better, Metrics, R, Row, Ws, err, percentile, start, within, ws};
use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setup {
    /// Every client on one wsbridge, no Redis.
    One,
    /// The clients split over two wsbridge instances sharing the room through Redis.
    Redis,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::One => "1 instance (in-process hub)",
            Setup::Redis => "2 instances via Redis",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Load {
    /// A fixed total rate, messages per second (open loop).
    Rate(u32),
    /// As fast as the window allows (closed loop).
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    Deliveries,
    P50,
    P99,
    /// CPU of the wsbridge process(es) per million deliveries.
    RelayCpu,
    /// CPU of redis-server per million deliveries.
    RedisCpu,
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Measure::Deliveries => "deliveries (messages × receivers)",
            Measure::P50 => "latency send → delivery, p50",
            Measure::P99 => "latency send → delivery, p99",
            Measure::RelayCpu => "CPU of wsbridge (all instances)",
            Measure::RedisCpu => "CPU of redis-server",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Measure::Deliveries => "deliveries/s",
            Measure::P50 | Measure::P99 => "µs",
            Measure::RelayCpu | Measure::RedisCpu => "CPU s / 1M deliveries",
        }
    }

    pub fn better(self) -> Better {
        match self {
            Measure::Deliveries => Better::Higher,
            _ => Better::Lower,
        }
    }
}

pub fn label(s: Setup, l: Load, m: Measure) -> String {
    let load = match l {
        Load::Rate(r) => format!("{r} msg/s"),
        Load::Max => "max".to_string(),
    };
    format!("fanout {}, {load}: {}", s.label(), m.label())
}

/// The scenario's sizes (from the command line).
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Clients in the room, over all instances.
    pub clients: usize,
    pub senders: usize,
    /// Total rate of the fixed-rate load.
    pub rate: u32,
    /// Messages in flight per sender in the `max` load.
    pub window: usize,
    /// Sending time of each load.
    pub secs: f64,
    /// Message size in bytes (at least the 15-byte header).
    pub size: usize,
}

// ---------------------------------------------------------------------------------------------
// redis-server

/// redis-server on `$PATH`, if installed.
pub fn redis_server() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/bin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// The bench's own redis-server on a free loopback port, without persistence; stopped (and
/// reaped) when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis_start() -> R<Redis> {
    let bin = redis_server().ok_or("redis-server not found")?;
    let port = sys::free_port().map_err(err("no free port"))?;
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(err("start redis-server"))?;
    let mut redis = Redis { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = redis.child.try_wait() {
            return Err(format!("redis-server exited at startup ({status})"));
        }
        if redis_command(port, "PING").await.as_deref() == Some("+PONG") {
            return Ok(redis);
        }
        if Instant::now() > deadline {
            return Err("redis-server did not answer PING within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One inline command on a fresh connection; its one-line reply.
async fn redis_command(port: u16, command: &str) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(1), async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(format!("{command}\r\n").as_bytes())
            .await
            .ok()?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        while !reply.ends_with(b"\r\n") {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&reply).trim_end().to_string())
    })
    .await
    .ok()
    .flatten()
}

// ---------------------------------------------------------------------------------------------
// messages

const HEADER: usize = 15;
const PROBE: u8 = 0;
const MEASURED: u8 = 1;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

fn message(size: usize, sender: usize, phase: u8, seq: u32) -> Message {
    let mut b = vec![b'.'; size.max(HEADER)];
    b[0..2].copy_from_slice(&(sender as u16).to_be_bytes());
    b[2] = phase;
    b[3..7].copy_from_slice(&seq.to_be_bytes());
    b[7..15].copy_from_slice(&now_ns().to_be_bytes());
    Message::Binary(Bytes::from(b))
}

fn parse(b: &[u8]) -> Option<(usize, u8, u32, u64)> {
    if b.len() < HEADER {
        return None;
    }
    Some((
        u16::from_be_bytes([b[0], b[1]]) as usize,
        b[2],
        u32::from_be_bytes(b[3..7].try_into().ok()?),
        u64::from_be_bytes(b[7..15].try_into().ok()?),
    ))
}

// ---------------------------------------------------------------------------------------------
// the room

type Sink = SplitSink<Ws, Message>;

/// What the receivers share with the senders and the coordinator.
struct Shared {
    clients: usize,
    window: usize,
    /// Per sender and client: a probe arrived.
    probed: Vec<Vec<AtomicBool>>,
    /// Per sender: clients that got a probe.
    probed_by: Vec<AtomicU32>,
    /// Measured deliveries so far.
    delivered: AtomicU64,
    /// When the last measured delivery arrived (ns since the epoch).
    last: AtomicU64,
    /// Closed loop: per sender, deliveries of each in-flight message (slot `seq % window`).
    slots: Vec<Vec<AtomicU32>>,
    /// Closed loop: per sender, free places in its window.
    permits: Vec<Semaphore>,
    /// Something other than a measured or probe message arrived (a Close 1013, say).
    failure: Mutex<Option<String>>,
    /// Latency samples (µs) of each receiver.
    samples: Vec<Mutex<Vec<u32>>>,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failure.lock().unwrap().get_or_insert(what);
    }

    fn failed(&self) -> Option<String> {
        self.failure.lock().unwrap().clone()
    }
}

async fn receive(
    shared: Arc<Shared>,
    me: usize,
    mut stream: futures_util::stream::SplitStream<Ws>,
) {
    let receivers = shared.clients as u32 - 1;
    while let Some(m) = stream.next().await {
        let b = match m {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(other) => {
                shared.fail(format!("client {me} got {other:?}"));
                return;
            }
            Err(e) => {
                shared.fail(format!("client {me}: {e}"));
                return;
            }
        };
        let Some((from, phase, seq, sent)) = parse(&b) else {
            shared.fail(format!("client {me}: a message of {} bytes", b.len()));
            return;
        };
        if phase == PROBE {
            if !shared.probed[from][me].swap(true, Ordering::Relaxed) {
                shared.probed_by[from].fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let now = now_ns();
        let us = (now.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32;
        shared.samples[me].lock().unwrap().push(us);
        shared.last.fetch_max(now, Ordering::Relaxed);
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        if shared.window > 0 {
            let slot = &shared.slots[from][seq as usize % shared.window];
            if slot.fetch_add(1, Ordering::AcqRel) + 1 == receivers {
                slot.store(0, Ordering::Release);
                shared.permits[from].add_permits(1);
            }
        }
    }
}

/// The clients, connected: their sinks, and the receiving tasks (aborted when dropped).
struct Room {
    sinks: Vec<Sink>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Room {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The senders: spread evenly over the clients (and so over the instances).
fn senders(s: &Sizes) -> Vec<usize> {
    let n = s.senders.clamp(1, s.clients);
    (0..n).map(|i| i * s.clients / n).collect()
}

/// Connect `clients` clients, client `i` to `ports[i * ports.len() / clients]`.
async fn connect(ports: &[u16], s: &Sizes, shared: &Arc<Shared>) -> R<Room> {
    let mut room = Room {
        sinks: Vec::with_capacity(s.clients),
        tasks: Vec::with_capacity(s.clients),
    };
    for i in 0..s.clients {
        let port = ports[i * ports.len() / s.clients];
        let w = ws(&format!("ws://127.0.0.1:{port}/room")).await?;
        let (sink, stream) = w.split();
        room.sinks.push(sink);
        room.tasks
            .push(tokio::spawn(receive(shared.clone(), i, stream)));
    }
    Ok(room)
}

/// Every sender repeats a probe (every 100 ms) until every other client got one from it.
async fn probe(room: &mut Room, s: &Sizes, shared: &Shared) -> R<()> {
    let want = s.clients as u32 - 1;
    within(
        Duration::from_secs(20),
        "probes reaching the whole room",
        async {
            for &c in &senders(s) {
                let mut seq = 0;
                while shared.probed_by[c].load(Ordering::Relaxed) < want {
                    if let Some(f) = shared.failed() {
                        return Err(f);
                    }
                    room.sinks[c]
                        .send(message(s.size, c, PROBE, seq))
                        .await
                        .map_err(err("send"))?;
                    seq += 1;
                    let until = Instant::now() + Duration::from_millis(100);
                    while Instant::now() < until
                        && shared.probed_by[c].load(Ordering::Relaxed) < want
                    {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
            Ok(())
        },
    )
    .await
}

/// Send for `secs` with the load, then wait for every delivery; returns the measured messages
/// sent and the sending start (ns since the epoch).
async fn send_load(room: &mut Room, s: &Sizes, load: Load, shared: &Arc<Shared>) -> R<(u64, u64)> {
    let senders = senders(s);
    let t0 = now_ns();
    let stop = Instant::now() + Duration::from_secs_f64(s.secs);
    let sinks: Vec<(usize, Sink)> = senders
        .iter()
        .rev()
        .map(|&c| (c, room.sinks.swap_remove(c)))
        .collect();
    // swap_remove moved other sinks around; the senders' are out, the rest are not used again.
    let tasks: Vec<JoinHandle<R<(u64, Sink)>>> = sinks
        .into_iter()
        .enumerate()
        .map(|(k, (c, mut sink))| {
            let n = senders.len();
            let shared = shared.clone();
            let size = s.size;
            let interval = match load {
                Load::Rate(r) => Some(Duration::from_secs_f64(
                    senders.len() as f64 / r.max(1) as f64,
                )),
                Load::Max => None,
            };
            tokio::spawn(async move {
                let mut seq = 0u32;
                // The senders' ticks are staggered evenly over the interval, not all at once.
                let mut tick = interval.map(|i| {
                    let offset = i.mul_f64(k as f64 / n as f64);
                    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, i);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    t
                });
                while Instant::now() < stop {
                    match &mut tick {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => shared.permits[c]
                            .acquire()
                            .await
                            .map_err(err("window"))?
                            .forget(),
                    }
                    sink.send(message(size, c, MEASURED, seq))
                        .await
                        .map_err(err("send"))?;
                    seq += 1;
                }
                Ok((seq as u64, sink))
            })
        })
        .collect();
    let mut sent = 0;
    for t in tasks {
        let (n, sink) = within(Duration::from_secs_f64(s.secs + 30.0), "senders", async {
            t.await.map_err(err("sender task"))?
        })
        .await?;
        sent += n;
        room.sinks.push(sink);
    }
    let want = sent * (s.clients as u64 - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.delivered.load(Ordering::Relaxed) < want {
        if let Some(f) = shared.failed() {
            return Err(f);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {want} deliveries within 30 s of the last send",
                shared.delivered.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if shared.delivered.load(Ordering::Relaxed) != want {
        return Err(format!(
            "{} deliveries, {want} expected (duplicates?)",
            shared.delivered.load(Ordering::Relaxed)
        ));
    }
    Ok((sent, t0))
}

/// One load on one set-up: fresh processes, clients, probes, then the measured run.
pub async fn run(spec: &RelaySpec, s: &Sizes, setup: Setup, load: Load) -> R<Metrics> {
    let redis = match setup {
        Setup::One => None,
        Setup::Redis => Some(redis_start().await?),
    };
    let mut args: Vec<String> = Vec::new();
    if let Some(r) = &redis {
        args.extend([
            "--broadcast-via".into(),
            format!("redis://127.0.0.1:{}", r.port),
        ]);
    }
    args.extend(["ws-listen:127.0.0.1:0".into(), "broadcast:".into()]);
    let mut relays: Vec<RelayProc> = Vec::new();
    for _ in 0..if redis.is_some() { 2 } else { 1 } {
        relays.push(start(spec, Role::Raw(args.clone())).await?);
    }
    let res = measure(&relays, redis.as_ref(), s, setup, load).await;
    let res = res.map_err(|e| {
        let said: Vec<String> = relays
            .iter_mut()
            .map(|r| match r.check_alive() {
                Err(died) => died,
                Ok(()) => format!("stderr: {}", r.stderr_tail()),
            })
            .collect();
        format!("{e}; {}", said.join("; "))
    });
    let _ = tokio::task::spawn_blocking(move || {
        drop(relays);
        drop(redis);
    })
    .await;
    res
}

async fn measure(
    relays: &[RelayProc],
    redis: Option<&Redis>,
    s: &Sizes,
    setup: Setup,
    load: Load,
) -> R<Metrics> {
    if s.clients < 2 {
        return Err("fanout needs at least 2 clients".into());
    }
    let window = match load {
        Load::Max => s.window.max(1),
        Load::Rate(_) => 0,
    };
    let shared = Arc::new(Shared {
        clients: s.clients,
        window,
        probed: (0..s.clients)
            .map(|_| (0..s.clients).map(|_| AtomicBool::new(false)).collect())
            .collect(),
        probed_by: (0..s.clients).map(|_| AtomicU32::new(0)).collect(),
        delivered: AtomicU64::new(0),
        last: AtomicU64::new(0),
        slots: (0..s.clients)
            .map(|_| (0..window).map(|_| AtomicU32::new(0)).collect())
            .collect(),
        permits: (0..s.clients).map(|_| Semaphore::new(window)).collect(),
        failure: Mutex::new(None),
        samples: (0..s.clients).map(|_| Mutex::new(Vec::new())).collect(),
    });
    let ports: Vec<u16> = relays.iter().map(|r| r.port).collect();
    let mut room = within(
        Duration::from_secs(60),
        "connecting the clients",
        connect(&ports, s, &shared),
    )
    .await?;
    probe(&mut room, s, &shared).await?;
    let cpu0: Vec<Option<f64>> = relays.iter().map(|r| r.cpu_secs()).collect();
    let redis_cpu0 = redis.and_then(|r| sys::cpu_secs(r.child.id()));
    let (_sent, t0) = send_load(&mut room, s, load, &shared).await?;
    let relay_cpu: f64 = relays
        .iter()
        .zip(&cpu0)
        .map(|(r, c0)| match (c0, r.cpu_secs()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        })
        .sum();
    let redis_cpu = match (redis_cpu0, redis.and_then(|r| sys::cpu_secs(r.child.id()))) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    drop(room);
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let secs = (shared.last.load(Ordering::Relaxed).saturating_sub(t0)) as f64 / 1e9;
    let mut us: Vec<f64> = shared
        .samples
        .iter()
        .flat_map(|v| {
            v.lock()
                .unwrap()
                .iter()
                .map(|&x| x as f64)
                .collect::<Vec<_>>()
        })
        .collect();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per_m = |cpu: f64| cpu / (delivered as f64 / 1e6);
    let row = |m| Row::Fanout(setup, load, m);
    let mut out = vec![
        (row(Measure::Deliveries), delivered as f64 / secs),
        (row(Measure::P50), percentile(&us, 0.50)),
        (row(Measure::P99), percentile(&us, 0.99)),
        (row(Measure::RelayCpu), per_m(relay_cpu)),
    ];
    if let Some(c) = redis_cpu {
        out.push((row(Measure::RedisCpu), per_m(c)));
    }
    Ok(out)
}
