//! wsbench: the benchmark suite for wsbridge (issue 6).
//!
//! It starts its own WebSocket echo/sink/source server and a TCP sink in this process (on
//! 127.0.0.1, port 0), drives the relay binary given as a command template over loopback, and
//! prints a Markdown table. With `--other`, a second relay (e.g. websocat) runs the same
//! scenarios in the same run, alternating A/B, and the table shows medians and ratios.

mod deflate;
mod fanout;
mod handshakes;
mod relay;
mod scenarios;
mod server;
mod soak;
mod sys;
mod wss;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use relay::{RelaySpec, Role, Syntax};
use scenarios::{Better, Ctx, Metrics, Row, Sizes, median};

const DEFAULT_RELAY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/wsbridge");

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// tcp-listen → ws:// text: lines echoed back (lines/s)
    Lines,
    /// -b tcp-listen → ws:// sink, and ws:// source → tcp-listen client (MB/s, CPU s/GB)
    Bulk,
    /// -b ws-listen → tcp: sink, and tcp: source → ws-listen client (MB/s, CPU s/GB)
    ServerBulk,
    /// one 32 B line at a time through tcp-listen → ws:// (p50/p99 µs)
    Latency,
    /// many bridged idle connections through tcp-listen → ws:// (RSS per connection)
    Idle,
    /// spawn `--text - ws://…`, one line echoed, exit (ms)
    Startup,
    /// a TCP client that never reads while the WebSocket side sends (relay RSS growth)
    Stall,
    /// permessage-deflate between two wsbridge processes (relay A only): a JSON stream each way
    /// (wire bytes, CPU per MB) and idle connections (RSS per connection of each)
    Deflate,
    /// one broadcast room, many clients (relay A only): one wsbridge with the in-process hub,
    /// and two sharing the room through the bench's own redis-server (deliveries/s, latency)
    Fanout,
    /// bulk over TLS (certificate from `openssl req -x509`): -b tcp-listen → wss:// sink and
    /// back, -b wss-listen → tcp: sink and back (MB/s, CPU s/GB); baseline rustls ↔ rustls
    Wss,
    /// new wss-listen: → mirror: sessions per second from 32 concurrent clients, each one
    /// message and a clean close; full TLS handshakes and resumed ones (sessions/s, CPU µs each)
    Handshakes,
    /// 1,000 clients on -b ws-listen: → TCP echo, a 100 B message every 100 ms each
    /// (round trip p50/p99/p99.9, relay CPU per message)
    FanIn,
}

const ALL: [Scenario; 12] = [
    Scenario::Lines,
    Scenario::Bulk,
    Scenario::ServerBulk,
    Scenario::Latency,
    Scenario::Idle,
    Scenario::Startup,
    Scenario::Stall,
    Scenario::Deflate,
    Scenario::Fanout,
    Scenario::Wss,
    Scenario::Handshakes,
    Scenario::FanIn,
];

/// Benchmark wsbridge (and optionally another relay) over loopback.
///
/// A relay is a command template: a program and fixed arguments, split at whitespace, with
/// `{args}` where the scenario's arguments go (appended when absent). The scenario arguments are
/// written in the relay's syntax: wsbridge's (`tcp-listen:127.0.0.1:0 ws://…`, port announced on
/// stderr) or websocat 1.x's (`-E tcp-l:127.0.0.1:PORT ws://…`, port chosen by the bench).
#[derive(Debug, Parser)]
#[command(name = "wsbench", version)]
struct Cli {
    /// Relay A (the one under test) [default: the release build of wsbridge in this repository]
    #[arg(long, value_name = "TEMPLATE", env = "WSBENCH_RELAY", default_value = DEFAULT_RELAY, hide_default_value = true)]
    relay: String,

    /// Command-line syntax of relay A
    #[arg(long, value_enum, default_value = "auto")]
    relay_syntax: Syntax,

    /// Name of relay A in the table [default: wsbridge or websocat, from the syntax]
    #[arg(long)]
    relay_name: Option<String>,

