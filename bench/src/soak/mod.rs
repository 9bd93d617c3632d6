//! `wsbench --soak`: the soak run of `load.rs` against each relay in turn (`ws-listen:` → a TCP
//! echo backend), with the process checks around it (descriptors, RSS and CPU from /proc;
//! sessions active from wsbridge's `/metrics`), the pass criteria, and a side-by-side report.
//! Also `--soak-idle N`: N idle bridged connections, the time to accept them, RSS per connection.

pub mod load;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::relay::{RelayProc, RelaySpec, Role, Syntax};
use crate::scenarios::start;
use crate::sys;
use load::{Backend, Plan};

/// One relay's soak: the load's report lines, the process's, and the failed criteria.
pub struct Outcome {
    pub name: String,
    pub rows: Vec<(String, String)>,
    pub failures: Vec<String>,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `wsbridge_sessions_active` from `/metrics` on 127.0.0.1:`port`.
async fn sessions_active(port: u16) -> Option<i64> {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut body))
        .await
        .ok()?
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("wsbridge_sessions_active "))?
        .trim()
        .parse()
        .ok()
}

/// Start the relay in front of the backend: wsbridge with `/metrics` (for the sessions count)
/// and otherwise its defaults; others with the bench's usual `ws-listen` → `tcp` arguments.
async fn start_relay(spec: &RelaySpec, backend: u16) -> Result<(RelayProc, Option<u16>), String> {
    if spec.syntax == Syntax::Websocat {
        return Ok((start(spec, Role::WsToTcp { port: backend }).await?, None));
    }
    let metrics = sys::free_port().map_err(|e| format!("no free port: {e}"))?;
    let args = vec![
        "-b".into(),
        "--metrics".into(),
        format!("127.0.0.1:{metrics}"),
        "ws-listen:127.0.0.1:0".into(),
        format!("tcp:127.0.0.1:{backend}"),
    ];
    Ok((start(spec, Role::Raw(args)).await?, Some(metrics)))
}

/// Run the soak against one relay.
pub async fn soak(spec: &RelaySpec, plan: &Plan) -> Outcome {
    let mut out = Outcome {
        name: spec.name.clone(),
        rows: Vec::new(),
        failures: Vec::new(),
    };
    let backend = match Backend::start().await {
        Ok(b) => b,
        Err(e) => {
            out.failures.push(format!("backend: {e}"));
            return out;
        }
    };
    let (mut relay, metrics) = match start_relay(spec, backend.port).await {
        Ok(r) => r,
        Err(e) => {
            out.failures.push(e);
            return out;
        }
    };
    let url = format!("ws://127.0.0.1:{}/", relay.port);
    let (fds0, rss0, cpu0) = (fds(relay.pid), relay.rss_kib(), relay.cpu_secs());
    eprintln!(
        "wsbench: soak · {}: {} clients for {:?} at {url}",
        spec.name, plan.clients, plan.duration
    );
    let t0 = Instant::now();
    let counts = load::run(plan, &url, &backend).await;
    let ran = t0.elapsed();
    let peak_rss = relay.rss_kib();
    out.rows = load::summary(&counts);
    out.failures = load::failures(plan, &counts);
    if let Err(died) = relay.check_alive() {
        out.failures.push(died);
        return out;
    }
    let settle = Instant::now();
    let active = let_go(&relay, metrics, fds0).await;
    let (fds1, rss1, cpu1) = (fds(relay.pid), relay.rss_kib(), relay.cpu_secs());
    let kib = |v: Option<u64>| v.map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    out.rows.extend([
        ("run time".into(), format!("{:.1} s", ran.as_secs_f64())),
        (
            "relay CPU".into(),
            cpu1.zip(cpu0)
                .map_or("–".into(), |(a, b)| format!("{:.1} s", a - b)),
        ),
        (
            "relay descriptors before / after".into(),
            format!("{fds0} / {fds1}"),
        ),
        (
            "relay RSS before / at the end / after".into(),
            format!("{} / {} / {}", kib(rss0), kib(peak_rss), kib(rss1)),
        ),
        (
            "sessions active after".into(),
            active.map_or("– (no /metrics)".into(), |a| a.to_string()),
        ),
        (
            "time for the relay to let go".into(),
            format!("{:.1} s", settle.elapsed().as_secs_f64()),
        ),
        (
            "backend connections accepted".into(),
            backend.accepted.load(Relaxed).to_string(),
        ),
    ]);
    if fds1 > fds0 + 2 {
        out.failures
            .push(format!("descriptors: {fds0} before, {fds1} after"));
    }
    if active.is_some_and(|a| a != 0) {
        out.failures
            .push(format!("{} sessions still active", active.unwrap_or(0)));
    }
    if let (Some(a), Some(b)) = (rss0, rss1)
        && b > a + 64 * 1024
    {
        out.failures.push(format!(
            "RSS after the run {} above before",
            kib(Some(b - a))
        ));
    }
    // More rounds against the same relay: RSS that keeps growing would be a leak.
    for round in 2..=plan.rounds {
        let counts = load::run(plan, &url, &backend).await;
        for f in load::failures(plan, &counts) {
            out.failures.push(format!("round {round}: {f}"));
        }
        let active = let_go(&relay, metrics, fds0).await;
        let after = format!(
            "{} ({} descriptors, {} sessions active)",
            kib(relay.rss_kib()),
            fds(relay.pid),
            active.unwrap_or(-1)
        );
        out.rows
            .push((format!("relay RSS after round {round}"), after));
    }
    let _ = tokio::task::spawn_blocking(move || drop(relay)).await;
    out
}

