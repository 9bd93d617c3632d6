//! The options endpoints are built from: the WebSocket client's, the WebSocket server's and the
//! listeners'. `config` fills them in from the command line; endpoints only read them.

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

/// Options of the WebSocket server (`ws-listen:` / `wss-listen:`).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub protocols: Vec<String>,
    pub origin_allow: Vec<String>,
    pub require_headers: Vec<Header>,
    /// The bearer token clients must present (read from --auth-token-file).
    pub auth_token: Option<String>,
    pub handshake_timeout: Duration,
    pub console: bool,
    pub static_dir: Option<PathBuf>,
    /// `exec-dir:DIR`: upgrades are refused (404) unless the path names a program under DIR.
    pub exec_dir: Option<PathBuf>,
    /// Request headers passed on to exec: children and ws upstreams.
    pub pass_headers: Vec<HeaderName>,
    pub broadcast_queue: usize,
    /// Per-member byte limit of a broadcast room's queue.
    pub broadcast_queue_bytes: usize,
    /// Largest message a client may send (default 1 MiB).
    pub max_message_size: usize,
    pub max_frame_size: usize,
    /// `--message-timeout` (None: 0, never).
    pub message_timeout: Option<Duration>,
    /// permessage-deflate: whether and how to compress (`--no-compress`, `--deflate-*`).
    pub deflate: crate::ws::DeflateOptions,
    /// `--broadcast-via`: rooms shared through Redis.
    pub broadcast_via: Option<BroadcastVia>,
}

/// Where `broadcast:` rooms are shared (`--broadcast-via`, `--broadcast-prefix`).
#[derive(Clone)]
pub struct BroadcastVia {
    /// The Redis URL as given (it may hold a password: show `shown` instead).
    pub url: String,
    /// The URL with its password hidden, for logs and errors.
    pub shown: String,
    /// From `--broadcast-via-password-file`.
    pub password: Option<String>,
    /// `--broadcast-via-ca-file`: the only CA trusted for rediss://.
    pub ca_file: Option<std::path::PathBuf>,
    /// Channel name = prefix + room (the request path).
    pub prefix: String,
}

impl std::fmt::Debug for BroadcastVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastVia")
            .field("url", &self.shown)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// One extra request header. `secret` values are never logged.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// Options for connecting WebSocket clients.
#[derive(Debug, Clone, Default)]
pub struct WsClientOptions {
    pub headers: Vec<Header>,
    pub protocol: Option<String>,
    pub origin: Option<String>,
    /// `user:pass` for HTTP basic authentication.
    pub basic_auth: Option<String>,
    pub insecure: bool,
    /// Extra trust roots: `--ca-file` and `SSL_CERT_FILE`.
    pub ca_files: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub max_message_size: usize,
    pub max_frame_size: usize,
    /// `--message-timeout` (None: 0, never).
    pub message_timeout: Option<Duration>,
    /// `-L`: follow handshake redirects.
    pub follow_redirects: bool,
    /// `--proxy` as given (None: use the environment; `none`: no proxy).
    pub proxy: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub tls_roots: super::tls::TlsRoots,
    /// permessage-deflate: whether to offer it and with what limits.
    pub deflate: crate::ws::DeflateOptions,
    /// `--on-connect`: messages sent first on every new connection.
    pub on_connect: Vec<tokio_tungstenite::tungstenite::Message>,
}

/// Where an `exec:` child's standard error goes (`--exec-stderr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecStderr {
    /// Each line to wsbridge's log (info), with the session.
    #[default]
    Log,
    /// wsbridge's own standard error, unchanged.
    Inherit,
    /// Text messages to the client, each line prefixed.
    Client,
}

/// How `exec:`, `sh-c:` and `exec-dir:` children are run.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The program and its arguments (empty with `exec-dir:`).
    pub argv: Vec<String>,
    /// `exec-dir:DIR` / `--exec-dir`: the request path picks the program under DIR.
    pub dir: Option<PathBuf>,
    /// `--pty`: stdin and stdout on a pseudo-terminal of this size (columns, rows).
    pub pty: Option<(u16, u16)>,
    /// The pty's input in line mode (line framings), else raw.
    pub pty_lines: bool,
    pub stderr: ExecStderr,
    /// `--stderr-prefix`, for `--exec-stderr client`.
    pub stderr_prefix: String,
    /// `--pass-env`: names, each with the value to set or `None` for wsbridge's own.
    pub pass_env: Vec<(String, Option<String>)>,
}

/// Options for listeners.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    pub oneshot: bool,
    pub max_conns: Option<usize>,
    /// `--threads`: the session threads of a listener (src/workers.rs).
    pub threads: usize,
    pub unix_mode: Option<u32>,
    pub announce_stdout: bool,
}
