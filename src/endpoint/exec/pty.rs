//! `--pty`: a pseudo-terminal for a child's stdin and stdout, so that runtimes which buffer a
//! pipe (C stdio, Python) write each line at once. Output is raw (no `\n` → `\r\n`), there is
//! no echo and no signal, erase or flow-control character. Input has two modes:
//! - **line mode**, for line framings (text, jsonl): the kernel's canonical input, so that the
//!   end of input can be told as a terminal does, with the EOF character (^D), which a child
//!   waiting in `read` sees (in raw mode it would take the ^D and keep waiting). A ^D or ^V in
//!   the data is written after ^V (the terminal's literal-next character), so it stays data; the
//!   modes never change while data flows. A line holds at most `LINE_MAX` bytes: a longer one is
//!   an error, not cut short silently by the kernel;
//! - **raw**, for every other framing (`-b`): bytes pass unchanged. The end of input switches to
//!   line mode and writes ^D, which a child sees at its next `read`, not in one it is waiting in
//!   (docs/server.md).
//!
//! A pty has no half-close: closing the master would lose the output still to come. The master
//! is non-blocking, shared by the reading and the writing half.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Winsize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The EOF character written when input ends (^D, what `stty` shows as `eof`).
const EOF_CHAR: u8 = 0x04;
/// The longest line the kernel's line mode holds (its buffer is 4 KiB, newline included).
const LINE_MAX: usize = 4095;
/// Line mode's literal-next character (^V): the byte after it is data.
const LNEXT_CHAR: u8 = 0x16;
/// At most this much input is taken at once when it needs escaping.
const ESCAPE_CHUNK: usize = 4096;

/// A pseudo-terminal: the master (ours, async) and the slave (the child's, until spawned).
pub(super) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    lines: bool,
}

impl Pty {
    /// Open a pseudo-terminal of `cols` × `rows`, its input in line mode or raw.
    pub(super) fn open((cols, rows): (u16, u16), lines: bool) -> io::Result<Pty> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
        let slave = rustix::fs::open(name.as_c_str(), flags, Mode::empty())?;
        let mut t = termios::tcgetattr(&slave)?;
        t.make_raw();
        if lines {
            line_mode(&mut t);
        }
        termios::tcsetattr(&slave, OptionalActions::Now, &t)?;
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        termios::tcsetwinsize(&master, size)?;
        rustix::io::ioctl_fionbio(&master, true)?;
        Ok(Pty {
            master,
            slave,
            lines,
        })
    }

    /// The master side, as the connection's two halves; the slave is returned for the child.
    pub(super) fn split(self) -> io::Result<(PtyReader, PtyWriter, OwnedFd)> {
        // SAFETY: `master` is an open descriptor owned by the AsyncFd for its whole life.
        let fd = unsafe { AsyncFd::register(self.master) }.map_err(|e| e.into_parts().1)?;
        let fd = Arc::new(fd);
        let writer = PtyWriter {
            fd: fd.clone(),
            lines: self.lines,
            line_len: 0,
            escaped: Vec::new(),
            end: End::Writing,
        };
        Ok((PtyReader(fd), writer, self.slave))
    }
}

pub(super) struct PtyReader(Arc<AsyncFd<OwnedFd>>);

pub(super) struct PtyWriter {
    fd: Arc<AsyncFd<OwnedFd>>,
    /// Input is in line mode (else raw).
    lines: bool,
    /// Bytes written since the last newline (a line left open needs a second EOF character).
    line_len: usize,
    /// Line mode: input taken with its ^D and ^V escaped, not yet written.
    escaped: Vec<u8>,
    end: End,
}