    /// Relay B, run side by side with A (e.g. 'websocat' or '/opt/websocat {args}')
    #[arg(long, value_name = "TEMPLATE")]
    other: Option<String>,

    /// Command-line syntax of relay B
    #[arg(long, value_enum, default_value = "auto")]
    other_syntax: Syntax,

    /// Name of relay B in the table
    #[arg(long)]
    other_name: Option<String>,

    /// Small sizes and one round: a smoke run (about a minute with two relays)
    #[arg(long)]
    quick: bool,

    /// Rounds; A and B alternate who goes first; cells are medians over rounds
    /// [default: 3, or 1 with --quick]
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,

    /// Run only these scenarios (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,

    /// Skip these scenarios (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<Scenario>,

    /// Do not run the no-relay baselines
    #[arg(long)]
    no_baseline: bool,

    /// Lines for the lines scenario [default: 200000; --quick 20000]
    #[arg(long, value_name = "N")]
    lines: Option<u64>,

    /// MiB per bulk transfer [default: 1024; --quick 64]
    #[arg(long, value_name = "MIB")]
    bulk_mib: Option<u64>,

    /// Round trips measured in the latency scenario [default: 20000; --quick 2000]
    #[arg(long, value_name = "N")]
    latency_samples: Option<usize>,

    /// Idle connection counts (comma-separated); counts the descriptor limit cannot hold are
    /// skipped [default: 2000,10000; --quick 200]
    #[arg(long, value_name = "N,N", value_delimiter = ',')]
    idle: Vec<usize>,

    /// Timed startups (after one warm-up) [default: 20; --quick 5]
    #[arg(long, value_name = "N")]
    startup_runs: Option<usize>,

    /// Seconds the stalled reader stalls [default: 3; --quick 1]
    #[arg(long, value_name = "SECS")]
    stall_secs: Option<f64>,

    /// JSON lines each way in the deflate scenario [default: 100000; --quick 10000]
    #[arg(long, value_name = "N")]
    deflate_lines: Option<u64>,

    /// Idle connections in the deflate scenario [default: 500; --quick 100]
    #[arg(long, value_name = "N")]
    deflate_conns: Option<usize>,

    /// JSON lines echoed on each idle connection of the deflate scenario before its RSS is
    /// read (more than a few dozen fill the decompressors' 32 KiB windows) [default: 1]
    #[arg(long, value_name = "N", default_value_t = 1)]
    deflate_idle_lines: usize,

    /// Flag sets the deflate scenario compares (comma-separated) [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    deflate_variants: Vec<deflate::Variant>,

    /// Clients in the fanout room, over all instances (split evenly over the two with Redis)
    /// [default: 200; --quick 40]
    #[arg(long, value_name = "N")]
    fanout_clients: Option<usize>,

    /// Clients of the fanout room that send (spread over the instances)
    #[arg(long, value_name = "N", default_value_t = 10)]
    fanout_senders: usize,

    /// Total messages per second of the fanout scenario's fixed-rate load (all senders); 0:
    /// only the max load
    #[arg(long, value_name = "MSGS", default_value_t = 100)]
    fanout_rate: u32,

    /// Messages each sender keeps in flight in the fanout scenario's max load (sent, not yet
    /// delivered to every receiver)
    #[arg(long, value_name = "N", default_value_t = 8)]
    fanout_window: usize,

    /// Seconds each fanout load sends [default: 5; --quick 2]
    #[arg(long, value_name = "SECS")]
    fanout_secs: Option<f64>,

    /// Bytes per fanout message (binary; at least 15)
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    fanout_size: usize,

    /// Seconds of each handshake run [default: 5; --quick 2]
    #[arg(long, value_name = "SECS")]
    handshake_secs: Option<f64>,

    /// Fan-in clients [default: 1000; --quick 200]
    #[arg(long, value_name = "N")]
    fanin_clients: Option<usize>,

    /// Fan-in seconds [default: 120; --quick 5]
    #[arg(long, value_name = "SECS")]
    fanin_secs: Option<f64>,

