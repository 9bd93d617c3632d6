//! The command line as the user types it (clap derive). The `///` comments are the `--help` text,
//! the man page and the completions. No I/O and no domain logic: `config` turns this into a Config.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

pub use crate::endpoint::ExecStderr;
pub use crate::endpoint::tls::TlsRoots;
pub use crate::logging::LogFormat;
pub use crate::units::{parse_duration, parse_size};

/// What follows the generated ADDRESSES list in `--help` (see [`command`]).
const AFTER_ADDRESSES: &str = "
  Kind names are case-insensitive; more websocat spellings are accepted (docs/addresses.md).
  One address that is a ws:// or wss:// URL means: standard input/output <-> that URL.
  A listener (ADDR1) accepts any number of clients; each client gets its own connection to
  ADDR2 (its own WebSocket). --oneshot serves one client and exits.

EXAMPLES:
  seq 1 1000 | wsbridge ws://127.0.0.1:8080/          # lines -> text messages -> lines
  wsbridge --text --exit-on-eof tcp-listen:127.0.0.1:10001 wss://host/api/v4/websocket \\
           -H @/run/secrets/auth-header                # header lines from a file, not argv
  wsbridge -b unix-listen:/run/app.sock ws://127.0.0.1:9000/
  wsbridge wss://host/x mirror:                       # echo client: answer every message
  wsbridge ws-listen:127.0.0.1:8080 mirror:           # echo server
  wsbridge -b ws-listen:0.0.0.0:6080 tcp:127.0.0.1:5900   # websockify-style VNC gateway
  wsbridge ws-listen:127.0.0.1:8080 exec:./count.sh   # websocketd-style
  wsbridge --pty ws-listen:127.0.0.1:8080 --exec-dir ./bin   # /chat runs ./bin/chat
  wsbridge ws-listen:127.0.0.1:12345 broadcast:       # chat room per URL path
  wsbridge --framing webfs unix-listen:/run/ws.sock wss://host/feed   # exact messages

ENVIRONMENT:
  WSBRIDGE_BASIC_AUTH     USER:PASS for --basic-auth (kept out of the process list and
                          from exec: children, as are proxy variables with a password)
  SSL_CERT_FILE           extra trusted CA certificates (PEM), like --ca-file
  RUST_LOG                log filter (overrides -q/-v); secrets are never logged
  NOTIFY_SOCKET           systemd Type=notify: READY=1, STOPPING=1, and WATCHDOG=1 at half
                          of WATCHDOG_USEC (docs/systemd.md)
  LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES   sockets passed by systemd, for sd-listen:
  CREDENTIALS_DIRECTORY   where --header-credential NAME is read (set by systemd)
  JOURNAL_STREAM          set by systemd when stderr is journald: text log lines start
                          with their syslog priority (<3> error ... <7> debug)
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (or lower case)
                          proxies for the WebSocket client when --proxy is not given

EXIT CODES:
  0 ok, 1 internal, 2 usage, 3 DNS, 4 connect, 5 TLS,
  6 handshake refused, 7 timeout, 8 peer closed abnormally, 9 protocol error,
  10 cannot listen, 11 local input refused, 12 peer not responding (--ping-timeout),
  130 second signal. See docs/exit-codes.md.";

/// Bridge WebSockets to TCP, Unix sockets and standard input/output.
///
/// Text mode (the default) turns each line into one text message and each incoming text message
/// into one line. Binary mode (-b) carries arbitrary bytes as binary messages.
#[derive(Debug, Parser)]
#[command(
    name = "wsbridge",
    version,
    about,
    long_about,
    after_help = "Run 'wsbridge --help' for addresses, examples and exit codes."
)]
pub struct Cli {
    /// First address: a listener, '-', a ws:// or wss:// URL, ... (see ADDRESSES below)
    #[arg(value_name = "ADDR1", required_unless_present_any = ["generate", "server"])]
    pub addr1: Option<String>,

    /// Second address; omitted, ADDR1 must be a ws:// or wss:// URL and the other side is stdio
    #[arg(value_name = "ADDR2")]
    pub addr2: Option<String>,

    /// Text mode: lines <-> text messages (the default)
    #[arg(short = 't', long, conflicts_with = "binary")]
    pub text: bool,

    /// Binary mode: byte chunks <-> binary messages, bytes passed through unchanged
    #[arg(short = 'b', long)]
    pub binary: bool,