/// Where the end of input has got to.
enum End {
    Writing,
    /// In line mode; these EOF characters are still to be written.
    Eof(&'static [u8]),
    Done,
}

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            // SAFETY: read(2) only writes into the buffer; the bytes it reports are then
            // initialised, and only those are marked so.
            let read = guard.try_io(|fd| unsafe {
                let (init, _) = rustix::io::read(fd.get_ref(), buf.unfilled_mut())?;
                Ok(init.len())
            });
            match read {
                Ok(Ok(n)) => {
                    // SAFETY: `n` bytes were just written by read(2).
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Every holder of the slave has closed it: the child's output has ended.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.lines && longest_line(self.line_len, data) > LINE_MAX {
            let why = format!("a line longer than {LINE_MAX} bytes cannot pass --pty in line mode");
            // Said here: after a client's Close, the relay's write errors are only debug lines.
            tracing::warn!("{why}; the session ends (-b passes lines of any length)");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidInput, why)));
        }
        ready!(self.poll_escaped(cx))?;
        let n = if self.lines && memchr::memchr2(EOF_CHAR, LNEXT_CHAR, data).is_some() {
            let n = data.len().min(ESCAPE_CHUNK);
            escape(&data[..n], &mut self.escaped);
            // Written when it can be (here, or by the next write or flush).
            let _ = self.poll_escaped(cx)?;
            n
        } else {
            ready!(write_master(&self.fd, cx, data))?
        };
        let taken = &data[..n];
        self.line_len = match memchr::memrchr(b'\n', taken) {
            Some(i) => n - i - 1,
            None => self.line_len + n,
        };
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_escaped(cx)
    }

    /// End of input: line mode (with ^D as its EOF character), then ^D (twice after an
    /// unfinished line, whose first one only ends that line): the child reads 0.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.end {
                End::Writing => {
                    ready!(this.poll_escaped(cx))?;
                    // Line mode already is; raw input switches to it now.
                    let moded = match this.lines {
                        true => Ok(()),
                        false => canonical(this.fd.get_ref()),
                    };
                    this.end = match moded {
                        Ok(()) if this.line_len == 0 => End::Eof(&[EOF_CHAR]),
                        Ok(()) => End::Eof(&[EOF_CHAR, EOF_CHAR]),
                        Err(e) => {
                            // The child has gone (or took the terminal over): nothing to tell.
                            tracing::debug!("pty: end of input not signalled: {e}");
                            End::Done
                        }
                    };
                }
                End::Eof(rest) => {
                    let rest: &'static [u8] = rest;
                    match ready!(write_master(&this.fd, cx, rest)) {
                        Ok(n) if n < rest.len() => this.end = End::Eof(&rest[n..]),
                        _ => this.end = End::Done,
                    }
                }
                End::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl PtyWriter {
    /// Write out what was taken escaped.
    fn poll_escaped(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.escaped.is_empty() {
            let n = ready!(write_master(&self.fd, cx, &self.escaped))?;
            self.escaped.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

/// `data` with ^V before each ^D and ^V, appended to `out`.
fn escape(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + 16);
    for &b in data {
        if b == EOF_CHAR || b == LNEXT_CHAR {
            out.push(LNEXT_CHAR);
        }
        out.push(b);
    }
}

/// One write to the master, when it can take it.
fn write_master(
    fd: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    loop {
        let mut guard = ready!(fd.poll_write_ready(cx))?;
        let written =
            guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from));
        if let Ok(r) = written {
            return Poll::Ready(r);
        }
    }
}

/// The longest line in `data` (without its newline), the first one continuing a line of
/// `open` bytes already written.
fn longest_line(open: usize, data: &[u8]) -> usize {
    let mut longest = 0;
    let mut start = 0;
    let mut carried = open;
    for nl in memchr::memchr_iter(b'\n', data) {
        longest = longest.max(carried + nl - start);
        start = nl + 1;
        carried = 0;
    }
    longest.max(carried + data.len() - start)
}

/// Line mode: canonical input whose only special characters are newline, ^D (EOF) and ^V
/// (literal next): no echo, erase, kill, signals or flow control (raw otherwise).
fn line_mode(t: &mut termios::Termios) {
    t.local_modes |= LocalModes::ICANON | LocalModes::IEXTEN;
    t.local_modes -= LocalModes::ECHO | LocalModes::ISIG;
    for i in [
        SpecialCodeIndex::VERASE,
        SpecialCodeIndex::VKILL,
        SpecialCodeIndex::VEOL,
        SpecialCodeIndex::VEOL2,
        SpecialCodeIndex::VWERASE,
        SpecialCodeIndex::VREPRINT,
        SpecialCodeIndex::VDISCARD,
    ] {
        t.special_codes[i] = 0;
    }
    t.special_codes[SpecialCodeIndex::VEOF] = EOF_CHAR;
    t.special_codes[SpecialCodeIndex::VLNEXT] = LNEXT_CHAR;
}

/// Raw input switched to line mode, for the end of input.
fn canonical(fd: impl AsFd) -> io::Result<()> {
    let mut t = termios::tcgetattr(&fd)?;
    line_mode(&mut t);
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::longest_line;

    #[test]
    fn every_line_of_a_write_is_measured() {
        assert_eq!(longest_line(0, b""), 0);
        assert_eq!(longest_line(3, b"ab"), 5);
        assert_eq!(longest_line(3, b"ab\ncdefg\nh"), 5);
        assert_eq!(longest_line(0, b"a\nbcdefgh\nij\n"), 7);
        assert_eq!(longest_line(10, b"\n"), 10);
    }

    #[test]
    fn eof_and_literal_next_bytes_are_escaped() {
        let mut out = Vec::new();
        super::escape(b"a\x04b\x16c\x03", &mut out);
        assert_eq!(out, b"a\x16\x04b\x16\x16c\x03");
    }
}
