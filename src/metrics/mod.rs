//! Process-wide counters for `--metrics`, and their Prometheus text exposition. Plain atomics in
//! one static: counting costs a relaxed load and branch when `--metrics` is off, a relaxed add
//! when on. Every label has a fixed set of values (no peer addresses, paths or free text), so
//! the number of series is bounded. The `--metrics` listener is in `http`.

mod http;

pub(crate) use http::serve;

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a session ended: the exit-code classes of docs/exit-codes.md, indexed by exit code.
pub(crate) const OUTCOMES: [&str; 13] = [
    "ok",
    "internal",
    "usage",
    "dns",
    "connect",
    "tls",
    "handshake",
    "timeout",
    "peer_closed",
    "protocol",
    "listen",
    "input",
    "dead_peer",
];

/// HTTP statuses counted by name; others are `other`.
const STATUSES: [u16; 14] = [
    400, 401, 403, 404, 405, 408, 413, 426, 429, 431, 500, 502, 503, 504,
];
/// Close codes counted by number (RFC 6455 §7.4.1 and the IANA registry's first ones); others
/// are `other`.
const CLOSE_CODES: [u16; 14] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
];
/// Upper bounds of the ping round-trip histogram, in seconds.
const RTT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub(crate) enum Dir {
    Received = 0,
    Sent = 1,
}

pub(crate) enum Role {
    Server = 0,
    Client = 1,
}

/// Every counter of the process.
pub(crate) struct Metrics {
    on: AtomicBool,
    sessions_accepted: AtomicU64,
    sessions_active: AtomicI64,
    sessions_ended: [AtomicU64; OUTCOMES.len()],
    /// [role][status index, or the last for other]
    refused: [[AtomicU64; STATUSES.len() + 1]; 2],
    /// [direction][text, binary]
    messages: [[AtomicU64; 2]; 2],
    bytes: [[AtomicU64; 2]; 2],
    /// [direction][code index, or the last for other]
    closes: [[AtomicU64; CLOSE_CODES.len() + 1]; 2],
    rtt_buckets: [AtomicU64; RTT_BUCKETS.len()],
    rtt_count: AtomicU64,
    rtt_sum_us: AtomicU64,
    dead_peers: AtomicU64,
    accept_errors: AtomicU64,
    reconnects: AtomicU64,
    disconnected_us: AtomicU64,
    pub(crate) broadcast_members: AtomicI64,
    pub(crate) broadcast_kicked: AtomicU64,
    pub(crate) redis_published: AtomicU64,
    pub(crate) redis_publish_failed: AtomicU64,
    pub(crate) redis_received: AtomicU64,
    pub(crate) redis_connections_lost: AtomicU64,
}

/// The process's counters.
/// A zero counter. Each use of a `const` is a fresh atomic (what clippy warns about when a
/// shared one was meant); the arrays below want exactly that, one per element.
#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU64 = AtomicU64::new(0);

pub(crate) static M: Metrics = Metrics {
    on: AtomicBool::new(false),
    sessions_accepted: Z,
    sessions_active: AtomicI64::new(0),
    sessions_ended: [const { Z }; OUTCOMES.len()],
    refused: [const { [const { Z }; STATUSES.len() + 1] }; 2],
    messages: [const { [const { Z }; 2] }; 2],
    bytes: [const { [const { Z }; 2] }; 2],
    closes: [const { [const { Z }; CLOSE_CODES.len() + 1] }; 2],
    rtt_buckets: [const { Z }; RTT_BUCKETS.len()],
    rtt_count: Z,
    rtt_sum_us: Z,
    dead_peers: Z,
    accept_errors: Z,
    reconnects: Z,
    disconnected_us: Z,
    broadcast_members: AtomicI64::new(0),
    broadcast_kicked: Z,
    redis_published: Z,
    redis_publish_failed: Z,
    redis_received: Z,
    redis_connections_lost: Z,
};

static STARTED: OnceLock<SystemTime> = OnceLock::new();

fn index_of(list: &[u16], v: u16) -> usize {
    list.iter().position(|&x| x == v).unwrap_or(list.len())
}

impl Metrics {
    /// Turn counting on (`--metrics`); also notes the start time.
    pub(crate) fn enable(&self) {
        let _ = STARTED.set(SystemTime::now());
        self.on.store(true, Relaxed);
    }

    fn on(&self) -> bool {
        self.on.load(Relaxed)
    }

    pub(crate) fn session_started(&self) {
        self.sessions_accepted.fetch_add(1, Relaxed);
        self.sessions_active.fetch_add(1, Relaxed);
    }

    /// `exit_code`: the session's error class (0 for a normal end).
    pub(crate) fn session_ended(&self, exit_code: u8) {
        self.sessions_active.fetch_sub(1, Relaxed);
        let i = usize::from(exit_code).min(OUTCOMES.len() - 1);
        self.sessions_ended[i].fetch_add(1, Relaxed);
    }