    /// Pin the relays to these CPUs (comma-separated CPU numbers; sched_setaffinity)
    #[arg(long, value_name = "CPUS", value_delimiter = ',')]
    pin_relay: Vec<usize>,

    /// Run the soak instead of the scenarios (docs/reliability.md): 2,000 clients through
    /// ws-listen: → a TCP echo for 2 minutes with faults injected; pass criteria at the end;
    /// exit 1 when one fails. With --other, both relays in turn
    #[arg(long)]
    soak: bool,

    /// The soak's short version (200 clients, 30 s), as the test suite runs it
    #[arg(long)]
    soak_short: bool,

    /// Soak clients [default: 2000, or 200 with --soak-short]
    #[arg(long, value_name = "N")]
    soak_clients: Option<usize>,

    /// Soak duration in seconds [default: 120, or 30 with --soak-short]
    #[arg(long, value_name = "SECS")]
    soak_secs: Option<f64>,

    /// Run the soak load this many times against the same relay (RSS after each: a leak
    /// would keep growing)
    #[arg(long, value_name = "N", default_value_t = 1)]
    soak_rounds: usize,

    /// N idle bridged connections through ws-listen: -> a TCP echo in a process of its own (time
    /// to bridge them all, RSS per connection); alone, or after --soak
    #[arg(long, value_name = "N")]
    soak_idle: Option<usize>,

    /// N stalled readers through ws-listen: -> a TCP echo (each sends and never reads): the
    /// relay's RSS per stalled session; alone, or after --soak
    #[arg(long, value_name = "N")]
    soak_stalled: Option<usize>,

    /// Internal: serve the soak's TCP echo backend, print `PORT n`, run until stdin closes
    /// (for --soak-idle, which keeps the backend's descriptors out of the bench's process)
    #[arg(long, hide = true)]
    serve_echo: bool,

