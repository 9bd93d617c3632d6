//! Shared harness for the wsbridge fuzz targets (see docs/fuzzing.md).
//!
//! Every decoder target goes through [`run_decoder`]: the input is fed to a
//! [`LocalDecoder`] in chunks (sizes taken from the input) the way `FramedRead` does it —
//! append a chunk, call `decode` until it returns `Ok(None)` or an error, and at the end call
//! `decode_eof` until it returns `Ok(None)` or an error — and checks after every call:
//!
//! * no panic (libFuzzer reports it);
//! * every message is at most `max_message_size` long, and text is valid UTF-8;
//! * when `decode` returned `Ok(None)` (it wants more input), the buffer it was handed holds at
//!   most [`Limits::buffer`] bytes (`4 * max + 64` unless a target says otherwise);
//! * one `decode`/`decode_eof` call allocates at most [`Limits::alloc`] bytes more than it had
//!   at its start (measured with the counting global allocator below).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::Decoder;
use wsbridge::internals::Mode;
use wsbridge::internals::{Framing, FramingError, FramingOptions, LocalDecoder, NewlinePolicy};

// ---------------------------------------------------------------------------------------------
// Counting allocator: how much one decoder call allocates.

pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `f`; also return the largest number of bytes live at once during `f` beyond those live
/// when it started.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed);
    (r, peak.saturating_sub(start))
}

// ---------------------------------------------------------------------------------------------
// Reading choices from the front of the input.

/// Takes bytes off the front of the input; 0 once it is used up.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// A `--max-message-size`: 1..=64 a quarter of the time, else 64..=4096.
    pub fn max_size(&mut self) -> usize {
        let sel = self.byte();
        let v = self.u16() as usize;
        if sel % 4 == 0 {
            1 + v % 64
        } else {
            64 + v % (4096 - 64 + 1)
        }
    }
    /// Chunk sizes (cycled): 1..=255, or 0 for "everything that is left".
    pub fn chunks(&mut self) -> [u8; 4] {
        [self.byte(), self.byte(), self.byte(), self.byte()]
    }
    pub fn mode(&mut self) -> Mode {
        if self.bool() {
            Mode::Binary
        } else {
            Mode::Text
        }
    }
    pub fn policy(&mut self) -> NewlinePolicy {
        match self.byte() % 3 {
            0 => NewlinePolicy::Space,
            1 => NewlinePolicy::Escape,
            _ => NewlinePolicy::Keep,
        }
    }
    /// A prefix pair as the CLI accepts it: each non-empty, and different from the other.
    /// With `unambiguous`, neither is a prefix of the other (needed for exact round trips).
    pub fn prefixes(&mut self, unambiguous: bool) -> (Option<String>, Option<String>) {
        const POOL: &[&str] = &["T:", "B:", "t", "b", ">", ">>", "TXT ", "BIN ", "\\", "T"];
        let sel = self.byte();
        let pick = |i: u8| POOL[i as usize % POOL.len()].to_string();
        let mut t = (sel & 1 == 1).then(|| pick(self.byte()));
        let mut b = (sel & 2 == 2).then(|| pick(self.byte()));
        if let (Some(tp), Some(bp)) = (&t, &b) {
            let clash = tp == bp || (unambiguous && (tp.starts_with(bp) || bp.starts_with(tp)));
            if clash {
                t = Some("T:".into());
                b = Some("B:".into());
            }
        }
        if sel & 3 == 0 {
            // Keep both None.
            t = None;
            b = None;
        }
        (t, b)
    }
}

// ---------------------------------------------------------------------------------------------
// Feeding a decoder.

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest buffer allowed after `decode` returned `Ok(None)`; `None`: not checked.
    pub buffer: Option<usize>,
    /// Largest allocation growth allowed within one decoder call; `None`: not checked.
    pub alloc: Option<usize>,
}

impl Limits {
    /// The brief's bound: `4 * max + 64` bytes buffered; one call may allocate a few times that.
    pub fn standard(max: usize) -> Self {
        let buffer = 4 * max + 64;
        Limits {
            buffer: Some(buffer),
            alloc: Some(4 * buffer + 4096),
        }
    }
}

/// jsonl keeps up to `6 * max + 1026` bytes of an unfinished line (JSON escapes a control
/// character in 6 bytes; 1 KiB for the envelope): the targets allow exactly that, not more.
pub const JSONL_BUFFER_FACTOR: usize = 6;

pub struct Outcome {
    pub messages: Vec<Message>,
    pub error: Option<FramingError>,
}

/// Check one decoded message against the limit.
pub fn check_message(m: &Message, max: usize, opts: &FramingOptions) {
    match m {
        Message::Text(t) => {
            assert!(
                std::str::from_utf8(t.as_bytes()).is_ok(),
                "text message is not UTF-8"
            );
        }
        Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        Message::Frame(_) => panic!("decoder produced a raw frame"),
    }
    assert!(
        m.len() <= max,
        "message of {} bytes > max_message_size {max} ({opts:?})",
        m.len()
    );
    static RFC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *RFC.get_or_init(|| env_flag("WSBRIDGE_FUZZ_RFC_CONTROL")) {
        // RFC 6455 §5.5: control frame payloads are at most 125 bytes.
        match m {
            Message::Ping(p) | Message::Pong(p) => {
                assert!(p.len() <= 125, "ping/pong payload of {} bytes", p.len())
            }
            Message::Close(Some(f)) => assert!(
                f.reason.len() <= 123,
                "close reason of {} bytes",
                f.reason.len()
            ),
            _ => {}
        }
    }
}