    /// When either direction reaches EOF, end the whole session. WebSocket pairs always end
    /// this way (RFC 6455 has no half-close: local EOF sends Close); for byte-to-byte pairs
    /// (e.g. tcp-listen: to tcp:) without -E a half-close is passed on instead
    #[arg(short = 'E', long)]
    pub exit_on_eof: bool,

    /// Do not send Close when the local side reaches EOF: keep printing incoming messages until
    /// the peer closes (e.g. `echo subscribe | wsbridge -n wss://feed`)
    #[arg(short = 'n', long, conflicts_with = "exit_on_eof")]
    pub no_close: bool,

    /// Only copy ADDR1 -> ADDR2 (with one URL: stdin -> WebSocket). The other direction is
    /// read (pings answered) and discarded
    #[arg(short = 'u', long, conflicts_with = "unidirectional_reverse")]
    pub unidirectional: bool,

    /// Only copy ADDR2 -> ADDR1 (with one URL: WebSocket -> stdout). ADDR1's input is not read
    #[arg(short = 'U', long)]
    pub unidirectional_reverse: bool,

    /// Extra request header 'Name: value' (repeatable). '@FILE' reads header lines from FILE, so
    /// tokens stay out of the process list. Values of Authorization, Cookie and similar headers
    /// are never logged
    #[arg(short = 'H', long = "header", value_name = "HEADER|@FILE", action = ArgAction::Append)]
    pub headers: Vec<String>,

    /// Sec-WebSocket-Protocol to request (comma-separated list allowed)
    #[arg(long, value_name = "PROTO")]
    pub protocol: Option<String>,

    /// Origin header to send
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,