    /// Run one session, counted: started now, ended with its outcome.
    pub(crate) async fn session<F>(&self, session: F) -> crate::error::Result<()>
    where
        F: std::future::Future<Output = crate::error::Result<()>>,
    {
        self.session_started();
        let r = session.await;
        self.session_ended(r.as_ref().map_or_else(|e| e.exit_code(), |()| 0));
        r
    }

    pub(crate) fn refused(&self, role: Role, status: u16) {
        self.refused[role as usize][index_of(&STATUSES, status)].fetch_add(1, Relaxed);
    }

    /// A data message on a WebSocket connection.
    #[inline]
    pub(crate) fn message(&self, dir: Dir, text: bool, len: usize) {
        if self.on() {
            let (d, t) = (dir as usize, usize::from(!text));
            self.messages[d][t].fetch_add(1, Relaxed);
            self.bytes[d][t].fetch_add(len as u64, Relaxed);
        }
    }

    pub(crate) fn close(&self, dir: Dir, code: u16) {
        self.closes[dir as usize][index_of(&CLOSE_CODES, code)].fetch_add(1, Relaxed);
    }

    pub(crate) fn ping_rtt(&self, rtt: Duration) {
        let s = rtt.as_secs_f64();
        for (i, &le) in RTT_BUCKETS.iter().enumerate() {
            if s <= le {
                self.rtt_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.rtt_count.fetch_add(1, Relaxed);
        self.rtt_sum_us.fetch_add(rtt.as_micros() as u64, Relaxed);
    }

    pub(crate) fn accept_failed(&self) {
        if self.on() {
            self.accept_errors.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn dead_peer(&self) {
        self.dead_peers.fetch_add(1, Relaxed);
    }

    /// A reconnection after `down` without a connection.
    pub(crate) fn reconnected(&self, down: Duration) {
        self.reconnects.fetch_add(1, Relaxed);
        self.disconnected_us
            .fetch_add(down.as_micros() as u64, Relaxed);
    }

    /// The exposition (Prometheus text format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let w = &mut out;
        self.render_sessions(w);
        self.render_traffic(w);
        self.render_health(w);
        self.render_broadcast(w);
        render_process(w);
        out
    }

    fn render_sessions(&self, w: &mut String) {
        head(
            w,
            "wsbridge_sessions_accepted_total",
            "counter",
            "Sessions started (accepted clients, or the one session of a run).",
        );
        let _ = writeln!(
            w,
            "wsbridge_sessions_accepted_total {}",
            self.sessions_accepted.load(Relaxed)
        );
        head(
            w,
            "wsbridge_sessions_active",
            "gauge",
            "Sessions running now.",
        );
        let _ = writeln!(
            w,
            "wsbridge_sessions_active {}",
            self.sessions_active.load(Relaxed)
        );
        head(
            w,
            "wsbridge_sessions_ended_total",
            "counter",
            "Sessions ended, by outcome (the exit-code classes of docs/exit-codes.md).",
        );
        for (i, o) in OUTCOMES.iter().enumerate() {
            let n = self.sessions_ended[i].load(Relaxed);
            let _ = writeln!(w, "wsbridge_sessions_ended_total{{outcome=\"{o}\"}} {n}");
        }
        head(
            w,
            "wsbridge_handshakes_refused_total",
            "counter",
            "WebSocket handshakes refused, by HTTP status: by wsbridge as a server, or by the server it connects to.",
        );
        for (r, role) in ["server", "client"].iter().enumerate() {
            for (i, n) in self.refused[r].iter().enumerate() {
                let status = STATUSES.get(i).map_or("other".to_string(), u16::to_string);
                let n = n.load(Relaxed);
                let _ = writeln!(
                    w,
                    "wsbridge_handshakes_refused_total{{role=\"{role}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }

    fn render_traffic(&self, w: &mut String) {
        for (name, what, arr) in [
            (
                "wsbridge_messages_total",
                "Data messages on WebSocket connections, by direction and type.",
                &self.messages,
            ),
            (
                "wsbridge_message_bytes_total",
                "Payload bytes of those messages.",
                &self.bytes,
            ),
        ] {
            head(w, name, "counter", what);
            for (d, dir) in ["received", "sent"].iter().enumerate() {
                for (t, ty) in ["text", "binary"].iter().enumerate() {
                    let n = arr[d][t].load(Relaxed);
                    let _ = writeln!(w, "{name}{{direction=\"{dir}\",type=\"{ty}\"}} {n}");
                }
            }
        }
        head(
            w,
            "wsbridge_close_codes_total",
            "counter",
            "Close frames on WebSocket connections, by direction and code.",
        );
        for (d, dir) in ["received", "sent"].iter().enumerate() {
            for (i, n) in self.closes[d].iter().enumerate() {
                let code = CLOSE_CODES
                    .get(i)
                    .map_or("other".to_string(), u16::to_string);
                let n = n.load(Relaxed);
                let _ = writeln!(
                    w,
                    "wsbridge_close_codes_total{{direction=\"{dir}\",code=\"{code}\"}} {n}"
                );
            }
        }
    }

    fn render_health(&self, w: &mut String) {
        let name = "wsbridge_ping_rtt_seconds";
        head(
            w,
            name,
            "histogram",
            "Time from a keepalive ping (--ping-interval) to the next frame from the peer.",
        );
        for (i, le) in RTT_BUCKETS.iter().enumerate() {
            let n = self.rtt_buckets[i].load(Relaxed);
            let _ = writeln!(w, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let count = self.rtt_count.load(Relaxed);
        let _ = writeln!(w, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.rtt_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(w, "{name}_sum {sum}\n{name}_count {count}");
        counter(
            w,
            "wsbridge_dead_peers_total",
            "Peers found dead by the keepalive (nothing within --ping-timeout of a ping).",
            self.dead_peers.load(Relaxed),
        );
        counter(
            w,
            "wsbridge_accept_errors_total",
            "Failed accepts on the listener (out of descriptors, and the like).",
            self.accept_errors.load(Relaxed),
        );
        counter(
            w,
            "wsbridge_reconnects_total",
            "Reconnections made by --reconnect.",
            self.reconnects.load(Relaxed),
        );
        let down = self.disconnected_us.load(Relaxed) as f64 / 1e6;
        head(
            w,
            "wsbridge_disconnected_seconds_total",
            "counter",
            "Time --reconnect spent without a connection, up to each reconnection.",
        );
        let _ = writeln!(w, "wsbridge_disconnected_seconds_total {down}");
    }

    fn render_broadcast(&self, w: &mut String) {
        head(
            w,
            "wsbridge_broadcast_members",
            "gauge",
            "Members of broadcast: rooms on this instance.",
        );
        let _ = writeln!(
            w,
            "wsbridge_broadcast_members {}",
            self.broadcast_members.load(Relaxed)
        );
        counter(
            w,
            "wsbridge_broadcast_dropped_members_total",
            "Members disconnected with 1013 for not reading the room.",
            self.broadcast_kicked.load(Relaxed),
        );
        counter(
            w,
            "wsbridge_redis_published_total",
            "Messages published to Redis (--broadcast-via).",
            self.redis_published.load(Relaxed),
        );
        counter(
            w,
            "wsbridge_redis_publish_failed_total",
            "Messages not published: Redis away or far behind (lost for other instances).",
            self.redis_publish_failed.load(Relaxed),
        );
        counter(
            w,
            "wsbridge_redis_received_total",
            "Messages received from other instances through Redis.",
            self.redis_received.load(Relaxed),
        );
        counter(
            w,
            "wsbridge_redis_connections_lost_total",
            "Redis connections lost (publishing or subscription).",
            self.redis_connections_lost.load(Relaxed),
        );
    }
}

fn head(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(w: &mut String, name: &str, help: &str, n: u64) {
    head(w, name, "counter", help);
    let _ = writeln!(w, "{name} {n}");
}

fn render_process(w: &mut String) {
    head(
        w,
        "wsbridge_build_info",
        "gauge",
        "The running version (always 1).",
    );
    let _ = writeln!(
        w,
        "wsbridge_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let started = *STARTED.get_or_init(SystemTime::now);
    let start = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    head(
        w,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
    );
    let _ = writeln!(w, "process_start_time_seconds {}", start.as_secs_f64());
    let up = started.elapsed().unwrap_or_default();
    head(
        w,
        "wsbridge_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    let _ = writeln!(w, "wsbridge_uptime_seconds {}", up.as_secs_f64());
    render_fds(w);
}

/// The standard process gauges for descriptors: open now (entries of /proc/self/fd), and the
/// soft limit (raised to the hard limit at startup: src/fdlimit.rs).
fn render_fds(w: &mut String) {
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        let open = dir.count().saturating_sub(1);
        head(
            w,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        let _ = writeln!(w, "process_open_fds {open}");
    }
    if let Some((soft, _)) = crate::fdlimit::current() {
        head(
            w,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        let _ = writeln!(w, "process_max_fds {soft}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_counts_land_in_their_series() {
        let m = &M;
        m.enable();
        m.refused(Role::Server, 403);
        m.refused(Role::Server, 418);
        m.close(Dir::Sent, 4000);
        m.message(Dir::Received, true, 5);
        m.ping_rtt(Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("wsbridge_handshakes_refused_total{role=\"server\",status=\"403\"} 1")
        );
        assert!(
            text.contains("wsbridge_handshakes_refused_total{role=\"server\",status=\"other\"} 1")
        );
        assert!(text.contains("wsbridge_close_codes_total{direction=\"sent\",code=\"other\"} 1"));
        assert!(
            text.contains("wsbridge_message_bytes_total{direction=\"received\",type=\"text\"} 5")
        );
        assert!(text.contains("wsbridge_ping_rtt_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("wsbridge_ping_rtt_seconds_bucket{le=\"0.0025\"} 0"));
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        assert!(series < 200, "{series} series");
    }
}