/// Every session has ended on the client side: wait (bounded) until the relay has let go of
/// them (sessions active 0 when it has /metrics, descriptors back to `fds0`); the last count.
async fn let_go(relay: &RelayProc, metrics: Option<u16>, fds0: usize) -> Option<i64> {
    let settle = Instant::now();
    let mut active = None;
    while settle.elapsed() < Duration::from_secs(60) {
        active = match metrics {
            Some(p) => sessions_active(p).await,
            None => None,
        };
        if active.is_none_or(|a| a == 0) && fds(relay.pid) <= fds0 + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    active
}

/// `n` idle bridged connections (`ws-listen:` → TCP echo, one message each, then quiet): the
/// time to accept and bridge them all, and the relay's RSS per connection.
pub async fn idle(spec: &RelaySpec, n: usize) -> Result<Vec<(String, String)>, String> {
    // The backend's descriptors in a process of their own: with 10,000 connections, clients
    // and backend together would pass a 20,000 descriptor limit.
    let (_echo, port) = echo_process().await?;
    let (relay, _) = start_relay(spec, port).await?;
    let url = format!("ws://127.0.0.1:{}/", relay.port);
    let rss0 = relay.rss_kib().unwrap_or(0);
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    let mut next = 0;
    while held.len() < n {
        while next < n && pending.len() < 256 {
            let url = url.clone();
            pending.push(async move { one_echo(&url).await });
            next += 1;
        }
        match pending.next().await {
            Some(Ok(ws)) => held.push(ws),
            Some(Err(e)) => return Err(format!("connection {}: {e}", held.len())),
            None => break,
        }
    }
    let took = t0.elapsed();
    let rss1 = relay.rss_kib().unwrap_or(0);
    let per = (rss1.saturating_sub(rss0)) as f64 / n as f64;
    drop(held);
    let _ = tokio::task::spawn_blocking(move || drop(relay)).await;
    Ok(vec![
        (
            format!("{n} idle connections: time to bridge them all"),
            format!("{:.2} s", took.as_secs_f64()),
        ),
        (
            "per second".into(),
            format!("{:.0}", n as f64 / took.as_secs_f64()),
        ),
        (
            "relay RSS before / with them".into(),
            format!(
                "{:.1} / {:.1} MiB",
                rss0 as f64 / 1024.0,
                rss1 as f64 / 1024.0
            ),
        ),
        ("relay RSS per connection".into(), format!("{per:.1} KiB")),
    ])
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn one_echo(url: &str) -> Result<Ws, String> {
    let host = url.trim_start_matches("ws://").trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Message::binary(&b"hello"[..]))
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(_))) => Ok(ws),
        other => Err(format!("no echo: {other:?}")),
    }
}