    /// HTTP basic authentication for the WebSocket handshake. Prefer the environment variable
    /// WSBRIDGE_BASIC_AUTH, which keeps the password out of the process list
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "WSBRIDGE_BASIC_AUTH",
        hide_env_values = true
    )]
    pub basic_auth: Option<String>,

    /// Do not verify the server's TLS certificate (testing only)
    #[arg(short = 'k', long)]
    pub insecure: bool,

    /// Extra trusted CA certificates (PEM, repeatable); SSL_CERT_FILE is honoured the same way
    #[arg(long, value_name = "PEM", action = ArgAction::Append)]
    pub ca_file: Vec<PathBuf>,

    /// Serve one client, then exit with that session's status
    #[arg(long)]
    pub oneshot: bool,

    /// Permissions of the socket file made by unix-listen:, in octal (e.g. 0660)
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub unix_mode: Option<u32>,

    /// Also print the 'listening on …' line to standard output (for scripts)
    #[arg(long)]
    pub announce_stdout: bool,

    /// After sending Close, wait this long for the peer's Close while still delivering
    /// its messages (e.g. 5, 2.5, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = parse_duration)]
    pub close_timeout: Duration,

    /// After local EOF, hold the Close while replies may still come (many servers drop unsent
    /// replies once they see a Close). auto: until the peer has been quiet for one handshake
    /// round trip (0.25 ms to 100 ms) once every message sent has had a reply, or for 1 s while
    /// replies are missing. A duration: until nothing has arrived for that long. 0: close at
    /// once. Never longer than --close-timeout
    #[arg(long, value_name = "auto|DURATION", default_value = "auto")]
    pub linger: crate::relay::Linger,

    /// Limit for DNS + TCP connect, TLS and the WebSocket handshake, each
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Largest message accepted or sent (e.g. 65536, 64KiB, 64MiB). A longer incoming message
    /// closes the connection with 1009; a longer outgoing line is an error (see --split-long)
    /// [default: 64MiB; 1MiB for what clients of ws-listen: send]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_message_size: Option<usize>,

    /// Process-wide limit for the bytes of incoming messages still arriving (fragments being
    /// put together, large frames being read); a connection that would pass it is closed with
    /// 1013
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_buffered: usize,

    /// Close a connection (1008) whose incoming message has begun to arrive and then makes no
    /// progress for this long (0: never)
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_duration)]
    pub message_timeout: Duration,

    /// A message sent first on every new WebSocket connection, before any input (repeatable,
    /// in order): TEXT as a text message, or @FILE's contents (one trailing newline removed;
    /// text when valid UTF-8, else binary). Sent again after each --reconnect, for servers that
    /// want a subscribe or login message first. Never logged
    #[arg(long, value_name = "TEXT|@FILE", action = ArgAction::Append)]
    pub on_connect: Vec<String>,

    /// Do not compress: no permessage-deflate offer as a client, none accepted as a server
    #[arg(long, help_heading = "Compression")]
    pub no_compress: bool,

    /// permessage-deflate window (8-15, base-2 log of bytes): wsbridge's own, and the limit
    /// asked of the peer's (at 8 wsbridge sends uncompressed: zlib cannot compress with a
    /// 256-byte window). Not given: 15 for wsbridge; as a server, 12 (4 KiB) for clients that
    /// allow a limit, which bounds the memory each connection keeps
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(8..=15), help_heading = "Compression")]
    pub deflate_window_bits: Option<u8>,

    /// Neither side refers back to earlier messages: no decompressor kept between messages,
    /// less compression of small messages
    #[arg(long, help_heading = "Compression")]
    pub deflate_no_context_takeover: bool,

    /// zlib compression level for what wsbridge sends (1: fastest .. 9: smallest)
    #[arg(long, value_name = "N", default_value = "6", value_parser = clap::value_parser!(u8).range(1..=9), help_heading = "Compression")]
    pub deflate_level: u8,

    /// Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz). Loopback only
    /// unless --metrics-public; port 0 picks one (announced on stderr)
    #[arg(long, value_name = "HOST:PORT", help_heading = "Operations")]
    pub metrics: Option<String>,

    /// Allow --metrics on an address other than loopback (the metrics say how busy the
    /// service is and how its clients fail)
    #[arg(long, requires = "metrics", help_heading = "Operations")]
    pub metrics_public: bool,

    /// Only print errors
    #[arg(short = 'q', long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More log output (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Log lines on stderr as text ('LEVEL session=N: message') or as one JSON object per
    /// line (level, target, message, and a session's session, peer and label; its end line adds
    /// counts, close_code and duration_ms). Secrets are left out of both. Under systemd
    /// (JOURNAL_STREAM set), text lines start with their syslog priority (<3>, <4>, <6>, <7>)
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// Server shorthand: 'ws-listen:127.0.0.1:PORT' (or HOST:PORT) as ADDR1; the address given
    /// (default '-': stdin/stdout, one client, like websocat -s) is ADDR2
    #[arg(
        short = 's',
        long = "server",
        value_name = "[HOST:]PORT",
        help_heading = "Server"
    )]
    pub server: Option<String>,

    /// Certificate chain (PEM) for wss-listen:
    #[arg(long, value_name = "PEM", help_heading = "Server")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM: PKCS#8, RSA or EC) for wss-listen:
    #[arg(long, value_name = "PEM", help_heading = "Server")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by these CAs (PEM) on wss-listen: (mutual TLS)
    #[arg(long, value_name = "PEM", help_heading = "Server")]
    pub tls_client_ca: Option<PathBuf>,

    /// Subprotocols this server speaks (comma-separated). The first subprotocol in the client's
    /// offer that is in this list is selected; a client offering only others gets HTTP 400.
    /// Without this option no subprotocol is selected
    #[arg(
        long,
        value_name = "P1,P2",
        value_delimiter = ',',
        help_heading = "Server"
    )]
    pub server_protocol: Vec<String>,

    /// Accept only WebSocket clients whose Origin is this (repeatable; compared ignoring ASCII
    /// case); others, and clients without an Origin, get 403
    #[arg(long, value_name = "ORIGIN", action = ArgAction::Append, help_heading = "Server")]
    pub origin_allow: Vec<String>,

    /// Accept only clients sending this header with this exact, non-empty value (repeatable);
    /// others get 401, and a client sending it twice gets 400
    #[arg(long, value_name = "HEADER", action = ArgAction::Append, help_heading = "Server")]
    pub require_header: Vec<String>,

    /// Accept only clients sending 'Authorization: Bearer TOKEN', TOKEN read from FILE
    /// (compared in constant time); others get 401
    #[arg(long, value_name = "FILE", help_heading = "Server")]
    pub auth_token_file: Option<PathBuf>,

    /// Serve at most N sessions at once; further WebSocket clients get HTTP 503, further TCP
    /// and Unix clients are closed at once [default: what the descriptor limit allows, e.g.
    /// (limit − 32) / 2 in front of tcp:]
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub max_conns: Option<usize>,

    /// Run a listener's sessions on N threads, each session on one of them from start to end
    /// [default: the CPUs this process may use (affinity, cgroup quota)]
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub threads: Option<usize>,

    /// End a session (the client gets Close 1011 "backend not reading") when its backend has
    /// taken no data for this long while some was waiting for it (0: never)
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_duration, help_heading = "Server")]
    pub backend_timeout: Duration,

    /// Drop a client that has not completed its TLS and HTTP handshake within this time, or that
    /// takes nothing of a plain HTTP answer (such as a static file) for this long
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_duration, help_heading = "Server")]
    pub handshake_timeout: Duration,

    /// Serve the built-in browser console page at '/' (off by default). Any web site can link
    /// a visitor there; the page sends nothing until the visitor clicks Connect and Send
    #[arg(long, help_heading = "Server")]
    pub console: bool,

    /// The console page is off unless --console is given; accepted for compatibility
    #[arg(long, hide = true, conflicts_with = "console")]
    pub no_console: bool,

    /// Serve files from DIR to plain HTTP GET and HEAD requests (never outside DIR; hidden
    /// files and directories, except .well-known, are not served)
    #[arg(long = "static", value_name = "DIR", help_heading = "Server")]
    pub static_dir: Option<PathBuf>,

    /// Pass this client request header on: to exec: children as HTTP_<NAME>, and to a ws:// or
    /// wss:// upstream as is (repeatable); a client sending it twice gets 400. Not Proxy (it
    /// would set the children's HTTP_PROXY)
    #[arg(long, value_name = "NAME", action = ArgAction::Append, help_heading = "Server")]
    pub pass_header: Vec<String>,

    /// Per-client queue of broadcast: rooms, in messages. A member whose queue stays full for
    /// 5 s while others send is disconnected with Close 1013; until then senders wait
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub broadcast_queue: Option<usize>,

    /// Per-client queue of broadcast: rooms, in bytes (as --broadcast-queue; one message is
    /// always let in)
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_size, help_heading = "Server")]
    pub broadcast_queue_bytes: usize,

    /// Share broadcast: rooms with every wsbridge using this Redis
    /// (redis://[USER:PASS@]HOST:PORT[/DB] or rediss:// for TLS): each room is a Pub/Sub
    /// channel. Redis must be reachable at startup (exit 4 otherwise); later outages are
    /// survived, and what is sent meanwhile does not reach other instances
    #[arg(long, value_name = "URL", help_heading = "Server")]
    pub broadcast_via: Option<String>,

    /// Redis password for --broadcast-via, read from a file (a systemd credential:
    /// LoadCredential=redis:… and %d/redis), instead of in the URL
    #[arg(long, value_name = "FILE", help_heading = "Server")]
    pub broadcast_via_password_file: Option<std::path::PathBuf>,

    /// Trust only this CA (PEM) for a rediss:// --broadcast-via (default: the webpki roots)
    #[arg(long, value_name = "PEM", help_heading = "Server")]
    pub broadcast_via_ca_file: Option<std::path::PathBuf>,

    /// Prefix of the Redis channel names of rooms: PREFIX + the request path; lets deployments
    /// share one Redis
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "wsbridge:room:",
        help_heading = "Server"
    )]
    pub broadcast_prefix: String,

    /// Arguments for exec:PROGRAM; takes everything after it, so put it last
    #[arg(long, value_name = "ARG", num_args = 1.., allow_hyphen_values = true, help_heading = "Programs")]
    pub exec_args: Vec<String>,

    /// Behind ws-listen: (in place of ADDR2), run DIR/<request path> for each client, as
    /// websocketd's --dir: /chat runs DIR/chat, /a/b/c runs DIR/a/b with PATH_INFO=/c.
    /// Executable regular files only, never outside DIR, no hidden names; 404 otherwise
    #[arg(long, value_name = "DIR", help_heading = "Programs")]
    pub exec_dir: Option<PathBuf>,

    /// Run exec:/sh-c: children on a pseudo-terminal (stdin and stdout), so that programs
    /// which buffer a pipe (C stdio, Python) write each line at once. No echo, TERM=dumb; input
    /// in line mode (lines up to 4095 bytes, end of input as ^D) or raw with -b
    #[arg(long, help_heading = "Programs")]
    pub pty: bool,

    /// The terminal size a --pty child sees
    #[arg(long, value_name = "COLSxROWS", default_value = "80x24", value_parser = parse_pty_size, help_heading = "Programs")]
    pub pty_size: (u16, u16),

    /// Where children's standard error goes: log (each line to wsbridge's log, with the
    /// session), inherit (wsbridge's own stderr), client (text messages to the client,
    /// prefixed by --stderr-prefix)
    #[arg(
        long,
        value_enum,
        value_name = "WHERE",
        default_value = "log",
        help_heading = "Programs"
    )]
    pub exec_stderr: ExecStderr,

    /// Prefix of the stderr lines sent with --exec-stderr client
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "stderr: ",
        help_heading = "Programs"
    )]
    pub stderr_prefix: String,

    /// Pass this variable of wsbridge's environment on to children (repeatable), or set it:
    /// NAME=VALUE. Children get only the CGI variables, PATH, HOME, LANG, LC_*, TZ and these
    #[arg(long, value_name = "NAME[=VALUE]", action = ArgAction::Append, help_heading = "Programs")]
    pub pass_env: Vec<String>,

    /// How local bytes are cut into messages [default: lines with -t, raw with -b]
    #[arg(long, value_enum, value_name = "NAME", help_heading = "Framing")]
    pub framing: Option<crate::relay::framing::Framing>,

    /// NUL-terminated messages (--framing nul)
    #[arg(
        short = '0',
        long = "null-terminated",
        conflicts_with = "framing",
        help_heading = "Framing"
    )]
    pub null_terminated: bool,

    /// For lines/nul: what to do with a newline (NUL) inside an incoming message: replace it
    /// with a space, escape it (\n, \\, \r, \0 — undone for outgoing lines), or keep it
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        default_value = "space",
        help_heading = "Framing"
    )]
    pub newline_policy: crate::relay::framing::NewlinePolicy,

    /// For lines/nul: prefix incoming text messages with P; outgoing lines starting with P are
    /// sent (without P) as text
    #[arg(long, value_name = "P", help_heading = "Framing")]
    pub text_prefix: Option<String>,

    /// For lines/nul: prefix incoming binary messages with P; outgoing lines starting with P
    /// are sent (without P) as binary
    #[arg(long, value_name = "P", help_heading = "Framing")]
    pub binary_prefix: Option<String>,

    /// For lines/nul: write incoming binary messages as base64; outgoing lines that carry the
    /// --binary-prefix are base64-decoded
    #[arg(long, help_heading = "Framing")]
    pub base64: bool,

    /// Split an outgoing line longer than --max-message-size into several messages instead of
    /// refusing it
    #[arg(long, help_heading = "Framing")]
    pub split_long: bool,

    /// For jsonl: also write {"type":"open"}, and ping/pong events
    #[arg(long, help_heading = "Framing")]
    pub jsonl_events: bool,

    /// Send each line 'method arg…' as a JSON-RPC 2.0 call with increasing ids
    #[arg(long, help_heading = "Framing")]
    pub jsonrpc: bool,

    /// Write 'websocket ready' to the local side once the WebSocket is connected (as webfs does)
    #[arg(long, help_heading = "Framing")]
    pub ready_line: bool,

    /// Send one message and receive one message, then close (--max-messages 1
    /// --max-messages-rev 1)
    #[arg(short = '1', long, help_heading = "Framing")]
    pub one_message: bool,

    /// Copy at most N messages ADDR1 -> ADDR2; then stop reading ADDR1 (and close, unless
    /// --max-messages-rev is still waiting for replies)
    #[arg(long, value_name = "N", help_heading = "Framing")]
    pub max_messages: Option<u64>,

    /// Copy at most N messages ADDR2 -> ADDR1; then close the session
    #[arg(long, value_name = "N", help_heading = "Framing")]
    pub max_messages_rev: Option<u64>,

    /// Close code sent when the local side ends (default 1000)
    #[arg(
        long,
        value_name = "CODE",
        default_value = "1000",
        help_heading = "Framing"
    )]
    pub close_code: u16,

    /// Close reason sent when the local side ends
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        help_heading = "Framing"
    )]
    pub close_reason: String,

    /// Largest frame (e.g. 16MiB): an oversize incoming frame closes with 1009; outgoing
    /// messages larger than this are sent in fragments of this size
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_frame_size: usize,

    /// Send a ping this often on every WebSocket (e.g. 30, 500ms); 0 turns pings off
    /// [default: 30 for the clients of ws-listen:/wss-listen:, off otherwise]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Staying up")]
    pub ping_interval: Option<Duration>,

    /// With --ping-interval: end the session (exit 12) when nothing at all has arrived for this
    /// long after a ping [default: the ping interval]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Staying up")]
    pub ping_timeout: Option<Duration>,

    /// Follow HTTP redirects (301, 302, 307, 308) of the WebSocket handshake, at most 5; never
    /// from wss:// to ws:// unless --insecure
    #[arg(short = 'L', long, help_heading = "Staying up")]
    pub follow_redirects: bool,

    /// When the WebSocket drops, reconnect (exponential backoff with jitter) while the local side
    /// stays open; local input is queued meanwhile (see --reconnect-buffer)
    #[arg(long, help_heading = "Staying up")]
    pub reconnect: bool,

    /// First reconnect delay
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration, help_heading = "Staying up")]
    pub reconnect_min: Duration,

    /// Longest reconnect delay
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_duration, help_heading = "Staying up")]
    pub reconnect_max: Duration,

    /// Local input queued while reconnecting; when full, local input waits (nothing is dropped)
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size, help_heading = "Staying up")]
    pub reconnect_buffer: usize,

    /// On SIGTERM/SIGINT: send Close 1001 on every WebSocket and wait this long for sessions to
    /// finish (a second signal exits at once)
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = parse_duration, help_heading = "Staying up")]
    pub shutdown_timeout: Duration,

    /// Connect WebSockets through this proxy: http://[USER:PASS@]HOST:PORT (HTTP CONNECT) or
    /// socks5://[USER:PASS@]HOST:PORT. Without it HTTPS_PROXY/HTTP_PROXY/ALL_PROXY and NO_PROXY
    /// (or lower case) are honoured; 'none' ignores them
    #[arg(long, value_name = "URL", help_heading = "Staying up")]
    pub proxy: Option<String>,

    /// Read USER:PASS for --basic-auth from FILE
    #[arg(long, value_name = "FILE", help_heading = "Secrets and TLS")]
    pub basic_auth_file: Option<PathBuf>,

    /// Read header lines from the systemd credential NAME ($CREDENTIALS_DIRECTORY/NAME), like
    /// -H @FILE (repeatable)
    #[arg(long, value_name = "NAME", action = ArgAction::Append, help_heading = "Secrets and TLS")]
    pub header_credential: Vec<String>,

    /// Client certificate chain (PEM) for wss:// servers that require one (mutual TLS)
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_key",
        help_heading = "Secrets and TLS"
    )]
    pub client_cert: Option<PathBuf>,

    /// Private key (PEM) of --client-cert
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_cert",
        help_heading = "Secrets and TLS"
    )]
    pub client_key: Option<PathBuf>,

    /// Which roots to trust for wss://: the built-in Mozilla set (webpki), the operating
    /// system's store (system), or both; --ca-file and SSL_CERT_FILE are always added
    #[arg(
        long,
        value_enum,
        value_name = "ROOTS",
        default_value = "webpki",
        help_heading = "Secrets and TLS"
    )]
    pub tls_roots: TlsRoots,

    /// With NOTIFY_SOCKET set: send READY=1 only once the upstream WebSocket is connected
    /// (default: once listeners are bound)
    #[arg(long, help_heading = "Staying up")]
    pub ready_after_connect: bool,

    /// Write the man page and shell completions into DIR and exit (for packagers)
    #[arg(long, value_name = "DIR", hide = true)]
    pub generate: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("'{s}' is not an octal file mode (e.g. 0660)"))
}

/// `COLSxROWS`, each 1 to 9999.
fn parse_pty_size(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("'{s}' is not a terminal size COLSxROWS (e.g. 80x24)");
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let n = |v: &str| v.parse::<u16>().ok().filter(|n| (1..=9999).contains(n));
    Ok((n(c).ok_or_else(bad)?, n(r).ok_or_else(bad)?))
}

/// The clap command, for man page and completion generation.
/// The command with its full `--help` (the ADDRESSES list comes from `addr`'s table).
pub fn command() -> clap::Command {
    let after = format!("ADDRESSES:\n{}{AFTER_ADDRESSES}", crate::addr::help_text());
    <Cli as clap::CommandFactory>::command().after_long_help(after)
}

/// Parse the process's arguments (exits with clap's message and code on a usage error).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn pty_sizes() {
        assert_eq!(parse_pty_size("80x24").unwrap(), (80, 24));
        assert_eq!(parse_pty_size("132X43").unwrap(), (132, 43));
        for bad in ["80", "0x24", "80x", "x24", "80x24x1", "-1x5", "10000x10"] {
            assert!(parse_pty_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert!(parse_mode("999").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }
}
