//! permessage-deflate (RFC 7692): the options, what a handshake agreed on (`negotiate`), and the
//! per-message compression and decompression of one connection. Deflate itself is flate2 on
//! zlib-rs; only the RFC 7692 framing is here.
//!
//! Memory is what bounds the design: a zlib-rs compressor holds about 150 KiB whatever its
//! window, so connections do not keep one. Each thread has one compressor per window size,
//! reset for every message; a connection whose context is taken over keeps only the last
//! [`HISTORY`] bytes it sent compressed, given to the compressor as a preset dictionary. The
//! peer's decompressor holds at least those bytes in its window (they are the end of what it
//! decompressed), so back references into them are valid; nothing else in the window is used.
//! Decompressors are pooled the same way; a connection keeps the end of what it decompressed
//! (the peer's window at most: 4 KiB for clients of a wsbridge server by default) as the
//! next message's dictionary, and only while the peer takes its context over.

mod negotiate;

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub(crate) use negotiate::NAME;

/// How much of what was sent compressed a connection keeps as the next message's dictionary.
pub(crate) const HISTORY: usize = 4096;
/// The window a server allows its clients by default (4 KiB): what bounds the decompressor a
/// connection keeps (RFC 7692 lets a client offer `client_max_window_bits` for this; browsers,
/// Python `websockets` and Node `ws` do). Python `websockets` chooses the same.
pub(crate) const SERVER_CLIENT_BITS: u8 = 12;
/// The tail every compressed message ends with after a sync flush (RFC 7692 §7.2.1), removed
/// by the sender and put back by the receiver.
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// What the user chose (`--no-compress`, `--deflate-window-bits`, `--deflate-no-context-takeover`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateOptions {
    pub enabled: bool,
    /// `--deflate-window-bits` (8–15): our compressor's window, and the limit asked of the
    /// peer's. Not given: our window is 15 bits; a client asks no limit; a server limits its
    /// clients to [`SERVER_CLIENT_BITS`] when their offer allows it.
    pub window_bits: Option<u8>,
    /// Neither side keeps its context between messages (less memory, less compression).
    pub no_context_takeover: bool,
    /// The zlib compression level (1–9).
    pub level: u8,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            enabled: true,
            window_bits: None,
            no_context_takeover: false,
            level: 6,
        }
    }
}

/// What a handshake agreed on, from this endpoint's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Our compressor's window; 8 means we send uncompressed (zlib cannot compress with a
    /// 256-byte window), which RFC 7692 allows for any message.
    pub(crate) tx_bits: u8,
    /// We may refer back to earlier messages.
    pub(crate) tx_takeover: bool,
    /// The peer may refer back to earlier messages: keep the decompressor between them.
    pub(crate) rx_takeover: bool,
    /// The peer's window at most (its compressor's, so our decompressor's).
    pub(crate) rx_bits: u8,
    pub(crate) level: u8,
    /// Server role: the `Sec-WebSocket-Extensions` value to answer with.
    pub(crate) answer: Option<String>,
}

impl Negotiated {
    /// For the log: `permessage-deflate (ours: 15 bits, context kept; theirs: reset)`.
    pub(crate) fn describe(&self) -> String {
        let keep = |k: bool| if k { "context kept" } else { "context reset" };
        let ours = if self.tx_bits < 9 {
            "not compressing".to_string()
        } else {
            format!("{} bits, {}", self.tx_bits, keep(self.tx_takeover))
        };
        format!("{NAME} (ours: {ours}; theirs: {})", keep(self.rx_takeover))
    }
}

thread_local! {
    /// Compressors by (window bits, level), reset before each use.
    static COMPRESSORS: RefCell<Vec<(u8, u8, Compress)>> = const { RefCell::new(Vec::new()) };
    /// Decompressors not in use, by window bits.
    static DECOMPRESSORS: RefCell<Vec<(u8, Decompress)>> = const { RefCell::new(Vec::new()) };
}

/// The sending half's state: what the next message may refer back to.
pub(crate) struct Deflater {
    bits: u8,
    level: u8,
    takeover: bool,
    history: Vec<u8>,
}

impl Deflater {
    pub(crate) fn new(n: &Negotiated) -> Self {
        Deflater {
            bits: n.tx_bits,
            level: n.level,
            takeover: n.tx_takeover,
            history: Vec::new(),
        }
    }

    /// `data` compressed, without the tail; `None` to send it as it is (empty, not smaller
    /// compressed, or a window zlib cannot compress with).
    pub(crate) fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if data.is_empty() || self.bits < 9 {
            return None;
        }
        let dictionary = if self.takeover {
            &self.history[..]
        } else {
            &[]
        };
        let out = COMPRESSORS.with(|pool| {
            let mut pool = pool.borrow_mut();
            let i = match pool
                .iter()
                .position(|(b, l, _)| (*b, *l) == (self.bits, self.level))
            {
                Some(i) => i,
                None => {
                    let c = Compress::new_with_window_bits(
                        Compression::new(self.level.into()),
                        false,
                        self.bits,
                    );
                    pool.push((self.bits, self.level, c));
                    pool.len() - 1
                }
            };
            deflate(&mut pool[i].2, dictionary, data)
        })?;
        if out.len() >= data.len() {
            return None;
        }
        if self.takeover {
            remember(&mut self.history, data, self.bits);
        }
        Some(out)
    }
}

/// Keep the last `HISTORY` bytes (at most the window) of what was sent compressed.
fn remember(history: &mut Vec<u8>, data: &[u8], bits: u8) {
    remember_within(history, data, HISTORY.min((1 << bits) - 262));
}

