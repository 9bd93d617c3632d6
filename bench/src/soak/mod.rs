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
    // Every session has ended on the client side: wait (bounded) for the relay to let go.
    let settle = Instant::now();
    let limit = Duration::from_secs(60);
    let mut active = None;
    while settle.elapsed() < limit {
        active = match metrics {
            Some(p) => sessions_active(p).await,
            None => None,
        };
        let quiet = active.is_none_or(|a| a == 0);
        if quiet && fds(relay.pid) <= fds0 + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let _ = tokio::task::spawn_blocking(move || drop(relay)).await;
    out
}

/// `n` idle bridged connections (`ws-listen:` → TCP echo, one message each, then quiet): the
/// time to accept and bridge them all, and the relay's RSS per connection.
pub async fn idle(spec: &RelaySpec, n: usize) -> Result<Vec<(String, String)>, String> {
    let backend = Backend::start()
        .await
        .map_err(|e| format!("backend: {e}"))?;
    let (relay, _) = start_relay(spec, backend.port).await?;
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