    /// Worker threads of the bench's own runtime (client and servers)
    #[arg(long, value_name = "N", default_value_t = 2)]
    threads: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Col {
    Baseline,
    Relay(usize),
}

fn main() {
    let cli = Cli::parse();
    let nofile = sys::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(run(cli, nofile));
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else {
        format!("{} MiB", n as f64 / (1u64 << 20) as f64)
    }
}

async fn run(cli: Cli, nofile: u64) -> i32 {
    if cli.serve_echo {
        return soak::serve_echo().await;
    }
    let quick = cli.quick;
    let rounds = cli.rounds.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let mut idle = if cli.idle.is_empty() {
        if quick { vec![200] } else { vec![2000, 10000] }
    } else {
        cli.idle.clone()
    };
    let mut notes: Vec<String> = Vec::new();
    // The bench holds 2 descriptors per idle connection (client and server side), and so does
    // the relay, which inherits this limit.
    idle.retain(|&n| {
        let ok = (2 * n + 256) as u64 <= nofile;
        if !ok {
            notes.push(format!(
                "idle: {n} connections skipped: RLIMIT_NOFILE is {nofile}, {} needed",
                2 * n + 256
            ));
        }
        ok
    });
    let sizes = Sizes {
        handshake_secs: cli.handshake_secs.unwrap_or(if quick { 2.0 } else { 5.0 }),
        fanin_clients: cli.fanin_clients.unwrap_or(if quick { 200 } else { 1000 }),
        fanin_secs: cli.fanin_secs.unwrap_or(if quick { 5.0 } else { 120.0 }),
        lines: cli.lines.unwrap_or(if quick { 20_000 } else { 200_000 }),
        line_len: 100,
        bulk_bytes: cli.bulk_mib.unwrap_or(if quick { 64 } else { 1024 }) << 20,
        write_size: 64 * 1024,
        latency_samples: cli
            .latency_samples
            .unwrap_or(if quick { 2_000 } else { 20_000 }),
        latency_line: 32,
        idle,
        startup_runs: cli
            .startup_runs
            .unwrap_or(if quick { 5 } else { 20 })
            .max(1),
        stall: Duration::from_secs_f64(cli.stall_secs.unwrap_or(if quick { 1.0 } else { 3.0 })),
        deflate_lines: cli
            .deflate_lines
            .unwrap_or(if quick { 10_000 } else { 100_000 })
            .max(1),
        deflate_conns: cli
            .deflate_conns
            .unwrap_or(if quick { 100 } else { 500 })
            .max(1),
        deflate_idle_lines: cli.deflate_idle_lines.max(1),
        deflate_variants: if cli.deflate_variants.is_empty() {
            deflate::ALL_VARIANTS.to_vec()
        } else {
            cli.deflate_variants.clone()
        },
        fanout: fanout::Sizes {
            clients: cli
                .fanout_clients
                .unwrap_or(if quick { 40 } else { 200 })
                .max(2),
            senders: cli.fanout_senders.max(1),
            rate: cli.fanout_rate,
            window: cli.fanout_window.max(1),
            secs: cli.fanout_secs.unwrap_or(if quick { 2.0 } else { 5.0 }),
            size: cli.fanout_size.max(15),
        },
    };
    let scenarios: Vec<Scenario> = ALL
        .iter()
        .copied()
        .filter(|s| cli.only.is_empty() || cli.only.contains(s))
        .filter(|s| !cli.skip.contains(s))
        .collect();

    let pin = (!cli.pin_relay.is_empty()).then(|| cli.pin_relay.clone());
    let mut specs = Vec::new();
    match RelaySpec::parse(
        &cli.relay,
        cli.relay_syntax,
        cli.relay_name.clone(),
        pin.clone(),
    ) {
        Ok(s) => specs.push(s),
        Err(e) => {
            eprintln!("wsbench: {e}");
            return 2;
        }
    }
    if let Some(other) = &cli.other {
        match RelaySpec::parse(other, cli.other_syntax, cli.other_name.clone(), pin.clone()) {
            Ok(mut s) => {
                if s.name == specs[0].name {
                    s.name.push_str(" (B)");
                }
                specs.push(s)
            }
            Err(e) => {
                eprintln!("wsbench: {e}");
                return 2;
            }
        }
    }
    for s in &specs {
        let p = s.program();
        let found = if p.contains('/') {
            Path::new(p).exists()
        } else {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).exists()))
        };
        if !found {
            eprintln!(
                "wsbench: {}: program '{p}' not found (build it, or give --relay/--other)",
                s.name
            );
            return 2;
        }
    }
    if cli.soak || cli.soak_short || cli.soak_idle.is_some() || cli.soak_stalled.is_some() {
        return run_soak(&cli, &specs, nofile).await;
    }
    let versions: Vec<String> = specs.iter().map(|s| sys::version_of(s.program())).collect();
    let repo: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let machine = sys::machine(&repo);

    let servers = match server::Servers::start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsbench: cannot start the bench servers: {e}");
            return 1;
        }
    };
    let ctx = Ctx { servers, sizes };
    let wss_ctx = if scenarios.contains(&Scenario::Wss) || scenarios.contains(&Scenario::Handshakes)
    {
        match wss::WssCtx::start().await {
            Ok(w) => Some(w),
            Err(e) => {
                notes.push(format!("wss: skipped: {e}"));
                None
            }
        }
    } else {
        None
    };
    let fanout_redis_missing =
        scenarios.contains(&Scenario::Fanout) && fanout::redis_server().is_none();
    if fanout_redis_missing {
        notes.push(
            "fanout: the two-instance set-up was skipped: redis-server not found \
             (`apt-get install redis-server`)"
                .into(),
        );
    }

    for (i, s) in specs.iter().enumerate() {
        eprintln!(
            "wsbench: relay {}: {} — e.g. `{}`",
            ["A", "B"][i],
            s.name,
            s.describe(&Role::TcpToWs {
                binary: false,
                url: ctx.servers.url("/echo")
            })
        );
    }
    eprintln!(
        "wsbench: {rounds} round(s), scenarios: {:?}; RLIMIT_NOFILE {nofile}",
        scenarios
    );

    // Values per (row, column), each with its round, so ratios can be taken within a round.
    let mut results: BTreeMap<(Row, Col), Vec<(usize, f64)>> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let mut record = |round: usize, sc: Scenario, col: Col, r: Result<Metrics, String>| {
        let who = match col {
            Col::Baseline => "no relay".to_string(),
            Col::Relay(i) => names[i].clone(),
        };
        match r {
            Ok(m) => {
                let shown: Vec<String> = m
                    .iter()
                    .map(|(row, v)| format!("{} {}", fmt_num(*v), row.unit()))
                    .collect();
                let what = m.first().map(|(row, _)| row.label()).unwrap_or_default();
                let what = what.split(':').next().unwrap_or_default();
                eprintln!(
                    "  [{}/{rounds}] {what} · {who}: {}",
                    round + 1,
                    shown.join(", ")
                );
                for (row, v) in m {
                    results.entry((row, col)).or_default().push((round, v));
                }
            }
            Err(e) => {
                eprintln!("  [{}/{rounds}] {sc:?} · {who}: FAILED: {e}", round + 1);
                errors.push(format!("round {}, {sc:?}, {who}: {e}", round + 1));
            }
        }
    };

    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..specs.len()).collect()
        } else {
            (0..specs.len()).rev().collect()
        };
        for &sc in &scenarios {
            if !cli.no_baseline {
                match sc {
                    Scenario::Lines => record(
                        round,
                        sc,
                        Col::Baseline,
                        scenarios::lines_baseline(&ctx).await,
                    ),
                    Scenario::Bulk => {
                        let r = scenarios::bulk_up_baseline(&ctx, Row::BulkUp).await;
                        record(round, sc, Col::Baseline, r);
                        let r = scenarios::bulk_down_baseline(&ctx, Row::BulkDown).await;
                        record(round, sc, Col::Baseline, r);
                        let r = scenarios::raw_tcp_baseline(&ctx).await;
                        record(round, sc, Col::Baseline, r);
                    }
                    Scenario::ServerBulk => {
                        let r = scenarios::bulk_up_baseline(&ctx, Row::ServerBulk).await;
                        record(round, sc, Col::Baseline, r);
                        let r = scenarios::bulk_down_baseline(&ctx, Row::ServerBulkDown).await;
                        record(round, sc, Col::Baseline, r);
                    }
                    Scenario::Latency => {
                        let r = scenarios::latency_baseline(&ctx).await;
                        record(round, sc, Col::Baseline, r);
                    }
                    Scenario::Startup => {
                        let r = scenarios::startup_baseline(&ctx).await;
                        record(round, sc, Col::Baseline, r);
                    }
                    Scenario::Wss => {
                        if let Some(w) = &wss_ctx {
                            let r = wss::baseline(&ctx, w).await;
                            record(round, sc, Col::Baseline, r);
                        }
                    }
                    Scenario::Handshakes => {
                        if let Some(w) = &wss_ctx {
                            let r = handshakes::handshakes_baseline(&ctx, w).await;
                            record(round, sc, Col::Baseline, r);
                        }
                    }
                    Scenario::FanIn => {
                        let r = handshakes::fanin_baseline(&ctx).await;
                        record(round, sc, Col::Baseline, r);
                    }
                    Scenario::Idle | Scenario::Stall | Scenario::Deflate | Scenario::Fanout => {}
                }
            }
            for &i in &order {
                let spec = &specs[i];
                let col = Col::Relay(i);
                match sc {
                    Scenario::Lines => {
                        record(round, sc, col, scenarios::lines_relay(&ctx, spec).await)
                    }
                    Scenario::Bulk => {
                        record(round, sc, col, scenarios::bulk_up_relay(&ctx, spec).await);
                        record(round, sc, col, scenarios::bulk_down_relay(&ctx, spec).await);
                    }
                    Scenario::ServerBulk => {
                        let r = scenarios::server_bulk_relay(&ctx, spec).await;
                        record(round, sc, col, r);
                        let r = scenarios::server_bulk_down_relay(&ctx, spec).await;
                        record(round, sc, col, r);
                    }
                    Scenario::Latency => {
                        record(round, sc, col, scenarios::latency_relay(&ctx, spec).await)
                    }
                    Scenario::Idle => {
                        let r = scenarios::idle_relay(&ctx, spec, true).await;
                        record(round, sc, col, r)
                    }
                    Scenario::Startup => {
                        record(round, sc, col, scenarios::startup_relay(&ctx, spec).await)
                    }
                    Scenario::Stall => {
                        record(round, sc, col, scenarios::stall_relay(&ctx, spec).await)
                    }
                    // Two processes of relay A talk to each other; relay B is not run.
                    Scenario::Deflate if i != 0 || spec.syntax != Syntax::Wsbridge => {}
                    Scenario::Deflate => {
                        for &v in &ctx.sizes.deflate_variants {
                            let r = deflate::stream(&ctx, spec, v).await;
                            record(round, sc, col, r);
                            if v.has_idle() {
                                let r = deflate::idle(&ctx, spec, v).await;
                                record(round, sc, col, r);
                            }
                        }
                    }
                    Scenario::Wss => {
                        if let Some(w) = &wss_ctx {
                            record(round, sc, col, wss::client_up(&ctx, w, spec).await);
                            record(round, sc, col, wss::client_down(&ctx, w, spec).await);
                            record(round, sc, col, wss::server_up(&ctx, w, spec).await);
                            record(round, sc, col, wss::server_down(&ctx, w, spec).await);
                        }
                    }
                    Scenario::Handshakes => {
                        if let Some(w) = &wss_ctx {
                            let r = handshakes::handshakes_relay(&ctx, w, spec).await;
                            record(round, sc, col, r);
                        }
                    }
                    Scenario::FanIn => {
                        record(round, sc, col, handshakes::fanin_relay(&ctx, spec).await)
                    }
                    // One or two processes of relay A; relay B is not run.
                    Scenario::Fanout if i != 0 || spec.syntax != Syntax::Wsbridge => {}
                    Scenario::Fanout => {
                        let f = &ctx.sizes.fanout;
                        let mut loads = vec![fanout::Load::Max];
                        if f.rate > 0 {
                            loads.insert(0, fanout::Load::Rate(f.rate));
                        }
                        for setup in [fanout::Setup::One, fanout::Setup::Redis] {
                            if setup == fanout::Setup::Redis && fanout_redis_missing {
                                continue;
                            }
                            for &load in &loads {
                                let r = fanout::run(spec, f, setup, load).await;
                                record(round, sc, col, r);
                            }
                        }
                    }
                }
            }
        }
    }

    // ---- report -------------------------------------------------------------------------------
    let s = &ctx.sizes;
    println!("## wsbench results\n");
    println!(
        "- date: {}; machine: {} CPUs, {}; kernel {}; load average at start {}",
        machine.date, machine.cpus, machine.cpu_model, machine.kernel, machine.load
    );
    println!("- {}; repository commit {}", machine.rustc, machine.git);
    for (i, spec) in specs.iter().enumerate() {
        let pinned = match &spec.pin {
            Some(c) => format!(", pinned to CPU {c:?}"),
            None => String::new(),
        };
        println!(
            "- relay {}: **{}**: {} (`{}`{pinned})",
            ["A", "B"][i],
            spec.name,
            versions[i],
            spec.describe(&Role::TcpToWs {
                binary: false,
                url: "ws://127.0.0.1:PORT/echo".into()
            })
        );
    }
    println!(
        "- {rounds} round(s){}; each cell is the median over rounds",
        if specs.len() > 1 {
            ", A/B order alternating"
        } else {
            ""
        }
    );
    println!(
        "- sizes: {} lines of {} B; bulk {} in {} KiB writes/messages; {} latency round trips \
         of {} B; idle {:?} connections; {} startups; stall {:?}{}",
        s.lines,
        s.line_len,
        human_bytes(s.bulk_bytes),
        s.write_size / 1024,
        s.latency_samples,
        s.latency_line,
        s.idle,
        s.startup_runs,
        s.stall,
        if scenarios.contains(&Scenario::Deflate) {
            format!(
                "; deflate: {} JSON lines ({:.1} MB) each way, {} idle connections with {} \
                 line(s) echoed on each",
                s.deflate_lines,
                deflate::json_stream(s.deflate_lines).len() as f64 / 1e6,
                s.deflate_conns,
                s.deflate_idle_lines
            )
        } else {
            String::new()
        },
    );
    if scenarios.contains(&Scenario::Fanout) {
        let f = &s.fanout;
        println!(
            "- fanout: one room of {} clients (with Redis: {} on each of 2 instances), {} \
             senders spread over them, {} B binary messages, {} s of sending per load; fixed \
             rate {} msg/s in total; max: {} messages in flight per sender; a delivery is one \
             message reaching one receiver ({} receivers per message)",
            f.clients,
            f.clients / 2,
            f.senders.min(f.clients),
            f.size,
            f.secs,
            f.rate,
            f.window,
            f.clients - 1
        );
    }
    println!();
    let a = &specs[0].name;
    let mut header = format!("| scenario | unit | no relay | {a} |");
    let mut rule = "|---|---|---:|---:|".to_string();
    if specs.len() > 1 {
        header.push_str(&format!(" {} | {a} vs {} |", specs[1].name, specs[1].name));
        rule.push_str("---:|---:|");
    }
    header.push_str(&format!(" {a} vs no relay |"));
    rule.push_str("---:|");
    println!("{header}\n{rule}");
    let rows: Vec<Row> = {
        let mut r: Vec<Row> = results.keys().map(|(row, _)| *row).collect();
        r.dedup();
        r
    };
    let med = |row: Row, col: Col| {
        results
            .get(&(row, col))
            .map(|v| median(&v.iter().map(|(_, x)| *x).collect::<Vec<_>>()))
    };
    // The median over rounds of the ratio within each round (paired, so that a slow stretch of
    // a busy machine hits both sides of a ratio alike). `f(a, b)`: the ratio for one round.
    let paired = |row: Row, ca: Col, cb: Col, f: &dyn Fn(f64, f64) -> Option<f64>| {
        let (va, vb) = (results.get(&(row, ca))?, results.get(&(row, cb))?);
        let r: Vec<f64> = va
            .iter()
            .filter_map(|(ra, a)| {
                vb.iter()
                    .find(|(rb, _)| rb == ra)
                    .and_then(|(_, b)| f(*a, *b))
            })
            .collect();
        (!r.is_empty()).then(|| median(&r))
    };
    let pos = |x: f64| x > 0.0 && x.is_finite();
    for row in &rows {
        let row = *row;
        let base = med(row, Col::Baseline);
        let va = med(row, Col::Relay(0));
        let mut line = format!(
            "| {} | {} | {} | {} |",
            row.label(),
            row.unit(),
            base.map(fmt_num).unwrap_or_default(),
            va.map(fmt_num).unwrap_or_default()
        );
        if specs.len() > 1 {
            let vb = med(row, Col::Relay(1));
            let ratio = match row.better() {
                Better::Higher => paired(row, Col::Relay(0), Col::Relay(1), &|a, b| {
                    pos(b).then(|| a / b)
                }),
                Better::Lower => paired(row, Col::Relay(0), Col::Relay(1), &|a, b| {
                    (pos(a) && pos(b)).then(|| b / a)
                }),
                Better::Neither => None,
            };
            line.push_str(&format!(
                " {} | {} |",
                vb.map(fmt_num).unwrap_or_default(),
                ratio.map(|r| format!("{r:.2}×")).unwrap_or_default()
            ));
        }
        let vs_base = match row.better() {
            // A process start against an in-process connection is no useful ratio.
            _ if matches!(row, Row::StartupFirst | Row::StartupExit) => None,
            Better::Higher => paired(row, Col::Relay(0), Col::Baseline, &|a, b| {
                pos(b).then(|| 100.0 * a / b)
            })
            .map(|p| format!("{p:.0}%")),
            Better::Lower => paired(row, Col::Relay(0), Col::Baseline, &|a, b| {
                pos(b).then(|| a / b)
            })
            .map(|x| format!("{x:.1}× slower")),
            Better::Neither => None,
        }
        .unwrap_or_default();
        line.push_str(&format!(" {vs_base} |"));
        println!("{line}");
    }
    println!();
    if specs.len() > 1 {
        println!(
            "\"{a} vs {}\" is how many times better {a} is (higher throughput, or lower \
             time/memory/CPU), taken within each round and then the median: above 1 means {a} \
             wins.",
            specs[1].name
        );
    }
    println!(
        "\"vs no relay\" is the share of the no-relay baseline (throughput) or the multiple of it \
         (latency), per round, median. Bulk and server-bulk baselines: the bench's WebSocket client \
         straight to its WebSocket sink/source; lines/latency: its client straight to its echo \
         server; startup: in-process connect, one echo, close. MB = 10^6 bytes."
    );
    if rounds > 1 {
        println!("\n<details><summary>every round</summary>\n");
        println!("| scenario | column | values |\n|---|---|---|");
        for ((row, col), v) in &results {
            let who = match col {
                Col::Baseline => "no relay".to_string(),
                Col::Relay(i) => specs[*i].name.clone(),
            };
            let vals: Vec<String> = v.iter().map(|(_, x)| fmt_num(*x)).collect();
            println!(
                "| {} ({}) | {who} | {} |",
                row.label(),
                row.unit(),
                vals.join(", ")
            );
        }
        println!("\n</details>");
    }
    if !notes.is_empty() || !errors.is_empty() {
        println!();
        for n in &notes {
            println!("- note: {n}");
        }
        for e in &errors {
            println!("- FAILED: {e}");
        }
    }
    if errors.is_empty() { 0 } else { 1 }
}