/// The side-by-side report: one column per relay, then each relay's verdict.
pub fn print(outcomes: &[Outcome], plan: &Plan) -> bool {
    println!(
        "## Soak: {} clients, {:?}, messages 1 B – {} KiB, {} % killed, {} % stalled, backend restarted{}, {} garbage + {} slowloris connections\n",
        plan.clients,
        plan.duration,
        plan.max_size / 1024,
        (plan.kill_share * 100.0).round(),
        (plan.stall_share * 100.0).round(),
        if plan.backend_down.is_some() {
            " once"
        } else {
            " never"
        },
        plan.garbage,
        plan.slowloris
    );
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    println!("| | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    let keys: Vec<String> = outcomes
        .first()
        .map(|o| o.rows.iter().map(|r| r.0.clone()).collect())
        .unwrap_or_default();
    for k in keys {
        let cells: Vec<String> = outcomes
            .iter()
            .map(|o| {
                o.rows
                    .iter()
                    .find(|r| r.0 == k)
                    .map_or("–".into(), |r| r.1.clone())
            })
            .collect();
        println!("| {k} | {} |", cells.join(" | "));
    }
    let mut all = true;
    for o in outcomes {
        if o.failures.is_empty() {
            println!("\n{}: PASS", o.name);
        } else {
            all = false;
            println!("\n{}: FAIL\n- {}", o.name, o.failures.join("\n- "));
        }
    }
    all
}

/// `wsbench --serve-echo`: the soak's backend alone; `PORT n` on stdout; until stdin closes.
pub async fn serve_echo() -> i32 {
    let Ok(backend) = Backend::start().await else {
        return 1;
    };
    println!("PORT {}", backend.port);
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    0
}

/// This program again, as `--serve-echo`: the child (killed when dropped) and its port.
async fn echo_process() -> Result<(tokio::process::Child, u16), String> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(exe)
        .arg("--serve-echo")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("echo backend: {e}"))?;
    let out = child.stdout.take().ok_or("echo backend: no stdout")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| "echo backend: not ready".to_string())?
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("echo backend said {line:?}"))?;
    Ok((child, port))
}

/// `n` stalled readers: each connects (receive buffer 16 KiB), sends 64 KiB messages to the echo
/// backend and never reads, until its writes stop moving; then the relay's RSS per stalled
/// session, and the kernel's TCP memory (/proc/net/sockstat).
pub async fn stalled(spec: &RelaySpec, n: usize) -> Result<Vec<(String, String)>, String> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    let (_echo, port) = echo_process().await?;
    let (relay, _) = start_relay(spec, port).await?;
    let url = format!("ws://127.0.0.1:{}/", relay.port);
    let (rss0, tcp0) = (relay.rss_kib().unwrap_or(0), tcp_mem_kib());
    let moved = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..n {
        let ws = stalled_client(&url).await?;
        let moved = moved.clone();
        writers.push(tokio::spawn(async move {
            let (mut sink, _never_read) = ws.split();
            let chunk = bytes::Bytes::from(vec![9u8; 64 * 1024]);
            for _ in 0..32 {
                if sink.send(Message::Binary(chunk.clone())).await.is_err() {
                    break;
                }
                moved.fetch_add(1, Relaxed);
            }
            std::future::pending::<()>().await;
        }));
    }
    // Until no writer has moved for 2 s (every one is stuck, or done).
    let mut last = u64::MAX;
    while moved.load(Relaxed) != last {
        last = moved.load(Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (rss1, tcp1) = (relay.rss_kib().unwrap_or(0), tcp_mem_kib());
    for w in writers {
        w.abort();
    }
    let _ = tokio::task::spawn_blocking(move || drop(relay)).await;
    let per = rss1.saturating_sub(rss0) as f64 / n as f64;
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    Ok(vec![
        (
            format!("{n} stalled readers: messages sent before stuck"),
            format!("{last} × 64 KiB"),
        ),
        (
            "relay RSS before / with them".into(),
            format!("{} / {}", mib(rss0), mib(rss1)),
        ),
        (
            "relay RSS per stalled session".into(),
            format!("{per:.1} KiB"),
        ),
        (
            "kernel TCP memory before / with them (all sockets)".into(),
            format!("{} / {}", mib(tcp0), mib(tcp1)),
        ),
    ])
}

/// A WebSocket client with a 16 KiB receive buffer (set before connecting).
async fn stalled_client(url: &str) -> Result<Ws, String> {
    let host: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("{e}"))?;
    let s = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    let _ = s.set_recv_buffer_size(16 * 1024);
    let tcp = s.connect(host).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The kernel's memory for TCP buffers, all sockets (`mem` pages in /proc/net/sockstat).
fn tcp_mem_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages: u64 = s
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}
