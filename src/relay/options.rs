//! The relay's options (what `config` builds for it from the command line): how the pumps run,
//! and how `--reconnect` retries.

use std::time::Duration;

use super::Linger;
use super::framing::FramingOptions;

/// Options of the pump between two connections.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// How byte streams are cut into messages and back.
    pub framing: FramingOptions,
    pub exit_on_eof: bool,
    /// Do not send Close on local EOF.
    pub no_close: bool,
    /// Copy ADDR1 → ADDR2.
    pub forward: bool,
    /// Copy ADDR2 → ADDR1.
    pub reverse: bool,
    pub close_timeout: Duration,
    /// How long the Close is held after local EOF (see `relay::Linger`).
    pub linger: Linger,
    /// At most this many messages ADDR1 → ADDR2 (`--max-messages`).
    pub max_forward: Option<u64>,
    /// At most this many messages ADDR2 → ADDR1 (`--max-messages-rev`).
    pub max_reverse: Option<u64>,
    /// The Close sent when the local side ends.
    pub close_code: u16,
    pub close_reason: String,
    /// Outgoing messages larger than this are sent in fragments.
    pub max_frame_size: usize,
    /// Ping the WebSocket this often; the peer is dead when nothing arrives within
    /// `ping_timeout` of a ping.
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Duration,
    /// Cancelled when the process is asked to stop: sessions send Close 1001 and drain.
    pub shutdown: crate::shutdown::Shutdown,
    /// How long sessions may drain after `shutdown`.
    pub shutdown_timeout: Duration,
    /// Server role: a backend that takes no data for this long while some waits for it ends the
    /// session (`--backend-timeout`; `None`: never).
    pub backend_timeout: Option<Duration>,
}

/// Reconnect and readiness (keepalive and shutdown live in `RelayOptions`).
#[derive(Debug, Clone, Default)]
pub struct UptimeOptions {
    pub reconnect: bool,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub reconnect_buffer: usize,
    pub ready_after_connect: bool,
}