/// `--soak`: each relay in turn, then the report; 1 when a criterion failed.
async fn run_soak(cli: &Cli, specs: &[RelaySpec], nofile: u64) -> i32 {
    let mut plan = if cli.soak_short {
        soak::load::Plan::short()
    } else {
        soak::load::Plan::full()
    };
    if let Some(n) = cli.soak_clients {
        plan.clients = n.max(1);
    }
    plan.rounds = cli.soak_rounds.max(1);
    if let Some(s) = cli.soak_secs {
        plan.duration = Duration::from_secs_f64(s.max(1.0));
    }
    eprintln!("wsbench: soak; RLIMIT_NOFILE {nofile}");
    for s in specs {
        eprintln!("wsbench: {}: {}", s.name, sys::version_of(s.program()));
    }
    let mut pass = true;
    if cli.soak || cli.soak_short {
        let mut outcomes = Vec::new();
        for spec in specs {
            outcomes.push(soak::soak(spec, &plan).await);
        }
        pass = soak::print(&outcomes, &plan);
    }
    if let Some(n) = cli.soak_idle {
        if (n + 256) as u64 > nofile {
            println!(
                "\nidle: {n} connections need {} descriptors; RLIMIT_NOFILE is {nofile}",
                n + 256
            );
        } else {
            for spec in specs {
                match soak::idle(spec, n).await {
                    Ok(rows) => {
                        println!("\n### {}: {n} idle bridged connections\n", spec.name);
                        for (k, v) in rows {
                            println!("- {k}: {v}");
                        }
                    }
                    Err(e) => println!("\n{}: idle: FAILED: {e}", spec.name),
                }
            }
        }
    }
    if let Some(n) = cli.soak_stalled {
        for spec in specs {
            match soak::stalled(spec, n).await {
                Ok(rows) => {
                    println!("\n### {}: {n} stalled readers\n", spec.name);
                    for (k, v) in rows {
                        println!("- {k}: {v}");
                    }
                }
                Err(e) => println!("\n{}: stalled: FAILED: {e}", spec.name),
            }
        }
    }
    if pass { 0 } else { 1 }
}