fn chunk_len(pattern: &[u8; 4], i: usize, left: usize) -> usize {
    match pattern[i % 4] {
        0 => left,
        n => (n as usize).min(left),
    }
}

/// Feed `data` to a decoder made from `opts` and check every step (see the module docs).
pub fn run_decoder(opts: &FramingOptions, pattern: [u8; 4], data: &[u8], lim: Limits) -> Outcome {
    let max = opts.max_message_size;
    let mut dec = LocalDecoder::new(opts.clone());
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut rest = data;
    let mut i = 0;

    let check_alloc = |grown: usize, what: &str, buffered: usize| {
        if let Some(a) = lim.alloc {
            assert!(
                grown <= a,
                "{what} allocated {grown} bytes (limit {a}, {buffered} bytes buffered, {opts:?})"
            );
        }
    };

    while !rest.is_empty() {
        let n = chunk_len(&pattern, i, rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let before = buf.len();
            let (r, grown) = measure(|| dec.decode(&mut buf));
            check_alloc(grown, "decode", before);
            match r {
                Ok(Some(m)) => {
                    check_message(&m, max, opts);
                    messages.push(m);
                }
                Ok(None) => {
                    if let Some(b) = lim.buffer {
                        assert!(
                            buf.len() <= b,
                            "decoder keeps {} bytes buffered after Ok(None) (bound {b}, {opts:?})",
                            buf.len()
                        );
                    }
                    break;
                }
                Err(e) => {
                    return Outcome {
                        messages,
                        error: Some(e),
                    };
                }
            }
        }
    }
    loop {
        let before = buf.len();
        let (r, grown) = measure(|| dec.decode_eof(&mut buf));
        check_alloc(grown, "decode_eof", before);
        match r {
            Ok(Some(m)) => {
                check_message(&m, max, opts);
                messages.push(m);
            }
            Ok(None) => {
                return Outcome {
                    messages,
                    error: None,
                };
            }
            Err(e) => {
                return Outcome {
                    messages,
                    error: Some(e),
                };
            }
        }
    }
}

/// Is `var` set to `1` in the environment (switches optional checks on or off)?
pub fn env_flag(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

/// `decode_lines` / `decode_nul`: options from the first input bytes, the rest is the stream.
pub fn delimited_target(data: &[u8], framing: Framing) {
    let mut c = Cursor::new(data);
    let max = c.max_size();
    let mode = c.mode();
    let flags = c.byte();
    let newline_policy = c.policy();
    let (text_prefix, binary_prefix) = c.prefixes(false);
    let pattern = c.chunks();
    let opts = FramingOptions {
        framing,
        newline_policy,
        text_prefix,
        binary_prefix,
        base64: flags & 1 != 0,
        split_long: flags & 2 != 0,
        // The CLI allows --jsonrpc with lines framing only.
        jsonrpc: framing == Framing::Lines && flags & 4 != 0,
        ..FramingOptions::simple(mode, max)
    };
    let mut lim = Limits::standard(max);
    if opts.jsonrpc {
        // serde_json values for the params: several times the line, but bounded by it.
        lim.alloc = lim.buffer.map(|b| 64 * b + 65536);
    }
    if opts.split_long {
        // A split line is queued as one `Message` per piece (up to buffer / max + 1 of them);
        // the queue (a VecDeque, so up to twice that) is allowed on top.
        let pieces = lim.buffer.unwrap_or(0) / max + 2;
        let queue = 2 * pieces * std::mem::size_of::<Message>();
        lim.alloc = lim.alloc.map(|a| a + queue);
    }
    if opts.split_long && env_flag("WSBRIDGE_FUZZ_ALLOW_SPLIT_LONG") {
        // Known issue (docs/fuzzing.md): with --split-long a line without its separator is
        // buffered without limit. This switch lets the rest of the target be fuzzed.
        lim = Limits {
            buffer: None,
            alloc: None,
        };
    }
    run_decoder(&opts, pattern, c.rest(), lim);
}

// ---------------------------------------------------------------------------------------------
// A peer on the other end of a WebSocket connection, for the frame-reader targets.

/// Reads come from `data`, at most `chunk` bytes at a time; writes are accepted and dropped.
pub struct Peer {
    pub data: Vec<u8>,
    pub pos: usize,
    pub chunk: usize,
}

impl tokio::io::AsyncRead for Peer {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self
            .chunk
            .min(buf.remaining())
            .min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Peer {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        b: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Poll a message stream whose transport (a [`Peer`]) has all its input, at most `$steps`
/// times, asserting: no message over `$max` bytes, nothing after the stream failed or ended,
/// never `Pending`, and that it did end. A macro because the stream is a `dyn Stream` whose
/// trait this crate does not depend on.
#[macro_export]
macro_rules! read_to_end {
    ($stream:expr, $steps:expr, $max:expr) => {{
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut over = false;
        for _ in 0..$steps {
            match $stream.as_mut().poll_next(&mut cx) {
                std::task::Poll::Ready(Some(Ok(m))) => {
                    assert!(!over, "a message after the end");
                    assert!(m.len() <= $max, "message of {} bytes", m.len());
                }
                std::task::Poll::Ready(Some(Err(_)) | None) => over = true,
                std::task::Poll::Pending => {
                    panic!("the reader waits although the input is all there")
                }
            }
        }
        assert!(over, "the stream did not end with its input");
    }};
}