/// Append `data` to `history`, keeping its last `keep` bytes.
fn remember_within(history: &mut Vec<u8>, data: &[u8], keep: usize) {
    if data.len() >= keep {
        history.clear();
        history.extend_from_slice(&data[data.len() - keep..]);
        return;
    }
    let drop = (history.len() + data.len()).saturating_sub(keep);
    history.drain(..drop);
    history.extend_from_slice(data);
}

/// One message through a reset compressor: a sync flush, its tail removed.
fn deflate(c: &mut Compress, dictionary: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    c.reset();
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).ok()?;
    }
    let start_in = c.total_in();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let before = (consumed, out.len());
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .ok()?;
        let consumed_now = (c.total_in() - start_in) as usize;
        // The flush is complete when the input is used up and the output did not fill up.
        if consumed_now == data.len() && out.len() < out.capacity() {
            break;
        }
        if before == (consumed_now, out.len()) && out.len() < out.capacity() {
            return None;
        }
    }
    if !out.ends_with(&TAIL) {
        return None;
    }
    out.truncate(out.len() - TAIL.len());
    Some(out)
}

/// Why a compressed message could not be read.
#[derive(Debug)]
pub(crate) enum InflateError {
    /// It inflates to more than the limit (`size` is as far as it got).
    TooBig { size: usize },
    /// Not a valid deflate stream.
    Corrupt(String),
}

/// The receiving half's state. The decompressor is the thread's, held only while a message
/// arrives; what the peer may refer back to is kept here (`window`), at most the peer's window,
/// and given to the decompressor as a preset dictionary at the start of each message. So an
/// idle connection holds its window (4 KiB for a client of a wsbridge server, by default), not
/// a decompressor, and a message that ended its stream with a final block (§7.2.3.4) leaves
/// the window intact for the next.
pub(crate) struct Inflater {
    takeover: bool,
    /// The decompressor's window: the peer's at most (a 9-bit window reads 8-bit streams).
    bits: u8,
    /// The end of what was decompressed so far (with context takeover).
    window: Vec<u8>,
    inner: Option<Decompress>,
    /// The message being read ended its deflate stream with a final block (§7.2.3.4).
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(n: &Negotiated) -> Self {
        Inflater {
            takeover: n.rx_takeover,
            bits: n.rx_bits.max(9),
            window: Vec::new(),
            inner: None,
            ended: false,
        }
    }

    /// Inflate one frame's payload of a compressed message onto `out`; `fin`: the message's
    /// last frame (the tail is put back, the window kept, the decompressor given back). Output
    /// beyond `max` bytes is an error before it is all produced.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        if self.inner.is_none() {
            self.inner = Some(self.take_decompressor()?);
        }
        let d = self.inner.as_mut().expect("set above");
        let mut result = Ok(());
        if !self.ended {
            result = inflate_into(d, input, out, max).map(|end| self.ended = end);
        }
        if fin && !self.ended && result.is_ok() {
            result = inflate_into(d, &TAIL, out, max).map(|_| ());
        }
        if fin || result.is_err() {
            self.end_message(result.is_ok(), out);
        }
        result
    }

    /// A decompressor from the thread's pool (or a new one), primed with the window.
    fn take_decompressor(&mut self) -> Result<Decompress, InflateError> {
        let bits = self.bits;
        let mut d = DECOMPRESSORS
            .with(|p| {
                let mut p = p.borrow_mut();
                let i = p.iter().position(|(b, _)| *b == bits)?;
                Some(p.swap_remove(i).1)
            })
            .unwrap_or_else(|| Decompress::new_with_window_bits(false, bits));
        if self.takeover && !self.window.is_empty() {
            d.set_dictionary(&self.window)
                .map_err(|e| InflateError::Corrupt(e.to_string()))?;
        }
        Ok(d)
    }

    /// After a message (or a failure): remember its end, and give the decompressor back.
    fn end_message(&mut self, ok: bool, out: &[u8]) {
        self.ended = false;
        if ok && self.takeover {
            let size = 1 << self.bits;
            remember_within(&mut self.window, out, size);
        }
        if let Some(mut d) = self.inner.take() {
            d.reset(false);
            DECOMPRESSORS.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < 8 {
                    p.push((self.bits, d));
                }
            });
        }
    }
}

/// Feed `input` to `d`, appending to `out` in bounded steps: never more than `max` + 1 bytes
/// are produced (a bomb stops there). `Ok(true)`: the stream ended with a final block.
fn inflate_into(
    d: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<bool, InflateError> {
    let start = d.total_in();
    loop {
        if out.len() > max {
            return Err(InflateError::TooBig { size: out.len() });
        }
        let goal = (out.len() * 2).max(out.len() + 4096).min(max + 1);
        if out.capacity() < goal {
            out.reserve_exact(goal - out.len());
        }
        let before = (d.total_in(), out.len());
        let used = (d.total_in() - start) as usize;
        let status = d
            .decompress_vec(&input[used..], out, FlushDecompress::Sync)
            .map_err(|e| InflateError::Corrupt(e.to_string()))?;
        if status == Status::StreamEnd {
            d.reset(false);
            // A final block can end the stream at max + 1 bytes: still over the limit.
            if out.len() > max {
                return Err(InflateError::TooBig { size: out.len() });
            }
            return Ok(true);
        }
        let used = (d.total_in() - start) as usize;
        let full = out.len() == out.capacity();
        let stuck = before == (d.total_in(), out.len());
        if !full && (used == input.len() || stuck) {
            break;
        }
    }
    if out.len() > max {
        return Err(InflateError::TooBig { size: out.len() });
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
